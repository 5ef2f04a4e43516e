//! The dashboard's entry: mounts the app once the page is ready.

import { h, render } from "preact";
import { App } from "./app";
import "./style.css";

function mount() {
  const root = document.getElementById("app");
  if (!root) throw new Error("index.html has no #app element");
  render(h(App, null), root);
}

// The e2e entry imports this module after the DOM may already be loaded.
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", mount, { once: true });
} else {
  mount();
}
