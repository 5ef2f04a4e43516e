// Written by hand to match the Rust type `Split` (agent/src/earnings.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

/** Credits by source, in micro-credits. */
export type Split = {
  gpu_micro: number;
  bandwidth_micro: number;
  /** Either sign. */
  adjustments_micro: number;
  /** Zero or negative. */
  payouts_micro: number;
};
