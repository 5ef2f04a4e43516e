//! Metering and payment for one relay session: bytes relayed against the client's
//! signed cumulative usage promises.
//!
//! The client signs, as it goes, a `relay_session` receipt for all the bytes of the
//! session so far (Mysterium-style promises: each one supersedes the last, so little
//! is at risk). The node serves while the bytes it relayed stay within a margin of the
//! latest promise, and pauses the client's flows when they lag further. The latest
//! promise becomes the session's ledger entry. Sans-IO: the caller passes bytes and
//! receipts in; nothing here reads a clock or a socket.

use receipt::{EntryKind, PartyId, Receipt, SignedReceipt, VerifiedReceipt};

/// Bytes in a GiB, the unit prices are quoted in.
pub const GIB: u64 = 1 << 30;

/// What a session's promises must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// The node being paid.
    pub node: PartyId,
    /// The client who signs.
    pub client: PartyId,
    /// The session id: every promise's reference.
    pub session: [u8; 32],
    /// The network the session runs on (`demo` for demo traffic).
    pub network: String,
    /// Micro-credits per GiB relayed, up and down together.
    pub price_per_gib: u64,
    /// Bytes that may be relayed beyond the latest promise before pausing.
    pub margin: u64,
}

impl Terms {
    /// The least a promise for `bytes` must pay (rounded down).
    pub fn price_of(&self, bytes: u64) -> u64 {
        let due = u128::from(bytes) * u128::from(self.price_per_gib) / u128::from(GIB);
        due.min(u128::from(u64::MAX)) as u64
    }
}

/// Why a promise was refused; the session goes on with the previous one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PromiseError {
    /// Not a valid signed receipt.
    #[error("the promise is not a valid signed receipt: {0}")]
    Invalid(#[from] receipt::ReceiptError),
    /// A valid receipt, but not for this session.
    #[error("the promise is not for this session: {0}")]
    WrongSession(&'static str),
    /// It promises less than an earlier promise.
    #[error("the promise goes backwards: {what} {new} after {old}")]
    Backwards {
        /// Bytes or amount.
        what: &'static str,
        /// The earlier value.
        old: u64,
        /// The new, smaller value.
        new: u64,
    },
    /// It pays less than the agreed price for the bytes it names.
    #[error("the promise pays {amount} micro-credits for {bytes} bytes; the price is {due}")]
    Underpriced {
        /// Bytes named.
        bytes: u64,
        /// Amount promised.
        amount: u64,
        /// Amount due at the session's price.
        due: u64,
    },
}

/// Whether the client's flows may move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterState {
    /// Within the margin.
    Serving,
    /// Relayed bytes lead the latest promise by more than the margin.
    Paused {
        /// Bytes relayed beyond the latest promise.
        lag: u64,
    },
}

/// The meter of one session.
#[derive(Clone, Debug)]
pub struct Meter {
    terms: Terms,
    up: u64,
    down: u64,
    promised_bytes: u64,
    promised_amount: u64,
    latest: Option<VerifiedReceipt>,
}

impl Meter {
    /// A session with nothing relayed and nothing promised.
    pub fn new(terms: Terms) -> Self {
        Self {
            terms,
            up: 0,
            down: 0,
            promised_bytes: 0,
            promised_amount: 0,
            latest: None,
        }
    }

    /// The session's terms.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    /// Records bytes forwarded: exactly what was written to the other side.
    pub fn record(&mut self, up: u64, down: u64) {
        self.up = self.up.saturating_add(up);
        self.down = self.down.saturating_add(down);
    }

    /// Bytes relayed so far, up and down.
    pub fn relayed(&self) -> (u64, u64) {
        (self.up, self.down)
    }

    fn total(&self) -> u64 {
        self.up.saturating_add(self.down)
    }

    /// Bytes that may still move before the client must promise more: the flows'
    /// back-pressure limit.
    pub fn allowance(&self) -> u64 {
        self.promised_bytes
            .saturating_add(self.terms.margin)
            .saturating_sub(self.total())
    }

    /// Serving or paused.
    pub fn state(&self) -> MeterState {
        let lag = self.total().saturating_sub(self.promised_bytes);
        if lag > self.terms.margin {
            MeterState::Paused { lag }
        } else {
            MeterState::Serving
        }
    }

    /// Checks a promise and, if good, makes it the latest.
    pub fn on_promise(&mut self, signed: &SignedReceipt) -> Result<(), PromiseError> {
        let verified = signed.verify()?;
        let r: &Receipt = verified.receipt();
        let t = &self.terms;
        let wrong = |what| Err(PromiseError::WrongSession(what));
        if r.kind != EntryKind::RelaySession {
            return wrong("it is not a relay_session receipt");
        }
        if r.payee != t.node {
            return wrong("it pays another node");
        }
        if r.counterparty != t.client {
            return wrong("it is signed by another client");
        }
        if r.reference != t.session {
            return wrong("it names another session");
        }
        if r.network.as_str() != t.network {
            return wrong("it is for another network");
        }
        let amount = u64::try_from(r.amount.0).unwrap_or(0);
        if r.units < self.promised_bytes {
            return Err(PromiseError::Backwards {
                what: "bytes",
                old: self.promised_bytes,
                new: r.units,
            });
        }
        if amount < self.promised_amount {
            return Err(PromiseError::Backwards {
                what: "amount",
                old: self.promised_amount,
                new: amount,
            });
        }
        let due = t.price_of(r.units);
        if amount < due {
            return Err(PromiseError::Underpriced {
                bytes: r.units,
                amount,
                due,
            });
        }
        self.promised_bytes = r.units;
        self.promised_amount = amount;
        self.latest = Some(verified);
        Ok(())
    }

    /// The latest accepted promise: the session's ledger receipt when it ends, and
    /// what is checkpointed meanwhile.
    pub fn latest(&self) -> Option<&VerifiedReceipt> {
        self.latest.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use receipt::{MicroCredits, Network};

    fn node_key() -> SigningKey {
        SigningKey::from_bytes(&[1; 32])
    }

    fn client_key() -> SigningKey {
        SigningKey::from_bytes(&[2; 32])
    }

    fn terms() -> Terms {
        Terms {
            node: PartyId::of(&node_key()),
            client: PartyId::of(&client_key()),
            session: [9; 32],
            network: "demo".into(),
            price_per_gib: 1_000_000,
            margin: 1 << 20,
        }
    }

    fn promise(bytes: u64, amount: i64) -> SignedReceipt {
        Receipt {
            kind: EntryKind::RelaySession,
            network: Network::demo(),
            payee: PartyId::of(&node_key()),
            counterparty: PartyId::of(&client_key()),
            units: bytes,
            amount: MicroCredits(amount),
            issued_at_ms: 1_800_000_000_000,
            reference: [9; 32],
        }
        .sign(&client_key())
        .unwrap()
    }

    #[test]
    fn lagging_promises_pause_and_catching_up_resumes() {
        let mut meter = Meter::new(terms());
        meter.record(600_000, 400_000);
        assert_eq!(meter.state(), MeterState::Serving);
        assert_eq!(meter.allowance(), (1 << 20) - 1_000_000);
        meter.record(100_000, 0);
        assert_eq!(meter.state(), MeterState::Paused { lag: 1_100_000 });
        assert_eq!(meter.allowance(), 0);

        meter.on_promise(&promise(1_100_000, 1_100)).unwrap();
        assert_eq!(meter.state(), MeterState::Serving);
        assert_eq!(meter.allowance(), 1 << 20);
        assert_eq!(meter.latest().unwrap().receipt().units, 1_100_000);
    }

    #[test]
    fn bad_promises_are_refused_and_the_last_good_one_stays() {
        let mut meter = Meter::new(terms());
        meter.on_promise(&promise(GIB, 1_000_000)).unwrap();

        let backwards = meter.on_promise(&promise(GIB / 2, 1_000_000)).unwrap_err();
        assert!(
            matches!(backwards, PromiseError::Backwards { what: "bytes", .. }),
            "{backwards}"
        );
        let cheap = meter.on_promise(&promise(2 * GIB, 1_500_000)).unwrap_err();
        assert!(
            matches!(cheap, PromiseError::Underpriced { due: 2_000_000, .. }),
            "{cheap}"
        );

        let mut forged = promise(3 * GIB, 3_000_000);
        forged.signature[0] ^= 1;
        assert!(matches!(
            meter.on_promise(&forged),
            Err(PromiseError::Invalid(_))
        ));

        let mut other = terms();
        other.session = [7; 32];
        let mut elsewhere = Meter::new(other);
        let err = elsewhere.on_promise(&promise(GIB, 1_000_000)).unwrap_err();
        assert!(err.to_string().contains("another session"), "{err}");

        assert_eq!(meter.latest().unwrap().receipt().units, GIB);
    }

    #[test]
    fn price_rounds_down_and_never_overflows() {
        let t = terms();
        assert_eq!(t.price_of(GIB), 1_000_000);
        assert_eq!(t.price_of(GIB / 3), 333_333);
        let pricey = Terms {
            price_per_gib: u64::MAX,
            ..terms()
        };
        assert!(pricey.price_of(u64::MAX) > 0);
    }
}
