//! When the supervisor may start a GPU worker again: the respawn and give-up policy,
//! without a clock or a process (the supervisor passes `now` and acts on the answer).
//!
//! A worker that fails is replaced after a back-off that doubles with each failure in a
//! row (`base`, 2×, 4× … 32×); a job that finishes resets the row. `max_failures`
//! failures within `window` stop GPU lending with a reason the owner can read, until
//! the owner turns it back on (`handle_reset`).
//!
//! Order of calls: `handle_failure` when a worker is lost, `handle_success` when a job
//! finishes, `handle_reset` when the owner resumes; `poll_start` before starting a
//! worker, `stopped` for the status.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The respawn policy's state.
#[derive(Clone, Debug)]
pub struct Respawn {
    base: Duration,
    max_failures: usize,
    window: Duration,
    failures: VecDeque<Instant>,
    in_a_row: u32,
    next_start: Option<Instant>,
    stopped: Option<String>,
}

/// Why a worker may not start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotNow {
    /// Lending stopped itself; the reason for the owner.
    Stopped(String),
    /// Backing off for this much longer.
    BackingOff(Duration),
}

impl Respawn {
    /// The policy: back off from `base`; stop after `max_failures` within `window`.
    pub fn new(base: Duration, max_failures: usize, window: Duration) -> Self {
        Self {
            base,
            max_failures,
            window,
            failures: VecDeque::new(),
            in_a_row: 0,
            next_start: None,
            stopped: None,
        }
    }

    /// A worker was lost at `now` (killed by the watchdog, died, broke the protocol).
    pub fn handle_failure(&mut self, now: Instant) {
        self.failures.push_back(now);
        while let Some(first) = self.failures.front() {
            if now.duration_since(*first) > self.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        self.in_a_row += 1;
        let shift = (self.in_a_row - 1).min(5);
        self.next_start = Some(now + self.base * (1 << shift));
        if self.failures.len() >= self.max_failures {
            self.stopped = Some(format!(
                "GPU worker keeps failing ({} failures in {} minutes); lending stays off until \
                 you turn it back on",
                self.failures.len(),
                self.window.as_secs() / 60
            ));
        }
    }

    /// A job finished on the worker: the next failure backs off from `base` again.
    pub fn handle_success(&mut self) {
        self.in_a_row = 0;
    }

    /// The owner turned GPU lending back on: failures so far are forgiven.
    pub fn handle_reset(&mut self) {
        self.stopped = None;
        self.failures.clear();
        self.in_a_row = 0;
        self.next_start = None;
    }

    /// Whether a worker may start at `now`.
    pub fn poll_start(&self, now: Instant) -> Result<(), NotNow> {
        if let Some(reason) = &self.stopped {
            return Err(NotNow::Stopped(reason.clone()));
        }
        match self.next_start {
            Some(at) if now < at => Err(NotNow::BackingOff(at - now)),
            _ => Ok(()),
        }
    }

    /// Why lending stopped itself, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> (Respawn, Instant) {
        (Respawn::new(S, 3, 600 * S), Instant::now())
    }

    #[test]
    fn backs_off_doubling_and_a_finished_job_resets_the_row() {
        let (mut p, t0) = policy();
        assert_eq!(p.poll_start(t0), Ok(()));
        p.handle_failure(t0);
        assert_eq!(p.poll_start(t0), Err(NotNow::BackingOff(S)));
        assert_eq!(p.poll_start(t0 + S), Ok(()));
        p.handle_success();
        // Hours later (outside the window), failures back off from the base again,
        // doubling while they come in a row.
        let later = t0 + 3600 * S;
        p.handle_failure(later);
        assert_eq!(p.poll_start(later + S / 2), Err(NotNow::BackingOff(S / 2)));
        p.handle_failure(later + 700 * S);
        assert_eq!(
            p.poll_start(later + 700 * S),
            Err(NotNow::BackingOff(2 * S))
        );
        assert_eq!(
            p.stopped(),
            None,
            "failures spread over hours never stop lending"
        );
    }

    #[test]
    fn the_back_off_stops_doubling_at_32_times() {
        let (mut p, t0) = policy();
        let mut now = t0;
        for _ in 0..8 {
            p.handle_failure(now);
            // Each failure outside the window of the others: never stops.
            now += 601 * S;
        }
        let last = now - 601 * S;
        assert_eq!(p.poll_start(last), Err(NotNow::BackingOff(32 * S)));
    }

    #[test]
    fn three_failures_in_ten_minutes_stop_lending_until_the_owner_resets() {
        let (mut p, t0) = policy();
        p.handle_failure(t0);
        p.handle_failure(t0 + 60 * S);
        assert_eq!(p.stopped(), None);
        p.handle_failure(t0 + 120 * S);
        let reason = p.stopped().unwrap().to_owned();
        assert!(reason.contains("3 failures in 10 minutes"), "{reason}");
        // No back-off ends a stop.
        assert_eq!(p.poll_start(t0 + 86_400 * S), Err(NotNow::Stopped(reason)));
        p.handle_reset();
        assert_eq!(p.poll_start(t0 + 121 * S), Ok(()));
        assert_eq!(p.stopped(), None);
    }
}
