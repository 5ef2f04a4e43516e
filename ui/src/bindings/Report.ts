// Written by hand to match the Rust type `Report` (agent/src/earnings.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { DemoSummary } from "./DemoSummary";
import type { Period } from "./Period";
import type { PeriodRow } from "./PeriodRow";
import type { Split } from "./Split";

export type Report = {
  ledger: string;
  period: Period;
  /** The first local date included, YYYY-MM-DD, if limited. */
  since: string | null;
  /** "+HH:MM". */
  utc_offset: string;
  /** Per period and network, oldest first, demo excluded. */
  rows: Array<PeriodRow>;
  in_range: Split;
  in_range_earned_micro: number;
  demo_in_range: DemoSummary;
  all_time: Split;
  all_time_earned_micro: number;
  balance_micro: number;
};
