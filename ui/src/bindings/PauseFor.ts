// Written by hand to match the Rust type `PauseFor` (agent/src/node/mod.rs, PauseFor) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type PauseFor = { seconds: number } | "tomorrow" | "until_resumed";
