//! GPU jobs on this machine: checking a manifest and running it through the same
//! supervisor and worker process that lent GPU time uses.

use std::path::Path;

use anyhow::{Context as _, bail};
use compute::admission::{self, Caps};
use compute::manifest;
use compute::slicing::Budget;
use compute::supervisor::{Outcome, RunnerConfig, Supervisor};
use serde::Serialize;

use crate::config::Config;

/// The outcome of `spare job check`.
pub enum Checked {
    /// Admitted: a summary line.
    Ok(String),
    /// Refused: every problem, located.
    Refused(String),
}

/// What this node admits, from its config.
pub fn caps(config: &Config) -> Caps {
    Caps {
        total_buffer_bytes: u64::from(config.gpu.max_job_memory_mb) << 20,
    }
}

/// Reads a manifest and runs admission on it.
pub fn check(path: &Path, config: &Config) -> anyhow::Result<Checked> {
    let job = manifest::load(path)?;
    Ok(match admission::admit(&job, &caps(config)) {
        Ok(_) => Checked::Ok(format!(
            "OK: {} — {} step(s), {} workgroups, {} buffer bytes",
            path.display(),
            job.steps.len(),
            job.total_workgroups(),
            job.buffer_bytes()
        )),
        Err(refused) => Checked::Refused(format!("{}: {refused}", path.display())),
    })
}

/// One output file written by `run-local`.
#[derive(Serialize)]
pub struct OutputFile {
    /// Bind group.
    pub group: u32,
    /// Binding.
    pub binding: u32,
    /// Where it was written.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// BLAKE3 of its contents, hex.
    pub blake3: String,
}

/// What `run-local` (and later `job submit`) prints.
#[derive(Serialize)]
pub struct RunReport {
    /// The job's digest, hex.
    pub job_digest: String,
    /// The outputs.
    pub outputs: Vec<OutputFile>,
    /// What it ran on.
    pub class: compute::gpu::ExecClass,
    /// GPU time in milliseconds.
    pub gpu_time_ms: f64,
    /// Workgroups run.
    pub workgroups: u64,
    /// Slices it took.
    pub slices: u64,
}

/// Runs a manifest through a GPU worker and writes one file per output binding.
pub fn run_local(
    path: &Path,
    out: &Path,
    adapter: Option<usize>,
    config: &Config,
) -> anyhow::Result<RunReport> {
    let job = manifest::load(path)?;
    admission::admit(&job, &caps(config))
        .map_err(|r| anyhow::anyhow!("{}: {r}", path.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut runner = RunnerConfig::current_exe().context("finding the spare executable")?;
    if let Some(i) = adapter {
        runner.worker.1.push(i.to_string());
    }
    runner.caps = caps(config);
    runner.pipeline_cache_dir = crate::paths::pipeline_cache_dir().ok();
    let mut supervisor = Supervisor::new(runner);
    let result = match supervisor.run(&job, None, Budget::Idle, &mut |_| {})? {
        Outcome::Done(result) => result,
        Outcome::Yielded(_) => bail!("the job stopped before finishing"),
    };
    let mut outputs = Vec::new();
    for o in &result.outputs {
        let file = out.join(format!(
            "binding-{}-{}.bin",
            o.binding.group, o.binding.binding
        ));
        std::fs::write(&file, &o.data).with_context(|| format!("writing {}", file.display()))?;
        outputs.push(OutputFile {
            group: o.binding.group,
            binding: o.binding.binding,
            file: file.display().to_string(),
            bytes: o.bytes,
            blake3: o.blake3.clone(),
        });
    }
    Ok(RunReport {
        job_digest: result.job_digest.clone(),
        outputs,
        class: result.class.clone(),
        gpu_time_ms: result.gpu_time_ms,
        workgroups: result.workgroups,
        slices: result.slices,
    })
}
