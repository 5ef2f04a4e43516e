//! The GPU worker process: owns one wgpu device and runs jobs the supervisor sends.
//!
//! It reads requests from stdin and writes events to stdout (see `wire.rs`). A reader
//! thread applies `Yield` and `SetBudget` at once, so they take effect after the slice
//! in flight even while the main thread is running slices. The worker is disposable:
//! when a slice hangs the supervisor kills it, which is the only reliable way to stop
//! work on a GPU.

use std::io::{BufReader, BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;

use crate::admission::Caps;
use crate::gpu::{Checkpoint, Control, Gpu, GpuError, LoadStage, Resident, RunEnd};
use crate::manifest::{Binding, Job};
use crate::wire::{self, CheckpointHeader, Event, Frame, Request};

/// The hidden argument that makes `spare` (or `spare-gpu-worker`) run as a worker.
pub const WORKER_ARG: &str = "__gpu-worker";
/// Environment variable naming the folder for the on-disk pipeline cache.
pub const PIPELINE_CACHE_ENV: &str = "SPARE_PIPELINE_CACHE_DIR";
/// Environment variable with the node's budget for one job's buffers, in bytes.
pub const JOB_MEMORY_ENV: &str = "SPARE_JOB_MEMORY_BYTES";

/// Runs the worker on stdin/stdout until the supervisor closes stdin.
/// `adapter` picks the adapter by index (see `gpu::adapters`).
pub fn main(adapter: Option<usize>) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut caps = Caps::default();
    if let Some(bytes) = std::env::var(JOB_MEMORY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        caps.total_buffer_bytes = bytes;
    }
    let mut gpu = match Gpu::open(adapter, caps) {
        Ok(gpu) => gpu,
        Err(e) => {
            let _ = wire::write_frame(
                &mut out,
                &Event::StartFailed {
                    message: e.to_string(),
                },
                &[],
            );
            return ExitCode::from(3);
        }
    };
    if let Some(dir) = std::env::var_os(PIPELINE_CACHE_ENV) {
        gpu.use_pipeline_cache(std::path::Path::new(&dir));
    }
    if wire::write_frame(
        &mut out,
        &Event::Ready {
            class: gpu.exec_class(),
        },
        &[],
    )
    .is_err()
    {
        return ExitCode::from(3);
    }

    let control = Arc::new(Control::default());
    let (tx, rx) = mpsc::channel::<Frame<Request>>();
    let reader_control = control.clone();
    std::thread::spawn(move || {
        let mut input = BufReader::new(std::io::stdin().lock());
        // A malformed frame or a closed stdin ends the reader, and so the worker.
        while let Ok(Some(frame)) = wire::read_frame::<Request>(&mut input) {
            match &frame.header {
                Request::Yield => reader_control.request_yield(),
                Request::SetBudget { budget } => reader_control.set_budget(*budget),
                // A run starts without a yield pending. Cleared here, in the order the
                // requests arrived, so a Yield sent right after Run or Resume is never
                // erased by the main thread picking up the Run late.
                Request::Run { budget, .. } | Request::Resume { budget } => {
                    reader_control.clear_yield();
                    reader_control.set_budget(*budget);
                    if tx.send(frame).is_err() {
                        break;
                    }
                }
                _ => {
                    if tx.send(frame).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut resident: Option<(Job, Resident)> = None;
    while let Ok(frame) = rx.recv() {
        let result = handle(&mut gpu, &control, &mut resident, frame, &mut out);
        if let Err(e) = result {
            // The supervisor has gone away: nothing left to do.
            let _ = writeln!(std::io::stderr(), "spare gpu worker: {e}");
            return ExitCode::from(4);
        }
    }
    ExitCode::SUCCESS
}

fn handle(
    gpu: &mut Gpu,
    control: &Control,
    resident: &mut Option<(Job, Resident)>,
    frame: Frame<Request>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let failed = |out: &mut dyn Write, message: String| {
        let mut out = out;
        wire::write_frame(&mut out, &Event::Failed { message }, &[])
    };
    match frame.header {
        // The reader thread already cleared any yield and set the budget.
        Request::Run {
            job, checkpoint, ..
        } => {
            *resident = None;
            wire::write_frame(out, &Event::Received, &[])?;
            let (job, checkpoint) = match job_from_frame(job, checkpoint, frame.blobs) {
                Ok(parts) => parts,
                Err(message) => return failed(out, message),
            };
            // Compiling gets a deadline of its own in the supervisor: it hears when it
            // starts and ends.
            let mut on_stage = |stage| {
                let event = match stage {
                    LoadStage::Compiling => Event::Compiling,
                    LoadStage::Compiled => Event::Compiled,
                };
                let _ = wire::write_frame(&mut *out, &event, &[]);
            };
            let loaded = gpu.load_observed(&job, checkpoint.as_ref(), &mut on_stage);
            match loaded {
                Ok(r) => {
                    *resident = Some((job, r));
                    wire::write_frame(out, &Event::Loaded, &[])?;
                    run(gpu, control, resident, out)
                }
                Err(e) => report(out, e),
            }
        }
        Request::Resume { .. } => {
            if resident.is_none() {
                return failed(out, "no yielded job to resume".into());
            }
            run(gpu, control, resident, out)
        }
        Request::Checkpoint => {
            let Some((_, r)) = resident.as_ref() else {
                return failed(out, "no yielded job to checkpoint".into());
            };
            match gpu.checkpoint(r) {
                Ok(cp) => {
                    let header = CheckpointHeader {
                        job_digest: crate::hex(&cp.job_digest),
                        progress: cp.progress,
                        buffers: cp.buffers.iter().map(|(r, _)| *r).collect(),
                    };
                    let blobs: Vec<&[u8]> = cp.buffers.iter().map(|(_, b)| b.as_slice()).collect();
                    wire::write_frame(out, &Event::Checkpoint { checkpoint: header }, &blobs)
                }
                Err(e) => report(out, e),
            }
        }
        Request::Drop => {
            *resident = None;
            wire::write_frame(out, &Event::Dropped, &[])
        }
        Request::Yield | Request::SetBudget { .. } => Ok(()),
    }
}

fn run(
    gpu: &mut Gpu,
    control: &Control,
    resident: &mut Option<(Job, Resident)>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let Some((job, r)) = resident.as_mut() else {
        return Ok(());
    };
    let mut write_error = None;
    let end = gpu.run(r, control, &mut |report| {
        if write_error.is_none()
            && let Err(e) = wire::write_frame(&mut *out, &Event::Slice { report: *report }, &[])
        {
            write_error = Some(e);
            // The supervisor is gone; stop issuing work.
            control.request_yield();
        }
    });
    if let Some(e) = write_error {
        return Err(e);
    }
    match end {
        Ok(RunEnd::Yielded) => wire::write_frame(
            out,
            &Event::Yielded {
                progress: r.progress(),
            },
            &[],
        ),
        Ok(RunEnd::Finished) => {
            let outputs = job.outputs.clone();
            match gpu.read_back(r, &outputs) {
                Ok(bytes) => {
                    let blobs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
                    let event = Event::Done {
                        outputs,
                        gpu_time_us: r.gpu_time.as_micros() as u64,
                        progress: r.progress(),
                    };
                    let written = wire::write_frame(out, &event, &blobs);
                    *resident = None;
                    written
                }
                Err(e) => report(out, e),
            }
        }
        Err(e) => {
            *resident = None;
            report(out, e)
        }
    }
}

/// Tells the supervisor a job failed. A lost device is not a job's failure the worker
/// can go on from: it says so and exits, so a new worker with a new device replaces it.
fn report(out: &mut impl Write, e: GpuError) -> std::io::Result<()> {
    match e {
        GpuError::DeviceLost(message) => {
            wire::write_frame(out, &Event::DeviceLost { message }, &[])?;
            Err(std::io::Error::other("the GPU device was lost"))
        }
        other => wire::write_frame(
            out,
            &Event::Failed {
                message: other.to_string(),
            },
            &[],
        ),
    }
}

/// Rebuilds a job (and its checkpoint) from a frame's header and blobs.
pub fn job_from_frame(
    job: wire::JobHeader,
    checkpoint: Option<CheckpointHeader>,
    mut blobs: Vec<Vec<u8>>,
) -> Result<(Job, Option<Checkpoint>), String> {
    let wanted = job.bindings.len() + checkpoint.as_ref().map_or(0, |c| c.buffers.len());
    if blobs.len() != wanted {
        return Err(format!("expected {wanted} buffers, got {}", blobs.len()));
    }
    let rest = blobs.split_off(job.bindings.len());
    let bindings = job
        .bindings
        .iter()
        .zip(blobs)
        .map(|((at, kind), bytes)| Binding {
            at: *at,
            kind: *kind,
            bytes,
        })
        .collect();
    let job = Job {
        source: job.source,
        steps: job.steps,
        bindings,
        outputs: job.outputs,
    };
    let checkpoint = match checkpoint {
        None => None,
        Some(header) => {
            let digest = crate::unhex32(&header.job_digest)
                .ok_or_else(|| "checkpoint digest is not 64 hex characters".to_owned())?;
            Some(Checkpoint {
                job_digest: digest,
                progress: header.progress,
                buffers: header.buffers.into_iter().zip(rest).collect(),
            })
        }
    };
    Ok((job, checkpoint))
}
