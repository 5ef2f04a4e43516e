//! The relay from the command line: serving as a node (until the daemon does it), and
//! the client side: a SOCKS5 proxy and peer-relay port forwards, reconnecting with
//! backoff and showing every refusal with its status code and sentence.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use relay::client::{self, ClientError, RelayClient};
use relay::node::{NodeConfig, RelayNode};
use relay::policy::{AllowRule, EgressPolicy};
use relay::ticket::{NodeId, Ticket};
use tokio::net::TcpListener;

/// How the node relays.
pub struct ServeOptions {
    /// UDP address to listen on.
    pub bind: SocketAddr,
    /// Addresses to put in the ticket (default: the bound one).
    pub public: Vec<SocketAddr>,
    /// Allow-list egress rules (`host:ports`); egress is off without them.
    pub allow: Vec<String>,
    /// Open egress (an explicit opt-in).
    pub open: bool,
    /// Let egress reach loopback: tests only.
    pub allow_loopback_for_tests: bool,
    /// Micro-credits per GiB; 0 relays without payment.
    pub price_per_gib: u64,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs a relay node until interrupted, after printing its ticket.
pub fn serve(key: SigningKey, options: ServeOptions) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(key, options.bind);
    config.price_per_gib = options.price_per_gib;
    let rules = options
        .allow
        .iter()
        .map(|r| r.parse::<AllowRule>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    config.egress = match (options.open, rules.is_empty()) {
        (true, _) => Some(EgressPolicy::open()),
        (false, false) => Some(EgressPolicy::allow_list(rules)),
        (false, true) => None,
    };
    if let Some(policy) = &mut config.egress {
        policy.allow_loopback_for_tests = options.allow_loopback_for_tests;
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let node = RelayNode::start(config)?;
        let bound = node.local_addr()?;
        let public = if options.public.is_empty() {
            let ip = if bound.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                bound.ip()
            };
            vec![SocketAddr::new(ip, bound.port())]
        } else {
            options.public
        };
        let ticket = node
            .ticket(public)
            .context("a ticket holds 1 to 8 addresses with non-zero ports")?;
        println!("{ticket}");
        eprintln!(
            "relay node {} listening on {bound} (UDP); egress {}",
            node.id(),
            if options.open {
                "open"
            } else if options.allow.is_empty() {
                "off: peer relay only"
            } else {
                "to the allow-list only"
            }
        );
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
