// Written by hand to match the Rust type `EgressMode` (agent/src/config.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type EgressMode = "off" | "allowlist" | "open";
