// Written by hand to match the Rust type `Status` (agent/src/node/mod.rs, schema 1 in agent/STATUS.md) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { BandwidthStatus } from "./BandwidthStatus";
import type { GpuStatus } from "./GpuStatus";
import type { SignalsStatus } from "./SignalsStatus";

export type Status = {
  schema: number;
  node_id: string;
  network: string;
  demo: boolean;
  listening: string;
  ticket: string;
  gpu: GpuStatus;
  bandwidth: BandwidthStatus;
  signals: SignalsStatus;
  /** Micro-credits earned today over both resources, demo excluded. */
  earned_today_micro: number;
  earned_all_time_micro: number;
  ledger: string;
};
