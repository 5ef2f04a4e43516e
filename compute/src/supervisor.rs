//! The supervisor: starts the GPU worker process, sends it jobs, watches it, and kills
//! and respawns it when a slice hangs.
//!
//! The worker is started by re-executing a binary with the hidden argument
//! [`WORKER_ARG`](crate::worker::WORKER_ARG). Every slice the worker finishes is a
//! heartbeat; a silence longer than the watchdog limit (the slice ceiling several
//! times over) gets the worker killed and the job failed with the reason. Respawns
//! back off (1 s, 2 s, 4 s … 32 s); three failures within ten minutes stop GPU
//! lending with a reason the owner can read (that policy is `respawn.rs`, without a
//! clock). A job that cost a worker twice is not run again.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::admission::AdmittedJob;
use crate::gpu::{Checkpoint, ExecClass, Progress, SliceReport};
use crate::manifest::BindingRef;
use crate::respawn::{NotNow, Respawn};
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
    /// Time allowed to open the device, and to compile a job before its first slice.
    pub startup_timeout: Duration,
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
}

impl RunnerConfig {
    /// Defaults for `program args…`.
    pub fn new(program: PathBuf, args: Vec<String>) -> Self {
        Self {
            worker: (program, args),
            ceiling: CEILING,
            watchdog_factor: 4,
            startup_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            max_failures: 3,
            failure_window: Duration::from_secs(600),
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
    /// The worker process died.
    #[error("the GPU worker died: {0}")]
    WorkerDied(String),
    /// The worker could not open a GPU.
    #[error("the GPU worker could not start: {0}")]
    StartFailed(String),
    /// Too many failures: GPU lending is stopped.
    #[error("GPU lending stopped: {0}")]
    Stopped(String),
    /// This job already cost a worker twice.
    #[error("this job crashed the GPU worker twice; it is not run again")]
    Blocked,
    /// Waiting for the next respawn.
    #[error("the GPU worker is restarting after a failure; try again in {0} ms")]
    BackingOff(u64),
    /// The request does not fit the job's state.
    #[error("{0}")]
    NotNow(String),
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

/// The supervisor of one GPU worker.
pub struct Supervisor {
    config: RunnerConfig,
    worker: Option<Worker>,
    yielder: Yielder,
    /// When a worker may start again, and whether lending stopped itself.
    respawn: Respawn,
    losses: HashMap<[u8; 32], u32>,
    current: Option<[u8; 32]>,
}

impl Supervisor {
    /// A supervisor; the worker starts with the first job.
    pub fn new(config: RunnerConfig) -> Self {
        Self {
            respawn: Respawn::new(
                config.backoff_base,
                config.max_failures,
                config.failure_window,
            ),
            config,
            worker: None,
            yielder: Yielder::default(),
            losses: HashMap::new(),
            current: None,
        }
    }

    /// A handle that yields the running job from another thread.
    pub fn yielder(&self) -> Yielder {
        self.yielder.clone()
    }

    /// Why GPU lending stopped, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.respawn.stopped()
    }

    /// The execution class of the running worker, starting it if needed.
    pub fn exec_class(&mut self) -> Result<ExecClass, JobError> {
        self.ensure_worker()?;
        self.worker
            .as_ref()
            .map(|w| w.class.clone())
            .ok_or_else(|| JobError::WorkerDied("no worker".into()))
    }

    /// The worker's process id, if one runs.
    pub fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(|w| w.child.id())
    }

    fn ensure_worker(&mut self) -> Result<(), JobError> {
        if let Some(reason) = self.respawn.stopped() {
            return Err(JobError::Stopped(reason.to_owned()));
        }
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
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                JobError::StartFailed(format!("cannot start {}: {e}", program.display()))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(JobError::StartFailed("no pipes to the worker".into()));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut input = BufReader::new(stdout);
            loop {
                match wire::read_frame::<Event>(&mut input) {
                    Ok(Some(frame)) => {
                        if tx.send(Ok(frame)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(Err("it closed its output".into()));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("it sent a malformed frame: {e}")));
                        return;
                    }
                }
            }
        });
        let first = rx.recv_timeout(self.config.startup_timeout);
        let class = match first {
            Ok(Ok(Frame {
                header: Event::Ready { class },
                ..
            })) => class,
            Ok(Ok(Frame {
                header: Event::StartFailed { message },
                ..
            })) => {
                let _ = child.kill();
                let _ = child.wait();
                self.respawn.handle_failure(Instant::now());
                return Err(JobError::StartFailed(message));
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                self.respawn.handle_failure(Instant::now());
                return Err(JobError::StartFailed(format!(
                    "unexpected start: {other:?}"
                )));
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
            .map_err(|_| JobError::WorkerDied("its input lock was poisoned".into()))?;
        let Some(stdin) = guard.as_mut() else {
            return Err(JobError::WorkerDied("no worker".into()));
        };
        let written = wire::write_frame(stdin, request, blobs);
        drop(guard);
        written.map_err(|e| {
            // A worker that cannot be written to is gone: replace it next time.
            self.lose_worker();
            JobError::WorkerDied(format!("cannot write to it: {e}"))
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
        if self.losses.get(&digest).copied().unwrap_or(0) >= 2 {
            return Err(JobError::Blocked);
        }
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
        // Compiling and uploading come before `Loaded`, so they get the start-up
        // allowance.
        let allowance = self.config.startup_timeout;
        self.wait_outcome(digest, allowance, on_slice)
    }

    /// Continues a yielded job.
    pub fn resume(
        &mut self,
        budget: Budget,
        on_slice: &mut dyn FnMut(&SliceReport),
    ) -> Result<Outcome, JobError> {
        let Some(digest) = self.current else {
            return Err(JobError::NotNow("no yielded job to resume".into()));
        };
        self.send(&Request::Resume { budget }, &[])?;
        // Nothing to compile: the first slice after a resume is watched like any other.
        let allowance = self.config.watchdog();
        self.wait_outcome(digest, allowance, on_slice)
    }

    /// Reads back the yielded job's state, to resume later, here or elsewhere.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, JobError> {
        self.send(&Request::Checkpoint, &[])?;
        let frame = self.next_event(self.config.startup_timeout)?;
        match frame.header {
            Event::Checkpoint { checkpoint } => {
                let Some(digest) = crate::unhex32(&checkpoint.job_digest) else {
                    return Err(self.protocol_violation("a bad checkpoint digest".into()));
                };
                if checkpoint.buffers.len() != frame.blobs.len() {
                    return Err(self.protocol_violation("checkpoint buffers missing".into()));
                }
                Ok(Checkpoint {
                    job_digest: digest,
                    progress: checkpoint.progress,
                    buffers: checkpoint.buffers.into_iter().zip(frame.blobs).collect(),
                })
            }
            Event::Failed { message } => Err(JobError::Failed(message)),
            other => Err(self.protocol_violation(format!("unexpected reply {other:?}"))),
        }
    }

    /// Frees a yielded job in the worker.
    pub fn drop_job(&mut self) -> Result<(), JobError> {
        self.current = None;
        if self.worker.is_none() {
            return Ok(());
        }
        self.send(&Request::Drop, &[])?;
        match self.next_event(self.config.startup_timeout)?.header {
            Event::Dropped => Ok(()),
            other => Err(self.protocol_violation(format!("unexpected reply {other:?}"))),
        }
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Frame<Event>, JobError> {
        let Some(worker) = self.worker.as_ref() else {
            return Err(JobError::WorkerDied("no worker".into()));
        };
        match worker.events.recv_timeout(timeout) {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(reason)) => {
                self.lose_worker();
                Err(JobError::WorkerDied(reason))
            }
            Err(RecvTimeoutError::Timeout) => {
                self.lose_worker();
                Err(JobError::Watchdog {
                    limit_ms: timeout.as_millis() as u64,
                    ceiling_ms: self.config.ceiling.as_millis() as u64,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.lose_worker();
                Err(JobError::WorkerDied("its output closed".into()))
            }
        }
    }

    fn wait_outcome(
        &mut self,
        digest: [u8; 32],
        first_timeout: Duration,
        on_slice: &mut dyn FnMut(&SliceReport),
    ) -> Result<Outcome, JobError> {
        // After `Loaded`, every slice must end within the watchdog limit.
        let mut timeout = first_timeout;
        let mut slices = 0u64;
        loop {
            let frame = match self.next_event(timeout) {
                Ok(frame) => frame,
                Err(e @ (JobError::Watchdog { .. } | JobError::WorkerDied(_))) => {
                    *self.losses.entry(digest).or_default() += 1;
                    self.current = None;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            match frame.header {
                Event::Loaded => timeout = self.config.watchdog(),
                Event::Slice { report } => {
                    slices += 1;
                    timeout = self.config.watchdog();
                    on_slice(&report);
                }
                Event::Yielded { progress } => return Ok(Outcome::Yielded(progress)),
                Event::Done {
                    outputs,
                    gpu_time_us,
                    progress,
                } => {
                    self.current = None;
                    self.respawn.handle_success();
                    if outputs.len() != frame.blobs.len() {
                        *self.losses.entry(digest).or_default() += 1;
                        return Err(
                            self.protocol_violation("outputs missing from its reply".into())
                        );
                    }
                    let class = self
                        .worker
                        .as_ref()
                        .map(|w| w.class.clone())
                        .ok_or_else(|| JobError::WorkerDied("no worker".into()))?;
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
                other => {
                    *self.losses.entry(digest).or_default() += 1;
                    return Err(self.protocol_violation(format!("unexpected event {other:?}")));
                }
            }
        }
    }

    /// A worker that broke the protocol may have more frames queued that would be read
    /// as replies to the next request: it is killed and replaced, and counted.
    fn protocol_violation(&mut self, what: String) -> JobError {
        self.current = None;
        self.lose_worker();
        JobError::WorkerDied(format!("it broke the protocol: {what}"))
    }

    /// Kills the worker and counts the failure.
    fn lose_worker(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.child.kill();
            let _ = worker.child.wait();
        }
        if let Ok(mut slot) = self.yielder.stdin.lock() {
            *slot = None;
        }
        self.respawn.handle_failure(Instant::now());
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
