//! The browser tests' entry (built only with `vite build --mode e2e`): installs a mocked
//! Tauri IPC serving the fixtures, exposes it as `window.spareMock` for the tests to
//! drive and inspect, then starts the real app unchanged.

import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { NODE_DOWN, STATUS_CHANGED } from "../api";
import type { CommandError } from "../bindings/CommandError";
import type { Config } from "../bindings/Config";
import type { LogLevel } from "../bindings/LogLevel";
import type { LogLine } from "../bindings/LogLine";
import type { LogView } from "../bindings/LogView";
import type { NodeDown } from "../bindings/NodeDown";
import type { PauseFor } from "../bindings/PauseFor";
import type { PauseTarget } from "../bindings/PauseTarget";
import type { Period } from "../bindings/Period";
import type { ResourceState } from "../bindings/ResourceState";
import type { Status } from "../bindings/Status";
import {
  CHECKS,
  configFixture,
  entriesFixture,
  LOG_FOLDER,
  LOG_LINES,
  PROCESSES,
  reportFixture,
  statusFixture,
  updateFixture,
  type StatusName,
  type UpdateName,
} from "./fixtures";

/** What a test may set before the page loads, as `window.__SPARE_MOCK__`. */
type MockOptions = {
  status?: StatusName;
  /** Commands that reject, with the error each rejects with. */
  fail?: Record<string, CommandError>;
  /** Give report rows a `gpu_ms` (the proposed contract addition). */
  rowsWithGpuMs?: boolean;
  /** Make ledger_verify find a bad entry. */
  brokenLedger?: boolean;
  /** What update_check finds; "newest" unless set. */
  update?: UpdateName;
  /** Make the log empty, as on a first start. */
  emptyLog?: boolean;
};

type Call = { cmd: string; args: Record<string, unknown> | undefined };

const options: MockOptions = (window as unknown as { __SPARE_MOCK__?: MockOptions }).__SPARE_MOCK__ ?? {};
const calls: Call[] = [];
const failures = new Map<string, CommandError>(Object.entries(options.fail ?? {}));
/** Commands that answer only once released, so a test can see what shows meanwhile. */
const holds = new Map<string, { until: Promise<void>; release: () => void }>();
let status = statusFixture(options.status ?? "lending");
let config = configFixture();
let autostart = false;
const entries = entriesFixture();
// Oldest first, as in the files; `addLogLine` appends, as the app does while it runs.
const logLines: LogLine[] = options.emptyLog ? [] : structuredClone(LOG_LINES);

const PAUSE_LABEL: Record<string, string> = { tomorrow: "tomorrow 06:00", until_resumed: "you resume" };

/** Sets the state of the resources `target` names. */
function withState(target: PauseTarget, change: ResourceState): Status {
  const next = structuredClone(status);
  if (target !== "bandwidth") next.gpu = { ...next.gpu, ...change };
  if (target !== "gpu") next.bandwidth = { ...next.bandwidth, ...change };
  return next;
}

function paused(target: PauseTarget, until: PauseFor): Status {
  const label = typeof until === "object" ? "19:00" : PAUSE_LABEL[until];
  return withState(target, { state: "paused", reason: `by you until ${label}`, paused_by_you_until: label });
}

function resumed(target: PauseTarget): Status {
  return withState(target, { state: "lending", reason: null, paused_by_you_until: null });
}

const SEVERITY: LogLevel[] = ["error", "warn", "info", "debug", "trace"];

/** Lines at `level` or more severe (every line when null), newest first, at most `limit`. */
function logView(level: LogLevel | null, limit: number): LogView {
  const most = level === null ? SEVERITY.length - 1 : SEVERITY.indexOf(level);
  const lines = logLines.filter((line) => SEVERITY.indexOf(line.level) <= most).reverse();
  return { folder: LOG_FOLDER, lines: lines.slice(0, limit) };
}

function answer(cmd: string, args: Record<string, unknown>): unknown {
  switch (cmd) {
    case "status":
      return status;
    case "node_start":
      return status;
    case "pause":
      status = paused(args.target as PauseTarget, args.for as PauseFor);
      return status;
    case "resume":
      status = resumed(args.target as PauseTarget);
      // The node's resume also clears a stop the GPU runner made itself.
      if (args.target !== "bandwidth") status = { ...status, gpu: { ...status.gpu, runner_stopped: null } };
      return status;
    case "diagnostics":
      return CHECKS;
    case "earnings":
      return reportFixture(args.period as Period, options.rowsWithGpuMs === true);
    case "ledger_entries": {
      const after = args.after_seq as number;
      return entries.filter((e) => e.seq > after).slice(0, args.limit as number);
    }
    case "ledger_verify":
      return options.brokenLedger
        ? { entries: 250, signatures: 131, problem: { seq: 131, reason: "the signature does not match the receipt" } }
        : { entries: 250, signatures: 250, problem: null };
    case "ledger_export_csv":
      return entries.length;
    case "logs":
      return logView(args.level as LogLevel | null, args.limit as number);
    case "logs_open_folder":
      // Nothing to open here: the call itself, recorded above, is what the tests check.
      return null;
    case "settings_get":
      return config;
    case "settings_set":
      config = args.config as Config;
      return config;
    case "running_processes":
      return PROCESSES;
    case "autostart_get":
      return autostart;
    case "autostart_set":
      autostart = args.enabled as boolean;
      return autostart;
    case "update_check":
      return updateFixture(options.update ?? "newest");
    case "update_install":
      return null;
    default:
      throw { code: "internal", message: `the mock has no command ${cmd}` } satisfies CommandError;
  }
}

mockIPC(
  async (cmd, payload) => {
    const args = payload as Record<string, unknown> | undefined;
    calls.push({ cmd, args: structuredClone(args) });
    await holds.get(cmd)?.until;
    const failure = failures.get(cmd);
    // Rejecting with the error object is what Tauri does when a command returns Err.
    if (failure) throw structuredClone(failure);
    return structuredClone(answer(cmd, args ?? {}));
  },
  { shouldMockEvents: true },
);

const spareMock = {
  calls,
  /** Calls of one command, in order. */
  callsOf: (cmd: string) => calls.filter((c) => c.cmd === cmd).map((c) => c.args),
  fail: (cmd: string, error: CommandError) => failures.set(cmd, error),
  clearFailures: () => failures.clear(),
  /** Makes `cmd` wait, from its next call, until `release(cmd)`. */
  hold: (cmd: string) => {
    let release = () => {};
    const until = new Promise<void>((resolve) => (release = resolve));
    holds.set(cmd, { until, release });
  },
  release: (cmd: string) => {
    holds.get(cmd)?.release();
    holds.delete(cmd);
  },
  /** Changes the node's status and pushes it, as the app does on every change. */
  emitStatus: async (next: StatusName | Status) => {
    status = typeof next === "string" ? statusFixture(next) : next;
    await emit(STATUS_CHANGED, status);
  },
  /** Says the node stopped or could not start, as the app does. */
  emitDown: async (down: NodeDown) => {
    await emit(NODE_DOWN, down);
  },
  /** Writes a line to the log, as the app does while it runs; Refresh shows it. */
  addLogLine: (line: LogLine) => logLines.push(line),
  fixtures: { statusFixture, reportFixture, updateFixture, entries, config: configFixture(), checks: CHECKS, logLines: LOG_LINES },
};
(window as unknown as { spareMock: typeof spareMock }).spareMock = spareMock;

// Imported only now, so the app's first call already meets the mock.
void import("../main");
