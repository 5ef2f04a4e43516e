//! The policy thread: the driver of the node's core (`core.rs`). Each round it reads
//! the signals and the relay's counters, hands them to the core with the time, and
//! carries out what the core decides at once (the GPU lane yields or resumes, the relay
//! stops or serves, pauses and the quotas' use are saved), then publishes the snapshot
//! the status shows.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Local;
use signals::{InputIdle, Machine, Schedule};

use super::core::{Action, Core, Tick, pause_until_now};
use super::{Command, Inner, Snapshot, lock};
use crate::folder::{save_pauses, save_quota};
use crate::gpu_lane::LaneStatus;
use crate::lending::LendingPolicy;

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

impl PolicyLoop {
    pub(super) fn run(mut self, commands: std_mpsc::Receiver<Command>) {
        let headless = is_headless(self.input.as_ref());
        let relay = &self.inner.relay;
        let mut core = Core::new(
            self.policy,
            headless,
            Instant::now(),
            relay.relayed(),
            relay.quota_used(),
        );
        // Everything the status shows but today's earnings; those change with `recorded`.
        let mut shown: Option<(Snapshot, LaneStatus, usize, u64)> = None;
        let mut applied = Vec::new();
        let mut timeout = std::time::Duration::ZERO;
        loop {
            match commands.recv_timeout(timeout) {
                Ok(Command::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                Ok(Command::Pause(target, how_long, done)) => {
                    applied.push(done);
                    core.handle_pause(target, pause_until_now(&how_long));
                }
                Ok(Command::Resume(target, done)) => {
                    applied.push(done);
                    core.handle_resume(target);
                }
                Ok(Command::Sync(done)) => applied.push(done),
                Ok(Command::Wake) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let local = Local::now().naive_local();
            let tick = Tick {
                idle: self.input.idle(),
                input_backend: self.input.name().to_owned(),
                machine: core.needs_machine_reading(now).then(|| self.machine.read()),
                schedule_allows: self.schedule.allows(local),
                schedule_changes_at: self
                    .schedule
                    .next_change(local)
                    .map(|at| at.format("%H:%M").to_string()),
                gpu_busy: self.inner.lane.take_busy(),
                quota_percent: relay.quota_percent(),
                relayed: relay.relayed(),
                quota_used: relay.quota_used(),
                job_on_gpu: self.inner.lane.status().running,
            };
            core.handle_tick(now, tick);
            while let Some(action) = core.poll_action() {
                match action {
                    Action::Gpu { lending, budget } => self.inner.lane.set_lending(lending, budget),
                    Action::Relay(stopped) => relay.set_stopped(stopped),
                    Action::WaitingFor(reason) => {
                        if let Ok(mut w) = self.waiting_for.lock() {
                            *w = reason;
                        }
                    }
                    Action::SavePauses => save_pauses(&self.pauses_file, core.policy()),
                    Action::SaveQuota(used) => save_quota(&self.quota_file, used),
                    Action::Publish(snapshot) => {
                        let now_shown = {
                            let mut published = lock(&self.inner.snapshot);
                            *published = *snapshot;
                            (
                                published.clone(),
                                self.inner.lane.status(),
                                relay.clients(),
                                self.inner.recorder.recorded(),
                            )
                        };
                        // Meters move too: the app's dashboard is pushed every change,
                        // never polls.
                        if shown.as_ref() != Some(&now_shown) {
                            shown = Some(now_shown);
                            self.inner.changes.send_modify(|n| *n += 1);
                        }
                    }
                }
            }
            for done in applied.drain(..) {
                let _ = done.send(());
            }
            timeout = core.poll_timeout();
        }
    }
}
