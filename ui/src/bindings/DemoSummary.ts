// Written by hand to match the Rust type `DemoSummary` (agent/src/earnings.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

/** Demo work: real receipts from the built-in demo, worth nothing. */
export type DemoSummary = {
  gpu_jobs: number;
  gpu_workgroups: number;
  relay_sessions: number;
  relay_bytes: number;
  demo_credits_micro: number;
};
