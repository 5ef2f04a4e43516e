//! The ledger as the owner sees it: entries page by page, each with its receipt and
//! signature in hex so they can be checked by anyone, and the outcome of a check, as
//! plain serializable values for the tray app's Ledger screen.
//!
//! The dashboard's TypeScript types are generated from these (ts-rs, with the `ts`
//! feature, which only the tray app turns on); `receipt` and `ledger` know nothing of
//! TypeScript, so the ledger's own types that the dashboard names (`EntryKind`,
//! `Period`) are given their TypeScript shape here.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use ledger::{Entry, EntryKind, Ledger};
use serde::Serialize;

/// The most entries one page holds.
pub const MAX_PAGE: u32 = 1_000;

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "Entry"))]
pub struct EntryView {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When the receipt was issued, Unix milliseconds.
    pub time_ms: i64,
    /// `gpu_job`, `relay_session`, `adjustment` or `payout`.
    #[cfg_attr(feature = "ts", ts(as = "EntryKindTs"))]
    pub kind: EntryKind,
    /// The network (`demo` work is never earnings).
    pub network: String,
    /// Who signed the receipt, hex.
    pub counterparty: String,
    /// Workgroups for a GPU job, bytes for a relay session.
    pub units: u64,
    /// Micro-credits.
    pub amount_micro: i64,
    /// The receipt's reference (the order or the session), hex.
    pub reference: String,
    /// The receipt's canonical bytes, hex: what was signed.
    pub receipt_hex: String,
    /// The counterparty's ed25519 signature, hex.
    pub signature_hex: String,
    /// This entry's link in the hash chain, hex.
    pub hash_hex: String,
}

/// `ledger::EntryKind` in TypeScript: what an entry is for. Credits come from work;
/// payouts take credit out.
#[cfg(feature = "ts")]
#[derive(ts_rs::TS)]
#[ts(rename = "EntryKind", rename_all = "snake_case")]
pub enum EntryKindTs {
    /// A GPU job run for a requester.
    GpuJob,
    /// A relay session for a relay client.
    RelaySession,
    /// A correction by the counterparty.
    Adjustment,
    /// Credit paid out of the ledger.
    Payout,
}

/// `ledger::Period` in TypeScript: the length of the calendar periods earnings are
/// grouped by.
#[cfg(feature = "ts")]
#[derive(ts_rs::TS)]
#[ts(rename = "Period", rename_all = "lowercase")]
pub enum PeriodTs {
    /// Calendar days.
    Day,
    /// Weeks starting on Monday.
    Week,
    /// Calendar months.
    Month,
}

/// The outcome of checking the ledger (`ledger::VerifyReport`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "VerifyReport"))]
pub struct VerifyView {
    /// Entries whose chain link and fields were checked.
    pub entries: u64,
    /// Signatures checked.
    pub signatures: u64,
    /// The first thing found wrong, if any; `null` means the ledger is intact.
    pub problem: Option<VerifyProblem>,
}

/// Something the check found wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VerifyProblem {
    /// The first bad entry's sequence number (0 for the earnings totals table).
    pub seq: u64,
    /// What is wrong with it, in a sentence.
    pub reason: String,
}

impl From<ledger::VerifyReport> for VerifyView {
    fn from(report: ledger::VerifyReport) -> Self {
        Self {
            entries: report.entries,
            signatures: report.signatures,
            problem: report.problem.map(|p| VerifyProblem {
                seq: p.seq,
                reason: p.reason,
            }),
        }
    }
}

impl From<&Entry> for EntryView {
    fn from(e: &Entry) -> Self {
        let r = &e.receipt;
        Self {
            seq: e.seq,
            time_ms: r.issued_at_ms,
            kind: r.kind,
            network: r.network.as_str().to_owned(),
            counterparty: r.counterparty.to_string(),
            units: r.units,
            amount_micro: r.amount.0,
            reference: ledger::hex(&r.reference),
            receipt_hex: ledger::hex(&e.signed.bytes),
            signature_hex: ledger::hex(&e.signed.signature),
            hash_hex: ledger::hex(&e.hash),
        }
    }
}

/// Up to `limit` entries after `after_seq` (0: from the start), oldest first;
/// `limit` is capped at [`MAX_PAGE`].
pub fn page(ledger: &Ledger, after_seq: u64, limit: u32) -> Result<Vec<EntryView>, ledger::Error> {
    Ok(ledger
        .entries(after_seq, limit.min(MAX_PAGE))?
        .iter()
        .map(EntryView::from)
        .collect())
}

/// Writes the whole ledger as CSV to `dest` and returns the number of entries. The CSV
/// is written next to its destination and renamed into place, so a failed export never
/// leaves a truncated file that looks complete.
pub fn export_csv_file(ledger: &Ledger, dest: &Path) -> anyhow::Result<u64> {
    let file_name = dest
        .file_name()
        .with_context(|| format!("{} is not a file path", dest.display()))?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(file_name);
    partial_name.push(".partial");
    let partial = dest.with_file_name(partial_name);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let count = ledger.export_csv(&mut writer)?;
    writer.flush()?;
    let file = writer.into_inner().context("flushing the export")?;
    file.sync_all()?;
    if let Err(e) = std::fs::rename(&partial, dest) {
        let _ = std::fs::remove_file(&partial);
        bail!("moving the export to {}: {e}", dest.display());
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use ledger::{EntryKind, MicroCredits, Network, PartyId, Receipt};

    /// The TypeScript shapes given here name exactly what serde writes for the ledger's
    /// own types, so the dashboard and the node cannot drift apart.
    #[cfg(feature = "ts")]
    #[test]
    fn the_typescript_shapes_match_the_ledgers_serde_names() {
        use ts_rs::TS as _;
        let names = |values: Vec<serde_json::Value>| {
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let kinds = [
            EntryKind::GpuJob,
            EntryKind::RelaySession,
            EntryKind::Adjustment,
            EntryKind::Payout,
        ];
        assert_eq!(
            EntryKindTs::inline(&ts_rs::Config::default()),
            names(
                kinds
                    .iter()
                    .map(|k| serde_json::to_value(k).unwrap())
                    .collect()
            )
        );
        let periods = [
            ledger::Period::Day,
            ledger::Period::Week,
            ledger::Period::Month,
        ];
        assert_eq!(
            PeriodTs::inline(&ts_rs::Config::default()),
            names(
                periods
                    .iter()
                    .map(|p| serde_json::to_value(p).unwrap())
                    .collect()
            )
        );
    }

    #[test]
    fn pages_show_every_entry_with_its_signed_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path().join("l.sqlite3")).unwrap();
        let node = SigningKey::from_bytes(&[1; 32]);
        let client = SigningKey::from_bytes(&[2; 32]);
        let receipts: Vec<_> = (0..5u8)
            .map(|i| {
                Receipt {
                    kind: EntryKind::GpuJob,
                    network: Network::new("spare").unwrap(),
                    payee: PartyId::of(&node),
                    counterparty: PartyId::of(&client),
                    units: 100 + u64::from(i),
                    amount: MicroCredits(10 * i64::from(i) + 1),
                    issued_at_ms: 1_800_000_000_000 + i64::from(i),
                    reference: [i + 1; 32],
                }
                .sign(&client)
                .unwrap()
                .verify()
                .unwrap()
            })
            .collect();
        ledger.append_batch(&receipts).unwrap();
        let first = page(&ledger, 0, 3).unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let rest = page(&ledger, 3, 100).unwrap();
        assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        let e = &rest[1];
        assert_eq!(
            (e.kind.as_str(), e.units, e.amount_micro),
            ("gpu_job", 104, 41)
        );
        assert_eq!(e.counterparty, PartyId::of(&client).to_string());
        // The hex is the receipt exactly as signed: anyone can check it.
        let signed = ledger::SignedReceipt {
            bytes: ledger::unhex(&e.receipt_hex).unwrap(),
            signature: ledger::unhex(&e.signature_hex).unwrap().try_into().unwrap(),
        };
        assert_eq!(signed.verify().unwrap().receipt().units, 104);
    }
}
