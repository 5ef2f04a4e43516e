//! What the node tells its owner: the status (`spare status --json`, the tray, the
//! dashboard; the schema is in `node/STATUS.md`), and the owner's pause and resume
//! requests, parsed from what people type.

use serde::{Deserialize, Serialize};
use signals::MachineReading;

use crate::config::EgressMode;
use crate::lending::{Decision, PauseUntil, Resource};

/// How long a pause lasts, as the owner asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PauseFor {
    /// A while.
    Seconds(u64),
    /// Until tomorrow morning (06:00 local time).
    Tomorrow,
    /// Until the owner resumes.
    UntilResumed,
}

impl std::str::FromStr for PauseFor {
    type Err = String;

    /// `1h`, `30m`, `90s`, `2h30m`, `tomorrow`, `until-resumed`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "tomorrow" => return Ok(PauseFor::Tomorrow),
            "until-resumed" | "forever" | "indefinitely" => return Ok(PauseFor::UntilResumed),
            _ => {}
        }
        let bad = || {
            format!(
                "{text:?} is not a duration: use e.g. 1h, 30m, 2h30m, tomorrow or until-resumed"
            )
        };
        let mut total = 0u64;
        let mut number = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            total = total.saturating_add(n.saturating_mul(unit));
            number.clear();
        }
        if !number.is_empty() || total == 0 || total > 30 * 86_400 {
            return Err(if total > 30 * 86_400 {
                "a timed pause lasts at most 30 days: use until-resumed for longer".into()
            } else {
                bad()
            });
        }
        Ok(PauseFor::Seconds(total))
    }
}

/// Which resources a command is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", ts(rename = "PauseTarget"))]
pub enum Target {
    /// GPU time.
    Gpu,
    /// Bandwidth.
    Bandwidth,
    /// Both.
    All,
}

impl Target {
    /// For people: `GPU`, `bandwidth`, `GPU and bandwidth`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Gpu => "GPU",
            Target::Bandwidth => "bandwidth",
            Target::All => "GPU and bandwidth",
        }
    }

    pub(crate) fn resource(self) -> Option<Resource> {
        match self {
            Target::Gpu => Some(Resource::Gpu),
            Target::Bandwidth => Some(Resource::Bandwidth),
            Target::All => None,
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "gpu" => Ok(Target::Gpu),
            "bandwidth" | "relay" => Ok(Target::Bandwidth),
            "all" => Ok(Target::All),
            other => Err(format!(
                "{other:?} is not a resource: use gpu, bandwidth or all"
            )),
        }
    }
}

/// What a resource is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", ts(rename = "LendingState"))]
pub enum State {
    /// Lent now.
    Lending,
    /// Not now; starts by itself when the reason passes.
    #[default]
    Waiting,
    /// Stopped until its cause changes.
    Paused,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Lending => "lending",
            State::Waiting => "waiting",
            State::Paused => "paused",
        })
    }
}

/// One resource's state, as `spare status --json` reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ResourceState {
    /// `lending`, `waiting` or `paused`.
    pub state: State,
    /// Why not lending, in plain words (`null` while lending).
    pub reason: Option<String>,
    /// The owner's pause: until when, for people (`"18:00"`, `"you resume"`).
    pub paused_by_you_until: Option<String>,
}

impl ResourceState {
    pub(crate) fn of(decision: &Decision, pause: Option<&PauseUntil>) -> Self {
        let (state, reason) = match decision {
            Decision::Lending => (State::Lending, None),
            Decision::Waiting { reason } => (State::Waiting, Some(reason.clone())),
            Decision::Paused { reason } => (State::Paused, Some(reason.clone())),
        };
        Self {
            state,
            reason,
            paused_by_you_until: pause.map(|p| match p {
                PauseUntil::Time(_, label) => label.clone(),
                PauseUntil::Resumed => "you resume".into(),
            }),
        }
    }
}

/// How far the job on the GPU (or waiting in it to resume) has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobProgress {
    /// Workgroups run so far.
    pub workgroups_done: u64,
    /// Workgroups in the whole job (every step and repeat).
    pub workgroups_total: u64,
}

/// The GPU side of the status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GpuStatus {
    /// State and reason.
    #[serde(flatten)]
    pub state: ResourceState,
    /// Jobs waiting.
    pub queued_jobs: usize,
    /// A job is on the GPU now.
    pub running: bool,
    /// A job stopped part-way, waiting to resume.
    pub yielded: bool,
    /// How far the running (or yielded) job has got; `null` without one.
    pub job: Option<JobProgress>,
    /// Jobs finished since the node started.
    pub jobs_done: u64,
    /// Jobs failed since the node started.
    pub jobs_failed: u64,
    /// Share of the last minute the GPU was lent, in percent.
    pub busy_percent: f64,
    /// The GPU jobs run on, once a job has run.
    pub adapter: Option<String>,
    /// Why the runner stopped itself (the machine's failures: a GPU that cannot be
    /// opened, or fails Spare's self-test), with when it is tried again, if it did.
    pub runner_stopped: Option<String>,
    /// Requesters refused for now because their jobs hung or killed the GPU worker.
    pub requesters_cooling_off: usize,
    /// Price asked, micro-credits per million workgroups.
    pub price_per_million_workgroups: u64,
    /// Earned today (local time), micro-credits; demo work excluded.
    pub earned_today_micro: i64,
    /// Demo credits today (not earnings).
    pub demo_today_micro: i64,
}

/// The bandwidth side of the status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BandwidthStatus {
    /// State and reason.
    #[serde(flatten)]
    pub state: ResourceState,
    /// Relay clients connected.
    pub clients: usize,
    /// Bytes per second relayed client → destination, over the last seconds.
    pub up_bytes_per_s: u64,
    /// Bytes per second relayed back.
    pub down_bytes_per_s: u64,
    /// Bytes relayed up since the node started.
    pub relayed_up_bytes: u64,
    /// Bytes relayed down since the node started.
    pub relayed_down_bytes: u64,
    /// Share of the tighter quota used, in percent (`null`: no quota).
    pub quota_percent: Option<u32>,
    /// `off`, `allowlist` or `open`.
    pub egress: EgressMode,
    /// Price asked, micro-credits per GiB.
    pub price_per_gib: u64,
    /// Earned today (local time), micro-credits; demo work excluded.
    pub earned_today_micro: i64,
    /// Demo credits today (not earnings).
    pub demo_today_micro: i64,
}

/// What the signals read last.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SignalsStatus {
    /// The input-idle reader in use.
    pub input_backend: String,
    /// Seconds since the last keyboard or mouse input.
    pub input_idle_s: Option<u64>,
    /// Why input idle time could not be read.
    pub input_error: Option<String>,
    /// No local user session: lending does not wait for input.
    pub headless: bool,
    /// Battery, games, GPU temperature, CPU and memory.
    #[serde(flatten)]
    pub machine: MachineReading,
    /// Whether the schedule allows lending now (`null`: no schedule).
    pub schedule_allows: Option<bool>,
}

/// Everything `spare status --json` reports (schema in `node/STATUS.md`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Status {
    /// The schema version of this object.
    pub schema: u32,
    /// This node's id, hex.
    pub node_id: String,
    /// `spare`, or `demo` in demo mode.
    pub network: String,
    /// Demo mode.
    pub demo: bool,
    /// The UDP address the endpoint listens on.
    pub listening: String,
    /// The node's ticket, for relay clients and requesters.
    pub ticket: String,
    /// The GPU.
    pub gpu: GpuStatus,
    /// Bandwidth.
    pub bandwidth: BandwidthStatus,
    /// The latest readings.
    pub signals: SignalsStatus,
    /// Earned today over both resources, micro-credits (demo excluded).
    pub earned_today_micro: i64,
    /// Earned all time, micro-credits (demo excluded).
    pub earned_all_time_micro: i64,
    /// The ledger file.
    pub ledger: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_lengths_read_as_people_write_them() {
        let parse = |t: &str| t.parse::<PauseFor>();
        assert_eq!(parse("1h"), Ok(PauseFor::Seconds(3600)));
        assert_eq!(parse("2h30m"), Ok(PauseFor::Seconds(9000)));
        assert_eq!(parse(" 90S "), Ok(PauseFor::Seconds(90)));
        assert_eq!(parse("tomorrow"), Ok(PauseFor::Tomorrow));
        assert_eq!(parse("until-resumed"), Ok(PauseFor::UntilResumed));
        for bad in ["", "h", "1x", "soon", "1h1"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn targets_name_their_resources() {
        assert_eq!("GPU".parse::<Target>(), Ok(Target::Gpu));
        assert_eq!("all".parse::<Target>(), Ok(Target::All));
        assert_eq!(Target::All.resource(), None);
        assert_eq!(Target::Bandwidth.resource(), Some(Resource::Bandwidth));
        assert!(
            "disk"
                .parse::<Target>()
                .unwrap_err()
                .contains("gpu, bandwidth or all")
        );
    }
}
