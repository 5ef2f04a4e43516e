//! The policy thread: reads the signals, feeds the sans-IO lending policy and applies
//! each decision at once (the GPU lane yields or resumes, the relay stops or serves),
//! then publishes a snapshot for the status.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Local, NaiveTime};
use compute::slicing::Budget;
use signals::{InputIdle, Machine, MachineReading, Schedule};

use super::{Command, Inner, MAY_RETURN, Snapshot, lock};
use crate::folder::{save_pauses, save_quota};
use crate::gpu_lane::LaneStatus;
use crate::lending::{Decision, LendingPolicy, PauseUntil, Resource, Sample};
use crate::status::{PauseFor, ResourceState, SignalsStatus};

/// When a pause for `how_long` ends, as an instant and a label for people.
fn pause_until(how_long: &PauseFor) -> PauseUntil {
    let now = Local::now();
    match how_long {
        PauseFor::UntilResumed => PauseUntil::Resumed,
        PauseFor::Seconds(s) => {
            let end = now + chrono::Duration::seconds(*s as i64);
            let label = if end.date_naive() == now.date_naive() {
                end.format("%H:%M").to_string()
            } else {
                end.format("%a %H:%M").to_string()
            };
            PauseUntil::Time(Instant::now() + Duration::from_secs(*s), label)
        }
        PauseFor::Tomorrow => {
            let six = NaiveTime::from_hms_opt(6, 0, 0).unwrap_or_default();
            let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
            let end = tomorrow
                .and_time(six)
                .and_local_timezone(Local)
                .earliest()
                .unwrap_or(now + chrono::Duration::hours(12));
            let wait = (end - now)
                .to_std()
                .unwrap_or(Duration::from_secs(12 * 3600));
            PauseUntil::Time(Instant::now() + wait, "tomorrow 06:00".into())
        }
    }
}

/// No local user session at all: no input reader works and no display is named
/// (a server). A desktop whose input cannot be read is not headless: it waits.
fn is_headless(input: &dyn InputIdle) -> bool {
    let unset = |name| std::env::var_os(name).is_none_or(|v| v.is_empty());
    cfg!(target_os = "linux")
        && input.name() == "none"
        && unset("DISPLAY")
        && unset("WAYLAND_DISPLAY")
}

pub(super) struct PolicyLoop {
    pub(super) inner: Arc<Inner>,
    pub(super) policy: LendingPolicy,
    pub(super) input: Box<dyn InputIdle>,
    pub(super) machine: Machine,
    pub(super) schedule: Schedule,
    pub(super) pauses_file: PathBuf,
    pub(super) quota_file: PathBuf,
    pub(super) waiting_for: Arc<Mutex<Option<String>>>,
}

/// A reason without its changing numbers, to log a change once rather than each tick.
fn gist(state: &ResourceState) -> String {
    let reason = state.reason.as_deref().unwrap_or("");
    let cut = reason
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(reason.len());
    format!("{} {}", state.state, &reason[..cut])
}

impl PolicyLoop {
    pub(super) fn run(mut self, commands: std_mpsc::Receiver<Command>) {
        let mut reading = MachineReading::default();
        let mut last_read: Option<Instant> = None;
        let mut tick = Duration::ZERO;
        let mut lent_since: Option<Instant> = None;
        let mut rates_at = (Instant::now(), self.inner.relay.relayed());
        let (mut up_rate, mut down_rate) = (0u64, 0u64);
        let mut logged = (String::new(), String::new());
        // Everything the status shows but today's earnings; those change with `recorded`.
        let mut shown: Option<(Snapshot, LaneStatus, usize, u64)> = None;
        let headless = is_headless(self.input.as_ref());
        let mut applied = Vec::new();
        let mut quota_saved = (Instant::now(), self.inner.relay.quota_used());
        loop {
            match commands.recv_timeout(tick) {
                Ok(Command::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                Ok(Command::Pause(target, how_long, done)) => {
                    applied.push(done);
                    let until = pause_until(&how_long);
                    tracing::info!(
                        "the owner paused {} until {}",
                        target.name(),
                        match &until {
                            PauseUntil::Time(_, label) => label.as_str(),
                            PauseUntil::Resumed => "they resume",
                        }
                    );
                    self.policy.pause(target.resource(), until);
                    save_pauses(&self.pauses_file, &self.policy);
                }
                Ok(Command::Resume(target, done)) => {
                    applied.push(done);
                    tracing::info!("the owner resumed {}", target.name());
                    self.policy.resume(target.resource());
                    save_pauses(&self.pauses_file, &self.policy);
                }
                Ok(Command::Sync(done)) => applied.push(done),
                Ok(Command::Wake) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let idle = self.input.idle();
            let lending_gpu = lent_since.is_some();
            let machine_every = if lending_gpu {
                Duration::from_secs(3)
            } else {
                Duration::from_secs(10)
            };
            if last_read.is_none_or(|at| now.duration_since(at) >= machine_every) {
                reading = self.machine.read();
                last_read = Some(now);
            }
            let local = Local::now().naive_local();
            let schedule_allows = self.schedule.allows(local);
            let schedule_changes_at = self
                .schedule
                .next_change(local)
                .map(|at| at.format("%H:%M").to_string());
            let busy = self.inner.lane.take_busy();
            if !busy.is_zero() {
                self.policy.handle_gpu_busy(now, busy);
            }
            self.policy.handle_sample(Sample {
                input_idle: Some(idle.clone()),
                on_battery: reading.on_battery,
                game: reading.game.clone(),
                gpu_temperature_c: reading.gpu_temperature_c,
                quota_percent: self.inner.relay.quota_percent(),
                schedule_allows,
                schedule_changes_at,
                headless,
            });
            let gpu = self.policy.decision(Resource::Gpu, now);
            let bandwidth = self.policy.decision(Resource::Bandwidth, now);

            // Apply at once: this is the yield path.
            match (&gpu, lent_since) {
                (Decision::Lending, None) => lent_since = Some(now),
                (Decision::Lending, Some(_)) => {}
                (_, _) => lent_since = None,
            }
            let may_return =
                !headless && lent_since.is_some_and(|since| now.duration_since(since) < MAY_RETURN);
            let budget = if may_return {
                Budget::Active
            } else {
                Budget::Idle
            };
            self.inner
                .lane
                .set_lending(gpu == Decision::Lending, budget);
            self.inner.relay.set_stopped(match &bandwidth {
                Decision::Lending => None,
                other => Some(other.to_string()),
            });
            if let Ok(mut w) = self.waiting_for.lock() {
                *w = (gpu != Decision::Lending).then(|| gpu.to_string());
            }

            // The quotas' use survives a restart: saved every 10 s while it grows.
            if now.duration_since(quota_saved.0) >= Duration::from_secs(10) {
                let used = self.inner.relay.quota_used();
                if used != quota_saved.1
                    && let Some(used) = used
                {
                    save_quota(&self.quota_file, used);
                }
                quota_saved = (now, used);
            }
            let elapsed = now.duration_since(rates_at.0);
            if elapsed >= Duration::from_secs(1) {
                let relayed = self.inner.relay.relayed();
                let per_s =
                    |a: u64, b: u64| (a.saturating_sub(b) as f64 / elapsed.as_secs_f64()) as u64;
                up_rate = per_s(relayed.0, rates_at.1.0);
                down_rate = per_s(relayed.1, rates_at.1.1);
                rates_at = (now, relayed);
            }
            let gpu_state = ResourceState::of(&gpu, self.policy.paused(Resource::Gpu));
            let bandwidth_state =
                ResourceState::of(&bandwidth, self.policy.paused(Resource::Bandwidth));
            let now_logged = (gist(&gpu_state), gist(&bandwidth_state));
            if now_logged.0 != logged.0 {
                tracing::info!("GPU: {gpu}");
            }
            if now_logged.1 != logged.1 {
                tracing::info!("bandwidth: {bandwidth}");
            }
            logged = now_logged;
            let now_shown = {
                let mut snapshot = lock(&self.inner.snapshot);
                *snapshot = Snapshot {
                    gpu: gpu_state,
                    bandwidth: bandwidth_state,
                    busy_percent: self.policy.gpu_share(now),
                    up_rate,
                    down_rate,
                    signals: SignalsStatus {
                        input_backend: self.input.name().to_owned(),
                        input_idle_s: idle.as_ref().ok().map(Duration::as_secs),
                        input_error: idle.err(),
                        headless,
                        machine: reading.clone(),
                        schedule_allows,
                    },
                };
                (
                    snapshot.clone(),
                    self.inner.lane.status(),
                    self.inner.relay.clients(),
                    self.inner.recorder.recorded(),
                )
            };
            // Meters move too: the app's dashboard is pushed every change, never polls.
            if shown.as_ref() != Some(&now_shown) {
                shown = Some(now_shown);
                self.inner.changes.send_modify(|n| *n += 1);
            }
            for done in applied.drain(..) {
                let _ = done.send(());
            }
            // Watch input closely only while a job holds the GPU: that is when the
            // owner's return must reach the lane at once.
            let job_on_gpu = self.inner.lane.status().running;
            tick = if gpu == Decision::Lending && job_on_gpu && !headless {
                Duration::from_millis(50)
            } else {
                Duration::from_secs(1)
            };
        }
    }
}
