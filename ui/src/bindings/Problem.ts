// Written by hand to match the Rust type `Problem` (agent/src/config.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type Problem = {
  /** "section.key", when known. */
  key: string | null;
  /** 1-based line in the config file, when known. */
  line: number | null;
  message: string;
};
