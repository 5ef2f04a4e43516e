//! When the supervisor may start a GPU worker again: the respawn and give-up policy,
//! without a clock or a process (the supervisor passes `now` and acts on the answer).
//!
//! A lost worker is the fault of the job it was running or of the machine ([`Cause`]).
//! A job's fault is the job's: the worker is replaced at once and nothing here counts
//! it (the node charges the job's requester); for `JOB_GRACE` after it, a GPU that will
//! not open is taken to be recovering from that job (backed off, not counted). A machine's fault (a worker that cannot
//! open the GPU, or dies with no job) backs off before the next start, doubling with
//! each failure in a row (`base`, 2×, 4× … 32×); `max_failures` of them within
//! `window` stop GPU lending with a reason the owner can read. A stop is tried again by
//! itself after `retry_after` (doubling per stop in a row, at most 8×), or at once when
//! the owner resumes (`handle_reset`); a job or self-test that then succeeds ends it.
//!
//! Order of calls: `handle_failure` when a worker is lost, `handle_success` when a job
//! finishes, `handle_reset` when the owner resumes; `poll_start` before starting a
//! worker, `stopped` for the status.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// After a job's fault, how long failures to start a worker are not counted against
/// the machine (a driver resetting a GPU after a hung kernel can take seconds).
pub const JOB_GRACE: Duration = Duration::from_secs(30);

/// Whose fault a lost worker was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The job it was running (it hung, or its kernel killed the worker).
    Job,
    /// The machine's (the GPU could not be opened, the worker died with no job).
    Machine,
}

/// The respawn policy's state.
#[derive(Clone, Debug)]
pub struct Respawn {
    base: Duration,
    max_failures: usize,
    window: Duration,
    retry_after: Duration,
    failures: VecDeque<Instant>,
    in_a_row: u32,
    next_start: Option<Instant>,
    stopped: Option<Stop>,
    stops_in_a_row: u32,
    /// Until when machine failures follow a job's fault too closely to count.
    grace_until: Option<Instant>,
}

/// Lending stopped itself: why, and when it is tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// The reason, for the owner.
    pub reason: String,
    /// When a worker may be tried again without the owner.
    pub retry_at: Instant,
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
    /// The policy: back off from `base`; stop after `max_failures` machine failures
    /// within `window`; try a stop again after `retry_after`.
    pub fn new(
        base: Duration,
        max_failures: usize,
        window: Duration,
        retry_after: Duration,
    ) -> Self {
        Self {
            base,
            max_failures,
            window,
            retry_after,
            failures: VecDeque::new(),
            in_a_row: 0,
            next_start: None,
            stopped: None,
            stops_in_a_row: 0,
            grace_until: None,
        }
    }

    /// A worker was lost at `now`, through the fault of `cause`; `what` says how, for
    /// the owner.
    pub fn handle_failure(&mut self, now: Instant, cause: Cause, what: &str) {
        if cause == Cause::Job {
            // The next job gets a fresh worker at once: nothing is wrong with the GPU.
            self.grace_until = Some(now + JOB_GRACE);
            return;
        }
        if self.grace_until.is_some_and(|until| now < until) && self.stopped.is_none() {
            // Likely the job's aftermath: back off, but do not count it.
            self.in_a_row += 1;
            let shift = (self.in_a_row - 1).min(5);
            self.next_start = Some(now + self.base * (1 << shift));
            return;
        }
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
        // A failed retry of a stop stops again, for longer.
        let retrying = self.stopped.take().is_some();
        if retrying || self.failures.len() >= self.max_failures {
            let wait = self.retry_after * (1 << self.stops_in_a_row.min(3));
            self.stops_in_a_row += 1;
            let reason = if retrying {
                format!("the GPU still fails ({what})")
            } else {
                format!(
                    "the GPU keeps failing ({} failures in {} minutes; the last: {what})",
                    self.failures.len(),
                    self.window.as_secs() / 60
                )
            };
            self.stopped = Some(Stop {
                reason,
                retry_at: now + wait,
            });
        }
    }

    /// Spare's known-good job failed at `now` (`what`): the machine is at fault, and
    /// lending stops at once (tried again after the back-off).
    pub fn handle_self_test_failed(&mut self, now: Instant, what: &str) {
        let wait = self.retry_after * (1 << self.stops_in_a_row.min(3));
        self.stops_in_a_row += 1;
        self.stopped = Some(Stop {
            reason: format!("the GPU failed Spare's self-test ({what})"),
            retry_at: now + wait,
        });
    }

    /// A job (or a self-test) finished on the worker: the next failure backs off from
    /// `base` again, and a stop being retried is over.
    pub fn handle_success(&mut self) {
        self.in_a_row = 0;
        self.stops_in_a_row = 0;
        self.stopped = None;
        self.failures.clear();
    }

    /// The owner turned GPU lending back on: failures so far are forgiven.
    pub fn handle_reset(&mut self) {
        self.stopped = None;
        self.failures.clear();
        self.in_a_row = 0;
        self.stops_in_a_row = 0;
        self.next_start = None;
    }

    /// Whether a worker may start at `now`. After a stop's `retry_at` it may (a retry:
    /// success ends the stop, failure stops again for longer).
    pub fn poll_start(&self, now: Instant) -> Result<(), NotNow> {
        if let Some(stop) = &self.stopped
            && now < stop.retry_at
        {
            return Err(NotNow::Stopped(stop.reason.clone()));
        }
        match self.next_start {
            Some(at) if now < at && self.stopped.is_none() => Err(NotNow::BackingOff(at - now)),
            _ => Ok(()),
        }
    }

    /// When lending stopped itself, why and when it is tried again.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stopped.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> (Respawn, Instant) {
        (Respawn::new(S, 3, 600 * S, 300 * S), Instant::now())
    }

    fn machine(p: &mut Respawn, at: Instant) {
        p.handle_failure(at, Cause::Machine, "no adapter");
    }

    #[test]
    fn backs_off_doubling_and_a_finished_job_resets_the_row() {
        let (mut p, t0) = policy();
        assert_eq!(p.poll_start(t0), Ok(()));
        machine(&mut p, t0);
        assert_eq!(p.poll_start(t0), Err(NotNow::BackingOff(S)));
        assert_eq!(p.poll_start(t0 + S), Ok(()));
        p.handle_success();
        // Hours later (outside the window), failures back off from the base again,
        // doubling while they come in a row.
        let later = t0 + 3600 * S;
        machine(&mut p, later);
        assert_eq!(p.poll_start(later + S / 2), Err(NotNow::BackingOff(S / 2)));
        machine(&mut p, later + 700 * S);
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
            machine(&mut p, now);
            // Each failure outside the window of the others: never stops.
            now += 601 * S;
        }
        let last = now - 601 * S;
        assert_eq!(p.poll_start(last), Err(NotNow::BackingOff(32 * S)));
    }

    #[test]
    fn a_jobs_fault_never_backs_off_nor_stops_lending() {
        let (mut p, t0) = policy();
        for i in 0..20 {
            p.handle_failure(t0 + i * S, Cause::Job, "watchdog");
            assert_eq!(p.poll_start(t0 + i * S), Ok(()));
        }
        assert_eq!(p.stopped(), None);
    }

    #[test]
    fn three_machine_failures_in_ten_minutes_stop_lending_until_reset_or_retry() {
        let (mut p, t0) = policy();
        machine(&mut p, t0);
        machine(&mut p, t0 + 60 * S);
        assert_eq!(p.stopped(), None);
        machine(&mut p, t0 + 120 * S);
        let stop = p.stopped().unwrap().clone();
        assert!(stop.reason.contains("3 failures in 10 minutes"), "{stop:?}");
        assert!(stop.reason.contains("no adapter"), "{stop:?}");
        assert_eq!(stop.retry_at, t0 + 420 * S);
        assert_eq!(
            p.poll_start(t0 + 419 * S),
            Err(NotNow::Stopped(stop.reason.clone()))
        );
        // The owner resumes: a worker may start at once.
        p.handle_reset();
        assert_eq!(p.poll_start(t0 + 121 * S), Ok(()));
        assert_eq!(p.stopped(), None);
    }

    #[test]
    fn a_gpu_that_will_not_open_right_after_a_jobs_fault_backs_off_without_stopping() {
        let (mut p, t0) = policy();
        p.handle_failure(t0, Cause::Job, "watchdog");
        for i in 1..=5 {
            machine(&mut p, t0 + i * S);
        }
        assert_eq!(p.stopped(), None);
        assert!(matches!(
            p.poll_start(t0 + 5 * S),
            Err(NotNow::BackingOff(_))
        ));
        // Past the grace, the machine's failures count again.
        let later = t0 + JOB_GRACE + S;
        for i in 0..3 {
            machine(&mut p, later + i * S);
        }
        assert!(p.stopped().is_some());
    }

    #[test]
    fn a_failed_self_test_stops_lending_at_once() {
        let (mut p, t0) = policy();
        p.handle_self_test_failed(t0, "no adapter");
        let stop = p.stopped().unwrap().clone();
        assert_eq!(stop.reason, "the GPU failed Spare's self-test (no adapter)");
        assert_eq!(stop.retry_at, t0 + 300 * S);
        p.handle_self_test_failed(stop.retry_at, "no adapter");
        assert_eq!(p.stopped().unwrap().retry_at, stop.retry_at + 600 * S);
    }

    #[test]
    fn a_stop_is_retried_by_itself_and_a_failed_retry_waits_longer() {
        let (mut p, t0) = policy();
        for i in 0..3 {
            machine(&mut p, t0 + i * S);
        }
        let first = p.stopped().unwrap().retry_at;
        assert_eq!(first, t0 + 302 * S);
        // At the retry time a worker may start …
        assert_eq!(p.poll_start(first), Ok(()));
        // … and when it fails again, the next retry waits twice as long.
        machine(&mut p, first);
        let second = p.stopped().unwrap().clone();
        assert!(
            second.reason.starts_with("the GPU still fails"),
            "{second:?}"
        );
        assert_eq!(second.retry_at, first + 600 * S);
        assert_eq!(p.poll_start(second.retry_at), Ok(()));
        // A retry that works ends the stop.
        p.handle_success();
        assert_eq!(p.stopped(), None);
        assert_eq!(p.poll_start(second.retry_at), Ok(()));
    }
}
