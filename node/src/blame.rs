//! Who pays for a lost GPU worker: the requester whose job killed or hung it, not the
//! owner's lending. Without a clock or I/O (the GPU lane passes `now`).
//!
//! A job that loses a worker (its slice hangs past the watchdog, its shader does not
//! compile in time, its kernel kills the process) is charged to the requester who
//! signed its order: that job is refused from then on, and the requester is refused
//! for a cooling-off period that doubles with each repeat (`base`, 2×, 4× … up to
//! `cap`). Everyone else keeps being served.
//!
//! Only the machine stops lending (see `compute::respawn`). When jobs of several
//! different requesters lose workers within `window`, the lane asks for Spare's own
//! known-good job (`compute::selftest`) to be run: if it fails too, the machine is at
//! fault; if it passes, the requesters were.
//!
//! Memory is bounded: at most `MAX_TRACKED` requesters and blocked jobs are kept, the
//! oldest forgotten first. What is charged survives a restart ([`Saved`], written to
//! the data folder by the node), so restarting the node forgives no one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ledger::PartyId;
use serde::{Deserialize, Serialize};

/// Requesters (and blocked jobs) remembered at most.
pub const MAX_TRACKED: usize = 4096;

/// The blame policy's state.
#[derive(Debug)]
pub struct Blame {
    base: Duration,
    cap: Duration,
    window: Duration,
    distinct_for_self_test: usize,
    offenders: HashMap<PartyId, Offender>,
    blocked: HashSet<[u8; 32]>,
    blocked_order: VecDeque<[u8; 32]>,
    recent: VecDeque<(Instant, PartyId)>,
}

#[derive(Clone, Copy, Debug)]
struct Offender {
    offenses: u32,
    until: Instant,
}

/// What is charged, as saved across restarts: wall-clock times (Unix milliseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Requesters still cooling off, or with offenses to remember.
    pub requesters: Vec<SavedRequester>,
    /// Jobs refused for good, as hex digests.
    pub blocked_jobs: Vec<String>,
}

/// One requester in [`Saved`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRequester {
    /// The requester's key, hex.
    pub id: String,
    /// How many of their jobs lost a worker.
    pub offenses: u32,
    /// Refused until then (Unix milliseconds).
    pub until_ms: u64,
}

/// Why a requester's job is refused now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// This very job lost a worker before.
    JobBlocked,
    /// The requester's jobs lost workers; refused for this much longer.
    CoolingOff {
        /// How long is left.
        left: Duration,
        /// How many of their jobs lost a worker.
        offenses: u32,
    },
}

/// What the lane should do after charging a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charged {
    /// The requester is refused for this long.
    pub cooling_off: Duration,
    /// How many of their jobs lost a worker, this one included.
    pub offenses: u32,
    /// Jobs of this many different requesters lost workers lately: run the self-test.
    pub self_test: Option<usize>,
}

impl Blame {
    /// The policy: cooling off from `base`, doubling to `cap`; the self-test after
    /// `distinct_for_self_test` different requesters' failures within `window`.
    pub fn new(
        base: Duration,
        cap: Duration,
        window: Duration,
        distinct_for_self_test: usize,
    ) -> Self {
        Self {
            base,
            cap,
            window,
            distinct_for_self_test,
            offenders: HashMap::new(),
            blocked: HashSet::new(),
            blocked_order: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    /// Whether `requester`'s job `digest` may run at `now`.
    pub fn check(
        &self,
        now: Instant,
        requester: &PartyId,
        digest: &[u8; 32],
    ) -> Result<(), Refused> {
        if self.blocked.contains(digest) {
            return Err(Refused::JobBlocked);
        }
        match self.offenders.get(requester) {
            Some(o) if now < o.until => Err(Refused::CoolingOff {
                left: o.until - now,
                offenses: o.offenses,
            }),
            _ => Ok(()),
        }
    }

    /// `requester`'s job `digest` lost a worker at `now`.
    pub fn handle_failure(
        &mut self,
        now: Instant,
        requester: PartyId,
        digest: [u8; 32],
    ) -> Charged {
        if self.blocked.insert(digest) {
            self.blocked_order.push_back(digest);
            if self.blocked_order.len() > MAX_TRACKED
                && let Some(oldest) = self.blocked_order.pop_front()
            {
                self.blocked.remove(&oldest);
            }
        }
        let offenses = self
            .offenders
            .get(&requester)
            .map_or(0, |o| o.offenses)
            .saturating_add(1);
        let cooling_off = (self.base * (1 << (offenses - 1).min(16))).min(self.cap);
        self.offenders.insert(
            requester,
            Offender {
                offenses,
                until: now + cooling_off,
            },
        );
        self.forget_beyond_bound(now);
        self.recent.push_back((now, requester));
        while let Some((at, _)) = self.recent.front() {
            if now.duration_since(*at) > self.window || self.recent.len() > MAX_TRACKED {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        let distinct: HashSet<&PartyId> = self.recent.iter().map(|(_, p)| p).collect();
        Charged {
            cooling_off,
            offenses,
            self_test: (distinct.len() >= self.distinct_for_self_test).then_some(distinct.len()),
        }
    }

    /// The self-test passed: the requesters were at fault; their failures so far no
    /// longer count towards the next self-test.
    pub fn handle_self_test_passed(&mut self) {
        self.recent.clear();
    }

    /// What is charged, to save: `now` is `now_ms` on the wall clock.
    pub fn saved(&self, now: Instant, now_ms: u64) -> Saved {
        let requesters = self
            .offenders
            .iter()
            .map(|(id, o)| SavedRequester {
                id: id.to_string(),
                offenses: o.offenses,
                until_ms: now_ms
                    .saturating_add(o.until.saturating_duration_since(now).as_millis() as u64),
            })
            .collect();
        let blocked_jobs = self.blocked_order.iter().map(|d| ledger::hex(d)).collect();
        Saved {
            requesters,
            blocked_jobs,
        }
    }

    /// Takes back what was saved (`now` is `now_ms` on the wall clock). Entries that do
    /// not parse are skipped; the bounds hold whatever the file says.
    pub fn restore(&mut self, saved: Saved, now: Instant, now_ms: u64) {
        for r in saved.requesters.into_iter().take(MAX_TRACKED) {
            let Ok(id) = r.id.parse::<PartyId>() else {
                continue;
            };
            let left = Duration::from_millis(r.until_ms.saturating_sub(now_ms)).min(self.cap);
            self.offenders.insert(
                id,
                Offender {
                    offenses: r.offenses.max(1),
                    until: now + left,
                },
            );
        }
        for digest in saved.blocked_jobs.iter().take(MAX_TRACKED) {
            let Some(digest) = ledger::unhex(digest).and_then(|d| <[u8; 32]>::try_from(d).ok())
            else {
                continue;
            };
            if self.blocked.insert(digest) {
                self.blocked_order.push_back(digest);
            }
        }
    }

    /// Requesters refused now.
    pub fn cooling_off(&self, now: Instant) -> usize {
        self.offenders.values().filter(|o| now < o.until).count()
    }

    /// Keeps at most `MAX_TRACKED` requesters: those whose cooling off ended go first
    /// (their count of offenses with them), then the ones whose ends soonest.
    fn forget_beyond_bound(&mut self, now: Instant) {
        if self.offenders.len() <= MAX_TRACKED {
            return;
        }
        self.offenders.retain(|_, o| now < o.until);
        while self.offenders.len() > MAX_TRACKED {
            let Some(soonest) = self
                .offenders
                .iter()
                .min_by_key(|(_, o)| o.until)
                .map(|(p, _)| *p)
            else {
                break;
            };
            self.offenders.remove(&soonest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn party(n: u8) -> PartyId {
        key_party([n; 32])
    }

    fn key_party(secret: [u8; 32]) -> PartyId {
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        PartyId::from_bytes(key.verifying_key().to_bytes()).unwrap()
    }

    fn blame() -> (Blame, Instant) {
        (
            Blame::new(10 * MIN, 24 * 60 * MIN, 10 * MIN, 3),
            Instant::now(),
        )
    }

    #[test]
    fn a_failing_job_is_blocked_and_its_requester_cools_off_longer_each_time() {
        let (mut b, t0) = blame();
        let (bad, good) = (party(1), party(2));
        let charged = b.handle_failure(t0, bad, [1; 32]);
        assert_eq!(charged.cooling_off, 10 * MIN);
        assert_eq!(charged.self_test, None);
        assert_eq!(
            b.check(t0, &bad, &[9; 32]),
            Err(Refused::CoolingOff {
                left: 10 * MIN,
                offenses: 1
            })
        );
        // Everyone else is served; the job itself never again, from anyone.
        assert_eq!(b.check(t0, &good, &[2; 32]), Ok(()));
        assert_eq!(b.check(t0, &good, &[1; 32]), Err(Refused::JobBlocked));
        // After cooling off the requester may send other jobs; a repeat doubles it.
        let later = t0 + 10 * MIN;
        assert_eq!(b.check(later, &bad, &[3; 32]), Ok(()));
        assert_eq!(b.handle_failure(later, bad, [3; 32]).cooling_off, 20 * MIN);
        assert_eq!(b.handle_failure(later, bad, [4; 32]).cooling_off, 40 * MIN);
        assert_eq!(b.cooling_off(later), 1);
    }

    #[test]
    fn cooling_off_stops_growing_at_the_cap() {
        let (mut b, t0) = blame();
        let mut last = Duration::ZERO;
        for i in 0..40u8 {
            last = b.handle_failure(t0, party(1), [i; 32]).cooling_off;
        }
        assert_eq!(last, 24 * 60 * MIN);
    }

    #[test]
    fn several_requesters_failing_lately_ask_for_the_self_test() {
        let (mut b, t0) = blame();
        assert_eq!(b.handle_failure(t0, party(1), [1; 32]).self_test, None);
        // The same requester again does not count twice.
        assert_eq!(b.handle_failure(t0, party(1), [2; 32]).self_test, None);
        assert_eq!(
            b.handle_failure(t0 + MIN, party(2), [3; 32]).self_test,
            None
        );
        assert_eq!(
            b.handle_failure(t0 + 2 * MIN, party(3), [4; 32]).self_test,
            Some(3)
        );
        // It passed: the requesters were at fault, and the count starts again.
        b.handle_self_test_passed();
        assert_eq!(
            b.handle_failure(t0 + 3 * MIN, party(4), [5; 32]).self_test,
            None
        );
        // Failures older than the window do not count.
        let (mut b, t0) = blame();
        b.handle_failure(t0, party(1), [1; 32]);
        b.handle_failure(t0, party(2), [2; 32]);
        assert_eq!(
            b.handle_failure(t0 + 11 * MIN, party(3), [3; 32]).self_test,
            None
        );
    }

    #[test]
    fn what_is_charged_survives_a_restart_and_a_damaged_entry_is_skipped() {
        let (mut b, t0) = blame();
        b.handle_failure(t0, party(1), [1; 32]);
        b.handle_failure(t0, party(1), [2; 32]);
        let mut saved = b.saved(t0 + MIN, 1_000_000);
        assert_eq!(saved.requesters[0].until_ms, 1_000_000 + 19 * 60_000);
        saved.requesters.push(SavedRequester {
            id: "not a key".into(),
            offenses: 3,
            until_ms: u64::MAX,
        });
        saved.blocked_jobs.push("zz".into());
        let json = serde_json::to_string(&saved).unwrap();

        let (mut restarted, t1) = blame();
        restarted.restore(serde_json::from_str(&json).unwrap(), t1, 1_000_000);
        assert_eq!(
            restarted.check(t1, &party(1), &[3; 32]),
            Err(Refused::CoolingOff {
                left: 19 * MIN,
                offenses: 2
            })
        );
        assert_eq!(
            restarted.check(t1, &party(2), &[2; 32]),
            Err(Refused::JobBlocked)
        );
        assert_eq!(restarted.check(t1, &party(2), &[3; 32]), Ok(()));
        // The next offense doubles from where it was.
        let later = t1 + 19 * MIN;
        assert_eq!(
            restarted
                .handle_failure(later, party(1), [4; 32])
                .cooling_off,
            40 * MIN
        );
    }

    #[test]
    fn memory_is_bounded_however_many_requesters_fail() {
        let (mut b, t0) = blame();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            let party = key_party(key);
            b.handle_failure(t0 + Duration::from_millis(u64::from(i)), party, key);
        }
        assert!(b.offenders.len() <= MAX_TRACKED);
        assert!(b.blocked.len() <= MAX_TRACKED);
        assert!(b.recent.len() <= MAX_TRACKED);
    }
}
