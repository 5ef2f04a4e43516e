// Written by hand to match the Rust type `RelayConfig` (agent/src/config.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { EgressMode } from "./EgressMode";

export type RelayConfig = {
  port: number;
  egress: EgressMode;
  allow: Array<string>;
  price_per_gib: number;
  public_addresses: Array<string>;
};
