// Written by hand to match the Rust type `Entry` (the tray app's ledger entry view of ledger::Entry) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

import type { EntryKind } from "./EntryKind";

export type Entry = {
  seq: number;
  time_ms: number;
  kind: EntryKind;
  network: string;
  /** Hex public key. */
  counterparty: string;
  units: number;
  amount_micro: number;
  /** Hex. */
  reference: string;
  receipt_hex: string;
  signature_hex: string;
  hash_hex: string;
};
