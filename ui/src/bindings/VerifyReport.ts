// Written by hand to match the Rust type `VerifyReport` (ledger verification) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { VerifyProblem } from "./VerifyProblem";

export type VerifyReport = {
  entries: number;
  signatures: number;
  /** The first bad entry, or null when the chain is intact. */
  problem: VerifyProblem | null;
};
