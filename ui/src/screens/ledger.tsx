//! The Ledger screen: every entry with its signed receipt (expandable), a page at a
//! time; verifying the hash chain and signatures; exporting the ledger as CSV.

import { useEffect, useState } from "preact/hooks";
import * as api from "../api";
import type { CommandError } from "../bindings/CommandError";
import type { Entry } from "../bindings/Entry";
import type { EntryKind } from "../bindings/EntryKind";
import type { VerifyReport } from "../bindings/VerifyReport";
import { formatBytes, formatCredits } from "../credits";
import { ErrorNotice } from "../error-notice";

export const PAGE_SIZE = 100;

const KIND_WORDS: Record<EntryKind, string> = {
  gpu_job: "GPU job",
  relay_session: "Relay session",
  adjustment: "Adjustment",
  payout: "Payout",
};

export function LedgerScreen() {
  return (
    <section aria-labelledby="ledger-heading">
      <h2 id="ledger-heading">Ledger</h2>
      <p>
        Every credit comes from a receipt signed by the one who paid it. Entries are chained
        by hash, so changing any of them breaks the chain.
      </p>
      <div class="cards">
        <Verify />
        <ExportCsv />
      </div>
      <Entries />
    </section>
  );
}

function Entries() {
  // The `after_seq` of each page shown so far; the last one is the current page.
  const [starts, setStarts] = useState<number[]>([0]);
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const afterSeq = starts[starts.length - 1];

  useEffect(() => {
    let current = true;
    setError(null);
    api
      .ledgerEntries(afterSeq, PAGE_SIZE)
      .then((page) => current && setEntries(page))
      .catch((e) => current && setError(e as CommandError));
    return () => {
      current = false;
    };
  }, [afterSeq]);

  if (error) return <ErrorNotice error={error} />;
  if (!entries) return <p class="loading">Reading the ledger…</p>;
  if (entries.length === 0 && starts.length === 1) {
    return <p class="muted">No entries yet: the first finished job or relay session adds one.</p>;
  }
  const first = entries[0]?.seq;
  const last = entries[entries.length - 1]?.seq;

  return (
    <div class="card">
      <nav class="pager" aria-label="Ledger pages">
        <button
          type="button"
          disabled={starts.length === 1}
          onClick={() => setStarts(starts.slice(0, -1))}
        >
          Previous {PAGE_SIZE}
        </button>
        <span data-testid="page-range" role="status">
          {entries.length > 0 ? `Entries ${first} to ${last}` : "No more entries"}
        </span>
        <button
          type="button"
          disabled={entries.length < PAGE_SIZE}
          onClick={() => setStarts([...starts, last])}
        >
          Next {PAGE_SIZE}
        </button>
      </nav>
      <div class="table-scroll">
        <table data-testid="ledger-table">
          <caption class="visually-hidden">Ledger entries, oldest first</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Time</th>
              <th scope="col">Kind</th>
              <th scope="col">Network</th>
              <th scope="col" class="num">Units</th>
              <th scope="col" class="num">Amount</th>
              <th scope="col">Receipt</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((entry) => (
              <EntryRows
                entry={entry}
                open={open === entry.seq}
                onToggle={() => setOpen(open === entry.seq ? null : entry.seq)}
              />
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function unitsText(entry: Entry): string {
  switch (entry.kind) {
    case "gpu_job":
      return `${entry.units} workgroups`;
    case "relay_session":
      return formatBytes(entry.units);
    default:
      return String(entry.units);
  }
}

function EntryRows({ entry, open, onToggle }: { entry: Entry; open: boolean; onToggle: () => void }) {
  const detailsId = `receipt-${entry.seq}`;
  const demo = entry.network === "demo";
  return (
    <>
      <tr data-seq={entry.seq} class={demo ? "demo" : undefined}>
        <td>{entry.seq}</td>
        <td>{new Date(entry.time_ms).toLocaleString()}</td>
        <td>{KIND_WORDS[entry.kind]}</td>
        <td>
          {entry.network}
          {demo && <span class="tag tag-demo">not earnings</span>}
        </td>
        <td class="num">{unitsText(entry)}</td>
        <td class="num">{formatCredits(entry.amount_micro)}</td>
        <td>
          <button
            type="button"
            class="link"
            aria-expanded={open}
            aria-controls={detailsId}
            onClick={onToggle}
          >
            {open ? "Hide" : "Show"}
            <span class="visually-hidden"> receipt of entry {entry.seq}</span>
          </button>
        </td>
      </tr>
      {open && (
        <tr class="receipt-row">
          <td colSpan={7} id={detailsId}>
            <dl class="receipt">
              <dt>Counterparty (who signed)</dt>
              <dd><code>{entry.counterparty}</code></dd>
              <dt>Reference</dt>
              <dd><code>{entry.reference}</code></dd>
              <dt>Receipt</dt>
              <dd><code data-testid="receipt-hex">{entry.receipt_hex}</code></dd>
              <dt>Signature</dt>
              <dd><code>{entry.signature_hex}</code></dd>
              <dt>Entry hash</dt>
              <dd><code>{entry.hash_hex}</code></dd>
            </dl>
          </td>
        </tr>
      )}
    </>
  );
}

function Verify() {
  const [result, setResult] = useState<VerifyReport | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);

  async function run() {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await api.ledgerVerify());
    } catch (e) {
      setError(e as CommandError);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="card" aria-labelledby="verify-heading">
      <h3 id="verify-heading">Verify</h3>
      <p>Re-checks every entry's hash and signature.</p>
      <button type="button" onClick={run} disabled={busy}>
        {busy ? "Verifying…" : "Verify the ledger"}
      </button>
      {error && <ErrorNotice error={error} />}
      {result && !result.problem && (
        <p class="notice notice-ok" role="status" data-testid="verify-result" data-intact="true">
          Intact: {result.entries} entries and {result.signatures} signatures checked; nothing was
          altered.
        </p>
      )}
      {result?.problem && (
        <p class="notice notice-error" role="alert" data-testid="verify-result" data-intact="false">
          Entry {result.problem.seq} fails: {result.problem.reason}. The entries before it
          check out; this one and those after it cannot be trusted.
        </p>
      )}
    </div>
  );
}

function ExportCsv() {
  const [path, setPath] = useState("spare-ledger.csv");
  const [written, setWritten] = useState<{ count: number; path: string } | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);

  async function run(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setWritten(null);
    try {
      const count = await api.ledgerExportCsv(path.trim());
      setWritten({ count, path: path.trim() });
    } catch (e) {
      setError(e as CommandError);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card" onSubmit={run} aria-labelledby="export-heading">
      <h3 id="export-heading">Export</h3>
      <div class="field">
        <label for="export-path">Save the ledger as CSV to</label>
        <input id="export-path" value={path} onInput={(e) => setPath(e.currentTarget.value)} />
      </div>
      <button type="submit" disabled={busy || path.trim() === ""}>
        Export CSV
      </button>
      {error && <ErrorNotice error={error} />}
      {written && (
        <p class="notice notice-ok" role="status" data-testid="export-result">
          Wrote {written.count} entries to {written.path}.
        </p>
      )}
    </form>
  );
}
