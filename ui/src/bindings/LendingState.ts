// Written by hand to match the Rust type `LendingState` (agent/src/node/mod.rs, ResourceState.state) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

/** `waiting` passes by itself; `paused` lasts until its cause changes. */
export type LendingState = "lending" | "waiting" | "paused";
