// Written by hand to match the Rust type `CommandError` (src-tauri's one error type for every command) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { Problem } from "./Problem";

/** What every command rejects with; the UI branches on `code`, never on `message`. */
export type CommandError =
  | { code: "node_unavailable"; message: string }
  | { code: "invalid_settings"; message: string; problems: Array<Problem> }
  | { code: "ledger_error"; message: string }
  | { code: "io_error"; message: string }
  | { code: "internal"; message: string };
