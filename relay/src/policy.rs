//! Egress policy: which destinations the node will connect to for a relay client.
//!
//! Two checks, in this order:
//! 1. [`EgressPolicy::check_authority`], before DNS: the authority must be well formed,
//!    its port not blocked, and (in allow-list mode) its host and port on the list;
//! 2. [`EgressPolicy::check_address`], after DNS, for the exact address the node will
//!    connect to: special-purpose addresses (loopback, private, link-local, CGNAT,
//!    multicast, broadcast, documentation, IPv4-mapped/-compatible, NAT64, 6to4,
//!    Teredo, …) and the node's own and gateway addresses are refused.
//!
//! The caller resolves the name itself and connects to the checked address, never to
//! the name again, so a rebinding DNS answer cannot slip past the check. No I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a destination was refused, with the RFC 9209-style status it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The authority is not `host:port` with a valid host.
    MalformedAuthority(String),
    /// The address is in a special-purpose range.
    Prohibited {
        /// The address.
        ip: IpAddr,
        /// Which range.
        range: SpecialRange,
    },
    /// The address is one of the node's own or its gateway's.
    NodeAddress(IpAddr),
    /// The port is blocked (for example SMTP).
    PortBlocked(u16),
    /// Allow-list mode and the destination is not on the list.
    NotAllowListed(String),
}

impl Refusal {
    /// The status code sent to the client.
    pub fn status(&self) -> &'static str {
        match self {
            Refusal::MalformedAuthority(_) => "malformed_authority",
            Refusal::Prohibited { .. } | Refusal::NodeAddress(_) => "destination_ip_prohibited",
            Refusal::PortBlocked(_) | Refusal::NotAllowListed(_) => "destination_prohibited",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MalformedAuthority(why) => write!(f, "malformed destination: {why}"),
            Refusal::Prohibited { ip, range } => {
                write!(
                    f,
                    "{ip} is a {range} address; this node never connects there"
                )
            }
            Refusal::NodeAddress(ip) => {
                write!(f, "{ip} is this node's own or its gateway's address")
            }
            Refusal::PortBlocked(port) => write!(f, "port {port} is blocked on this node"),
            Refusal::NotAllowListed(dest) => {
                write!(f, "{dest} is not on this node's allow-list of destinations")
            }
        }
    }
}

/// A special-purpose address range (IANA registries, RFC 6890 and successors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialRange {
    /// 0.0.0.0/8, ::/128.
    Unspecified,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64.0.0/10 (carrier-grade NAT).
    SharedAddressSpace,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// 192.0.0/24, 240/4, 100::/64, ORCHID, site-local and other reserved space.
    Reserved,
    /// fc00::/7.
    UniqueLocal,
    /// ::ffff:0:0/96: an IPv4 address in IPv6 clothing.
    Ipv4Mapped,
    /// ::/96 (deprecated IPv4-compatible).
    Ipv4Compatible,
    /// 64:ff9b::/96, 64:ff9b:1::/48.
    Nat64,
    /// 2002::/16, 192.88.99/24.
    SixToFour,
    /// 2001::/32.
    Teredo,
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecialRange::Unspecified => "unspecified",
            SpecialRange::Loopback => "loopback",
            SpecialRange::Private => "private-network",
            SpecialRange::SharedAddressSpace => "carrier-grade-NAT",
            SpecialRange::LinkLocal => "link-local",
            SpecialRange::Multicast => "multicast",
            SpecialRange::Broadcast => "broadcast",
            SpecialRange::Documentation => "documentation",
            SpecialRange::Benchmarking => "benchmarking",
            SpecialRange::Reserved => "reserved",
            SpecialRange::UniqueLocal => "unique-local",
            SpecialRange::Ipv4Mapped => "IPv4-mapped",
            SpecialRange::Ipv4Compatible => "IPv4-compatible",
            SpecialRange::Nat64 => "NAT64",
            SpecialRange::SixToFour => "6to4",
            SpecialRange::Teredo => "Teredo",
        })
    }
}

/// The special-purpose range an address is in, or `None` for an ordinary public one.
pub fn special_range(ip: IpAddr) -> Option<SpecialRange> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn special_v4(ip: Ipv4Addr) -> Option<SpecialRange> {
    use SpecialRange::*;
    const TABLE: &[([u8; 4], u32, SpecialRange)] = &[
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, SixToFour),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, range)| *range)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

fn special_v6(ip: Ipv6Addr) -> Option<SpecialRange> {
    use SpecialRange::*;
    let table: [(Ipv6Addr, u32, SpecialRange); 18] = [
        (Ipv6Addr::UNSPECIFIED, 128, Unspecified),
        (Ipv6Addr::LOCALHOST, 128, Loopback),
        (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96, Ipv4Mapped),
        (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, Nat64),
        (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, Nat64),
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, Reserved),
        (
            Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0),
            48,
            Benchmarking,
        ),
        (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28, Reserved),
        (Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0), 28, Reserved),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
            32,
            Documentation,
        ),
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, Teredo),
        (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, SixToFour),
        (
            Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
            20,
            Documentation,
        ),
        (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, Reserved),
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, UniqueLocal),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, LinkLocal),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Reserved),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Multicast),
    ];
    if let Some((_, _, range)) = table.iter().find(|(net, p, _)| in_v6(ip, *net, *p)) {
        return Some(*range);
    }
    // ::/96 holds the deprecated IPv4-compatible addresses (after :: and ::1 above).
    if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96) {
        return Some(Ipv4Compatible);
    }
    None
}

/// A destination as a client names it: `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Authority {
    /// The host: a DNS name (lowercase) or an IP literal.
    pub host: Host,
    /// The port (never 0).
    pub port: u16,
}

/// A host: a DNS name or an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(name) => write!(f, "{name}:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

impl FromStr for Authority {
    type Err = Refusal;

    /// Parses `name:port`, `a.b.c.d:port` or `[v6]:port`, strictly: no zone ids, no
    /// legacy IPv4 forms (`127.1`, `0177.0.0.1`, `2130706433`), no empty labels.
    fn from_str(text: &str) -> Result<Self, Refusal> {
        let bad = |why: &str| Refusal::MalformedAuthority(format!("{text:?}: {why}"));
        if text.len() > 260 {
            return Err(bad("longer than 260 characters"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("no port after ']'"))?;
            if inside.contains('%') {
                return Err(bad("IPv6 zone ids are not allowed"));
            }
            let ip: Ipv6Addr = inside.parse().map_err(|_| bad("not an IPv6 address"))?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.contains(':') {
                return Err(bad("IPv6 addresses go in brackets: [::1]:443"));
            }
            (
                parse_host(host).ok_or_else(|| bad("not a valid host name"))?,
                port,
            )
        };
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the port is not a number"));
        }
        let port: u16 = port.parse().map_err(|_| bad("the port is over 65535"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Authority { host, port })
    }
}

/// A DNS name (letters, digits, hyphens; labels 1–63, total ≤ 253) or a canonical
/// dotted-quad IPv4 address. Anything that looks numeric but is not a canonical
/// dotted quad is refused, so resolver quirks cannot turn it into an address.
fn parse_host(host: &str) -> Option<Host> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let all_numeric_last = labels
        .last()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if all_numeric_last || host.starts_with("0x") {
        // Only a canonical dotted quad may look like a number.
        let ip: Ipv4Addr = host.parse().ok()?;
        return (ip.to_string() == host).then_some(Host::Ip(IpAddr::V4(ip)));
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(label_ok).then_some(Host::Name(host))
}

/// Which hosts an allow-list rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name.
    Exact(String),
    /// Any name under this suffix (`*.example.com` matches `a.example.com`, not
    /// `example.com`).
    Subdomains(String),
}

/// One allow-list entry: hosts and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// The hosts.
    pub hosts: HostPattern,
    /// Inclusive port ranges.
    pub ports: Vec<(u16, u16)>,
}

impl FromStr for AllowRule {
    type Err = String;

    /// `host:ports`, e.g. `example.com:443`, `*.example.org:80,443`, `mirror.net:8000-8100`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (host, ports) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?}: expected host:ports, e.g. example.com:443"))?;
        let hosts = if let Some(suffix) = host.strip_prefix("*.") {
            match parse_host(suffix) {
                Some(Host::Name(name)) => HostPattern::Subdomains(name),
                _ => return Err(format!("{text:?}: {suffix:?} is not a host name")),
            }
        } else {
            match parse_host(host) {
                Some(Host::Name(name)) => HostPattern::Exact(name),
                _ => {
                    return Err(format!(
                        "{text:?}: allow-list entries name hosts, not addresses"
                    ));
                }
            }
        };
        let mut ranges = Vec::new();
        for part in ports.split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let parse = |p: &str| {
                p.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{text:?}: {p:?} is not a port (1 to 65535)"))
            };
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(format!("{text:?}: port range {lo}-{hi} is backwards"));
            }
            ranges.push((lo, hi));
        }
        Ok(AllowRule {
            hosts,
            ports: ranges,
        })
    }
}

impl AllowRule {
    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = match &self.hosts {
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        };
        host_ok
            && self
                .ports
                .iter()
                .any(|(lo, hi)| (*lo..=*hi).contains(&port))
    }
}

/// Where egress may go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only to the listed hosts and ports (the default when egress is on).
    AllowList(Vec<AllowRule>),
    /// Anywhere public (an explicit opt-in).
    Open,
}

/// The node's egress policy.
#[derive(Clone, Debug)]
pub struct EgressPolicy {
    /// Allow-list or open.
    pub mode: Mode,
    /// The node's own addresses and its gateways', refused whatever the range.
    pub node_addresses: Vec<IpAddr>,
    /// Ports refused in every mode (SMTP by default).
    pub blocked_ports: Vec<u16>,
    /// Let loopback through: only for tests on one machine, never a user setting.
    pub allow_loopback_for_tests: bool,
}

impl EgressPolicy {
    /// Allow-list mode with the default blocked ports.
    pub fn allow_list(rules: Vec<AllowRule>) -> Self {
        Self {
            mode: Mode::AllowList(rules),
            node_addresses: Vec::new(),
            blocked_ports: vec![25, 465, 587],
            allow_loopback_for_tests: false,
        }
    }

    /// Open mode with the default blocked ports.
    pub fn open() -> Self {
        Self {
            mode: Mode::Open,
            ..Self::allow_list(Vec::new())
        }
    }

    /// The check before DNS: port and allow-list.
    pub fn check_authority(&self, authority: &Authority) -> Result<(), Refusal> {
        if self.blocked_ports.contains(&authority.port) {
            return Err(Refusal::PortBlocked(authority.port));
        }
        match (&self.mode, &authority.host) {
            (Mode::Open, Host::Ip(ip)) => self.check_address(*ip),
            (Mode::Open, Host::Name(_)) => Ok(()),
            (Mode::AllowList(_), Host::Ip(_)) => {
                Err(Refusal::NotAllowListed(authority.to_string()))
            }
            (Mode::AllowList(rules), Host::Name(name)) => {
                if rules.iter().any(|r| r.matches(name, authority.port)) {
                    Ok(())
                } else {
                    Err(Refusal::NotAllowListed(authority.to_string()))
                }
            }
        }
    }

    /// The check after DNS, for the exact address the node will connect to.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.node_addresses.contains(&ip) {
            return Err(Refusal::NodeAddress(ip));
        }
        match special_range(ip) {
            None => Ok(()),
            Some(SpecialRange::Loopback) if self.allow_loopback_for_tests => Ok(()),
            Some(range) => Err(Refusal::Prohibited { ip, range }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The SSRF matrix from the relay reference: every one refused after resolution.
    #[test]
    fn special_addresses_are_refused() {
        let policy = EgressPolicy::open();
        for text in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2001::1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "2001:db8::1",
            "3fff::1",
            "192.88.99.1",
        ] {
            let err = policy.check_address(ip(text)).unwrap_err();
            assert_eq!(err.status(), "destination_ip_prohibited", "{text}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let policy = EgressPolicy::open();
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(policy.check_address(ip(text)), Ok(()), "{text}");
        }
    }

    #[test]
    fn node_and_gateway_addresses_are_refused() {
        let mut policy = EgressPolicy::open();
        policy.node_addresses = vec![ip("81.2.69.160")];
        let err = policy.check_address(ip("81.2.69.160")).unwrap_err();
        assert!(matches!(err, Refusal::NodeAddress(_)));
        assert!(err.to_string().contains("own"), "{err}");
    }

    #[test]
    fn loopback_only_by_the_test_switch() {
        let mut policy = EgressPolicy::open();
        assert!(policy.check_address(ip("127.0.0.1")).is_err());
        policy.allow_loopback_for_tests = true;
        assert_eq!(policy.check_address(ip("127.0.0.1")), Ok(()));
        // The switch opens loopback only, nothing else.
        assert!(policy.check_address(ip("::ffff:127.0.0.1")).is_err());
        assert!(policy.check_address(ip("10.0.0.1")).is_err());
    }

    #[test]
    fn authorities_parse_strictly() {
        let a: Authority = "Example.COM.:443".parse().unwrap();
        assert_eq!(a.host, Host::Name("example.com".into()));
        assert_eq!(a.to_string(), "example.com:443");
        let a: Authority = "[2606:4700::1111]:53".parse().unwrap();
        assert_eq!(a.to_string(), "[2606:4700::1111]:53");
        for bad in [
            "example.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "example.com:+80",
            "127.1:80",
            "0177.0.0.1:80",
            "2130706433:80",
            "0x7f.0.0.1:80",
            "[fe80::1%eth0]:80",
            "::1:80",
            "[::1:80",
            "a..b:80",
            "-a.com:80",
            "a_b.com:80",
            "exa mple.com:80",
            "",
        ] {
            let err = bad.parse::<Authority>().unwrap_err();
            assert_eq!(err.status(), "malformed_authority", "{bad}");
        }
    }

    #[test]
    fn allow_list_matches_hosts_and_ports() {
        let policy = EgressPolicy::allow_list(vec![
            "example.com:443".parse().unwrap(),
            "*.mirror.org:80,8000-8100".parse().unwrap(),
        ]);
        let check = |text: &str| policy.check_authority(&text.parse().unwrap());
        assert_eq!(check("example.com:443"), Ok(()));
        assert_eq!(check("a.mirror.org:8050"), Ok(()));
        assert_eq!(check("a.b.mirror.org:80"), Ok(()));
        for refused in [
            "example.com:80",
            "www.example.com:443",
            "mirror.org:80",
            "evilmirror.org:80",
            "a.mirror.org:8101",
            "93.184.216.34:443",
        ] {
            let err = check(refused).unwrap_err();
            assert_eq!(err.status(), "destination_prohibited", "{refused}");
        }
        assert!(matches!(
            check("example.com:25"),
            Err(Refusal::PortBlocked(25))
        ));
    }

    #[test]
    fn open_mode_checks_ip_literals_before_dns() {
        let policy = EgressPolicy::open();
        let refused = policy.check_authority(&"[::ffff:10.0.0.1]:80".parse().unwrap());
        assert!(matches!(refused, Err(Refusal::Prohibited { .. })));
        assert_eq!(
            policy.check_authority(&"example.com:80".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn bad_allow_rules_are_explained() {
        for bad in [
            "example.com",
            "example.com:0",
            "1.2.3.4:80",
            "*.:80",
            "a.com:90-80",
        ] {
            assert!(bad.parse::<AllowRule>().is_err(), "{bad}");
        }
    }
}
