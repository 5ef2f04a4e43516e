//! A relay session's flows: TCP egress (checked, resolved, every answer checked, the
//! checked address dialled), UDP egress (one connected socket per flow, datagrams
//! dropped rather than queued), and peer relay (spliced stream to stream).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use receipt::PartyId;
use tokio::net::{TcpStream, UdpSocket};

use super::RelayService;
use crate::io;
use crate::policy::{Authority, Host, Refusal};
use crate::wire::{self, Frame, Status};

pub(super) async fn refuse(send: &mut quinn::SendStream, status: Status, message: String) {
    let _ = io::write_frame(send, &Frame::Status { status, message }).await;
    let _ = send.finish();
}

pub(super) async fn serve_flow(
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
pub(super) type UdpFlows = Arc<Mutex<HashMap<u64, Arc<UdpSocket>>>>;

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
pub(super) async fn route_datagrams(conn: quinn::Connection, flows: UdpFlows, gate: io::Gate) {
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
