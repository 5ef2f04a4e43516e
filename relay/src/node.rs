//! The node side of the relay: `RelayService` serves relay clients on the connections
//! it is handed (whose handshake chose ALPN `spare-relay/1`) and their flows: peer
//! relay (always) and TCP egress (when an egress policy is set). It owns no endpoint:
//! the node's router accepts connections and routes them by ALPN. `RelayNode` is a
//! standalone relay (`spare relay serve`, the tests and benchmarks): an endpoint of
//! its own that offers only this protocol. This is the I/O driver around `wire` and
//! `policy`.
//!
//! Every wait that a client controls has a deadline (handshake, first frame, connect)
//! and quinn's windows are finite, so a client that stalls or floods costs the node a
//! bounded amount and never affects other clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use receipt::{PartyId, SignedReceipt, VerifiedReceipt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::endpoint::EndpointError;
use crate::io::{self, Counters};
use crate::metering::{Meter, Terms};
use crate::policy::{Authority, EgressPolicy, Host, Refusal};
use crate::session::{Checkpoints, Hello, Offer, Session};
use crate::ticket::Ticket;
use crate::wire::{self, Frame, Status};

/// How the node runs its relay.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's key: its TLS identity.
    pub key: SigningKey,
    /// The UDP address to listen on.
    pub bind: SocketAddr,
    /// Egress: `None` relays only between peers, never dialling anywhere itself.
    pub egress: Option<EgressPolicy>,
    /// Connected clients at most; more are refused before the handshake.
    pub max_clients: usize,
    /// Deadline for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Deadline for a client's `Hello` and for each flow's first frame.
    pub first_frame_timeout: Duration,
    /// Deadline for connecting to an egress destination.
    pub connect_timeout: Duration,
    /// A connection with no traffic this long is closed.
    pub idle_timeout: Duration,
    /// Concurrent flows (streams) per client.
    pub max_flows_per_client: u32,
    /// New flows a client may open per second (bursts of twice as many); more are
    /// refused with `rate_limited`.
    pub flow_opens_per_second: u64,
    /// Per-client caps, bytes per second client → destination and back (0: none).
    pub client_rate: (u64, u64),
    /// Whole-node caps, bytes per second up and down (0: none).
    pub node_rate: (u64, u64),
    /// Whole-node quotas, bytes a UTC day and a UTC month, up and down together
    /// (0: none).
    pub quota: (u64, u64),
    /// What the quotas had used in a previous run, and in which period (see
    /// `RelayNode::quota_used`): only what is still today and this month counts.
    pub quota_used: Option<(crate::limits::Period, u64, u64)>,
    /// Price in micro-credits per GiB relayed; 0 relays without promises.
    pub price_per_gib: u64,
    /// Bytes a client may be relayed beyond its last promise before it is paused.
    pub promise_margin: u64,
    /// The network promises are made on (`demo` for demo traffic).
    pub network: String,
    /// Where sessions are reported (for the ledger): every `checkpoint_every` while
    /// a new promise arrived, and once at the end.
    pub sessions: Option<mpsc::UnboundedSender<SessionRecord>>,
    /// How often a running session's latest promise is reported, so a crash loses
    /// little.
    pub checkpoint_every: Duration,
}

/// A session's state: what was relayed and the latest promise that pays for it.
#[derive(Debug)]
pub struct SessionRecord {
    /// True for the last record of a session; earlier ones are checkpoints.
    pub ended: bool,
    /// The client.
    pub client: PartyId,
    /// Bytes client → destination.
    pub up: u64,
    /// Bytes destination → client.
    pub down: u64,
    /// The client's latest valid promise: the ledger entry's receipt.
    pub receipt: Option<VerifiedReceipt>,
}

impl NodeConfig {
    /// Safe defaults: peer relay only, on `bind`.
    pub fn new(key: SigningKey, bind: SocketAddr) -> Self {
        Self {
            key,
            bind,
            egress: None,
            max_clients: 1_000,
            handshake_timeout: Duration::from_secs(10),
            first_frame_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_flows_per_client: 64,
            flow_opens_per_second: 50,
            client_rate: (0, 0),
            node_rate: (0, 0),
            quota: (0, 0),
            quota_used: None,
            price_per_gib: 0,
            promise_margin: 64 << 20,
            network: "demo".into(),
            sessions: None,
            checkpoint_every: Duration::from_secs(10),
        }
    }
}

/// The relay protocol on the connections it is handed, with every limit and the
/// payment of its sessions. Cheap to share.
pub struct RelayService {
    config: NodeConfig,
    id: PartyId,
    listeners: Mutex<HashMap<PartyId, quinn::Connection>>,
    clients: AtomicUsize,
    counters: Arc<Counters>,
    node_up: Option<io::SharedBucket>,
    node_down: Option<io::SharedBucket>,
    quota: Option<Arc<io::QuotaGate>>,
    /// `None` while the node lends bandwidth; otherwise why not (the owner is back,
    /// paused, over quota). New relay clients are refused with this reason and
    /// connected ones are closed; other services on the port keep working.
    stopped: tokio::sync::watch::Sender<Option<String>>,
}

/// A standalone relay node: an endpoint of its own offering only the relay protocol.
/// Dropping it closes the endpoint.
pub struct RelayNode {
    endpoint: quinn::Endpoint,
    service: Arc<RelayService>,
}

impl RelayService {
    /// The relay service for `config` (its `bind` is the endpoint owner's business).
    pub fn new(mut config: NodeConfig) -> Arc<RelayService> {
        // The node's own and gateway addresses are refused in every mode.
        if let Some(policy) = &mut config.egress {
            policy.node_addresses.extend(crate::addresses::own());
            if policy.allow_loopback_for_tests {
                policy.node_addresses.retain(|ip| !ip.is_loopback());
            }
        }
        let id = PartyId::of(&config.key);
        let quota = (config.quota != (0, 0))
            .then(|| Arc::new(io::QuotaGate::new(config.quota.0, config.quota.1)));
        if let (Some(gate), Some((period, day, month))) = (&quota, config.quota_used) {
            gate.restore(period, day, month);
        }
        let node_up = io::bucket(config.node_rate.0);
        let node_down = io::bucket(config.node_rate.1);
        Arc::new(RelayService {
            config,
            id,
            listeners: Mutex::new(HashMap::new()),
            clients: AtomicUsize::new(0),
            counters: Arc::new(Counters::default()),
            node_up,
            node_down,
            quota,
            stopped: tokio::sync::watch::Sender::new(None),
        })
    }

    /// Counts a client from before its handshake, for as long as the slot lives;
    /// `None` when `max_clients` are connected already (refuse the connection).
    pub fn try_reserve(self: &Arc<Self>) -> Option<ClientSlot> {
        let taken = self.clients.fetch_add(1, Ordering::SeqCst);
        let slot = ClientSlot(self.clone());
        (taken < self.config.max_clients).then_some(slot)
    }

    /// The node's id.
    pub fn id(&self) -> PartyId {
        self.id
    }

    /// The deadline for a client's TLS handshake.
    pub fn handshake_timeout(&self) -> Duration {
        self.config.handshake_timeout
    }

    /// Bytes relayed so far, client to destination and back.
    pub fn relayed(&self) -> (u64, u64) {
        (
            self.counters.up.load(Ordering::Relaxed),
            self.counters.down.load(Ordering::Relaxed),
        )
    }

    /// Clients connected now (handshakes in progress included).
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }

    /// Bytes the quotas have counted today and this month, with the period, to be
    /// given back as `NodeConfig::quota_used` after a restart (`None`: no quota).
    pub fn quota_used(&self) -> Option<(crate::limits::Period, u64, u64)> {
        self.quota.as_ref().map(|q| q.used())
    }

    /// The share of the tighter bandwidth quota used, in percent (`None`: no quota).
    pub fn quota_percent(&self) -> Option<u32> {
        self.quota.as_ref().map(|q| q.percent_used())
    }

    /// Stops lending bandwidth, with the reason clients are told (`Some`), or starts
    /// again (`None`). Stopping closes every relay connection and refuses new ones;
    /// other protocols on the node's port keep working. Sessions that end this way
    /// are reported (and so paid) like any other.
    pub fn set_stopped(&self, reason: Option<String>) {
        self.stopped.send_if_modified(|now| {
            let changed = *now != reason;
            *now = reason;
            changed
        });
    }

    /// Serves the relay session on `conn` (its handshake chose `wire::ALPN`) until it
    /// ends; `slot` counts the client meanwhile.
    pub async fn serve(self: Arc<Self>, conn: quinn::Connection, slot: ClientSlot) {
        serve_connection(self, conn, slot).await;
    }
}

impl RelayNode {
    /// Starts a standalone relay node on the current tokio runtime.
    pub fn start(config: NodeConfig) -> Result<RelayNode, EndpointError> {
        let endpoint = crate::endpoint::bind(
            &config.key,
            config.bind,
            vec![crate::wire::ALPN.to_vec()],
            config.idle_timeout,
            config.max_flows_per_client,
        )?;
        let service = RelayService::new(config);
        let accepting = endpoint.clone();
        let state = service.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                // Over `max_clients`, refused before the handshake costs anything.
                let Some(slot) = state.try_reserve() else {
                    incoming.refuse();
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(state.handshake_timeout(), incoming);
                    if let Ok(Ok(conn)) = handshake.await {
                        state.serve(conn, slot).await;
                    }
                });
            }
        });
        Ok(RelayNode { endpoint, service })
    }

    /// The relay service this node's endpoint hands its connections to.
    pub fn service(&self) -> &Arc<RelayService> {
        &self.service
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The node's id.
    pub fn id(&self) -> PartyId {
        self.service.id
    }

    /// A ticket for this node at `addresses` (or at its listening address).
    pub fn ticket(&self, addresses: Vec<SocketAddr>) -> Option<Ticket> {
        let addresses = if addresses.is_empty() {
            vec![self.local_addr().ok()?]
        } else {
            addresses
        };
        Ticket::new(self.service.id, addresses)
    }

    /// Bytes relayed so far, client to destination and back.
    pub fn relayed(&self) -> (u64, u64) {
        self.service.relayed()
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.service.clients()
    }

    /// See `RelayService::quota_used`.
    pub fn quota_used(&self) -> Option<(crate::limits::Period, u64, u64)> {
        self.service.quota_used()
    }

    /// See `RelayService::quota_percent`.
    pub fn quota_percent(&self) -> Option<u32> {
        self.service.quota_percent()
    }

    /// See `RelayService::set_stopped`.
    pub fn set_stopped(&self, reason: Option<String>) {
        self.service.set_stopped(reason);
    }
}

impl Drop for RelayNode {
    fn drop(&mut self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"node stopping");
    }
}

/// Counts a connected client for as long as it lives (`RelayService::try_reserve`).
pub struct ClientSlot(Arc<RelayService>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers a client's `Hello` with `not_offered` and why, and waits (briefly) for the
/// client to have it before the connection goes away.
async fn refuse_session(control_send: &mut quinn::SendStream, message: String) {
    let refusal = Frame::Status {
        status: Status::NotOffered,
        message,
    };
    let _ = io::write_frame(control_send, &refusal).await;
    let _ = control_send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), control_send.stopped()).await;
}

async fn serve_connection(shared: Arc<RelayService>, conn: quinn::Connection, _slot: ClientSlot) {
    let config = &shared.config;
    let Some(client) = crate::tls::peer_id(&conn) else {
        conn.close(quinn::VarInt::from_u32(1), b"no client key");
        return;
    };
    // The control stream: Hello first, within the deadline.
    let Ok(Ok((mut control_send, mut control_recv))) =
        tokio::time::timeout(config.first_frame_timeout, conn.accept_bi()).await
    else {
        conn.close(quinn::VarInt::from_u32(2), b"no control stream in time");
        return;
    };
    let mut session = Session::new(
        std::time::Instant::now(),
        Offer {
            session: *blake3::hash(&conn.stable_id().to_le_bytes()).as_bytes(),
            price_per_gib: config.price_per_gib,
            promise_margin: config.promise_margin,
            network: config.network.clone(),
        },
        config.flow_opens_per_second,
    );
    let first = io::read_frame(&mut control_recv, config.first_frame_timeout)
        .await
        .ok();
    let stopped = shared.stopped.borrow().clone();
    let welcome = match session.handle_hello(first.as_ref(), stopped.as_deref()) {
        Hello::Welcome(welcome) => welcome,
        Hello::Refuse(message) => {
            refuse_session(&mut control_send, message).await;
            return;
        }
        Hello::Close(why) => {
            conn.close(quinn::VarInt::from_u32(3), why.as_bytes());
            return;
        }
    };
    // When lending stops, the connection is closed with the reason.
    let mut stops = shared.stopped.subscribe();
    let closing = conn.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = closing.closed() => return,
                changed = stops.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let reason = stops.borrow_and_update().clone();
                    if let Some(reason) = reason {
                        let message = format!("the node stopped lending bandwidth: {reason}");
                        closing.close(quinn::VarInt::from_u32(8), message.as_bytes());
                        return;
                    }
                }
            }
        }
    });
    let Frame::Welcome {
        session: session_id,
        ..
    } = welcome
    else {
        return;
    };
    if io::write_frame(&mut control_send, &welcome).await.is_err() {
        return;
    }
    tracing::info!(
        client = %client,
        remote = %conn.remote_address(),
        price_per_gib = config.price_per_gib,
        "relay session started"
    );
    // One writer owns the control stream; flows and the control reader send to it.
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<Frame>();
    tokio::spawn(async move {
        while let Some(frame) = control_rx.recv().await {
            if io::write_frame(&mut control_send, &frame).await.is_err() {
                return;
            }
        }
    });
    let session_counters = Arc::new(Counters::default());
    let allowance = (config.price_per_gib > 0).then(|| {
        Arc::new(io::Allowance::new(
            Meter::new(Terms {
                node: shared.id,
                client,
                session: session_id,
                network: config.network.clone(),
                price_per_gib: config.price_per_gib,
                margin: config.promise_margin,
            }),
            control_tx.clone(),
        ))
    });
    let gate = io::Gate {
        counters: vec![shared.counters.clone(), session_counters.clone()],
        up: [io::bucket(config.client_rate.0), shared.node_up.clone()]
            .into_iter()
            .flatten()
            .collect(),
        down: [io::bucket(config.client_rate.1), shared.node_down.clone()]
            .into_iter()
            .flatten()
            .collect(),
        allowance: allowance.clone(),
        quota: shared.quota.clone(),
    };
    tokio::spawn(serve_control(
        shared.clone(),
        client,
        conn.clone(),
        control_tx,
        control_recv,
        allowance.clone(),
    ));
    if let (Some(sessions), Some(allowance)) = (config.sessions.clone(), allowance.clone()) {
        let counters = session_counters.clone();
        let watched = conn.clone();
        let mut checkpoints = Checkpoints::new(std::time::Instant::now(), config.checkpoint_every);
        tokio::spawn(async move {
            loop {
                let at = tokio::time::Instant::from_std(checkpoints.poll_timeout());
                tokio::select! {
                    _ = watched.closed() => return,
                    () = tokio::time::sleep_until(at) => {}
                }
                let receipt = allowance.latest();
                let units = receipt.as_ref().map(|r| r.receipt().units);
                if checkpoints.handle_timeout(std::time::Instant::now(), units) {
                    let _ = sessions.send(SessionRecord {
                        ended: false,
                        client,
                        up: counters.up.load(Ordering::Relaxed),
                        down: counters.down.load(Ordering::Relaxed),
                        receipt,
                    });
                }
            }
        });
    }
    let flows: UdpFlows = Arc::default();
    tokio::spawn(route_datagrams(conn.clone(), flows.clone(), gate.clone()));
    while let Ok(mut streams) = conn.accept_bi().await {
        if !session.handle_flow_open(std::time::Instant::now()) {
            tokio::spawn(async move {
                let message = "too many new flows at once: slow down".to_owned();
                refuse(&mut streams.0, Status::RateLimited, message).await;
            });
            continue;
        }
        tokio::spawn(serve_flow(
            shared.clone(),
            client,
            streams,
            conn.clone(),
            flows.clone(),
            gate.clone(),
        ));
    }
    forget_listener(&shared, client, &conn);
    tracing::info!(
        client = %client,
        up = session_counters.up.load(Ordering::Relaxed),
        down = session_counters.down.load(Ordering::Relaxed),
        why = %conn.close_reason().map(|r| r.to_string()).unwrap_or_default(),
        "relay session ended"
    );
    if let Some(sessions) = &config.sessions {
        let _ = sessions.send(SessionRecord {
            ended: true,
            client,
            up: session_counters.up.load(Ordering::Relaxed),
            down: session_counters.down.load(Ordering::Relaxed),
            receipt: allowance.and_then(|a| a.latest()),
        });
    }
}

fn forget_listener(shared: &RelayService, client: PartyId, conn: &quinn::Connection) {
    if let Ok(mut listeners) = shared.listeners.lock()
        && listeners.get(&client).map(quinn::Connection::stable_id) == Some(conn.stable_id())
    {
        listeners.remove(&client);
    }
}

async fn serve_control(
    shared: Arc<RelayService>,
    client: PartyId,
    conn: quinn::Connection,
    control: mpsc::UnboundedSender<Frame>,
    mut recv: quinn::RecvStream,
    allowance: Option<Arc<io::Allowance>>,
) {
    // No deadline between control frames: the connection's idle timeout applies.
    let forever = Duration::from_secs(u64::from(u32::MAX));
    loop {
        match io::read_frame(&mut recv, forever).await {
            Ok(Frame::Listen) => {
                if let Ok(mut listeners) = shared.listeners.lock() {
                    listeners.insert(client, conn.clone());
                }
            }
            Ok(Frame::Ping { nonce }) => {
                let _ = control.send(Frame::Pong { nonce });
            }
            Ok(Frame::Promise { receipt, signature }) => {
                let Some(allowance) = &allowance else {
                    continue; // this node does not charge
                };
                let promise = SignedReceipt {
                    bytes: receipt,
                    signature,
                };
                if let Err(e) = allowance.on_promise(&promise) {
                    let _ = control.send(Frame::Status {
                        status: Status::PaymentRequired,
                        message: format!("promise refused: {e}"),
                    });
                }
            }
            Ok(Frame::Pong { .. }) => {}
            Ok(_) => {
                conn.close(
                    quinn::VarInt::from_u32(4),
                    b"unexpected frame on the control stream",
                );
                return;
            }
            Err(_) => {
                // A malformed frame is hostile or broken: close the connection.
                conn.close(quinn::VarInt::from_u32(5), b"malformed control stream");
                forget_listener(&shared, client, &conn);
                return;
            }
        }
    }
}

async fn refuse(send: &mut quinn::SendStream, status: Status, message: String) {
    let _ = io::write_frame(send, &Frame::Status { status, message }).await;
    let _ = send.finish();
}

async fn serve_flow(
    shared: Arc<RelayService>,
    client: PartyId,
    (mut send, mut recv): (quinn::SendStream, quinn::RecvStream),
    conn: quinn::Connection,
    flows: UdpFlows,
    gate: io::Gate,
) {
    let first = io::read_frame(&mut recv, shared.config.first_frame_timeout).await;
    if let Some(which) = shared.quota.as_ref().and_then(|q| q.exceeded())
        && matches!(
            first,
            Ok(Frame::Connect { .. } | Frame::ConnectUdp { .. } | Frame::Dial { .. })
        )
    {
        let period = match which {
            crate::limits::QuotaExceeded::Daily => "today's",
            crate::limits::QuotaExceeded::Monthly => "this month's",
        };
        let message = format!("{period} bandwidth quota of this node is used up");
        return refuse(&mut send, Status::QuotaExceeded, message).await;
    }
    match first {
        Ok(Frame::Connect { authority }) => egress(&shared, &authority, send, recv, gate).await,
        Ok(Frame::Dial { peer }) => peer_relay(&shared, client, peer, send, recv, gate).await,
        Ok(Frame::ConnectUdp { authority }) => {
            udp_egress(&shared, &authority, send, recv, conn, flows, gate).await;
        }
        Ok(_) => {
            refuse(
                &mut send,
                Status::NotOffered,
                "a flow starts with Connect or Dial".into(),
            )
            .await;
        }
        Err(_) => {
            let _ = send.reset(quinn::VarInt::from_u32(6));
        }
    }
}

fn refusal_status(refusal: &Refusal) -> Status {
    match refusal {
        Refusal::MalformedAuthority(_) => Status::MalformedAuthority,
        Refusal::Prohibited { .. } | Refusal::NodeAddress(_) => Status::DestinationIpProhibited,
        Refusal::PortBlocked(_) | Refusal::NotAllowListed(_) => Status::DestinationProhibited,
    }
}

/// Checks an authority, resolves it, checks every answer and returns the exact
/// address to connect to: a name that resolves to a forbidden address is refused,
/// whatever it is called, and nothing resolves it again after the check.
async fn checked_destination(
    shared: &RelayService,
    authority: &str,
) -> Result<(Authority, SocketAddr), (Status, String)> {
    let Some(policy) = &shared.config.egress else {
        let message = "this node relays between peers only; egress is off".into();
        return Err((Status::NotOffered, message));
    };
    let authority = authority
        .parse::<Authority>()
        .and_then(|a| policy.check_authority(&a).map(|()| a))
        .map_err(|r| (refusal_status(&r), r.to_string()))?;
    let candidates: Vec<SocketAddr> = match &authority.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, authority.port)],
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), authority.port))
            .await
            .map_err(|e| (Status::DnsError, format!("{name} did not resolve: {e}")))?
            .collect(),
    };
    let mut first_refusal = None;
    for addr in candidates {
        match policy.check_address(addr.ip()) {
            Ok(()) => return Ok((authority, addr)),
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    Err(match first_refusal {
        Some(r) => (refusal_status(&r), format!("{authority}: {r}")),
        None => (Status::DnsError, format!("{authority} has no addresses")),
    })
}

async fn egress(
    shared: &RelayService,
    authority: &str,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    gate: io::Gate,
) {
    let (authority, target) = match checked_destination(shared, authority).await {
        Ok(found) => found,
        Err((status, message)) => return refuse(&mut send, status, message).await,
    };
    let tcp = match tokio::time::timeout(shared.config.connect_timeout, TcpStream::connect(target))
        .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            let message = format!("{authority} ({target}) refused the connection: {e}");
            return refuse(&mut send, Status::ConnectionRefused, message).await;
        }
        Err(_) => {
            let message = format!("{authority} ({target}) did not answer in time");
            return refuse(&mut send, Status::ConnectionTimeout, message).await;
        }
    };
    let ok = Frame::Status {
        status: Status::Ok,
        message: String::new(),
    };
    if io::write_frame(&mut send, &ok).await.is_err() {
        return;
    }
    let _ = tcp.set_nodelay(true);
    let (tcp_read, tcp_write) = tcp.into_split();
    io::splice(recv, send, tcp_read, tcp_write, gate).await;
}

/// The UDP flows of one connection, by the stream id that opened each.
type UdpFlows = Arc<Mutex<HashMap<u64, Arc<UdpSocket>>>>;

/// UDP egress: one socket connected to the checked address; payloads travel as QUIC
/// datagrams tagged with the flow's stream id (RFC 9297). A datagram that does not fit
/// either way is dropped, never queued. The flow lives while its stream is open.
async fn udp_egress(
    shared: &RelayService,
    authority: &str,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    conn: quinn::Connection,
    flows: UdpFlows,
    gate: io::Gate,
) {
    let (authority, target) = match checked_destination(shared, authority).await {
        Ok(found) => found,
        Err((status, message)) => return refuse(&mut send, status, message).await,
    };
    let bind: SocketAddr = if target.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0u8; 4], 0))
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            let message = format!("cannot open a UDP socket: {e}");
            return refuse(&mut send, Status::InternalError, message).await;
        }
    };
    if let Err(e) = socket.connect(target).await {
        let message = format!("{authority} ({target}): {e}");
        return refuse(&mut send, Status::ConnectionRefused, message).await;
    }
    let socket = Arc::new(socket);
    let id = u64::from(recv.id());
    if let Ok(mut flows) = flows.lock() {
        flows.insert(id, socket.clone());
    }
    let ok = Frame::Status {
        status: Status::Ok,
        message: String::new(),
    };
    if io::write_frame(&mut send, &ok).await.is_ok() {
        let replies = async {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = socket.recv(&mut buf).await {
                let datagram = wire::encode_datagram(id, &buf[..n]);
                let fits = conn
                    .max_datagram_size()
                    .is_some_and(|max| datagram.len() <= max);
                if fits && gate.admit_datagram(false, n as u64) {
                    let _ = conn.send_datagram(datagram.into());
                }
            }
        };
        // The flow ends when the client closes or resets its stream.
        let mut sink = [0u8; 64];
        let closed = async { while let Ok(Some(_)) = recv.read(&mut sink).await {} };
        tokio::select! {
            () = replies => {}
            () = closed => {}
        }
    }
    if let Ok(mut flows) = flows.lock() {
        flows.remove(&id);
    }
    let _ = send.finish();
}

/// Passes the client's datagrams to their UDP flows.
async fn route_datagrams(conn: quinn::Connection, flows: UdpFlows, gate: io::Gate) {
    while let Ok(datagram) = conn.read_datagram().await {
        let Ok((id, payload)) = wire::decode_datagram(&datagram) else {
            continue; // malformed: dropped
        };
        let socket = flows.lock().ok().and_then(|f| f.get(&id).cloned());
        if let Some(socket) = socket
            && gate.admit_datagram(true, payload.len() as u64)
        {
            let _ = socket.try_send(payload);
        }
    }
}

async fn peer_relay(
    shared: &RelayService,
    client: PartyId,
    peer: [u8; 32],
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    gate: io::Gate,
) {
    let listener = PartyId::from_bytes(peer).ok().and_then(|id| {
        shared
            .listeners
            .lock()
            .ok()
            .and_then(|l| l.get(&id).cloned())
    });
    let Some(listener) = listener else {
        let message = "no client with that id is listening on this node".into();
        return refuse(&mut send, Status::PeerNotFound, message).await;
    };
    let Ok((mut to_peer, from_peer)) = listener.open_bi().await else {
        let message = "the peer went away".into();
        return refuse(&mut send, Status::PeerNotFound, message).await;
    };
    let incoming = Frame::Incoming {
        from: *client.as_bytes(),
    };
    if io::write_frame(&mut to_peer, &incoming).await.is_err() {
        let message = "the peer went away".into();
        return refuse(&mut send, Status::PeerNotFound, message).await;
    }
    let ok = Frame::Status {
        status: Status::Ok,
        message: String::new(),
    };
    if io::write_frame(&mut send, &ok).await.is_err() {
        return;
    }
    io::splice(recv, send, from_peer, to_peer, gate).await;
}
