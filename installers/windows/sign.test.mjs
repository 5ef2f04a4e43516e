// Tests for sign.mjs: what it decides from the environment, the signing tools' argument
// lists, and the script run for real (unsigned, refused, and signing a small PE file with
// osslsigncode and a throwaway certificate where openssl and osslsigncode are installed).
// Run: node --test installers/windows/
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  DEFAULT_TIMESTAMP_URL,
  findSigntool,
  osslsigncodeArgs,
  planSigning,
  redact,
  signtoolArgs,
} from "./sign.mjs";

const script = fileURLToPath(new URL("./sign.mjs", import.meta.url));

// Bytes shaped like a PFX (a DER SEQUENCE); planSigning only looks at the outside.
const fakePfx = Buffer.concat([Buffer.from([0x30, 0x82, 0x09, 0xf0]), Buffer.alloc(300, 7)]);
const withCertificate = {
  WINDOWS_CERTIFICATE: fakePfx.toString("base64"),
  WINDOWS_CERTIFICATE_PASSWORD: "hunter2",
};

describe("planSigning", () => {
  test("no certificate: leaves the file unsigned and says how to sign", () => {
    const plan = planSigning({}, "win32");
    assert.equal(plan.kind, "skip");
    assert.match(plan.message, /WINDOWS_CERTIFICATE is not set/);
    assert.match(plan.message, /WINDOWS_CERTIFICATE_PASSWORD/);
    assert.equal(planSigning({ SPARE_REQUIRE_SIGNING: "0" }, "linux").kind, "skip");
  });

  test("SPARE_REQUIRE_SIGNING=1 with nothing set names both variables", () => {
    const plan = planSigning({ SPARE_REQUIRE_SIGNING: "1" }, "win32");
    assert.equal(plan.kind, "fail");
    assert.match(plan.message, /WINDOWS_CERTIFICATE and WINDOWS_CERTIFICATE_PASSWORD are not set/);
  });

  test("SPARE_REQUIRE_SIGNING=1 with only the password names only the certificate", () => {
    const plan = planSigning({ SPARE_REQUIRE_SIGNING: "1", WINDOWS_CERTIFICATE_PASSWORD: "x" }, "win32");
    assert.equal(plan.kind, "fail");
    assert.match(plan.message, /but WINDOWS_CERTIFICATE is not set/);
  });

  test("SPARE_REQUIRE_SIGNING takes 1 or 0, nothing else", () => {
    const plan = planSigning({ SPARE_REQUIRE_SIGNING: "yes", ...withCertificate }, "win32");
    assert.equal(plan.kind, "fail");
    assert.match(plan.message, /SPARE_REQUIRE_SIGNING is "yes"/);
  });

  test("a certificate without its password fails even when signing is optional", () => {
    const plan = planSigning({ WINDOWS_CERTIFICATE: withCertificate.WINDOWS_CERTIFICATE }, "win32");
    assert.equal(plan.kind, "fail");
    assert.match(plan.message, /WINDOWS_CERTIFICATE_PASSWORD is not/);
  });

  test("a path or a PEM in WINDOWS_CERTIFICATE is refused with how to encode the PFX", () => {
    for (const certificate of [
      "C:\\certs\\spare.pfx",
      Buffer.from(`-----BEGIN CERTIFICATE-----\n${"A".repeat(80)}\n`).toString("base64"),
      "MIIJ", // base64 of a DER start, but far too short to be a PFX
    ]) {
      const plan = planSigning({ ...withCertificate, WINDOWS_CERTIFICATE: certificate }, "win32");
      assert.equal(plan.kind, "fail", certificate);
      assert.match(plan.message, /not a base64-encoded PFX/);
      assert.match(plan.message, /base64 -w0 cert\.pfx/);
    }
  });

  test("signs with signtool on Windows and osslsigncode elsewhere, timestamped by default", () => {
    const windows = planSigning(withCertificate, "win32");
    assert.equal(windows.kind, "sign");
    assert.equal(windows.tool, "signtool");
    assert.deepEqual(windows.pfx, fakePfx);
    assert.equal(windows.password, "hunter2");
    assert.equal(windows.timestampUrl, DEFAULT_TIMESTAMP_URL);
    assert.equal(planSigning(withCertificate, "linux").tool, "osslsigncode");
    assert.equal(planSigning(withCertificate, "darwin").tool, "osslsigncode");
  });

  test("base64 wrapped over several lines (as `base64` writes it) is accepted", () => {
    const wrapped = withCertificate.WINDOWS_CERTIFICATE.replace(/(.{76})/g, "$1\n");
    assert.ok(wrapped.includes("\n"));
    const plan = planSigning({ ...withCertificate, WINDOWS_CERTIFICATE: wrapped }, "win32");
    assert.equal(plan.kind, "sign");
    assert.deepEqual(plan.pfx, fakePfx);
  });

  test("WINDOWS_TIMESTAMP_URL: another server, none, or a mistake", () => {
    const other = planSigning({ ...withCertificate, WINDOWS_TIMESTAMP_URL: "https://ts.example/rfc3161" }, "win32");
    assert.equal(other.timestampUrl, "https://ts.example/rfc3161");

    const none = planSigning({ ...withCertificate, WINDOWS_TIMESTAMP_URL: "none" }, "win32");
    assert.equal(none.kind, "sign");
    assert.equal(none.timestampUrl, null);

    const release = planSigning({ ...withCertificate, SPARE_REQUIRE_SIGNING: "1", WINDOWS_TIMESTAMP_URL: "none" }, "win32");
    assert.equal(release.kind, "fail");
    assert.match(release.message, /must be timestamped/);

    const typo = planSigning({ ...withCertificate, WINDOWS_TIMESTAMP_URL: "timestamp.digicert.com" }, "win32");
    assert.equal(typo.kind, "fail");
    assert.match(typo.message, /http\(s\) URL/);
  });
});

describe("findSigntool", () => {
  const kits = "C:\\Program Files (x86)\\Windows Kits\\10\\bin";
  const fakeFs = (files) => ({
    exists: (p) => files.some((f) => f === p || f.startsWith(`${p}\\`)),
    list: (dir) => [...new Set(files.filter((f) => f.startsWith(`${dir}\\`)).map((f) => f.slice(dir.length + 1).split("\\")[0]))],
  });

  test("TAURI_WINDOWS_SIGNTOOL_PATH wins, and must exist", () => {
    const fs = fakeFs(["D:\\tools\\signtool.exe", `${kits}\\10.0.22621.0\\x64\\signtool.exe`]);
    assert.deepEqual(findSigntool({ TAURI_WINDOWS_SIGNTOOL_PATH: "D:\\tools\\signtool.exe" }, fs), {
      path: "D:\\tools\\signtool.exe",
    });
    const missing = findSigntool({ TAURI_WINDOWS_SIGNTOOL_PATH: "D:\\nope.exe" }, fs);
    assert.match(missing.error, /TAURI_WINDOWS_SIGNTOOL_PATH is D:\\nope\.exe, which does not exist/);
  });

  test("the newest SDK by version number, skipping one without an x64 signtool", () => {
    const fs = fakeFs([
      `${kits}\\10.0.9200.0\\x64\\signtool.exe`,
      `${kits}\\10.0.19041.0\\x64\\signtool.exe`,
      `${kits}\\10.0.22621.0\\arm64\\signtool.exe`,
      `${kits}\\x86\\signtool.exe`,
    ]);
    // 10.0.22621.0 has no x64 signtool; 19041 beats 9200 as a number, not as text.
    assert.deepEqual(findSigntool({}, fs), { path: `${kits}\\10.0.19041.0\\x64\\signtool.exe` });
  });

  test("the old layout, bin\\x64, and ProgramFiles(x86) elsewhere", () => {
    const root = "E:\\Kits (x86)";
    const fs = fakeFs([`${root}\\Windows Kits\\10\\bin\\x64\\signtool.exe`]);
    assert.deepEqual(findSigntool({ "ProgramFiles(x86)": root }, fs), {
      path: `${root}\\Windows Kits\\10\\bin\\x64\\signtool.exe`,
    });
  });

  test("no SDK: says what to install", () => {
    assert.match(findSigntool({}, fakeFs([])).error, /Signing Tools for Desktop Apps.*TAURI_WINDOWS_SIGNTOOL_PATH/);
  });
});

describe("argument lists", () => {
  test("signtool: SHA-256, RFC 3161 timestamp, the file last", () => {
    assert.deepEqual(
      signtoolArgs({ pfxPath: "C:\\t\\c.pfx", password: "pw", timestampUrl: "http://ts.example", file: "C:\\b\\Spare.exe" }),
      ["sign", "/f", "C:\\t\\c.pfx", "/p", "pw", "/fd", "sha256", "/d", "Spare", "/tr", "http://ts.example", "/td", "sha256", "C:\\b\\Spare.exe"],
    );
    const untimed = signtoolArgs({ pfxPath: "c.pfx", password: "pw", timestampUrl: null, file: "a.msi" });
    assert.ok(!untimed.includes("/tr") && !untimed.includes("/t"));
    assert.equal(untimed.at(-1), "a.msi");
  });

  test("osslsigncode: the password comes from stdin, never the command line", () => {
    const args = osslsigncodeArgs({ pfxPath: "/t/c.pfx", timestampUrl: "http://ts.example", file: "/b/a.exe", out: "/t/signed" });
    assert.deepEqual(args, [
      "sign", "-pkcs12", "/t/c.pfx", "-readpass", "-", "-h", "sha256", "-n", "Spare",
      "-ts", "http://ts.example", "-in", "/b/a.exe", "-out", "/t/signed",
    ]);
    const untimed = osslsigncodeArgs({ pfxPath: "c", timestampUrl: null, file: "a", out: "b" });
    assert.ok(!untimed.includes("-ts") && !untimed.includes("-t"));
  });

  test("redact hides every copy of the secret", () => {
    assert.equal(redact("pw: s3cr3t, again s3cr3t", "s3cr3t"), "pw: ***, again ***");
    assert.equal(redact("nothing", ""), "nothing");
  });
});

describe("sign.mjs as Tauri runs it", () => {
  const work = mkdtempSync(path.join(tmpdir(), "spare-sign-test-"));
  after(() => rmSync(work, { recursive: true, force: true }));

  // The test runner's own environment, less anything that would make the script sign.
  const baseEnv = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("WINDOWS_") && k !== "SPARE_REQUIRE_SIGNING" && k !== "TAURI_WINDOWS_SIGNTOOL_PATH",
    ),
  );
  const runScript = (args, env) =>
    spawnSync(process.execPath, [script, ...args], { env: { ...baseEnv, ...env }, encoding: "utf8" });

  test("no secrets: exit 0, one line saying the file is left unsigned", () => {
    const file = path.join(work, "Spare_0.1.0_x64-setup.exe");
    writeFileSync(file, "not really an installer");
    const r = runScript([file], {});
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").length, 1);
    assert.match(r.stdout, /left .*Spare_0\.1\.0_x64-setup\.exe unsigned: WINDOWS_CERTIFICATE is not set/);
    assert.equal(readFileSync(file, "utf8"), "not really an installer");
  });

  test("SPARE_REQUIRE_SIGNING=1 and no secrets: exit 1 naming WINDOWS_CERTIFICATE", () => {
    const r = runScript([path.join(work, "a.exe")], { SPARE_REQUIRE_SIGNING: "1" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /WINDOWS_CERTIFICATE and WINDOWS_CERTIFICATE_PASSWORD are not set/);
  });

  test("no file: exit 1 with the usage", () => {
    const r = runScript([], {});
    assert.equal(r.status, 1);
    assert.match(r.stderr, /usage: node installers\/windows\/sign\.mjs FILE/);
  });

  test("a certificate but no file to sign: exit 1 naming the file", () => {
    const r = runScript([path.join(work, "missing.exe")], withCertificate);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /missing\.exe does not exist/);
  });

  const haveTools =
    process.platform !== "win32" &&
    ["openssl", "osslsigncode"].every((tool) => spawnSync(tool, ["--version"]).status !== null);

  test("signs a PE file with osslsigncode and leaves no key behind", { skip: !haveTools && "needs openssl and osslsigncode" }, () => {
    const password = "correct-horse-7731";
    const keys = path.join(work, "keys");
    mkdirSync(keys, { recursive: true });
    const pem = path.join(keys, "cert.pem");
    const pfx = path.join(keys, "cert.pfx");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Spare signing test",
      "-keyout", path.join(keys, "key.pem"), "-out", pem,
    ], { stdio: "ignore" });
    execFileSync("openssl", [
      "pkcs12", "-export", "-inkey", path.join(keys, "key.pem"), "-in", pem, "-out", pfx, "-passout", `pass:${password}`,
    ]);
    const exe = path.join(work, "tiny.exe");
    writeFileSync(exe, tinyPe());
    const temp = mkdtempSync(path.join(work, "tmp-"));
    const env = {
      TMPDIR: temp,
      WINDOWS_CERTIFICATE: readFileSync(pfx).toString("base64"),
      WINDOWS_CERTIFICATE_PASSWORD: password,
      WINDOWS_TIMESTAMP_URL: "none", // no network here
    };

    const r = runScript([exe], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /signed .*tiny\.exe \(osslsigncode, no timestamp\)/);
    assert.ok(readFileSync(exe).length > 512, "the signature is appended");
    const verify = spawnSync("osslsigncode", ["verify", "-CAfile", pem, "-in", exe], { encoding: "utf8" });
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.deepEqual(readdirSync(temp), [], "the PFX is deleted");
    assert.ok(!(r.stdout + r.stderr).includes(password));

    const wrong = runScript([exe], { ...env, WINDOWS_CERTIFICATE_PASSWORD: "wrong-password-19" });
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /osslsigncode failed .*\n[\s\S]*Check that WINDOWS_CERTIFICATE_PASSWORD opens the PFX/);
    assert.ok(!(wrong.stdout + wrong.stderr).includes("wrong-password-19"));
    assert.deepEqual(readdirSync(temp), [], "the PFX is deleted after a failure too");
  });
});

// The smallest PE32+ file osslsigncode accepts: headers only, no sections.
function tinyPe() {
  const b = Buffer.alloc(512);
  b.write("MZ", 0, "latin1");
  b.writeUInt32LE(0x40, 0x3c); // e_lfanew
  b.write("PE\0\0", 0x40, "latin1");
  const coff = 0x44;
  b.writeUInt16LE(0x8664, coff); // x86-64
  b.writeUInt16LE(240, coff + 16); // SizeOfOptionalHeader
  b.writeUInt16LE(0x22, coff + 18); // executable, large-address aware
  const opt = coff + 20;
  b.writeUInt16LE(0x20b, opt); // PE32+
  b.writeUInt32LE(0x1000, opt + 32); // SectionAlignment
  b.writeUInt32LE(0x200, opt + 36); // FileAlignment
  b.writeUInt32LE(0x1000, opt + 56); // SizeOfImage
  b.writeUInt32LE(0x200, opt + 60); // SizeOfHeaders
  b.writeUInt16LE(3, opt + 68); // console subsystem
  b.writeUInt32LE(16, opt + 108); // NumberOfRvaAndSizes
  return b;
}
