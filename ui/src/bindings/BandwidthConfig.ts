// Written by hand to match the Rust type `BandwidthConfig` (agent/src/config.rs) as it serializes to JSON.
// src-tauri will generate this file from Rust with ts-rs; from then on it is generated
// and must not be edited by hand.

export type BandwidthConfig = {
  enabled: boolean;
  only_when_away: boolean;
  upload_kbps: number;
  download_kbps: number;
  daily_quota_mb: number;
  monthly_quota_gb: number;
};
