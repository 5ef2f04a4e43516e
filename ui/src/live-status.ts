//! The node's status as the whole dashboard sees it: one `status()` call at start, then
//! every `status-changed` and `node-down` event the app pushes. No polling.

import { signal } from "@preact/signals";
import * as api from "./api";
import type { CommandError } from "./bindings/CommandError";
import type { NodeDown } from "./bindings/NodeDown";
import type { Status } from "./bindings/Status";

/** The node's status; null while it is not running. */
export const liveStatus = signal<Status | null>(null);
/** Why the node is not running when the owner must act, until a status arrives. */
export const statusError = signal<CommandError | null>(null);
/** Why the node is not running when it will be by itself (starting, restarting). */
export const nodeStarting = signal<string | null>(null);

let started = false;

/** Subscribes before asking, so no change between the two is missed. */
export async function startLiveStatus(): Promise<void> {
  if (started) return;
  started = true;
  let pushed = false;
  await api.onStatusChanged((status) => {
    pushed = true;
    showStatus(status);
  });
  await api.onNodeDown((down) => {
    pushed = true;
    showDown(down);
  });
  try {
    const first = await api.status();
    // An event that came while we asked is newer than the answer.
    if (!pushed) showStatus(first);
  } catch (error) {
    if (!pushed) statusError.value = error as CommandError;
  }
}

/** Shows a status the app returned (from pause, resume or an event). */
export function showStatus(status: Status): void {
  liveStatus.value = status;
  statusError.value = null;
  nodeStarting.value = null;
}

/** Shows that the node stopped or could not start. */
export function showDown(down: NodeDown): void {
  liveStatus.value = null;
  if (down.planned) {
    statusError.value = null;
    nodeStarting.value = down.why;
  } else {
    statusError.value = { code: "node_unavailable", message: down.why };
    nodeStarting.value = null;
  }
}
