//! The commands that need no running node: the ledger, the config file, GPU jobs run
//! here, and the GPU adapters.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use ledger::Ledger;
use node::config::Config;
use node::{identity, paths};

use super::{
    Cli, ConfigCommand, GpuCommand, JobCommand, LedgerCommand, Outcome, config_path, key_store,
    load_config,
};

/// `spare ledger …`.
pub(super) fn run_ledger(cli: &Cli, command: &LedgerCommand) -> anyhow::Result<Outcome> {
    match command {
        LedgerCommand::Verify { json, db } => {
            let config = load_config(cli)?;
            let path = ledger_path(db.as_deref(), &config)?;
            let ledger = Ledger::open_read_only(&path)?;
            let started = std::time::Instant::now();
            // On a terminal, how far it has got (a year of entries takes seconds).
            let terminal = !*json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut shown = false;
            let mut on_progress = |checked: u64, total: u64| {
                if terminal && total > 0 && started.elapsed().as_millis() > 300 {
                    eprint!(
                        "\rverifying: {checked} of {total} entries ({} %)",
                        checked * 100 / total
                    );
                    shown = true;
                }
            };
            let report = ledger
                .verify_with_progress(&mut on_progress)
                .context("reading the ledger")?;
            if shown {
                eprint!("\r\x1b[2K");
            }
            let secs = started.elapsed().as_secs_f64();
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            match &report.problem {
                None => {
                    if !*json {
                        println!(
                            "ledger {} is intact: {} entries chained, {} signatures valid \
                             ({secs:.2} s)",
                            path.display(),
                            report.entries,
                            report.signatures
                        );
                    }
                    Ok(Outcome::Ok)
                }
                Some(problem) => {
                    let at = if problem.seq == 0 {
                        "in the earnings totals".to_owned()
                    } else {
                        format!("at entry {}", problem.seq)
                    };
                    eprintln!(
                        "ledger {} FAILED verification {at}: {}",
                        path.display(),
                        problem.reason
                    );
                    Ok(Outcome::Failed)
                }
            }
        }
        LedgerCommand::Export { csv, db } => {
            let config = load_config(cli)?;
            let path = ledger_path(db.as_deref(), &config)?;
            let ledger = Ledger::open_read_only(&path)?;
            let count = export(&ledger, csv)?;
            if csv != Path::new("-") {
                println!("exported {count} entries to {}", csv.display());
            }
            Ok(Outcome::Ok)
        }
    }
}

/// `spare config …`.
pub(super) fn run_config(cli: &Cli, command: &ConfigCommand) -> anyhow::Result<Outcome> {
    match command {
        ConfigCommand::Check { path, json } => {
            let (path, explicit) = match path {
                Some(p) => (p.clone(), true),
                None => config_path(cli)?,
            };
            let report = |exists: bool, problems: &[node::config::Problem]| {
                serde_json::json!({
                    "path": path.display().to_string(),
                    "exists": exists,
                    "valid": problems.is_empty(),
                    "problems": problems,
                })
            };
            if !explicit && !path.exists() {
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report(false, &[]))?);
                } else {
                    println!(
                        "no config file at {}: Spare uses the defaults (`spare config \
                         example` shows them)",
                        path.display()
                    );
                }
                return Ok(Outcome::Ok);
            }
            match Config::load(&path) {
                Ok(_) if *json => {
                    println!("{}", serde_json::to_string_pretty(&report(true, &[]))?);
                    Ok(Outcome::Ok)
                }
                Ok(_) => {
                    println!("config {} is valid", path.display());
                    Ok(Outcome::Ok)
                }
                Err(node::config::ConfigError::Invalid { problems, .. }) if *json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report(true, &problems))?
                    );
                    Ok(Outcome::Failed)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(Outcome::Failed)
                }
            }
        }
        ConfigCommand::Example => {
            print!("{}", node::config::EXAMPLE);
            Ok(Outcome::Ok)
        }
        ConfigCommand::Path => {
            println!("{}", config_path(cli)?.0.display());
            Ok(Outcome::Ok)
        }
    }
}

/// `spare job …`.
pub(super) fn run_job(cli: &Cli, command: &JobCommand) -> anyhow::Result<Outcome> {
    match command {
        JobCommand::Check { manifest, json } => {
            let checked = crate::jobs::check(manifest, &load_config(cli)?)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&checked)?);
            } else if checked.admitted {
                println!("{}", checked.render());
            } else {
                eprintln!("{}", checked.render());
            }
            Ok(if checked.admitted {
                Outcome::Ok
            } else {
                Outcome::Failed
            })
        }
        JobCommand::RunLocal {
            manifest,
            out,
            adapter,
        } => {
            let config = load_config(cli)?;
            let report = crate::jobs::run_local(manifest, out, *adapter, &config)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(Outcome::Ok)
        }
        JobCommand::Submit {
            ticket,
            manifest,
            out,
            price,
            network,
        } => {
            let config = load_config(cli)?;
            let (identity, _) = identity::load_or_create(&key_store(cli, &config))?;
            let report = crate::jobs::submit(
                ticket,
                manifest,
                out,
                identity.signing_key(),
                *price,
                network.as_deref(),
            )?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(Outcome::Ok)
        }
    }
}

/// `spare gpu …`.
pub(super) fn run_gpu(command: &GpuCommand) -> anyhow::Result<Outcome> {
    match command {
        GpuCommand::Info { json } => {
            let adapters = compute::gpu::adapters();
            if *json {
                println!("{}", serde_json::to_string_pretty(&adapters)?);
            } else if adapters.is_empty() {
                println!(
                    "No GPU adapter found. Spare looks for Vulkan, Metal and DX12 devices; on Linux \
                     without a GPU, Mesa's software Vulkan (mesa-vulkan-drivers) provides one."
                );
            } else {
                for a in &adapters {
                    let c = &a.class;
                    println!(
                        "[{}] {} ({}, {}, vendor {} device {}), driver {} {}",
                        a.index,
                        c.adapter,
                        c.backend,
                        c.device_type,
                        c.vendor,
                        c.device,
                        c.driver,
                        c.driver_info
                    );
                    println!(
                        "    storage buffer {} MiB, {} workgroups per dimension, {} invocations \
                         per workgroup, {} KiB workgroup memory",
                        a.max_storage_buffer_binding_size >> 20,
                        a.max_compute_workgroups_per_dimension,
                        a.max_compute_invocations_per_workgroup,
                        a.max_compute_workgroup_storage_size >> 10
                    );
                }
            }
            Ok(Outcome::Ok)
        }
        GpuCommand::Bench { adapter, json } => {
            let indices: Vec<Option<usize>> = match adapter {
                Some(i) => vec![Some(*i)],
                None => {
                    let all = compute::gpu::adapters();
                    if all.is_empty() {
                        bail!("no GPU adapter found: `spare gpu info` explains");
                    }
                    all.iter().map(|a| Some(a.index)).collect()
                }
            };
            // On a terminal, which adapter is being measured (each takes seconds).
            let terminal = !*json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let count = indices.len();
            for (i, index) in indices.into_iter().enumerate() {
                if terminal {
                    eprint!(
                        "\rmeasuring adapter {} of {count}: memory bandwidth, then FP32…",
                        i + 1
                    );
                }
                let measured =
                    compute::capability::measure(index, compute::capability::Sizes::FULL);
                if terminal {
                    eprint!("\r\x1b[2K");
                }
                let cap = measured?;
                if *json {
                    println!("{}", serde_json::to_string(&cap)?);
                } else {
                    println!(
                        "{} ({}): memory bandwidth {:.1} GB/s, FP32 {:.1} GFLOP/s",
                        cap.class.adapter, cap.class.backend, cap.bandwidth_gb_s, cap.fp32_gflop_s
                    );
                }
            }
            Ok(Outcome::Ok)
        }
    }
}

fn ledger_path(db: Option<&Path>, config: &Config) -> anyhow::Result<PathBuf> {
    match db {
        Some(path) => Ok(path.to_owned()),
        None => paths::ledger_file_of(config),
    }
}

/// Opens the ledger for reading. A missing default ledger is not an error (nothing
/// was earned yet); a missing file the owner named is.
/// The ledger to read, read-only; `None` when the default one does not exist yet
/// (said on stdout when `say` is set).
pub(super) fn open_ledger(
    db: Option<&Path>,
    config: &Config,
    say: bool,
) -> anyhow::Result<Option<Ledger>> {
    let named = db.is_some() || config.node.ledger.is_some();
    let path = ledger_path(db, config)?;
    if !named && !path.exists() {
        if say {
            println!(
                "No ledger yet at {}: this node has not earned anything so far.",
                path.display()
            );
        }
        return Ok(None);
    }
    Ok(Some(Ledger::open_read_only(&path)?))
}

/// Writes the ledger as CSV to `dest`, or to standard output for `-`.
fn export(ledger: &Ledger, dest: &Path) -> anyhow::Result<u64> {
    if dest == Path::new("-") {
        let stdout = std::io::stdout().lock();
        return Ok(ledger.export_csv(stdout)?);
    }
    node::ledger_view::export_csv_file(ledger, dest)
}
