//! The relay from the command line: serving as a node (until the daemon does it), and
//! the client side: a SOCKS5 proxy and peer-relay port forwards, reconnecting with
//! backoff and showing every refusal with its status code and sentence.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use ledger::{Ledger, VerifiedReceipt};
use relay::client::{self, ClientError, RelayClient};
use relay::node::{NodeConfig, RelayNode, SessionRecord};
use relay::policy::{AllowRule, EgressPolicy};
use relay::ticket::{NodeId, Ticket};
use tokio::net::TcpListener;

use crate::config::{Config, EgressMode};

/// Command-line overrides of the `[relay]` config for `spare relay serve`.
#[derive(Default)]
pub struct ServeOverrides {
    /// UDP address to listen on (default: all interfaces at `relay.port`).
    pub bind: Option<SocketAddr>,
    /// Addresses to put in the ticket.
    pub public: Vec<SocketAddr>,
    /// Allow-list rules; given, they replace the config's and turn allow-list mode on.
    pub allow: Vec<String>,
    /// Open egress (an explicit opt-in).
    pub open: bool,
    /// Let egress reach loopback: tests only.
    pub allow_loopback_for_tests: bool,
    /// Price in micro-credits per GiB.
    pub price_per_gib: Option<u64>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The addresses this node's ticket names: the configured ones, else every
/// non-loopback address of this machine at the relay port (loopback when none).
pub fn ticket_addresses(config: &Config, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let configured = config
        .relay
        .public_addresses
        .iter()
        .map(|a| a.parse::<SocketAddr>())
        .collect::<Result<Vec<_>, _>>()
        .context("relay.public_addresses")?;
    if !configured.is_empty() {
        return Ok(configured);
    }
    let mut own: Vec<SocketAddr> = relay::policy::node_addresses()
        .into_iter()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .filter(
            |ip| !matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80),
        )
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    own.truncate(relay::ticket::MAX_ADDRESSES);
    if own.is_empty() {
        own.push(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Ok(own)
}

/// This node's ticket, from its key and config: what `spare ticket` prints.
pub fn ticket(key: &SigningKey, config: &Config) -> anyhow::Result<Ticket> {
    let id = NodeId::from_bytes(key.verifying_key().to_bytes()).context("invalid node key")?;
    Ticket::new(id, ticket_addresses(config, config.relay.port)?)
        .context("a ticket holds 1 to 8 addresses with non-zero ports")
}

/// The relay node's settings from the config: price, rate caps, quotas and egress
/// (`mode` with the `allow` rules), on `network`.
pub fn node_config(
    key: SigningKey,
    config: &Config,
    bind: SocketAddr,
    network: &str,
    mode: EgressMode,
    allow: &[String],
) -> anyhow::Result<NodeConfig> {
    let mut node_config = NodeConfig::new(key, bind);
    node_config.network = network.to_owned();
    node_config.price_per_gib = config.relay.price_per_gib;
    let kbps = |k: u32| u64::from(k) * 1000 / 8;
    node_config.node_rate = (
        kbps(config.bandwidth.upload_kbps),
        kbps(config.bandwidth.download_kbps),
    );
    node_config.quota = (
        u64::from(config.bandwidth.daily_quota_mb) * 1_000_000,
        u64::from(config.bandwidth.monthly_quota_gb) * 1_000_000_000,
    );
    let rules = allow
        .iter()
        .map(|r| r.parse::<AllowRule>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("relay.allow")?;
    node_config.egress = match mode {
        EgressMode::Off => None,
        EgressMode::Allowlist => Some(EgressPolicy::allow_list(rules)),
        EgressMode::Open => Some(EgressPolicy::open()),
    };
    Ok(node_config)
}

/// Runs a relay node until interrupted, after printing its ticket. Finished paid
/// sessions go to the ledger; running ones are checkpointed beside it so that a crash
/// loses little (they are appended at the next start).
pub fn serve(key: SigningKey, config: &Config, overrides: ServeOverrides) -> anyhow::Result<()> {
    let bind = overrides
        .bind
        .unwrap_or_else(|| SocketAddr::from(([0u8; 4], config.relay.port)));
    let allow = if overrides.allow.is_empty() {
        config.relay.allow.clone()
    } else {
        overrides.allow.clone()
    };
    let mode = if overrides.open {
        EgressMode::Open
    } else if !overrides.allow.is_empty() {
        EgressMode::Allowlist
    } else {
        config.relay.egress
    };
    let mut node_config = node_config(key, config, bind, crate::node::NETWORK, mode, &allow)?;
    if let Some(price) = overrides.price_per_gib {
        node_config.price_per_gib = price;
    }
    if let Some(policy) = &mut node_config.egress {
        policy.allow_loopback_for_tests = overrides.allow_loopback_for_tests;
    }
    let ledger_path = crate::paths::ledger_file_of(config)?;
    let checkpoints = crate::paths::relay_sessions_dir()?;
    let (sessions_tx, mut sessions) = tokio::sync::mpsc::unbounded_channel();
    node_config.sessions = Some(sessions_tx);
    let rt = runtime()?;
    rt.block_on(async move {
        recover_sessions(&checkpoints, &ledger_path);
        let node = RelayNode::start(node_config)?;
        let bound = node.local_addr()?;
        // The ticket names where clients can reach the node: the addresses given, the
        // address bound to when it is a specific one, else this machine's own.
        let public = if !overrides.public.is_empty() {
            overrides.public
        } else if !bound.ip().is_unspecified() {
            vec![bound]
        } else {
            ticket_addresses(config, bound.port())?
        };
        let ticket = node
            .ticket(public)
            .context("a ticket holds 1 to 8 addresses with non-zero ports")?;
        println!("{ticket}");
        eprintln!(
            "relay node {} listening on {} (UDP); egress {}",
            node.id(),
            node.local_addr()?,
            match mode {
                EgressMode::Off => "off: peer relay only",
                EgressMode::Allowlist => "to the allow-list only",
                EgressMode::Open => "open",
            }
        );
        tokio::spawn(async move {
            while let Some(record) = sessions.recv().await {
                record_session(&checkpoints, &ledger_path, record);
            }
        });
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        anyhow::Ok(())
    })
}

fn checkpoint_file(dir: &Path, receipt: &VerifiedReceipt) -> PathBuf {
    dir.join(format!(
        "{}.receipt",
        ledger::hex(&receipt.receipt().reference)
    ))
}

/// A running session's latest promise is written beside the ledger; a finished
/// session's goes into the ledger and its checkpoint is removed.
pub(crate) fn record_session(dir: &Path, ledger_path: &Path, record: SessionRecord) {
    let Some(receipt) = record.receipt else {
        return;
    };
    let file = checkpoint_file(dir, &receipt);
    if !record.ended {
        let signed = receipt.signed();
        let text = format!(
            "{}\n{}\n",
            ledger::hex(&signed.bytes),
            ledger::hex(&signed.signature)
        );
        let partial = file.with_extension("partial");
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&partial, text))
            .and_then(|()| std::fs::rename(&partial, &file));
        if let Err(e) = written {
            eprintln!("cannot checkpoint relay session: {e}");
        }
        return;
    }
    match Ledger::open(ledger_path).and_then(|mut l| l.append(&receipt)) {
        Ok(_) => {
            let _ = std::fs::remove_file(&file);
            eprintln!(
                "relay session of {} recorded: {} bytes, {} credits",
                record.client,
                receipt.receipt().units,
                receipt.receipt().amount
            );
        }
        Err(e) => eprintln!("cannot record relay session in the ledger: {e:#}"),
    }
}

/// Appends sessions checkpointed before a crash, then removes their files.
pub(crate) fn recover_sessions(dir: &Path, ledger_path: &Path) {
    let Ok(files) = std::fs::read_dir(dir) else {
        return;
    };
    for file in files.flatten().map(|f| f.path()) {
        if file.extension().is_none_or(|e| e != "receipt") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let mut lines = text.lines();
        let signed = lines.next().and_then(ledger::unhex).zip(
            lines
                .next()
                .and_then(ledger::unhex)
                .and_then(|s| s.try_into().ok()),
        );
        let appended = signed.map(|(bytes, signature)| {
            let signed = ledger::SignedReceipt { bytes, signature };
            Ledger::open(ledger_path).and_then(|mut l| l.append_signed(&[signed]))
        });
        match appended {
            Some(Ok(_)) | Some(Err(ledger::Error::Duplicate { .. })) => {
                let _ = std::fs::remove_file(&file);
            }
            Some(Err(e)) => eprintln!("cannot recover relay session {}: {e:#}", file.display()),
            None => eprintln!("ignoring damaged relay checkpoint {}", file.display()),
        }
    }
}

/// Runs `session` against a connection to the node, reconnecting with backoff
/// (1 s doubling to 30 s) whenever the connection ends.
fn with_reconnects<F, Fut>(ticket: &str, key: SigningKey, mut session: F) -> anyhow::Result<()>
where
    F: FnMut(Arc<RelayClient>) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let ticket: Ticket = ticket.parse().context("reading the ticket")?;
    let rt = runtime()?;
    rt.block_on(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            match RelayClient::connect(&ticket, &key).await {
                Ok(client) => {
                    backoff = Duration::from_secs(1);
                    eprintln!("connected to relay node {}", client.node());
                    let client = Arc::new(client);
                    let reason = session(client.clone()).await;
                    eprintln!("relay connection ended: {reason}");
                }
                Err(ClientError::Refused { status, message }) => {
                    eprintln!("the node refused ({status}): {message}");
                }
                Err(e) => eprintln!("{e}"),
            }
            eprintln!("reconnecting in {} s", backoff.as_secs());
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

/// A local SOCKS5 proxy whose connections go through the node.
pub fn connect_socks5(ticket: &str, key: SigningKey, socks: SocketAddr) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(socks)
        .with_context(|| format!("listening for SOCKS5 on {socks}"))?;
    listener.set_nonblocking(true)?;
    eprintln!("SOCKS5 proxy on {}", listener.local_addr()?);
    let listener = Arc::new(listener);
    with_reconnects(ticket, key, move |client| {
        let listener = listener.clone();
        async move {
            let Ok(listener) = listener.try_clone().and_then(TcpListener::from_std) else {
                return "cannot use the SOCKS5 listener".to_owned();
            };
            tokio::select! {
                () = client::serve_socks5(client.clone(), &listener) => "the proxy stopped".to_owned(),
                reason = client.closed() => reason,
            }
        }
    })
}

/// Accepts peers that dial this client and connects each to `forward`.
pub fn listen_forward(ticket: &str, key: SigningKey, forward: SocketAddr) -> anyhow::Result<()> {
    let id = NodeId::from_bytes(key.verifying_key().to_bytes()).context("invalid key")?;
    eprintln!("listening as peer {id}; peers are forwarded to {forward}");
    with_reconnects(ticket, key, move |client| async move {
        match client::forward_peers(client, forward).await {
            Ok(()) => "the node stopped passing peers".to_owned(),
            Err(e) => e.to_string(),
        }
    })
}

/// Carries local TCP connections on `local` to `peer` through the node.
pub fn dial_forward(
    ticket: &str,
    key: SigningKey,
    peer: &str,
    local: SocketAddr,
) -> anyhow::Result<()> {
    let peer_bytes: [u8; 32] = ledger::unhex(peer)
        .and_then(|b| b.try_into().ok())
        .context("--peer must be a node id: 64 hex characters")?;
    let peer = NodeId::from_bytes(peer_bytes).context("--peer is not a valid node id")?;
    let listener =
        std::net::TcpListener::bind(local).with_context(|| format!("listening on {local}"))?;
    listener.set_nonblocking(true)?;
    eprintln!("forwarding {} to peer {peer}", listener.local_addr()?);
    let listener = Arc::new(listener);
    with_reconnects(ticket, key, move |client| {
        let listener = listener.clone();
        async move {
            let Ok(listener) = listener.try_clone().and_then(TcpListener::from_std) else {
                return "cannot use the local listener".to_owned();
            };
            tokio::select! {
                () = client::dial_forward(client.clone(), peer, &listener) => "the forward stopped".to_owned(),
                reason = client.closed() => reason,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{EntryKind, MicroCredits, Network, PartyId, Receipt};

    fn promise(units: u64) -> VerifiedReceipt {
        let client = SigningKey::from_bytes(&[2; 32]);
        Receipt {
            kind: EntryKind::RelaySession,
            network: Network::demo(),
            payee: PartyId::of(&SigningKey::from_bytes(&[1; 32])),
            counterparty: PartyId::of(&client),
            units,
            amount: MicroCredits(units as i64 / 1000),
            issued_at_ms: 1_800_000_000_000,
            reference: [5; 32],
        }
        .sign(&client)
        .unwrap()
        .verify()
        .unwrap()
    }

    fn record(ended: bool, units: u64) -> SessionRecord {
        SessionRecord {
            ended,
            client: NodeId::from_bytes(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes())
                .unwrap(),
            up: units / 2,
            down: units / 2,
            receipt: Some(promise(units)),
        }
    }

    #[test]
    fn a_crashed_sessions_checkpoint_reaches_the_ledger_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = dir.path().join("relay-sessions");
        let ledger_path = dir.path().join("ledger.sqlite3");
        record_session(&checkpoints, &ledger_path, record(false, 1_000));
        record_session(&checkpoints, &ledger_path, record(false, 5_000));
        assert_eq!(std::fs::read_dir(&checkpoints).unwrap().count(), 1);
        assert!(
            !ledger_path.exists(),
            "a running session reached the ledger"
        );
        // The node crashes here; at the next start the checkpoint is appended once.
        recover_sessions(&checkpoints, &ledger_path);
        recover_sessions(&checkpoints, &ledger_path);
        let ledger = Ledger::open_existing(&ledger_path).unwrap();
        let entries = ledger.entries(0, 10).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].receipt.units, 5_000);
        assert_eq!(std::fs::read_dir(&checkpoints).unwrap().count(), 0);
    }

    #[test]
    fn a_finished_session_is_appended_and_its_checkpoint_removed() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = dir.path().join("relay-sessions");
        let ledger_path = dir.path().join("ledger.sqlite3");
        record_session(&checkpoints, &ledger_path, record(false, 1_000));
        record_session(&checkpoints, &ledger_path, record(true, 2_000));
        let ledger = Ledger::open_existing(&ledger_path).unwrap();
        assert_eq!(ledger.entries(0, 10).unwrap()[0].receipt.units, 2_000);
        assert_eq!(std::fs::read_dir(&checkpoints).unwrap().count(), 0);
        assert_eq!(ledger.verify().unwrap().problem, None);
    }
}
