//! The Logs screen: what the app and the node wrote to their log, newest first and
//! filtered by level, and the folder the log files are in, which it can open in the file
//! manager so the owner can send them along with a report.

import { useEffect, useState } from "preact/hooks";
import * as api from "../api";
import type { CommandError } from "../bindings/CommandError";
import type { LogLevel } from "../bindings/LogLevel";
import type { LogLine } from "../bindings/LogLine";
import type { LogView } from "../bindings/LogView";
import { ErrorNotice } from "../error-notice";

/** How many lines one read shows; older ones are still in the files. */
export const LOG_LIMIT = 500;

/** What the level filter offers: every line, or a level and those more severe. */
type Filter = LogLevel | "all";

const FILTERS: { id: Filter; label: string }[] = [
  { id: "all", label: "All" },
  { id: "error", label: "Errors" },
  { id: "warn", label: "Warnings and errors" },
  { id: "info", label: "Info and above" },
  { id: "debug", label: "Debug and above" },
];

// The badge says the level in words, so its colour is never the only sign of it.
const LEVEL_WORDS: Record<LogLevel, string> = {
  error: "Error",
  warn: "Warning",
  info: "Info",
  debug: "Debug",
  trace: "Trace",
};

export function LogsScreen() {
  // Info and above by default: debug and trace lines are for developers and would bury
  // the few lines an owner needs.
  const [filter, setFilter] = useState<Filter>("info");
  // Bumped by Refresh, so that the same filter is read again.
  const [reads, setReads] = useState(0);
  const [view, setView] = useState<LogView | null>(null);
  const [error, setError] = useState<CommandError | null>(null);

  useEffect(() => {
    let current = true;
    setError(null);
    api
      .logs(filter === "all" ? null : filter, LOG_LIMIT)
      .then((v) => current && setView(v))
      .catch((e) => current && setError(e as CommandError));
    return () => {
      current = false;
    };
  }, [filter, reads]);

  return (
    <section aria-labelledby="logs-heading">
      <h2 id="logs-heading">Logs</h2>
      <p>
        What Spare wrote while it ran: starts and stops, work done, and what went wrong, with
        the fix when there is one. When you ask for help, send the files in the log folder.
      </p>
      <div class="card">
        {view && (
          <p class="log-folder">
            The log files are in <code data-testid="log-folder">{view.folder}</code>
          </p>
        )}
        <div class="inline log-controls">
          <label for="log-level">Lines to show</label>
          <select
            id="log-level"
            value={filter}
            onChange={(e) => setFilter(e.currentTarget.value as Filter)}
          >
            {FILTERS.map(({ id, label }) => (
              <option value={id}>{label}</option>
            ))}
          </select>
          <button type="button" onClick={() => setReads(reads + 1)}>
            Refresh
          </button>
          <OpenFolder />
        </div>
      </div>
      {error && <ErrorNotice error={error} />}
      {!error && !view && <p class="loading">Reading the log…</p>}
      {!error && view && <Lines lines={view.lines} filtered={filter !== "all"} />}
    </section>
  );
}

/** "Open the folder", and why it could not when it fails. */
function OpenFolder() {
  const [error, setError] = useState<CommandError | null>(null);

  async function open() {
    setError(null);
    try {
      await api.logsOpenFolder();
    } catch (e) {
      setError(e as CommandError);
    }
  }

  return (
    <>
      <button type="button" onClick={open}>
        Open the folder
      </button>
      {/* Below the controls, not squeezed in between them. */}
      {error && (
        <div class="log-open-error">
          <ErrorNotice error={error} />
        </div>
      )}
    </>
  );
}

function Lines({ lines, filtered }: { lines: LogLine[]; filtered: boolean }) {
  if (lines.length === 0) {
    return (
      <p class="muted" data-testid="log-empty">
        No log lines yet.{filtered && " Less severe lines are not shown; choose All to see them."}
      </p>
    );
  }
  return (
    <div class="card">
      {/* Read out after a refresh or a new filter, which otherwise change nothing audible. */}
      <p class="log-count" role="status" data-testid="log-count">
        {lines.length >= LOG_LIMIT
          ? `The newest ${LOG_LIMIT} lines, newest first; older ones are only in the files.`
          : `${lines.length} ${lines.length === 1 ? "line" : "lines"}, newest first.`}
      </p>
      <div class="table-scroll">
        <table class="log-table" data-testid="log-table">
          <caption class="visually-hidden">Log lines, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Level</th>
              <th scope="col">Source</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {lines.map((line) => (
              <tr data-level={line.level}>
                <td class="log-time">
                  <time dateTime={line.time} title={line.time}>
                    {shortTime(line.time)}
                  </time>
                </td>
                <td>
                  <span class={`badge badge-log-${line.level}`}>{LEVEL_WORDS[line.level]}</span>
                </td>
                <td class="log-target">{line.target}</td>
                <td class="log-message">{line.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

/**
 * "6 Dec, 19:25:25" in the computer's time zone (the year only when it is not this
 * one); the line's own text when it is not a time, so nothing is hidden.
 */
function shortTime(time: string): string {
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return time;
  return date.toLocaleString(undefined, {
    day: "numeric",
    month: "short",
    year: date.getFullYear() === new Date().getFullYear() ? undefined : "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}
