//! Fixed data for the browser tests: a Status in each state, earnings reports over six
//! weeks with demo work, 250 ledger entries, diagnostics with failures, a Config, update
//! checks and a log. Everything is computed from the index of a day or entry, so it is
//! the same every run.

import type { Check } from "../bindings/Check";
import type { Config } from "../bindings/Config";
import type { Entry } from "../bindings/Entry";
import type { EntryKind } from "../bindings/EntryKind";
import type { LogLine } from "../bindings/LogLine";
import type { Period } from "../bindings/Period";
import type { PeriodRow } from "../bindings/PeriodRow";
import type { Report } from "../bindings/Report";
import type { Split } from "../bindings/Split";
import type { Status } from "../bindings/Status";
import type { UpdateCheck } from "../bindings/UpdateCheck";

export type StatusName = "lending" | "waiting" | "paused" | "runner_stopped";

const NODE_ID = "5f1c0e9a7b3d42c8a6e1f0b9d2c4a7e3815b6d0c9f2e4a1b7c3d5e6f8a9b0c1d";

function baseStatus(): Status {
  return {
    schema: 1,
    node_id: NODE_ID,
    network: "spare",
    demo: false,
    listening: "0.0.0.0:4433",
    ticket: `spare1${NODE_ID.slice(0, 24)}…`,
    gpu: {
      state: "lending",
      reason: null,
      paused_by_you_until: null,
      queued_jobs: 2,
      running: true,
      yielded: false,
      job: { workgroups_done: 1_843, workgroups_total: 4_096 },
      jobs_done: 17,
      jobs_failed: 1,
      busy_percent: 42.5,
      adapter: "llvmpipe (LLVM 15.0.6, 256 bits)",
      runner_stopped: null,
      requesters_cooling_off: 0,
      price_per_million_workgroups: 100_000,
      earned_today_micro: 4_215,
      demo_today_micro: 120_000,
    },
    bandwidth: {
      state: "lending",
      reason: null,
      paused_by_you_until: null,
      clients: 3,
      up_bytes_per_s: 1_250_000,
      down_bytes_per_s: 830_000,
      relayed_up_bytes: 912_000_000,
      relayed_down_bytes: 455_000_000,
      quota_percent: 37,
      egress: "off",
      price_per_gib: 2_000,
      earned_today_micro: 1_830,
      demo_today_micro: 0,
    },
    signals: {
      input_backend: "X11 screensaver",
      input_idle_s: 754,
      input_error: null,
      headless: false,
      on_battery: false,
      battery_percent: null,
      game: null,
      gpu_temperature_c: 61,
      cpu_percent: 12.5,
      memory_used_percent: 48,
      schedule_allows: null,
    },
    earned_today_micro: 6_045,
    earned_all_time_micro: 20_412_345,
    ledger: "/home/owner/.local/share/spare/ledger.sqlite3",
  };
}

export function statusFixture(name: StatusName): Status {
  const s = baseStatus();
  if (name === "waiting") {
    s.gpu = { ...s.gpu, state: "waiting", reason: "user active 12 s ago", running: false, yielded: true, busy_percent: 8 };
    s.bandwidth = { ...s.bandwidth, state: "waiting", reason: "outside the schedule (Mon-Fri 22:00-07:00)", clients: 0, up_bytes_per_s: 0, down_bytes_per_s: 0 };
    s.signals = { ...s.signals, input_idle_s: 12, schedule_allows: false };
  }
  if (name === "paused") {
    s.gpu = { ...s.gpu, state: "paused", reason: "game running: eldenring.exe", running: false, queued_jobs: 4, busy_percent: 0 };
    s.bandwidth = { ...s.bandwidth, state: "paused", reason: "by you until 18:00", paused_by_you_until: "18:00", clients: 0, up_bytes_per_s: 0, down_bytes_per_s: 0, quota_percent: 92 };
    s.signals = { ...s.signals, game: "eldenring.exe", gpu_temperature_c: 74 };
  }
  if (name === "runner_stopped") {
    const why =
      "the GPU keeps failing (3 failures in 10 minutes; the last: no GPU adapter found); Spare tries again at 14:05, or resume now with `spare resume gpu`";
    s.gpu = { ...s.gpu, state: "paused", reason: why, runner_stopped: why, running: false, queued_jobs: 0, busy_percent: 0 };
  }
  return s;
}

// Earnings: 42 days from Monday 2025-02-17 to Sunday 2025-03-30.

const FIRST_DAY = Date.UTC(2025, 1, 17);
const DAYS = 42;
const DAY_MS = 86_400_000;

const dateOf = (i: number) => new Date(FIRST_DAY + i * DAY_MS).toISOString().slice(0, 10);

type DayRow = PeriodRow & { gpu_ms: number };

function dayRow(i: number): DayRow {
  const gpu = 120_000 + ((i * 37_813) % 260_000);
  const bandwidth = 40_000 + ((i * 19_997) % 150_000);
  const adjustments = i === 9 ? 25_000 : i === 30 ? -10_000 : 0;
  const payouts = i === 28 ? -2_000_000 : 0;
  return {
    start: dateOf(i),
    network: "spare",
    entries: 5 + (i % 7),
    gpu_micro: gpu,
    bandwidth_micro: bandwidth,
    adjustments_micro: adjustments,
    payouts_micro: payouts,
    earned_micro: gpu + bandwidth + adjustments,
    gpu_ms: 600_000 + ((i * 53_211) % 1_800_000),
  };
}

/** Sums day rows into rows starting at `startOf(day)`. */
function group(days: DayRow[], startOf: (row: DayRow) => string): DayRow[] {
  const out: DayRow[] = [];
  for (const d of days) {
    const start = startOf(d);
    const last = out[out.length - 1];
    if (last && last.start === start) {
      last.entries += d.entries;
      last.gpu_micro += d.gpu_micro;
      last.bandwidth_micro += d.bandwidth_micro;
      last.adjustments_micro += d.adjustments_micro;
      last.payouts_micro += d.payouts_micro;
      last.earned_micro += d.earned_micro;
      last.gpu_ms += d.gpu_ms;
    } else {
      out.push({ ...d, start });
    }
  }
  return out;
}

function sumSplit(rows: PeriodRow[]): Split {
  const split = { gpu_micro: 0, bandwidth_micro: 0, adjustments_micro: 0, payouts_micro: 0 };
  for (const r of rows) {
    split.gpu_micro += r.gpu_micro;
    split.bandwidth_micro += r.bandwidth_micro;
    split.adjustments_micro += r.adjustments_micro;
    split.payouts_micro += r.payouts_micro;
  }
  return split;
}

/** The report for `period`; rows carry `gpu_ms` only when `withGpuMs` (not yet in the contract). */
export function reportFixture(period: Period, withGpuMs: boolean): Report {
  const days = Array.from({ length: DAYS }, (_, i) => dayRow(i));
  const grouped =
    period === "day"
      ? days
      : period === "week"
        ? group(days, (d) => dateOf(Math.floor(days.indexOf(d) / 7) * 7))
        : group(days, (d) => `${d.start.slice(0, 7)}-01`);
  const rows: PeriodRow[] = grouped.map(({ gpu_ms, ...row }) => (withGpuMs ? { ...row, gpu_ms } : row));
  const in_range = sumSplit(rows);
  const earned = (s: Split) => s.gpu_micro + s.bandwidth_micro + s.adjustments_micro;
  // Older work before the range, so all-time differs from the range.
  const all_time = { ...in_range, gpu_micro: in_range.gpu_micro + 5_000_000, bandwidth_micro: in_range.bandwidth_micro + 1_500_000 };
  return {
    ledger: "/home/owner/.local/share/spare/ledger.sqlite3",
    period,
    since: null,
    utc_offset: "+01:00",
    rows,
    in_range,
    in_range_earned_micro: earned(in_range),
    demo_in_range: {
      gpu_jobs: 37,
      gpu_workgroups: 81_250,
      relay_sessions: 12,
      relay_bytes: 734_003_200,
      demo_credits_micro: 2_450_000,
    },
    // The demo's own series: the last week of the range, in demo credits.
    demo_rows: days.slice(-7).map((d, i) => ({
      start: d.start,
      network: "demo",
      entries: 3 + i,
      gpu_micro: 200_000 + i * 25_000,
      bandwidth_micro: 100_000,
      adjustments_micro: 0,
      payouts_micro: 0,
      earned_micro: 300_000 + i * 25_000,
    })),
    all_time,
    all_time_earned_micro: earned(all_time),
    balance_micro: earned(all_time) + all_time.payouts_micro,
  };
}

// Ledger entries.

/** Deterministic hex from a seed (xorshift32). */
function hex(seed: number, bytes: number): string {
  let x = (seed * 2_654_435_761) >>> 0 || 1;
  let out = "";
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out += (x & 0xff).toString(16).padStart(2, "0");
  }
  return out;
}

const KINDS: EntryKind[] = ["gpu_job", "relay_session", "gpu_job", "relay_session", "gpu_job", "adjustment", "gpu_job", "relay_session", "gpu_job", "payout"];

export const ENTRY_COUNT = 250;

export function entriesFixture(): Entry[] {
  return Array.from({ length: ENTRY_COUNT }, (_, i) => {
    const seq = i + 1;
    const kind = KINDS[i % KINDS.length];
    const demo = i % 6 === 4 && (kind === "gpu_job" || kind === "relay_session");
    const units = kind === "gpu_job" ? 4_096 * (1 + (i % 5)) : kind === "relay_session" ? 1_000_000 * (1 + (i % 9)) : 0;
    const amount = kind === "payout" ? -500_000 : kind === "adjustment" ? 2_500 : 1_000 + ((i * 7_919) % 90_000);
    return {
      seq,
      time_ms: FIRST_DAY + i * 4 * 3_600_000,
      kind,
      network: demo ? "demo" : "spare",
      counterparty: hex(seq * 3 + 1, 32),
      units,
      amount_micro: amount,
      reference: hex(seq * 5 + 2, 32),
      receipt_hex: `01${hex(seq * 7 + 3, 96)}`,
      signature_hex: hex(seq * 11 + 4, 64),
      hash_hex: hex(seq * 13 + 5, 32),
    };
  });
}

export const CHECKS: Check[] = [
  { name: "node", ok: true, detail: "running, listening on 0.0.0.0:4433", fix: null },
  { name: "keyring", ok: true, detail: "node key in the Secret Service (GNOME Keyring)", fix: null },
  {
    name: "gpu",
    ok: false,
    detail: "no Vulkan, Metal or DX12 adapter found",
    fix: "Install your GPU's driver (Debian: mesa-vulkan-drivers), then restart Spare.",
  },
  { name: "input idle", ok: true, detail: "X11 screensaver: idle 754 s", fix: null },
  {
    name: "reachability",
    ok: false,
    detail: "UDP port 4433 is not reachable from the internet",
    fix: "Forward UDP port 4433 on your router to this computer, or set relay.public_addresses.",
  },
];

export function configFixture(): Config {
  return {
    node: { ledger: null, key_file: null },
    lending: { idle_minutes: 5, schedule: ["Mon-Fri 22:00-07:00", "Sat,Sun"], exclusive_apps: ["eldenring.exe"] },
    gpu: {
      enabled: true,
      max_duty_cycle_percent: 60,
      max_temperature_c: 80,
      max_job_memory_mb: 512,
      price_per_million_workgroups: 100_000,
    },
    bandwidth: {
      enabled: true,
      only_when_away: false,
      upload_kbps: 2_000,
      download_kbps: 0,
      daily_quota_mb: 0,
      monthly_quota_gb: 200,
    },
    relay: { port: 4433, egress: "off", allow: [], price_per_gib: 2_000, public_addresses: [] },
    updates: { check: true, endpoint: null },
  };
}

export const PROCESSES = ["firefox", "steam", "code", "hl2_linux", "eldenring.exe", "firefox", "obs"];

export type UpdateName = "newest" | "available";

/** What update_check finds: nothing newer, or 0.2.0 with notes (markup in them is text). */
export function updateFixture(name: UpdateName): UpdateCheck {
  if (name === "newest") return { current: "0.1.0", available: null };
  return {
    current: "0.1.0",
    available: {
      version: "0.2.0",
      notes: "Faster GPU jobs on AMD cards.\nThe relay reconnects after the computer sleeps.\n\n<b>Markup</b> in notes is shown as text.",
      // 00:30 on 29 March in Paris, where the tests run.
      published: "2025-03-28T23:30:00Z",
    },
  };
}

// The log.

/** Where Tauri keeps an app's logs on Linux. */
export const LOG_FOLDER = "/home/owner/.local/share/org.spare.tray/logs";

/** The log as its files hold it, oldest first: a line of each level; the error names its fix. */
export const LOG_LINES: LogLine[] = [
  {
    time: "2026-12-06T19:25:20.004+01:00",
    level: "info",
    target: "spare_app::host",
    message: "node started node_id=5f1c0e9a network=spare listening=0.0.0.0:4433",
  },
  {
    time: "2026-12-06T19:25:21.310+01:00",
    level: "trace",
    target: "signals::input",
    message: "input idle idle_s=754 backend=\"X11 screensaver\"",
  },
  {
    time: "2026-12-06T19:25:22.518+01:00",
    level: "debug",
    target: "node::gpu_lane",
    message: "job queued order=3f9a1c queued_jobs=2",
  },
  {
    time: "2026-12-06T19:25:23.200+01:00",
    level: "info",
    target: "node::recorder",
    message: "GPU job recorded amount_micro=5 network=demo",
  },
  {
    time: "2026-12-06T19:25:24.870+01:00",
    level: "warn",
    target: "node::gpu_lane",
    message: "GPU job yielded: user active 12 s ago queued_jobs=2",
  },
  {
    time: "2026-12-06T19:25:25.123+01:00",
    level: "error",
    target: "relay::server",
    message:
      'relay could not start: UDP port 4433 is in use by another program fix="set another relay.port in Settings, or stop the program using 4433"',
  },
];
