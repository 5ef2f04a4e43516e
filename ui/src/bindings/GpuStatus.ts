// Written by hand to match the Rust type `GpuStatus` (agent/src/node/mod.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { ResourceState } from "./ResourceState";

export type GpuStatus = {
  queued_jobs: number;
  running: boolean;
  yielded: boolean;
  jobs_done: number;
  jobs_failed: number;
  /** Share of the last minute the GPU was lent, in percent. */
  busy_percent: number;
  adapter: string | null;
  runner_stopped: string | null;
  price_per_million_workgroups: number;
  earned_today_micro: number;
  demo_today_micro: number;
} & ResourceState;
