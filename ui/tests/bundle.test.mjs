// The app build must never carry the mocked IPC or its fixtures; the e2e build must
// (so this check cannot pass by looking at the wrong thing).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { APP_DIST, E2E_DIST } from "./harness.mjs";

// Strings only the mock (from @tauri-apps/api/mocks) and the fixtures contain.
const MOCK_MARKERS = ["shouldMockEvents", "Couldn't find callback id", "spareMock", "__SPARE_MOCK__", "no Vulkan, Metal or DX12 adapter found"];

function bundleText(dist) {
  const assets = join(dist, "assets");
  const files = readdirSync(assets).filter((f) => f.endsWith(".js"));
  assert.ok(files.length > 0, `no scripts in ${assets}`);
  return [readFileSync(join(dist, "index.html"), "utf8"), ...files.map((f) => readFileSync(join(assets, f), "utf8"))].join("\n");
}

test("the app build contains no IPC mock and no fixtures", () => {
  const text = bundleText(APP_DIST);
  for (const marker of MOCK_MARKERS) {
    assert.ok(!text.includes(marker), `dist/ contains ${JSON.stringify(marker)}`);
  }
  assert.ok(text.includes("status-changed"), "dist/ is not the dashboard");
});

test("the e2e build does contain the mock", () => {
  const text = bundleText(E2E_DIST);
  for (const marker of MOCK_MARKERS) {
    assert.ok(text.includes(marker), `dist-e2e/ lacks ${JSON.stringify(marker)}`);
  }
});
