//! The supervisor: starts the GPU worker process, sends it jobs, watches it, and kills
//! and respawns it when a slice hangs.
//!
//! The worker is started by re-executing a binary with the hidden argument
//! [`WORKER_ARG`](crate::worker::WORKER_ARG). Every slice the worker finishes is a
//! heartbeat; a silence longer than the watchdog limit (the slice ceiling several
//! times over) gets the worker killed and the job failed with the reason. Compiling a
//! job's shader has a deadline of its own. Each lost worker is charged to the job it
//! was running or to the machine ([`Cause`], see `respawn.rs`): a job's fault is
//! reported to the caller (the node charges the requester) and the worker replaced at
//! once; the machine's back off, and stop GPU lending with a reason the owner can read
//! when they repeat, until a retry or the owner's resume passes Spare's self-test
//! (`selftest.rs`). A worker that exits while idle is noticed at once
//! ([`Supervisor::on_worker_exit`], [`Supervisor::watch_idle`]) and replaced.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::admission::AdmittedJob;
use crate::gpu::{Checkpoint, ExecClass, Progress, SliceReport};
use crate::manifest::BindingRef;
use crate::respawn::Respawn;
pub use crate::respawn::{Cause, NotNow, Stop};
use crate::slicing::{Budget, CEILING};
use crate::wire::{self, CheckpointHeader, Event, Frame, JobHeader, Request};

/// How the supervisor runs its worker.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// The program to start, and its arguments (ending with the worker argument).
    pub worker: (PathBuf, Vec<String>),
    /// No slice may take longer than this.
    pub ceiling: Duration,
    /// A slice silent for `ceiling × watchdog_factor` gets the worker killed.
    pub watchdog_factor: u32,
    /// Time allowed to open the device, and to receive and upload a job.
    pub startup_timeout: Duration,
    /// Time allowed to compile a job's shader and create its pipelines.
    pub compile_timeout: Duration,
    /// First respawn delay; doubles per consecutive failure up to 32×.
    pub backoff_base: Duration,
    /// Failures within `failure_window` that stop GPU lending.
    pub max_failures: usize,
    /// Where workers keep compiled pipelines between runs; `None` keeps none.
    pub pipeline_cache_dir: Option<PathBuf>,
    /// What this node admits (the owner's budget); checked before a job is sent.
    pub caps: crate::admission::Caps,
    /// See `max_failures`.
    pub failure_window: Duration,
    /// How long lending that stopped itself waits before trying again (doubling per
    /// failed retry, at most 8×).
    pub retry_after: Duration,
}

impl RunnerConfig {
    /// Defaults for `program args…`.
    pub fn new(program: PathBuf, args: Vec<String>) -> Self {
        Self {
            worker: (program, args),
            ceiling: CEILING,
            watchdog_factor: 4,
            startup_timeout: Duration::from_secs(60),
            compile_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            max_failures: 3,
            failure_window: Duration::from_secs(600),
            retry_after: Duration::from_secs(300),
            pipeline_cache_dir: None,
            caps: crate::admission::Caps::default(),
        }
    }

    /// Runs the current executable with the hidden worker argument.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(
            std::env::current_exe()?,
            vec![crate::worker::WORKER_ARG.to_owned()],
        ))
    }

    fn watchdog(&self) -> Duration {
        self.ceiling * self.watchdog_factor
    }
}

/// Why a job did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The worker refused or failed the job; it is still healthy.
    #[error("{0}")]
    Failed(String),
    /// A slice ran past the watchdog limit: the worker was killed.
    #[error(
        "a slice ran for over {limit_ms} ms (the ceiling is {ceiling_ms} ms): the GPU worker was \
         killed and the job failed; the kernel may not terminate"
    )]
    Watchdog {
        /// The limit that was passed.
        limit_ms: u64,
        /// The slice ceiling.
        ceiling_ms: u64,
    },
    /// Compiling the shader ran past its deadline: the worker was killed.
    #[error(
        "compiling the kernel took over {limit_ms} ms: the GPU worker was killed and the job \
         failed; the shader is too large or too complex for the GPU's compiler (look for big \
         arrays or deeply unrolled loops)"
    )]
    CompileTimeout {
        /// The deadline that was passed.
        limit_ms: u64,
    },
    /// The worker process died while it ran the job.
    #[error("the GPU worker died while it ran the job: {0}")]
    WorkerDied(String),
    /// The worker was lost before the job reached it (or while it waited): not the
    /// job's doing; it can be run again.
    #[error("the GPU worker was lost: {0}")]
    WorkerLost(String),
    /// The worker could not open a GPU.
    #[error("the GPU worker could not start: {0}")]
    StartFailed(String),
    /// Spare's own known-good job came back wrong.
    #[error("the GPU computed a wrong answer to Spare's self-test")]
    WrongAnswer,
    /// GPU lending stopped itself.
    #[error("GPU lending stopped: {0}")]
    Stopped(String),
    /// Waiting for the next respawn.
    #[error("the GPU worker is restarting after a failure; try again in {0} ms")]
    BackingOff(u64),
    /// The request does not fit the job's state.
    #[error("{0}")]
    NotNow(String),
}

impl JobError {
    /// Whose fault it was, when a worker was lost (`None`: none was).
    pub fn cause(&self) -> Option<Cause> {
        match self {
            JobError::Watchdog { .. }
            | JobError::CompileTimeout { .. }
            | JobError::WorkerDied(_) => Some(Cause::Job),
            JobError::WorkerLost(_) | JobError::StartFailed(_) | JobError::WrongAnswer => {
                Some(Cause::Machine)
            }
            JobError::Failed(_)
            | JobError::Stopped(_)
            | JobError::BackingOff(_)
            | JobError::NotNow(_) => None,
        }
    }
}

/// One output of a finished job.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Output {
    /// The binding.
    pub binding: BindingRef,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
    /// Length in bytes.
    pub bytes: u64,
    /// The bytes.
    #[serde(skip)]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes can be megabytes: show what identifies them.
        f.debug_struct("Output")
            .field("binding", &self.binding)
            .field("blake3", &self.blake3)
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// A finished job's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobResult {
    /// The job's digest, hex.
    pub job_digest: String,
    /// Outputs with their digests.
    pub outputs: Vec<Output>,
    /// What it ran on.
    pub class: ExecClass,
    /// GPU time, submit to completion of every slice, in milliseconds.
    pub gpu_time_ms: f64,
    /// Workgroups run.
    pub workgroups: u64,
    /// Slices it took in this run (since the last load or resume).
    pub slices: u64,
}

/// How a `run` or `resume` ended without error.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Done.
    Done(Box<JobResult>),
    /// Stopped by a yield request; the job waits in the worker.
    Yielded(Progress),
}

/// Sends a yield request to whatever worker is current; cheap to clone, usable from
/// any thread while a `run` is in progress.
#[derive(Clone, Default)]
pub struct Yielder {
    stdin: Arc<Mutex<Option<BufWriter<ChildStdin>>>>,
}

impl Yielder {
    /// Asks the worker to stop after the slice in flight. Does nothing without one.
    pub fn request(&self) {
        self.send(&Request::Yield);
    }

    /// Changes the slice budget from the next slice on.
    pub fn set_budget(&self, budget: Budget) {
        self.send(&Request::SetBudget { budget });
    }

    fn send(&self, request: &Request) {
        if let Ok(mut guard) = self.stdin.lock()
            && let Some(stdin) = guard.as_mut()
        {
            let _ = wire::write_frame(stdin, request, &[]);
        }
    }
}

struct Worker {
    child: Child,
    events: Receiver<Result<Frame<Event>, String>>,
    class: ExecClass,
}

/// Called from the worker's output thread when a worker's output ends (it exited or
/// was killed), so that an idle worker's death is noticed at once.
pub type ExitHook = Arc<dyn Fn() + Send + Sync>;

/// Why the next event did not come.
enum Silence {
    /// Nothing within the time allowed.
    TimedOut,
    /// The worker's output ended or broke.
    Gone(String),
}

/// Where a job's run has got to, for the time allowed until the next event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Sent, not yet taken up: a worker lost now never had the job.
    Sent,
    /// Taken up (`Received`): admitted, then compiled.
    Receiving,
    Compiling,
    Uploading,
    Slicing,
}

/// The supervisor of one GPU worker.
pub struct Supervisor {
    config: RunnerConfig,
    worker: Option<Worker>,
    yielder: Yielder,
    /// When a worker may start again, and whether lending stopped itself.
    respawn: Respawn,
    /// The yielded job waiting in the worker.
    current: Option<[u8; 32]>,
    /// A worker was lost while idle: start another before the next job needs it.
    restart: bool,
    /// Running the self-test: whatever goes wrong is the machine's fault.
    judging: bool,
    on_exit: Option<ExitHook>,
}

impl Supervisor {
    /// A supervisor; the worker starts with the first job.
    pub fn new(config: RunnerConfig) -> Self {
        Self {
            respawn: Respawn::new(
                config.backoff_base,
                config.max_failures,
                config.failure_window,
                config.retry_after,
            ),
            config,
            worker: None,
            yielder: Yielder::default(),
            current: None,
            restart: false,
            judging: false,
            on_exit: None,
        }
    }

    /// A handle that yields the running job from another thread.
    pub fn yielder(&self) -> Yielder {
        self.yielder.clone()
    }

    /// Calls `hook` whenever a worker's output ends (then call [`watch_idle`](Self::watch_idle)).
    pub fn on_worker_exit(&mut self, hook: ExitHook) {
        self.on_exit = Some(hook);
    }

    /// When GPU lending stopped itself: why, and when it is tried again.
    pub fn stopped(&self) -> Option<&Stop> {
        self.respawn.stopped()
    }

    /// Whether a stop's retry time has come (then run [`self_test`](Self::self_test)).
    pub fn retry_due(&self, now: Instant) -> bool {
        self.respawn
            .stopped()
            .is_some_and(|stop| now >= stop.retry_at)
    }

    /// The execution class of the running worker, starting it if needed.
    pub fn exec_class(&mut self) -> Result<ExecClass, JobError> {
        self.ensure_worker()?;
        self.worker
            .as_ref()
            .map(|w| w.class.clone())
            .ok_or_else(|| JobError::WorkerLost("no worker".into()))
    }

    /// The worker's process id, if one runs.
    pub fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(|w| w.child.id())
    }

    /// Notices a worker that exited while no job ran on it: it is counted against the
    /// machine and replaced by [`restart_lost`](Self::restart_lost). Returns what
    /// happened, for the log.
    pub fn watch_idle(&mut self) -> Option<String> {
        let worker = self.worker.as_mut()?;
        let pid = worker.child.id();
        // Its output ends as it exits (a moment before it can be waited for).
        let ended = match worker.events.try_recv() {
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some("its output closed".to_owned()),
            Ok(Err(reason)) => Some(reason),
            Ok(Ok(frame)) => Some(format!("it sent {:?} while idle", frame.header)),
        };
        let exit = match (worker.child.try_wait(), ended) {
            (Ok(None), None) => return None,
            (Ok(Some(status)), _) => status.to_string(),
            (Ok(None), Some(reason)) => reason,
            (Err(e), _) => format!("it cannot be waited for: {e}"),
        };
        let what = format!("the GPU worker (pid {pid}) exited while idle ({exit})");
        // A job that waited in it is gone with it; its owner runs it again.
        self.current = None;
        self.lose_worker(Cause::Machine, &what);
        self.restart = true;
        Some(what)
    }

    /// Starts a worker in place of one lost while idle, when the back-off allows.
    /// Returns how long until it should be tried again (`None`: nothing to do).
    pub fn restart_lost(&mut self) -> Option<Result<Duration, JobError>> {
        if !self.restart || self.worker.is_some() {
            self.restart = false;
            return None;
        }
        match self.ensure_worker() {
            Ok(()) => {
                self.restart = false;
                None
            }
            Err(JobError::BackingOff(ms)) => Some(Ok(Duration::from_millis(ms))),
            Err(JobError::Stopped(_)) => {
                // Started again by a retry or the owner, with the next job.
                self.restart = false;
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    fn ensure_worker(&mut self) -> Result<(), JobError> {
        if self.worker.is_some() {
            return Ok(());
        }
        match self.respawn.poll_start(Instant::now()) {
            Ok(()) => {}
            Err(NotNow::Stopped(reason)) => return Err(JobError::Stopped(reason)),
            Err(NotNow::BackingOff(wait)) => {
                return Err(JobError::BackingOff(wait.as_millis() as u64));
            }
        }
        let (program, args) = &self.config.worker;
        let mut command = Command::new(program);
        if let Some(dir) = &self.config.pipeline_cache_dir {
            command.env(crate::worker::PIPELINE_CACHE_ENV, dir);
        }
        command.env(
            crate::worker::JOB_MEMORY_ENV,
            self.config.caps.total_buffer_bytes.to_string(),
        );
        let spawned = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let what = format!("cannot start {}: {e}", program.display());
                self.count(Cause::Machine, &what);
                return Err(JobError::StartFailed(what));
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            let what = "no pipes to the worker";
            self.count(Cause::Machine, what);
            return Err(JobError::StartFailed(what.into()));
        };
        let (tx, rx) = mpsc::channel();
        let on_exit = self.on_exit.clone();
        std::thread::spawn(move || {
            let mut input = BufReader::new(stdout);
            let end = loop {
                match wire::read_frame::<Event>(&mut input) {
                    Ok(Some(frame)) => {
                        if tx.send(Ok(frame)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break "it closed its output".to_owned(),
                    Err(e) => break format!("it sent a malformed frame: {e}"),
                }
            };
            let _ = tx.send(Err(end));
            if let Some(hook) = on_exit {
                hook();
            }
        });
        let first = rx.recv_timeout(self.config.startup_timeout);
        let class = match first {
            Ok(Ok(Frame {
                header: Event::Ready { class },
                ..
            })) => class,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let what = match other {
                    Ok(Ok(Frame {
                        header: Event::StartFailed { message },
                        ..
                    })) => message,
                    Err(RecvTimeoutError::Timeout) => format!(
                        "it did not open the GPU within {} s",
                        self.config.startup_timeout.as_secs()
                    ),
                    Ok(Err(reason)) => reason,
                    other => format!("unexpected start: {other:?}"),
                };
                self.count(Cause::Machine, &what);
                return Err(JobError::StartFailed(what));
            }
        };
        if let Ok(mut slot) = self.yielder.stdin.lock() {
            *slot = Some(BufWriter::new(stdin));
        }
        self.worker = Some(Worker {
            child,
            events: rx,
            class,
        });
        Ok(())
    }

    fn send(&mut self, request: &Request, blobs: &[&[u8]]) -> Result<(), JobError> {
        let mut guard = self
            .yielder
            .stdin
            .lock()
            .map_err(|_| JobError::WorkerLost("its input lock was poisoned".into()))?;
        let Some(stdin) = guard.as_mut() else {
            return Err(JobError::WorkerLost("no worker".into()));
        };
        let written = wire::write_frame(stdin, request, blobs);
        drop(guard);
        written.map_err(|e| {
            // A worker that cannot be written to is gone before the request reached it:
            // replace it next time.
            let what = format!("cannot write to it: {e}");
            self.current = None;
            self.lose_worker(Cause::Machine, &what);
            JobError::WorkerLost(what)
        })
    }

    /// Runs a job until it finishes or yields. `on_slice` hears of each slice.
    pub fn run(
        &mut self,
        job: &AdmittedJob,
        checkpoint: Option<&Checkpoint>,
        budget: Budget,
        on_slice: &mut dyn FnMut(&SliceReport),
    ) -> Result<Outcome, JobError> {
        let job = job.job();
        let digest = job.digest();
        // A worker that died since the last job is replaced, not written to.
        self.watch_idle();
        self.ensure_worker()?;
        let header = JobHeader {
            source: job.source.clone(),
            steps: job.steps.clone(),
            bindings: job.bindings.iter().map(|b| (b.at, b.kind)).collect(),
            outputs: job.outputs.clone(),
        };
        let mut blobs: Vec<&[u8]> = job.bindings.iter().map(|b| b.bytes.as_slice()).collect();
        let checkpoint_header = checkpoint.map(|cp| {
            blobs.extend(cp.buffers.iter().map(|(_, b)| b.as_slice()));
            CheckpointHeader {
                job_digest: crate::hex(&cp.job_digest),
                progress: cp.progress,
                buffers: cp.buffers.iter().map(|(r, _)| *r).collect(),
            }
        });
        self.current = Some(digest);
        self.send(
            &Request::Run {
                job: header,
                checkpoint: checkpoint_header,
                budget,
            },
            &blobs,
        )?;
        self.wait_outcome(digest, Stage::Sent, on_slice)
    }

    /// Continues a yielded job.
    pub fn resume(
        &mut self,
        budget: Budget,
        on_slice: &mut dyn FnMut(&SliceReport),
    ) -> Result<Outcome, JobError> {
        if let Some(what) = self.watch_idle() {
            return Err(JobError::WorkerLost(format!(
                "{what}, with the yielded job in it: run the job again"
            )));
        }
        let Some(digest) = self.current else {
            return Err(JobError::NotNow("no yielded job to resume".into()));
        };
        self.send(&Request::Resume { budget }, &[])?;
        // Nothing to compile: the first slice after a resume is watched like any other.
        self.wait_outcome(digest, Stage::Slicing, on_slice)
    }

    /// Runs Spare's own known-good job (`selftest.rs`) and checks its answer: whatever
    /// goes wrong is the machine's fault. Success ends a stop.
    pub fn self_test(&mut self) -> Result<(), JobError> {
        let job = crate::selftest::job().map_err(JobError::Failed)?;
        // While judging, lost workers are not counted one by one: the verdict is.
        self.judging = true;
        let outcome = self.run(&job, None, Budget::Idle, &mut |_| {});
        let verdict = match outcome {
            Ok(Outcome::Done(result)) => {
                let expected = crate::selftest::expected_output();
                if result.outputs.first().map(|o| &o.data) == Some(&expected) {
                    Ok(())
                } else {
                    Err(JobError::WrongAnswer)
                }
            }
            Ok(Outcome::Yielded(_)) => {
                let _ = self.drop_job();
                Err(JobError::NotNow("the self-test was asked to yield".into()))
            }
            Err(e) => Err(e),
        };
        match &verdict {
            Ok(()) => self.respawn.handle_success(),
            // Stopped or backing off: nothing was tried.
            Err(JobError::Stopped(_) | JobError::BackingOff(_)) => {}
            Err(e) => {
                // Whatever is left of the worker is not trusted for the next try.
                self.lose_worker(Cause::Machine, "");
                self.respawn
                    .handle_self_test_failed(Instant::now(), &e.to_string());
            }
        }
        self.judging = false;
        verdict
    }

    /// Whether a job could start on a worker at `now` (one runs, or may be started).
    pub fn poll_start(&self, now: Instant) -> Result<(), NotNow> {
        if self.worker.is_some() {
            return Ok(());
        }
        self.respawn.poll_start(now)
    }

    /// Reads back the yielded job's state, to resume later, here or elsewhere.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, JobError> {
        self.send(&Request::Checkpoint, &[])?;
        let frame = self.next_event_or_lose(self.config.startup_timeout)?;
        match frame.header {
            Event::Checkpoint { checkpoint } => {
                let Some(digest) = crate::unhex32(&checkpoint.job_digest) else {
                    return Err(self.protocol_violation(Cause::Machine, "a bad checkpoint digest"));
                };
                if checkpoint.buffers.len() != frame.blobs.len() {
                    return Err(
                        self.protocol_violation(Cause::Machine, "checkpoint buffers missing")
                    );
                }
                Ok(Checkpoint {
                    job_digest: digest,
                    progress: checkpoint.progress,
                    buffers: checkpoint.buffers.into_iter().zip(frame.blobs).collect(),
                })
            }
            Event::Failed { message } => Err(JobError::Failed(message)),
            other => {
                Err(self.protocol_violation(Cause::Machine, &format!("unexpected reply {other:?}")))
            }
        }
    }

    /// Frees a yielded job in the worker.
    pub fn drop_job(&mut self) -> Result<(), JobError> {
        self.current = None;
        if self.worker.is_none() {
            return Ok(());
        }
        self.send(&Request::Drop, &[])?;
        match self.next_event_or_lose(self.config.startup_timeout)?.header {
            Event::Dropped => Ok(()),
            other => {
                Err(self.protocol_violation(Cause::Machine, &format!("unexpected reply {other:?}")))
            }
        }
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Frame<Event>, Silence> {
        let Some(worker) = self.worker.as_ref() else {
            return Err(Silence::Gone("no worker".into()));
        };
        match worker.events.recv_timeout(timeout) {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(reason)) => Err(Silence::Gone(reason)),
            Err(RecvTimeoutError::Timeout) => Err(Silence::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(Silence::Gone("its output closed".into())),
        }
    }

    /// The next event of a request outside a job's run: silence loses the worker,
    /// counted against the machine.
    fn next_event_or_lose(&mut self, timeout: Duration) -> Result<Frame<Event>, JobError> {
        self.next_event(timeout).map_err(|silence| {
            let what = match silence {
                Silence::TimedOut => format!("it did not answer within {} s", timeout.as_secs()),
                Silence::Gone(reason) => reason,
            };
            self.current = None;
            self.lose_worker(Cause::Machine, &what);
            JobError::WorkerLost(what)
        })
    }

    /// The time allowed until the next event at `stage`.
    fn allowance(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Sent | Stage::Receiving | Stage::Uploading => self.config.startup_timeout,
            Stage::Compiling => self.config.compile_timeout,
            Stage::Slicing => self.config.watchdog(),
        }
    }

    fn wait_outcome(
        &mut self,
        digest: [u8; 32],
        mut stage: Stage,
        on_slice: &mut dyn FnMut(&SliceReport),
    ) -> Result<Outcome, JobError> {
        let mut slices = 0u64;
        loop {
            let allowance = self.allowance(stage);
            let frame = match self.next_event(allowance) {
                Ok(frame) => frame,
                Err(silence) if stage == Stage::Sent => {
                    // The worker never took the job up: it was lost before (it died as
                    // the job was sent, or hangs): the machine's doing, and the job can
                    // run again.
                    self.current = None;
                    let what = match silence {
                        Silence::TimedOut => {
                            format!("it did not take up a job within {} s", allowance.as_secs())
                        }
                        Silence::Gone(reason) => reason,
                    };
                    self.lose_worker(Cause::Machine, &what);
                    return Err(JobError::WorkerLost(what));
                }
                Err(silence) => {
                    // The job was in the worker: whatever stopped it is the job's doing.
                    self.current = None;
                    let error = match (silence, stage) {
                        (Silence::TimedOut, Stage::Compiling) => JobError::CompileTimeout {
                            limit_ms: allowance.as_millis() as u64,
                        },
                        (Silence::TimedOut, Stage::Slicing) => JobError::Watchdog {
                            limit_ms: allowance.as_millis() as u64,
                            ceiling_ms: self.config.ceiling.as_millis() as u64,
                        },
                        (Silence::TimedOut, _) => JobError::WorkerDied(format!(
                            "it did not load the job within {} s",
                            allowance.as_secs()
                        )),
                        (Silence::Gone(reason), _) => JobError::WorkerDied(reason),
                    };
                    self.lose_worker(Cause::Job, &error.to_string());
                    return Err(error);
                }
            };
            match frame.header {
                Event::Received => stage = Stage::Receiving,
                Event::Compiling => stage = Stage::Compiling,
                Event::Compiled => stage = Stage::Uploading,
                Event::Loaded => stage = Stage::Slicing,
                Event::Slice { report } => {
                    slices += 1;
                    stage = Stage::Slicing;
                    on_slice(&report);
                }
                Event::Yielded { progress } => return Ok(Outcome::Yielded(progress)),
                Event::Done {
                    outputs,
                    gpu_time_us,
                    progress,
                } => {
                    self.current = None;
                    if outputs.len() != frame.blobs.len() {
                        return Err(
                            self.protocol_violation(Cause::Job, "outputs missing from its reply")
                        );
                    }
                    if !self.judging {
                        self.respawn.handle_success();
                    }
                    let class = self
                        .worker
                        .as_ref()
                        .map(|w| w.class.clone())
                        .ok_or_else(|| JobError::WorkerLost("no worker".into()))?;
                    let outputs = outputs
                        .into_iter()
                        .zip(frame.blobs)
                        .map(|(binding, data)| Output {
                            binding,
                            blake3: blake3::hash(&data).to_hex().to_string(),
                            bytes: data.len() as u64,
                            data,
                        })
                        .collect();
                    return Ok(Outcome::Done(Box::new(JobResult {
                        job_digest: crate::hex(&digest),
                        outputs,
                        class,
                        gpu_time_ms: gpu_time_us as f64 / 1000.0,
                        workgroups: progress.workgroups_done,
                        slices,
                    })));
                }
                Event::Failed { message } => {
                    self.current = None;
                    return Err(JobError::Failed(message));
                }
                Event::DeviceLost { message } => {
                    // Under the job: charged to it like any other lost worker (the
                    // self-test tells a GPU that loses its device by itself).
                    self.current = None;
                    let error = JobError::WorkerDied(format!("its GPU device was lost: {message}"));
                    self.lose_worker(Cause::Job, &error.to_string());
                    return Err(error);
                }
                other => {
                    return Err(
                        self.protocol_violation(Cause::Job, &format!("unexpected event {other:?}"))
                    );
                }
            }
        }
    }

    /// A worker that broke the protocol may have more frames queued that would be read
    /// as replies to the next request: it is killed and replaced, and charged to `cause`.
    fn protocol_violation(&mut self, cause: Cause, what: &str) -> JobError {
        self.current = None;
        let what = format!("it broke the protocol: {what}");
        self.lose_worker(cause, &what);
        match cause {
            Cause::Job => JobError::WorkerDied(what),
            Cause::Machine => JobError::WorkerLost(what),
        }
    }

    /// Kills the worker and counts the failure against `cause`.
    fn lose_worker(&mut self, cause: Cause, what: &str) {
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.child.kill();
            let _ = worker.child.wait();
        }
        if let Ok(mut slot) = self.yielder.stdin.lock() {
            *slot = None;
        }
        self.count(cause, what);
    }

    /// Counts a failure against `cause`; while judging, nothing is counted here: the
    /// self-test's verdict is counted once, by `self_test`.
    fn count(&mut self, cause: Cause, what: &str) {
        if !self.judging {
            self.respawn.handle_failure(Instant::now(), cause, what);
        }
    }

    /// Clears a stop after the owner turned GPU lending back on.
    pub fn reset_failures(&mut self) {
        self.respawn.handle_reset();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.yielder.stdin.lock() {
            // Closing stdin ends the worker's loop.
            if let Some(mut stdin) = slot.take() {
                let _ = stdin.flush();
            }
        }
        if let Some(mut worker) = self.worker.take() {
            // A worker busy with a slice would finish it first; nothing of its state is
            // needed any more, so it is killed rather than waited for.
            let _ = worker.child.kill();
            let _ = worker.child.wait();
        }
    }
}
