// Written by hand to match the Rust type `MachineReading` (agent/src/signals/machine.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type MachineReading = {
  on_battery: boolean | null;
  battery_percent: number | null;
  game: string | null;
  gpu_temperature_c: number | null;
  cpu_percent: number | null;
  memory_used_percent: number | null;
};
