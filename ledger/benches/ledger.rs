//! Ledger benchmark: batched appends, signature checking in `verify`, and a year of
//! earnings by day. Prints one JSON object a line (format in DESIGN.md).
//!
//! `cargo bench -p ledger` runs the full size (1,000,000 entries over one year).
//! Run without `--bench` (as `cargo test --benches` does) it runs a small smoke size
//! so the benchmark cannot rot.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::{Duration, Instant};

use chrono::{FixedOffset, NaiveDate};
use ed25519_dalek::SigningKey;
use ledger::{EntryKind, Ledger, MicroCredits, Network, PartyId, Period, Receipt, SignedReceipt};
use rusqlite::params;

const YEAR_MS: i64 = 365 * 86_400_000;
const START_MS: i64 = 1_735_689_600_000; // 2025-01-01T00:00Z
const BATCH: usize = 1_000;

/// This benchmark's figures, as JSON lines.
const REPORT: bench_support::Reporter = bench_support::Reporter::new("ledger");

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("LEDGER_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 4_000 });
    let dir = tempfile::tempdir().unwrap();
    eprintln!("ledger bench: {n} entries over one year (signing them first)");
    if !full {
        eprintln!("smoke run (no --bench): checks the benchmark works; its figures mean nothing");
    }

    let receipts = make_receipts(n);

    // Baseline for appends: the same rows inserted plainly, same batch size, same
    // pragmas, no signature checks, no chain, no totals.
    let plain_rate = plain_insert_rate(&dir.path().join("plain.sqlite3"), &receipts);

    // A node verifies each receipt where it arrives (the relay and job services must,
    // to decide whether to keep serving); the ledger then appends verified receipts.
    let verified = ledger::verify_all(&receipts).unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let mut ledger = Ledger::open(&path).unwrap();
    let started = Instant::now();
    for batch in verified.chunks(BATCH) {
        ledger.append_batch(batch).unwrap();
    }
    let append_rate = n as f64 / started.elapsed().as_secs_f64();
    REPORT.line(
        "append_batched",
        append_rate,
        "entries/s",
        "sqlite_plain_insert",
        plain_rate,
        ">= 100000 entries/s",
    );
    drop(verified);

    // The same appends with the signature checks done by the ledger itself.
    let mut checked = Ledger::open(dir.path().join("checked.sqlite3")).unwrap();
    let started = Instant::now();
    for batch in receipts.chunks(BATCH) {
        checked.append_signed(batch).unwrap();
    }
    let signed_rate = n as f64 / started.elapsed().as_secs_f64();
    drop(checked);
    REPORT.line(
        "append_signed_batched",
        signed_rate,
        "entries/s",
        "sqlite_plain_insert",
        plain_rate,
        "report",
    );

    // Signature checking inside verify, against one-at-a-time verification.
    let sample = &receipts[..receipts.len().min(20_000)];
    let started = Instant::now();
    for r in sample {
        r.verify().unwrap();
    }
    let single_rate = sample.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let report = ledger.verify().unwrap();
    let verify_secs = started.elapsed().as_secs_f64();
    assert!(report.problem.is_none(), "{report:?}");
    assert_eq!(report.signatures, n as u64);
    REPORT.line(
        "verify_signatures",
        n as f64 / verify_secs,
        "signatures/s",
        "single_verify_one_core",
        single_rate,
        "report",
    );

    // A year of earnings by day, against grouping the raw entries.
    let offset = FixedOffset::east_opt(0).unwrap();
    let since = NaiveDate::from_ymd_opt(2025, 1, 1);
    let until = NaiveDate::from_ymd_opt(2025, 12, 31);
    let query = || ledger.earnings(Period::Day, since, until, offset).unwrap();
    let rows = query();
    let total: i64 = rows.iter().map(|r| r.amount.0).sum();
    let expected: i64 = receipts
        .iter()
        .map(|r| Receipt::from_bytes(&r.bytes).unwrap().amount.0)
        .sum();
    assert_eq!(total, expected, "earnings query lost entries");
    let rollup_ms = best_of(7, query);
    let raw_ms = best_of(3, || {
        let mut stmt = ledger
            .connection()
            .prepare_cached(
                "SELECT time_ms / 86400000 AS day, network, kind, count(*), sum(units), \
                 sum(amount) FROM entries GROUP BY day, network, kind",
            )
            .unwrap();
        stmt.query_map([], |_| Ok(())).unwrap().count()
    });
    REPORT.line(
        "earnings_by_day_1y",
        rollup_ms,
        "ms",
        "group_by_over_entries",
        raw_ms,
        "<= 20 ms",
    );
}

fn make_receipts(n: usize) -> Vec<SignedReceipt> {
    let payee = PartyId::of(&SigningKey::from_bytes(&[1; 32]));
    let signers: Vec<SigningKey> = (0..16u8)
        .map(|i| SigningKey::from_bytes(&[i + 2; 32]))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let signers = &signers;
                scope.spawn(move || {
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| {
                            let key = &signers[i % signers.len()];
                            let gpu = i % 3 != 0;
                            let network = if i % 10 == 0 { "demo" } else { "spare-main" };
                            Receipt {
                                kind: if gpu {
                                    EntryKind::GpuJob
                                } else {
                                    EntryKind::RelaySession
                                },
                                network: Network::new(network).unwrap(),
                                payee,
                                counterparty: PartyId::of(key),
                                units: 1_000 + (i as u64 % 5_000),
                                amount: MicroCredits(100 + (i as i64 % 900)),
                                // Evenly over the year, in time order as a node would see it.
                                issued_at_ms: START_MS + (i as i64 * (YEAR_MS / n as i64)),
                                reference: blake3::hash(&i.to_le_bytes()).into(),
                            }
                            .sign(key)
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn plain_insert_rate(path: &std::path::Path, receipts: &[SignedReceipt]) -> f64 {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(ledger::schema::V1).unwrap();
    let started = Instant::now();
    for (b, batch) in receipts.chunks(BATCH).enumerate() {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .unwrap();
            for (i, s) in batch.iter().enumerate() {
                let seq = (b * BATCH + i + 1) as i64;
                insert
                    .execute(params![
                        seq,
                        START_MS + seq,
                        "gpu_job",
                        "spare-main",
                        [0u8; 32],
                        [0u8; 32],
                        1_000,
                        100,
                        [0u8; 32],
                        s.bytes,
                        s.signature,
                        [0u8; 32],
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    receipts.len() as f64 / started.elapsed().as_secs_f64()
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed()
        })
        .min()
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
        * 1_000.0
}
