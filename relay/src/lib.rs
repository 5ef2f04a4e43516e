//! Spare's bandwidth relay.
//!
//! Relay clients reach the node over QUIC and the node forwards their traffic: between
//! two clients (peer relay, the default) or to allowed destinations (egress, opt-in).
//! These modules are the relay's sans-IO parts: no sockets, no clock, no GPU, no SQLite.
//!
//! - `wire`: the versioned frame codec and datagram header;
//! - `policy`: which destinations egress may reach (checked before and after DNS);
//! - `limits`: token buckets for rates (by back-pressure) and day/month quotas;
//! - `metering`: bytes relayed against the client's signed usage promises;
//! - `ticket`: the pasteable string naming a node and its addresses.

pub mod limits;
pub mod metering;
pub mod policy;
pub mod ticket;
pub mod wire;
