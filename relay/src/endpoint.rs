//! A node's QUIC endpoint: one UDP socket (buffers raised where the OS allows), the
//! node's raw-public-key TLS identity offering the given ALPNs, and finite flow-control
//! windows. Whoever owns the endpoint (the node's router, or a standalone `RelayNode`)
//! binds it here and hands each connection to the protocol its ALPN names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;

/// Why the endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The UDP port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Socket buffers asked for; the OS may grant less (Linux caps them at rmem_max and
/// wmem_max), which is why they are asked for rather than assumed.
const SOCKET_BUFFER: usize = 8 << 20;

/// The node's UDP socket, with buffers raised where the OS allows: loopback and fast
/// links drop packets with the default buffers (quinn's bench loses ~2.6 % here).
fn udp_socket(bind: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    if bind.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&bind.into())?;
    Ok(socket.into())
}

/// Finite flow-control windows: quinn's default connection receive window is
/// unbounded, which would let one client make the node buffer without limit.
pub fn transport_config(idle: Duration, max_streams: u32) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(4 << 20));
    t.receive_window(quinn::VarInt::from_u32(16 << 20));
    t.send_window(8 << 20);
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(max_streams));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.datagram_receive_buffer_size(Some(1 << 20));
    if let Ok(idle) = quinn::IdleTimeout::try_from(idle) {
        t.max_idle_timeout(Some(idle));
    }
    t
}

/// Binds a server endpoint at `bind` with `key`'s identity, offering `alpns`; every
/// connection gets finite windows, at most `max_streams` streams and `idle` as its idle
/// timeout.
pub fn bind(
    key: &SigningKey,
    bind: SocketAddr,
    alpns: Vec<Vec<u8>>,
    idle: Duration,
    max_streams: u32,
) -> Result<quinn::Endpoint, EndpointError> {
    let mut tls = crate::tls::server_config(key)?;
    tls.alpn_protocols = alpns;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| crate::tls::TlsError::from_message(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(Arc::new(transport_config(idle, max_streams)));
    let bind_err = |source| EndpointError::Bind { addr: bind, source };
    let socket = udp_socket(bind).map_err(bind_err)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(bind_err)
}

/// The ALPN a connection agreed on.
pub fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
}
