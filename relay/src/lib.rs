//! Spare's bandwidth relay.
//!
//! Relay clients reach the node over QUIC and the node forwards their traffic: between
//! two clients (peer relay, the default) or to allowed destinations (egress, opt-in).
//! The sans-IO parts have no sockets and no clock; `node` and `client` are the tokio and
//! quinn drivers around them. No GPU and no SQLite anywhere here.
//!
//! - `wire`: the versioned frame codec and datagram header;
//! - `policy`: which destinations egress may reach (checked before and after DNS);
//! - `limits`: token buckets for rates (by back-pressure) and day/month quotas;
//! - `metering`: bytes relayed against the client's signed usage promises;
//! - `ticket`: the pasteable string naming a node and its addresses;
//! - `tls`: TLS identities from ed25519 keys (raw public keys, pinned node ids);
//! - `session`: one session's handshake, flow-open rate and checkpoints (sans-IO);
//! - `endpoint`: a QUIC endpoint for whoever owns it (the node's router);
//! - `node`: `RelayService`, relay sessions on connections it is handed: peer relay
//!   and egress; `RelayNode`, a standalone relay with an endpoint of its own;
//! - `client`: connecting through a node, peer forwards, a local SOCKS5 proxy;
//! - `addresses`: the machine's own addresses and gateways, read from the OS for the
//!   driver (the egress policy refuses them; tickets name them by default).

pub mod addresses;
pub mod client;
pub mod endpoint;
pub mod io;
pub mod limits;
pub mod metering;
pub mod node;
pub mod policy;
pub mod session;
pub mod ticket;
pub mod tls;
pub mod wire;
