//! One relay session's rules, without a socket or a clock: how the client's first frame
//! is answered (`Welcome` with the terms, or a refusal with the reason), when a new
//! flow may open (the flow-open rate: now, after a bounded wait, or refused), and when
//! a running session's latest promise is reported for a checkpoint. Paying for bytes
//! (promises, pausing while they lag) is the `metering` core's. The driver (`node.rs`)
//! reads the frames and the clock, passes them in, and carries out the answers.
//!
//! Order of calls: `Session::handle_hello` with the first frame; then, for as long as
//! the session lasts, `Session::handle_flow_open(now)` for each new stream (serving it
//! when the answer says), and `Checkpoints::handle_timeout(now, units)` at
//! `Checkpoints::poll_timeout()` with the units of the latest valid promise.

use std::time::{Duration, Instant};

use crate::limits::TokenBucket;
use crate::wire::{Frame, VERSION};

/// The terms a session is offered in its `Welcome`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The session id: every promise's reference.
    pub session: [u8; 32],
    /// Micro-credits per GiB relayed; 0 relays without promises.
    pub price_per_gib: u64,
    /// Bytes relayed beyond the latest promise before the session pauses.
    pub promise_margin: u64,
    /// The network promises are made on.
    pub network: String,
}

/// How to answer the client's first frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// Send this `Welcome`: the session is open.
    Welcome(Frame),
    /// Answer `not_offered` with this sentence, then close.
    Refuse(String),
    /// Close at once: not a relay client speaking the protocol.
    Close(&'static str),
}

/// When a new flow may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOpen {
    /// Serve it now.
    Now,
    /// Serve it once this long has passed: its turn is kept for it. A burst of flows
    /// is spread out this way rather than refused.
    After(Duration),
    /// Answer `rate_limited`: it would have to wait longer than the session allows.
    Refuse,
}

/// One session's handshake and flow-open rate.
#[derive(Debug)]
pub struct Session {
    offer: Offer,
    opens: TokenBucket,
    max_wait: Duration,
}

/// When a running session's latest promise is reported.
#[derive(Debug)]
pub struct Checkpoints {
    every: Duration,
    next: Instant,
    reported_units: Option<u64>,
}

impl Session {
    /// A session starting at `now` with `offer`, letting `flow_opens_per_second` new
    /// flows open a second (bursts of twice as many); a flow beyond that waits its
    /// turn for up to `max_wait`, and is refused if its turn is further away.
    ///
    /// The flows waiting at once are bounded by `max_wait` (at most
    /// `flow_opens_per_second × max_wait` of them) as well as by the streams the client
    /// may hold open, each wait is at most `max_wait`, and a refused flow takes nothing:
    /// a flood of new flows costs the node a bounded amount.
    pub fn new(now: Instant, offer: Offer, flow_opens_per_second: u64, max_wait: Duration) -> Self {
        Self {
            offer,
            opens: TokenBucket::new(
                flow_opens_per_second,
                flow_opens_per_second.saturating_mul(2),
                now,
            ),
            max_wait,
        }
    }

    /// The client's first frame (`None`: it sent something that is not a frame), while
    /// bandwidth lending is `stopped` for a reason or not.
    pub fn handle_hello(&self, first: Option<&Frame>, stopped: Option<&str>) -> Hello {
        match first {
            Some(Frame::Hello { version }) if *version == VERSION => {}
            Some(Frame::Hello { version }) => {
                return Hello::Refuse(format!(
                    "this node speaks relay protocol {VERSION}, not {version}"
                ));
            }
            _ => return Hello::Close("expected hello"),
        }
        if let Some(reason) = stopped {
            return Hello::Refuse(format!("this node is not lending bandwidth now: {reason}"));
        }
        Hello::Welcome(Frame::Welcome {
            version: VERSION,
            session: self.offer.session,
            price_per_gib: self.offer.price_per_gib,
            promise_margin: self.offer.promise_margin,
            network: self.offer.network.clone(),
        })
    }

    /// A new flow at `now`: when it may be served. A flow told to wait has its turn
    /// kept (later flows wait behind it), so the driver serves it after that wait
    /// without asking again.
    pub fn handle_flow_open(&mut self, now: Instant) -> FlowOpen {
        match self.opens.reserve(now, 1, self.max_wait) {
            Some(Duration::ZERO) => FlowOpen::Now,
            Some(wait) => FlowOpen::After(wait),
            None => FlowOpen::Refuse,
        }
    }
}

impl Checkpoints {
    /// Checkpoints every `every` from `now`.
    pub fn new(now: Instant, every: Duration) -> Self {
        Self {
            every,
            next: now + every,
            reported_units: None,
        }
    }

    /// When to call `handle_timeout` next.
    pub fn poll_timeout(&self) -> Instant {
        self.next
    }

    /// At `now`, with the units of the latest valid promise (`None`: none yet):
    /// whether to report a checkpoint now. Only a new promise is reported, at most once
    /// per `every`, so a crash loses little and an idle session costs nothing.
    pub fn handle_timeout(&mut self, now: Instant, latest_units: Option<u64>) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.every;
        if latest_units.is_none() || latest_units == self.reported_units {
            return false;
        }
        self.reported_units = latest_units;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn session(now: Instant) -> Session {
        Session::new(
            now,
            Offer {
                session: [7; 32],
                price_per_gib: 1_000,
                promise_margin: 1 << 20,
                network: "demo".into(),
            },
            5,
            S,
        )
    }

    #[test]
    fn a_hello_of_this_version_is_welcomed_with_the_terms() {
        let s = session(Instant::now());
        let hello = Frame::Hello { version: VERSION };
        let Hello::Welcome(Frame::Welcome {
            version,
            session,
            price_per_gib,
            promise_margin,
            network,
        }) = s.handle_hello(Some(&hello), None)
        else {
            panic!("not welcomed")
        };
        assert_eq!((version, session), (VERSION, [7; 32]));
        assert_eq!((price_per_gib, promise_margin), (1_000, 1 << 20));
        assert_eq!(network, "demo");
    }

    #[test]
    fn other_versions_stopped_lending_and_other_frames_are_refused_with_reasons() {
        let s = session(Instant::now());
        let newer = Frame::Hello {
            version: VERSION + 1,
        };
        let Hello::Refuse(why) = s.handle_hello(Some(&newer), None) else {
            panic!()
        };
        assert!(why.contains(&format!("not {}", VERSION + 1)), "{why}");
        let hello = Frame::Hello { version: VERSION };
        let Hello::Refuse(why) = s.handle_hello(Some(&hello), Some("the owner is back")) else {
            panic!()
        };
        assert!(
            why.ends_with("not lending bandwidth now: the owner is back"),
            "{why}"
        );
        assert_eq!(
            s.handle_hello(Some(&Frame::Listen), None),
            Hello::Close("expected hello")
        );
        assert_eq!(s.handle_hello(None, None), Hello::Close("expected hello"));
    }

    #[test]
    fn new_flows_beyond_the_burst_wait_their_turn_then_are_refused() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let answers: Vec<FlowOpen> = (0..20).map(|_| s.handle_flow_open(t0)).collect();
        assert_eq!(
            answers[..10],
            [FlowOpen::Now; 10],
            "a burst of twice the rate"
        );
        // Five a second, for at most a second: five more wait, a fifth of a second apart.
        let waits: Vec<FlowOpen> = (1..=5).map(|i| FlowOpen::After(i * S / 5)).collect();
        assert_eq!(answers[10..15], waits[..]);
        assert_eq!(
            answers[15..],
            [FlowOpen::Refuse; 5],
            "past the longest wait"
        );
        // Time earns turns back at the rate: the queue has moved on by one.
        assert_eq!(s.handle_flow_open(t0 + S / 5), FlowOpen::After(S));
        assert_eq!(s.handle_flow_open(t0 + S / 5), FlowOpen::Refuse);
        assert_eq!(s.handle_flow_open(t0 + 3 * S), FlowOpen::Now);
    }

    #[test]
    fn a_flood_of_new_flows_opens_no_faster_than_the_rate() {
        // A client opening a flow every millisecond for ten seconds: the flows served
        // are the burst plus the rate, every wait is within the bound, and the flows
        // waiting at once never exceed what the bound allows.
        let t0 = Instant::now();
        let mut s = session(t0);
        let mut served_by = Vec::new();
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            match s.handle_flow_open(now) {
                FlowOpen::Now => served_by.push(now),
                FlowOpen::After(wait) => {
                    assert!(wait <= S, "waited {wait:?}");
                    served_by.push(now + wait);
                }
                FlowOpen::Refuse => {}
            }
            let waiting = served_by.iter().filter(|at| **at > now).count();
            assert!(waiting <= 5, "{waiting} flows waiting at once");
        }
        let end = t0 + 10 * S;
        let served = served_by.iter().filter(|at| **at <= end).count();
        assert_eq!(served, 10 + 5 * 10, "the burst plus five a second");
    }

    #[test]
    fn checkpoints_report_only_new_promises_and_at_most_once_a_period() {
        let t0 = Instant::now();
        let mut s = Checkpoints::new(t0, 10 * S);
        assert_eq!(s.poll_timeout(), t0 + 10 * S);
        assert!(!s.handle_timeout(t0 + 5 * S, Some(100)), "too early");
        assert!(!s.handle_timeout(t0 + 10 * S, None), "no promise yet");
        assert!(s.handle_timeout(t0 + 20 * S, Some(100)));
        assert!(!s.handle_timeout(t0 + 30 * S, Some(100)), "nothing new");
        assert!(s.handle_timeout(t0 + 40 * S, Some(250)));
        assert_eq!(s.poll_timeout(), t0 + 50 * S);
    }
}
