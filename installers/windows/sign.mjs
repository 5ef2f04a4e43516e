// Signs one Windows file (.exe, .dll or .msi) with Spare's code-signing certificate.
// Tauri runs it for every file it signs while bundling, as `bundle.windows.signCommand`
// ({"cmd": "node", "args": ["../installers/windows/sign.mjs", "%1"]}); by hand:
//   WINDOWS_CERTIFICATE=<base64 PFX> WINDOWS_CERTIFICATE_PASSWORD=... node installers/windows/sign.mjs FILE
// On Windows it runs signtool.exe, elsewhere osslsigncode. Secrets come from the
// environment only; the PFX lives in a private temporary folder while signing and is
// deleted after. With no certificate it leaves the file unsigned and exits 0, unless
// SPARE_REQUIRE_SIGNING=1 (the release workflow), where that is an error.
// Tauri shows this script's output only when run with `tauri build --verbose`.
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** A public RFC 3161 timestamp server; a timestamped signature outlives its certificate. */
export const DEFAULT_TIMESTAMP_URL = "http://timestamp.digicert.com";
/** The description Windows shows in its prompts for a signed file. */
export const DESCRIPTION = "Spare";
const HOW_TO_SIGN =
  "set WINDOWS_CERTIFICATE to the base64 of a code-signing PFX and WINDOWS_CERTIFICATE_PASSWORD " +
  "to its password (installers/windows/README.md, \"Signing\")";
const ATTEMPTS = 3;

/**
 * What to do, from the environment alone: `{ kind: "skip", message }`,
 * `{ kind: "fail", message }` or `{ kind: "sign", tool, pfx, password, timestampUrl }`
 * (`pfx` a Buffer, `timestampUrl` null for no timestamp).
 */
export function planSigning(env, platform) {
  const required = env.SPARE_REQUIRE_SIGNING ?? "";
  if (!["", "0", "1"].includes(required)) {
    return fail(`SPARE_REQUIRE_SIGNING is ${JSON.stringify(required)}: set it to 1 (signing required) or 0`);
  }
  const certificate = (env.WINDOWS_CERTIFICATE ?? "").replace(/\s+/g, "");
  const password = env.WINDOWS_CERTIFICATE_PASSWORD ?? "";

  if (certificate === "") {
    if (required === "1") {
      const missing = ["WINDOWS_CERTIFICATE"];
      if (password === "") missing.push("WINDOWS_CERTIFICATE_PASSWORD");
      return fail(`SPARE_REQUIRE_SIGNING=1 but ${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} not set: ${HOW_TO_SIGN}`);
    }
    return { kind: "skip", message: `WINDOWS_CERTIFICATE is not set; to sign, ${HOW_TO_SIGN}` };
  }
  if (password === "") {
    return fail(
      "WINDOWS_CERTIFICATE is set but WINDOWS_CERTIFICATE_PASSWORD is not: set it to the PFX's " +
        "password (export the PFX with a password if it has none)",
    );
  }
  const pfx = Buffer.from(certificate, "base64");
  // Node's decoder skips characters that are not base64, so the pattern is what rejects
  // a path; a PFX is DER and starts with a SEQUENCE tag, which rejects a PEM or other text.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(certificate) || pfx.length < 64 || pfx[0] !== 0x30) {
    return fail(
      "WINDOWS_CERTIFICATE is not a base64-encoded PFX file: encode the .pfx itself, e.g. " +
        "`base64 -w0 cert.pfx` (Linux), `base64 -i cert.pfx` (macOS) or " +
        "`[Convert]::ToBase64String([IO.File]::ReadAllBytes('cert.pfx'))` (PowerShell)",
    );
  }

  const timestamp = env.WINDOWS_TIMESTAMP_URL || DEFAULT_TIMESTAMP_URL;
  let timestampUrl = null;
  if (timestamp === "none") {
    if (required === "1") {
      return fail(
        "WINDOWS_TIMESTAMP_URL=none but SPARE_REQUIRE_SIGNING=1: a release's signature must be " +
          "timestamped, or it stops being valid when the certificate expires; unset WINDOWS_TIMESTAMP_URL",
      );
    }
  } else if (/^https?:\/\/[^\s/]+/.test(timestamp)) {
    timestampUrl = timestamp;
  } else {
    return fail(
      `WINDOWS_TIMESTAMP_URL is ${JSON.stringify(timestamp)}: set it to an RFC 3161 timestamp ` +
        `server's http(s) URL, or unset it for ${DEFAULT_TIMESTAMP_URL}`,
    );
  }

  const tool = platform === "win32" ? "signtool" : "osslsigncode";
  return { kind: "sign", tool, pfx, password, timestampUrl };
}

function fail(message) {
  return { kind: "fail", message };
}

/**
 * signtool.exe: `TAURI_WINDOWS_SIGNTOOL_PATH` (the variable Tauri's bundler reads too),
 * else the newest Windows 10/11 SDK's x64 signtool. `fs` is `{ exists, list }`.
 * Returns `{ path }` or `{ error }`.
 */
export function findSigntool(env, fs) {
  const given = env.TAURI_WINDOWS_SIGNTOOL_PATH;
  if (given) {
    return fs.exists(given)
      ? { path: given }
      : { error: `TAURI_WINDOWS_SIGNTOOL_PATH is ${given}, which does not exist: point it at signtool.exe or unset it` };
  }
  const bin = path.win32.join(env["ProgramFiles(x86)"] || "C:\\Program Files (x86)", "Windows Kits", "10", "bin");
  const versions = (fs.exists(bin) ? fs.list(bin) : [])
    .filter((name) => /^\d+(\.\d+)+$/.test(name))
    .sort(compareVersions)
    .reverse();
  // SDKs before 10.0.15063 kept signtool straight in bin\x64.
  for (const dir of [...versions.map((v) => path.win32.join(bin, v)), bin]) {
    const candidate = path.win32.join(dir, "x64", "signtool.exe");
    if (fs.exists(candidate)) return { path: candidate };
  }
  return {
    error:
      `signtool.exe not found under ${bin}: install the Windows SDK's "Signing Tools for Desktop ` +
      "Apps\", or set TAURI_WINDOWS_SIGNTOOL_PATH to signtool.exe",
  };
}

function compareVersions(a, b) {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i += 1) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** signtool's arguments: SHA-256 digest, RFC 3161 timestamp when there is a server. */
export function signtoolArgs({ pfxPath, password, timestampUrl, file }) {
  const args = ["sign", "/f", pfxPath, "/p", password, "/fd", "sha256", "/d", DESCRIPTION];
  if (timestampUrl) args.push("/tr", timestampUrl, "/td", "sha256");
  args.push(file);
  return args;
}

/** osslsigncode's arguments; the password is read from stdin (`-readpass -`). */
export function osslsigncodeArgs({ pfxPath, timestampUrl, file, out }) {
  const args = ["sign", "-pkcs12", pfxPath, "-readpass", "-", "-h", "sha256", "-n", DESCRIPTION];
  if (timestampUrl) args.push("-ts", timestampUrl);
  args.push("-in", file, "-out", out);
  return args;
}

/** `text` with every occurrence of `secret` replaced, so tool output can be shown. */
export function redact(text, secret) {
  return secret ? text.split(secret).join("***") : text;
}

function run(program, args, input) {
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ["pipe", "pipe", "pipe"], windowsHide: true });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", (error) => resolve({ code: null, error, output }));
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
  });
}

async function sign(plan, file) {
  let program;
  if (plan.tool === "signtool") {
    const found = findSigntool(process.env, {
      exists: existsSync,
      list: (dir) => readdirSync(dir),
    });
    if (found.error) return found.error;
    program = found.path;
  } else {
    program = "osslsigncode";
  }

  // mkdtemp makes the folder readable by this user only (0700 on Unix; the user's own
  // temp folder on Windows). It is removed however the script ends.
  const dir = mkdtempSync(path.join(tmpdir(), "spare-sign-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.on("exit", cleanup);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => process.exit(1));
  }
  try {
    const pfxPath = path.join(dir, "certificate.pfx");
    writeFileSync(pfxPath, plan.pfx, { mode: 0o600 });
    const out = path.join(dir, "signed");
    const args =
      plan.tool === "signtool"
        ? signtoolArgs({ pfxPath, password: plan.password, timestampUrl: plan.timestampUrl, file })
        : osslsigncodeArgs({ pfxPath, timestampUrl: plan.timestampUrl, file, out });
    const input = plan.tool === "signtool" ? "" : plan.password;

    // Timestamp servers fail now and then, so a timestamped signing is tried again; with
    // no server, a failure (a bad password, an expired certificate) is final.
    const attempts = plan.timestampUrl ? ATTEMPTS : 1;
    let last;
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      last = await run(program, args, input);
      if (last.error?.code === "ENOENT") {
        return plan.tool === "signtool"
          ? `cannot run ${program}: set TAURI_WINDOWS_SIGNTOOL_PATH to signtool.exe`
          : "osslsigncode not found: install it (apt install osslsigncode, brew install osslsigncode), or sign on Windows";
      }
      if (last.code === 0) break;
      if (attempt < attempts) await new Promise((r) => setTimeout(r, 5000 * attempt));
    }
    if (last.code !== 0) {
      const output = redact(last.output, plan.password).trim();
      const checks = ["WINDOWS_CERTIFICATE_PASSWORD opens the PFX", "the certificate is for code signing and not expired"];
      if (plan.timestampUrl) {
        checks.push(`${plan.timestampUrl} answers (WINDOWS_TIMESTAMP_URL picks another RFC 3161 server)`);
      }
      const times = attempts > 1 ? ` ${attempts} times` : "";
      const exit = last.code ?? last.error?.message;
      return `${plan.tool} failed${times} (exit ${exit}):\n${output}\nCheck that ${checks.join(", that ")}`;
    }
    if (plan.tool === "osslsigncode") copyFileSync(out, file);
    return null;
  } finally {
    cleanup();
  }
}

async function main(argv) {
  const say = (line) => console.log(`sign.mjs: ${line}`);
  const die = (line) => {
    console.error(`sign.mjs: ${line}`);
    process.exit(1);
  };
  if (argv.length !== 1) {
    die("usage: node installers/windows/sign.mjs FILE (Tauri passes the file as %1 of bundle.windows.signCommand)");
  }
  const file = path.resolve(argv[0]);
  const plan = planSigning(process.env, process.platform);
  if (plan.kind === "fail") die(plan.message);
  if (plan.kind === "skip") {
    say(`left ${file} unsigned: ${plan.message}`);
    return;
  }
  if (!existsSync(file)) die(`${file} does not exist: pass the path of the file to sign`);
  const error = await sign(plan, file);
  if (error) die(`could not sign ${file}: ${error}`);
  say(`signed ${file} (${plan.tool}${plan.timestampUrl ? `, timestamped by ${plan.timestampUrl}` : ", no timestamp"})`);
}

// Run as a script, not imported by the tests. Tauri names this file by a path of its own
// making (src-tauri\..\installers\...), so compare real paths, case-blind on Windows.
function isMain() {
  try {
    const a = realpathSync(process.argv[1] ?? "");
    const b = realpathSync(fileURLToPath(import.meta.url));
    return process.platform === "win32" ? a.toLowerCase() === b.toLowerCase() : a === b;
  } catch {
    return false;
  }
}

if (isMain()) await main(process.argv.slice(2));
