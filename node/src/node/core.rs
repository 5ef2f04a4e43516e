//! The node's core: the lending policy with everything the policy thread decides around
//! it (when the GPU lends and with which slice budget, when the relay stops, what a job
//! arriving now waits for, what to save, what the owner is shown), without a clock, a
//! sensor or a socket. The driver (`policy_thread.rs`) reads the signals and the
//! relay's counters, passes them in with `now`, and carries out what comes back.
//!
//! Order of calls, each round: `handle_pause` or `handle_resume` for each request of the
//! owner's that arrived; `needs_machine_reading(now)`, and only then the slower machine
//! readings; `handle_tick(now, tick)`; `poll_action` until it answers `None`; then wait up to
//! `poll_timeout()` for the next request. The core logs what changed (through
//! `tracing`, as quinn-proto does), so a person can follow the decisions.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, NaiveTime, TimeZone};
use compute::slicing::Budget;
use signals::MachineReading;

use super::Snapshot;
use crate::lending::{Decision, LendingPolicy, PauseUntil, Resource, Sample};
use crate::status::{PauseFor, ResourceState, SignalsStatus, Target};

/// For the first minutes after the owner leaves, slices stay short: they may be back.
pub(super) const MAY_RETURN: Duration = Duration::from_secs(120);

/// How often the slower machine readings (battery, games, temperature) are taken while
/// the GPU is lent, and otherwise.
const MACHINE_EVERY_LENDING: Duration = Duration::from_secs(3);
const MACHINE_EVERY: Duration = Duration::from_secs(10);

/// Input idle time is read this often while a job holds the GPU (the yield path), and
/// once a second otherwise.
const YIELD_TICK: Duration = Duration::from_millis(50);
const TICK: Duration = Duration::from_secs(1);

/// The quotas' use is saved this often while it grows.
const SAVE_QUOTA_EVERY: Duration = Duration::from_secs(10);

/// What the driver read this round.
#[derive(Clone, Debug)]
pub(super) struct Tick {
    /// Time since the last input, or why it cannot be read.
    pub idle: Result<Duration, String>,
    /// The input reader's name.
    pub input_backend: String,
    /// A fresh machine reading, when `needs_machine_reading` asked for one.
    pub machine: Option<MachineReading>,
    /// Whether the schedule allows lending now (`None`: no schedule).
    pub schedule_allows: Option<bool>,
    /// When the schedule next changes its answer, for people (`"22:00"`).
    pub schedule_changes_at: Option<String>,
    /// GPU time lent since the last round.
    pub gpu_busy: Duration,
    /// The tighter quota's use, in percent.
    pub quota_percent: Option<u32>,
    /// Bytes relayed up and down since the node started.
    pub relayed: (u64, u64),
    /// The quotas' use, to be saved across a restart.
    pub quota_used: Option<(relay::limits::Period, u64, u64)>,
    /// A job is on the GPU now.
    pub job_on_gpu: bool,
}

/// What the driver is to do.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Action {
    /// Lend the GPU, or yield after the slice in flight, with this slice budget.
    Gpu { lending: bool, budget: Budget },
    /// Stop the relay, with the reason its clients are told, or serve (`None`).
    Relay(Option<String>),
    /// What a job arriving now is told it waits for (`None`: nothing).
    WaitingFor(Option<String>),
    /// Save the owner's pauses (`policy()`), so they survive a restart.
    SavePauses,
    /// Save the quotas' use.
    SaveQuota((relay::limits::Period, u64, u64)),
    /// Show the owner this state.
    Publish(Box<Snapshot>),
}

/// The node's decisions, stepped by the policy thread.
pub(super) struct Core {
    policy: LendingPolicy,
    headless: bool,
    reading: MachineReading,
    last_read: Option<Instant>,
    lent_since: Option<Instant>,
    rates_at: (Instant, (u64, u64)),
    rates: (u64, u64),
    logged: (String, String),
    quota_saved: (Instant, Option<(relay::limits::Period, u64, u64)>),
    yield_watch: bool,
    actions: VecDeque<Action>,
}

impl Core {
    /// A core over `policy` (with the owner's saved pauses already in it), starting at
    /// `now` with the relay's counters and quota use as they are.
    pub(super) fn new(
        policy: LendingPolicy,
        headless: bool,
        now: Instant,
        relayed: (u64, u64),
        quota_used: Option<(relay::limits::Period, u64, u64)>,
    ) -> Self {
        Self {
            policy,
            headless,
            reading: MachineReading::default(),
            last_read: None,
            lent_since: None,
            rates_at: (now, relayed),
            rates: (0, 0),
            logged: (String::new(), String::new()),
            quota_saved: (now, quota_used),
            yield_watch: false,
            actions: VecDeque::new(),
        }
    }

    /// The policy, with the owner's pauses (what `SavePauses` saves).
    pub(super) fn policy(&self) -> &LendingPolicy {
        &self.policy
    }

    /// The owner paused `target` until `until`.
    pub(super) fn handle_pause(&mut self, target: Target, until: PauseUntil) {
        tracing::info!(
            "the owner paused {} until {}",
            target.name(),
            match &until {
                PauseUntil::Time(_, label) => label.as_str(),
                PauseUntil::Resumed => "they resume",
            }
        );
        self.policy.pause(target.resource(), until);
        self.actions.push_back(Action::SavePauses);
    }

    /// The owner resumed `target`.
    pub(super) fn handle_resume(&mut self, target: Target) {
        tracing::info!("the owner resumed {}", target.name());
        self.policy.resume(target.resource());
        self.actions.push_back(Action::SavePauses);
    }

    /// Whether this round should take the slower machine readings.
    pub(super) fn needs_machine_reading(&self, now: Instant) -> bool {
        let every = if self.lent_since.is_some() {
            MACHINE_EVERY_LENDING
        } else {
            MACHINE_EVERY
        };
        self.last_read
            .is_none_or(|at| now.duration_since(at) >= every)
    }

    /// One round: the readings in, the decisions out (through `poll_action`).
    pub(super) fn handle_tick(&mut self, now: Instant, tick: Tick) {
        if let Some(reading) = tick.machine {
            self.reading = reading;
            self.last_read = Some(now);
        }
        if !tick.gpu_busy.is_zero() {
            self.policy.handle_gpu_busy(now, tick.gpu_busy);
        }
        self.policy.handle_sample(Sample {
            input_idle: Some(tick.idle.clone()),
            on_battery: self.reading.on_battery,
            game: self.reading.game.clone(),
            gpu_temperature_c: self.reading.gpu_temperature_c,
            quota_percent: tick.quota_percent,
            schedule_allows: tick.schedule_allows,
            schedule_changes_at: tick.schedule_changes_at,
            headless: self.headless,
        });
        let gpu = self.policy.decision(Resource::Gpu, now);
        let bandwidth = self.policy.decision(Resource::Bandwidth, now);

        // Applied at once: this is the yield path.
        match (&gpu, self.lent_since) {
            (Decision::Lending, None) => self.lent_since = Some(now),
            (Decision::Lending, Some(_)) => {}
            (_, _) => self.lent_since = None,
        }
        let may_return = !self.headless
            && self
                .lent_since
                .is_some_and(|since| now.duration_since(since) < MAY_RETURN);
        let budget = if may_return {
            Budget::Active
        } else {
            Budget::Idle
        };
        self.actions.push_back(Action::Gpu {
            lending: gpu == Decision::Lending,
            budget,
        });
        self.actions.push_back(Action::Relay(match &bandwidth {
            Decision::Lending => None,
            other => Some(other.to_string()),
        }));
        self.actions.push_back(Action::WaitingFor(
            (gpu != Decision::Lending).then(|| gpu.to_string()),
        ));

        // The quotas' use survives a restart: saved every 10 s while it grows.
        if now.duration_since(self.quota_saved.0) >= SAVE_QUOTA_EVERY {
            if tick.quota_used != self.quota_saved.1
                && let Some(used) = tick.quota_used
            {
                self.actions.push_back(Action::SaveQuota(used));
            }
            self.quota_saved = (now, tick.quota_used);
        }
        let elapsed = now.duration_since(self.rates_at.0);
        if elapsed >= Duration::from_secs(1) {
            let per_s =
                |a: u64, b: u64| (a.saturating_sub(b) as f64 / elapsed.as_secs_f64()) as u64;
            self.rates = (
                per_s(tick.relayed.0, self.rates_at.1.0),
                per_s(tick.relayed.1, self.rates_at.1.1),
            );
            self.rates_at = (now, tick.relayed);
        }

        let gpu_state = ResourceState::of(&gpu, self.policy.paused(Resource::Gpu));
        let bandwidth_state =
            ResourceState::of(&bandwidth, self.policy.paused(Resource::Bandwidth));
        let logged = (gist(&gpu_state), gist(&bandwidth_state));
        if logged.0 != self.logged.0 {
            tracing::info!("GPU: {gpu}");
        }
        if logged.1 != self.logged.1 {
            tracing::info!("bandwidth: {bandwidth}");
        }
        self.logged = logged;
        self.actions.push_back(Action::Publish(Box::new(Snapshot {
            gpu: gpu_state,
            bandwidth: bandwidth_state,
            busy_percent: self.policy.gpu_share(now),
            up_rate: self.rates.0,
            down_rate: self.rates.1,
            signals: SignalsStatus {
                input_backend: tick.input_backend,
                input_idle_s: tick.idle.as_ref().ok().map(Duration::as_secs),
                input_error: tick.idle.err(),
                headless: self.headless,
                machine: self.reading.clone(),
                schedule_allows: tick.schedule_allows,
            },
        })));
        // Watch input closely only while a job holds the GPU: that is when the owner's
        // return must reach the lane at once.
        self.yield_watch = gpu == Decision::Lending && tick.job_on_gpu && !self.headless;
    }

    /// The next thing to do, in the order decided.
    pub(super) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// How long to wait for a request of the owner's before the next round.
    pub(super) fn poll_timeout(&self) -> Duration {
        if self.yield_watch { YIELD_TICK } else { TICK }
    }
}

/// A reason without its changing numbers, to log a change once rather than each tick.
fn gist(state: &ResourceState) -> String {
    let reason = state.reason.as_deref().unwrap_or("");
    let cut = reason
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(reason.len());
    format!("{} {}", state.state, &reason[..cut])
}

/// When a pause for `how_long` asked at `now` (`local` on the wall clock) ends, as an
/// instant and a label for people.
pub(super) fn pause_until<Tz: TimeZone>(
    how_long: &PauseFor,
    now: Instant,
    local: DateTime<Tz>,
) -> PauseUntil
where
    Tz::Offset: std::fmt::Display,
{
    match how_long {
        PauseFor::UntilResumed => PauseUntil::Resumed,
        PauseFor::Seconds(s) => {
            let end = local.clone() + chrono::Duration::seconds(*s as i64);
            let label = if end.date_naive() == local.date_naive() {
                end.format("%H:%M").to_string()
            } else {
                end.format("%a %H:%M").to_string()
            };
            PauseUntil::Time(now + Duration::from_secs(*s), label)
        }
        PauseFor::Tomorrow => {
            let six = NaiveTime::from_hms_opt(6, 0, 0).unwrap_or_default();
            let today = local.date_naive();
            let tomorrow = today.succ_opt().unwrap_or(today);
            let end = tomorrow
                .and_time(six)
                .and_local_timezone(local.timezone())
                .earliest()
                .unwrap_or(local.clone() + chrono::Duration::hours(12));
            let wait = (end - local)
                .to_std()
                .unwrap_or(Duration::from_secs(12 * 3600));
            PauseUntil::Time(now + wait, "tomorrow 06:00".into())
        }
    }
}

/// `pause_until` on the local clock.
pub(super) fn pause_until_now(how_long: &PauseFor) -> PauseUntil {
    pause_until(how_long, Instant::now(), Local::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lending::Limits;
    use crate::status::State;

    const S: Duration = Duration::from_secs(1);

    /// A desktop whose owner has been away `away` and which lends at once after 60 s.
    fn tick(away: Duration) -> Tick {
        Tick {
            idle: Ok(away),
            input_backend: "test".into(),
            machine: None,
            schedule_allows: None,
            schedule_changes_at: None,
            gpu_busy: Duration::ZERO,
            quota_percent: None,
            relayed: (0, 0),
            quota_used: None,
            job_on_gpu: false,
        }
    }

    fn core(now: Instant) -> Core {
        let mut limits = Limits::from_config(&crate::config::Config::default());
        limits.idle_threshold = 60 * S;
        Core::new(LendingPolicy::new(limits), false, now, (0, 0), None)
    }

    fn drain(core: &mut Core) -> Vec<Action> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn gpu(actions: &[Action]) -> Option<(bool, Budget)> {
        actions.iter().find_map(|a| match a {
            Action::Gpu { lending, budget } => Some((*lending, *budget)),
            _ => None,
        })
    }

    fn published(actions: &[Action]) -> &Snapshot {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Publish(s) => Some(s),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn the_gpu_waits_for_the_owner_to_leave_then_slices_short_then_long() {
        let t0 = Instant::now();
        let mut core = core(t0);
        core.handle_tick(t0, tick(10 * S));
        let actions = drain(&mut core);
        assert_eq!(gpu(&actions), Some((false, Budget::Idle)));
        let waiting = actions.iter().find_map(|a| match a {
            Action::WaitingFor(w) => Some(w.clone()),
            _ => None,
        });
        assert!(
            waiting.flatten().unwrap().contains("user active"),
            "a queued job is told why it waits"
        );
        assert_eq!(published(&actions).gpu.state, State::Waiting);

        // Away long enough: lent, with short slices while the owner may come back.
        let t1 = t0 + 60 * S;
        core.handle_tick(t1, tick(61 * S));
        assert_eq!(gpu(&drain(&mut core)), Some((true, Budget::Active)));
        core.handle_tick(t1 + MAY_RETURN, tick(61 * S + MAY_RETURN));
        assert_eq!(gpu(&drain(&mut core)), Some((true, Budget::Idle)));
    }

    #[test]
    fn the_owners_return_yields_in_the_same_round_and_input_is_watched_closely_meanwhile() {
        let t0 = Instant::now();
        let mut core = core(t0);
        let mut lent = tick(120 * S);
        lent.job_on_gpu = true;
        core.handle_tick(t0, lent);
        drain(&mut core);
        assert_eq!(core.poll_timeout(), YIELD_TICK);
        let mut back = tick(Duration::ZERO);
        back.job_on_gpu = true;
        core.handle_tick(t0 + YIELD_TICK, back);
        let actions = drain(&mut core);
        assert_eq!(gpu(&actions), Some((false, Budget::Idle)));
        assert_eq!(core.poll_timeout(), TICK);
    }

    #[test]
    fn machine_readings_are_taken_every_ten_seconds_and_every_three_while_lending() {
        let t0 = Instant::now();
        let mut core = core(t0);
        assert!(core.needs_machine_reading(t0));
        let mut first = tick(Duration::ZERO);
        first.machine = Some(MachineReading::default());
        core.handle_tick(t0, first);
        assert!(!core.needs_machine_reading(t0 + 9 * S));
        assert!(core.needs_machine_reading(t0 + 10 * S));
        let mut away = tick(120 * S);
        away.machine = Some(MachineReading::default());
        core.handle_tick(t0 + 10 * S, away);
        assert!(core.needs_machine_reading(t0 + 13 * S));
    }

    #[test]
    fn pauses_are_saved_and_published_with_their_end() {
        let t0 = Instant::now();
        let mut core = core(t0);
        core.handle_pause(Target::Gpu, PauseUntil::Time(t0 + 3600 * S, "18:00".into()));
        core.handle_tick(t0, tick(120 * S));
        let actions = drain(&mut core);
        assert_eq!(actions[0], Action::SavePauses);
        assert_eq!(gpu(&actions), Some((false, Budget::Idle)));
        let shown = published(&actions);
        assert_eq!(shown.gpu.state, State::Paused);
        assert_eq!(shown.gpu.paused_by_you_until.as_deref(), Some("18:00"));
        assert_eq!(shown.bandwidth.state, State::Lending);

        core.handle_resume(Target::All);
        core.handle_tick(t0 + S, tick(121 * S));
        let actions = drain(&mut core);
        assert_eq!(actions[0], Action::SavePauses);
        assert!(core.policy().paused(Resource::Gpu).is_none());
        assert_eq!(gpu(&actions).map(|g| g.0), Some(true));
    }

    #[test]
    fn relay_rates_and_the_quotas_use_are_counted_on_the_clock_given() {
        let t0 = Instant::now();
        let mut core = core(t0);
        let period = relay::limits::Period { day: 1, month: 1 };
        let mut t = tick(Duration::ZERO);
        t.relayed = (2_000, 1_000);
        t.quota_used = Some((period, 3_000, 3_000));
        core.handle_tick(t0 + 2 * S, t.clone());
        let actions = drain(&mut core);
        let shown = published(&actions);
        assert_eq!((shown.up_rate, shown.down_rate), (1_000, 500));
        assert!(
            !actions.iter().any(|a| matches!(a, Action::SaveQuota(_))),
            "saved before 10 s"
        );
        core.handle_tick(t0 + 10 * S, t.clone());
        let actions = drain(&mut core);
        assert!(actions.contains(&Action::SaveQuota((period, 3_000, 3_000))));
        // Unchanged use is not saved again.
        core.handle_tick(t0 + 20 * S, t);
        assert!(
            !drain(&mut core)
                .iter()
                .any(|a| matches!(a, Action::SaveQuota(_)))
        );
    }

    #[test]
    fn pause_ends_read_as_people_say_them() {
        let now = Instant::now();
        let evening = chrono::FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2026, 12, 6, 17, 0, 0)
            .unwrap();
        let PauseUntil::Time(at, label) = pause_until(&PauseFor::Seconds(3600), now, evening)
        else {
            panic!("a pause of an hour ends")
        };
        assert_eq!((at - now, label.as_str()), (3600 * S, "18:00"));
        let PauseUntil::Time(_, label) = pause_until(&PauseFor::Seconds(8 * 3600), now, evening)
        else {
            panic!()
        };
        assert_eq!(label, "Mon 01:00");
        let PauseUntil::Time(at, label) = pause_until(&PauseFor::Tomorrow, now, evening) else {
            panic!()
        };
        assert_eq!(
            (at - now, label.as_str()),
            (13 * 3600 * S, "tomorrow 06:00")
        );
        assert_eq!(
            pause_until(&PauseFor::UntilResumed, now, evening),
            PauseUntil::Resumed
        );
    }
}
