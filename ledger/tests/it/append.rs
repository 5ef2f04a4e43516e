use ledger::{EntryKind, Error, Ledger, ReceiptError, SignedReceipt};

use crate::support::*;

#[test]
fn appended_entries_read_back_in_order_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    assert!(ledger.is_empty().unwrap());
    let first = ledger.append_signed(&[gpu(MONDAY_MS, 10)]).unwrap();
    assert_eq!((first.first_seq, first.last_seq), (1, 1));
    let batch: Vec<SignedReceipt> = (1..=5).map(|i| gpu(MONDAY_MS + i, 10 + i)).collect();
    let appended = ledger.append_signed(&batch).unwrap();
    assert_eq!((appended.first_seq, appended.last_seq), (2, 6));

    let entries = ledger.entries(0, 100).unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[5].hash, appended.head);
    assert_eq!(entries[3].signed, batch[2]);
    assert!(entries.windows(2).all(|w| w[0].seq + 1 == w[1].seq));

    let report = ledger.verify().unwrap();
    assert_eq!(report.problem, None);
    assert_eq!((report.entries, report.signatures), (6, 6));
}

#[test]
fn verify_tells_how_far_it_has_got_up_to_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    let batch: Vec<SignedReceipt> = (0..1300).map(|i| gpu(MONDAY_MS + i, 10)).collect();
    ledger.append_signed(&batch).unwrap();
    let mut seen = Vec::new();
    let report = ledger
        .verify_with_progress(&mut |checked, total| seen.push((checked, total)))
        .unwrap();
    assert_eq!(report.problem, None);
    // After each batch of 512 signatures, and at the end.
    assert_eq!(seen, [(512, 1300), (1024, 1300), (1300, 1300)]);
}

#[test]
fn forged_receipt_is_refused_and_nothing_of_its_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    let good = gpu(MONDAY_MS, 10);
    // Signed by the node itself instead of the requester it names.
    let forged = SignedReceipt {
        signature: ed25519_dalek::Signer::sign(&node_key(), &good.bytes).to_bytes(),
        bytes: good.bytes.clone(),
    };
    let err = ledger
        .append_signed(&[good.clone(), gpu(MONDAY_MS + 1, 5), forged])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                index: 2,
                source: ReceiptError::BadSignature(_)
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("receipt 2"), "{err}");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(ledger.len().unwrap(), 0, "a refused batch wrote entries");
}

#[test]
fn unsigned_and_malformed_receipts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    let good = gpu(MONDAY_MS, 10);
    let unsigned = SignedReceipt {
        bytes: good.bytes.clone(),
        signature: [0; 64],
    };
    let err = ledger.append_signed(&[unsigned]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                source: ReceiptError::BadSignature(_),
                ..
            }
        ),
        "{err}"
    );

    // The amount raised after signing.
    let mut raised = good.clone();
    let amount_low_byte = raised.bytes.len() - 32 - 8 - 1;
    raised.bytes[amount_low_byte] = 0x7f;
    let err = ledger.append_signed(&[raised]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                source: ReceiptError::BadSignature(_),
                ..
            }
        ),
        "{err}"
    );

    let truncated = SignedReceipt {
        bytes: good.bytes[..40].to_vec(),
        signature: good.signature,
    };
    let err = ledger.append_signed(&[truncated]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                source: ReceiptError::Truncated { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(ledger.len().unwrap(), 0);
}

#[test]
fn ledger_triggers_refuse_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    ledger.append_signed(&[gpu(MONDAY_MS, 10)]).unwrap();
    let conn = ledger.connection();
    let err = conn
        .execute("UPDATE entries SET amount = 999", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = conn.execute("DELETE FROM entries", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(ledger.verify().unwrap().problem, None);
}

#[test]
fn entries_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let mut ledger = open(&dir);
        ledger
            .append_signed(&[gpu(MONDAY_MS, 1), gpu(MONDAY_MS + 1, 2)])
            .unwrap()
            .head
    };
    let mut ledger = Ledger::open_existing(dir.path().join("ledger.sqlite3")).unwrap();
    let next = ledger.append_signed(&[gpu(MONDAY_MS + 2, 3)]).unwrap();
    assert_eq!(next.first_seq, 3);
    assert_eq!(ledger.entries(1, 1).unwrap()[0].hash, head);
    assert_eq!(ledger.verify().unwrap().problem, None);
}

#[test]
fn open_existing_names_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Ledger::open_existing(dir.path().join("nope.sqlite3")).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));
    assert!(err.to_string().contains("nope.sqlite3"), "{err}");
    assert!(!dir.path().join("nope.sqlite3").exists());
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    std::fs::write(
        &path,
        b"this is not sqlite, it is a shopping list\n".repeat(200),
    )
    .unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Ledger::open(&path).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err}");
    assert!(err.to_string().contains("ledger.sqlite3"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn csv_export_has_every_entry_with_exact_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    ledger
        .append_signed(&[
            gpu(MONDAY_MS, 1_250_000),
            sign(&receipt(EntryKind::Payout, "spare-main", MONDAY_MS + 5, -7)),
        ])
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(ledger.export_csv(&mut out).unwrap(), 2);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("seq,time_utc,kind,network,units,unit,amount_micro,amount,"));
    assert!(
        lines[1].starts_with(
            "1,2026-11-02T00:00:00.000Z,gpu_job,spare-main,1000,gpu_ms,1250000,1.250000,"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",payout,spare-main,1000,none,-7,-0.000007,"),
        "{}",
        lines[2]
    );
    // The receipt and signature columns are enough to re-verify an entry elsewhere.
    let fields: Vec<&str> = lines[1].split(',').collect();
    let signed = SignedReceipt {
        bytes: ledger::unhex(fields[11]).unwrap(),
        signature: ledger::unhex(fields[12]).unwrap().try_into().unwrap(),
    };
    assert!(signed.verify().is_ok());
}

#[test]
fn a_replayed_receipt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(&dir);
    let once = gpu(MONDAY_MS, 10);
    ledger.append_signed(std::slice::from_ref(&once)).unwrap();
    let err = ledger
        .append_signed(&[gpu(MONDAY_MS + 1, 1), once])
        .unwrap_err();
    assert!(matches!(err, Error::Duplicate { index: 1, .. }), "{err}");
    assert!(err.to_string().contains("counted once"), "{err}");
    assert_eq!(ledger.len().unwrap(), 1);
    // Payouts carry no reference and may repeat.
    let payout = sign(&receipt(EntryKind::Payout, "spare-main", MONDAY_MS, -5));
    let mut payout_receipt = payout.verify().unwrap().receipt().clone();
    payout_receipt.reference = [0; 32];
    let payout = sign(&payout_receipt);
    ledger.append_signed(&[payout.clone(), payout]).unwrap();
    assert_eq!(ledger.len().unwrap(), 3);
}
