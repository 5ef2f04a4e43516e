//! The GPU lane: a queue of accepted jobs and one thread that owns the runner's
//! supervisor and runs them, one at a time, only while GPU lending is on.
//!
//! When lending stops, the lane asks the worker to yield (the job stops after the
//! slice in flight and waits in the worker) and resumes it when lending starts again,
//! so stopping loses no work and no credit.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use compute::admission::AdmittedJob;
use compute::slicing::Budget;
use compute::supervisor::{JobError, JobResult, Outcome, RunnerConfig, Supervisor, Yielder};
use ledger::VerifiedReceipt;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use job_protocol::{Code, Refusal};

/// Jobs waiting at most; more are refused with `queue_full`.
pub const MAX_QUEUED: usize = 16;

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
    /// The job.
    pub job: AdmittedJob,
    /// The requester's verified order: the ledger entry once done.
    pub order: VerifiedReceipt,
    /// Where events about it go.
    pub events: UnboundedSender<LaneEvent>,
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
    /// Jobs finished since the node started.
    pub done: u64,
    /// Jobs that failed since the node started.
    pub failed: u64,
    /// Why the runner stopped itself (a worker that keeps failing), if it did.
    pub stopped: Option<String>,
    /// The GPU the worker opened, once known.
    pub adapter: Option<String>,
}

#[derive(Default)]
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
}

/// The queue and the runner thread.
pub struct GpuLane {
    state: Mutex<State>,
    wake: Condvar,
    yielder: Yielder,
    on_start: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl GpuLane {
    /// Starts the lane's thread with a supervisor built from `runner`.
    pub fn start(runner: RunnerConfig) -> std::io::Result<Arc<GpuLane>> {
        let supervisor = Supervisor::new(runner);
        let lane = Arc::new(GpuLane {
            state: Mutex::new(State::default()),
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

    /// Queues a job; refuses it when the queue is full. Returns its position.
    pub fn enqueue(&self, job: Queued) -> Result<usize, Refusal> {
        let mut state = self.lock();
        if state.closing {
            return Err(Refusal {
                code: Code::NodeStopping,
                message: "the node is stopping; try again later".into(),
            });
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
        if lending && state.budget != Some(budget) {
            state.budget = Some(budget);
            self.yielder.set_budget(budget);
        }
        if was && !lending && state.status.running {
            self.yielder.request();
        }
        self.wake.notify_all();
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
        if state.status.running {
            self.yielder.request();
        }
        self.wake.notify_all();
    }

    /// Waits until there is a job and lending is on; `None` when closing.
    fn next_job(&self) -> Option<(Queued, Budget)> {
        let mut state = self.lock();
        loop {
            if state.closing {
                return None;
            }
            if state.lending
                && let Some(job) = state.queue.pop_front()
            {
                state.status.queued = state.queue.len();
                state.status.running = true;
                return Some((job, state.budget.unwrap_or(Budget::Idle)));
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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
        while let Some((queued, budget)) = self.next_job() {
            let _ = queued.events.send(LaneEvent::Running);
            self.started();
            let lane = self.clone();
            let mut on_slice = move |slice: &compute::gpu::SliceReport| {
                let mut state = lane.lock();
                state.busy += slice.elapsed;
                // A stop that raced the start of the job is honoured at the next slice.
                if !state.lending {
                    lane.yielder.request();
                }
            };
            let mut outcome = supervisor.run(&queued.job, None, budget, &mut on_slice);
            let event = loop {
                match outcome {
                    Ok(Outcome::Done(result)) => break LaneEvent::Done(result),
                    Ok(Outcome::Yielded(_)) => match self.wait_for_lending() {
                        Some(budget) => {
                            let _ = queued.events.send(LaneEvent::Running);
                            self.started();
                            outcome = supervisor.resume(budget, &mut on_slice);
                        }
                        None => {
                            let _ = supervisor.drop_job();
                            break LaneEvent::Failed(stopping());
                        }
                    },
                    Err(e) => break LaneEvent::Failed(failed(&e)),
                }
            };
            let mut state = self.lock();
            state.status.running = false;
            match &event {
                LaneEvent::Done(result) => {
                    state.status.done += 1;
                    state.status.adapter = Some(result.class.adapter.clone());
                }
                _ => state.status.failed += 1,
            }
            state.status.stopped = supervisor.stopped().map(str::to_owned);
            drop(state);
            let _ = queued.events.send(event);
        }
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
