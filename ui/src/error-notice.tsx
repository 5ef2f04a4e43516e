//! A command's error, shown by its code: a headline that says what it means for the
//! owner and what to do, then the app's own message.

import type { CommandError } from "./bindings/CommandError";

const HEADLINES: Record<CommandError["code"], string> = {
  node_unavailable:
    "The Spare node is not running, so nothing can be lent right now. Quit Spare and open it again; if this stays, run “spare doctor”.",
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
    </div>
  );
}
