//! The lending policy: when each resource (GPU, bandwidth) may be lent, and why not.
//!
//! A sans-IO state machine: the caller feeds it timestamped samples of the machine's
//! state (`handle_sample`), the owner's pauses, and the GPU time actually lent; it
//! answers with a decision per resource, always with a reason a person can read
//! ("waiting: user active 12 s ago", "paused: game running: eldenring.exe"). It never
//! reads a clock or a sensor itself, so tests drive it with made-up time.
//!
//! Pausing only stops new lending: credit already earned is in the ledger and stays.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Something Spare lends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// GPU time.
    Gpu,
    /// Bandwidth through the relay.
    Bandwidth,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Gpu => "GPU",
            Resource::Bandwidth => "bandwidth",
        })
    }
}

/// What a resource may do now, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Lend it.
    Lending,
    /// Not now; it starts by itself when the reason passes (the owner is active, the
    /// duty cycle is resting).
    Waiting {
        /// Why, in plain words.
        reason: String,
    },
    /// Stopped by a rule or by the owner until that changes.
    Paused {
        /// Why, in plain words.
        reason: String,
    },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Lending => f.write_str("lending"),
            Decision::Waiting { reason } => write!(f, "waiting: {reason}"),
            Decision::Paused { reason } => write!(f, "paused: {reason}"),
        }
    }
}

/// One look at the machine, taken by the platform signals.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Time since the last keyboard or mouse input, or why it could not be read.
    pub input_idle: Option<Result<Duration, String>>,
    /// On battery power (`None`: no battery or unknown).
    pub on_battery: Option<bool>,
    /// A game or exclusive app that is running, by process name.
    pub game: Option<String>,
    /// The GPU's temperature in °C, where readable.
    pub gpu_temperature_c: Option<u32>,
    /// The share of the tighter bandwidth quota used, in percent.
    pub quota_percent: Option<u32>,
    /// Whether the owner's schedule allows lending now (`None`: no schedule), and
    /// when that changes, for people (`"22:00"`).
    pub schedule_allows: Option<bool>,
    /// When the schedule next changes, for the reason (`"22:00"`).
    pub schedule_changes_at: Option<String>,
    /// No local user session at all (a server with no display): nobody can be
    /// active, so unreadable input does not hold lending back.
    pub headless: bool,
}

/// The owner's limits (from the config).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Input idle time before lending starts.
    pub idle_threshold: Duration,
    /// The most of the GPU's time lending may use, in percent.
    pub gpu_duty_percent: u32,
    /// Stop lending the GPU above this temperature.
    pub max_gpu_temperature_c: u32,
    /// Lend the GPU at all.
    pub gpu_enabled: bool,
    /// Lend bandwidth at all.
    pub bandwidth_enabled: bool,
    /// Lend bandwidth only while the owner is away (otherwise whenever allowed).
    pub bandwidth_only_when_away: bool,
}

impl Limits {
    /// The limits a config sets.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            idle_threshold: Duration::from_secs(u64::from(config.lending.idle_minutes) * 60),
            gpu_duty_percent: config.gpu.max_duty_cycle_percent,
            max_gpu_temperature_c: config.gpu.max_temperature_c,
            gpu_enabled: config.gpu.enabled,
            bandwidth_enabled: config.bandwidth.enabled,
            bandwidth_only_when_away: config.bandwidth.only_when_away,
        }
    }
}

/// How long a pause lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PauseUntil {
    /// Until this moment, described for people (`"18:00"`, `"tomorrow"`).
    Time(Instant, String),
    /// Until the owner resumes.
    Resumed,
}

/// The window the GPU duty cycle is measured over.
const DUTY_WINDOW: Duration = Duration::from_secs(60);

/// The lending policy.
#[derive(Debug)]
pub struct LendingPolicy {
    limits: Limits,
    sample: Sample,
    gpu_pause: Option<PauseUntil>,
    bandwidth_pause: Option<PauseUntil>,
    /// GPU time lent: (when it ended, how long), within the duty window.
    gpu_busy: VecDeque<(Instant, Duration)>,
}

impl LendingPolicy {
    /// A policy with nothing sampled yet (so nothing is lent until a sample says so).
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            sample: Sample::default(),
            gpu_pause: None,
            bandwidth_pause: None,
            gpu_busy: VecDeque::new(),
        }
    }

    /// Takes the latest look at the machine.
    pub fn handle_sample(&mut self, sample: Sample) {
        self.sample = sample;
    }

    /// Records GPU time lent that ended at `now`.
    pub fn handle_gpu_busy(&mut self, now: Instant, busy: Duration) {
        self.gpu_busy.push_back((now, busy));
        self.forget_old_busy(now);
    }

    fn forget_old_busy(&mut self, now: Instant) {
        while let Some((at, _)) = self.gpu_busy.front() {
            if now.saturating_duration_since(*at) > DUTY_WINDOW {
                self.gpu_busy.pop_front();
            } else {
                break;
            }
        }
    }

    /// The share of the last minute the GPU was lent, in percent.
    pub fn gpu_share(&mut self, now: Instant) -> f64 {
        self.forget_old_busy(now);
        let busy: Duration = self.gpu_busy.iter().map(|(_, d)| *d).sum();
        busy.as_secs_f64() / DUTY_WINDOW.as_secs_f64() * 100.0
    }

    /// The owner's pause of `resource`, if any.
    pub fn paused(&self, resource: Resource) -> Option<&PauseUntil> {
        match resource {
            Resource::Gpu => self.gpu_pause.as_ref(),
            Resource::Bandwidth => self.bandwidth_pause.as_ref(),
        }
    }

    /// The owner pauses `resource` (or both with `None`).
    pub fn pause(&mut self, resource: Option<Resource>, until: PauseUntil) {
        if resource != Some(Resource::Bandwidth) {
            self.gpu_pause = Some(until.clone());
        }
        if resource != Some(Resource::Gpu) {
            self.bandwidth_pause = Some(until);
        }
    }

    /// The owner resumes `resource` (or both with `None`).
    pub fn resume(&mut self, resource: Option<Resource>) {
        if resource != Some(Resource::Bandwidth) {
            self.gpu_pause = None;
        }
        if resource != Some(Resource::Gpu) {
            self.bandwidth_pause = None;
        }
    }

    /// What `resource` may do at `now`, with the reason.
    pub fn decision(&mut self, resource: Resource, now: Instant) -> Decision {
        let paused = |reason: String| Decision::Paused { reason };
        let waiting = |reason: String| Decision::Waiting { reason };
        let enabled = match resource {
            Resource::Gpu => self.limits.gpu_enabled,
            Resource::Bandwidth => self.limits.bandwidth_enabled,
        };
        if !enabled {
            return paused(format!("{resource} lending is off in your settings"));
        }
        let pause = match resource {
            Resource::Gpu => &mut self.gpu_pause,
            Resource::Bandwidth => &mut self.bandwidth_pause,
        };
        match pause {
            Some(PauseUntil::Time(until, _)) if now >= *until => *pause = None,
            Some(PauseUntil::Time(_, label)) => return paused(format!("by you until {label}")),
            Some(PauseUntil::Resumed) => return paused("by you until you resume".into()),
            None => {}
        }
        let s = &self.sample;
        if resource == Resource::Gpu {
            if let Some(game) = &s.game {
                return paused(format!("game running: {game}"));
            }
            if let Some(t) = s.gpu_temperature_c
                && t > self.limits.max_gpu_temperature_c
            {
                return paused(format!(
                    "GPU at {t} °C (your limit is {} °C)",
                    self.limits.max_gpu_temperature_c
                ));
            }
        }
        if s.on_battery == Some(true) {
            return paused("on battery".into());
        }
        if resource == Resource::Bandwidth
            && let Some(p) = s.quota_percent
            && p >= 100
        {
            return paused("bandwidth quota reached".into());
        }
        if s.schedule_allows == Some(false) {
            return waiting(match &s.schedule_changes_at {
                Some(at) => format!("outside your schedule until {at}"),
                None => "outside your schedule".into(),
            });
        }
        let away_needed = resource == Resource::Gpu || self.limits.bandwidth_only_when_away;
        match &s.input_idle {
            _ if !away_needed => {}
            Some(Err(_)) if s.headless => {}
            None => return waiting("no reading of input activity yet".into()),
            Some(Err(why)) => return waiting(format!("cannot tell whether you are away: {why}")),
            Some(Ok(idle)) if *idle < self.limits.idle_threshold => {
                return waiting(format!("user active {} s ago", idle.as_secs()));
            }
            Some(Ok(_)) => {}
        }
        if resource == Resource::Gpu {
            let share = self.gpu_share(now);
            if share >= f64::from(self.limits.gpu_duty_percent) {
                return waiting(format!(
                    "resting: the GPU was lent {share:.0} % of the last minute (your limit is {} %)",
                    self.limits.gpu_duty_percent
                ));
            }
        }
        Decision::Lending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            idle_threshold: Duration::from_secs(300),
            gpu_duty_percent: 60,
            max_gpu_temperature_c: 80,
            gpu_enabled: true,
            bandwidth_enabled: true,
            bandwidth_only_when_away: true,
        }
    }

    fn idle(secs: u64) -> Sample {
        Sample {
            input_idle: Some(Ok(Duration::from_secs(secs))),
            ..Sample::default()
        }
    }

    #[test]
    fn limits_come_from_the_config() {
        let l = Limits::from_config(&crate::config::Config::default());
        assert_eq!(l.idle_threshold, Duration::from_secs(300));
        assert_eq!((l.gpu_duty_percent, l.max_gpu_temperature_c), (60, 80));
    }

    #[test]
    fn lends_only_after_the_idle_threshold_and_stops_at_once_on_activity() {
        let now = Instant::now();
        let mut p = LendingPolicy::new(limits());
        assert!(matches!(
            p.decision(Resource::Gpu, now),
            Decision::Waiting { .. }
        ));
        p.handle_sample(idle(12));
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "waiting: user active 12 s ago"
        );
        p.handle_sample(idle(301));
        assert_eq!(p.decision(Resource::Gpu, now), Decision::Lending);
        assert_eq!(p.decision(Resource::Bandwidth, now), Decision::Lending);
        p.handle_sample(idle(0));
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "waiting: user active 0 s ago"
        );
    }

    #[test]
    fn games_heat_battery_and_quota_pause_with_reasons() {
        let now = Instant::now();
        let mut p = LendingPolicy::new(limits());
        p.handle_sample(Sample {
            game: Some("eldenring.exe".into()),
            ..idle(900)
        });
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "paused: game running: eldenring.exe"
        );
        // A game stops the GPU, not the bandwidth.
        assert_eq!(p.decision(Resource::Bandwidth, now), Decision::Lending);
        p.handle_sample(Sample {
            gpu_temperature_c: Some(85),
            ..idle(900)
        });
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "paused: GPU at 85 °C (your limit is 80 °C)"
        );
        p.handle_sample(Sample {
            on_battery: Some(true),
            quota_percent: Some(100),
            ..idle(900)
        });
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "paused: on battery"
        );
        p.handle_sample(Sample {
            quota_percent: Some(100),
            ..idle(900)
        });
        assert_eq!(
            p.decision(Resource::Bandwidth, now).to_string(),
            "paused: bandwidth quota reached"
        );
        assert_eq!(p.decision(Resource::Gpu, now), Decision::Lending);
    }

    #[test]
    fn owner_pauses_last_until_their_time_or_a_resume() {
        let now = Instant::now();
        let mut p = LendingPolicy::new(limits());
        p.handle_sample(idle(900));
        p.pause(
            Some(Resource::Gpu),
            PauseUntil::Time(now + Duration::from_secs(3600), "18:00".into()),
        );
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "paused: by you until 18:00"
        );
        assert_eq!(p.decision(Resource::Bandwidth, now), Decision::Lending);
        assert_eq!(
            p.decision(Resource::Gpu, now + Duration::from_secs(3600)),
            Decision::Lending
        );

        p.pause(None, PauseUntil::Resumed);
        let later = now + Duration::from_secs(86_400);
        assert_eq!(
            p.decision(Resource::Bandwidth, later).to_string(),
            "paused: by you until you resume"
        );
        p.resume(Some(Resource::Bandwidth));
        assert_eq!(p.decision(Resource::Bandwidth, later), Decision::Lending);
        assert!(matches!(
            p.decision(Resource::Gpu, later),
            Decision::Paused { .. }
        ));
        p.resume(None);
        assert_eq!(p.decision(Resource::Gpu, later), Decision::Lending);
    }

    #[test]
    fn the_duty_cycle_rests_the_gpu() {
        let start = Instant::now();
        let mut p = LendingPolicy::new(limits());
        p.handle_sample(idle(900));
        // 40 s of GPU time in the last minute: 67 %, over the 60 % limit.
        p.handle_gpu_busy(start + Duration::from_secs(20), Duration::from_secs(20));
        p.handle_gpu_busy(start + Duration::from_secs(50), Duration::from_secs(20));
        let d = p.decision(Resource::Gpu, start + Duration::from_secs(50));
        assert!(
            d.to_string()
                .starts_with("waiting: resting: the GPU was lent 67 %"),
            "{d}"
        );
        assert_eq!(
            p.decision(Resource::Bandwidth, start + Duration::from_secs(50)),
            Decision::Lending
        );
        // A minute later the first stretch has left the window.
        assert_eq!(
            p.decision(Resource::Gpu, start + Duration::from_secs(81)),
            Decision::Lending
        );
    }

    #[test]
    fn unreadable_input_or_schedule_or_settings_keep_it_waiting() {
        let now = Instant::now();
        let mut p = LendingPolicy::new(Limits {
            gpu_enabled: false,
            ..limits()
        });
        p.handle_sample(Sample {
            input_idle: Some(Err("no display (DISPLAY unset)".into())),
            ..Sample::default()
        });
        assert_eq!(
            p.decision(Resource::Bandwidth, now).to_string(),
            "waiting: cannot tell whether you are away: no display (DISPLAY unset)"
        );
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "paused: GPU lending is off in your settings"
        );
        p.handle_sample(Sample {
            schedule_allows: Some(false),
            schedule_changes_at: Some("22:00".into()),
            ..idle(900)
        });
        assert_eq!(
            p.decision(Resource::Bandwidth, now).to_string(),
            "waiting: outside your schedule until 22:00"
        );
    }

    #[test]
    fn bandwidth_is_lent_while_the_owner_is_active_unless_told_otherwise() {
        let now = Instant::now();
        let mut p = LendingPolicy::new(Limits {
            bandwidth_only_when_away: false,
            ..limits()
        });
        p.handle_sample(idle(3));
        assert_eq!(p.decision(Resource::Bandwidth, now), Decision::Lending);
        assert_eq!(
            p.decision(Resource::Gpu, now).to_string(),
            "waiting: user active 3 s ago"
        );
        // Rules other than presence still hold it.
        p.handle_sample(Sample {
            on_battery: Some(true),
            ..idle(3)
        });
        assert_eq!(
            p.decision(Resource::Bandwidth, now).to_string(),
            "paused: on battery"
        );
    }

    #[test]
    fn a_headless_machine_lends_without_an_input_reading() {
        let now = Instant::now();
        let mut p = LendingPolicy::new(limits());
        let no_display = Sample {
            input_idle: Some(Err("no display".into())),
            ..Sample::default()
        };
        p.handle_sample(no_display.clone());
        assert!(matches!(
            p.decision(Resource::Gpu, now),
            Decision::Waiting { .. }
        ));
        p.handle_sample(Sample {
            headless: true,
            ..no_display
        });
        assert_eq!(p.decision(Resource::Gpu, now), Decision::Lending);
        assert_eq!(p.decision(Resource::Bandwidth, now), Decision::Lending);
    }

    #[test]
    fn every_signal_in_one_table() {
        // (what the machine shows, GPU decision, bandwidth decision), bandwidth lent
        // while the owner is active (the default).
        let away = idle(900);
        let rows: Vec<(Sample, &str, &str)> = vec![
            (away.clone(), "lending", "lending"),
            (idle(10), "waiting: user active 10 s ago", "lending"),
            (
                Sample {
                    game: Some("hl2_linux (Steam library)".into()),
                    ..away.clone()
                },
                "paused: game running: hl2_linux (Steam library)",
                "lending",
            ),
            (
                Sample {
                    on_battery: Some(true),
                    ..away.clone()
                },
                "paused: on battery",
                "paused: on battery",
            ),
            (
                Sample {
                    on_battery: Some(false),
                    ..away.clone()
                },
                "lending",
                "lending",
            ),
            (
                Sample {
                    gpu_temperature_c: Some(80),
                    ..away.clone()
                },
                "lending",
                "lending",
            ),
            (
                Sample {
                    gpu_temperature_c: Some(81),
                    ..away.clone()
                },
                "paused: GPU at 81 °C (your limit is 80 °C)",
                "lending",
            ),
            (
                Sample {
                    quota_percent: Some(99),
                    ..away.clone()
                },
                "lending",
                "lending",
            ),
            (
                Sample {
                    quota_percent: Some(100),
                    ..away.clone()
                },
                "lending",
                "paused: bandwidth quota reached",
            ),
            (
                Sample {
                    schedule_allows: Some(false),
                    schedule_changes_at: Some("22:00".into()),
                    ..away.clone()
                },
                "waiting: outside your schedule until 22:00",
                "waiting: outside your schedule until 22:00",
            ),
            (
                Sample {
                    schedule_allows: Some(true),
                    ..away.clone()
                },
                "lending",
                "lending",
            ),
            (
                Sample {
                    input_idle: Some(Err("no GNOME idle monitor".into())),
                    ..Sample::default()
                },
                "waiting: cannot tell whether you are away: no GNOME idle monitor",
                "lending",
            ),
        ];
        let now = Instant::now();
        for (sample, gpu, bandwidth) in rows {
            let mut p = LendingPolicy::new(Limits {
                bandwidth_only_when_away: false,
                ..limits()
            });
            let shown = format!("{sample:?}");
            p.handle_sample(sample);
            assert_eq!(p.decision(Resource::Gpu, now).to_string(), gpu, "{shown}");
            assert_eq!(
                p.decision(Resource::Bandwidth, now).to_string(),
                bandwidth,
                "{shown}"
            );
        }
    }

    #[test]
    fn the_idle_threshold_is_a_threshold_with_activity_resetting_it() {
        // Hysteresis comes from the threshold itself: lending starts only after a
        // full threshold of quiet, and any input starts the count again.
        let now = Instant::now();
        let mut p = LendingPolicy::new(limits());
        for (idle_s, lending) in [
            (299, false),
            (300, true),
            (1, false),
            (299, false),
            (300, true),
        ] {
            p.handle_sample(idle(idle_s));
            assert_eq!(
                p.decision(Resource::Gpu, now) == Decision::Lending,
                lending,
                "idle {idle_s} s"
            );
        }
    }
}
