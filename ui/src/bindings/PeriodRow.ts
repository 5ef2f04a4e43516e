// Written by hand to match the Rust type `PeriodRow` (agent/src/earnings.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { Split } from "./Split";

export type PeriodRow = {
  /** First local day of the period, YYYY-MM-DD. */
  start: string;
  /** Never "demo". */
  network: string;
  entries: number;
  earned_micro: number;
} & Split;
