// Written by hand to match the Rust type `ResourceState` (agent/src/node/mod.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { LendingState } from "./LendingState";

export type ResourceState = {
  state: LendingState;
  /** Why not lending, in plain words; null while lending. */
  reason: string | null;
  /** The owner's pause: "18:00", "Thu 09:30", "tomorrow 06:00" or "you resume". */
  paused_by_you_until: string | null;
};
