//! The node's status as the whole dashboard sees it: one `status()` call at start, then
//! every `status-changed` event the app pushes. No polling.

import { signal } from "@preact/signals";
import * as api from "./api";
import type { CommandError } from "./bindings/CommandError";
import type { Status } from "./bindings/Status";

export const liveStatus = signal<Status | null>(null);
/** Why the first status could not be read, until a status arrives. */
export const statusError = signal<CommandError | null>(null);

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
}
