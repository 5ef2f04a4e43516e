// Written by hand to match the Rust type `GpuConfig` (agent/src/config.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type GpuConfig = {
  enabled: boolean;
  max_duty_cycle_percent: number;
  max_temperature_c: number;
  max_job_memory_mb: number;
  price_per_million_workgroups: number;
};
