//! A command's error, shown by its code: a headline that says what it means for the
//! owner and what to do, then the app's own message. When the node is not running, a
//! button starts it again once the owner has fixed the cause.

import { useState } from "preact/hooks";
import * as api from "./api";
import type { CommandError } from "./bindings/CommandError";
import { showStatus } from "./live-status";

const HEADLINES: Record<CommandError["code"], string> = {
  node_unavailable:
    "The Spare node is not running, so nothing can be lent right now. Fix the cause below, then start it again; if it still fails, run “spare doctor”.",
  invalid_settings: "Some settings were refused. Each reason is shown next to its field.",
  ledger_error: "The earnings ledger could not be read. Your entries are not changed.",
  io_error: "A file could not be read or written.",
  update_error: "Update failed: Spare could not check for a new version or install it.",
  internal: "Something went wrong inside Spare.",
};

export function headlineFor(code: CommandError["code"]): string {
  return HEADLINES[code];
}

export function ErrorNotice({ error }: { error: CommandError }) {
  return (
    <div class="notice notice-error" role="alert" data-error-code={error.code}>
      <p class="notice-headline">{HEADLINES[error.code]}</p>
      {error.message && <p class="notice-detail">{error.message}</p>}
      {error.code === "node_unavailable" && <StartAgain />}
    </div>
  );
}

/** Starts the node again; says why when it still cannot run. */
function StartAgain() {
  const [busy, setBusy] = useState(false);
  const [still, setStill] = useState<string | null>(null);
  async function start() {
    setBusy(true);
    setStill(null);
    try {
      showStatus(await api.nodeStart());
    } catch (error) {
      setStill(api.toCommandError(error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="notice-actions">
      <button type="button" class="node-start" disabled={busy} onClick={() => void start()}>
        {busy ? "Starting the node…" : "Start the node again"}
      </button>
      {still && (
        <p class="node-start-result" role="status">
          It still cannot start: {still}
        </p>
      )}
    </div>
  );
}
