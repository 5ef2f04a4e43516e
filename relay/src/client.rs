//! The client side of the relay: connect to a node named by a ticket, open TCP flows
//! through it, and dial or accept peers. Also a local SOCKS5 proxy whose connections
//! become flows, and peer-relay port forwards; these try a flow the node refused as
//! `rate_limited` again a few times, since their applications cannot be told to wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use receipt::{EntryKind, MicroCredits, Network, PartyId, Receipt};
use std::collections::HashMap;

use tokio::sync::{Mutex, mpsc};

use crate::ticket::Ticket;
use crate::wire::{Frame, Status, VERSION};
use crate::{io, metering, wire};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// No address in the ticket answered as the node.
    #[error("cannot reach node {node} at any of its addresses: {last}")]
    Unreachable {
        /// The node.
        node: PartyId,
        /// The last error.
        last: String,
    },
    /// The node refused, with its status code and sentence.
    #[error("the node refused ({status}): {message}")]
    Refused {
        /// The code.
        status: Status,
        /// The node's sentence.
        message: String,
    },
    /// The connection or stream failed.
    #[error("the relay connection failed: {0}")]
    Connection(String),
}

fn connection_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Connection(e.to_string())
}

/// A connection to a relay node.
pub struct RelayClient {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    control: Arc<Mutex<quinn::SendStream>>,
    node: PartyId,
    payer: Arc<Payer>,
    udp: UdpRoutes,
}

/// Where the node's datagrams go: each UDP flow's queue, by stream id.
type UdpRoutes = Arc<StdMutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>;

/// Datagrams queued per UDP flow before more are dropped.
const UDP_QUEUE: usize = 256;

/// A UDP flow through the node: datagrams to and from one destination.
pub struct UdpFlow {
    id: u64,
    conn: quinn::Connection,
    inbox: mpsc::Receiver<Vec<u8>>,
    routes: UdpRoutes,
    // Holding the stream keeps the flow open; finishing it ends the flow.
    _send: quinn::SendStream,
    _recv: quinn::RecvStream,
}

impl UdpFlow {
    /// Sends one datagram; too large for the path is an error, never a queue.
    pub fn send(&self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn
            .send_datagram(wire::encode_datagram(self.id, payload).into())
            .map_err(connection_error)
    }

    /// The next datagram from the destination.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.inbox.recv().await
    }
}

impl Drop for UdpFlow {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(&self.id);
        }
    }
}

/// How long to wait for the node's answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the proxies try a flow the node refused as `rate_limited`, in all.
const RATE_LIMITED_TRIES: u32 = 4;

/// The pause before trying a `rate_limited` flow again, doubled for each next try.
const RATE_LIMITED_PAUSE: Duration = Duration::from_millis(250);

/// The client's side of payment: answers the node's usage reports with signed
/// cumulative promises, a little ahead of use so flows never wait.
struct Payer {
    key: SigningKey,
    node: PartyId,
    session: [u8; 32],
    network: String,
    price_per_gib: u64,
    margin: u64,
    paying: AtomicBool,
    last_usage: StdMutex<u64>,
    /// The latest pause or refusal the node announced, for the user.
    notice: StdMutex<Option<(Status, String)>>,
}

impl Payer {
    fn promise_for(&self, used: u64) -> Option<Frame> {
        if self.price_per_gib == 0 || !self.paying.load(Ordering::SeqCst) {
            return None;
        }
        let bytes = used.saturating_add(self.margin / 2).min(receipt::MAX_UNITS);
        let due = u128::from(bytes) * u128::from(self.price_per_gib) / u128::from(metering::GIB);
        let amount = i64::try_from(due).ok()?.min(receipt::MAX_AMOUNT);
        let issued_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let signed = Receipt {
            kind: EntryKind::RelaySession,
            network: Network::new(self.network.clone()).ok()?,
            payee: self.node,
            counterparty: PartyId::of(&self.key),
            units: bytes,
            amount: MicroCredits(amount),
            issued_at_ms,
            reference: self.session,
        }
        .sign(&self.key)
        .ok()?;
        Some(Frame::Promise {
            receipt: signed.bytes,
            signature: signed.signature,
        })
    }
}

/// Opens a QUIC connection to the node in `ticket` for the service named by `alpn`
/// (the relay, or another service sharing the node's port such as GPU jobs), trying
/// the ticket's addresses in order. The node is authenticated by its key.
pub async fn connect_service(
    ticket: &Ticket,
    key: &SigningKey,
    alpn: &[u8],
) -> Result<(quinn::Endpoint, quinn::Connection), ClientError> {
    let tls = crate::tls::client_config_for(key, ticket.node, alpn)?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| crate::tls::TlsError::from_message(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = crate::endpoint::transport_config(Duration::from_secs(30), 256);
    transport.keep_alive_interval(Some(Duration::from_secs(10)));
    config.transport_config(Arc::new(transport));
    let mut last = String::from("the ticket has no addresses");
    for addr in &ticket.addresses {
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().map_err(connection_error)?
        } else {
            "0.0.0.0:0".parse().map_err(connection_error)?
        };
        let mut endpoint = match quinn::Endpoint::client(bind) {
            Ok(e) => e,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        endpoint.set_default_client_config(config.clone());
        let connecting = match endpoint.connect(*addr, "spare-node") {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => return Ok((endpoint, conn)),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer in {ANSWER_TIMEOUT:?}"),
        }
    }
    Err(ClientError::Unreachable {
        node: ticket.node,
        last,
    })
}

impl RelayClient {
    /// Connects to the node in `ticket`, trying its addresses in order.
    pub async fn connect(ticket: &Ticket, key: &SigningKey) -> Result<RelayClient, ClientError> {
        let (endpoint, conn) = connect_service(ticket, key, crate::wire::ALPN).await?;
        Self::hello(endpoint, conn, ticket.node, key).await
    }

    async fn hello(
        endpoint: quinn::Endpoint,
        conn: quinn::Connection,
        node: PartyId,
        key: &SigningKey,
    ) -> Result<RelayClient, ClientError> {
        let (mut send, mut recv) = conn.open_bi().await.map_err(connection_error)?;
        io::write_frame(&mut send, &Frame::Hello { version: VERSION })
            .await
            .map_err(connection_error)?;
        let payer = match io::read_frame(&mut recv, ANSWER_TIMEOUT).await {
            Ok(Frame::Welcome {
                session,
                price_per_gib,
                promise_margin,
                network,
                ..
            }) => Arc::new(Payer {
                key: key.clone(),
                node,
                session,
                network,
                price_per_gib,
                margin: promise_margin,
                paying: AtomicBool::new(true),
                last_usage: StdMutex::new(0),
                notice: StdMutex::new(None),
            }),
            Ok(Frame::Status { status, message }) => {
                return Err(ClientError::Refused { status, message });
            }
            Ok(other) => return Err(connection_error(format!("unexpected {other:?}"))),
            Err(e) => return Err(connection_error(e)),
        };
        let control = Arc::new(Mutex::new(send));
        // The control stream: usage reports are answered with promises; pauses and
        // refusals are kept for the user.
        let reader_payer = payer.clone();
        let reader_control = control.clone();
        tokio::spawn(async move {
            let forever = Duration::from_secs(u64::from(u32::MAX));
            while let Ok(frame) = io::read_frame(&mut recv, forever).await {
                let used = match frame {
                    Frame::Usage { up, down } => Some(up.saturating_add(down)),
                    Frame::Paused { status, message } | Frame::Status { status, message } => {
                        if let Ok(mut notice) = reader_payer.notice.lock() {
                            *notice = Some((status, message));
                        }
                        None
                    }
                    Frame::Resumed => {
                        if let Ok(mut notice) = reader_payer.notice.lock() {
                            *notice = None;
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(used) = used {
                    if let Ok(mut last) = reader_payer.last_usage.lock() {
                        *last = used;
                    }
                    if let Some(promise) = reader_payer.promise_for(used) {
                        let mut control = reader_control.lock().await;
                        let _ = io::write_frame(&mut *control, &promise).await;
                    }
                }
            }
        });
        let udp: UdpRoutes = Arc::default();
        let routes = udp.clone();
        let datagrams = conn.clone();
        tokio::spawn(async move {
            while let Ok(datagram) = datagrams.read_datagram().await {
                let Ok((id, payload)) = wire::decode_datagram(&datagram) else {
                    continue;
                };
                let route = routes.lock().ok().and_then(|r| r.get(&id).cloned());
                if let Some(route) = route {
                    // A full queue drops the datagram, as UDP would.
                    let _ = route.try_send(payload.to_vec());
                }
            }
        });
        Ok(RelayClient {
            _endpoint: endpoint,
            conn,
            control,
            node,
            payer,
            udp,
        })
    }

    /// Turns paying on or off (on by default). Turning it on promises for everything
    /// relayed so far at once.
    pub async fn set_paying(&self, paying: bool) {
        self.payer.paying.store(paying, Ordering::SeqCst);
        if !paying {
            return;
        }
        let used = self.payer.last_usage.lock().map(|u| *u).unwrap_or(0);
        if let Some(promise) = self.payer.promise_for(used) {
            let mut control = self.control.lock().await;
            let _ = io::write_frame(&mut *control, &promise).await;
        }
    }

    /// The node's latest pause or refusal notice, if one stands.
    pub fn notice(&self) -> Option<(Status, String)> {
        self.payer.notice.lock().ok().and_then(|n| n.clone())
    }

    /// Resolves when the connection to the node ends, with the reason.
    pub async fn closed(&self) -> String {
        self.conn.closed().await.to_string()
    }

    /// The node this client is connected to.
    pub fn node(&self) -> PartyId {
        self.node
    }

    async fn open_flow(
        &self,
        request: Frame,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(connection_error)?;
        io::write_frame(&mut send, &request)
            .await
            .map_err(connection_error)?;
        match io::read_frame(&mut recv, ANSWER_TIMEOUT).await {
            Ok(Frame::Status {
                status: Status::Ok, ..
            }) => Ok((send, recv)),
            Ok(Frame::Status { status, message }) => Err(ClientError::Refused { status, message }),
            Ok(other) => Err(connection_error(format!("unexpected {other:?}"))),
            Err(e) => Err(connection_error(e)),
        }
    }

    /// Opens a TCP flow to `authority` (`host:port`) through the node.
    pub async fn open_tcp(
        &self,
        authority: &str,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
        self.open_flow(Frame::Connect {
            authority: authority.to_owned(),
        })
        .await
    }

    /// Opens a UDP flow to `authority` through the node.
    pub async fn open_udp(&self, authority: &str) -> Result<UdpFlow, ClientError> {
        let (send, recv) = self
            .open_flow(Frame::ConnectUdp {
                authority: authority.to_owned(),
            })
            .await?;
        let id = u64::from(recv.id());
        let (tx, inbox) = mpsc::channel(UDP_QUEUE);
        if let Ok(mut routes) = self.udp.lock() {
            routes.insert(id, tx);
        }
        Ok(UdpFlow {
            id,
            conn: self.conn.clone(),
            inbox,
            routes: self.udp.clone(),
            _send: send,
            _recv: recv,
        })
    }

    /// Opens a flow to a peer listening on the same node.
    pub async fn dial(
        &self,
        peer: PartyId,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
        self.open_flow(Frame::Dial {
            peer: *peer.as_bytes(),
        })
        .await
    }

    /// Tells the node to pass on peers that dial this client.
    pub async fn listen(&self) -> Result<(), ClientError> {
        let mut control = self.control.lock().await;
        io::write_frame(&mut *control, &Frame::Listen)
            .await
            .map_err(connection_error)
    }

    /// Waits for the next peer that dials this client.
    pub async fn accept_peer(
        &self,
    ) -> Result<(PartyId, quinn::SendStream, quinn::RecvStream), ClientError> {
        loop {
            let (send, mut recv) = self.conn.accept_bi().await.map_err(connection_error)?;
            if let Ok(Frame::Incoming { from }) = io::read_frame(&mut recv, ANSWER_TIMEOUT).await
                && let Ok(from) = PartyId::from_bytes(from)
            {
                return Ok((from, send, recv));
            }
        }
    }
}

impl Drop for RelayClient {
    fn drop(&mut self) {
        // The control task holds streams of the connection; closing it ends them, and
        // tells the node the session is over.
        self.conn
            .close(quinn::VarInt::from_u32(0), b"client closing");
    }
}

/// Serves peers that dial `client` by connecting each to `forward` (a local TCP
/// service), until the relay connection ends.
pub async fn forward_peers(
    client: Arc<RelayClient>,
    forward: SocketAddr,
) -> Result<(), ClientError> {
    client.listen().await?;
    loop {
        let (_from, send, recv) = client.accept_peer().await?;
        tokio::spawn(async move {
            if let Ok(tcp) = TcpStream::connect(forward).await {
                let (r, w) = tcp.into_split();
                io::splice(recv, send, r, w, io::Gate::default()).await;
            }
        });
    }
}

/// Accepts local TCP connections on `listener` and carries each to `peer` through the
/// node: the dialling side of a peer-relay port forward.
pub async fn dial_forward(client: Arc<RelayClient>, peer: PartyId, listener: &TcpListener) {
    while let Ok((tcp, _)) = listener.accept().await {
        let client = client.clone();
        tokio::spawn(async move {
            if let Ok((send, recv)) = retry_rate_limited(|| client.dial(peer)).await {
                let (r, w) = tcp.into_split();
                io::splice(recv, send, r, w, io::Gate::default()).await;
            }
        });
    }
}

/// A local SOCKS5 proxy (no authentication, CONNECT only) whose connections become
/// TCP flows through the node.
pub async fn serve_socks5(client: Arc<RelayClient>, listener: &TcpListener) {
    while let Ok((tcp, _)) = listener.accept().await {
        let client = client.clone();
        tokio::spawn(async move {
            let _ = socks5_session(client, tcp).await;
        });
    }
}

/// The SOCKS5 reply code for a node status (RFC 1928 §6).
fn socks_reply(status: Status) -> u8 {
    match status {
        Status::Ok => 0,
        Status::DestinationIpProhibited | Status::DestinationProhibited | Status::NotOffered => 2,
        Status::DnsError | Status::PeerNotFound => 4,
        Status::ConnectionRefused => 5,
        Status::ConnectionTimeout => 6,
        Status::MalformedAuthority => 8,
        _ => 1,
    }
}

async fn socks5_session(client: Arc<RelayClient>, mut tcp: TcpStream) -> std::io::Result<()> {
    let deadline = Duration::from_secs(10);
    let greeting = tokio::time::timeout(deadline, async {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await?;
        let mut methods = vec![0u8; usize::from(head[1])];
        tcp.read_exact(&mut methods).await?;
        Ok::<_, std::io::Error>((head[0], methods))
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    if greeting.0 != 5 || !greeting.1.contains(&0) {
        tcp.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    tcp.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    tcp.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            tcp.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            tcp.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            tcp.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut ip = [0u8; 16];
            tcp.read_exact(&mut ip).await?;
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => {
            tcp.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    let mut port = [0u8; 2];
    tcp.read_exact(&mut port).await?;
    if request[0] != 5 || request[1] != 1 {
        // Only CONNECT.
        tcp.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    }
    let authority = format!("{host}:{}", u16::from_be_bytes(port));
    match retry_rate_limited(|| client.open_tcp(&authority)).await {
        Ok((send, recv)) => {
            tcp.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            let (r, w) = tcp.into_split();
            io::splice(r, w, recv, send, io::Gate::default()).await;
        }
        Err(ClientError::Refused { status, message }) => {
            tracing_refusal(&authority, status, &message);
            tcp.write_all(&[5, socks_reply(status), 0, 1, 0, 0, 0, 0, 0, 0])
                .await?;
        }
        Err(_) => {
            tcp.write_all(&[5, 1, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        }
    }
    Ok(())
}

/// Opens a flow with `open`, trying again after a short pause (doubling) while the node
/// answers `rate_limited`, up to `RATE_LIMITED_TRIES` tries in all. The node already held
/// each try back as long as it would, so a flow that still gets this answer is part of a
/// burst larger than the node lets wait: a pause lets the burst drain.
async fn retry_rate_limited<T, F, Opening>(mut open: F) -> Result<T, ClientError>
where
    F: FnMut() -> Opening,
    Opening: Future<Output = Result<T, ClientError>>,
{
    let mut pause = RATE_LIMITED_PAUSE;
    for _ in 1..RATE_LIMITED_TRIES {
        match open().await {
            Err(ClientError::Refused {
                status: Status::RateLimited,
                ..
            }) => {}
            done => return done,
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    open().await
}

/// Every refusal is logged with its status code and the node's sentence.
fn tracing_refusal(authority: &str, status: Status, message: &str) {
    tracing::warn!(%authority, %status, "refused: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_limited_flows_are_tried_a_few_times_then_given_up() {
        let tries = std::cell::Cell::new(0);
        let started = std::time::Instant::now();
        let refused = retry_rate_limited(|| {
            tries.set(tries.get() + 1);
            async {
                Err::<(), _>(ClientError::Refused {
                    status: Status::RateLimited,
                    message: "slow down".into(),
                })
            }
        })
        .await;
        assert!(matches!(
            refused,
            Err(ClientError::Refused {
                status: Status::RateLimited,
                ..
            })
        ));
        assert_eq!(tries.get(), RATE_LIMITED_TRIES);
        let waited = started.elapsed();
        let pauses = RATE_LIMITED_PAUSE * (2u32.pow(RATE_LIMITED_TRIES - 1) - 1);
        assert!(
            waited >= pauses && waited < pauses + Duration::from_secs(1),
            "{waited:?}"
        );

        // Another answer, or success, is passed on at once.
        tries.set(0);
        let other = retry_rate_limited(|| {
            tries.set(tries.get() + 1);
            async {
                Err::<(), _>(ClientError::Refused {
                    status: Status::PeerNotFound,
                    message: String::new(),
                })
            }
        })
        .await;
        assert!(other.is_err());
        assert_eq!(tries.get(), 1);
        let third_time = retry_rate_limited(|| {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move {
                if n < 3 {
                    Err(ClientError::Refused {
                        status: Status::RateLimited,
                        message: String::new(),
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(third_time.ok(), Some(3));
    }
}
