// Vite builds the dashboard twice: `vite build` for the app (into dist/, which
// src-tauri's frontendDist points at) and `vite build --mode e2e` for the browser
// tests (into dist-e2e/), whose entry installs a mocked Tauri IPC before the app starts.
import { defineConfig, type Plugin } from "vite";

const APP_ENTRY = "/src/main.ts";
const E2E_ENTRY = "/src/e2e/main.ts";

/// Swaps the page's entry script for the mocked one in e2e mode. Only the entry named
/// in index.html is bundled, so the app build never contains the mock or its fixtures.
function e2eEntry(mode: string): Plugin {
  return {
    name: "spare-e2e-entry",
    transformIndexHtml: {
      order: "pre",
      handler(html) {
        if (mode !== "e2e") return html;
        if (!html.includes(APP_ENTRY)) throw new Error(`index.html does not load ${APP_ENTRY}`);
        return html.replace(APP_ENTRY, E2E_ENTRY);
      },
    },
  };
}

export default defineConfig(({ mode }) => ({
  // Relative asset paths: the same build loads from Tauri's custom protocol and from
  // the tests' static server.
  base: "./",
  plugins: [e2eEntry(mode)],
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  build: {
    outDir: mode === "e2e" ? "dist-e2e" : "dist",
    emptyOutDir: true,
    target: "es2020",
  },
}));
