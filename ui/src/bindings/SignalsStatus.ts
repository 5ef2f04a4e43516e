// Written by hand to match the Rust type `SignalsStatus` (agent/src/node/mod.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { MachineReading } from "./MachineReading";

export type SignalsStatus = {
  input_backend: string;
  input_idle_s: number | null;
  input_error: string | null;
  headless: boolean;
  schedule_allows: boolean | null;
} & MachineReading;
