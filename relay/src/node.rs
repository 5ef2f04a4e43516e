//! The node side of the relay: `RelayService` serves relay clients on the connections
//! it is handed (whose handshake chose ALPN `spare-relay/1`) and their flows: peer
//! relay (always) and TCP egress (when an egress policy is set). It owns no endpoint:
//! the node's router accepts connections and routes them by ALPN. `RelayNode` is a
//! standalone relay (`spare relay serve`, the tests and benchmarks): an endpoint of
//! its own that offers only this protocol. This is the I/O driver around `wire` and
//! `policy`.
//!
//! Every wait that a client controls has a deadline (handshake, first frame, connect,
//! a new flow's turn under the flow-open rate) and quinn's windows are finite, so a
//! client that stalls or floods costs the node a bounded amount and never affects other
//! clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use receipt::{PartyId, SignedReceipt, VerifiedReceipt};
use tokio::sync::mpsc;

use crate::endpoint::EndpointError;
use crate::io::{self, Counters};
use crate::metering::{Meter, Terms};
use crate::policy::EgressPolicy;
use crate::session::{Checkpoints, FlowOpen, Hello, Offer, Session};
use crate::ticket::Ticket;
use crate::wire::{Frame, Status};
use flows::{UdpFlows, refuse, route_datagrams, serve_flow};

mod flows;

/// How the node runs its relay.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's key: its TLS identity.
    pub key: SigningKey,
    /// The UDP address to listen on.
    pub bind: SocketAddr,
    /// Egress: `None` relays only between peers, never dialling anywhere itself.
    pub egress: Option<EgressPolicy>,
    /// Connected clients at most; more are refused (a standalone `RelayNode` refuses
    /// them before the handshake; behind the node's router, which cannot know a
    /// connection's protocol before its handshake, they are closed with the reason).
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
    /// New flows a client may open per second (bursts of twice as many); more wait
    /// their turn, up to `flow_open_wait`.
    pub flow_opens_per_second: u64,
    /// The longest a new flow waits for its turn under `flow_opens_per_second`; a flow
    /// whose turn is further away is refused with `rate_limited`.
    pub flow_open_wait: Duration,
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
            flow_open_wait: Duration::from_secs(3),
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

    /// Counts a client for as long as the slot lives (from before its handshake in a
    /// standalone `RelayNode`); `None` when `max_clients` are connected already.
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

    /// Clients connected now (in a standalone `RelayNode`, handshakes in progress
    /// included).
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

impl RelayService {
    /// What every byte of one session's flows passes: the client's and the node's rate
    /// caps, the quotas, the session's payment allowance, and the counters.
    fn gate(&self, session: &Arc<Counters>, allowance: Option<Arc<io::Allowance>>) -> io::Gate {
        let config = &self.config;
        io::Gate {
            counters: vec![self.counters.clone(), session.clone()],
            up: [io::bucket(config.client_rate.0), self.node_up.clone()]
                .into_iter()
                .flatten()
                .collect(),
            down: [io::bucket(config.client_rate.1), self.node_down.clone()]
                .into_iter()
                .flatten()
                .collect(),
            allowance,
            quota: self.quota.clone(),
        }
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

/// A session past its handshake: the client, its control stream and the session core.
struct Opened {
    client: PartyId,
    /// Whether bandwidth lending stopped, subscribed before `Hello` was answered so a
    /// stop while `Welcome` is on its way is not missed.
    stops: tokio::sync::watch::Receiver<Option<String>>,
    session: Session,
    session_id: [u8; 32],
    control_send: quinn::SendStream,
    control_recv: quinn::RecvStream,
}

/// The client's id, its control stream and `Hello`, answered with `Welcome` (or a
/// refusal, or closing the connection): `None` when the session does not open.
async fn open_session(shared: &RelayService, conn: &quinn::Connection) -> Option<Opened> {
    let config = &shared.config;
    let Some(client) = crate::tls::peer_id(conn) else {
        conn.close(quinn::VarInt::from_u32(1), b"no client key");
        return None;
    };
    // The control stream: Hello first, within the deadline.
    let Ok(Ok((mut control_send, mut control_recv))) =
        tokio::time::timeout(config.first_frame_timeout, conn.accept_bi()).await
    else {
        conn.close(quinn::VarInt::from_u32(2), b"no control stream in time");
        return None;
    };
    let session = Session::new(
        std::time::Instant::now(),
        Offer {
            session: *blake3::hash(&conn.stable_id().to_le_bytes()).as_bytes(),
            price_per_gib: config.price_per_gib,
            promise_margin: config.promise_margin,
            network: config.network.clone(),
        },
        config.flow_opens_per_second,
        config.flow_open_wait,
    );
    let first = io::read_frame(&mut control_recv, config.first_frame_timeout)
        .await
        .ok();
    let mut stops = shared.stopped.subscribe();
    let stopped = stops.borrow_and_update().clone();
    let welcome = match session.handle_hello(first.as_ref(), stopped.as_deref()) {
        Hello::Welcome(welcome) => welcome,
        Hello::Refuse(message) => {
            refuse_session(&mut control_send, message).await;
            return None;
        }
        Hello::Close(why) => {
            conn.close(quinn::VarInt::from_u32(3), why.as_bytes());
            return None;
        }
    };
    let Frame::Welcome {
        session: session_id,
        ..
    } = welcome
    else {
        return None;
    };
    if io::write_frame(&mut control_send, &welcome).await.is_err() {
        return None;
    }
    tracing::info!(
        client = %client,
        remote = %conn.remote_address(),
        price_per_gib = config.price_per_gib,
        "relay session started"
    );
    Some(Opened {
        client,
        stops,
        session,
        session_id,
        control_send,
        control_recv,
    })
}

async fn serve_connection(shared: Arc<RelayService>, conn: quinn::Connection, _slot: ClientSlot) {
    let config = &shared.config;
    let Some(Opened {
        client,
        stops,
        mut session,
        session_id,
        mut control_send,
        control_recv,
    }) = open_session(&shared, &conn).await
    else {
        return;
    };
    tokio::spawn(close_when_stopped(stops, conn.clone()));
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
    let gate = shared.gate(&session_counters, allowance.clone());
    tokio::spawn(serve_control(
        shared.clone(),
        client,
        conn.clone(),
        control_tx,
        control_recv,
        allowance.clone(),
    ));
    if let (Some(sessions), Some(allowance)) = (config.sessions.clone(), allowance.clone()) {
        tokio::spawn(report_checkpoints(
            conn.clone(),
            client,
            config.checkpoint_every,
            sessions,
            allowance,
            session_counters.clone(),
        ));
    }
    let flows: UdpFlows = Arc::default();
    tokio::spawn(route_datagrams(conn.clone(), flows.clone(), gate.clone()));
    while let Ok(mut streams) = conn.accept_bi().await {
        let wait = match session.handle_flow_open(std::time::Instant::now()) {
            FlowOpen::Now => Duration::ZERO,
            FlowOpen::After(wait) => wait,
            FlowOpen::Refuse => {
                tokio::spawn(async move {
                    let message = "too many new flows at once: slow down".to_owned();
                    refuse(&mut streams.0, Status::RateLimited, message).await;
                });
                continue;
            }
        };
        let flow = serve_flow(
            shared.clone(),
            client,
            streams,
            conn.clone(),
            flows.clone(),
            gate.clone(),
        );
        // A flow beyond the rate waits its turn (at most `flow_open_wait`) holding its
        // stream, which counts against the client's streams meanwhile.
        tokio::spawn(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            flow.await;
        });
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

/// Closes the connection with the reason when lending bandwidth stops.
async fn close_when_stopped(
    mut stops: tokio::sync::watch::Receiver<Option<String>>,
    conn: quinn::Connection,
) {
    loop {
        tokio::select! {
            _ = conn.closed() => return,
            changed = stops.changed() => {
                if changed.is_err() {
                    return;
                }
                let reason = stops.borrow_and_update().clone();
                if let Some(reason) = reason {
                    let message = format!("the node stopped lending bandwidth: {reason}");
                    conn.close(quinn::VarInt::from_u32(8), message.as_bytes());
                    return;
                }
            }
        }
    }
}

/// Reports a running session's latest promise when `Checkpoints` says, until the
/// connection closes, so a crash loses little.
async fn report_checkpoints(
    conn: quinn::Connection,
    client: PartyId,
    every: Duration,
    sessions: mpsc::UnboundedSender<SessionRecord>,
    allowance: Arc<io::Allowance>,
    counters: Arc<Counters>,
) {
    let mut checkpoints = Checkpoints::new(std::time::Instant::now(), every);
    loop {
        let at = tokio::time::Instant::from_std(checkpoints.poll_timeout());
        tokio::select! {
            _ = conn.closed() => return,
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
}
