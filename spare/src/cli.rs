//! The `spare` command: argument parsing and printing only; the work is done by the
//! rest of this crate and the ledger.
//!
//! Exit status: 0 on success, 1 when a command fails or a check finds a problem
//! (`ledger verify`, `config check`), 2 for a usage error.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{Local, NaiveDate, Offset as _};
use clap::{Parser, Subcommand, ValueEnum};
use ledger::Period;

use node::config::Config;
use node::identity::{self, KeyStore, Origin};
use node::logs::{self, LogLevel, LogTo};
use node::{earnings, paths};
use offline::{open_ledger, run_config, run_gpu, run_job, run_ledger};

mod offline;

/// Spare lends this computer's idle GPU time and spare bandwidth, and keeps a
/// verifiable ledger of what it earned.
#[derive(Debug, Parser)]
#[command(name = "spare", version)]
pub struct Cli {
    /// Config file to use [default: the platform config folder's config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Keep the node key in this file (mode 0600) instead of the OS keyring
    #[arg(long, global = true, value_name = "PATH")]
    key_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print this node's id (creating the node key on first run)
    Id {
        /// Print JSON: the id, and whether the key was just created and where it is kept
        #[arg(long)]
        json: bool,
    },
    /// Show what this node earned, by day, week or month
    Earnings {
        /// First local date to include, as YYYY-MM-DD
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        since: Option<NaiveDate>,
        /// Group by day, week (from Monday) or month
        #[arg(long, value_enum, default_value_t = PeriodArg::Day)]
        period: PeriodArg,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Ledger file to read [default: from the config, else the platform data folder]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Check or export the ledger
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Check, locate or print the config file
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check a GPU job manifest, or run it on this machine
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// List this machine's GPU adapters, or measure them
    Gpu {
        #[command(subcommand)]
        command: GpuCommand,
    },
    /// Print this node's ticket: its id and addresses, to give to relay clients and
    /// requesters (the running node's, when one runs)
    Ticket {
        /// Print JSON: the ticket, the node id and addresses in it, and where it came from
        #[arg(long)]
        json: bool,
    },
    /// Run the node without a GUI: lend the GPU and bandwidth when the policy allows,
    /// serve the control channel, log state changes
    Daemon {
        /// Demo mode: an in-process requester and relay clients send real work over
        /// loopback, recorded on the demo network (never as earnings); lending starts
        /// at once
        #[arg(long)]
        demo: bool,
        /// UDP address to listen on [default: all interfaces at relay.port]
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Show the running node's state per resource, with reasons and today's earnings
    Status {
        /// Print JSON (schema in node/STATUS.md)
        #[arg(long)]
        json: bool,
    },
    /// Pause lending: gpu, bandwidth or all [default: all], for a DURATION such as 1h,
    /// 30m, tomorrow or until-resumed [default: until-resumed]. Earned credit is kept
    Pause {
        /// gpu, bandwidth or all
        #[arg(default_value = "all")]
        target: node::Target,
        /// 1h, 30m, 2h30m, tomorrow or until-resumed
        #[arg(default_value = "until-resumed")]
        duration: node::PauseFor,
        /// Print the node's status afterwards as JSON (as `spare status --json`)
        #[arg(long)]
        json: bool,
    },
    /// Resume lending: gpu, bandwidth or all [default: all]
    Resume {
        /// gpu, bandwidth or all
        #[arg(default_value = "all")]
        target: node::Target,
        /// Print the node's status afterwards as JSON (as `spare status --json`)
        #[arg(long)]
        json: bool,
    },
    /// Why am I not earning? Check the keyring, GPU, node, endpoint, policy and quota
    Doctor {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Relay bandwidth: serve as a node, or use a node as a client
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
    /// Print the logs of the daemon, the tray app and the relay, oldest first
    Logs {
        /// Keep printing lines as they are written, until interrupted
        #[arg(long, short)]
        follow: bool,
        /// Only lines at this level or worse: error, warn, info, debug or trace
        #[arg(long)]
        level: Option<LogLevel>,
        /// How many of the newest lines to print
        #[arg(long, short = 'n', default_value_t = 200)]
        lines: usize,
        /// Print the log folder and stop
        #[arg(long)]
        path: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RelayCommand {
    /// Run a relay node and print its ticket (settings from the config's [relay])
    Serve {
        /// UDP address to listen on [default: all interfaces at relay.port]
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// An address to put in the ticket (repeatable) [default: the bound one]
        #[arg(long = "public", value_name = "ADDR")]
        public: Vec<SocketAddr>,
        /// Let clients reach this destination, as host:ports (repeatable), e.g.
        /// example.com:443 or *.example.org:80,443
        #[arg(long = "egress-allow", value_name = "RULE")]
        allow: Vec<String>,
        /// Let clients reach any public destination. Your IP address becomes theirs on
        /// the internet: only with care
        #[arg(long)]
        egress_open: bool,
        /// Price in micro-credits per GiB relayed [default: relay.price_per_gib]
        #[arg(long)]
        price: Option<u64>,
    },
    /// Run a local SOCKS5 proxy whose connections go through the node
    Connect {
        /// The node's ticket
        ticket: String,
        /// Where the local SOCKS5 proxy listens
        #[arg(long, default_value = "127.0.0.1:1080")]
        socks5: SocketAddr,
    },
    /// Accept peers through the node and forward them to a local TCP service
    Listen {
        /// The node's ticket
        ticket: String,
        /// The local service peers reach
        #[arg(long, value_name = "ADDR")]
        forward: SocketAddr,
    },
    /// Forward a local TCP port to a listening peer through the node
    Dial {
        /// The node's ticket
        ticket: String,
        /// The peer's node id (as `spare id` prints it)
        #[arg(long)]
        peer: String,
        /// The local address to accept connections on
        #[arg(long, value_name = "ADDR")]
        local: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Check a manifest on the CPU (naga); print OK or every problem, located
    Check {
        /// The job manifest (JSON)
        manifest: PathBuf,
        /// Print JSON: whether it is admitted, its size, and every problem, located
        #[arg(long)]
        json: bool,
    },
    /// Run a job here through a GPU worker; write one file per output and print the
    /// result as JSON
    RunLocal {
        /// The job manifest (JSON)
        manifest: PathBuf,
        /// Folder for the output files
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Adapter index from `spare gpu info` [default: the fastest]
        #[arg(long)]
        adapter: Option<usize>,
    },
    /// Send a job to a node and wait for its outputs; writes one file per output and
    /// prints the same JSON as run-local
    Submit {
        /// The node's ticket (`spare ticket` on that node)
        ticket: String,
        /// The job manifest (JSON)
        manifest: PathBuf,
        /// Folder for the output files
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Price to offer in micro-credits [default: what the node's rate card asks]
        #[arg(long)]
        price: Option<u64>,
        /// The network the order is for [default: the node's]
        #[arg(long)]
        network: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum GpuCommand {
    /// List the GPU adapters and their compute limits
    Info {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Measure memory bandwidth and FP32 throughput of each adapter
    Bench {
        /// Only this adapter
        #[arg(long)]
        adapter: Option<usize>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Recompute the hash chain and check every signature; exit 1 naming the first bad
    /// entry
    Verify {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Ledger file to check
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Write every entry, with its receipt and signature, to a file
    Export {
        /// CSV file to write (`-` for standard output)
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
        /// Ledger file to export
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config file [default: the one in use]; exit 1 listing every problem
    Check {
        /// The file to check
        path: Option<PathBuf>,
        /// Print JSON: the file, whether it exists and is valid, and every problem
        #[arg(long)]
        json: bool,
    },
    /// Print the documented example config (every key at its default)
    Example,
    /// Print where the config file is looked for
    Path,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PeriodArg {
    Day,
    Week,
    Month,
}

impl From<PeriodArg> for Period {
    fn from(p: PeriodArg) -> Period {
        match p {
            PeriodArg::Day => Period::Day,
            PeriodArg::Week => Period::Week,
            PeriodArg::Month => Period::Month,
        }
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{e}: use YYYY-MM-DD, for example 2026-11-01"))
}

/// What a command run came to, for the exit status.
enum Outcome {
    Ok,
    /// The command ran but found problems; they were already printed.
    Failed,
}

/// Runs the CLI with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Long-running commands log to their file in the OS log folder and to stderr (for
    // journald); the others print their answer, with warnings on stderr.
    let program = match &cli.command {
        Command::Daemon { .. } => Some("daemon"),
        Command::Relay { command } => Some(match command {
            RelayCommand::Serve { .. } => "relay-serve",
            RelayCommand::Connect { .. } => "relay-connect",
            RelayCommand::Listen { .. } => "relay-listen",
            RelayCommand::Dial { .. } => "relay-dial",
        }),
        _ => None,
    };
    let logging = match program {
        Some(program) => match logs::init(LogTo {
            program,
            folder: None,
            stderr: true,
        }) {
            Ok(file) => file.is_some(),
            Err(e) => {
                eprintln!("warning: {e:#}; logging to stderr only");
                logs::init_stderr();
                false
            }
        },
        None => {
            logs::init_stderr();
            false
        }
    };
    let json = cli.json();
    let result = run(cli);
    if json && let Err(e) = &result {
        // `--json` means JSON on stdout in every case; the sentence goes to stderr too.
        println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
    }
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        // A program that logs to a file says why it stopped there too (a service
        // manager may keep no stderr): the log line goes to stderr as well.
        Err(e) if logging => {
            tracing::error!("stopped: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The running node's status, for people or as JSON.
fn print_status(json: bool) -> anyhow::Result<Outcome> {
    let value = control_request(&node::control::Request::Status)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let status: node::Status = serde_json::from_value(value)?;
        print!("{}", crate::daemon::render_status(&status));
    }
    Ok(Outcome::Ok)
}

impl Cli {
    /// Whether the command was asked for JSON (then even a failure is JSON on stdout).
    fn json(&self) -> bool {
        match &self.command {
            Command::Id { json }
            | Command::Earnings { json, .. }
            | Command::Ticket { json }
            | Command::Status { json }
            | Command::Pause { json, .. }
            | Command::Resume { json, .. }
            | Command::Doctor { json } => *json,
            Command::Ledger {
                command: LedgerCommand::Verify { json, .. },
            }
            | Command::Config {
                command: ConfigCommand::Check { json, .. },
            }
            | Command::Job {
                command: JobCommand::Check { json, .. },
            } => *json,
            _ => false,
        }
    }
}

/// The config file in use and whether the owner named it.
fn config_path(cli: &Cli) -> anyhow::Result<(PathBuf, bool)> {
    match &cli.config {
        Some(path) => Ok((path.clone(), true)),
        None => Ok((paths::config_file()?, false)),
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let (path, explicit) = config_path(cli)?;
    Ok(Config::load_or_default(&path, explicit)?)
}

fn key_store(cli: &Cli, config: &Config) -> KeyStore {
    match cli.key_file.clone() {
        Some(path) => KeyStore::File(path),
        None => KeyStore::for_config(config),
    }
}

fn control_request(request: &node::control::Request) -> anyhow::Result<serde_json::Value> {
    node::control::request(&node::control::socket_path(&paths::data_dir()?), request)
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match &cli.command {
        Command::Id { json } => {
            let config = load_config(&cli)?;
            let store = key_store(&cli, &config);
            let (identity, origin) = identity::load_or_create(&store)?;
            if *json {
                let answer = serde_json::json!({
                    "node_id": identity.id().to_string(),
                    "created": origin == Origin::Created,
                    "key_store": store.to_string(),
                });
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(Outcome::Ok);
            }
            if origin == Origin::Created {
                eprintln!("created a new node key in {store}");
            }
            println!("{}", identity.id());
            Ok(Outcome::Ok)
        }
        Command::Earnings {
            since,
            period,
            json,
            db,
        } => {
            let config = load_config(&cli)?;
            let offset = Local::now().offset().fix();
            let Some(ledger) = open_ledger(db.as_deref(), &config, !*json)? else {
                if *json {
                    // No ledger yet: nothing earned, said in the same shape.
                    let path = node::paths::ledger_file_of(&config)?;
                    let report = earnings::nothing_yet(&path, (*period).into(), *since, offset);
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
                return Ok(Outcome::Ok);
            };
            let report = earnings::report(&ledger, (*period).into(), *since, offset)
                .context("reading earnings from the ledger")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", earnings::render_text(&report));
            }
            Ok(Outcome::Ok)
        }
        Command::Ticket { json } => {
            // The running node's ticket names the port it really listens on.
            let (ticket, source) = match control_request(&node::control::Request::Ticket) {
                Ok(serde_json::Value::String(ticket)) => (ticket, "running node"),
                _ => {
                    let config = load_config(&cli)?;
                    let (identity, _) = identity::load_or_create(&key_store(&cli, &config))?;
                    let ticket = node::relay_settings::ticket(identity.signing_key(), &config)?;
                    (ticket.to_string(), "config")
                }
            };
            if *json {
                let parsed: relay::ticket::Ticket = ticket.parse()?;
                let answer = serde_json::json!({
                    "ticket": ticket,
                    "node_id": parsed.node.to_string(),
                    "addresses": parsed.addresses,
                    "from": source,
                });
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                println!("{ticket}");
            }
            Ok(Outcome::Ok)
        }
        Command::Daemon { demo, bind } => {
            let config = load_config(&cli)?;
            let data_dir = paths::data_dir()?;
            let store = key_store(&cli, &config);
            let identity = if *demo {
                // A demo needs no keyring: its credits are worthless.
                let (identity, own_key) = identity::load_or_create_for_demo(&store, &data_dir)?;
                if let Some(why) = own_key {
                    tracing::warn!("{why}");
                }
                identity
            } else {
                let (identity, origin) = identity::load_or_create(&store)?;
                if origin == Origin::Created {
                    eprintln!("created a new node key: node {}", identity.id());
                }
                identity
            };
            let mut options =
                node::NodeOptions::new(config, identity.signing_key().clone(), data_dir);
            options.demo = *demo;
            options.bind = *bind;
            crate::daemon::run(options)?;
            Ok(Outcome::Ok)
        }
        Command::Status { json } => {
            let value = control_request(&node::control::Request::Status)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let status: node::Status = serde_json::from_value(value)?;
                print!("{}", crate::daemon::render_status(&status));
            }
            Ok(Outcome::Ok)
        }
        Command::Pause {
            target,
            duration,
            json,
        } => {
            control_request(&node::control::Request::Pause {
                target: *target,
                how_long: duration.clone(),
            })?;
            print_status(*json)
        }
        Command::Resume { target, json } => {
            control_request(&node::control::Request::Resume { target: *target })?;
            print_status(*json)
        }
        Command::Logs {
            follow,
            level,
            lines,
            path,
        } => {
            let folder = paths::log_dir()?;
            if *path {
                println!("{}", folder.display());
            } else {
                crate::logs::print(&folder, *level, *lines, *follow)?;
            }
            Ok(Outcome::Ok)
        }
        Command::Doctor { json } => run_doctor(&cli, *json),
        Command::Relay { command } => run_relay(&cli, command),
        Command::Ledger { command } => run_ledger(&cli, command),
        Command::Config { command } => run_config(&cli, command),
        Command::Job { command } => run_job(&cli, command),
        Command::Gpu { command } => run_gpu(command),
    }
}

/// `spare doctor`.
fn run_doctor(cli: &Cli, json: bool) -> anyhow::Result<Outcome> {
    let loaded = load_config(cli);
    let config = loaded.as_ref().ok().cloned().unwrap_or_default();
    let checks = node::doctor::run(
        loaded.as_ref().map_err(|e| format!("{e:#}")),
        &key_store(cli, &config),
        &paths::data_dir()?,
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print!("{}", crate::doctor::render(&checks));
    }
    Ok(if checks.iter().all(|c| c.ok) {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// `spare relay …`.
fn run_relay(cli: &Cli, command: &RelayCommand) -> anyhow::Result<Outcome> {
    let config = load_config(cli)?;
    let (identity, _) = identity::load_or_create(&key_store(cli, &config))?;
    let key = identity.signing_key().clone();
    match command {
        RelayCommand::Serve {
            bind,
            public,
            allow,
            egress_open,
            price,
        } => crate::relaying::serve(
            key,
            &config,
            crate::relaying::ServeOverrides {
                bind: *bind,
                public: public.clone(),
                allow: allow.clone(),
                open: *egress_open,
                price_per_gib: *price,
            },
        )?,
        RelayCommand::Connect { ticket, socks5 } => {
            crate::relaying::connect_socks5(ticket, key, *socks5)?;
        }
        RelayCommand::Listen { ticket, forward } => {
            crate::relaying::listen_forward(ticket, key, *forward)?;
        }
        RelayCommand::Dial {
            ticket,
            peer,
            local,
        } => crate::relaying::dial_forward(ticket, key, peer, *local)?,
    }
    Ok(Outcome::Ok)
}
