// Written by hand to match the Rust type `BandwidthStatus` (agent/src/node/mod.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { EgressMode } from "./EgressMode";
import type { ResourceState } from "./ResourceState";

export type BandwidthStatus = {
  clients: number;
  up_bytes_per_s: number;
  down_bytes_per_s: number;
  relayed_up_bytes: number;
  relayed_down_bytes: number;
  /** Share of the tighter quota used, in percent; null without a quota. */
  quota_percent: number | null;
  egress: EgressMode;
  price_per_gib: number;
  earned_today_micro: number;
  demo_today_micro: number;
} & ResourceState;
