// Written by hand to match the Rust type `EntryKind` (ledger::EntryKind) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type EntryKind = "gpu_job" | "relay_session" | "adjustment" | "payout";
