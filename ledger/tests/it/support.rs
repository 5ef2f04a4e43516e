//! Keys, receipts and ledger files for the tests.

use ed25519_dalek::SigningKey;
use ledger::{EntryKind, Ledger, MicroCredits, Network, PartyId, Receipt, SignedReceipt};

/// 2026-11-02T00:00:00Z, a Monday.
pub const MONDAY_MS: i64 = 1_793_577_600_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

pub fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

pub fn requester_key() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

pub fn relay_client_key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

pub fn receipt(kind: EntryKind, network: &str, time_ms: i64, amount: i64) -> Receipt {
    let signer = match kind {
        EntryKind::RelaySession => relay_client_key(),
        _ => requester_key(),
    };
    Receipt {
        kind,
        network: Network::new(network).unwrap(),
        payee: PartyId::of(&node_key()),
        counterparty: PartyId::of(&signer),
        units: 1_000,
        amount: MicroCredits(amount),
        issued_at_ms: time_ms,
        reference: unique_reference(time_ms),
    }
}

pub fn sign(r: &Receipt) -> SignedReceipt {
    let key = if r.counterparty == PartyId::of(&relay_client_key()) {
        relay_client_key()
    } else {
        requester_key()
    };
    r.sign(&key).unwrap()
}

pub fn gpu(time_ms: i64, amount: i64) -> SignedReceipt {
    sign(&receipt(EntryKind::GpuJob, "spare-main", time_ms, amount))
}

pub fn open(dir: &tempfile::TempDir) -> Ledger {
    Ledger::open(dir.path().join("ledger.sqlite3")).unwrap()
}

/// A reference no other receipt of this process has, and that differs between
/// processes appending to one file as long as their times differ.
pub fn unique_reference(time_ms: i64) -> [u8; 32] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    h.update(&time_ms.to_le_bytes());
    h.update(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    *h.finalize().as_bytes()
}
