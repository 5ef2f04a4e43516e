// Writes latest.json, the update manifest tauri-plugin-updater reads, from the installers
// a release build signed (each FILE with its FILE.sig), after checking every signature
// against the release key in src-tauri/tauri.conf.json: a release signed with the wrong
// key fails here, not on users' machines. Run by .github/workflows/release.yml:
//   node installers/make-latest-json.mjs --version 0.2.0 \
//     --base-url https://github.com/OWNER/REPO/releases/download/v0.2.0 --out latest.json DIR...
// Options: --notes TEXT, --pub-date RFC3339 (default now), --pubkey BASE64 (default
// plugins.updater.pubkey from src-tauri/tauri.conf.json). It never signs anything.
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync, readdirSync, realpathSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const ARCH = { amd64: "x86_64", x64: "x86_64", x86_64: "x86_64", arm64: "aarch64", aarch64: "aarch64", i386: "i686", x86: "i686", i686: "i686", armhf: "armv7", armhfp: "armv7" };

// File names as Tauri's bundler writes them; the macOS archive is renamed by the release
// workflow to carry its version and architecture (the bundler calls it Spare.app.tar.gz).
const KINDS = [
  { bundle: "appimage", os: "linux", suffix: ".AppImage", pattern: /_([a-z0-9_]+)\.AppImage$/, example: "Spare_0.2.0_amd64.AppImage", fallback: true },
  { bundle: "deb", os: "linux", suffix: ".deb", pattern: /_([a-z0-9]+)\.deb$/, example: "Spare_0.2.0_amd64.deb" },
  { bundle: "rpm", os: "linux", suffix: ".rpm", pattern: /\.([a-z0-9_]+)\.rpm$/, example: "Spare-0.2.0-1.x86_64.rpm" },
  { bundle: "nsis", os: "windows", suffix: "-setup.exe", pattern: /_([a-z0-9]+)-setup\.exe$/, example: "Spare_0.2.0_x64-setup.exe", fallback: true },
  { bundle: "msi", os: "windows", suffix: ".msi", pattern: /_([a-z0-9]+)_[A-Za-z-]+\.msi$/, example: "Spare_0.2.0_x64_en-US.msi" },
  { bundle: "app", os: "darwin", suffix: ".app.tar.gz", pattern: /_([a-z0-9_]+)\.app\.tar\.gz$/, example: "Spare_0.2.0_universal.app.tar.gz", fallback: true },
];

/**
 * The manifest keys an installer named `name` serves, or null for a file the updater
 * does not install (.dmg, .sig, anything else). `{os}-{arch}-{bundle}` is what an app
 * that knows how it was installed asks for; one bundle per OS also answers the plain
 * `{os}-{arch}` key for apps that do not know (AppImage, NSIS and the .app, as
 * tauri-action does). A universal macOS archive serves both Mac architectures.
 */
export function platformKeys(name) {
  const kind = KINDS.find((k) => name.endsWith(k.suffix));
  if (!kind) return null;
  const word = name.match(kind.pattern)?.[1];
  const arch = Object.hasOwn(ARCH, word ?? "") ? ARCH[word] : undefined;
  const arches = kind.os === "darwin" && word === "universal" ? ["aarch64", "x86_64"] : [arch];
  if (!arches[0]) {
    throw new Error(`${name}: cannot tell its architecture from its name (expected e.g. ${kind.example})`);
  }
  return arches.flatMap((arch) => {
    const keys = [`${kind.os}-${arch}-${kind.bundle}`];
    if (kind.fallback) keys.push(`${kind.os}-${arch}`);
    return keys;
  });
}

/** The 8-byte key id and Ed25519 key of a minisign public key, as tauri.conf.json holds it. */
export function parsePublicKey(base64) {
  const text = Buffer.from(base64.trim(), "base64").toString("utf8");
  const line = text.split("\n")[1]?.trim() ?? "";
  const raw = Buffer.from(line, "base64");
  if (raw.length !== 42 || raw.subarray(0, 2).toString("latin1") !== "Ed") {
    throw new Error("the updater public key is not a minisign public key (make one with `tauri signer generate`)");
  }
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.subarray(10).toString("base64url") }, format: "jwk" });
  return { keyId: keyIdOf(raw), key };
}

function keyIdOf(raw) {
  // minisign prints key ids as little-endian hex.
  return Buffer.from(raw.subarray(2, 10)).reverse().toString("hex").toUpperCase();
}

/**
 * Checks `signature` (a .sig file's contents: base64 of a minisign signature) over `data`
 * with `publicKey` (from parsePublicKey), as the updater will. Returns the trusted
 * comment's fields (`timestamp`, `file`, `version`); throws saying what is wrong.
 */
export function verifySignature(data, signature, publicKey) {
  const lines = Buffer.from(signature.trim(), "base64").toString("utf8").split("\n");
  const raw = Buffer.from(lines[1]?.trim() ?? "", "base64");
  const algorithm = raw.subarray(0, 2).toString("latin1");
  if (raw.length !== 74 || !["Ed", "ED"].includes(algorithm) || !lines[2]?.startsWith("trusted comment: ")) {
    throw new Error("not a minisign signature (a .sig file written by `tauri build` or `tauri signer sign`)");
  }
  const keyId = keyIdOf(raw);
  if (keyId !== publicKey.keyId) {
    throw new Error(
      `signed with key ${keyId}, but the app trusts key ${publicKey.keyId}: set TAURI_SIGNING_PRIVATE_KEY ` +
        "(and its password) to the release key whose public half is plugins.updater.pubkey",
    );
  }
  // "ED" signs the BLAKE2b-512 hash of the file; "Ed", the legacy form, the file itself.
  const message = algorithm === "ED" ? createHash("blake2b512").update(data).digest() : data;
  if (!verify(null, message, publicKey.key, raw.subarray(10))) {
    throw new Error("the signature does not match the file: it was changed after signing, or the .sig belongs to another build");
  }
  const trusted = lines[2].slice("trusted comment: ".length);
  const global = Buffer.from(lines[3]?.trim() ?? "", "base64");
  if (!verify(null, Buffer.concat([raw.subarray(10), Buffer.from(trusted, "utf8")]), publicKey.key, global)) {
    throw new Error("the signature's trusted comment was altered");
  }
  return Object.fromEntries(
    trusted.split("\t").map((field) => {
      const at = field.indexOf(":");
      return at < 0 ? [field, ""] : [field.slice(0, at), field.slice(at + 1)];
    }),
  );
}

/**
 * The manifest for `artifacts` (`[{ name, signature }]`, already verified). Throws when
 * two installers claim one platform key or when there is nothing to offer.
 */
export function buildManifest({ version, notes, pubDate, baseUrl, artifacts }) {
  const platforms = {};
  const owner = {};
  for (const { name, signature } of artifacts) {
    for (const key of platformKeys(name) ?? []) {
      if (owner[key]) throw new Error(`both ${owner[key]} and ${name} are for ${key}: remove one`);
      owner[key] = name;
      platforms[key] = { signature: signature.trim(), url: `${baseUrl.replace(/\/+$/, "")}/${encodeURIComponent(name)}` };
    }
  }
  if (Object.keys(platforms).length === 0) throw new Error("no installers found: nothing to offer as an update");
  const sorted = Object.fromEntries(Object.keys(platforms).sort().map((k) => [k, platforms[k]]));
  return { version, notes, pub_date: pubDate, platforms: sorted };
}

/** Every file under `dirs`, as `{ name, path }`. */
function walk(dirs) {
  const files = [];
  const visit = (p) => {
    if (statSync(p).isDirectory()) {
      for (const entry of readdirSync(p).sort()) visit(path.join(p, entry));
    } else {
      files.push({ name: path.basename(p), path: p });
    }
  };
  dirs.forEach(visit);
  return files;
}

/** Reads, checks and describes the installers under `dirs`; throws a list of every problem. */
export function collect({ dirs, version, publicKey }) {
  const files = walk(dirs);
  const byPath = new Set(files.map((f) => f.path));
  const problems = [];
  const artifacts = [];
  for (const file of files) {
    let keys;
    try {
      keys = platformKeys(file.name);
    } catch (error) {
      problems.push(error.message);
      continue;
    }
    if (!keys) continue;
    if (!new RegExp(`[_-]${version.replace(/\./g, "\\.")}[_-]`).test(file.name)) {
      problems.push(`${file.name}: not version ${version} (a file left from another build?)`);
      continue;
    }
    if (!byPath.has(`${file.path}.sig`)) {
      problems.push(`${file.name}: no ${file.name}.sig next to it (build with TAURI_SIGNING_PRIVATE_KEY set, or run \`tauri signer sign\`)`);
      continue;
    }
    const signature = readFileSync(`${file.path}.sig`, "utf8");
    try {
      const fields = verifySignature(readFileSync(file.path), signature, publicKey);
      // The updater can require this (plugins.updater.requireSignedVersion): it stops a
      // tampered manifest from offering an old, validly signed build as a new version.
      if (fields.version === undefined) {
        throw new Error(`its signature does not name a version: sign it with \`tauri signer sign --app-version ${version}\``);
      }
      if (fields.version !== version) throw new Error(`signed as version ${fields.version}, not ${version}`);
    } catch (error) {
      problems.push(`${file.name}: ${error.message}`);
      continue;
    }
    artifacts.push({ name: file.name, signature });
  }
  if (problems.length > 0) throw new Error(problems.join("\n"));
  return artifacts;
}

function parseArgs(argv) {
  const options = { dirs: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const name = { "--version": "version", "--base-url": "baseUrl", "--out": "out", "--notes": "notes", "--pub-date": "pubDate", "--pubkey": "pubkey" }[arg];
    if (name) {
      if (argv[i + 1] === undefined) throw new Error(`${arg} needs a value`);
      options[name] = argv[(i += 1)];
    } else if (arg.startsWith("--")) {
      throw new Error(`unknown option ${arg}`);
    } else {
      options.dirs.push(arg);
    }
  }
  for (const [name, flag] of [["version", "--version"], ["baseUrl", "--base-url"], ["out", "--out"]]) {
    if (!options[name]) throw new Error(`${flag} is required`);
  }
  if (options.dirs.length === 0) throw new Error("name at least one folder to look for installers in");
  if (!/^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/.test(options.version)) {
    throw new Error(`--version ${options.version} is not a semantic version such as 0.2.0 (no leading v)`);
  }
  return options;
}

function main(argv) {
  let options;
  try {
    options = parseArgs(argv);
  } catch (error) {
    console.error(`make-latest-json: ${error.message}\nusage: node installers/make-latest-json.mjs --version 0.2.0 --base-url URL --out latest.json DIR...`);
    process.exit(2);
  }
  try {
    const pubkey = options.pubkey ?? JSON.parse(readFileSync(path.join(root, "src-tauri/tauri.conf.json"), "utf8")).plugins?.updater?.pubkey;
    if (!pubkey) throw new Error("src-tauri/tauri.conf.json has no plugins.updater.pubkey: pass --pubkey");
    const publicKey = parsePublicKey(pubkey);
    const artifacts = collect({ dirs: options.dirs, version: options.version, publicKey });
    const manifest = buildManifest({
      version: options.version,
      notes: options.notes ?? `Spare ${options.version}`,
      pubDate: options.pubDate ?? new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      baseUrl: options.baseUrl,
      artifacts,
    });
    writeFileSync(options.out, `${JSON.stringify(manifest, null, 2)}\n`);
    console.log(`make-latest-json: ${options.out}: version ${options.version}, signed by key ${publicKey.keyId}`);
    for (const [key, { url }] of Object.entries(manifest.platforms)) console.log(`  ${key.padEnd(24)} ${url}`);
  } catch (error) {
    console.error(`make-latest-json: ${error.message}`);
    process.exit(1);
  }
}

function isMain() {
  try {
    return realpathSync(process.argv[1] ?? "") === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) main(process.argv.slice(2));
