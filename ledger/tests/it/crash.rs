//! A child process appending batches in a loop is killed (SIGKILL, or TerminateProcess on
//! Windows); the ledger it leaves verifies, keeps every committed entry and holds no
//! partial batch.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ledger::Ledger;

use crate::support::*;

const BATCH: i64 = 100;
const CHILD_DB: &str = "SPARE_LEDGER_CRASH_CHILD_DB";

/// The child's side: appends batches until killed, printing each committed count.
#[test]
#[ignore = "run by killed_appender_loses_nothing_committed as a child process"]
fn child_appends_until_killed() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let mut ledger = Ledger::open(path).unwrap();
    // Later rounds continue after what earlier rounds committed, with new times.
    let start = ledger.len().unwrap() as i64 / BATCH;
    for b in start.. {
        let batch: Vec<_> = (0..BATCH)
            .map(|i| gpu(MONDAY_MS + (b * BATCH + i) * 1_000, 1 + i))
            .collect();
        let appended = ledger.append_signed(&batch).unwrap();
        println!("committed {}", appended.last_seq);
    }
}

#[test]
fn killed_appender_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::child_appends_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut committed = 0;
        let mut batches_seen = 0;
        while batches_seen < 20 + round * 7 {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                committed = n.parse::<u64>().unwrap();
                batches_seen += 1;
            }
        }
        // SIGKILL (TerminateProcess on Windows): no destructors, no rollback,
        // mid-transaction most likely.
        child.kill().unwrap();
        child.wait().unwrap();

        let ledger = Ledger::open(&path).unwrap();
        let len = ledger.len().unwrap();
        assert!(
            len >= committed,
            "round {round}: {len} entries, {committed} were committed"
        );
        assert_eq!(
            len % BATCH as u64,
            0,
            "round {round}: a partial batch was written"
        );
        let report = ledger.verify().unwrap();
        assert_eq!(report.problem, None, "round {round}");
        assert_eq!(report.entries, len);
    }
}
