//! The node: the lending policy driving the relay and the GPU runner, the job
//! service, the ledger writer and the control channel, in one process.
//!
//! [`Node`] is the node API: `spare daemon` runs one headless and serves it over the
//! control channel (`control`), and the tray app runs one in-process and calls the same
//! methods. It owns the node's single QUIC endpoint: relay clients and GPU job
//! requesters share its port, told apart by ALPN.
//!
//! Threads: a **policy thread** (`node/policy_thread.rs`) reads the signals (input idle
//! time every 50 ms while a job holds the GPU, every second otherwise; the slower
//! machine readings every few seconds) and steps the node's sans-IO core
//! (`node/core.rs`), applying its decisions at once: the GPU lane yields, the relay
//! stops. The **GPU lane** thread owns the runner's supervisor. The rest (endpoint, job
//! service, ledger writer, control channel, demo) are tokio tasks.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use compute::supervisor::RunnerConfig;
use ed25519_dalek::SigningKey;
use ledger::PartyId;
use relay::node::{NodeConfig, RelayService};
use relay::ticket::Ticket;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, EgressMode};
use crate::folder::{make_private_dir, restore_pauses, restore_quota, save_quota, take_lock};
use crate::gpu_lane::GpuLane;
use crate::lending::{LendingPolicy, Limits};
use crate::recorder::Recorder;
use crate::router::{RelayProtocol, Router, RouterConfig};
use crate::status::*;
use crate::{control, demo};
use job_protocol::{self as job_service, OrderTerms, RateCard};
use policy_thread::PolicyLoop;
use signals::{self, InputIdle, Machine, Schedule};

mod core;
mod policy_thread;

/// The network real work is recorded on.
pub const NETWORK: &str = "spare";

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
            runner: None,
        }
    }
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
#[derive(Clone, Debug, Default, PartialEq)]
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
    relay: Arc<RelayService>,
    /// The endpoint: dropping the node's last handle closes it.
    _router: Router,
    lane: Arc<GpuLane>,
    snapshot: Mutex<Snapshot>,
    commands: Mutex<std_mpsc::Sender<Command>>,
    changes: watch::Sender<u64>,
    /// The one owner of the ledger: what finished is recorded through it, and the status
    /// reads today's earnings from it.
    recorder: Arc<Recorder>,
    quota_file: PathBuf,
    /// Asks the ledger writer to answer once it has written everything sent so far.
    flush: mpsc::UnboundedSender<std_mpsc::Sender<()>>,
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

/// The relay's configuration from the node's.
fn relay_config(options: &NodeOptions, network: &str) -> anyhow::Result<NodeConfig> {
    let config = &options.config;
    let bind = options
        .bind
        .unwrap_or_else(|| SocketAddr::from(([0u8; 4], config.relay.port)));
    let mut relay = crate::relay_settings::node_config(
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

/// The node's endpoint with its protocols, where it listens, and its ticket.
fn serve(
    config: &Config,
    router_config: RouterConfig,
    relay: Arc<RelayService>,
    jobs: Arc<crate::job_service::JobService>,
) -> anyhow::Result<(Router, SocketAddr, Ticket)> {
    let id = relay.id();
    let router = Router::spawn(
        router_config,
        vec![
            (relay::wire::ALPN.to_vec(), Arc::new(RelayProtocol(relay))),
            (job_service::ALPN.to_vec(), jobs),
        ],
    )
    .context("starting the node's endpoint")?;
    let listening = router
        .local_addr()
        .context("reading the endpoint's address")?;
    let ticket_addresses = if !listening.ip().is_unspecified() {
        vec![listening]
    } else {
        crate::relay_settings::ticket_addresses(config, listening.port())?
    };
    let ticket = Ticket::new(id, ticket_addresses)
        .context("a ticket holds 1 to 8 addresses with non-zero ports")?;
    Ok((router, listening, ticket))
}

/// The policy thread, with the config's limits (or the options'), the owner's saved
/// pauses, and the input reader for this session.
fn spawn_policy_thread(
    options: &mut NodeOptions,
    config: &Config,
    inner: Arc<Inner>,
    schedule: Schedule,
    quota_file: PathBuf,
    waiting_for: Arc<Mutex<Option<String>>>,
    commands_rx: std_mpsc::Receiver<Command>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut limits = options
        .limits
        .take()
        .unwrap_or_else(|| Limits::from_config(config));
    if options.demo {
        // The demo shows lending now, not after the owner leaves.
        limits.idle_threshold = Duration::ZERO;
    }
    let mut policy = LendingPolicy::new(limits);
    let pauses_file = options.data_dir.join("pauses.json");
    restore_pauses(&pauses_file, &mut policy);
    let policy_loop = PolicyLoop {
        inner,
        policy,
        input: options.input.take().unwrap_or_else(signals::input_idle),
        machine: Machine::new(config.lending.exclusive_apps.clone()),
        schedule,
        pauses_file,
        quota_file,
        waiting_for,
    };
    let policy_thread = std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || policy_loop.run(commands_rx))
        .context("starting the policy thread")?;
    Ok(policy_thread)
}

/// Takes the data folder's lock, or says which process holds it.
fn lock_folder(dir: &Path) -> Result<File, StartError> {
    take_lock(dir)?.map_err(|busy| StartError::AlreadyRunning {
        dir: dir.to_owned(),
        pid: if busy.pid.is_empty() {
            String::new()
        } else {
            format!(" (process {})", busy.pid)
        },
    })
}

/// The GPU lane for `options`' runner (default: this executable's worker mode), with
/// the node's caps and pipeline cache.
fn start_lane(
    options: &mut NodeOptions,
    caps: compute::admission::Caps,
) -> anyhow::Result<Arc<GpuLane>> {
    let mut runner = match options.runner.take() {
        Some(runner) => runner,
        None => RunnerConfig::current_exe().context("finding the spare executable")?,
    };
    runner.caps = caps;
    if runner.pipeline_cache_dir.is_none() {
        runner.pipeline_cache_dir = Some(options.data_dir.join("pipelines"));
    }
    GpuLane::start(runner, Some(options.data_dir.join("blame.json")))
        .context("starting the GPU lane")
}

/// The ledger writer: finished job orders and relay sessions through the one recorder,
/// each kind in the order it finishes (orders first when both wait).
struct Writer {
    finished: mpsc::UnboundedSender<ledger::VerifiedReceipt>,
    sessions: mpsc::UnboundedSender<relay::node::SessionRecord>,
    /// Flush requests are answered once everything sent before them is written.
    flush: mpsc::UnboundedSender<std_mpsc::Sender<()>>,
    task: tokio::task::AbortHandle,
}

impl Writer {
    fn spawn(recorder: Arc<Recorder>) -> Writer {
        let (finished, mut orders) = mpsc::unbounded_channel::<ledger::VerifiedReceipt>();
        let (sessions, mut records) = mpsc::unbounded_channel();
        let (flush, mut flushes) = mpsc::unbounded_channel::<std_mpsc::Sender<()>>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    Some(order) = orders.recv() => recorder.record_order(&order),
                    Some(record) = records.recv() => recorder.record_session(record),
                    Some(done) = flushes.recv() => {
                        let _ = done.send(());
                    }
                    else => return,
                }
            }
        })
        .abort_handle();
        Writer {
            finished,
            sessions,
            flush,
            task,
        }
    }
}

impl Node {
    /// Starts the node on the current tokio runtime.
    pub async fn start(mut options: NodeOptions) -> Result<Node, StartError> {
        make_private_dir(&options.data_dir)?;
        let lock = lock_folder(&options.data_dir)?;
        let config = options.config.clone();
        let schedule = Schedule::parse(&config.lending.schedule)
            .map_err(|e| anyhow::anyhow!("lending.schedule: {e}"))?;
        let recorder = Arc::new(Recorder::open(
            &ledger_path(&config, &options.data_dir),
            options.data_dir.join("relay-sessions"),
        )?);

        let network = if options.demo { "demo" } else { NETWORK };
        let node_party = PartyId::of(&options.key);
        let caps = crate::job_service::caps(&config);
        let lane = start_lane(&mut options, caps)?;
        let Writer {
            finished: finished_tx,
            sessions: sessions_tx,
            flush: flush_tx,
            task: writer,
        } = Writer::spawn(recorder.clone());

        let mut relay_config = relay_config(&options, network)?;
        let quota_file = options.data_dir.join("quota.json");
        relay_config.quota_used = restore_quota(&quota_file);
        relay_config.sessions = Some(sessions_tx);
        let price_per_gib = relay_config.price_per_gib;
        let router_config = RouterConfig {
            key: options.key.clone(),
            bind: relay_config.bind,
            idle_timeout: relay_config.idle_timeout,
            max_streams: relay_config.max_flows_per_client,
            // Relay clients and requesters together; each protocol also caps its own.
            max_connections: relay_config.max_clients + crate::job_service::MAX_CONNECTIONS,
            handshake_timeout: relay_config.handshake_timeout,
        };
        let relay = RelayService::new(relay_config);
        // Starts stopped; the policy thread opens it when bandwidth may be lent.
        relay.set_stopped(Some("starting".into()));

        let waiting_for = Arc::new(Mutex::new(Some("starting".to_owned())));
        let jobs = Arc::new(crate::job_service::JobService {
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
            connections: Arc::new(tokio::sync::Semaphore::new(
                crate::job_service::MAX_CONNECTIONS,
            )),
        });
        let (router, listening, ticket) = serve(&config, router_config, relay.clone(), jobs)?;

        let (commands_tx, commands_rx) = std_mpsc::channel();
        let waker = Mutex::new(commands_tx.clone());
        lane.on_start(Box::new(move || {
            if let Ok(commands) = waker.lock() {
                let _ = commands.send(Command::Wake);
            }
        }));
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
            _router: router,
            lane,
            snapshot: Mutex::new(Snapshot::default()),
            commands: Mutex::new(commands_tx),
            changes: watch::channel(0u64).0,
            recorder,
            quota_file: quota_file.clone(),
            flush: flush_tx,
        });

        let policy_thread = spawn_policy_thread(
            &mut options,
            &config,
            inner.clone(),
            schedule,
            quota_file,
            waiting_for,
            commands_rx,
        )?;

        let mut node = Node {
            inner,
            policy_thread: Some(policy_thread),
            control_socket: None,
            tasks: vec![writer],
            lock: Some(lock),
        };
        // The first decisions are in force before anyone is told the node runs.
        let (synced, first) = std_mpsc::channel();
        node.handle().send(Command::Sync(synced));
        let _ =
            tokio::task::spawn_blocking(move || first.recv_timeout(Duration::from_secs(10))).await;
        tracing::info!(
            node = %node_party,
            network,
            listening = %listening,
            "node started{}",
            if options.demo { " in demo mode" } else { "" }
        );
        if options.demo {
            node.tasks
                .extend(demo::start(ticket.node, listening, network));
        }
        Ok(node)
    }

    /// Serves the control channel at `data_dir` (see `control`).
    pub fn serve_control(&mut self, data_dir: &Path) -> anyhow::Result<()> {
        let path = control::socket_path(data_dir);
        self.tasks
            .push(control::serve(Arc::new(self.handle()), &path)?);
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
        if self.lock.is_none() {
            // Stopped already (`shutdown`, then the drop).
            return;
        }
        tracing::info!("node stopping: jobs yield, relay sessions end and are recorded");
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
        tracing::info!("node stopped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The node API, callable from any task or thread while the node runs.
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
        let earnings = inner.recorder.today();
        let mut gpu_state = snapshot.gpu;
        if let Some(reason) = &lane.stopped
            && gpu_state.state != State::Paused
        {
            // The runner stopped itself: paused until a retry or the owner's resume.
            gpu_state.state = State::Paused;
            gpu_state.reason = Some(reason.clone());
        }
        Status {
            schema: 1,
            node_id: s.node_id.clone(),
            network: s.network.clone(),
            demo: s.demo,
            listening: s.listening.clone(),
            ticket: s.ticket.clone(),
            gpu: GpuStatus {
                state: gpu_state,
                queued_jobs: lane.queued,
                running: lane.running,
                yielded: lane.yielded,
                job: lane.job,
                jobs_done: lane.done,
                jobs_failed: lane.failed,
                busy_percent: (snapshot.busy_percent * 10.0).round() / 10.0,
                adapter: lane.adapter,
                runner_stopped: lane.stopped,
                requesters_cooling_off: lane.cooling_off,
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
            ledger: inner.recorder.path().display().to_string(),
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

    /// Ends the owner's pause of `target`; for the GPU, also a stop the runner made
    /// itself (the self-test then runs, and the status shows its outcome).
    pub fn resume(&self, target: Target) {
        if matches!(target, Target::Gpu | Target::All) {
            self.inner.lane.resume_runner();
        }
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

impl control::Controlled for NodeHandle {
    fn status(&self) -> Status {
        NodeHandle::status(self)
    }

    fn pause(&self, target: Target, how_long: PauseFor) {
        NodeHandle::pause(self, target, how_long);
    }

    fn resume(&self, target: Target) {
        NodeHandle::resume(self, target);
    }

    fn ticket(&self) -> String {
        NodeHandle::ticket(self)
    }
}
