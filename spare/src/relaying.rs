//! The relay from the command line: serving as a standalone relay node, and
//! the client side: a SOCKS5 proxy and peer-relay port forwards, reconnecting with
//! backoff and showing every refusal with its status code and sentence.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use node::config::{Config, EgressMode};
use node::recorder::Recorder;
use node::relay_settings::{node_config, ticket_addresses};
use relay::client::{self, ClientError, RelayClient};
use relay::node::RelayNode;
use relay::ticket::{PartyId, Ticket};
use tokio::net::TcpListener;

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
    let mut node_config = node_config(key, config, bind, node::NETWORK, mode, &allow)?;
    if let Some(price) = overrides.price_per_gib {
        node_config.price_per_gib = price;
    }
    let recorder = Recorder::open(
        &node::paths::ledger_file_of(config)?,
        node::paths::relay_sessions_dir()?,
    )?;
    let (sessions_tx, mut sessions) = tokio::sync::mpsc::unbounded_channel();
    node_config.sessions = Some(sessions_tx);
    let rt = runtime()?;
    rt.block_on(async move {
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
                recorder.record_session(record);
            }
        });
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        anyhow::Ok(())
    })
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
    let id = PartyId::of(&key);
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
    let peer = PartyId::from_bytes(peer_bytes).context("--peer is not a valid node id")?;
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
