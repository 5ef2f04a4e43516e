// End-to-end tests of the real tray app (`target/debug/spare-app`), on a private Xvfb
// display: the dashboard driven through tauri-driver + WebKitWebDriver (W3C WebDriver
// classic, spoken here over HTTP with fetch), and the tray menu driven for real through
// trayer (an XEmbed system tray) and xdotool. Every app gets a fresh HOME; the `spare`
// CLI, with the same environment, reads the app's node as the ground truth.
//
// Run from the repository root (README.md beside this file):
//   installers/with-keyring.sh node --test src-tauri/tests/e2e/

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import dgram from "node:dgram";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const APP = path.resolve(ROOT, process.env.SPARE_APP ?? "target/debug/spare-app");
const CLI = path.resolve(ROOT, process.env.SPARE_CLI ?? "target/debug/spare");
const SCREENSHOTS = path.join(ROOT, "target/screenshots");
const WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver";
const IMPORT = "/usr/bin/import";
const DUNST_SERVICE = "/usr/share/dbus-1/services/org.knopwob.dunst.service";
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const TAURI_CLI = path.join(ROOT, "ui/node_modules/.bin/tauri");

// ---------------------------------------------------------------------------------------
// Small helpers: waiting, processes, ports.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns something truthy; fails after `timeout` ms saying `what`. */
async function waitFor(what, probe, { timeout = 30_000, interval = 300 } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      lastError = undefined;
    } catch (error) {
      // A session WebKitWebDriver no longer knows will not come back: say so at once.
      if (error.code === "invalid session id") throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${lastError.message ?? lastError})` : "";
      throw new Error(`timed out after ${Math.round(timeout / 1000)} s waiting for ${what}${why}`);
    }
    await sleep(interval);
  }
}

/** The first executable named `name` in `dirs`, or null. */
function findExecutable(name, dirs) {
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

const PATH_DIRS = (process.env.PATH ?? "").split(":").filter(Boolean);
const CARGO_BIN = path.join(os.homedir(), ".cargo/bin");

/** Runs a command to completion: { code, stdout, stderr }. Never rejects. */
function run(file, args, { env, timeout = 30_000 } = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout, encoding: "utf8", maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (error && code === -1 ? String(error.message) : "") });
    });
  });
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A UDP port that is free now, from 20000 up, for the node's relay endpoint. */
async function freeUdpPort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    const free = await new Promise((resolve) => {
      const socket = dgram.createSocket("udp4");
      socket.once("error", () => resolve(false));
      socket.bind(port, () => socket.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error("no free UDP port found for the relay");
}

/** The process ids whose environment has HOME=`home` (everything started for one test). */
function pidsWithHome(home) {
  const needle = Buffer.from(`\0HOME=${home}\0`);
  const found = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = Buffer.concat([Buffer.from([0]), fs.readFileSync(`/proc/${entry}/environ`)]);
      if (environ.includes(needle)) found.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return found;
}

/** Whether `pid` is still running (a zombie counts as ended). */
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The tray app's own process (not its GPU workers) among the processes of `home`. */
function appPids(home) {
  const app = fs.realpathSync(APP);
  return pidsWithHome(home).filter((pid) => {
    try {
      if (fs.realpathSync(`/proc/${pid}/exe`) !== app) return false;
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return !argv.includes("__gpu-worker") && alive(pid);
    } catch {
      return false;
    }
  });
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Stops the app started with HOME=`home` with SIGTERM (its node stops cleanly). */
async function stopApp(home) {
  for (const pid of appPids(home)) signal(pid, "SIGTERM");
  await waitFor("the app to stop after SIGTERM", () => appPids(home).length === 0, {
    timeout: 20_000,
  }).catch((e) => console.error(`# ${e.message}; killing it`));
  for (const pid of appPids(home)) signal(pid, "SIGKILL");
}

/**
 * Ends everything started with HOME=`home`: the app first, with SIGTERM so it stops its
 * node cleanly, then the rest (tauri-driver, WebKitWebDriver, trayer, GPU workers).
 */
async function stopAll(home) {
  await stopApp(home);
  const rest = pidsWithHome(home).filter(alive);
  for (const pid of rest) signal(pid, "SIGTERM");
  await waitFor("the test's processes to end", () => rest.every((pid) => !alive(pid)), {
    timeout: 5_000,
  }).catch(() => {});
  for (const pid of pidsWithHome(home).filter(alive)) signal(pid, "SIGKILL");
}

/** The last `lines` lines of a text file, or a note that there is none. */
function tail(file, lines = 60) {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd().split("\n");
    return text.slice(-lines).join("\n");
  } catch (e) {
    return `(cannot read ${file}: ${e.message})`;
  }
}

// ---------------------------------------------------------------------------------------
// The display, the isolated homes, the CLI.

/**
 * Starts Xvfb on a display it picks itself (-displayfd); resolves to { child, display }.
 * -noreset: by default Xvfb resets when its last client leaves (between tests), and a
 * client that connects during the reset is refused ("cannot open display").
 */
function startXvfb(logFile) {
  const log = fs.openSync(logFile, "a");
  const child = spawn(
    "Xvfb",
    ["-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset"],
    { stdio: ["ignore", log, log, "pipe"] },
  );
  fs.closeSync(log);
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`Xvfb reported no display within 30 s:\n${tail(logFile)}`));
    }, 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Xvfb exited (${code}) before reporting a display:\n${tail(logFile)}`));
    });
    child.stdio[3].on("data", (chunk) => {
      text += chunk;
      const match = /^(\d+)\n/.exec(text);
      if (match) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        child.stdio[3].destroy();
        resolve({ child, display: `:${match[1]}` });
      }
    });
  });
}

const homes = [];

/**
 * A fresh HOME with the XDG folders under it and a config that gives the node its own
 * relay port; the environment for everything the test starts.
 */
async function isolatedHome(display, label, { updates }) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `spare-e2e-${label}-`));
  homes.push(home);
  const env = { ...process.env };
  delete env.WAYLAND_DISPLAY;
  Object.assign(env, {
    HOME: home,
    // Not ~/.config: start at login must write where XDG_CONFIG_HOME says.
    XDG_CONFIG_HOME: path.join(home, "config"),
    XDG_DATA_HOME: path.join(home, ".local/share"),
    XDG_STATE_HOME: path.join(home, ".local/state"),
    XDG_CACHE_HOME: path.join(home, ".cache"),
    DISPLAY: display,
    GDK_BACKEND: "x11",
    // No accessibility bus on the private session bus: GTK would wait for it.
    NO_AT_BRIDGE: "1",
    PATH: [...PATH_DIRS, CARGO_BIN].join(":"),
  });
  const relayPort = await freeUdpPort();
  const configFile = path.join(env.XDG_CONFIG_HOME, "spare/config.toml");
  fs.mkdirSync(path.dirname(configFile), { recursive: true });
  fs.writeFileSync(
    configFile,
    `[relay]\nport = ${relayPort}\n\n[updates]\ncheck = ${updates.check}\nendpoint = "${updates.server.manifest(label)}"\n`,
  );
  return { home, env, label, configFile, relayPort, appLog: path.join(home, "app.log") };
}

/**
 * A release server on loopback, standing in for Spare's: to each test's app
 * (`/<label>/latest.json`) it offers Spare `version` and serves the package it names,
 * signed for that version with `key`. By default the package is a stand-in and the key
 * one made here, which is not the key the app trusts. It counts what each app asked for.
 */
async function startUpdateServer(dir, { version = "99.0.0", pkg, key } = {}) {
  if (!pkg) {
    pkg = path.join(dir, `spare_${version}_amd64.deb`);
    fs.writeFileSync(pkg, "not Spare: a package signed with some other key\n");
  }
  const signed = path.join(dir, path.basename(pkg));
  if (signed !== pkg) fs.copyFileSync(pkg, signed);
  const generate = !key;
  key ??= path.join(dir, "other.key");
  for (const args of [
    ...(generate ? [["signer", "generate", "--ci", "-p", "", "-w", key]] : []),
    ["signer", "sign", "-f", key, "-p", "", "--app-version", version, signed],
  ]) {
    const { code, stderr } = await run(TAURI_CLI, args, { env: { ...process.env, CI: "true" } });
    assert.equal(code, 0, `tauri ${args.slice(0, 2).join(" ")}: ${stderr}`);
  }
  pkg = signed;
  const signature = fs.readFileSync(`${pkg}.sig`, "utf8").trim();
  const counts = new Map();
  const server = http.createServer((request, response) => {
    const [, label, file] = new URL(request.url, "http://localhost").pathname.split("/");
    counts.set(`${label}/${file}`, (counts.get(`${label}/${file}`) ?? 0) + 1);
    if (file === "latest.json") {
      const url = `http://127.0.0.1:${server.address().port}/${label}/${path.basename(pkg)}`;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(
        JSON.stringify({
          version,
          notes: "Faster relay.\nFixes the tray icon on KDE.",
          pub_date: "2026-11-20T12:00:00Z",
          platforms: { "linux-x86_64": { signature, url } },
        }),
      );
    } else if (file === path.basename(pkg)) {
      response.writeHead(200, { "content-type": "application/octet-stream" });
      response.end(fs.readFileSync(pkg));
    } else {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    server,
    manifest: (label) => `${base}/${label}/latest.json`,
    asked: (label, file) => counts.get(`${label}/${file}`) ?? 0,
    package: path.basename(pkg),
  };
}

/** `spare status --json` against the node of `env`: the object, or { error }. */
async function spareStatus(env) {
  const { code, stdout, stderr } = await run(CLI, ["status", "--json"], { env, timeout: 20_000 });
  if (code !== 0) return { error: `exit ${code}: ${stderr.trim()}` };
  try {
    return JSON.parse(stdout);
  } catch (e) {
    return { error: `not JSON (${e.message}): ${stdout.slice(0, 200)}` };
  }
}

/** Keeps the last answer of `spare status --json` for failure reports. */
/** Starts tauri-driver (with WebKitWebDriver) for `env`; resolves to its base URL. */
async function startDriver(env, logFile) {
  const port = await freeTcpPort();
  let nativePort = await freeTcpPort();
  while (nativePort === port) nativePort = await freeTcpPort();
  const log = fs.openSync(logFile, "a");
  const driver = spawn(
    prerequisites.tauriDriver,
    ["--port", String(port), "--native-port", String(nativePort), "--native-driver", WEBKIT_DRIVER],
    { env, stdio: ["ignore", log, log] },
  );
  fs.closeSync(log);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    "tauri-driver to answer /status",
    async () => {
      if (driver.exitCode !== null) throw new Error(`tauri-driver exited with ${driver.exitCode}`);
      return (await fetch(`${base}/status`, { signal: AbortSignal.timeout(5_000) })).ok;
    },
    { timeout: 60_000 },
  );
  return base;
}

class StatusWatch {
  constructor(env) {
    this.env = env;
    this.last = null;
  }

  async read() {
    this.last = await spareStatus(this.env);
    return this.last;
  }

  /** Polls until `predicate(status)` holds; resolves to that status. */
  until(what, predicate, timeout) {
    return waitFor(
      what,
      async () => {
        const status = await this.read();
        return !status.error && predicate(status) ? status : null;
      },
      { timeout, interval: 500 },
    ).catch((e) => {
      throw new Error(`${e.message}\nlast spare status --json: ${JSON.stringify(this.last, null, 2)}`);
    });
  }
}

function xdotool(env, ...args) {
  return run("xdotool", args, { env, timeout: 15_000 });
}

/** Starts trayer (an XEmbed system tray) on the display of `env`; resolves once its window is up. */
async function startTrayer(env, logFile) {
  const tlog = fs.openSync(logFile, "a");
  const trayer = spawn(
    prerequisites.trayer,
    [
      ...["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32"],
      ...["--SetDockType", "true", "--transparent", "false"],
    ],
    { env, stdio: ["ignore", tlog, tlog] },
  );
  fs.closeSync(tlog);
  await waitFor("trayer's window", async () => {
    if (trayer.exitCode !== null) throw new Error(`trayer exited with ${trayer.exitCode}`);
    return (await xdotool(env, "search", "--class", "trayer")).code === 0;
  });
  return { trayer, windows: (await xdotool(env, "search", "--class", "trayer")).stdout.trim().split("\n") };
}

/**
 * The tray icon of the app `pid`, once it has embedded in trayer (whose panel is sized
 * to its icons): `openMenu()` opens its menu, `keys(...)` types into it.
 */
async function trayMenu(env, trayerWindows, pid) {
  const icon = await waitFor(
    "the app's tray icon to embed in trayer",
    async () => {
      for (const id of trayerWindows) {
        const { stdout } = await xdotool(env, "getwindowgeometry", "--shell", id);
        const g = Object.fromEntries(stdout.trim().split("\n").map((l) => l.split("=")));
        if (Number(g.WIDTH) >= 16 && Number(g.HEIGHT) >= 16) {
          return { x: Number(g.X) + Math.floor(Number(g.WIDTH) / 2), y: Number(g.Y) + Math.floor(Number(g.HEIGHT) / 2), g };
        }
      }
      return null;
    },
    { timeout: 60_000, interval: 1_000 },
  );
  const visibleAppWindows = async () =>
    (await xdotool(env, "search", "--onlyvisible", "--pid", String(pid), "")).stdout
      .trim()
      .split("\n")
      .filter(Boolean);
  // Opens the menu with a right click on the icon (then a left one if that did nothing).
  const openMenu = async () => {
    const before = await visibleAppWindows();
    for (const button of ["3", "1"]) {
      await xdotool(env, "mousemove", String(icon.x), String(icon.y), "click", button);
      const opened = await waitFor(
        "the tray menu to open",
        async () => (await visibleAppWindows()).length > before.length,
        { timeout: 5_000 },
      ).catch(() => false);
      if (opened) return;
      await xdotool(env, "key", "Escape");
    }
    throw new Error(`no menu opened on a right or left click at ${icon.x},${icon.y} (trayer ${JSON.stringify(icon.g)})`);
  };
  const keys = async (...names) => {
    for (const name of names) {
      await xdotool(env, "key", name);
      await sleep(150);
    }
  };
  return { openMenu, keys };
}

/** Logs a test's progress with the seconds since `since` (a slow step shows where). */
function stepper(since = Date.now()) {
  return (what) => console.error(`# ${((Date.now() - since) / 1000).toFixed(1)} s: ${what}`);
}

/**
 * Runs `body`, then stops everything it started (the next test's app must not find this
 * one running: a second launch only shows the first one's dashboard). On failure, prints
 * the logs that say what the app did.
 */
async function withDiagnostics(context, body) {
  try {
    await body();
    await stopAll(context.home);
  } catch (error) {
    await stopAll(context.home);
    const parts = [`--- kept for inspection: ${context.home}`];
    for (const [name, file] of context.logs) parts.push(`--- ${name} (${file}), last lines:\n${tail(file)}`);
    if (context.watch?.last) {
      parts.push(`--- last spare status --json:\n${JSON.stringify(context.watch.last, null, 2)}`);
    }
    context.failed = true;
    console.error(parts.join("\n"));
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// A minimal W3C WebDriver (classic) client over fetch.

class WebDriverError extends Error {
  constructor(method, url, status, value) {
    super(`${method} ${url} -> ${status}: ${value?.error ?? ""} ${value?.message ?? JSON.stringify(value)}`);
    this.code = value?.error;
  }
}

class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  static async request(method, url, body, timeout = 60_000) {
    const sent = Date.now();
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json; charset=utf-8" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeout),
      });
    } catch (error) {
      const what = body === undefined ? "" : ` ${JSON.stringify(body).slice(0, 200)}`;
      throw new Error(`${method} ${url}${what}: no answer (${error.message})`);
    }
    const text = await response.text();
    if (Date.now() - sent > 5_000) {
      console.error(`# slow WebDriver command: ${method} ${url} took ${((Date.now() - sent) / 1000).toFixed(1)} s`);
    }
    let json = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { value: { error: "bad json", message: text.slice(0, 500) } };
    }
    // Errors come with an HTTP error status (W3C WebDriver §6.6); a script's result may
    // itself have an "error" key.
    if (!response.ok) {
      throw new WebDriverError(method, url, response.status, json.value);
    }
    return json.value;
  }

  /**
   * Starts the app through tauri-driver and opens a session on its window, once the
   * dashboard's document is there. WebKitWebDriver has been seen (once in many runs, on a
   * loaded machine) to drop a new session at once while the app runs on: then the app
   * `home` started is stopped and the session opened again, once, saying so.
   */
  static async create(base, args, home) {
    for (let attempt = 1; ; attempt++) {
      const value = await Session.request(
        "POST",
        `${base}/session`,
        {
          capabilities: {
            alwaysMatch: {
              browserName: "wry",
              "tauri:options": { application: APP, args },
            },
          },
        },
        180_000,
      );
      const session = new Session(base, value.sessionId);
      try {
        await waitFor(
          "the dashboard's document",
          async () => (await session.execute("return document.readyState;")) === "complete",
          { timeout: 60_000 },
        );
        return session;
      } catch (error) {
        if (error.code !== "invalid session id" || attempt > 1) throw error;
        console.error(`# WebKitWebDriver dropped the new session (${error.message}); starting the app again`);
        await stopApp(home);
      }
    }
  }

  cmd(method, route, body, timeout) {
    return Session.request(method, `${this.base}/session/${this.id}${route}`, body, timeout);
  }

  delete() {
    return this.cmd("DELETE", "", undefined, 60_000);
  }

  async findAll(selector, using = "css selector") {
    const found = await this.cmd("POST", "/elements", { using, value: selector });
    return found.map((element) => element[ELEMENT]);
  }

  /** The first element matching `selector`, or null. */
  async find(selector, using = "css selector") {
    return (await this.findAll(selector, using))[0] ?? null;
  }

  /** Waits until `selector` matches; resolves to the element id. */
  waitFor(selector, { timeout = 30_000, using = "css selector" } = {}) {
    return waitFor(`an element matching ${selector}`, () => this.find(selector, using), { timeout });
  }

  /** Waits until the element `selector` has text matching `pattern`; resolves to the text. */
  waitForText(selector, pattern, { timeout = 30_000, using = "css selector" } = {}) {
    let last = null;
    return waitFor(
      `${selector} to show text matching ${pattern}`,
      async () => {
        const element = await this.find(selector, using);
        if (!element) return null;
        last = await this.text(element);
        return pattern.test(last) ? last : null;
      },
      { timeout },
    ).catch((e) => {
      throw new Error(`${e.message}; it showed ${JSON.stringify(last)}`);
    });
  }

  text(element) {
    return this.cmd("GET", `/element/${element}/text`);
  }

  property(element, name) {
    return this.cmd("GET", `/element/${element}/property/${name}`);
  }

  attribute(element, name) {
    return this.cmd("GET", `/element/${element}/attribute/${name}`);
  }

  click(element) {
    return this.cmd("POST", `/element/${element}/click`, {});
  }

  /** Clicks the element `selector` (found afresh: the UI re-renders often). */
  async clickOn(selector, using = "css selector") {
    await this.click(await this.waitFor(selector, { using }));
  }

  clear(element) {
    return this.cmd("POST", `/element/${element}/clear`, {});
  }

  type(element, text) {
    return this.cmd("POST", `/element/${element}/value`, { text });
  }

  /** Replaces the text of the input `selector` with `text` as a person would type it. */
  async fill(selector, text) {
    const element = await this.waitFor(selector);
    await this.clear(element);
    await this.type(element, text);
    const shown = await this.property(element, "value");
    assert.equal(shown, text, `${selector} shows what was typed`);
  }

  execute(script, args = []) {
    return this.cmd("POST", "/execute/sync", { script, args });
  }

  executeAsync(script, args = []) {
    return this.cmd("POST", "/execute/async", { script, args }, 120_000);
  }

  async screenshot(file) {
    const png = Buffer.from(await this.cmd("GET", "/screenshot", undefined, 30_000), "base64");
    assert.equal(png.subarray(1, 4).toString(), "PNG", "the screenshot is a PNG");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, png);
    return png;
  }
}

// ---------------------------------------------------------------------------------------
// The dashboard's screens.

const TAB_IDS = { Status: "status", Earnings: "earnings", Ledger: "ledger", Logs: "logs", Settings: "settings" };

async function selectTab(session, tab) {
  const id = TAB_IDS[tab];
  await session.clickOn(`#tab-${id}`);
  await session.waitFor(`#tab-${id}[aria-selected="true"]`);
  await session.waitForText(`#panel-${id} h2`, new RegExp(`^${tab}$`));
}

/** Credits as the dashboard shows them ("0.0012 credits", "1,234 demo"…) are not zero. */
const NONZERO = /[1-9]/;

/** Waits until the Status screen shows both resources' states; resolves to them. */
async function resourceStates(session) {
  const states = {};
  for (const id of ["gpu", "bandwidth"]) {
    const text = await session.waitForText(`#${id}-state .badge`, /^(Lending|Waiting|Paused)$/, {
      timeout: 120_000,
    });
    states[id] = { badge: text, state: await session.attribute(await session.find(`#${id}-state`), "data-state") };
  }
  return states;
}

// ---------------------------------------------------------------------------------------
// The tests.

const prerequisites = {
  tauriDriver: findExecutable("tauri-driver", [...PATH_DIRS, CARGO_BIN]),
  xvfb: findExecutable("Xvfb", PATH_DIRS),
  trayer: findExecutable("trayer", PATH_DIRS),
  xdotool: findExecutable("xdotool", PATH_DIRS),
};

describe("the Spare tray app, end to end", { timeout: 20 * 60_000 }, () => {
  let xvfb;
  let display;
  let updateServer;
  const updateDir = fs.mkdtempSync(path.join(os.tmpdir(), "spare-e2e-updates-"));
  const xvfbLog = path.join(os.tmpdir(), `spare-e2e-xvfb-${process.pid}.log`);
  const contexts = [];

  before(async () => {
    const missing = [];
    const need = (ok, what) => ok || missing.push(what);
    need(fs.existsSync(APP), `the app ${APP} (cargo build -p spare-app --features custom-protocol)`);
    need(fs.existsSync(CLI), `the CLI ${CLI} (cargo build -p spare)`);
    need(prerequisites.tauriDriver, "tauri-driver (cargo install --locked tauri-driver@2.0.6)");
    need(fs.existsSync(WEBKIT_DRIVER), `${WEBKIT_DRIVER} (apt: webkit2gtk-driver)`);
    need(prerequisites.xvfb, "Xvfb (apt: xvfb)");
    need(prerequisites.trayer, "trayer (apt: trayer)");
    need(prerequisites.xdotool, "xdotool (apt: xdotool)");
    need(fs.existsSync(DUNST_SERVICE), "dunst, a notification server (apt: dunst)");
    need(
      process.env.DBUS_SESSION_BUS_ADDRESS,
      "a private session bus with a keyring: run the tests through installers/with-keyring.sh",
    );
    if (missing.length > 0) {
      assert.fail(
        `missing for the end-to-end tests:\n  - ${missing.join("\n  - ")}\n` +
          "installers/dev-setup.sh installs the tools (apt packages and tauri-driver).",
      );
    }
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    ({ child: xvfb, display } = await startXvfb(xvfbLog));
    updateServer = await startUpdateServer(updateDir);
  });

  after(async () => {
    for (const context of contexts) await stopAll(context.home);
    if (xvfb && xvfb.exitCode === null) {
      xvfb.kill("SIGTERM");
      await waitFor("Xvfb to stop", () => xvfb.exitCode !== null || xvfb.signalCode !== null, {
        timeout: 10_000,
      }).catch(() => xvfb.kill("SIGKILL"));
    }
    for (const context of contexts) {
      if (!context.failed && !process.env.SPARE_E2E_KEEP) {
        fs.rmSync(context.home, { recursive: true, force: true });
      }
    }
    fs.rmSync(xvfbLog, { force: true });
    updateServer?.server.close();
    fs.rmSync(updateDir, { recursive: true, force: true });
  });

  it("the dashboard shows the node, pauses and resumes it, and saves settings", async () => {
    // Update checks on (the default), against the loopback release server.
    const context = await isolatedHome(display, "dashboard", { updates: { check: true, server: updateServer } });
    contexts.push(context);
    const { home, env, configFile } = context;
    // The app turns GTK's OpenGL and WebKitGTK's composited mode off unless the owner
    // chose (main.rs, lighter_graphics). In that mode WebKitWebDriver's screenshot command
    // never answers once the page has changed (the window itself repaints fine): this
    // test asks for both on (an empty GDK_GL is no flags), which the app honours. The
    // tray test runs the app with its own choice.
    env.WEBKIT_DISABLE_COMPOSITING_MODE = "0";
    env.GDK_GL = "";
    const driverLog = path.join(home, "tauri-driver.log");
    context.logs = [
      ["tauri-driver, WebKitWebDriver and the app (stdout and stderr)", driverLog],
      ["Xvfb", xvfbLog],
    ];
    const watch = (context.watch = new StatusWatch(env));
    // A screenshot of the window as it is, or scrolled to the top of the screen first.
    const shot = (session, name) => session.screenshot(path.join(SCREENSHOTS, `app-${name}.png`));
    const shotTop = async (session, name) => {
      await session.execute("window.scrollTo(0, 0);");
      await shot(session, name);
    };

    const step = stepper();
    await withDiagnostics(context, async () => {
      const base = await startDriver(env, driverLog);

      // 1. The dashboard opens on the Status screen and fills with demo work.
      step("the app starts");
      let session = await Session.create(base, ["--demo"], home);
      const [appPid] = await waitFor("the app's process", () => {
        const pids = appPids(home);
        return pids.length > 0 ? pids : null;
      });
      await session.waitForText("#status-heading", /^Status$/, { timeout: 120_000 });
      const windows = await xdotool(env, "search", "--onlyvisible", "--name", "^Spare$");
      assert.equal(windows.code, 0, "the dashboard window titled Spare is mapped on the display");

      const states = await resourceStates(session);
      const first = await watch.until("the node to answer spare status", (s) => s.gpu && s.bandwidth, 120_000);
      assert.equal(first.demo, true, "--demo runs the node in demo mode");
      assert.ok(["lending", "waiting", "paused"].includes(states.gpu.state), `GPU state ${states.gpu.state}`);
      assert.ok(["lending", "waiting", "paused"].includes(states.bandwidth.state));
      await session.waitForText('[data-testid="earned-today"] .tag-demo', /demo mode/);

      await watch.until(
        "demo work to be recorded (gpu.demo_today_micro + bandwidth.demo_today_micro > 0)",
        (s) => s.gpu.demo_today_micro + s.bandwidth.demo_today_micro > 0,
        240_000,
      );
      // Demo mode fills every screen within about a minute: both resources earn demo
      // credits (a GPU job every 15 s; relay sessions recorded as they go).
      const demo = await watch.until(
        "demo credits from both the GPU and bandwidth",
        (s) => s.gpu.demo_today_micro > 0 && s.bandwidth.demo_today_micro > 0,
        180_000,
      );
      await session.waitForText('[data-testid="gpu-demo-today"]', NONZERO, { timeout: 30_000 });
      await session.waitForText('[data-testid="bw-demo-today"]', NONZERO, { timeout: 30_000 });
      assert.equal(BigInt(demo.earned_today_micro), 0n, "demo work is never counted as earnings");
      assert.equal(BigInt(demo.gpu.earned_today_micro), 0n);
      assert.equal(BigInt(demo.bandwidth.earned_today_micro), 0n);
      await shotTop(session, "status");

      // "Why am I not earning?" (a card of the Status screen): the node's checks.
      step("diagnostics");
      await session.clickOn('//button[normalize-space()="Check now"]', "xpath");
      await session.waitFor('[data-testid="checks"] li', { timeout: 120_000 });
      const checks = await session.findAll('[data-testid="checks"] li');
      assert.ok(checks.length >= 3, `the diagnostics list its checks (${checks.length})`);
      await session.waitForText('#panel-status p[role="status"]', /checks? (passed|need you)/);
      await session.execute('document.getElementById("why-heading").scrollIntoView({block: "start"});');
      await shot(session, "diagnostics");

      // Earnings: demo work apart, with its demo credits.
      step("earnings");
      await selectTab(session, "Earnings");
      await session.waitFor('[data-testid="demo-apart"]');
      await session.waitForText('[data-testid="demo-credits"]', NONZERO, { timeout: 60_000 });
      // The demo's work fills a chart of its own, labelled demo credits, so a newcomer sees one.
      await session.waitFor('[data-testid="demo-chart"] rect.bar-gpu', { timeout: 60_000 });
      await shotTop(session, "earnings");

      // Ledger: the demo entries, signed receipts on network demo.
      step("ledger");
      await selectTab(session, "Ledger");
      await session.waitFor('[data-testid="ledger-table"] tbody tr.demo', { timeout: 60_000 });
      const cells = async (column) => {
        const texts = [];
        for (const cell of await session.findAll(`[data-testid="ledger-table"] tbody tr.demo > td:nth-child(${column})`)) {
          texts.push(await session.text(cell));
        }
        return texts;
      };
      const kinds = await cells(3);
      const networks = await cells(4);
      assert.ok(networks.every((n) => n.startsWith("demo")), `demo rows are on network demo: ${networks}`);
      assert.ok(kinds.includes("GPU job"), `a demo GPU job is listed: ${kinds}`);
      assert.ok(kinds.includes("Relay session"), `a demo relay session is listed: ${kinds}`);
      await shotTop(session, "ledger");

      // Logs: the app's own log file in the OS log folder, read back by the real app.
      step("logs");
      const logFolder = path.join(home, ".local/state/spare/logs");
      await selectTab(session, "Logs");
      await session.waitForText('[data-testid="log-folder"]', new RegExp(`^${logFolder}$`));
      await session.waitForText('[data-testid="log-table"] tbody', /node started in demo mode/, { timeout: 30_000 });
      await session.waitForText('[data-testid="log-table"] tbody', /GPU job recorded/, { timeout: 60_000 });
      assert.ok(fs.existsSync(path.join(logFolder, "app.log")), `the app writes ${logFolder}/app.log`);
      await shotTop(session, "logs");

      // 2. Pause the GPU from the Status screen, then resume it.
      step("pause and resume");
      await selectTab(session, "Status");
      await session.clickOn('[data-testid="gpu-card"] button[aria-label="Pause GPU: 1 hour"]');
      await session.waitFor('#gpu-state[data-state="paused"]', { timeout: 30_000 });
      const pausedReason = await session.text(await session.find("#gpu-state"));
      assert.match(pausedReason, /by you until/, `the GPU shows paused by you: ${pausedReason}`);
      await session.waitFor('//article[@data-testid="gpu-card"]//button[normalize-space()="Resume GPU"]', {
        using: "xpath",
      });
      const paused = await watch.until(
        "spare status to show the GPU paused by you",
        (s) => s.gpu.state === "paused" && s.gpu.paused_by_you_until !== null,
        10_000,
      );
      assert.equal(paused.bandwidth.paused_by_you_until, null, "only the GPU was paused");
      await shotTop(session, "status-paused");

      await session.clickOn('//article[@data-testid="gpu-card"]//button[normalize-space()="Resume GPU"]', "xpath");
      await waitFor(
        "the Resume GPU button to go",
        async () =>
          (await session.findAll('//article[@data-testid="gpu-card"]//button[normalize-space()="Resume GPU"]', "xpath"))
            .length === 0,
      );
      const resumedText = await session.text(await session.find("#gpu-state"));
      assert.doesNotMatch(resumedText, /by you/, `the GPU is no longer paused by you: ${resumedText}`);
      const resumed = await watch.until(
        "spare status to show the owner's GPU pause gone",
        (s) => s.gpu.paused_by_you_until === null,
        10_000,
      );
      assert.ok(
        resumed.gpu.state !== "paused" || !/^by you/.test(resumed.gpu.reason ?? ""),
        `GPU after resume: ${resumed.gpu.state} (${resumed.gpu.reason})`,
      );

      // 3. Settings. Start at login applies at once: the checkbox writes the XDG autostart
      // entry (which starts the app minimized) and removes it again.
      step("start at login");
      await selectTab(session, "Settings");
      const autostartDir = path.join(env.XDG_CONFIG_HOME, "autostart");
      const autostartFile = path.join(autostartDir, "Spare.desktop");
      const desktopFiles = () => {
        try {
          return fs.readdirSync(autostartDir).filter((name) => name.endsWith(".desktop"));
        } catch {
          return [];
        }
      };
      // The checkbox is disabled until autostart_get has answered.
      const loginBox = "#start-at-login:not([disabled])";
      const loginError = () =>
        session.execute(`
          const notice = document.getElementById("start-at-login")?.closest(".card")?.querySelector('[role="alert"]');
          return notice ? notice.textContent : null;
        `);
      // What the checkbox shows, waiting for it to show `want`, then again once the
      // screen is opened afresh (it asks autostart_get again).
      const loginShows = async (want, why) => {
        await waitFor(`the start-at-login checkbox to show ${want ? "on" : "off"} (${why})`, async () => {
          const error = await loginError();
          if (error) throw new Error(`the start-at-login card shows an error: ${error}`);
          return (await session.property(await session.waitFor(loginBox), "checked")) === want;
        }, { timeout: 10_000 });
        await selectTab(session, "Status");
        await selectTab(session, "Settings");
        const reread = await session.property(await session.waitFor(loginBox), "checked");
        assert.equal(reread, want, `the start-at-login checkbox shows ${want ? "on" : "off"} when Settings opens again (${why})`);
      };
      assert.deepEqual(desktopFiles(), [], `no autostart entry in a fresh home (${autostartDir})`);
      const defaultDir = path.join(home, ".config/autostart");
      await loginShows(false, "a fresh home");

      await session.clickOn(loginBox);
      await waitFor(
        `${autostartFile} to be written`,
        () => {
          if (fs.existsSync(autostartFile)) return true;
          const others = desktopFiles();
          if (others.length > 0) throw new Error(`start at login wrote ${others.join(", ")} instead`);
          return false;
        },
        { timeout: 10_000, interval: 200 },
      );
      const entry = fs.readFileSync(autostartFile, "utf8");
      const exec = /^Exec=(.*)$/m.exec(entry)?.[1];
      assert.ok(exec, `the autostart entry has an Exec= line:\n${entry}`);
      assert.match(exec, /(^|\s)--minimized(\s|$)/, `the autostart entry starts the app minimized:\n${entry}`);
      assert.equal(exec.split(/\s+/)[0], fs.realpathSync(APP), `the autostart entry runs this app:\n${entry}`);
      assert.match(entry, /^Type=Application$/m, `the autostart entry is an application:\n${entry}`);
      assert.ok(!fs.existsSync(defaultDir), `nothing is written to ${defaultDir} when XDG_CONFIG_HOME is elsewhere`);
      assert.doesNotMatch(entry, /^(Hidden=true|X-GNOME-Autostart-enabled=false)$/m, `the entry is not disabled:\n${entry}`);
      await loginShows(true, "after turning it on");

      await session.clickOn(loginBox);
      await waitFor(`${autostartFile} to be removed`, () => !fs.existsSync(autostartFile), {
        timeout: 10_000,
        interval: 200,
      }).catch((e) => {
        const left = fs.existsSync(autostartFile) ? fs.readFileSync(autostartFile, "utf8") : "";
        throw new Error(`${e.message}; it reads:\n${left}`);
      });
      assert.deepEqual(desktopFiles(), [], "no autostart entry is left");
      await loginShows(false, "after turning it off");

      // A new idle threshold is saved to the config file.
      step("settings");
      const idleField = "#field-lending-idle_minutes";
      const before = await session.property(await session.waitFor(idleField), "value");
      const idle = before === "7" ? "9" : "7";
      await session.fill(idleField, idle);
      await session.clickOn('form button[type="submit"]');
      await session.waitForText('[data-testid="save-status"]', /^Saved\./, { timeout: 60_000 });
      assert.deepEqual(await session.findAll('form [role="alert"]'), [], "no error after saving");
      const saved = fs.readFileSync(configFile, "utf8");
      assert.match(saved, new RegExp(`^idle_minutes = ${idle}$`, "m"), `config.toml:\n${saved}`);
      assert.match(saved, new RegExp(`^port = ${context.relayPort}$`, "m"), "the relay port is kept");
      await watch.until("the node to run again with the new settings", (s) => s.gpu && s.bandwidth, 60_000);
      await shotTop(session, "settings");

      // 4. Errors render: a value out of range is refused next to its field, nothing saved.
      step("refusals");
      const dutyField = "#field-gpu-max_duty_cycle_percent";
      await session.fill(dutyField, "150");
      await session.clickOn('form button[type="submit"]');
      const refusal = await session.waitForText(`${dutyField}-error`, /150 is out of range: allowed 1 to 100/);
      assert.ok(refusal);
      assert.equal(await session.attribute(await session.find(dutyField), "aria-invalid"), "true");
      await session.waitForText('[data-testid="save-status"]', /1 value was refused/);
      assert.equal(fs.readFileSync(configFile, "utf8"), saved, "a refused value changes nothing on disk");
      await session.execute(`document.querySelector(arguments[0]).closest("fieldset").scrollIntoView();`, [dutyField]);
      await shot(session, "settings-refused");

      // The node refuses it too when the dashboard's own check is bypassed.
      const direct = await session.executeAsync(`
        const done = arguments[arguments.length - 1];
        const invoke = window.__TAURI_INTERNALS__.invoke;
        invoke("settings_get")
          .then((config) => {
            config.gpu.max_duty_cycle_percent = 150;
            return invoke("settings_set", { config });
          })
          .then((saved) => done({ saved }), (refused) => done({ refused }));
      `);
      assert.ok(direct.refused, `the node saved a duty cycle of 150: ${JSON.stringify(direct)}`);
      assert.equal(direct.refused.code, "invalid_settings", JSON.stringify(direct.refused));
      assert.deepEqual(
        direct.refused.problems.map((p) => p.key),
        ["gpu.max_duty_cycle_percent"],
      );
      assert.equal(fs.readFileSync(configFile, "utf8"), saved, "the node wrote nothing");

      // A save the node cannot write (a folder where its temporary file goes) shows the
      // node's error, and nothing changes on disk.
      const blocker = `${configFile.slice(0, -".toml".length)}.toml.partial`;
      fs.mkdirSync(blocker);
      try {
        await session.fill(dutyField, "55");
        await session.clickOn('form button[type="submit"]');
        const notice = await session.waitFor('form [role="alert"][data-error-code="io_error"]', { timeout: 30_000 });
        assert.match(await session.text(notice), /could not be read or written/);
        assert.doesNotMatch(
          await session.text(await session.find('[data-testid="save-status"]')),
          /Saved/,
          "a failed save does not say Saved",
        );
        assert.equal(fs.readFileSync(configFile, "utf8"), saved, "a failed save changes nothing on disk");
      } finally {
        fs.rmSync(blocker, { recursive: true, force: true });
      }

      // 5. Updates. The app asked the release server on its own soon after it started
      // (checks are on); Check now shows what is on offer; Install downloads the package
      // and refuses it, since Spare's release key did not sign it: nothing changes.
      step("updates");
      assert.ok(updateServer.asked("dashboard", "latest.json") >= 1, "the app checked for updates by itself at start");
      await session.clickOn("#update-check");
      const offer = await session.waitForText("#update-result", /Spare 99\.0\.0 is available/, { timeout: 60_000 });
      assert.ok(offer);
      await session.waitForText("#update-result", /Faster relay/);
      await session.execute('document.getElementById("update-check").scrollIntoView({block: "center"});');
      await shot(session, "settings-update");
      await session.clickOn("#update-install");
      const refused = await session.waitFor('[role="alert"][data-error-code="update_error"]', { timeout: 60_000 });
      assert.match(await session.text(refused), /not signed with Spare's release key/);
      assert.ok(updateServer.asked("dashboard", updateServer.package) >= 1, "the package was downloaded, then refused");
      assert.ok(alive(appPid), "the app still runs after refusing the update");
      const unchanged = await watch.until("the node to still answer", (s) => s.gpu && s.bandwidth, 10_000);
      assert.equal(unchanged.demo, true);

      // Settings persist across a restart: end the session (the app quits), start again.
      step("restart");
      await session.delete().catch((e) => console.error(`# deleting the session: ${e.message}`));
      const quit = await waitFor("the app to quit when its session ends", () => !alive(appPid), {
        timeout: 30_000,
      }).catch(() => false);
      if (!quit) {
        console.error(`# the app (pid ${appPid}) was still running after its session ended; SIGTERM`);
        signal(appPid, "SIGTERM");
        await waitFor("the app to stop after SIGTERM", () => !alive(appPid), { timeout: 20_000 });
      }
      await waitFor("the old node's control socket to close", async () => (await spareStatus(env)).error, {
        timeout: 20_000,
      });

      session = await Session.create(base, ["--demo"], home);
      await session.waitForText("#status-heading", /^Status$/, { timeout: 120_000 });
      await selectTab(session, "Settings");
      const reopened = await session.property(await session.waitFor(idleField), "value");
      assert.equal(reopened, idle, "the idle threshold saved before the restart is shown");
      assert.equal(await session.property(await session.find(dutyField), "value"), "60", "the refused values were not kept");
      await session.delete().catch(() => {});
    });
  });

  it("the tray menu pauses and resumes the GPU and quits", async () => {
    // Update checks off: the app must not ask the release server anything.
    const context = await isolatedHome(display, "tray", { updates: { check: false, server: updateServer } });
    contexts.push(context);
    const { home, env, appLog } = context;
    const trayerLog = path.join(home, "trayer.log");
    context.logs = [
      ["the app (stdout and stderr)", appLog],
      ["trayer", trayerLog],
      ["Xvfb", xvfbLog],
    ];
    const watch = (context.watch = new StatusWatch(env));

    const step = stepper();
    await withDiagnostics(context, async () => {
      const { windows: trayerWindows } = await startTrayer(env, trayerLog);

      const alog = fs.openSync(appLog, "a");
      const app = spawn(APP, ["--demo", "--minimized"], { env, stdio: ["ignore", alog, alog] });
      fs.closeSync(alog);
      const exited = new Promise((resolve) => app.once("exit", (code, sig) => resolve({ code, signal: sig })));
      await watch.until("the app's node to answer spare status", (s) => s.gpu && s.bandwidth, 120_000);
      // The app's set-up starts its update timer before its node can answer.
      const updateTimerStarted = Date.now();

      const { openMenu, keys } = await trayMenu(env, trayerWindows, app.pid);

      // Pause GPU ▸ For 1 hour.
      step("tray: pause");
      await openMenu();
      await keys("Down", "Right");
      await sleep(500);
      if (fs.existsSync(IMPORT)) {
        const shot = await run(IMPORT, ["-window", "root", path.join(SCREENSHOTS, "tray-menu.png")], { env });
        if (shot.code !== 0) console.error(`# import failed: ${shot.stderr}`);
      }
      await keys("Return");
      await watch.until(
        "the tray's Pause GPU ▸ For 1 hour to pause the GPU",
        (s) => s.gpu.state === "paused" && s.gpu.paused_by_you_until !== null,
        10_000,
      );

      // Resume (the fourth enabled item while something is paused). The tray enables it
      // when the new status reaches it, so a try that lands elsewhere is retried.
      step("tray: resume");
      let resumed = false;
      for (let attempt = 0; attempt < 3 && !resumed; attempt++) {
        await openMenu();
        await keys("Down", "Down", "Down", "Down", "Return");
        resumed = await watch
          .until("the tray's Resume to end the pause", (s) => s.gpu.paused_by_you_until === null, 10_000)
          .then(() => true, () => false);
        // A miss opened the dashboard (Open dashboard): hide it again.
        if (!resumed) await keys("Escape");
      }
      assert.ok(resumed, `the tray's Resume ended the pause: ${JSON.stringify(watch.last?.gpu)}`);

      // A second launch finds the running app over D-Bus (tauri-plugin-single-instance),
      // hands over and exits 0. Launched as at login (--minimized) it leaves the running
      // app in the tray; launched from the desktop's menu (no options) the running app
      // opens its dashboard, which it did not open at start (--minimized).
      step("single instance");
      const node = await watch.until("the node to answer before the second launch", (s) => s.node_id, 10_000);
      const spareWindows = async (...flags) =>
        (await xdotool(env, "search", ...flags, "--name", "^Spare$")).stdout.trim().split("\n").filter(Boolean);
      const windowsBefore = await spareWindows();
      assert.deepEqual(await spareWindows("--onlyvisible"), [], "no dashboard is shown before the second launch");
      const secondLog = path.join(home, "second-launch.log");
      context.logs.push(["the second launches", secondLog]);
      const launchAgain = async (args) => {
        const slog = fs.openSync(secondLog, "a");
        const second = spawn(APP, args, { env, stdio: ["ignore", slog, slog] });
        fs.closeSync(slog);
        const end = await Promise.race([
          new Promise((resolve) => second.once("exit", (code, sig) => resolve({ code, signal: sig }))),
          sleep(15_000).then(() => null),
        ]);
        if (!end) signal(second.pid, "SIGKILL");
        assert.ok(end, `the second launch (${args.join(" ") || "no options"}) exited by itself within 15 s`);
        assert.deepEqual(end, { code: 0, signal: null }, "the second launch exits with status 0");
      };
      await launchAgain(["--minimized"]);
      // The running app has had the hand-over; give a window 3 s to show, as it would.
      await sleep(3_000);
      assert.deepEqual(await spareWindows("--onlyvisible"), [], "a second launch as at login shows no dashboard");
      assert.deepEqual(appPids(home), [app.pid], "one app runs after the second launch as at login");
      const launched = Date.now();
      await launchAgain([]);
      const handedOver = Date.now();
      const dashboard = await waitFor(
        "the running app to show its dashboard (a visible window named Spare)",
        async () => (await spareWindows("--onlyvisible")).find((id) => !windowsBefore.includes(id)),
        { timeout: 30_000, interval: 500 },
      );
      console.error(
        `# the second launch exited 0 after ${((handedOver - launched) / 1000).toFixed(1)} s; ` +
          `the dashboard (window ${dashboard}) showed ${((Date.now() - handedOver) / 1000).toFixed(1)} s later`,
      );
      const owner = (await xdotool(env, "getwindowpid", dashboard)).stdout.trim();
      assert.equal(owner, String(app.pid), "the dashboard is the first app's window");
      assert.deepEqual(appPids(home), [app.pid], "one app runs, the first one");
      const still = await watch.until("the node to answer after the second launch", (s) => s.node_id, 10_000);
      assert.equal(still.node_id, node.node_id, "the same node answers after the second launch");
      assert.equal(still.demo, true, "the node still runs in demo mode");

      // An app that checks for updates does so 5 s after its set-up (updates.rs): this one,
      // with checks off, has run past that before it quits, and asked nothing (below).
      await sleep(Math.max(0, updateTimerStarted + 6_000 - Date.now()));

      // Quit Spare (the last item), with the dashboard open.
      step("tray: quit");
      await openMenu();
      await keys("End", "Return");
      const end = await Promise.race([exited, sleep(10_000).then(() => null)]);
      assert.ok(end, "the app quit within 10 s of Quit Spare");
      assert.deepEqual(end, { code: 0, signal: null }, "the app exits with status 0");
      const after = await spareStatus(env);
      assert.ok(after.error, "no node answers after quitting");
      assert.equal(updateServer.asked("tray", "latest.json"), 0, "with update checks off, the app asked nothing");
    });
  });

  it("notifies the owner through the desktop's notification server when the node key cannot be read", async () => {
    const context = await isolatedHome(display, "notify", { updates: { check: false, server: updateServer } });
    contexts.push(context);
    const { home, env, appLog } = context;
    // A session bus of its own with a real notification server (dunst, started by D-Bus
    // activation when the app first notifies, showing its popups on the test display) and
    // no Secret Service, so the node cannot read its key (attention.rs: "keyring").
    const busLog = path.join(home, "dbus.log");
    const monitorLog = path.join(home, "dbus-monitor.log");
    context.logs = [
      ["the app (stdout and stderr)", appLog],
      ["trayer", path.join(home, "trayer.log")],
      ["the session bus and dunst", busLog],
      ["the notification calls on the bus (dbus-monitor)", monitorLog],
      ["Xvfb", xvfbLog],
    ];
    const services = path.join(home, "dbus-services");
    fs.mkdirSync(services);
    fs.copyFileSync(DUNST_SERVICE, path.join(services, path.basename(DUNST_SERVICE)));
    const socket = path.join(home, "bus");
    fs.writeFileSync(
      path.join(home, "bus.conf"),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>${services}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`,
    );
    env.DBUS_SESSION_BUS_ADDRESS = `unix:path=${socket}`;
    const step = stepper();
    await withDiagnostics(context, async () => {
      const blog = fs.openSync(busLog, "a");
      spawn("dbus-daemon", ["--nofork", `--config-file=${path.join(home, "bus.conf")}`], {
        env,
        stdio: ["ignore", blog, blog],
      });
      fs.closeSync(blog);
      await waitFor("the session bus's socket", () => fs.existsSync(socket), { timeout: 10_000 });
      const mlog = fs.openSync(monitorLog, "a");
      spawn("dbus-monitor", ["--address", env.DBUS_SESSION_BUS_ADDRESS, "interface='org.freedesktop.Notifications'"], {
        env,
        stdio: ["ignore", mlog, mlog],
      });
      fs.closeSync(mlog);
      await waitFor("dbus-monitor to watch the bus", () => fs.readFileSync(monitorLog, "utf8").includes("NameAcquired"), {
        timeout: 10_000,
      });

      const { windows: trayerWindows } = await startTrayer(env, path.join(home, "trayer.log"));

      step("notify: the app starts without a keyring");
      const alog = fs.openSync(appLog, "a");
      const app = spawn(APP, ["--minimized"], { env, stdio: ["ignore", alog, alog] });
      fs.closeSync(alog);
      const call = await waitFor(
        "the app to send a desktop notification (a Notify call on the session bus)",
        // The whole call: its last argument is the expiry timeout, an int32.
        () => fs.readFileSync(monitorLog, "utf8").match(/member=Notify\n[\s\S]*?\n\s+int32 -?\d+\n/)?.[0],
        { timeout: 60_000 },
      );
      assert.match(call, /string "Spare needs its key"/, "the notification's title names the problem");
      assert.match(call, /string "Spare cannot read its node key, so nothing is lent\. Open Spare's dashboard for the cause and the fix/, "the notification's body says what it means and where the fix is");
      // dunst took it and shows it: its popup is a window on the display.
      await waitFor(
        "dunst's popup on the display",
        async () => (await xdotool(env, "search", "--onlyvisible", "--class", "Dunst")).code === 0,
        { timeout: 15_000 },
      );
      if (fs.existsSync(IMPORT)) {
        await run(IMPORT, ["-window", "root", path.join(SCREENSHOTS, "notification.png")], { env });
      }
      // One notification per cause: the node stays down, and no second one comes.
      await sleep(3_000);
      const notifyCalls = () => fs.readFileSync(monitorLog, "utf8").split("member=Notify").length - 1;
      assert.equal(notifyCalls(), 1, "the owner is notified once while the cause lasts");
      // The tray's "Start the node again" (enabled only now; the item above Open dashboard
      // and Quit) tries again: the key is still unreadable, so the app says so once more,
      // and the owner, who asked, is told again.
      step("notify: the tray's Start the node again, with no keyring yet");
      const failures = () => fs.readFileSync(appLog, "utf8").split("the node did not start:").length - 1;
      assert.equal(failures(), 1);
      const { openMenu, keys } = await trayMenu(env, trayerWindows, app.pid);
      await openMenu();
      await keys("End", "Up", "Up", "Return");
      await waitFor("the tray's Start the node again to try once more", () => failures() === 2, { timeout: 15_000 });
      await waitFor("a second notification after the owner's try", () => notifyCalls() === 2, { timeout: 15_000 });

      assert.equal(app.exitCode, null, "the app keeps running (in the tray) without its node");
      assert.deepEqual(appPids(home), [app.pid], "one app runs");
      assert.match(fs.readFileSync(appLog, "utf8"), /the node did not start: Spare cannot read its node key/);

      // The owner unlocks a keyring, then opens Spare again: the running app starts its
      // node (as its dashboard's "Start the node again" does, through the same call).
      step("notify: a keyring appears; a second launch starts the node");
      const keyring = spawn("gnome-keyring-daemon", ["--unlock", "--components=secrets"], {
        env: { ...env, XDG_DATA_HOME: path.join(home, "keyring") },
        stdio: ["pipe", "ignore", "ignore"],
      });
      keyring.stdin.end("spare-test");
      await waitFor("gnome-keyring-daemon to unlock", () => keyring.exitCode === 0, { timeout: 15_000 });
      const slog = fs.openSync(path.join(home, "second-launch.log"), "a");
      const second = spawn(APP, ["--minimized"], { env, stdio: ["ignore", slog, slog] });
      fs.closeSync(slog);
      await new Promise((resolve) => second.once("exit", resolve));
      const started = await waitFor(
        "the running app's node to start and answer spare status",
        async () => (await spareStatus(env)).node_id,
        { timeout: 60_000 },
      );
      assert.match(started, /\S/, "the node has an id");
      assert.deepEqual(appPids(home), [app.pid], "the first app runs the node");
    });
  });

  // Run by installers/test-deb.sh --debug, with SPARE_APP=/usr/bin/spare-app: a package it
  // built with SPARE_UPDATE_KEY's public key as the release key is installed, and the same
  // package, signed with that key as version SPARE_UPDATE_VERSION, is the update on offer.
  const installed = process.env.SPARE_UPDATE_KEY && process.env.SPARE_UPDATE_PACKAGE;
  it(
    "an installed package updates itself when the owner clicks Install, and restarts",
    { skip: !installed && "needs the package installed by installers/test-deb.sh --debug" },
    async () => {
      const version = process.env.SPARE_UPDATE_VERSION ?? "0.1.1";
      const releaseDir = fs.mkdtempSync(path.join(os.tmpdir(), "spare-e2e-release-"));
      const release = await startUpdateServer(releaseDir, {
        version,
        pkg: process.env.SPARE_UPDATE_PACKAGE,
        key: process.env.SPARE_UPDATE_KEY,
      });
      const context = await isolatedHome(display, "installed", { updates: { check: false, server: release } });
      contexts.push(context);
      const { home, env } = context;
      env.WEBKIT_DISABLE_COMPOSITING_MODE = "0";
      env.GDK_GL = "";
      const driverLog = path.join(home, "tauri-driver.log");
      context.logs = [["tauri-driver, WebKitWebDriver and the app", driverLog]];
      const watch = (context.watch = new StatusWatch(env));
      const step = stepper();
      try {
        await withDiagnostics(context, async () => {
          const base = await startDriver(env, driverLog);
          step("the installed app starts");
          const session = await Session.create(base, [], home);
          const oldPid = await waitFor("the app's process", () => appPids(home)[0]);
          const first = await watch.until("the node to answer", (s) => s.node_id, 120_000);
          await selectTab(session, "Settings");
          await session.clickOn("#update-check");
          await session.waitForText("#update-result", new RegExp(`Spare ${version.replaceAll(".", "\\.")} is available`), {
            timeout: 60_000,
          });
          const replacedBefore = fs.statSync(APP).ctimeMs;

          step("install");
          await session.clickOn("#update-install");
          await waitFor("the package to be downloaded", () => release.asked("installed", release.package) >= 1, {
            timeout: 60_000,
          });
          // dpkg replaces the binary (through pkexec or sudo), then the app restarts into it.
          await waitFor("dpkg to replace the app's binary", () => fs.statSync(APP).ctimeMs > replacedBefore, {
            timeout: 120_000,
          });
          const [newPid] = await waitFor(
            "the updated app to start in the old one's place",
            () => {
              const pids = appPids(home).filter((pid) => pid !== oldPid);
              return pids.length > 0 && !alive(oldPid) ? pids : null;
            },
            { timeout: 120_000 },
          );
          assert.notEqual(newPid, oldPid);
          await waitFor("the updated app's node to answer", async () => {
            const status = await spareStatus(env);
            return status.node_id === first.node_id ? status : null;
          }, { timeout: 120_000 });
          await session.delete().catch(() => {});
        });
      } finally {
        release.server.close();
        fs.rmSync(releaseDir, { recursive: true, force: true });
      }
    },
  );
});

// If the runner is stopped mid-test, leave nothing running.
process.on("exit", () => {
  for (const home of homes) {
    for (const pid of pidsWithHome(home)) signal(pid, "SIGKILL");
  }
});
