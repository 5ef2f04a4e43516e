//! The node's endpoint and its router: the node owns its one QUIC endpoint and hands
//! each connection, once its handshake is done, to the protocol its ALPN names (the
//! relay, GPU jobs, and the protocols that come next), as iroh's
//! `Router::accept(alpn, handler)` does. The endpoint offers exactly the ALPNs that have
//! a handler, so a client can only agree on a protocol the node serves.
//!
//! Every connection, whatever its protocol, counts against `max_connections` from
//! before its handshake (more are refused before they cost a handshake), and a
//! handshake that does not finish within `handshake_timeout` is dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use relay::endpoint::EndpointError;

/// What a protocol handler's `accept` returns: the connection's whole service.
pub type Serving = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A protocol on the node's endpoint.
pub trait ProtocolHandler: Send + Sync + 'static {
    /// Serves one connection whose handshake chose this protocol, until it ends.
    fn accept(self: Arc<Self>, conn: quinn::Connection) -> Serving;
}

/// How the endpoint is opened and its connections are limited.
pub struct RouterConfig {
    /// The node's key: its TLS identity.
    pub key: SigningKey,
    /// The UDP address to listen on.
    pub bind: SocketAddr,
    /// A connection with no traffic this long is closed.
    pub idle_timeout: Duration,
    /// Streams per connection.
    pub max_streams: u32,
    /// Connections at once, all protocols together; more are refused before the
    /// handshake.
    pub max_connections: usize,
    /// Deadline for the TLS handshake.
    pub handshake_timeout: Duration,
}

/// The node's endpoint, routing by ALPN. Dropping it closes the endpoint.
pub struct Router {
    endpoint: quinn::Endpoint,
    accepting: tokio::task::AbortHandle,
    open: Arc<AtomicUsize>,
}

/// Counts a connection for as long as it lives.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Handlers = Arc<Vec<(Vec<u8>, Arc<dyn ProtocolHandler>)>>;

impl Router {
    /// Opens the endpoint offering the ALPN of each of `handlers`, and routes its
    /// connections to them, on the current tokio runtime.
    pub fn spawn(
        config: RouterConfig,
        handlers: Vec<(Vec<u8>, Arc<dyn ProtocolHandler>)>,
    ) -> Result<Router, EndpointError> {
        let alpns = handlers.iter().map(|(alpn, _)| alpn.clone()).collect();
        let endpoint = relay::endpoint::bind(
            &config.key,
            config.bind,
            alpns,
            config.idle_timeout,
            config.max_streams,
        )?;
        let handlers: Handlers = Arc::new(handlers);
        let open = Arc::new(AtomicUsize::new(0));
        let accepting = tokio::spawn(accept_loop(
            endpoint.clone(),
            handlers,
            open.clone(),
            config.max_connections,
            config.handshake_timeout,
        ))
        .abort_handle();
        Ok(Router {
            endpoint,
            accepting,
            open,
        })
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Connections open now, every protocol together (handshakes included).
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.accepting.abort();
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"node stopping");
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    handlers: Handlers,
    open: Arc<AtomicUsize>,
    max_connections: usize,
    handshake_timeout: Duration,
) {
    while let Some(incoming) = endpoint.accept().await {
        if open.load(Ordering::SeqCst) >= max_connections {
            tracing::debug!(remote = %incoming.remote_address(), "connection refused: the node is full");
            incoming.refuse();
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let counted = Open(open.clone());
        let handlers = handlers.clone();
        tokio::spawn(async move {
            let _counted = counted;
            let Ok(Ok(conn)) = tokio::time::timeout(handshake_timeout, incoming).await else {
                return;
            };
            let alpn = relay::endpoint::alpn(&conn);
            let handler = handlers
                .iter()
                .find(|(name, _)| Some(name) == alpn.as_ref())
                .map(|(_, handler)| handler.clone());
            match handler {
                Some(handler) => handler.accept(conn).await,
                // The endpoint offers only the handlers' ALPNs; kept for safety.
                None => conn.close(quinn::VarInt::from_u32(7), b"unknown ALPN"),
            }
        });
    }
}

/// The relay protocol as a handler: a client over the relay's `max_clients` is told
/// so and closed.
pub struct RelayProtocol(pub Arc<relay::node::RelayService>);

impl ProtocolHandler for RelayProtocol {
    fn accept(self: Arc<Self>, conn: quinn::Connection) -> Serving {
        Box::pin(async move {
            match self.0.try_reserve() {
                Some(slot) => self.0.clone().serve(conn, slot).await,
                None => conn.close(
                    quinn::VarInt::from_u32(9),
                    b"this node serves as many relay clients as it can: try another node",
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay::client::RelayClient;
    use relay::node::{NodeConfig, RelayService};
    use relay::ticket::{PartyId, Ticket};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// Hands every connection's peer id to the test.
    struct Echo(tokio::sync::mpsc::UnboundedSender<Option<PartyId>>);

    impl ProtocolHandler for Echo {
        fn accept(self: Arc<Self>, conn: quinn::Connection) -> Serving {
            Box::pin(async move {
                let _ = self.0.send(relay::tls::peer_id(&conn));
                conn.closed().await;
            })
        }
    }

    fn config(max_connections: usize) -> RouterConfig {
        RouterConfig {
            key: key(1),
            bind: "127.0.0.1:0".parse().unwrap(),
            idle_timeout: Duration::from_secs(10),
            max_streams: 8,
            max_connections,
            handshake_timeout: Duration::from_secs(5),
        }
    }

    async fn connect(port: u16, alpn: &[u8], as_key: u8) -> Result<quinn::Connection, String> {
        let mut tls =
            relay::tls::client_config_for(&key(as_key), PartyId::of(&key(1)), alpn).unwrap();
        tls.alpn_protocols = vec![alpn.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let connecting = endpoint
            .connect(([127, 0, 0, 1], port).into(), "spare-node")
            .map_err(|e| e.to_string())?;
        connecting.await.map_err(|e| e.to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn protocols_share_the_port_by_alpn_and_unknown_ones_never_connect() {
        let relay = RelayService::new(NodeConfig::new(key(1), "127.0.0.1:0".parse().unwrap()));
        let (jobs_tx, mut jobs) = tokio::sync::mpsc::unbounded_channel();
        let router = Router::spawn(
            config(16),
            vec![
                (
                    relay::wire::ALPN.to_vec(),
                    Arc::new(RelayProtocol(relay.clone())),
                ),
                (b"spare-jobs/1".to_vec(), Arc::new(Echo(jobs_tx))),
            ],
        )
        .unwrap();
        let port = router.local_addr().unwrap().port();

        let _jobs_conn = connect(port, b"spare-jobs/1", 2).await.unwrap();
        let handed = tokio::time::timeout(Duration::from_secs(5), jobs.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(handed, Some(PartyId::of(&key(2))));

        // The relay answers on the same port.
        let ticket = Ticket::new(relay.id(), vec![router.local_addr().unwrap()]).unwrap();
        let client = RelayClient::connect(&ticket, &key(3)).await.unwrap();
        assert_eq!(client.node(), relay.id());
        assert_eq!(relay.clients(), 1);

        // A protocol the node does not serve fails the handshake.
        let refused = connect(port, b"spare-other/1", 4).await.unwrap_err();
        assert!(
            refused.to_lowercase().contains("protocol") || refused.contains("alpn"),
            "{refused}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_over_the_cap_are_refused_before_the_handshake() {
        let (jobs_tx, _jobs) = tokio::sync::mpsc::unbounded_channel();
        let router = Router::spawn(
            config(1),
            vec![(b"spare-jobs/1".to_vec(), Arc::new(Echo(jobs_tx)))],
        )
        .unwrap();
        let port = router.local_addr().unwrap().port();
        let first = connect(port, b"spare-jobs/1", 2).await.unwrap();
        let second = connect(port, b"spare-jobs/1", 3).await.unwrap_err();
        assert!(second.to_lowercase().contains("refused"), "{second}");
        assert_eq!(router.connections(), 1);
        drop(first);
    }
}
