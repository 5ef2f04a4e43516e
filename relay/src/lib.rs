//! Spare's bandwidth relay.
//!
//! Relay clients reach the node over QUIC and the node forwards their traffic: between
//! two clients (peer relay, the default) or to allowed destinations (egress, opt-in).
//! These modules are the relay's sans-IO parts: no sockets, no clock, no GPU, no SQLite.
//!
//! - `policy`: which destinations egress may reach (checked before and after DNS);
//! - `limits`: token buckets for rates (by back-pressure) and day/month quotas;
//! - `ticket`: the pasteable string naming a node and its addresses.

pub mod limits;
pub mod policy;
pub mod ticket;
