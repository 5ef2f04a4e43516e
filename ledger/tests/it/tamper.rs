//! Rows altered behind the ledger's back (raw SQL, triggers dropped) are named by
//! `verify`.

use ledger::{EntryKind, Ledger};

use crate::support::*;

fn ledger_with(n: i64) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    let batch: Vec<_> = (0..n)
        .map(|i| gpu(MONDAY_MS + i * HOUR_MS, 100 + i))
        .collect();
    ledger.append_signed(&batch).unwrap();
    assert_eq!(ledger.verify().unwrap().problem, None);
    (dir, ledger)
}

fn drop_triggers(ledger: &Ledger) {
    ledger
        .connection()
        .execute_batch(
            "DROP TRIGGER entries_are_append_only_update;
             DROP TRIGGER entries_are_append_only_delete;",
        )
        .unwrap();
}

#[test]
fn altered_amount_column_is_named() {
    let (_dir, ledger) = ledger_with(1_200);
    drop_triggers(&ledger);
    ledger
        .connection()
        .execute(
            "UPDATE entries SET amount = amount * 100 WHERE seq = 700",
            [],
        )
        .unwrap();
    let problem = ledger.verify().unwrap().problem.unwrap();
    assert_eq!(problem.seq, 700);
    assert!(problem.reason.contains("amount"), "{}", problem.reason);
}

#[test]
fn swapped_receipt_is_caught_by_the_chain() {
    let (_dir, ledger) = ledger_with(20);
    drop_triggers(&ledger);
    // Replace entry 9's receipt and columns with a validly signed, bigger one: every
    // field agrees and the signature verifies, but the chain does not.
    let bigger = sign(&receipt(
        EntryKind::GpuJob,
        "spare-main",
        MONDAY_MS + 8 * HOUR_MS,
        99_999,
    ));
    let r = bigger.verify().unwrap();
    ledger
        .connection()
        .execute(
            "UPDATE entries SET amount = ?1, receipt = ?2, signature = ?3, reference = ?4 WHERE seq = 9",
            rusqlite::params![r.receipt().amount.0, bigger.bytes, bigger.signature, r.receipt().reference],
        )
        .unwrap();
    let problem = ledger.verify().unwrap().problem.unwrap();
    assert_eq!(problem.seq, 9);
    assert!(problem.reason.contains("chain hash"), "{}", problem.reason);
}

/// Rewrites entry `from`'s signature and re-chains every entry after it, as someone
/// who knows the format would: only the signature check can catch this.
fn forge_signature_and_rechain(ledger: &Ledger, from: i64) {
    let conn = ledger.connection();
    let mut prev: [u8; 32] = conn
        .query_row("SELECT hash FROM entries WHERE seq = ?1", [from - 1], |r| {
            r.get(0)
        })
        .unwrap();
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT seq, receipt, signature FROM entries WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (seq, bytes, signature) in rows {
        let mut signature: [u8; 64] = signature.try_into().unwrap();
        if seq == from {
            signature[63] ^= 0x01;
        }
        let signed = ledger::SignedReceipt { bytes, signature };
        prev = ledger::chain_hash(&prev, seq as u64, &signed);
        conn.execute(
            "UPDATE entries SET signature = ?2, hash = ?3 WHERE seq = ?1",
            rusqlite::params![seq, signature, prev],
        )
        .unwrap();
    }
}

#[test]
fn broken_signature_is_named_even_after_later_structural_damage() {
    let (_dir, ledger) = ledger_with(1_500);
    drop_triggers(&ledger);
    forge_signature_and_rechain(&ledger, 1_030);
    // A later entry removed as well: the signature problem comes first in the chain,
    // so it is the one reported, though it sits in a batch checked after the gap.
    ledger
        .connection()
        .execute("DELETE FROM entries WHERE seq = 1040", [])
        .unwrap();
    let problem = ledger.verify().unwrap().problem.unwrap();
    assert_eq!(problem.seq, 1_030, "{problem:?}");
    assert!(problem.reason.contains("signature"), "{}", problem.reason);
}

#[test]
fn forged_signature_in_a_full_chunk_is_named() {
    let (_dir, ledger) = ledger_with(1_500);
    drop_triggers(&ledger);
    forge_signature_and_rechain(&ledger, 333);
    let problem = ledger.verify().unwrap().problem.unwrap();
    assert_eq!(problem.seq, 333, "{problem:?}");
    assert!(
        problem.reason.contains("does not verify"),
        "{}",
        problem.reason
    );
}

#[test]
fn deleted_entry_is_named() {
    let (_dir, ledger) = ledger_with(10);
    drop_triggers(&ledger);
    ledger
        .connection()
        .execute("DELETE FROM entries WHERE seq = 4", [])
        .unwrap();
    let problem = ledger.verify().unwrap().problem.unwrap();
    assert_eq!(problem.seq, 4);
    assert!(problem.reason.contains("missing"), "{}", problem.reason);
}

#[test]
fn inflated_totals_are_named() {
    let (_dir, ledger) = ledger_with(10);
    ledger
        .connection()
        .execute("UPDATE earnings_running SET amount = amount + 1000000", [])
        .unwrap();
    let problem = ledger.verify().unwrap().problem.unwrap();
    assert_eq!(problem.seq, 0);
    assert!(problem.reason.contains("totals"), "{}", problem.reason);
}
