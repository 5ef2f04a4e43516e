// Written by hand to match the Rust type `PauseTarget` (agent/src/node/mod.rs, Target) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type PauseTarget = "gpu" | "bandwidth" | "all";
