//! The recorder: the one owner of the node's ledger handle. Finished GPU orders, relay
//! sessions, their checkpoints and their recovery after a crash all go through it, and
//! the status reads today's earnings from it, so the node opens its ledger once.
//!
//! It keeps no money of its own: every amount comes from a receipt the counterparty
//! signed (see `ledger`). Appends are a few milliseconds of SQLite with
//! `synchronous=FULL`; callers on an async runtime call it from the one writer task
//! (`Node::start`), which is the order entries reach the chain in.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context as _;
use chrono::Local;
use ledger::{EntryKind, Ledger, Period, SignedReceipt, VerifiedReceipt};
use relay::node::SessionRecord;

/// The node's ledger, opened once, and the folder of running relay sessions' latest
/// promises.
pub struct Recorder {
    ledger: Mutex<Ledger>,
    path: PathBuf,
    checkpoints: PathBuf,
    recorded: AtomicU64,
}

/// Today's credits by resource, and every real credit so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Today {
    /// GPU orders today, real networks.
    pub gpu: i64,
    /// Relay sessions today, real networks.
    pub bandwidth: i64,
    /// Adjustments today, real networks.
    pub adjustments: i64,
    /// GPU orders today on the demo network.
    pub demo_gpu: i64,
    /// Relay sessions today on the demo network.
    pub demo_bandwidth: i64,
    /// Every real credit ever, payouts left out.
    pub all_time: i64,
}

impl Recorder {
    /// Opens (or creates) the ledger at `path`, which reports a damaged or newer ledger
    /// before anything runs, then appends the relay sessions checkpointed in
    /// `checkpoints` before a crash.
    pub fn open(path: &Path, checkpoints: PathBuf) -> anyhow::Result<Recorder> {
        let ledger =
            Ledger::open(path).with_context(|| format!("opening the ledger {}", path.display()))?;
        let recorder = Recorder {
            ledger: Mutex::new(ledger),
            path: path.to_owned(),
            checkpoints,
            recorded: AtomicU64::new(0),
        };
        recorder.recover_sessions();
        Ok(recorder)
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many orders and session reports reached the recorder (appended or not).
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a finished GPU job's signed order.
    pub fn record_order(&self, order: &VerifiedReceipt) {
        match self.ledger().append(order) {
            Ok(_) => tracing::info!(
                amount_micro = order.receipt().amount.0,
                network = %order.receipt().network,
                job = %ledger::hex(&order.receipt().reference[..6]),
                "GPU job recorded"
            ),
            Err(e) => tracing::error!("cannot record a GPU job: {e:#}"),
        }
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// A running session's latest promise is written beside the ledger; a finished
    /// session's goes into the ledger and its checkpoint is removed.
    pub fn record_session(&self, record: SessionRecord) {
        self.write_session(record);
        // Counted once written, so whoever is told of it reads the new earnings.
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }

    fn write_session(&self, record: SessionRecord) {
        let Some(receipt) = record.receipt else {
            return;
        };
        let file = self.checkpoint_file(&receipt);
        if !record.ended {
            let signed = receipt.signed();
            let text = format!(
                "{}\n{}\n",
                ledger::hex(&signed.bytes),
                ledger::hex(&signed.signature)
            );
            let partial = file.with_extension("partial");
            let written = std::fs::create_dir_all(&self.checkpoints)
                .and_then(|()| std::fs::write(&partial, text))
                .and_then(|()| std::fs::rename(&partial, &file));
            if let Err(e) = written {
                tracing::error!(client = %record.client, "cannot checkpoint a relay session: {e}");
            }
            return;
        }
        match self.ledger().append(&receipt) {
            Ok(_) => {
                let _ = std::fs::remove_file(&file);
                tracing::info!(
                    client = %record.client,
                    bytes = receipt.receipt().units,
                    credits = %receipt.receipt().amount,
                    network = %receipt.receipt().network,
                    "relay session recorded"
                );
            }
            Err(e) => tracing::error!(
                client = %record.client,
                "cannot record a relay session in the ledger: {e:#}"
            ),
        }
    }

    fn checkpoint_file(&self, receipt: &VerifiedReceipt) -> PathBuf {
        self.checkpoints.join(format!(
            "{}.receipt",
            ledger::hex(&receipt.receipt().reference)
        ))
    }

    /// Appends sessions checkpointed before a crash, then removes their files.
    fn recover_sessions(&self) {
        let Ok(files) = std::fs::read_dir(&self.checkpoints) else {
            return;
        };
        for file in files.flatten().map(|f| f.path()) {
            if file.extension().is_none_or(|e| e != "receipt") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let mut lines = text.lines();
            let signed = lines.next().and_then(ledger::unhex).zip(
                lines
                    .next()
                    .and_then(ledger::unhex)
                    .and_then(|s| s.try_into().ok()),
            );
            let appended = signed.map(|(bytes, signature)| {
                self.ledger()
                    .append_signed(&[SignedReceipt { bytes, signature }])
            });
            match appended {
                Some(Ok(_)) => {
                    tracing::info!(file = %file.display(), "relay session recovered from its checkpoint");
                    let _ = std::fs::remove_file(&file);
                }
                Some(Err(ledger::Error::Duplicate { .. })) => {
                    let _ = std::fs::remove_file(&file);
                }
                Some(Err(e)) => tracing::error!(
                    file = %file.display(),
                    "cannot recover a relay session: {e:#}"
                ),
                None => tracing::warn!(
                    file = %file.display(),
                    "ignoring a damaged relay checkpoint"
                ),
            }
        }
    }

    /// Today's credits (local time) and every real credit so far, from the ledger's
    /// running totals: a few index seeks, whatever the ledger's size.
    pub fn today(&self) -> Today {
        let ledger = self.ledger();
        let offset = *Local::now().offset();
        let date = Local::now().date_naive();
        let mut t = Today::default();
        if let Ok(rows) = ledger.earnings(Period::Day, Some(date), None, offset) {
            for row in rows {
                let demo = row.network.is_demo();
                match (row.kind, demo) {
                    (EntryKind::GpuJob, false) => t.gpu += row.amount.0,
                    (EntryKind::GpuJob, true) => t.demo_gpu += row.amount.0,
                    (EntryKind::RelaySession, false) => t.bandwidth += row.amount.0,
                    (EntryKind::RelaySession, true) => t.demo_bandwidth += row.amount.0,
                    (EntryKind::Adjustment, false) => t.adjustments += row.amount.0,
                    _ => {}
                }
            }
        }
        if let Ok(totals) = ledger.totals() {
            t.all_time = totals
                .iter()
                .filter(|total| !total.network.is_demo())
                .filter(|total| total.kind != EntryKind::Payout)
                .map(|total| total.amount.0)
                .sum();
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use ledger::{MicroCredits, Network, PartyId, Receipt};

    fn promise(units: u64) -> VerifiedReceipt {
        let client = SigningKey::from_bytes(&[2; 32]);
        Receipt {
            kind: EntryKind::RelaySession,
            network: Network::demo(),
            payee: PartyId::of(&SigningKey::from_bytes(&[1; 32])),
            counterparty: PartyId::of(&client),
            units,
            amount: MicroCredits(units as i64 / 1000),
            issued_at_ms: 1_800_000_000_000,
            reference: [5; 32],
        }
        .sign(&client)
        .unwrap()
        .verify()
        .unwrap()
    }

    fn record(ended: bool, units: u64) -> SessionRecord {
        SessionRecord {
            ended,
            client: PartyId::of(&SigningKey::from_bytes(&[2; 32])),
            up: units / 2,
            down: units / 2,
            receipt: Some(promise(units)),
        }
    }

    #[test]
    fn a_crashed_sessions_checkpoint_reaches_the_ledger_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = dir.path().join("relay-sessions");
        let ledger_path = dir.path().join("ledger.sqlite3");
        let recorder = Recorder::open(&ledger_path, checkpoints.clone()).unwrap();
        recorder.record_session(record(false, 1_000));
        recorder.record_session(record(false, 5_000));
        assert_eq!(std::fs::read_dir(&checkpoints).unwrap().count(), 1);
        assert!(
            Ledger::open_existing(&ledger_path)
                .unwrap()
                .entries(0, 10)
                .unwrap()
                .is_empty(),
            "a running session reached the ledger"
        );
        // The node crashes here; at the next start the checkpoint is appended once.
        drop(recorder);
        drop(Recorder::open(&ledger_path, checkpoints.clone()).unwrap());
        drop(Recorder::open(&ledger_path, checkpoints.clone()).unwrap());
        let ledger = Ledger::open_existing(&ledger_path).unwrap();
        let entries = ledger.entries(0, 10).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].receipt.units, 5_000);
        assert_eq!(std::fs::read_dir(&checkpoints).unwrap().count(), 0);
    }

    #[test]
    fn a_finished_session_is_appended_and_its_checkpoint_removed() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = dir.path().join("relay-sessions");
        let ledger_path = dir.path().join("ledger.sqlite3");
        let recorder = Recorder::open(&ledger_path, checkpoints.clone()).unwrap();
        recorder.record_session(record(false, 1_000));
        recorder.record_session(record(true, 2_000));
        let ledger = Ledger::open_existing(&ledger_path).unwrap();
        assert_eq!(ledger.entries(0, 10).unwrap()[0].receipt.units, 2_000);
        assert_eq!(std::fs::read_dir(&checkpoints).unwrap().count(), 0);
        assert_eq!(ledger.verify().unwrap().problem, None);
        assert_eq!(recorder.recorded(), 2);
    }

    #[test]
    fn today_counts_demo_apart_from_real_credit() {
        let dir = tempfile::tempdir().unwrap();
        let recorder =
            Recorder::open(&dir.path().join("ledger.sqlite3"), dir.path().join("cp")).unwrap();
        assert_eq!(recorder.today(), Today::default());
        let mut session = record(true, 2_000_000);
        let client = SigningKey::from_bytes(&[2; 32]);
        let mut receipt = session.receipt.take().unwrap().receipt().clone();
        receipt.issued_at_ms = chrono::Utc::now().timestamp_millis();
        session.receipt = Some(receipt.sign(&client).unwrap().verify().unwrap());
        recorder.record_session(session);
        let today = recorder.today();
        assert_eq!(today.demo_bandwidth, 2_000);
        assert_eq!((today.bandwidth, today.all_time), (0, 0));
    }
}
