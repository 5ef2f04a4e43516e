//! Every call from the dashboard to the app: one typed function per Tauri command and
//! event, and the one error type they reject with. Nothing else imports @tauri-apps/api,
//! so this file is the whole contract with src-tauri (argument names are snake_case).

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { Check } from "./bindings/Check";
import type { CommandError } from "./bindings/CommandError";
import type { Config } from "./bindings/Config";
import type { Entry } from "./bindings/Entry";
import type { LogLevel } from "./bindings/LogLevel";
import type { LogView } from "./bindings/LogView";
import type { NodeDown } from "./bindings/NodeDown";
import type { PauseFor } from "./bindings/PauseFor";
import type { PauseTarget } from "./bindings/PauseTarget";
import type { Period } from "./bindings/Period";
import type { Report } from "./bindings/Report";
import type { Status } from "./bindings/Status";
import type { UpdateCheck } from "./bindings/UpdateCheck";
import type { VerifyReport } from "./bindings/VerifyReport";

/** The event the app emits with the new Status whenever the node's status changes. */
export const STATUS_CHANGED = "status-changed";
/** The event the app emits with a NodeDown when the node stops or cannot start. */
export const NODE_DOWN = "node-down";

const CODES: ReadonlyArray<CommandError["code"]> = [
  "node_unavailable",
  "invalid_settings",
  "ledger_error",
  "io_error",
  "update_error",
  "internal",
];

/** Anything a command rejected with, as a CommandError (unknown shapes become `internal`). */
export function toCommandError(thrown: unknown): CommandError {
  if (typeof thrown === "object" && thrown !== null) {
    const { code, message } = thrown as { code?: unknown; message?: unknown };
    if (typeof code === "string" && (CODES as string[]).includes(code)) {
      const text = typeof message === "string" ? message : "";
      if (code === "invalid_settings") {
        const problems = (thrown as { problems?: unknown }).problems;
        return { code, message: text, problems: Array.isArray(problems) ? problems : [] };
      }
      return { code: code as Exclude<CommandError["code"], "invalid_settings">, message: text };
    }
  }
  return { code: "internal", message: thrown instanceof Error ? thrown.message : String(thrown) };
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (thrown) {
    throw toCommandError(thrown);
  }
}

export function status(): Promise<Status> {
  return call("status");
}

/** Calls `handle` with every Status the app pushes; resolves to the function that stops it. */
export function onStatusChanged(handle: (status: Status) => void): Promise<UnlistenFn> {
  return listen<Status>(STATUS_CHANGED, (event) => handle(event.payload));
}

/** Calls `handle` whenever the node stops or cannot start, with why. */
export function onNodeDown(handle: (down: NodeDown) => void): Promise<UnlistenFn> {
  return listen<NodeDown>(NODE_DOWN, (event) => handle(event.payload));
}

/** Starts the node again after it could not start; resolves to its status. */
export function nodeStart(): Promise<Status> {
  return call("node_start");
}

export function pause(target: PauseTarget, until: PauseFor): Promise<Status> {
  return call("pause", { target, for: until });
}

export function resume(target: PauseTarget): Promise<Status> {
  return call("resume", { target });
}

export function diagnostics(): Promise<Check[]> {
  return call("diagnostics");
}

/** `since` is a local date, YYYY-MM-DD, or null for everything. */
export function earnings(period: Period, since: string | null): Promise<Report> {
  return call("earnings", { period, since });
}

/** Entries with `seq` above `afterSeq`, oldest first, at most `limit`. */
export function ledgerEntries(afterSeq: number, limit: number): Promise<Entry[]> {
  return call("ledger_entries", { after_seq: afterSeq, limit });
}

export function ledgerVerify(): Promise<VerifyReport> {
  return call("ledger_verify");
}

/** Writes the whole ledger as CSV to `path`; resolves to the number of entries written. */
export function ledgerExportCsv(path: string): Promise<number> {
  return call("ledger_export_csv", { path });
}

/**
 * The log folder and its newest lines, newest first, at most `limit`: only those at
 * `level` or more severe, or every line when `level` is null.
 */
export function logs(level: LogLevel | null, limit: number): Promise<LogView> {
  return call("logs", { level, limit });
}

/** Opens the log folder in the system's file manager. */
export function logsOpenFolder(): Promise<void> {
  return call("logs_open_folder");
}

export function settingsGet(): Promise<Config> {
  return call("settings_get");
}

/** Saves and applies `config`; resolves to the config now in force. */
export function settingsSet(config: Config): Promise<Config> {
  return call("settings_set", { config });
}

export function runningProcesses(): Promise<string[]> {
  return call("running_processes");
}

export function autostartGet(): Promise<boolean> {
  return call("autostart_get");
}

export function autostartSet(enabled: boolean): Promise<boolean> {
  return call("autostart_set", { enabled });
}

/** Asks the update server (the saved `[updates]` endpoint, or Spare's own) for a newer Spare. */
export function updateCheck(): Promise<UpdateCheck> {
  return call("update_check");
}

/**
 * Downloads, checks the signature of and installs the newer Spare; on success the app
 * restarts into it, so the promise may never settle.
 */
export function updateInstall(): Promise<void> {
  return call("update_install");
}
