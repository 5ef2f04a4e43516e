//! GPU jobs on this machine: checking a manifest and running it through the same
//! supervisor and worker process that lent GPU time uses.

use std::path::Path;

use anyhow::{Context as _, bail};
use compute::admission;
use compute::manifest::{self, BindingRef};
use compute::slicing::Budget;
use compute::supervisor::{Outcome, RunnerConfig, Supervisor};
use ed25519_dalek::SigningKey;
use ledger::Network;
use relay::ticket::Ticket;
use serde::Serialize;

use job_protocol::{self as job_service, Reply};
use node::config::Config;
use node::job_service::caps;

/// The outcome of `spare job check`, as `--json` prints it.
#[derive(Serialize)]
pub struct Checked {
    /// The manifest checked.
    pub manifest: String,
    /// Whether this node would admit it.
    pub admitted: bool,
    /// Steps, workgroups and buffer bytes, when admitted.
    pub steps: Option<usize>,
    /// Workgroups in all.
    pub workgroups: Option<u64>,
    /// Bytes of all its buffers.
    pub buffer_bytes: Option<u64>,
    /// Every problem, located in the WGSL when it has a place there.
    pub problems: Vec<compute::admission::Rejection>,
}

impl Checked {
    /// For people: a summary line, or every problem.
    pub fn render(&self) -> String {
        if self.admitted {
            format!(
                "OK: {} — {} step(s), {} workgroups, {} buffer bytes",
                self.manifest,
                self.steps.unwrap_or_default(),
                self.workgroups.unwrap_or_default(),
                self.buffer_bytes.unwrap_or_default()
            )
        } else {
            let refused = compute::admission::Refused(self.problems.clone());
            format!("{}: {refused}", self.manifest)
        }
    }
}

/// Reads a manifest and runs admission on it.
pub fn check(path: &Path, config: &Config) -> anyhow::Result<Checked> {
    let job = manifest::load(path)?;
    let manifest = path.display().to_string();
    Ok(match admission::admit(&job, &caps(config)) {
        Ok(_) => Checked {
            manifest,
            admitted: true,
            steps: Some(job.steps.len()),
            workgroups: Some(job.total_workgroups()),
            buffer_bytes: Some(job.buffer_bytes()),
            problems: Vec::new(),
        },
        Err(refused) => Checked {
            manifest,
            admitted: false,
            steps: None,
            workgroups: None,
            buffer_bytes: None,
            problems: refused.0,
        },
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

/// What `run-local` and `job submit` print.
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
    let job = admission::AdmittedJob::admit(manifest::load(path)?, &caps(config))
        .map_err(|r| anyhow::anyhow!("{}: {r}", path.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut runner = RunnerConfig::current_exe().context("finding the spare executable")?;
    if let Some(i) = adapter {
        runner.worker.1.push(i.to_string());
    }
    runner.caps = caps(config);
    runner.pipeline_cache_dir = node::paths::pipeline_cache_dir().ok();
    let mut supervisor = Supervisor::new(runner);
    let result = match supervisor.run(&job, None, Budget::Idle, &mut |_| {})? {
        Outcome::Done(result) => result,
        Outcome::Yielded(_) => bail!("the job stopped before finishing"),
    };
    let outputs = write_outputs(
        out,
        result
            .outputs
            .iter()
            .map(|o| (o.binding, o.data.as_slice(), o.blake3.as_str())),
    )?;
    Ok(RunReport {
        job_digest: result.job_digest.clone(),
        outputs,
        class: result.class.clone(),
        gpu_time_ms: result.gpu_time_ms,
        workgroups: result.workgroups,
        slices: result.slices,
    })
}

/// Writes one file per output, `binding-G-B.bin`, and describes them.
fn write_outputs<'a>(
    out: &Path,
    outputs: impl Iterator<Item = (BindingRef, &'a [u8], &'a str)>,
) -> anyhow::Result<Vec<OutputFile>> {
    let mut files = Vec::new();
    for (at, data, digest) in outputs {
        let file = out.join(format!("binding-{}-{}.bin", at.group, at.binding));
        std::fs::write(&file, data).with_context(|| format!("writing {}", file.display()))?;
        files.push(OutputFile {
            group: at.group,
            binding: at.binding,
            file: file.display().to_string(),
            bytes: data.len() as u64,
            blake3: digest.to_owned(),
        });
    }
    Ok(files)
}

/// `spare job submit`: sends a job with a signed order to the node in `ticket`,
/// waits for it, writes its outputs to `out` and reports like `run-local`.
pub fn submit(
    ticket: &str,
    manifest: &Path,
    out: &Path,
    key: &SigningKey,
    price: Option<u64>,
    network: Option<&str>,
) -> anyhow::Result<RunReport> {
    let ticket: Ticket = ticket.parse().context("reading the ticket")?;
    let job = manifest::load(manifest)?;
    let node = ticket.node;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let received = runtime.block_on(async {
        let card = job_service::rate_card(&ticket, key).await?;
        let amount = price.unwrap_or_else(|| card.price(job.total_workgroups()));
        let network = Network::new(network.unwrap_or(&card.network))
            .map_err(|e| job_service::SubmitError::Protocol(format!("--network: {e}")))?;
        let order = job_service::sign_order(key, node, network, &job, amount, ORDER_LIFETIME)
            .map_err(|e| job_service::SubmitError::Protocol(e.to_string()))?;
        job_service::submit(&ticket, key, &job, order, &mut |reply| {
            if let Reply::Queued {
                position,
                waiting_for,
            } = reply
            {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "queued at position {position}{}",
                        waiting_for
                            .as_ref()
                            .map(|w| format!(" (the node is {w})"))
                            .unwrap_or_default()
                    );
                }
            }
        })
        .await
    })?;
    let Reply::Done {
        job_digest,
        class,
        gpu_time_ms,
        workgroups,
        slices,
        ..
    } = received.done
    else {
        bail!("the node's answer has no result");
    };
    let outputs = write_outputs(
        out,
        received.outputs.iter().map(|(o, data)| {
            (
                BindingRef {
                    group: o.group,
                    binding: o.binding,
                },
                data.as_slice(),
                o.blake3.as_str(),
            )
        }),
    )?;
    Ok(RunReport {
        job_digest,
        outputs,
        class,
        gpu_time_ms,
        workgroups,
        slices,
    })
}

/// How long a submitted order stays valid (it waits in the node's queue meanwhile).
const ORDER_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);
