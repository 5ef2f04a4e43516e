//! This machine's own addresses and its default gateways, read from the OS: the
//! driver's input to the egress policy (`policy.rs` only compares addresses; it reads
//! nothing); the interface addresses alone are what a ticket names by default.

use std::net::{IpAddr, Ipv4Addr};

/// This machine's own addresses (every interface) and its default gateways: egress
/// never connects to them, whatever mode the policy is in.
pub fn own() -> Vec<IpAddr> {
    let mut out = interfaces();
    out.extend(gateways());
    out.sort();
    out.dedup();
    out
}

/// This machine's interface addresses (no gateways): what a ticket may name.
pub fn interfaces() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// Default gateways from the kernel's routing table (Linux); none elsewhere.
fn gateways() -> Vec<IpAddr> {
    let Ok(table) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (destination, gateway) = (fields.get(1)?, fields.get(2)?);
            if *destination != "00000000" {
                return None;
            }
            // The kernel prints the address as a little-endian hex u32.
            let raw = u32::from_str_radix(gateway, 16).ok()?;
            (raw != 0).then(|| IpAddr::V4(Ipv4Addr::from(raw.swap_bytes())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn this_machines_addresses_are_found() {
        let own = own();
        assert!(own.contains(&ip("127.0.0.1")), "{own:?}");
        // Every interface address is there, so a public address of the node is too.
        assert!(own.len() >= 2, "{own:?}");
    }
}
