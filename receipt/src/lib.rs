//! Receipts: the counterparty-signed statements that back every ledger entry.
//!
//! A receipt says "I, `counterparty`, owe `payee` this `amount` for these `units` of
//! this `kind` of work on this `network`". Its canonical encoding is a fixed binary
//! layout (below) and the counterparty's ed25519 signature covers exactly those bytes,
//! so a receipt cannot be re-used for another amount, node or network.
//!
//! The ledger stores receipts, the relay receives them as a client's usage promises and
//! the GPU job service as a requester's signed orders; this crate only encodes, decodes
//! and checks signatures, and does no I/O.
//!
//! Encoding, version 1 (all integers big-endian):
//!
//! ```text
//! magic        14 bytes  "spare-receipt\0" (domain separation for the signature)
//! version       1 byte   1
//! kind          1 byte   1 gpu_job, 2 relay_session, 3 adjustment, 4 payout
//! network       1 byte length n (1..=64), then n bytes [a-z0-9._-]
//! payee        32 bytes  ed25519 public key of the node being paid
//! counterparty 32 bytes  ed25519 public key of the signer
//! units         8 bytes  u64 <= 2^50 (GPU-milliseconds or bytes)
//! amount        8 bytes  i64 micro-credits, |amount| <= 10^12 (credits >= 0; payouts <= 0)
//! issued_at     8 bytes  i64 milliseconds since the Unix epoch, UTC, >= 0
//! reference    32 bytes  what it is for (job digest, session id); required for work
//! ```

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

const MAGIC: &[u8; 14] = b"spare-receipt\0";
const VERSION: u8 = 1;
/// The longest network name a receipt may carry.
pub const MAX_NETWORK_LEN: usize = 64;
/// Length of an encoded ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// The largest amount one receipt may carry, either sign: 1,000,000 credits. Bounding
/// it keeps every sum the ledger keeps far from overflowing.
pub const MAX_AMOUNT: i64 = 1_000_000 * MicroCredits::PER_CREDIT;
/// The most units one receipt may carry (2⁵⁰: a pebibyte, or 35 GPU-years in ms).
pub const MAX_UNITS: u64 = 1 << 50;

/// Why receipt bytes or receipt fields were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The bytes end before the receipt does.
    #[error("receipt is truncated: {needed} more bytes expected at offset {offset}")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// The bytes do not start with the receipt magic.
    #[error("not a Spare receipt (bad magic bytes)")]
    BadMagic,
    /// The receipt was encoded by a newer or unknown format version.
    #[error("receipt format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// The kind byte or name is not one of the known kinds.
    #[error("unknown entry kind {0:?}: expected gpu_job, relay_session, adjustment or payout")]
    UnknownKind(String),
    /// The network name is empty, too long or has characters outside `[a-z0-9._-]`.
    #[error("invalid network name {0:?}: use 1 to 64 characters from a-z, 0-9, '.', '_' and '-'")]
    BadNetwork(String),
    /// A public key is not a valid ed25519 point.
    #[error("invalid ed25519 public key {0}")]
    BadPublicKey(String),
    /// Units over [`MAX_UNITS`].
    #[error("units {0} out of range: at most {max} per receipt", max = MAX_UNITS)]
    UnitsOutOfRange(u64),
    /// An amount over [`MAX_AMOUNT`] either way.
    #[error("amount {0} micro-credits is out of range: at most {max} either way per receipt", max = MAX_AMOUNT)]
    AmountOutOfRange(i64),
    /// A receipt for work must name the job or session it pays for.
    #[error("a {0} receipt must name its job or session in `reference` (all zeros given)")]
    NoReference(EntryKind),
    /// The amount has the wrong sign for the kind of entry.
    #[error("amount {amount} is not allowed for {kind}: {rule}")]
    AmountSign {
        /// The entry kind.
        kind: EntryKind,
        /// The refused amount in micro-credits.
        amount: i64,
        /// What the kind allows.
        rule: &'static str,
    },
    /// The timestamp is before the Unix epoch.
    #[error("issued_at {0} ms is before 1970-01-01")]
    TimeOutOfRange(i64),
    /// Bytes were left over after a complete receipt.
    #[error("{0} unexpected bytes after the receipt")]
    TrailingBytes(usize),
    /// The key that signed is not the receipt's counterparty.
    #[error("signing key {signer} is not the receipt's counterparty {counterparty}")]
    WrongSigner {
        /// The key that tried to sign.
        signer: PartyId,
        /// The counterparty named in the receipt.
        counterparty: PartyId,
    },
    /// The signature does not verify under the counterparty's key.
    #[error(
        "receipt signature does not verify under counterparty {0}: forged, altered or unsigned"
    )]
    BadSignature(PartyId),
}

/// An ed25519 public key naming a node, requester, relay client or payout service.
///
/// Shown as 64 lowercase hex characters. Only bytes that decode to a curve point are
/// accepted; the point itself is decoded again where a signature is checked, which
/// keeps this type 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyId([u8; 32]);

impl PartyId {
    /// Accepts 32 bytes only if they are a valid ed25519 public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, ReceiptError> {
        VerifyingKey::from_bytes(&bytes).map_err(|_| ReceiptError::BadPublicKey(hex(&bytes)))?;
        Ok(Self(bytes))
    }

    /// The public key of a signing key.
    pub fn of(key: &SigningKey) -> Self {
        Self(key.verifying_key().to_bytes())
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as an ed25519 verifying key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, ReceiptError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| ReceiptError::BadPublicKey(hex(&self.0)))
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(self.as_bytes()))
    }
}

impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyId({self})")
    }
}

impl FromStr for PartyId {
    type Err = ReceiptError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ReceiptError::BadPublicKey(format!("{s:?}: expected 64 hex characters"));
        let bytes = unhex(s).ok_or_else(bad)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Self::from_bytes(bytes)
    }
}

/// What an entry is for. Credits come from work; payouts take credit out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A GPU job run for a requester; units are GPU-milliseconds.
    GpuJob,
    /// A relay session for a relay client; units are bytes forwarded.
    RelaySession,
    /// A correction by the counterparty, either sign; units are informational.
    Adjustment,
    /// Credit paid out of the ledger; amount is zero or negative.
    Payout,
}

impl EntryKind {
    /// Every kind, in code order.
    pub const ALL: [EntryKind; 4] = [
        EntryKind::GpuJob,
        EntryKind::RelaySession,
        EntryKind::Adjustment,
        EntryKind::Payout,
    ];

    /// The stable name used in the database, CSV and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::GpuJob => "gpu_job",
            EntryKind::RelaySession => "relay_session",
            EntryKind::Adjustment => "adjustment",
            EntryKind::Payout => "payout",
        }
    }

    /// What the units of this kind measure.
    pub fn unit_name(self) -> &'static str {
        match self {
            EntryKind::GpuJob => "gpu_ms",
            EntryKind::RelaySession => "bytes",
            EntryKind::Adjustment | EntryKind::Payout => "none",
        }
    }

    fn code(self) -> u8 {
        match self {
            EntryKind::GpuJob => 1,
            EntryKind::RelaySession => 2,
            EntryKind::Adjustment => 3,
            EntryKind::Payout => 4,
        }
    }

    fn from_code(code: u8) -> Result<Self, ReceiptError> {
        Ok(match code {
            1 => EntryKind::GpuJob,
            2 => EntryKind::RelaySession,
            3 => EntryKind::Adjustment,
            4 => EntryKind::Payout,
            other => return Err(ReceiptError::UnknownKind(format!("code {other}"))),
        })
    }

    fn check_amount(self, amount: MicroCredits) -> Result<(), ReceiptError> {
        let (ok, rule) = match self {
            EntryKind::GpuJob | EntryKind::RelaySession => (amount.0 >= 0, "must be >= 0"),
            EntryKind::Payout => (amount.0 <= 0, "must be <= 0 (a payout takes credit out)"),
            EntryKind::Adjustment => (true, ""),
        };
        if ok {
            Ok(())
        } else {
            Err(ReceiptError::AmountSign {
                kind: self,
                amount: amount.0,
                rule,
            })
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = ReceiptError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ReceiptError::UnknownKind(s.to_owned()))
    }
}

/// The network a receipt was earned on. `demo` is the built-in demo network, whose
/// entries are shown apart and never counted as earnings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Network(String);

impl Network {
    /// The demo network's name.
    pub const DEMO: &'static str = "demo";

    /// Accepts 1 to 64 characters from `[a-z0-9._-]`.
    pub fn new(name: impl Into<String>) -> Result<Self, ReceiptError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= MAX_NETWORK_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if valid {
            Ok(Self(name))
        } else {
            Err(ReceiptError::BadNetwork(name))
        }
    }

    /// The demo network.
    pub fn demo() -> Self {
        Self(Self::DEMO.to_owned())
    }

    /// True for the demo network, whose credit is not earnings.
    pub fn is_demo(&self) -> bool {
        self.0 == Self::DEMO
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Network({})", self.0)
    }
}

/// An amount of credit in integer micro-credits (1 credit = 1,000,000). Never a float.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct MicroCredits(pub i64);

impl MicroCredits {
    /// Micro-credits in one credit.
    pub const PER_CREDIT: i64 = 1_000_000;
}

impl fmt::Display for MicroCredits {
    /// Formats as credits with six decimals, exactly: `-1.250000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = Self::PER_CREDIT.unsigned_abs();
        write!(f, "{sign}{}.{:06}", abs / per, abs % per)
    }
}

/// The content of a receipt, before or after signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// What the work was.
    pub kind: EntryKind,
    /// Where it was earned.
    pub network: Network,
    /// The node being paid.
    pub payee: PartyId,
    /// Who signs and owes.
    pub counterparty: PartyId,
    /// GPU-milliseconds or bytes; at most `i64::MAX`.
    pub units: u64,
    /// The credit (or, for payouts, debit).
    pub amount: MicroCredits,
    /// When the counterparty issued it, milliseconds since the Unix epoch, UTC.
    pub issued_at_ms: i64,
    /// What it is for: a job digest or a session id; zeros when not applicable.
    pub reference: [u8; 32],
}

impl Receipt {
    /// Checks the field rules that the encoding cannot express.
    pub fn check(&self) -> Result<(), ReceiptError> {
        if self.units > MAX_UNITS {
            return Err(ReceiptError::UnitsOutOfRange(self.units));
        }
        if self.issued_at_ms < 0 {
            return Err(ReceiptError::TimeOutOfRange(self.issued_at_ms));
        }
        if self.amount.0.unsigned_abs() > MAX_AMOUNT.unsigned_abs() {
            return Err(ReceiptError::AmountOutOfRange(self.amount.0));
        }
        let credits_work = matches!(self.kind, EntryKind::GpuJob | EntryKind::RelaySession);
        if credits_work && self.reference == [0; 32] {
            return Err(ReceiptError::NoReference(self.kind));
        }
        self.kind.check_amount(self.amount)
    }

    /// The canonical bytes the signature covers.
    pub fn to_bytes(&self) -> Vec<u8> {
        let network = self.network.as_str().as_bytes();
        let mut out = Vec::with_capacity(ENCODED_FIXED_LEN + network.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.kind.code());
        // Network::new caps the length at 64, so it fits one byte.
        out.push(network.len() as u8);
        out.extend_from_slice(network);
        out.extend_from_slice(self.payee.as_bytes());
        out.extend_from_slice(self.counterparty.as_bytes());
        out.extend_from_slice(&self.units.to_be_bytes());
        out.extend_from_slice(&self.amount.0.to_be_bytes());
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        out.extend_from_slice(&self.reference);
        out
    }

    /// Decodes canonical bytes strictly: every field checked, nothing left over.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let mut r = Reader { bytes, offset: 0 };
        if r.take::<14>()? != *MAGIC {
            return Err(ReceiptError::BadMagic);
        }
        let [version] = r.take::<1>()?;
        if version != VERSION {
            return Err(ReceiptError::UnsupportedVersion(version));
        }
        let [kind] = r.take::<1>()?;
        let kind = EntryKind::from_code(kind)?;
        let [len] = r.take::<1>()?;
        let network = r.slice(usize::from(len))?;
        let network = Network::new(String::from_utf8_lossy(network).into_owned())?;
        let payee = PartyId::from_bytes(r.take::<32>()?)?;
        let counterparty = PartyId::from_bytes(r.take::<32>()?)?;
        let units = u64::from_be_bytes(r.take::<8>()?);
        let amount = MicroCredits(i64::from_be_bytes(r.take::<8>()?));
        let issued_at_ms = i64::from_be_bytes(r.take::<8>()?);
        let reference = r.take::<32>()?;
        if r.offset != bytes.len() {
            return Err(ReceiptError::TrailingBytes(bytes.len() - r.offset));
        }
        let receipt = Receipt {
            kind,
            network,
            payee,
            counterparty,
            units,
            amount,
            issued_at_ms,
            reference,
        };
        receipt.check()?;
        Ok(receipt)
    }

    /// Signs the receipt as its counterparty.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedReceipt, ReceiptError> {
        self.check()?;
        let signer = PartyId::of(key);
        if signer != self.counterparty {
            return Err(ReceiptError::WrongSigner {
                signer,
                counterparty: self.counterparty,
            });
        }
        let bytes = self.to_bytes();
        let signature = key.sign(&bytes).to_bytes();
        Ok(SignedReceipt { bytes, signature })
    }
}

/// Length of the encoding without the network name.
const ENCODED_FIXED_LEN: usize = 14 + 1 + 1 + 1 + 32 + 32 + 8 + 8 + 8 + 32;

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn slice(&mut self, len: usize) -> Result<&'a [u8], ReceiptError> {
        let rest = &self.bytes[self.offset.min(self.bytes.len())..];
        let Some(out) = rest.get(..len) else {
            return Err(ReceiptError::Truncated {
                offset: self.offset,
                needed: len - rest.len(),
            });
        };
        self.offset += len;
        Ok(out)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], ReceiptError> {
        let slice = self.slice(N)?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

/// A receipt as it travels: its canonical bytes and a signature, not yet checked.
///
/// The ledger decodes and verifies it before appending; nothing trusts it before that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedReceipt {
    /// The canonical receipt bytes.
    pub bytes: Vec<u8>,
    /// The counterparty's ed25519 signature over `bytes`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedReceipt {
    /// Decodes the receipt and checks its signature.
    pub fn verify(&self) -> Result<VerifiedReceipt, ReceiptError> {
        let receipt = Receipt::from_bytes(&self.bytes)?;
        let signature = Signature::from_bytes(&self.signature);
        receipt
            .counterparty
            .verifying_key()?
            .verify(&self.bytes, &signature)
            .map_err(|_| ReceiptError::BadSignature(receipt.counterparty))?;
        Ok(VerifiedReceipt {
            receipt,
            signed: self.clone(),
        })
    }
}

/// A receipt whose signature was checked against its counterparty's key.
///
/// The only way to get one is [`SignedReceipt::verify`] or [`verify_all`], and it is
/// the only kind of receipt the ledger appends: a node checks a receipt once, where it
/// arrives, and the type carries that fact to the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    receipt: Receipt,
    signed: SignedReceipt,
}

impl VerifiedReceipt {
    /// The decoded content.
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// The bytes and signature as received.
    pub fn signed(&self) -> &SignedReceipt {
        &self.signed
    }
}

/// Verifies many receipts, in batches across the machine's cores; on failure names
/// the first refused receipt by its index.
pub fn verify_all(
    receipts: &[SignedReceipt],
) -> Result<Vec<VerifiedReceipt>, (usize, ReceiptError)> {
    let decoded = receipts
        .iter()
        .enumerate()
        .map(|(index, s)| Receipt::from_bytes(&s.bytes).map_err(|e| (index, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let messages: Vec<&[u8]> = receipts.iter().map(|s| s.bytes.as_slice()).collect();
    let signatures: Vec<[u8; 64]> = receipts.iter().map(|s| s.signature).collect();
    let keys: Vec<PartyId> = decoded.iter().map(|r| r.counterparty).collect();
    if !verify_batch_parallel(&messages, &signatures, &keys) {
        // Batch verification only says that one is bad: find which.
        for (index, signed) in receipts.iter().enumerate() {
            signed.verify().map_err(|e| (index, e))?;
        }
    }
    Ok(decoded
        .into_iter()
        .zip(receipts)
        .map(|(receipt, signed)| VerifiedReceipt {
            receipt,
            signed: signed.clone(),
        })
        .collect())
}

/// [`verify_batch`] split across the machine's cores for large batches.
pub fn verify_batch_parallel(
    messages: &[&[u8]],
    signatures: &[[u8; 64]],
    keys: &[PartyId],
) -> bool {
    const MIN_PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(messages.len() / MIN_PER_THREAD)
        .max(1);
    if threads == 1 {
        return verify_batch(messages, signatures, keys);
    }
    let per = messages.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = t * per..((t + 1) * per).min(messages.len());
                scope.spawn(move || {
                    verify_batch(
                        &messages[range.clone()],
                        &signatures[range.clone()],
                        &keys[range],
                    )
                })
            })
            .collect();
        // A panicked verifier thread counts as a failed batch, never as success.
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    })
}

/// Verifies many signatures at once; `true` only if every one verifies.
///
/// Batch verification is about twice as fast as one at a time, but only says whether
/// the whole batch is good: callers that must name the bad one fall back to checking
/// each signature when this returns `false`.
pub fn verify_batch(messages: &[&[u8]], signatures: &[[u8; 64]], keys: &[PartyId]) -> bool {
    if messages.is_empty() {
        return true;
    }
    let signatures: Vec<Signature> = signatures.iter().map(Signature::from_bytes).collect();
    let Ok(keys) = keys
        .iter()
        .map(PartyId::verifying_key)
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    ed25519_dalek::verify_batch(messages, &signatures, &keys).is_ok()
}

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Bytes from hex, or `None` if the text is not even-length hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn receipt() -> Receipt {
        Receipt {
            kind: EntryKind::GpuJob,
            network: Network::demo(),
            payee: PartyId::of(&key(1)),
            counterparty: PartyId::of(&key(2)),
            units: 1_500,
            amount: MicroCredits(250),
            issued_at_ms: 1_700_000_000_000,
            reference: [7; 32],
        }
    }

    #[test]
    fn signed_receipt_round_trips_and_verifies() {
        let signed = receipt().sign(&key(2)).unwrap();
        assert_eq!(signed.verify().unwrap().receipt(), &receipt());
    }

    #[test]
    fn altered_bytes_fail_verification() {
        let mut signed = receipt().sign(&key(2)).unwrap();
        let last = signed.bytes.len() - 40; // inside `issued_at`
        signed.bytes[last] ^= 1;
        assert!(matches!(
            signed.verify(),
            Err(ReceiptError::BadSignature(_))
        ));
    }

    #[test]
    fn only_the_counterparty_can_sign() {
        let err = receipt().sign(&key(3)).unwrap_err();
        assert!(matches!(err, ReceiptError::WrongSigner { .. }), "{err}");
    }

    #[test]
    fn amount_sign_follows_kind() {
        let mut r = receipt();
        r.amount = MicroCredits(-1);
        assert!(matches!(r.check(), Err(ReceiptError::AmountSign { .. })));
        r.kind = EntryKind::Payout;
        assert_eq!(r.check(), Ok(()));
        r.amount = MicroCredits(5);
        assert!(r.check().is_err());
    }

    #[test]
    fn network_names_are_strict() {
        assert!(Network::new("demo").is_ok());
        assert!(Network::new("spare-main.v2_1").is_ok());
        for bad in ["", "Demo", "a b", "é", &"x".repeat(65)] {
            assert!(Network::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn micro_credits_format_exactly() {
        assert_eq!(MicroCredits(1_250_000).to_string(), "1.250000");
        assert_eq!(MicroCredits(-7).to_string(), "-0.000007");
        assert_eq!(MicroCredits(i64::MIN).to_string(), "-9223372036854.775808");
    }

    #[test]
    fn amounts_units_and_references_are_bounded() {
        let mut r = receipt();
        r.amount = MicroCredits(MAX_AMOUNT + 1);
        assert!(matches!(r.check(), Err(ReceiptError::AmountOutOfRange(_))));
        r.amount = MicroCredits(1);
        r.units = MAX_UNITS + 1;
        assert!(matches!(r.check(), Err(ReceiptError::UnitsOutOfRange(_))));
        r.units = 1;
        r.reference = [0; 32];
        assert!(matches!(
            r.check(),
            Err(ReceiptError::NoReference(EntryKind::GpuJob))
        ));
        r.kind = EntryKind::Adjustment;
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn party_id_parses_hex() {
        let id = PartyId::of(&key(9));
        assert_eq!(id.to_string().parse::<PartyId>().unwrap(), id);
        assert!("zz".parse::<PartyId>().is_err());
    }

    #[test]
    fn batch_verification_agrees() {
        let a = receipt().sign(&key(2)).unwrap();
        let mut b = receipt().sign(&key(2)).unwrap();
        let keys = [PartyId::of(&key(2)); 2];
        assert!(verify_batch(
            &[&a.bytes, &b.bytes],
            &[a.signature, b.signature],
            &keys
        ));
        b.signature[0] ^= 1;
        assert!(!verify_batch(
            &[&a.bytes, &b.bytes],
            &[a.signature, b.signature],
            &keys
        ));
    }

    proptest! {
        /// Any byte string decodes to a receipt or an error, never a panic; and
        /// whatever decodes re-encodes to the same bytes.
        #[test]
        fn decoding_is_total_and_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(r) = Receipt::from_bytes(&bytes) {
                prop_assert_eq!(r.to_bytes(), bytes);
            }
        }

        /// Mutating a valid encoding never panics and never decodes to different bytes.
        #[test]
        fn mutated_encodings_are_handled(index in 0usize..200, value in any::<u8>(), cut in 0usize..200) {
            let mut bytes = receipt().to_bytes();
            let i = index % bytes.len();
            bytes[i] = value;
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            if let Ok(r) = Receipt::from_bytes(&bytes) {
                prop_assert_eq!(r.to_bytes(), bytes);
            }
        }

        #[test]
        fn valid_receipts_round_trip(
            kind in 0usize..4,
            units in 0..=MAX_UNITS,
            amount in 0..=MAX_AMOUNT,
            issued in 0..=i64::MAX,
            network in "[a-z0-9._-]{1,64}",
        ) {
            let kind = EntryKind::ALL[kind];
            let amount = if kind == EntryKind::Payout { -amount } else { amount };
            let r = Receipt { kind, network: Network::new(network).unwrap(), units,
                amount: MicroCredits(amount), issued_at_ms: issued, ..receipt() };
            prop_assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
        }
    }
}
