//! The node, hosted in the app's process: started at launch, restarted when the owner
//! saves settings, stopped on quit. Everything the node does is the node crate's; this only
//! holds it and says why it is not running when it is not.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use node::config::Config;
use node::identity::{self, KeyStore};
use node::{Node, NodeHandle, NodeOptions};
use tokio::sync::watch;

use crate::error::CommandError;

/// How the app was asked to run the node.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The config file (the platform default unless `--config` named one).
    pub config_path: PathBuf,
    /// The owner named the config file: a missing one is an error, not the defaults.
    pub config_named: bool,
    /// The node's data folder.
    pub data_dir: PathBuf,
    /// Demo mode (`--demo`).
    pub demo: bool,
}

/// The node and, when it is not running, why.
pub struct Host {
    launch: Launch,
    slot: Mutex<Slot>,
    /// Held while the node starts or restarts: one start at a time (at launch, after a
    /// settings change, or when the owner starts it again).
    starting: Mutex<()>,
    /// Bumped whenever the node starts, stops or fails: the status pump resubscribes.
    generation: watch::Sender<u64>,
}

struct Slot {
    node: Option<Node>,
    /// Why the node is not running.
    down: Down,
}

/// Why the node is not running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Down {
    /// Starting, restarting or quitting: it passes by itself.
    Planned(String),
    /// It could not start (the owner must act).
    Failed(String),
    /// Its key could not be read (the owner must act).
    Key(String),
}

impl Down {
    /// Why, in words.
    pub fn why(&self) -> &str {
        match self {
            Down::Planned(why) | Down::Failed(why) | Down::Key(why) => why,
        }
    }
}

impl Host {
    /// A host with no node yet; call [`Host::start`].
    pub fn new(launch: Launch) -> Arc<Host> {
        Arc::new(Host {
            launch,
            slot: Mutex::new(Slot {
                node: None,
                down: Down::Planned("the node is starting".into()),
            }),
            starting: Mutex::new(()),
            generation: watch::channel(0).0,
        })
    }

    /// How the app was launched.
    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The config in force: the file's, or the defaults when there is none yet.
    pub fn config(&self) -> Result<Config, CommandError> {
        Ok(Config::load_or_default(
            &self.launch.config_path,
            self.launch.config_named,
        )?)
    }

    /// The ledger file the node writes.
    pub fn ledger_path(&self, config: &Config) -> PathBuf {
        node::ledger_path(config, &self.launch.data_dir)
    }

    /// Starts the node with the config on disk. Blocking: call from a blocking thread
    /// inside the async runtime. A failure is kept (and shown) rather than returned.
    pub fn start(&self) {
        let _turn = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        self.start_now();
    }

    /// Starts the node again when it could not start (its key could not be read, or it
    /// failed), once the owner has fixed the cause: unlocked the keyring, freed the port.
    /// Nothing happens while it runs, starts or stops. Blocking, as [`Host::start`].
    pub fn retry(&self) {
        let _turn = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut slot = self.slot();
            if slot.node.is_some() || matches!(slot.down, Down::Planned(_)) {
                return;
            }
            slot.down = Down::Planned("the node is starting again".into());
        }
        self.bump();
        self.start_now();
    }

    fn start_now(&self) {
        let started = self
            .config()
            .map_err(|e| Down::Failed(e.to_string()))
            .and_then(|config| self.start_with(config));
        let mut slot = self.slot();
        match started {
            Ok(node) => slot.node = Some(node),
            Err(down) => {
                tracing::error!("the node did not start: {}", down.why());
                slot.down = down;
            }
        }
        drop(slot);
        self.bump();
    }

    fn start_with(&self, config: Config) -> Result<Node, Down> {
        let store = KeyStore::for_config(&config);
        let identity = if self.launch.demo {
            // A demo needs no keyring: its credits are worthless.
            let (identity, own_key) =
                identity::load_or_create_for_demo(&store, &self.launch.data_dir)
                    .map_err(|e| Down::Key(format!("Spare cannot read its node key. {e}")))?;
            if let Some(why) = own_key {
                tracing::warn!("{why}");
            }
            identity
        } else {
            identity::load_or_create(&store)
                .map_err(|e| Down::Key(format!("Spare cannot read its node key. {e}")))?
                .0
        };
        let mut options = NodeOptions::new(
            config,
            identity.signing_key().clone(),
            self.launch.data_dir.clone(),
        );
        options.demo = self.launch.demo;
        wait_for_port(options.config.relay.port);
        let mut node = tauri::async_runtime::block_on(Node::start(options))
            .map_err(|e| Down::Failed(format!("the node could not start: {e}")))?;
        // `spare status`, `pause` and `doctor` reach the app's node as they reach a daemon.
        if let Err(e) = node.serve_control(&self.launch.data_dir) {
            tracing::error!("no control channel: {e:#}");
        }
        Ok(node)
    }

    /// Stops the node and starts it again with the config on disk (just saved).
    pub fn restart(&self) {
        let _turn = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        self.stop("the node is restarting with the new settings");
        self.start_now();
    }

    /// Stops the node, saying `why` to anyone who asks meanwhile.
    pub fn stop(&self, why: &str) {
        let node = {
            let mut slot = self.slot();
            slot.down = Down::Planned(why.to_owned());
            slot.node.take()
        };
        self.bump();
        if let Some(node) = node {
            node.shutdown();
        }
    }

    /// The running node's handle, or why there is none.
    pub fn handle(&self) -> Result<NodeHandle, CommandError> {
        let slot = self.slot();
        match &slot.node {
            Some(node) => Ok(node.handle()),
            None => Err(CommandError::node_unavailable(slot.down.why())),
        }
    }

    /// The running node's handle; while it is starting or restarting, waits for it (at
    /// most `max`) rather than failing at once. Blocking.
    pub fn handle_when_started(&self, max: Duration) -> Result<NodeHandle, CommandError> {
        let starting = || matches!(self.down(), Some(Down::Planned(_)));
        if starting() {
            // Every start, stop and failure bumps the generation.
            let mut generations = self.generations();
            let _ = tauri::async_runtime::block_on(tokio::time::timeout(
                max,
                generations.wait_for(|_| !starting()),
            ));
        }
        self.handle()
    }

    /// Why the node is not running (`None` while it runs).
    pub fn down(&self) -> Option<Down> {
        let slot = self.slot();
        slot.node.is_none().then(|| slot.down.clone())
    }

    /// Changes whenever the node starts, stops or fails.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// After a restart, the old node's UDP port is free once its connections have drained
/// (well under a second): waits for that, for at most 5 s. A port another program holds
/// stays taken, and starting the node then says so.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while port != 0
        && std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).is_err()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}
