// The browser tests' harness: a static server for the e2e build and Debian's Chromium
// driven by playwright-core. Plain Node (runs on Node 18), no test framework of its own.

import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const UI_DIR = fileURLToPath(new URL("..", import.meta.url));
export const E2E_DIST = join(UI_DIR, "dist-e2e");
export const APP_DIST = join(UI_DIR, "dist");
export const SCREENSHOTS = join(UI_DIR, "screenshots");

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** Serves `root` on 127.0.0.1 at a free port; resolves to { url, close }. */
export async function serve(root) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = normalize(join(root, path === "/" ? "index.html" : path));
    if (!file.startsWith(root + sep) || !(await stat(file).catch(() => null))?.isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(await readFile(file));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) };
}

export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium (installers/dev-setup.sh does), or set CHROMIUM`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * Opens the dashboard in a fresh context. `mock` becomes `window.__SPARE_MOCK__` before
 * the app loads (the initial status, failing commands, fixture variants).
 */
export async function openApp(browser, url, { mock = {}, colorScheme = "light" } = {}) {
  const context = await browser.newContext({
    viewport: { width: 1100, height: 800 },
    colorScheme,
    reducedMotion: "reduce",
    timezoneId: "Europe/Paris",
    locale: "en-GB",
  });
  // Short waits: every fixture is local, so anything slower than this is a failure.
  context.setDefaultTimeout(5_000);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.on("console", (m) => m.type() === "error" && errors.push(new Error(m.text())));
  await page.addInitScript((options) => {
    window.__SPARE_MOCK__ = options;
  }, mock);
  await page.goto(url);
  await page.waitForSelector('[role="tablist"]');
  return { page, context, errors };
}

/** Calls of `cmd` recorded by the mocked IPC, with their arguments. */
export function callsOf(page, cmd) {
  return page.evaluate((c) => window.spareMock.callsOf(c), cmd);
}

export async function selectTab(page, name) {
  await page.getByRole("tab", { name }).click();
  await page.waitForSelector(`#panel-${name.toLowerCase()}`);
}
