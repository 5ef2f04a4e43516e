//! Schema migrations, tested from a seeded old file, reopening the file at each step.

use ledger::schema::{self, LATEST_VERSION};
use ledger::{Error, Ledger, chain_hash};
use rusqlite::{Connection, params};

use crate::support::*;

fn user_version(path: &std::path::Path) -> u32 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Writes a version-1 file the way the version-1 code did: rows with their chain.
fn seed_v1(path: &std::path::Path, n: i64) {
    let mut conn = Connection::open(path).unwrap();
    schema::migrate_to(&mut conn, 1).unwrap();
    let mut prev = ledger::GENESIS;
    for i in 0..n {
        let signed = gpu(MONDAY_MS + i * 5 * HOUR_MS, 1_000 + i);
        let r = signed.verify().unwrap();
        let r = r.receipt();
        let seq = (i + 1) as u64;
        prev = chain_hash(&prev, seq, &signed);
        conn.execute(
            "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                seq as i64,
                r.issued_at_ms,
                r.kind.as_str(),
                r.network.as_str(),
                r.payee.as_bytes(),
                r.counterparty.as_bytes(),
                r.units as i64,
                r.amount.0,
                r.reference,
                signed.bytes,
                signed.signature,
                prev
            ],
        )
        .unwrap();
    }
}

#[test]
fn version_1_file_upgrades_and_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    seed_v1(&path, 40);
    assert_eq!(user_version(&path), 1);

    {
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(ledger.len().unwrap(), 40);
        assert_eq!(ledger.verify().unwrap().problem, None);
    }
    assert_eq!(user_version(&path), LATEST_VERSION);

    // The totals built by the migration agree with the entries and keep working.
    let mut ledger = Ledger::open(&path).unwrap();
    let total: i64 = (0..40).map(|i| 1_000 + i).sum();
    assert_eq!(ledger.totals().unwrap()[0].amount.0, total);
    ledger
        .append_signed(&[gpu(MONDAY_MS + 300 * HOUR_MS, 5)])
        .unwrap();
    assert_eq!(ledger.totals().unwrap()[0].amount.0, total + 5);
    drop(ledger);
    let ledger = Ledger::open_existing(&path).unwrap();
    assert_eq!(ledger.verify().unwrap().problem, None);
    assert_eq!(ledger.len().unwrap(), 41);
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    drop(Ledger::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", LATEST_VERSION + 1)
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    let err = Ledger::open(&path).unwrap_err();
    assert!(matches!(err, Error::NewerSchema { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("newer") && message.contains("upgrade Spare"),
        "{message}"
    );
    assert_eq!(user_version(&path), LATEST_VERSION + 1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
