//! The node: the lending policy driving the relay and the GPU runner, the job
//! service, the ledger writer and the control channel, in one process.
//!
//! [`Node`] is the agent API: `spare daemon` runs one headless and serves it over the
//! control channel (`control`), and the tray app runs one in-process and calls the same
//! methods. It owns the node's single QUIC endpoint: relay clients and GPU job
//! requesters share its port, told apart by ALPN.
//!
//! Threads: a **policy thread** reads the signals (input idle time every 50 ms while
//! the GPU is lent, every second otherwise; the slower machine readings every few
//! seconds), feeds the sans-IO policy and applies its decisions at once: the GPU lane
//! yields, the relay stops. The **GPU lane** thread owns the runner's supervisor. The
//! rest (endpoint, job service, ledger writer, control channel, demo) are tokio tasks.

pub mod control;
pub mod demo;
pub mod gpu_lane;
mod jobs;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{Local, NaiveTime};
use compute::slicing::Budget;
use compute::supervisor::RunnerConfig;
use ed25519_dalek::SigningKey;
use ledger::{Ledger, PartyId, Period};
use relay::node::{NodeConfig, RelayNode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, EgressMode};
use crate::job_service::{self, OrderTerms, RateCard};
use crate::lending::{Decision, LendingPolicy, Limits, PauseUntil, Resource, Sample};
use crate::signals::{self, InputIdle, Machine, MachineReading, Schedule};
use gpu_lane::{GpuLane, LaneStatus};

/// The network real work is recorded on.
pub const NETWORK: &str = "spare";

/// For the first minutes after the owner leaves, slices stay short: they may be back.
const MAY_RETURN: Duration = Duration::from_secs(120);

/// How a node is started.
pub struct NodeOptions {
    /// The configuration.
    pub config: Config,
    /// The node's key.
    pub key: SigningKey,
    /// Where the node keeps its files (ledger by default, lock, control socket,
    /// pauses, relay checkpoints).
    pub data_dir: PathBuf,
    /// Demo mode: an in-process requester and relay clients send real work, recorded
    /// on the `demo` network; lending starts without waiting for the owner to leave.
    pub demo: bool,
    /// The UDP address to listen on (default: every interface at `relay.port`).
    pub bind: Option<SocketAddr>,
    /// The input-idle reader (default: the best one for this session).
    pub input: Option<Box<dyn InputIdle>>,
    /// Policy limits instead of the config's (tests use short idle thresholds).
    pub limits: Option<Limits>,
    /// Let relay egress reach loopback: tests only.
    pub allow_loopback_for_tests: bool,
    /// How to start GPU workers (default: this executable's hidden worker mode).
    pub runner: Option<RunnerConfig>,
}

impl NodeOptions {
    /// Options with every default for `config` and `key`, keeping files in `data_dir`.
    pub fn new(config: Config, key: SigningKey, data_dir: PathBuf) -> Self {
        Self {
            config,
            key,
            data_dir,
            demo: false,
            bind: None,
            input: None,
            limits: None,
            allow_loopback_for_tests: false,
            runner: None,
        }
    }
}

/// How long a pause lasts, as the owner asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum PauseFor {
    /// A while.
    Seconds(u64),
    /// Until tomorrow morning (06:00 local time).
    Tomorrow,
    /// Until the owner resumes.
    UntilResumed,
}

impl std::str::FromStr for PauseFor {
    type Err = String;

    /// `1h`, `30m`, `90s`, `2h30m`, `tomorrow`, `until-resumed`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "tomorrow" => return Ok(PauseFor::Tomorrow),
            "until-resumed" | "forever" | "indefinitely" => return Ok(PauseFor::UntilResumed),
            _ => {}
        }
        let bad = || {
            format!(
                "{text:?} is not a duration: use e.g. 1h, 30m, 2h30m, tomorrow or until-resumed"
            )
        };
        let mut total = 0u64;
        let mut number = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            total = total.saturating_add(n.saturating_mul(unit));
            number.clear();
        }
        if !number.is_empty() || total == 0 || total > 30 * 86_400 {
            return Err(if total > 30 * 86_400 {
                "a timed pause lasts at most 30 days: use until-resumed for longer".into()
            } else {
                bad()
            });
        }
        Ok(PauseFor::Seconds(total))
    }
}

/// Which resources a command is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[ts(rename = "PauseTarget")]
pub enum Target {
    /// GPU time.
    Gpu,
    /// Bandwidth.
    Bandwidth,
    /// Both.
    All,
}

impl Target {
    /// For people: `GPU`, `bandwidth`, `GPU and bandwidth`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Gpu => "GPU",
            Target::Bandwidth => "bandwidth",
            Target::All => "GPU and bandwidth",
        }
    }

    fn resource(self) -> Option<Resource> {
        match self {
            Target::Gpu => Some(Resource::Gpu),
            Target::Bandwidth => Some(Resource::Bandwidth),
            Target::All => None,
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "gpu" => Ok(Target::Gpu),
            "bandwidth" | "relay" => Ok(Target::Bandwidth),
            "all" => Ok(Target::All),
            other => Err(format!(
                "{other:?} is not a resource: use gpu, bandwidth or all"
            )),
        }
    }
}

/// What a resource is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[ts(rename = "LendingState")]
pub enum State {
    /// Lent now.
    Lending,
    /// Not now; starts by itself when the reason passes.
    #[default]
    Waiting,
    /// Stopped until its cause changes.
    Paused,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Lending => "lending",
            State::Waiting => "waiting",
            State::Paused => "paused",
        })
    }
}

/// One resource's state, as `spare status --json` reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ResourceState {
    /// `lending`, `waiting` or `paused`.
    pub state: State,
    /// Why not lending, in plain words (`null` while lending).
    pub reason: Option<String>,
    /// The owner's pause: until when, for people (`"18:00"`, `"you resume"`).
    pub paused_by_you_until: Option<String>,
}

impl ResourceState {
    fn of(decision: &Decision, pause: Option<&PauseUntil>) -> Self {
        let (state, reason) = match decision {
            Decision::Lending => (State::Lending, None),
            Decision::Waiting { reason } => (State::Waiting, Some(reason.clone())),
            Decision::Paused { reason } => (State::Paused, Some(reason.clone())),
        };
        Self {
            state,
            reason,
            paused_by_you_until: pause.map(|p| match p {
                PauseUntil::Time(_, label) => label.clone(),
                PauseUntil::Resumed => "you resume".into(),
            }),
        }
    }
}

/// The GPU side of the status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct GpuStatus {
    /// State and reason.
    #[serde(flatten)]
    pub state: ResourceState,
    /// Jobs waiting.
    pub queued_jobs: usize,
    /// A job is on the GPU now.
    pub running: bool,
    /// A job stopped part-way, waiting to resume.
    pub yielded: bool,
    /// Jobs finished since the node started.
    pub jobs_done: u64,
    /// Jobs failed since the node started.
    pub jobs_failed: u64,
    /// Share of the last minute the GPU was lent, in percent.
    pub busy_percent: f64,
    /// The GPU jobs run on, once a job has run.
    pub adapter: Option<String>,
    /// Why the runner stopped itself (a worker that keeps failing), if it did.
    pub runner_stopped: Option<String>,
    /// Price asked, micro-credits per million workgroups.
    pub price_per_million_workgroups: u64,
    /// Earned today (local time), micro-credits; demo work excluded.
    pub earned_today_micro: i64,
    /// Demo credits today (not earnings).
    pub demo_today_micro: i64,
}

/// The bandwidth side of the status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct BandwidthStatus {
    /// State and reason.
    #[serde(flatten)]
    pub state: ResourceState,
    /// Relay clients connected.
    pub clients: usize,
    /// Bytes per second relayed client → destination, over the last seconds.
    pub up_bytes_per_s: u64,
    /// Bytes per second relayed back.
    pub down_bytes_per_s: u64,
    /// Bytes relayed up since the node started.
    pub relayed_up_bytes: u64,
    /// Bytes relayed down since the node started.
    pub relayed_down_bytes: u64,
    /// Share of the tighter quota used, in percent (`null`: no quota).
    pub quota_percent: Option<u32>,
    /// `off`, `allowlist` or `open`.
    pub egress: EgressMode,
    /// Price asked, micro-credits per GiB.
    pub price_per_gib: u64,
    /// Earned today (local time), micro-credits; demo work excluded.
    pub earned_today_micro: i64,
    /// Demo credits today (not earnings).
    pub demo_today_micro: i64,
}

/// What the signals read last.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SignalsStatus {
    /// The input-idle reader in use.
    pub input_backend: String,
    /// Seconds since the last keyboard or mouse input.
    pub input_idle_s: Option<u64>,
    /// Why input idle time could not be read.
    pub input_error: Option<String>,
    /// No local user session: lending does not wait for input.
    pub headless: bool,
    /// Battery, games, GPU temperature, CPU and memory.
    #[serde(flatten)]
    pub machine: MachineReading,
    /// Whether the schedule allows lending now (`null`: no schedule).
    pub schedule_allows: Option<bool>,
}

/// Everything `spare status --json` reports (schema in `agent/STATUS.md`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Status {
    /// The schema version of this object.
    pub schema: u32,
    /// This node's id, hex.
    pub node_id: String,
    /// `spare`, or `demo` in demo mode.
    pub network: String,
    /// Demo mode.
    pub demo: bool,
    /// The UDP address the endpoint listens on.
    pub listening: String,
    /// The node's ticket, for relay clients and requesters.
    pub ticket: String,
    /// The GPU.
    pub gpu: GpuStatus,
    /// Bandwidth.
    pub bandwidth: BandwidthStatus,
    /// The latest readings.
    pub signals: SignalsStatus,
    /// Earned today over both resources, micro-credits (demo excluded).
    pub earned_today_micro: i64,
    /// Earned all time, micro-credits (demo excluded).
    pub earned_all_time_micro: i64,
    /// The ledger file.
    pub ledger: String,
}

/// Commands the policy thread takes.
enum Command {
    Pause(Target, PauseFor, std_mpsc::Sender<()>),
    Resume(Target, std_mpsc::Sender<()>),
    /// Answered after the next evaluation is published.
    Sync(std_mpsc::Sender<()>),
    /// Evaluate now (a job started on the GPU).
    Wake,
    Stop,
}

/// What the policy thread publishes.
#[derive(Clone, Default, PartialEq)]
struct Snapshot {
    gpu: ResourceState,
    bandwidth: ResourceState,
    busy_percent: f64,
    up_rate: u64,
    down_rate: u64,
    signals: SignalsStatus,
}

struct Inner {
    options_summary: Summary,
    relay: RelayNode,
    lane: Arc<GpuLane>,
    snapshot: Mutex<Snapshot>,
    commands: Mutex<std_mpsc::Sender<Command>>,
    changes: watch::Sender<u64>,
    ledger_path: PathBuf,
    quota_file: PathBuf,
    /// Asks the ledger writer to answer once it has written everything sent so far.
    flush: mpsc::UnboundedSender<std_mpsc::Sender<()>>,
    /// Entries the ledger writer has recorded (earnings shown change with it).
    recorded: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Summary {
    node_id: String,
    network: String,
    demo: bool,
    ticket: String,
    listening: String,
    egress: EgressMode,
    price_per_gib: u64,
    price_per_million_workgroups: u64,
}

/// A running node. Dropping it stops everything.
pub struct Node {
    inner: Arc<Inner>,
    policy_thread: Option<std::thread::JoinHandle<()>>,
    control_socket: Option<PathBuf>,
    /// The node's tasks (ledger writer, control channel, demo), stopped with it, so a
    /// node can start again in the same process.
    tasks: Vec<tokio::task::AbortHandle>,
    /// The data folder's lock, released when the node stops.
    lock: Option<File>,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another node uses the same data folder.
    #[error(
        "another Spare node is already running with the data folder {dir}{pid}: stop it first \
         (or ask it with `spare status`), or give this one another data folder"
    )]
    AlreadyRunning {
        /// The data folder.
        dir: PathBuf,
        /// The other node's process id, as it wrote it.
        pid: String,
    },
    /// Anything else, with context.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn lock(m: &Mutex<Snapshot>) -> MutexGuard<'_, Snapshot> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes the data folder's lock: one node per data folder.
fn take_lock(dir: &Path) -> Result<File, StartError> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = dir.join("node.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if file.try_lock().is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(StartError::AlreadyRunning {
            dir: dir.to_owned(),
            pid: if pid.is_empty() {
                String::new()
            } else {
                format!(" (process {pid})")
            },
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

/// Creates the data folder, private to its owner.
fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// The relay's configuration from the node's.
fn relay_config(options: &NodeOptions, network: &str) -> anyhow::Result<NodeConfig> {
    let config = &options.config;
    let bind = options
        .bind
        .unwrap_or_else(|| SocketAddr::from(([0u8; 4], config.relay.port)));
    let mut relay = crate::relaying::node_config(
        options.key.clone(),
        config,
        bind,
        network,
        config.relay.egress,
        &config.relay.allow,
    )?;
    if options.demo {
        // Demo traffic pays demo credits, promising often, so the ledger and charts fill.
        if relay.price_per_gib == 0 {
            relay.price_per_gib = demo::DEMO_PRICE_PER_GIB;
        }
        relay.promise_margin = demo::DEMO_PROMISE_MARGIN;
    }
    if let Some(policy) = &mut relay.egress {
        policy.allow_loopback_for_tests = options.allow_loopback_for_tests;
    }
    Ok(relay)
}

/// The ledger a node with `config` and `data_dir` writes: `node.ledger`, else
/// `ledger.sqlite3` in the data folder.
pub fn ledger_path(config: &Config, data_dir: &Path) -> PathBuf {
    config
        .node
        .ledger
        .clone()
        .unwrap_or_else(|| data_dir.join("ledger.sqlite3"))
}

impl Node {
    /// Starts the node on the current tokio runtime.
    pub async fn start(mut options: NodeOptions) -> Result<Node, StartError> {
        make_private_dir(&options.data_dir)?;
        let lock = take_lock(&options.data_dir)?;
        let config = options.config.clone();
        let schedule = Schedule::parse(&config.lending.schedule)
            .map_err(|e| anyhow::anyhow!("lending.schedule: {e}"))?;
        let ledger_path = ledger_path(&config, &options.data_dir);
        // Opening it now reports a damaged or newer ledger before anything runs.
        Ledger::open(&ledger_path)
            .with_context(|| format!("opening the ledger {}", ledger_path.display()))?;
        let checkpoints = options.data_dir.join("relay-sessions");
        crate::relaying::recover_sessions(&checkpoints, &ledger_path);

        let network = if options.demo { "demo" } else { NETWORK };
        let node_party = PartyId::of(&options.key);
        let caps = crate::jobs::caps(&config);
        let mut runner = match options.runner.take() {
            Some(runner) => runner,
            None => RunnerConfig::current_exe().context("finding the spare executable")?,
        };
        runner.caps = caps;
        if runner.pipeline_cache_dir.is_none() {
            runner.pipeline_cache_dir = Some(options.data_dir.join("pipelines"));
        }
        let lane = GpuLane::start(runner).context("starting the GPU lane")?;

        // The ledger writer: finished job orders and relay sessions.
        let (finished_tx, mut finished) = mpsc::unbounded_channel::<ledger::VerifiedReceipt>();
        let (sessions_tx, mut sessions) = mpsc::unbounded_channel();
        // Flush requests are answered once everything sent before them is written.
        let (flush_tx, mut flushes) = mpsc::unbounded_channel::<std_mpsc::Sender<()>>();
        let writer_ledger = ledger_path.clone();
        let writer_checkpoints = checkpoints.clone();
        let recorded = Arc::new(AtomicU64::new(0));
        let writer_recorded = recorded.clone();
        let writer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    Some(order) = finished.recv() => {
                        match Ledger::open(&writer_ledger).and_then(|mut l| l.append(&order)) {
                            Ok(_) => tracing_line(&format!(
                                "GPU job recorded: {} µcredits on {}",
                                order.receipt().amount.0,
                                order.receipt().network
                            )),
                            Err(e) => tracing_line(&format!("cannot record a GPU job: {e:#}")),
                        }
                        writer_recorded.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(record) = sessions.recv() => {
                        crate::relaying::record_session(&writer_checkpoints, &writer_ledger, record);
                        writer_recorded.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(done) = flushes.recv() => {
                        let _ = done.send(());
                    }
                    else => return,
                }
            }
        });

        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let mut relay_config = relay_config(&options, network)?;
        let quota_file = options.data_dir.join("quota.json");
        relay_config.quota_used = restore_quota(&quota_file);
        relay_config
            .services
            .push((job_service::ALPN.to_vec(), jobs_tx));
        relay_config.sessions = Some(sessions_tx);
        let price_per_gib = relay_config.price_per_gib;
        let relay = RelayNode::start(relay_config).context("starting the node's endpoint")?;
        let listening = relay
            .local_addr()
            .context("reading the endpoint's address")?;
        let ticket_addresses = if !listening.ip().is_unspecified() {
            vec![listening]
        } else {
            crate::relaying::ticket_addresses(&config, listening.port())?
        };
        let ticket = relay
            .ticket(ticket_addresses)
            .context("a ticket holds 1 to 8 addresses with non-zero ports")?;
        // Starts stopped; the policy thread opens it when bandwidth may be lent.
        relay.set_stopped(Some("starting".into()));

        let waiting_for = Arc::new(Mutex::new(Some("starting".to_owned())));
        let service = Arc::new(jobs::JobService {
            terms: OrderTerms {
                node: node_party,
                rates: RateCard {
                    network: network.to_owned(),
                    price_per_million_workgroups: config.gpu.price_per_million_workgroups,
                    max_job_bytes: caps.total_buffer_bytes,
                },
            },
            caps,
            lane: lane.clone(),
            waiting_for: waiting_for.clone(),
            gpu_disabled: !config.gpu.enabled,
            seen: Mutex::new(Default::default()),
            finished: finished_tx,
        });
        tokio::spawn(service.serve(jobs_rx));

        let (commands_tx, commands_rx) = std_mpsc::channel();
        let waker = Mutex::new(commands_tx.clone());
        lane.on_start(Box::new(move || {
            if let Ok(commands) = waker.lock() {
                let _ = commands.send(Command::Wake);
            }
        }));
        let (changes, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            options_summary: Summary {
                node_id: node_party.to_string(),
                network: network.to_owned(),
                demo: options.demo,
                ticket: ticket.to_string(),
                listening: listening.to_string(),
                egress: config.relay.egress,
                price_per_gib,
                price_per_million_workgroups: config.gpu.price_per_million_workgroups,
            },
            relay,
            lane,
            snapshot: Mutex::new(Snapshot::default()),
            commands: Mutex::new(commands_tx),
            changes,
            recorded,
            ledger_path,
            quota_file: quota_file.clone(),
            flush: flush_tx,
        });

        let mut limits = options
            .limits
            .take()
            .unwrap_or_else(|| Limits::from_config(&config));
        if options.demo {
            // The demo shows lending now, not after the owner leaves.
            limits.idle_threshold = Duration::ZERO;
        }
        let mut policy = LendingPolicy::new(limits);
        let pauses_file = options.data_dir.join("pauses.json");
        restore_pauses(&pauses_file, &mut policy);
        let input = options.input.take().unwrap_or_else(signals::input_idle);
        let machine = Machine::new(config.lending.exclusive_apps.clone());
        let thread_inner = inner.clone();
        let policy_thread = std::thread::Builder::new()
            .name("policy".into())
            .spawn(move || {
                PolicyLoop {
                    inner: thread_inner,
                    policy,
                    input,
                    machine,
                    schedule,
                    pauses_file,
                    quota_file,
                    waiting_for,
                }
                .run(commands_rx)
            })
            .context("starting the policy thread")?;

        let mut node = Node {
            inner,
            policy_thread: Some(policy_thread),
            control_socket: None,
            tasks: vec![writer.abort_handle()],
            lock: Some(lock),
        };
        // The first decisions are in force before anyone is told the node runs.
        let (synced, first) = std_mpsc::channel();
        node.handle().send(Command::Sync(synced));
        let _ =
            tokio::task::spawn_blocking(move || first.recv_timeout(Duration::from_secs(10))).await;
        if options.demo {
            node.tasks
                .extend(demo::start(ticket.node, listening, network));
        }
        Ok(node)
    }

    /// Serves the control channel at `data_dir` (see `control`).
    pub fn serve_control(&mut self, data_dir: &Path) -> anyhow::Result<()> {
        let path = control::socket_path(data_dir);
        self.tasks.push(control::serve(self.handle(), &path)?);
        self.control_socket = Some(path);
        Ok(())
    }

    /// A cheap handle for tasks that serve the API.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle {
            inner: self.inner.clone(),
        }
    }

    /// Stops the node: running jobs are stopped and refused, relay sessions end (and
    /// are recorded), the endpoint closes.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Ok(commands) = self.inner.commands.lock() {
            let _ = commands.send(Command::Stop);
        }
        self.inner.lane.close();
        self.inner
            .relay
            .set_stopped(Some("the node is stopping".into()));
        if let Some(thread) = self.policy_thread.take() {
            let _ = thread.join();
        }
        // Relay sessions end with a last promise: wait for them to close and for the
        // ledger writer to record it (bounded: stopping must not hang).
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.inner.relay.clients() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (done, flushed) = std_mpsc::channel();
        if self.inner.flush.send(done).is_ok() {
            let _ = flushed.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(used) = self.inner.relay.quota_used() {
            save_quota(&self.inner.quota_file, used);
        }
        if let Some(path) = self.control_socket.take() {
            let _ = std::fs::remove_file(path);
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        // Nothing is left to write: another node may use the folder now. The endpoint
        // closes when the last handle goes (the job service tells requesters the node
        // stopped until then), and the port is free once its connections have drained.
        self.lock = None;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The agent API, callable from any task or thread while the node runs.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

impl NodeHandle {
    /// The node's state now, with today's earnings from the ledger.
    pub fn status(&self) -> Status {
        let inner = &self.inner;
        let s = &inner.options_summary;
        let snapshot = lock(&inner.snapshot).clone();
        let lane = inner.lane.status();
        let (up, down) = inner.relay.relayed();
        let earnings = today(&inner.ledger_path);
        Status {
            schema: 1,
            node_id: s.node_id.clone(),
            network: s.network.clone(),
            demo: s.demo,
            listening: s.listening.clone(),
            ticket: s.ticket.clone(),
            gpu: GpuStatus {
                state: snapshot.gpu,
                queued_jobs: lane.queued,
                running: lane.running,
                yielded: lane.yielded,
                jobs_done: lane.done,
                jobs_failed: lane.failed,
                busy_percent: (snapshot.busy_percent * 10.0).round() / 10.0,
                adapter: lane.adapter,
                runner_stopped: lane.stopped,
                price_per_million_workgroups: s.price_per_million_workgroups,
                earned_today_micro: earnings.gpu,
                demo_today_micro: earnings.demo_gpu,
            },
            bandwidth: BandwidthStatus {
                state: snapshot.bandwidth,
                clients: inner.relay.clients(),
                up_bytes_per_s: snapshot.up_rate,
                down_bytes_per_s: snapshot.down_rate,
                relayed_up_bytes: up,
                relayed_down_bytes: down,
                quota_percent: inner.relay.quota_percent(),
                egress: s.egress,
                price_per_gib: s.price_per_gib,
                earned_today_micro: earnings.bandwidth,
                demo_today_micro: earnings.demo_bandwidth,
            },
            signals: snapshot.signals,
            earned_today_micro: earnings.gpu + earnings.bandwidth + earnings.adjustments,
            earned_all_time_micro: earnings.all_time,
            ledger: inner.ledger_path.display().to_string(),
        }
    }

    /// Pauses lending of `target` for `how_long`. Credit already earned stays: a job
    /// in progress waits in the worker; relay sessions end and are recorded.
    /// Returns once the new state is in force (and in `status`).
    pub fn pause(&self, target: Target, how_long: PauseFor) {
        let (done, applied) = std_mpsc::channel();
        self.send(Command::Pause(target, how_long, done));
        let _ = applied.recv_timeout(Duration::from_secs(5));
    }

    /// Ends the owner's pause of `target`.
    pub fn resume(&self, target: Target) {
        let (done, applied) = std_mpsc::channel();
        self.send(Command::Resume(target, done));
        let _ = applied.recv_timeout(Duration::from_secs(5));
    }

    /// The node's ticket.
    pub fn ticket(&self) -> String {
        self.inner.options_summary.ticket.clone()
    }

    /// A receiver that changes whenever the state shown to the owner changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// When the GPU lane last finished yielding (benchmarks).
    pub fn last_yield(&self) -> Option<Instant> {
        self.inner.lane.last_yield()
    }

    fn send(&self, command: Command) {
        if let Ok(commands) = self.inner.commands.lock() {
            let _ = commands.send(command);
        }
    }
}

/// Today's credits by resource.
#[derive(Default)]
struct Today {
    gpu: i64,
    bandwidth: i64,
    adjustments: i64,
    demo_gpu: i64,
    demo_bandwidth: i64,
    all_time: i64,
}

fn today(ledger_path: &Path) -> Today {
    let Ok(ledger) = Ledger::open_existing(ledger_path) else {
        return Today::default();
    };
    let offset = *Local::now().offset();
    let date = Local::now().date_naive();
    let mut t = Today::default();
    if let Ok(rows) = ledger.earnings(Period::Day, Some(date), None, offset) {
        for row in rows {
            let demo = row.network.is_demo();
            match (row.kind, demo) {
                (ledger::EntryKind::GpuJob, false) => t.gpu += row.amount.0,
                (ledger::EntryKind::GpuJob, true) => t.demo_gpu += row.amount.0,
                (ledger::EntryKind::RelaySession, false) => t.bandwidth += row.amount.0,
                (ledger::EntryKind::RelaySession, true) => t.demo_bandwidth += row.amount.0,
                (ledger::EntryKind::Adjustment, false) => t.adjustments += row.amount.0,
                _ => {}
            }
        }
    }
    if let Ok(totals) = ledger.totals() {
        t.all_time = totals
            .iter()
            .filter(|total| !total.network.is_demo())
            .filter(|total| total.kind != ledger::EntryKind::Payout)
            .map(|total| total.amount.0)
            .sum();
    }
    t
}

/// One line on the node's log (stderr), with the local time.
pub fn tracing_line(message: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{} {message}", Local::now().format("%Y-%m-%d %H:%M:%S"));
    }
}

/// Pauses as saved: wall-clock times, so they survive a restart.
#[derive(Default, Serialize, Deserialize)]
struct SavedPauses {
    gpu: Option<SavedPause>,
    bandwidth: Option<SavedPause>,
}

#[derive(Serialize, Deserialize)]
struct SavedPause {
    /// Unix milliseconds; `None`: until resumed.
    until_ms: Option<u64>,
    label: String,
}

fn restore_pauses(file: &Path, policy: &mut LendingPolicy) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let Ok(saved) = serde_json::from_str::<SavedPauses>(&text) else {
        tracing_line(&format!("ignoring unreadable {}", file.display()));
        return;
    };
    let now_ms = job_service::now_ms();
    for (resource, pause) in [
        (Resource::Gpu, saved.gpu),
        (Resource::Bandwidth, saved.bandwidth),
    ] {
        let Some(pause) = pause else { continue };
        let until = match pause.until_ms {
            None => PauseUntil::Resumed,
            Some(ms) if ms <= now_ms => continue,
            Some(ms) => PauseUntil::Time(
                Instant::now() + Duration::from_millis(ms - now_ms),
                pause.label,
            ),
        };
        policy.pause(Some(resource), until);
    }
}

fn save_pauses(file: &Path, policy: &LendingPolicy) {
    let now = Instant::now();
    let now_ms = job_service::now_ms();
    let saved = |resource| {
        policy.paused(resource).map(|p| match p {
            PauseUntil::Resumed => SavedPause {
                until_ms: None,
                label: "you resume".into(),
            },
            PauseUntil::Time(at, label) => SavedPause {
                until_ms: Some(now_ms + at.saturating_duration_since(now).as_millis() as u64),
                label: label.clone(),
            },
        })
    };
    let pauses = SavedPauses {
        gpu: saved(Resource::Gpu),
        bandwidth: saved(Resource::Bandwidth),
    };
    let partial = file.with_extension("partial");
    let written = serde_json::to_vec(&pauses)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&partial, json))
        .and_then(|()| std::fs::rename(&partial, file));
    if let Err(e) = written {
        tracing_line(&format!("cannot save pauses to {}: {e}", file.display()));
    }
}

/// The quotas' use as saved: the UTC day and month it was counted in.
#[derive(Serialize, Deserialize)]
struct SavedQuota {
    day: i64,
    month: i64,
    day_used: u64,
    month_used: u64,
}

fn restore_quota(file: &Path) -> Option<(relay::limits::Period, u64, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    let Ok(saved) = serde_json::from_str::<SavedQuota>(&text) else {
        tracing_line(&format!("ignoring unreadable {}", file.display()));
        return None;
    };
    let period = relay::limits::Period {
        day: saved.day,
        month: saved.month,
    };
    Some((period, saved.day_used, saved.month_used))
}

fn save_quota(file: &Path, (period, day_used, month_used): (relay::limits::Period, u64, u64)) {
    let saved = SavedQuota {
        day: period.day,
        month: period.month,
        day_used,
        month_used,
    };
    let partial = file.with_extension("partial");
    let written = serde_json::to_vec(&saved)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&partial, json))
        .and_then(|()| std::fs::rename(&partial, file));
    if let Err(e) = written {
        tracing_line(&format!(
            "cannot save the quota's use to {}: {e}",
            file.display()
        ));
    }
}

/// When a pause for `how_long` ends, as an instant and a label for people.
fn pause_until(how_long: &PauseFor) -> PauseUntil {
    let now = Local::now();
    match how_long {
        PauseFor::UntilResumed => PauseUntil::Resumed,
        PauseFor::Seconds(s) => {
            let end = now + chrono::Duration::seconds(*s as i64);
            let label = if end.date_naive() == now.date_naive() {
                end.format("%H:%M").to_string()
            } else {
                end.format("%a %H:%M").to_string()
            };
            PauseUntil::Time(Instant::now() + Duration::from_secs(*s), label)
        }
        PauseFor::Tomorrow => {
            let six = NaiveTime::from_hms_opt(6, 0, 0).unwrap_or_default();
            let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
            let end = tomorrow
                .and_time(six)
                .and_local_timezone(Local)
                .earliest()
                .unwrap_or(now + chrono::Duration::hours(12));
            let wait = (end - now)
                .to_std()
                .unwrap_or(Duration::from_secs(12 * 3600));
            PauseUntil::Time(Instant::now() + wait, "tomorrow 06:00".into())
        }
    }
}

/// No local user session at all: no input reader works and no display is named
/// (a server). A desktop whose input cannot be read is not headless: it waits.
fn is_headless(input: &dyn InputIdle) -> bool {
    let unset = |name| std::env::var_os(name).is_none_or(|v| v.is_empty());
    cfg!(target_os = "linux")
        && input.name() == "none"
        && unset("DISPLAY")
        && unset("WAYLAND_DISPLAY")
}

struct PolicyLoop {
    inner: Arc<Inner>,
    policy: LendingPolicy,
    input: Box<dyn InputIdle>,
    machine: Machine,
    schedule: Schedule,
    pauses_file: PathBuf,
    quota_file: PathBuf,
    waiting_for: Arc<Mutex<Option<String>>>,
}

/// A reason without its changing numbers, to log a change once rather than each tick.
fn gist(state: &ResourceState) -> String {
    let reason = state.reason.as_deref().unwrap_or("");
    let cut = reason
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(reason.len());
    format!("{} {}", state.state, &reason[..cut])
}

impl PolicyLoop {
    fn run(mut self, commands: std_mpsc::Receiver<Command>) {
        let mut reading = MachineReading::default();
        let mut last_read: Option<Instant> = None;
        let mut tick = Duration::ZERO;
        let mut lent_since: Option<Instant> = None;
        let mut rates_at = (Instant::now(), self.inner.relay.relayed());
        let (mut up_rate, mut down_rate) = (0u64, 0u64);
        let mut logged = (String::new(), String::new());
        // Everything the status shows but today's earnings; those change with `recorded`.
        let mut shown: Option<(Snapshot, LaneStatus, usize, u64)> = None;
        let headless = is_headless(self.input.as_ref());
        let mut applied = Vec::new();
        let mut quota_saved = (Instant::now(), self.inner.relay.quota_used());
        loop {
            match commands.recv_timeout(tick) {
                Ok(Command::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                Ok(Command::Pause(target, how_long, done)) => {
                    applied.push(done);
                    let until = pause_until(&how_long);
                    tracing_line(&format!(
                        "the owner paused {} until {}",
                        target.name(),
                        match &until {
                            PauseUntil::Time(_, label) => label.as_str(),
                            PauseUntil::Resumed => "they resume",
                        }
                    ));
                    self.policy.pause(target.resource(), until);
                    save_pauses(&self.pauses_file, &self.policy);
                }
                Ok(Command::Resume(target, done)) => {
                    applied.push(done);
                    tracing_line(&format!("the owner resumed {}", target.name()));
                    self.policy.resume(target.resource());
                    save_pauses(&self.pauses_file, &self.policy);
                }
                Ok(Command::Sync(done)) => applied.push(done),
                Ok(Command::Wake) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let idle = self.input.idle();
            let lending_gpu = lent_since.is_some();
            let machine_every = if lending_gpu {
                Duration::from_secs(3)
            } else {
                Duration::from_secs(10)
            };
            if last_read.is_none_or(|at| now.duration_since(at) >= machine_every) {
                reading = self.machine.read();
                last_read = Some(now);
            }
            let local = Local::now().naive_local();
            let schedule_allows = self.schedule.allows(local);
            let schedule_changes_at = self
                .schedule
                .next_change(local)
                .map(|at| at.format("%H:%M").to_string());
            let busy = self.inner.lane.take_busy();
            if !busy.is_zero() {
                self.policy.handle_gpu_busy(now, busy);
            }
            self.policy.handle_sample(Sample {
                input_idle: Some(idle.clone()),
                on_battery: reading.on_battery,
                game: reading.game.clone(),
                gpu_temperature_c: reading.gpu_temperature_c,
                quota_percent: self.inner.relay.quota_percent(),
                schedule_allows,
                schedule_changes_at,
                headless,
            });
            let gpu = self.policy.decision(Resource::Gpu, now);
            let bandwidth = self.policy.decision(Resource::Bandwidth, now);

            // Apply at once: this is the yield path.
            match (&gpu, lent_since) {
                (Decision::Lending, None) => lent_since = Some(now),
                (Decision::Lending, Some(_)) => {}
                (_, _) => lent_since = None,
            }
            let may_return =
                !headless && lent_since.is_some_and(|since| now.duration_since(since) < MAY_RETURN);
            let budget = if may_return {
                Budget::Active
            } else {
                Budget::Idle
            };
            self.inner
                .lane
                .set_lending(gpu == Decision::Lending, budget);
            self.inner.relay.set_stopped(match &bandwidth {
                Decision::Lending => None,
                other => Some(other.to_string()),
            });
            if let Ok(mut w) = self.waiting_for.lock() {
                *w = (gpu != Decision::Lending).then(|| gpu.to_string());
            }

            // The quotas' use survives a restart: saved every 10 s while it grows.
            if now.duration_since(quota_saved.0) >= Duration::from_secs(10) {
                let used = self.inner.relay.quota_used();
                if used != quota_saved.1
                    && let Some(used) = used
                {
                    save_quota(&self.quota_file, used);
                }
                quota_saved = (now, used);
            }
            let elapsed = now.duration_since(rates_at.0);
            if elapsed >= Duration::from_secs(1) {
                let relayed = self.inner.relay.relayed();
                let per_s =
                    |a: u64, b: u64| (a.saturating_sub(b) as f64 / elapsed.as_secs_f64()) as u64;
                up_rate = per_s(relayed.0, rates_at.1.0);
                down_rate = per_s(relayed.1, rates_at.1.1);
                rates_at = (now, relayed);
            }
            let gpu_state = ResourceState::of(&gpu, self.policy.paused(Resource::Gpu));
            let bandwidth_state =
                ResourceState::of(&bandwidth, self.policy.paused(Resource::Bandwidth));
            let now_logged = (gist(&gpu_state), gist(&bandwidth_state));
            if now_logged.0 != logged.0 {
                tracing_line(&format!("GPU: {gpu}"));
            }
            if now_logged.1 != logged.1 {
                tracing_line(&format!("bandwidth: {bandwidth}"));
            }
            logged = now_logged;
            let now_shown = {
                let mut snapshot = lock(&self.inner.snapshot);
                *snapshot = Snapshot {
                    gpu: gpu_state,
                    bandwidth: bandwidth_state,
                    busy_percent: self.policy.gpu_share(now),
                    up_rate,
                    down_rate,
                    signals: SignalsStatus {
                        input_backend: self.input.name().to_owned(),
                        input_idle_s: idle.as_ref().ok().map(Duration::as_secs),
                        input_error: idle.err(),
                        headless,
                        machine: reading.clone(),
                        schedule_allows,
                    },
                };
                (
                    snapshot.clone(),
                    self.inner.lane.status(),
                    self.inner.relay.clients(),
                    self.inner.recorded.load(Ordering::Relaxed),
                )
            };
            // Meters move too: the app's dashboard is pushed every change, never polls.
            if shown.as_ref() != Some(&now_shown) {
                shown = Some(now_shown);
                self.inner.changes.send_modify(|n| *n += 1);
            }
            for done in applied.drain(..) {
                let _ = done.send(());
            }
            // Watch input closely only while a job holds the GPU: that is when the
            // owner's return must reach the lane at once.
            let job_on_gpu = self.inner.lane.status().running;
            tick = if gpu == Decision::Lending && job_on_gpu && !headless {
                Duration::from_millis(50)
            } else {
                Duration::from_secs(1)
            };
        }
    }
}
