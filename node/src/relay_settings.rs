//! The node's relay service settings from its config: prices, rate caps, quotas and
//! egress, and the addresses its ticket names.

use std::net::SocketAddr;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use relay::node::NodeConfig;
use relay::policy::{AllowRule, EgressPolicy};
use relay::ticket::{PartyId, Ticket};

use crate::config::{Config, EgressMode};

/// The addresses this node's ticket names: the configured ones, else every
/// non-loopback address of this machine at the relay port (loopback when none).
pub fn ticket_addresses(config: &Config, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let configured = config
        .relay
        .public_addresses
        .iter()
        .map(|a| a.parse::<SocketAddr>())
        .collect::<Result<Vec<_>, _>>()
        .context("relay.public_addresses")?;
    if !configured.is_empty() {
        return Ok(configured);
    }
    let mut own: Vec<SocketAddr> = relay::addresses::interfaces()
        .into_iter()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .filter(
            |ip| !matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80),
        )
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    own.truncate(relay::ticket::MAX_ADDRESSES);
    if own.is_empty() {
        own.push(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Ok(own)
}

/// This node's ticket, from its key and config: what `spare ticket` prints.
pub fn ticket(key: &SigningKey, config: &Config) -> anyhow::Result<Ticket> {
    let id = PartyId::of(key);
    Ticket::new(id, ticket_addresses(config, config.relay.port)?)
        .context("a ticket holds 1 to 8 addresses with non-zero ports")
}

/// The relay node's settings from the config: price, rate caps, quotas and egress
/// (`mode` with the `allow` rules), on `network`.
pub fn node_config(
    key: SigningKey,
    config: &Config,
    bind: SocketAddr,
    network: &str,
    mode: EgressMode,
    allow: &[String],
) -> anyhow::Result<NodeConfig> {
    let mut node_config = NodeConfig::new(key, bind);
    node_config.network = network.to_owned();
    node_config.price_per_gib = config.relay.price_per_gib;
    let kbps = |k: u32| u64::from(k) * 1000 / 8;
    node_config.node_rate = (
        kbps(config.bandwidth.upload_kbps),
        kbps(config.bandwidth.download_kbps),
    );
    node_config.quota = (
        u64::from(config.bandwidth.daily_quota_mb) * 1_000_000,
        u64::from(config.bandwidth.monthly_quota_gb) * 1_000_000_000,
    );
    let rules = allow
        .iter()
        .map(|r| r.parse::<AllowRule>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("relay.allow")?;
    node_config.egress = match mode {
        EgressMode::Off => None,
        EgressMode::Allowlist => Some(EgressPolicy::allow_list(rules)),
        EgressMode::Open => Some(EgressPolicy::open()),
    };
    Ok(node_config)
}
