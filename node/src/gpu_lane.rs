//! The GPU lane: a queue of accepted jobs and one thread that owns the runner's
//! supervisor and runs them, one at a time, only while GPU lending is on.
//!
//! When lending stops, the lane asks the worker to yield (the job stops after the
//! slice in flight and waits in the worker) and resumes it when lending starts again,
//! so stopping loses no work and no credit.
//!
//! A job that loses the worker is charged to its requester (`blame.rs`); when jobs of
//! several requesters do, the lane runs Spare's self-test to learn whether the machine
//! is at fault. Lending that stopped itself is shown with its reason, tried again after
//! a back-off, and started again at once by the owner's resume. While idle, the lane
//! watches the worker: one that exits is replaced before the next job needs it, and jobs
//! that arrive meanwhile wait in the queue (up to `MAX_RESTART_WAIT`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use compute::admission::AdmittedJob;
use compute::slicing::Budget;
use compute::supervisor::{
    Cause, JobError, JobResult, NotNow, Outcome, RunnerConfig, Stop, Supervisor, Yielder,
};
use ledger::{PartyId, VerifiedReceipt};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::blame::{self, Blame};
use job_protocol::{Code, Refusal};

/// Jobs waiting at most; more are refused with `queue_full`.
pub const MAX_QUEUED: usize = 16;

/// How long a job waits in the queue for a worker that is being restarted.
pub const MAX_RESTART_WAIT: Duration = Duration::from_secs(60);

/// A requester whose job lost the worker is refused this long, doubling per repeat…
const COOLING_OFF: Duration = Duration::from_secs(10 * 60);
/// … up to this.
const MAX_COOLING_OFF: Duration = Duration::from_secs(24 * 3600);
/// Jobs of this many different requesters losing workers within `SUSPICION_WINDOW`
/// make the lane run the self-test.
const SUSPECTS: usize = 3;
const SUSPICION_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Tries at most of a job whose worker could not start.
const MAX_TRIES: u32 = 3;
/// A job whose worker was lost before taking it up is tried once more; lost so twice,
/// it is the job's doing.
const MAX_TRIES_LOST: u32 = 2;
/// How long after the suspicion the self-test runs (a GPU may be recovering from the
/// last kill meanwhile).
const SELF_TEST_DELAY: Duration = Duration::from_secs(5);

/// What happens to a queued job, as the requester's connection hears it.
#[derive(Debug)]
pub enum LaneEvent {
    /// It started (or resumed) on the GPU.
    Running,
    /// It finished.
    Done(Box<JobResult>),
    /// It could not run.
    Failed(Refusal),
}

/// A job accepted for running.
pub struct Queued {
    job: AdmittedJob,
    order: VerifiedReceipt,
    events: UnboundedSender<LaneEvent>,
    digest: [u8; 32],
    arrived: Instant,
    tries: u32,
}

impl Queued {
    /// `job`, paid by the requester's verified `order` (the ledger entry once done),
    /// telling `events` what happens to it.
    pub fn new(
        job: AdmittedJob,
        order: VerifiedReceipt,
        events: UnboundedSender<LaneEvent>,
    ) -> Self {
        let digest = job.job().digest();
        Self {
            job,
            order,
            events,
            digest,
            arrived: Instant::now(),
            tries: 0,
        }
    }

    fn requester(&self) -> PartyId {
        self.order.receipt().counterparty
    }

    fn id(&self) -> String {
        ledger::hex(&self.order.receipt().reference[..6])
    }
}

/// What the lane is doing, for status.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LaneStatus {
    /// Jobs waiting.
    pub queued: usize,
    /// A job is on the GPU now.
    pub running: bool,
    /// A job stopped part-way, waiting for lending to resume.
    pub yielded: bool,
    /// How far the running (or yielded) job has got.
    pub job: Option<crate::status::JobProgress>,
    /// Jobs finished since the node started.
    pub done: u64,
    /// Jobs that failed since the node started.
    pub failed: u64,
    /// Why the runner stopped itself (the machine's failures), if it did.
    pub stopped: Option<String>,
    /// Requesters refused now because their jobs lost the worker.
    pub cooling_off: usize,
    /// The GPU the worker opened, once known.
    pub adapter: Option<String>,
}

struct State {
    queue: VecDeque<Queued>,
    lending: bool,
    budget: Option<Budget>,
    closing: bool,
    status: LaneStatus,
    /// GPU time since the last `take_busy`.
    busy: Duration,
    /// When the last yield completed (for the yield benchmark).
    last_yield: Option<Instant>,
    /// Who is charged for lost workers.
    blame: Blame,
    /// The owner resumed GPU lending: clear a stop and run the self-test.
    resume_requested: bool,
    /// A worker's output ended (set by its output thread): look at it.
    exit_noticed: bool,
    /// When to run the self-test because requesters' jobs lost workers, and why.
    suspicion: Option<(Instant, usize)>,
    /// The stop's reason as requesters are told it (without the owner's hints).
    stop_reason: Option<String>,
    /// When the self-test last ran (a retry never runs twice in a row at once).
    last_self_test: Option<Instant>,
}

/// What the lane's thread does next.
enum Work {
    Job(Box<Queued>, Budget),
    SelfTest(Why),
    Close,
}

/// Why the self-test runs.
#[derive(Clone, Copy, Debug)]
enum Why {
    /// Jobs of this many requesters lost workers lately.
    Suspects(usize),
    /// Lending stopped itself, and its retry time came.
    Retry,
    /// The owner resumed GPU lending.
    OwnerResumed,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Suspects(n) => write!(f, "jobs of {n} different requesters lost the GPU worker"),
            Why::Retry => f.write_str("trying again after GPU lending stopped itself"),
            Why::OwnerResumed => f.write_str("you resumed GPU lending"),
        }
    }
}

/// The queue and the runner thread.
pub struct GpuLane {
    blame_file: Option<PathBuf>,
    state: Mutex<State>,
    wake: Condvar,
    yielder: Yielder,
    on_start: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl GpuLane {
    /// Starts the lane's thread with a supervisor built from `runner`, keeping who is
    /// charged for lost workers in `blame_file` (across restarts) when given.
    pub fn start(
        runner: RunnerConfig,
        blame_file: Option<PathBuf>,
    ) -> std::io::Result<Arc<GpuLane>> {
        let supervisor = Supervisor::new(runner);
        let mut blame = Blame::new(COOLING_OFF, MAX_COOLING_OFF, SUSPICION_WINDOW, SUSPECTS);
        if let Some(file) = &blame_file {
            crate::folder::restore_blame(file, &mut blame);
        }
        let state = State {
            queue: VecDeque::new(),
            lending: false,
            budget: None,
            closing: false,
            status: LaneStatus::default(),
            busy: Duration::ZERO,
            last_yield: None,
            blame,
            resume_requested: false,
            exit_noticed: false,
            suspicion: None,
            stop_reason: None,
            last_self_test: None,
        };
        let lane = Arc::new(GpuLane {
            blame_file,
            state: Mutex::new(state),
            wake: Condvar::new(),
            yielder: supervisor.yielder(),
            on_start: Mutex::new(None),
        });
        let runner_lane = lane.clone();
        std::thread::Builder::new()
            .name("gpu-lane".into())
            .spawn(move || runner_lane.run(supervisor))?;
        Ok(lane)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a job; refuses it when the queue is full, the GPU is stopped, or its
    /// requester or the job itself lost a worker before. Returns its position.
    pub fn enqueue(&self, job: Queued) -> Result<usize, Refusal> {
        let mut state = self.lock();
        if state.closing {
            return Err(Refusal {
                code: Code::NodeStopping,
                message: "the node is stopping; try again later".into(),
            });
        }
        if let Some(reason) = &state.stop_reason {
            return Err(paused(reason));
        }
        match state
            .blame
            .check(Instant::now(), &job.requester(), &job.digest)
        {
            Ok(()) => {}
            Err(blame::Refused::JobBlocked) => {
                return Err(Refusal {
                    code: Code::JobBlocked,
                    message: "this job lost this node's GPU worker before (it hung or killed \
                              it); it is not run again"
                        .into(),
                });
            }
            Err(blame::Refused::CoolingOff { left, offenses }) => {
                return Err(Refusal {
                    code: Code::CoolingOff,
                    message: format!(
                        "{offenses} of your jobs lost this node's GPU worker (they hung or \
                         killed it): your jobs are refused for {} more minutes",
                        left.as_secs().div_ceil(60)
                    ),
                });
            }
        }
        if state.queue.len() >= MAX_QUEUED {
            return Err(Refusal {
                code: Code::QueueFull,
                message: format!(
                    "{MAX_QUEUED} jobs are already waiting on this node; try again later"
                ),
            });
        }
        state.queue.push_back(job);
        let position = state.queue.len() - 1 + usize::from(state.status.running);
        state.status.queued = state.queue.len();
        self.wake.notify_all();
        Ok(position)
    }

    /// Turns lending on or off. Off asks a running job to yield after its slice.
    /// `budget` is the slice budget while lending (shorter while the owner may return).
    pub fn set_lending(&self, lending: bool, budget: Budget) {
        let mut state = self.lock();
        let was = state.lending;
        state.lending = lending;
        let new_budget = lending && state.budget != Some(budget);
        if new_budget {
            state.budget = Some(budget);
        }
        let stop_job = was && !lending && state.status.running;
        self.wake.notify_all();
        // Written to the worker outside the lock: a job's inputs may be on their way to
        // it, and the status must not wait for them.
        drop(state);
        if new_budget {
            self.yielder.set_budget(budget);
        }
        if stop_job {
            self.yielder.request();
        }
    }

    /// The owner resumed GPU lending: a stop the runner made itself is cleared and
    /// the self-test run; the status shows its outcome.
    pub fn resume_runner(&self) {
        let mut state = self.lock();
        if state.status.stopped.is_some() {
            state.resume_requested = true;
            self.wake.notify_all();
        }
    }

    /// Calls `hook` whenever a job starts or resumes on the GPU (the policy then
    /// watches input closely).
    pub fn on_start(&self, hook: Box<dyn Fn() + Send>) {
        if let Ok(mut slot) = self.on_start.lock() {
            *slot = Some(hook);
        }
    }

    fn started(&self) {
        if let Ok(slot) = self.on_start.lock()
            && let Some(hook) = slot.as_ref()
        {
            hook();
        }
    }

    /// The lane's state now.
    pub fn status(&self) -> LaneStatus {
        self.lock().status.clone()
    }

    /// GPU time lent since the last call.
    pub fn take_busy(&self) -> Duration {
        std::mem::take(&mut self.lock().busy)
    }

    /// When the last yield completed.
    pub fn last_yield(&self) -> Option<Instant> {
        self.lock().last_yield
    }

    /// Stops the lane: queued jobs are refused and a running one is stopped.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closing = true;
        state.lending = false;
        for job in state.queue.drain(..) {
            let _ = job.events.send(LaneEvent::Failed(stopping()));
        }
        state.status.queued = 0;
        let running = state.status.running;
        self.wake.notify_all();
        drop(state);
        if running {
            self.yielder.request();
        }
    }

    /// Waits for the next thing to do, watching the worker meanwhile: a job (lending
    /// on, a worker ready or startable), the self-test, or closing.
    fn next_work(&self, supervisor: &mut Supervisor) -> Work {
        loop {
            if let Some(what) = supervisor.watch_idle() {
                tracing::warn!("{what}: starting another before the next job");
            }
            // Nothing due: look again now and then, and at once when a worker exits.
            let mut wait = Duration::from_secs(30);
            match supervisor.restart_lost() {
                None => {}
                Some(Ok(after)) => wait = wait.min(after),
                Some(Err(e)) => {
                    tracing::warn!("the GPU worker could not be restarted: {e}");
                    wait = wait.min(Duration::from_secs(1));
                }
            }
            self.publish(supervisor);
            let now = Instant::now();
            let mut state = self.lock();
            if state.closing {
                return Work::Close;
            }
            if std::mem::take(&mut state.exit_noticed) {
                // A worker's output ended: look at it before anything else.
                continue;
            }
            if std::mem::take(&mut state.resume_requested) {
                state.last_self_test = Some(now);
                return Work::SelfTest(Why::OwnerResumed);
            }
            let rested = state
                .last_self_test
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
            if supervisor.retry_due(now) && rested {
                state.last_self_test = Some(now);
                return Work::SelfTest(Why::Retry);
            }
            if let Some((at, suspects)) = state.suspicion {
                if now >= at {
                    state.suspicion = None;
                    state.last_self_test = Some(now);
                    return Work::SelfTest(Why::Suspects(suspects));
                }
                wait = wait.min(at - now);
            }
            if let Some(stop) = supervisor.stopped() {
                wait = wait.min(stop.retry_at.saturating_duration_since(now));
            } else if state.lending && !state.queue.is_empty() {
                match supervisor.poll_start(now) {
                    Ok(()) => {
                        if let Some(job) = state.queue.pop_front() {
                            state.status.queued = state.queue.len();
                            state.status.running = true;
                            return Work::Job(Box::new(job), state.budget.unwrap_or(Budget::Idle));
                        }
                    }
                    Err(NotNow::BackingOff(left)) => {
                        // A worker is being restarted: jobs wait for it, up to a bound.
                        wait = wait.min(left);
                        let expired: VecDeque<Queued> = {
                            let (old, young) = std::mem::take(&mut state.queue)
                                .into_iter()
                                .partition(|q| q.arrived.elapsed() >= MAX_RESTART_WAIT);
                            state.queue = young;
                            old
                        };
                        state.status.queued = state.queue.len();
                        state.status.failed += expired.len() as u64;
                        for job in expired {
                            let _ = job.events.send(LaneEvent::Failed(restart_too_long()));
                        }
                    }
                    Err(NotNow::Stopped(_)) => {}
                }
            }
            drop(
                self.wake
                    .wait_timeout(state, wait.max(Duration::from_millis(1)))
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
        }
    }

    /// Shows the runner's stop (with its reason and retry time) in the status, logs
    /// a change, and fails queued jobs while it lasts.
    fn publish(&self, supervisor: &Supervisor) {
        let stopped = supervisor.stopped().map(describe_stop);
        let mut state = self.lock();
        state.stop_reason = supervisor.stopped().map(|stop| stop.reason.clone());
        let now = Instant::now();
        state.status.cooling_off = state.blame.cooling_off(now);
        if state.status.stopped.is_none()
            && let Some(reason) = &stopped
        {
            tracing::warn!("GPU lending paused: {reason}");
        } else if state.status.stopped.is_some() && stopped.is_none() {
            tracing::info!("GPU lending works again");
        }
        state.status.stopped = stopped;
        if let Some(reason) = state.stop_reason.clone()
            && !state.queue.is_empty()
        {
            state.status.failed += state.queue.len() as u64;
            for job in state.queue.drain(..) {
                let _ = job.events.send(LaneEvent::Failed(paused(&reason)));
            }
            state.status.queued = 0;
        }
    }

    /// Waits until lending is on again after a yield; false when closing.
    fn wait_for_lending(&self) -> Option<Budget> {
        let mut state = self.lock();
        state.status.running = false;
        state.status.yielded = true;
        state.last_yield = Some(Instant::now());
        loop {
            if state.closing {
                state.status.yielded = false;
                return None;
            }
            if state.lending {
                state.status.yielded = false;
                state.status.running = true;
                return Some(state.budget.unwrap_or(Budget::Idle));
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn run(self: Arc<Self>, mut supervisor: Supervisor) {
        let lane = Arc::downgrade(&self);
        supervisor.on_worker_exit(Arc::new(move || {
            if let Some(lane) = lane.upgrade() {
                lane.lock().exit_noticed = true;
                lane.wake.notify_all();
            }
        }));
        loop {
            match self.next_work(&mut supervisor) {
                Work::Close => break,
                Work::SelfTest(why) => self.self_test(&mut supervisor, why),
                Work::Job(queued, budget) => {
                    if let Some(suspects) = self.run_job(&mut supervisor, *queued, budget) {
                        let at = Instant::now() + SELF_TEST_DELAY;
                        self.lock().suspicion = Some((at, suspects));
                    }
                }
            }
            self.publish(&supervisor);
        }
    }

    /// Runs Spare's known-good job: whether the machine is at fault.
    fn self_test(&self, supervisor: &mut Supervisor, why: Why) {
        if let Why::OwnerResumed = why {
            supervisor.reset_failures();
        }
        tracing::info!("running Spare's GPU self-test: {why}");
        match supervisor.self_test() {
            Ok(()) => {
                if let Why::Suspects(_) = why {
                    self.lock().blame.handle_self_test_passed();
                    tracing::info!(
                        "the GPU passed Spare's self-test: the requesters' jobs were at \
                         fault, and lending goes on"
                    );
                } else {
                    tracing::info!("the GPU passed Spare's self-test");
                }
            }
            Err(e) => tracing::warn!("the GPU did not pass Spare's self-test: {e}"),
        }
    }

    /// Runs one job to its end. Returns `Some(n)` when jobs of `n` different
    /// requesters lost workers lately (then the self-test should run).
    fn run_job(
        &self,
        supervisor: &mut Supervisor,
        mut queued: Queued,
        budget: Budget,
    ) -> Option<usize> {
        queued.tries += 1;
        let _ = queued.events.send(LaneEvent::Running);
        self.started();
        self.lock().status.job = Some(crate::status::JobProgress {
            workgroups_done: 0,
            workgroups_total: queued.job.job().total_workgroups(),
        });
        let lane = self;
        let mut on_slice = move |slice: &compute::gpu::SliceReport| {
            let mut state = lane.lock();
            state.busy += slice.elapsed;
            if let Some(job) = &mut state.status.job {
                job.workgroups_done = slice.progress.workgroups_done;
            }
            // A stop that raced the start of the job is honoured at the next slice.
            if !state.lending {
                lane.yielder.request();
            }
        };
        let mut outcome = supervisor.run(&queued.job, None, budget, &mut on_slice);
        let error = loop {
            match outcome {
                Ok(Outcome::Done(result)) => {
                    let mut state = self.lock();
                    state.status.running = false;
                    state.status.job = None;
                    state.status.done += 1;
                    state.status.adapter = Some(result.class.adapter.clone());
                    drop(state);
                    let _ = queued.events.send(LaneEvent::Done(result));
                    return None;
                }
                Ok(Outcome::Yielded(_)) => match self.wait_for_lending() {
                    Some(budget) => {
                        let _ = queued.events.send(LaneEvent::Running);
                        self.started();
                        outcome = supervisor.resume(budget, &mut on_slice);
                    }
                    None => {
                        let _ = supervisor.drop_job();
                        self.finish_failed(&queued, stopping());
                        return None;
                    }
                },
                Err(e) => break e,
            }
        };
        // Not the job's doing, so far: it waits for a new worker, first in line.
        let retry = match &error {
            JobError::StartFailed(_) | JobError::BackingOff(_) => queued.tries < MAX_TRIES,
            JobError::WorkerLost(_) => queued.tries < MAX_TRIES_LOST,
            _ => false,
        };
        {
            let mut state = self.lock();
            if retry && !state.closing && queued.arrived.elapsed() < MAX_RESTART_WAIT {
                tracing::info!(job = %queued.id(), "{error}: the job waits for the GPU worker's restart");
                state.status.running = false;
                state.status.yielded = false;
                state.status.job = None;
                state.queue.push_front(queued);
                state.status.queued = state.queue.len();
                return None;
            }
            if state.closing {
                drop(state);
                self.finish_failed(&queued, stopping());
                return None;
            }
        }
        // A worker lost twice before taking the job up is the job's doing too; a job
        // that fails while the GPU is not lent (the owner is back, the machine slept)
        // may have been slowed by them: it fails, charged to no one.
        let the_jobs =
            error.cause() == Some(Cause::Job) || matches!(error, JobError::WorkerLost(_));
        if !the_jobs || !self.lock().lending {
            self.finish_failed(&queued, failed(&error));
            return None;
        }
        let requester = queued.requester();
        let (charged, saved) = {
            let mut state = self.lock();
            let now = Instant::now();
            let charged = state.blame.handle_failure(now, requester, queued.digest);
            (charged, state.blame.saved(now, job_protocol::now_ms()))
        };
        if let Some(file) = &self.blame_file {
            crate::folder::save_blame(file, &saved);
        }
        tracing::warn!(
            job = %queued.id(),
            %requester,
            offenses = charged.offenses,
            "the job lost the GPU worker ({error}): the job is refused from now on, and its \
             requester for {} minutes; lending goes on",
            charged.cooling_off.as_secs() / 60
        );
        self.finish_failed(&queued, failed(&error));
        charged.self_test
    }

    fn finish_failed(&self, queued: &Queued, refusal: Refusal) {
        let mut state = self.lock();
        state.status.running = false;
        state.status.job = None;
        state.status.failed += 1;
        drop(state);
        let _ = queued.events.send(LaneEvent::Failed(refusal));
    }
}

/// A stop, for the owner: its reason, when it is tried again, and how to resume now.
fn describe_stop(stop: &Stop) -> String {
    let left = stop.retry_at.saturating_duration_since(Instant::now());
    let at = chrono::Local::now()
        + chrono::Duration::from_std(left).unwrap_or_else(|_| chrono::Duration::zero());
    format!(
        "{}; Spare tries again at {}, or resume now with `spare resume gpu`",
        stop.reason,
        at.format("%H:%M")
    )
}

/// The refusal while the runner is stopped: the machine's reason, without the owner's
/// hints.
fn paused(reason: &str) -> Refusal {
    Refusal {
        code: Code::NotOffered,
        message: format!("this node's GPU is paused ({reason}); try another node"),
    }
}

fn restart_too_long() -> Refusal {
    Refusal {
        code: Code::JobFailed,
        message: format!(
            "the GPU worker did not come back within {} s of a failure; submit the job again \
             later",
            MAX_RESTART_WAIT.as_secs()
        ),
    }
}

fn stopping() -> Refusal {
    Refusal {
        code: Code::NodeStopping,
        message: "the node stopped before the job could finish; submit it again".into(),
    }
}

fn failed(e: &JobError) -> Refusal {
    Refusal {
        code: Code::JobFailed,
        message: format!("the job failed on the node: {e}"),
    }
}
