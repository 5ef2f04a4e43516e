// Tests for make-latest-json.mjs: which manifest keys each installer serves, minisign
// signature checks (signatures made here with Node's Ed25519, and one made by the real
// `tauri signer` where ui/node_modules has it), and the script run on a release folder.
// Run: node --test installers/make-latest-json.test.mjs
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { buildManifest, parsePublicKey, platformKeys, verifySignature } from "./make-latest-json.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, "make-latest-json.mjs");
const root = path.resolve(here, "..");

/** A minisign key pair in the formats Tauri uses (base64 of minisign's text files). */
function makeKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const id = randomBytes(8);
  const x = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
  const pubText = `untrusted comment: minisign public key\n${Buffer.concat([Buffer.from("Ed"), id, x]).toString("base64")}\n`;
  return {
    pubkey: Buffer.from(pubText).toString("base64"),
    keyId: Buffer.from(id).reverse().toString("hex").toUpperCase(),
    /** A .sig file's contents for `data`; `legacy` signs the data itself, not its hash. */
    sign(data, { file = "x", version = "0.2.0", legacy = false, trusted } = {}) {
      const message = legacy ? data : createHash("blake2b512").update(data).digest();
      const signature = sign(null, message, privateKey);
      const comment = trusted ?? `timestamp:1700000000\tfile:${file}\tversion:${version}`;
      const global = sign(null, Buffer.concat([signature, Buffer.from(comment)]), privateKey);
      const raw = Buffer.concat([Buffer.from(legacy ? "Ed" : "ED"), id, signature]);
      const text = `untrusted comment: signature from tauri secret key\n${raw.toString("base64")}\ntrusted comment: ${comment}\n${global.toString("base64")}\n`;
      return Buffer.from(text).toString("base64");
    },
  };
}

describe("platformKeys", () => {
  test("Tauri's installer names", () => {
    assert.deepEqual(platformKeys("Spare_0.2.0_amd64.AppImage"), ["linux-x86_64-appimage", "linux-x86_64"]);
    assert.deepEqual(platformKeys("Spare_0.2.0_aarch64.AppImage"), ["linux-aarch64-appimage", "linux-aarch64"]);
    assert.deepEqual(platformKeys("Spare_0.2.0_amd64.deb"), ["linux-x86_64-deb"]);
    assert.deepEqual(platformKeys("Spare_0.2.0_arm64.deb"), ["linux-aarch64-deb"]);
    assert.deepEqual(platformKeys("Spare-0.2.0-1.x86_64.rpm"), ["linux-x86_64-rpm"]);
    assert.deepEqual(platformKeys("Spare_0.2.0_x64-setup.exe"), ["windows-x86_64-nsis", "windows-x86_64"]);
    assert.deepEqual(platformKeys("Spare_0.2.0_arm64-setup.exe"), ["windows-aarch64-nsis", "windows-aarch64"]);
    assert.deepEqual(platformKeys("Spare_0.2.0_x64_en-US.msi"), ["windows-x86_64-msi"]);
    assert.deepEqual(platformKeys("Spare_0.2.0_aarch64.app.tar.gz"), ["darwin-aarch64-app", "darwin-aarch64"]);
  });

  test("a universal Mac archive serves both Mac architectures", () => {
    assert.deepEqual(platformKeys("Spare_0.2.0_universal.app.tar.gz"), [
      "darwin-aarch64-app",
      "darwin-aarch64",
      "darwin-x86_64-app",
      "darwin-x86_64",
    ]);
  });

  test("files the updater does not install are not in the manifest", () => {
    for (const name of ["Spare_0.2.0_universal.dmg", "Spare_0.2.0_amd64.deb.sig", "latest.json", "spare.exe"]) {
      assert.equal(platformKeys(name), null, name);
    }
  });

  test("an installer whose name hides its architecture is an error", () => {
    assert.throws(() => platformKeys("Spare.app.tar.gz"), /Spare\.app\.tar\.gz: cannot tell its architecture.*Spare_0\.2\.0_universal\.app\.tar\.gz/);
    assert.throws(() => platformKeys("Spare_0.2.0_universal.deb"), /cannot tell its architecture/);
  });
});

describe("verifySignature", () => {
  const key = makeKey();
  const publicKey = parsePublicKey(key.pubkey);
  const data = randomBytes(4096);

  test("a good signature gives its trusted comment's fields", () => {
    assert.equal(publicKey.keyId, key.keyId);
    const fields = verifySignature(data, key.sign(data, { file: "a.deb", version: "0.2.0" }), publicKey);
    assert.deepEqual(fields, { timestamp: "1700000000", file: "a.deb", version: "0.2.0" });
    assert.equal(verifySignature(data, key.sign(data, { legacy: true }), publicKey).version, "0.2.0");
  });

  test("a changed file is refused", () => {
    const changed = Buffer.from(data);
    changed[100] ^= 1;
    assert.throws(() => verifySignature(changed, key.sign(data), publicKey), /does not match the file/);
  });

  test("another key is refused, naming both key ids", () => {
    const other = makeKey();
    assert.throws(
      () => verifySignature(data, other.sign(data), publicKey),
      new RegExp(`signed with key ${other.keyId}, but the app trusts key ${key.keyId}`),
    );
  });

  test("an edited trusted comment is refused", () => {
    const text = Buffer.from(key.sign(data, { version: "0.2.0" }), "base64").toString();
    const edited = Buffer.from(text.replace("version:0.2.0", "version:9.9.9")).toString("base64");
    assert.throws(() => verifySignature(data, edited, publicKey), /trusted comment was altered/);
  });

  test("something that is not a signature", () => {
    assert.throws(() => verifySignature(data, "aGVsbG8K", publicKey), /not a minisign signature/);
  });

  test("the release key in tauri.conf.json is a minisign public key", () => {
    const config = JSON.parse(readFileSync(path.join(root, "src-tauri/tauri.conf.json"), "utf8"));
    assert.match(parsePublicKey(config.plugins.updater.pubkey).keyId, /^[0-9A-F]{16}$/);
    assert.throws(() => parsePublicKey(Buffer.from("untrusted comment: x\nAAAA\n").toString("base64")), /not a minisign public key/);
  });

  const tauri = path.join(root, "ui/node_modules/.bin/tauri");
  test("a signature from the real `tauri signer sign` verifies", { skip: !existsSync(tauri) && "needs npm --prefix ui ci" }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), "spare-signer-"));
    try {
      execFileSync(tauri, ["signer", "generate", "--ci", "-p", "pw", "-w", path.join(dir, "release.key")], { stdio: "ignore" });
      const file = path.join(dir, "Spare_0.2.0_amd64.deb");
      writeFileSync(file, randomBytes(10000));
      execFileSync(tauri, ["signer", "sign", "-f", path.join(dir, "release.key"), "-p", "pw", "--app-version", "0.2.0", file], {
        stdio: "ignore",
        // The CLI refuses -f beside a key from the environment, even an empty one.
        env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TAURI_SIGNING_"))),
      });
      const realKey = parsePublicKey(readFileSync(path.join(dir, "release.key.pub"), "utf8"));
      const fields = verifySignature(readFileSync(file), readFileSync(`${file}.sig`, "utf8"), realKey);
      assert.equal(fields.version, "0.2.0");
      assert.equal(fields.file, "Spare_0.2.0_amd64.deb");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("buildManifest", () => {
  const base = { version: "0.2.0", notes: "n", pubDate: "2026-05-01T12:00:00Z", baseUrl: "https://github.com/o/r/releases/download/v0.2.0/" };

  test("one entry per key, URLs under the base URL", () => {
    const manifest = buildManifest({
      ...base,
      artifacts: [
        { name: "Spare_0.2.0_x64_en-US.msi", signature: "U0lHMQ==\n" },
        { name: "Spare_0.2.0_x64-setup.exe", signature: "U0lHMg==" },
      ],
    });
    assert.deepEqual(manifest, {
      version: "0.2.0",
      notes: "n",
      pub_date: "2026-05-01T12:00:00Z",
      platforms: {
        "windows-x86_64": { signature: "U0lHMg==", url: "https://github.com/o/r/releases/download/v0.2.0/Spare_0.2.0_x64-setup.exe" },
        "windows-x86_64-msi": { signature: "U0lHMQ==", url: "https://github.com/o/r/releases/download/v0.2.0/Spare_0.2.0_x64_en-US.msi" },
        "windows-x86_64-nsis": { signature: "U0lHMg==", url: "https://github.com/o/r/releases/download/v0.2.0/Spare_0.2.0_x64-setup.exe" },
      },
    });
  });

  test("two installers for one key, or none at all, are errors", () => {
    assert.throws(
      () => buildManifest({ ...base, artifacts: [{ name: "A_0.2.0_amd64.deb", signature: "s" }, { name: "B_0.2.0_amd64.deb", signature: "s" }] }),
      /both A_0\.2\.0_amd64\.deb and B_0\.2\.0_amd64\.deb are for linux-x86_64-deb/,
    );
    assert.throws(() => buildManifest({ ...base, artifacts: [{ name: "Spare.dmg", signature: "s" }] }), /no installers found/);
  });
});

describe("make-latest-json.mjs on a release folder", () => {
  const dist = mkdtempSync(path.join(tmpdir(), "spare-release-"));
  after(() => rmSync(dist, { recursive: true, force: true }));
  const key = makeKey();
  const put = (rel, { version = "0.2.0", sig = true, trusted } = {}) => {
    const file = path.join(dist, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    const data = randomBytes(2048);
    writeFileSync(file, data);
    if (sig) writeFileSync(`${file}.sig`, key.sign(data, { file: path.basename(file), version, trusted }));
    return file;
  };
  const run = (...extra) =>
    spawnSync(
      process.execPath,
      [script, "--version", "0.2.0", "--base-url", "https://github.com/o/r/releases/download/v0.2.0", "--pubkey", key.pubkey,
        "--notes", "Spare 0.2.0", "--pub-date", "2026-05-01T12:00:00Z", "--out", path.join(dist, "latest.json"), ...extra, dist],
      { encoding: "utf8" },
    );

  test("writes every platform from the signed installers", () => {
    put("deb/Spare_0.2.0_amd64.deb");
    put("rpm/Spare-0.2.0-1.x86_64.rpm");
    put("appimage/Spare_0.2.0_amd64.AppImage");
    put("nsis/Spare_0.2.0_x64-setup.exe");
    put("msi/Spare_0.2.0_x64_en-US.msi");
    put("macos/Spare_0.2.0_universal.app.tar.gz");
    put("dmg/Spare_0.2.0_universal.dmg", { sig: false });

    const r = run();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`signed by key ${key.keyId}`));
    const manifest = JSON.parse(readFileSync(path.join(dist, "latest.json"), "utf8"));
    assert.equal(manifest.version, "0.2.0");
    assert.equal(manifest.pub_date, "2026-05-01T12:00:00Z");
    assert.deepEqual(Object.keys(manifest.platforms), [
      "darwin-aarch64", "darwin-aarch64-app", "darwin-x86_64", "darwin-x86_64-app",
      "linux-x86_64", "linux-x86_64-appimage", "linux-x86_64-deb", "linux-x86_64-rpm",
      "windows-x86_64", "windows-x86_64-msi", "windows-x86_64-nsis",
    ]);
    const deb = manifest.platforms["linux-x86_64-deb"];
    assert.equal(deb.url, "https://github.com/o/r/releases/download/v0.2.0/Spare_0.2.0_amd64.deb");
    assert.equal(deb.signature, readFileSync(path.join(dist, "deb/Spare_0.2.0_amd64.deb.sig"), "utf8"));
    assert.equal(manifest.platforms["darwin-x86_64"].url, manifest.platforms["darwin-aarch64"].url);
  });

  test("refuses a release with an unsigned installer, a stale one, or one not signed as this version", () => {
    put("rpm/Spare-0.2.0-1.aarch64.rpm", { sig: false });
    put("deb/Spare_0.1.0_arm64.deb");
    put("appimage/Spare_0.2.0_aarch64.AppImage", { version: "0.1.9" });
    put("nsis/Spare_0.2.0_arm64-setup.exe", { trusted: "timestamp:1700000000\tfile:Spare_0.2.0_arm64-setup.exe" });
    const before = readFileSync(path.join(dist, "latest.json"), "utf8");
    const r = run();
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Spare-0\.2\.0-1\.aarch64\.rpm: no Spare-0\.2\.0-1\.aarch64\.rpm\.sig next to it/);
    assert.match(r.stderr, /Spare_0\.1\.0_arm64\.deb: not version 0\.2\.0/);
    assert.match(r.stderr, /Spare_0\.2\.0_aarch64\.AppImage: signed as version 0\.1\.9, not 0\.2\.0/);
    assert.match(r.stderr, /Spare_0\.2\.0_arm64-setup\.exe: its signature does not name a version: sign it with `tauri signer sign --app-version 0\.2\.0`/);
    assert.equal(readFileSync(path.join(dist, "latest.json"), "utf8"), before, "a refused release writes no manifest");
  });

  test("bad arguments: exit 2 with the usage", () => {
    const r = spawnSync(process.execPath, [script, "--version", "v0.2.0", "--base-url", "u", "--out", "o", dist], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--version v0\.2\.0 is not a semantic version.*\nusage:/);
  });
});
