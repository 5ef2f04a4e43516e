// Written by hand to match the Rust type `Check` (agent/src/doctor.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type Check = {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about a failed check. */
  fix: string | null;
};
