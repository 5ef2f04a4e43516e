//! `spare earnings`, `spare ledger verify` and `spare ledger export` on real ledgers.

use chrono::{Local, TimeZone as _};
use ed25519_dalek::SigningKey;
use ledger::{EntryKind, Ledger, MicroCredits, Network, PartyId, Receipt, SignedReceipt};

use crate::support::*;

fn signed(
    kind: EntryKind,
    network: &str,
    local: (i32, u32, u32, u32),
    amount: i64,
    n: u8,
) -> SignedReceipt {
    let requester = SigningKey::from_bytes(&[7; 32]);
    let (y, m, d, h) = local;
    let time = Local.with_ymd_and_hms(y, m, d, h, 0, 0).single().unwrap();
    Receipt {
        kind,
        network: Network::new(network).unwrap(),
        payee: PartyId::of(&SigningKey::from_bytes(&[1; 32])),
        counterparty: PartyId::of(&requester),
        units: 2_000,
        amount: MicroCredits(amount),
        issued_at_ms: time.timestamp_millis(),
        reference: [n; 32],
    }
    .sign(&requester)
    .unwrap()
}

/// A ledger with GPU and relay earnings over two days, a payout and demo work.
fn seeded(spare: &Spare) -> std::path::PathBuf {
    let path = spare.path("ledger.sqlite3");
    let mut ledger = Ledger::open(&path).unwrap();
    ledger
        .append_signed(&[
            signed(
                EntryKind::GpuJob,
                "spare-main",
                (2026, 11, 20, 10),
                1_500_000,
                1,
            ),
            signed(
                EntryKind::RelaySession,
                "spare-main",
                (2026, 11, 20, 23),
                250_000,
                2,
            ),
            signed(
                EntryKind::GpuJob,
                "spare-main",
                (2026, 11, 21, 0),
                2_000_000,
                3,
            ),
            signed(EntryKind::GpuJob, "demo", (2026, 11, 21, 9), 9_000_000, 4),
            signed(
                EntryKind::Payout,
                "spare-main",
                (2026, 11, 22, 12),
                -1_000_000,
                5,
            ),
        ])
        .unwrap();
    path
}

#[test]
fn earnings_json_counts_real_work_and_keeps_demo_apart() {
    let spare = Spare::new();
    let db = seeded(&spare);
    let run = spare
        .run(&["earnings", "--json", "--db", path_str(&db)])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let days: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["start"].as_str().unwrap(),
                r["earned_micro"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-11-20", 1_750_000),
            ("2026-11-21", 2_000_000),
            ("2026-11-22", 0)
        ]
    );
    assert_eq!(report["all_time_earned_micro"], 3_750_000);
    assert_eq!(report["balance_micro"], 2_750_000);
    assert_eq!(report["in_range"]["payouts_micro"], -1_000_000);
    assert_eq!(report["demo_in_range"]["gpu_jobs"], 1);
    assert_eq!(report["demo_in_range"]["demo_credits_micro"], 9_000_000);
    // Demo work is a series of its own for the charts, never in the earnings rows.
    let demo_rows = report["demo_rows"].as_array().unwrap();
    assert_eq!(demo_rows.len(), 1, "{report}");
    assert_eq!(demo_rows[0]["network"], "demo");
    assert_eq!(demo_rows[0]["gpu_micro"], 9_000_000);
    assert!(rows.iter().all(|r| r["network"] != "demo"));

    let since = spare
        .run(&[
            "earnings",
            "--json",
            "--since",
            "2026-11-21",
            "--db",
            path_str(&db),
        ])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&since.stdout).unwrap();
    assert_eq!(report["in_range_earned_micro"], 2_000_000);
    assert_eq!(report["all_time_earned_micro"], 3_750_000);

    let by_month = spare
        .run(&[
            "earnings",
            "--json",
            "--period",
            "month",
            "--db",
            path_str(&db),
        ])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&by_month.stdout).unwrap();
    assert_eq!(report["rows"].as_array().unwrap().len(), 1);
    assert_eq!(report["rows"][0]["start"], "2026-11-01");
}

#[test]
fn earnings_table_is_readable() {
    let spare = Spare::new();
    let db = seeded(&spare);
    let run = spare.run(&["earnings", "--db", path_str(&db)]).ok();
    assert!(run.stdout.contains("2026-11-20"), "{}", run.stdout);
    assert!(run.stdout.contains("1.750000"), "{}", run.stdout);
    assert!(run.stdout.contains("balance 2.750000"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("Demo work in range (not earnings): 1 GPU jobs"),
        "{}",
        run.stdout
    );
}

#[test]
fn earnings_with_no_ledger_yet_says_so() {
    let spare = Spare::new();
    let run = spare.run(&["earnings"]).ok();
    assert!(run.stdout.contains("No ledger yet"), "{}", run.stdout);
    assert!(!spare.path(".local/share/spare/ledger.sqlite3").exists());
}

#[test]
fn named_ledger_that_does_not_exist_is_an_error() {
    let spare = Spare::new();
    let missing = spare.path("typo.sqlite3");
    for args in [
        vec!["earnings", "--db", path_str(&missing)],
        vec!["ledger", "verify", "--db", path_str(&missing)],
    ] {
        let run = spare.run(&args).fails();
        assert!(run.stderr.contains("typo.sqlite3"), "{}", run.stderr);
    }
    assert!(!missing.exists(), "a mistyped path created a ledger");
}

#[test]
fn bad_since_date_names_the_format() {
    let spare = Spare::new();
    let run = spare.run(&["earnings", "--since", "21/11/2026"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("YYYY-MM-DD"), "{}", run.stderr);
}

#[test]
fn verify_passes_then_names_an_altered_entry() {
    let spare = Spare::new();
    let db = seeded(&spare);
    let run = spare.run(&["ledger", "verify", "--db", path_str(&db)]).ok();
    assert!(
        run.stdout
            .contains("intact: 5 entries chained, 5 signatures valid"),
        "{}",
        run.stdout
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER entries_are_append_only_update;
         UPDATE entries SET amount = 99000000 WHERE seq = 3;",
    )
    .unwrap();
    drop(conn);
    let run = spare
        .run(&["ledger", "verify", "--db", path_str(&db)])
        .fails();
    assert!(
        run.stderr.contains("FAILED verification at entry 3"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("amount"), "{}", run.stderr);

    let json = spare
        .run(&["ledger", "verify", "--json", "--db", path_str(&db)])
        .fails();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["problem"]["seq"], 3);
}

#[test]
fn export_writes_every_entry() {
    let spare = Spare::new();
    let db = seeded(&spare);
    let csv = spare.path("out/earnings.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let run = spare
        .run(&[
            "ledger",
            "export",
            "--csv",
            path_str(&csv),
            "--db",
            path_str(&db),
        ])
        .ok();
    assert!(run.stdout.contains("exported 5 entries"), "{}", run.stdout);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(
        text.lines().nth(5).unwrap().contains(",payout,spare-main,"),
        "{text}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(csv.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "a partial export file was left behind");

    let to_stdout = spare
        .run(&["ledger", "export", "--csv", "-", "--db", path_str(&db)])
        .ok();
    assert_eq!(to_stdout.stdout, text);
}

/// The files in `dir` with their bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
        .collect();
    files.sort();
    files
}

#[test]
fn read_only_commands_refuse_an_empty_or_foreign_file_and_leave_it_as_it_was() {
    let spare = Spare::new();
    let dir = spare.path("files");
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.sqlite3");
    std::fs::write(&empty, b"").unwrap();
    let foreign = dir.join("notes.sqlite3");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    drop(conn);
    let before = snapshot(&dir);
    for (file, words) in [(&empty, "is empty"), (&foreign, "not a Spare ledger")] {
        let csv = spare.path("out.csv");
        for args in [
            vec!["ledger", "verify", "--db", path_str(file)],
            vec![
                "ledger",
                "export",
                "--csv",
                path_str(&csv),
                "--db",
                path_str(file),
            ],
            vec!["earnings", "--db", path_str(file)],
        ] {
            let run = spare.run(&args).fails();
            assert!(run.stderr.contains(words), "{args:?}: {}", run.stderr);
            assert!(!run.stdout.contains("intact"), "{args:?}: {}", run.stdout);
        }
        assert!(!csv.exists());
    }
    assert_eq!(
        snapshot(&dir),
        before,
        "a read-only command changed the files"
    );
}
