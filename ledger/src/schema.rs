//! The ledger's SQLite schema and its migrations, keyed on `PRAGMA user_version`.
//!
//! Each migration moves the file from version `n` to `n + 1` inside one transaction,
//! so a crash leaves the file at a version it had. A file from a newer Spare is
//! refused, never downgraded. Migrations never rewrite entries: the signed receipt
//! bytes and the hash chain are the same before and after.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;

/// The schema this build writes and reads.
pub const LATEST_VERSION: u32 = 2;

/// Version 1: the entries table, append-only.
///
/// Every column but `seq` and `hash` is a copy of a field of the signed receipt, kept
/// as a column so queries need not decode receipts; `verify` checks they agree.
pub const V1: &str = r#"
CREATE TABLE entries (
    seq          INTEGER PRIMARY KEY,
    time_ms      INTEGER NOT NULL,
    kind         TEXT    NOT NULL
                 CHECK (kind IN ('gpu_job', 'relay_session', 'adjustment', 'payout')),
    network      TEXT    NOT NULL,
    payee        BLOB    NOT NULL CHECK (length(payee) = 32),
    counterparty BLOB    NOT NULL CHECK (length(counterparty) = 32),
    units        INTEGER NOT NULL CHECK (units >= 0),
    amount       INTEGER NOT NULL,
    reference    BLOB    NOT NULL CHECK (length(reference) = 32),
    receipt      BLOB    NOT NULL,
    signature    BLOB    NOT NULL CHECK (length(signature) = 64),
    hash         BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- A receipt is counted once: the same signed receipt appended again is refused.
-- Keyed on the signed time first, so that appends (nearly in time order) add to the
-- end of the index instead of touching a random page each. Zero references
-- (payouts, adjustments) are exempt: they carry no job or session to repeat.
CREATE UNIQUE INDEX entries_once ON entries (time_ms, counterparty, reference)
    WHERE reference != zeroblob(32);

CREATE TRIGGER entries_are_append_only_update BEFORE UPDATE ON entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only: UPDATE refused');
END;

CREATE TRIGGER entries_are_append_only_delete BEFORE DELETE ON entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only: DELETE refused');
END;
"#;

/// Version 2: running earnings totals per quarter hour, so that any period's earnings
/// is the difference of two running totals found by index seeks, whatever the number
/// of entries. A year of daily earnings reads about 370 rows per network and kind.
/// Quarter hours (not days) keep local days exact in every time zone, including the
/// :30 and :45 offsets.
///
/// Row `(network, kind, bucket)` holds the totals of every entry of that network and
/// kind with `time_ms / 900000 <= bucket`. The totals are derived data, kept in the
/// same transaction as each append; `verify` recomputes them from the entries.
pub const V2: &str = r#"
CREATE TABLE earnings_running (
    network  TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    bucket   INTEGER NOT NULL,  -- quarter hours since 1970-01-01T00:00Z
    entries  INTEGER NOT NULL,  -- running totals up to and including this bucket
    units    INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    PRIMARY KEY (network, kind, bucket)
) STRICT, WITHOUT ROWID;

INSERT INTO earnings_running (network, kind, bucket, entries, units, amount)
SELECT network, kind, bucket, sum(n) OVER w, sum(u) OVER w, sum(a) OVER w
FROM (SELECT network, kind, time_ms / 900000 AS bucket, count(*) AS n, sum(units) AS u,
             sum(amount) AS a
      FROM entries GROUP BY 1, 2, 3)
WINDOW w AS (PARTITION BY network, kind ORDER BY bucket);
"#;

/// Milliseconds in one rollup bucket.
pub const BUCKET_MS: i64 = 900_000;

const MIGRATIONS: [&str; LATEST_VERSION as usize] = [V1, V2];

/// The tables a ledger at [`LATEST_VERSION`] has.
const TABLES: [&str; 2] = ["entries", "earnings_running"];

/// Checks, without writing, that `conn` holds a Spare ledger at [`LATEST_VERSION`]:
/// what a read-only opening needs, since it cannot migrate.
pub(crate) fn check_current(conn: &Connection, path: &Path) -> Result<(), Error> {
    let open_err = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let found: u32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    if found > LATEST_VERSION {
        return Err(Error::NewerSchema {
            found,
            supported: LATEST_VERSION,
        });
    }
    let mut missing = Vec::new();
    for table in TABLES {
        let exists: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
                [table],
                |row| row.get(0),
            )
            .map_err(open_err)?;
        if !exists {
            missing.push(table);
        }
    }
    // Every version has the entries table; without it the file is someone else's.
    let no_entries = missing.contains(&"entries");
    if found == 0 || no_entries {
        let table = if no_entries { "no entries table, " } else { "" };
        return Err(Error::NotLedger {
            path: path.to_owned(),
            missing: format!("{table}user_version {found}"),
        });
    }
    if found < LATEST_VERSION {
        return Err(Error::OlderSchema {
            found,
            supported: LATEST_VERSION,
        });
    }
    if let Some(table) = missing.first() {
        return Err(Error::NotLedger {
            path: path.to_owned(),
            missing: format!("no {table} table, which version {found} has"),
        });
    }
    Ok(())
}

/// Brings the file up to [`LATEST_VERSION`], or refuses a newer one.
pub fn migrate(conn: &mut Connection) -> Result<(), Error> {
    migrate_to(conn, LATEST_VERSION)
}

/// Brings the file up to `target` (tests use this to seed old versions).
pub fn migrate_to(conn: &mut Connection, target: u32) -> Result<(), Error> {
    loop {
        // Read the version inside the write transaction so two processes opening a new
        // file at once cannot both run the same migration.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: u32 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > LATEST_VERSION {
            return Err(Error::NewerSchema {
                found,
                supported: LATEST_VERSION,
            });
        }
        if found >= target {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[found as usize])?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}
