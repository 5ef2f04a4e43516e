//! `Ledger::open_read_only` refuses whatever is not a ledger and changes nothing: the
//! file's bytes and the files beside it are the same before and after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ledger::{Error, Ledger};
use rusqlite::Connection;

use crate::support::*;

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Opens `path` read-only, expecting a refusal, and checks nothing in `dir` changed.
fn refused(dir: &Path, path: &Path) -> Error {
    let before = snapshot(dir);
    let err = Ledger::open_read_only(path).unwrap_err();
    assert_eq!(snapshot(dir), before, "{err}");
    err
}

#[test]
fn missing_file_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let err = refused(dir.path(), &path);
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(err.to_string().starts_with("no ledger at "), "{err}");
    assert!(!path.exists());
}

#[test]
fn empty_file_is_refused_and_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    std::fs::write(&path, b"").unwrap();
    let err = refused(dir.path(), &path);
    assert!(matches!(err, Error::Empty(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("is empty: it is not a Spare ledger"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"buy milk\n".repeat(100)).unwrap();
    let err = refused(dir.path(), &path);
    assert!(matches!(err, Error::NotSqlite { .. }), "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");

    let err = refused(dir.path(), dir.path());
    assert!(err.to_string().contains("it is a directory"), "{err}");
}

#[test]
fn another_programs_sqlite_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.sqlite3");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);
             INSERT INTO notes (text) VALUES ('buy milk'), ('call home');",
        )
        .unwrap();
    }
    let err = refused(dir.path(), &path);
    assert!(matches!(err, Error::NotLedger { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("is a SQLite database but not a Spare ledger")
            && message.contains("no entries table, user_version 0"),
        "{message}"
    );
}

#[test]
fn an_older_ledger_is_refused_rather_than_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    {
        let mut conn = Connection::open(&path).unwrap();
        ledger::schema::migrate_to(&mut conn, 1).unwrap();
    }
    let err = refused(dir.path(), &path);
    assert!(matches!(err, Error::OlderSchema { found: 1, .. }), "{err}");
    assert!(err.to_string().contains("start the node once"), "{err}");
}

#[test]
fn a_real_ledger_is_read_and_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    {
        let mut ledger = Ledger::open(&path).unwrap();
        let batch: Vec<_> = (0..30).map(|i| gpu(MONDAY_MS + i * HOUR_MS, 10)).collect();
        ledger.append_signed(&batch).unwrap();
    }
    let before = std::fs::read(&path).unwrap();

    let mut ledger = Ledger::open_read_only(&path).unwrap();
    assert!(ledger.is_read_only());
    let report = ledger.verify().unwrap();
    assert_eq!((report.entries, report.problem), (30, None));
    assert_eq!(ledger.entries(0, 100).unwrap().len(), 30);
    assert_eq!(ledger.totals().unwrap()[0].amount.0, 300);
    let mut csv = Vec::new();
    assert_eq!(ledger.export_csv(&mut csv).unwrap(), 30);

    let err = ledger
        .append_signed(&[gpu(MONDAY_MS + 99 * HOUR_MS, 1)])
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly(_)), "{err}");
    drop(ledger);

    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Beside it, at most the WAL reader's files: an empty -wal and the -shm index.
    for (file, bytes) in snapshot(dir.path()) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match name.as_str() {
            "ledger.sqlite3" | "ledger.sqlite3-shm" => {}
            "ledger.sqlite3-wal" => assert!(bytes.is_empty()),
            other => panic!("{other} was left beside the ledger"),
        }
    }
    assert_eq!(Ledger::open(&path).unwrap().len().unwrap(), 30);
}

#[test]
fn reads_while_the_node_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let mut writer = Ledger::open(&path).unwrap();
    writer.append_signed(&[gpu(MONDAY_MS, 5)]).unwrap();

    let reader = Ledger::open_read_only(&path).unwrap();
    assert_eq!(reader.verify().unwrap().entries, 1);
    writer
        .append_signed(&[gpu(MONDAY_MS + HOUR_MS, 5), gpu(MONDAY_MS + DAY_MS, 5)])
        .unwrap();
    let report = reader.verify().unwrap();
    assert_eq!((report.entries, report.problem), (3, None));
    assert_eq!(reader.totals().unwrap()[0].amount.0, 15);
}
