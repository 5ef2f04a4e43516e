// Written by hand to match the Rust type `Config` (agent/src/config.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { BandwidthConfig } from "./BandwidthConfig";
import type { GpuConfig } from "./GpuConfig";
import type { LendingConfig } from "./LendingConfig";
import type { NodeConfig } from "./NodeConfig";
import type { RelayConfig } from "./RelayConfig";

/** The TOML config file as JSON (agent/config.example.toml documents each key). */
export type Config = {
  node: NodeConfig;
  lending: LendingConfig;
  gpu: GpuConfig;
  bandwidth: BandwidthConfig;
  relay: RelayConfig;
};
