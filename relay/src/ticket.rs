//! Tickets: one pasteable string naming a node (its id) and where to reach it.
//!
//! `spare1` followed by lowercase base32 (RFC 4648, no padding) of:
//!
//! ```text
//! version   1 byte   1
//! node id  32 bytes  ed25519 public key
//! count     1 byte   number of addresses, 1 to 8
//! address   per address: 4 (IPv4) + 4 bytes + u16 port, or 6 (IPv6) + 16 bytes + u16 port
//! checksum  4 bytes  first 4 bytes of BLAKE3 over everything before it
//! ```
//!
//! Parsing is strict: wrong prefix, bad base32, wrong version, an invalid key, an
//! address count of 0 or over 8, trailing bytes or a bad checksum are each a clear
//! error. No I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

const PREFIX: &str = "spare1";
const VERSION: u8 = 1;
/// The most addresses a ticket carries.
pub const MAX_ADDRESSES: usize = 8;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A node id is the node's ed25519 public key: the one checked key type shared by
/// receipts, tickets and TLS (`receipt::PartyId`).
pub use receipt::PartyId;

/// Why a ticket string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// It does not start with `spare1`.
    #[error("not a Spare ticket: it should start with \"spare1\"")]
    Prefix,
    /// A character outside lowercase base32.
    #[error("character {0:?} at position {1} is not part of a ticket (a-z, 2-7)")]
    Character(char, usize),
    /// The ticket ends early.
    #[error("the ticket is cut short: copy all of it")]
    Truncated,
    /// A newer ticket format.
    #[error("ticket version {0} is newer than this Spare understands (1): upgrade Spare")]
    Version(u8),
    /// The node id is not a valid key.
    #[error("the node id in the ticket is not a valid ed25519 key")]
    NodeId,
    /// No addresses, or too many.
    #[error("a ticket has 1 to 8 addresses, this one has {0}")]
    AddressCount(u8),
    /// An unknown address kind.
    #[error("unknown address kind {0} in the ticket")]
    AddressKind(u8),
    /// Port 0.
    #[error("an address in the ticket has port 0")]
    Port,
    /// Bytes after the checksum.
    #[error("the ticket has {0} bytes too many")]
    Trailing(usize),
    /// The checksum does not match: a typo or a cut.
    #[error("the ticket's checksum does not match: it was mistyped or cut; copy it again")]
    Checksum,
}

/// A node id and the addresses to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// Who the client must reach (checked in the TLS handshake).
    pub node: PartyId,
    /// Where to try, in order.
    pub addresses: Vec<SocketAddr>,
}

impl Ticket {
    /// A ticket; `None` without addresses or with more than [`MAX_ADDRESSES`].
    pub fn new(node: PartyId, addresses: Vec<SocketAddr>) -> Option<Self> {
        (!addresses.is_empty()
            && addresses.len() <= MAX_ADDRESSES
            && addresses.iter().all(|a| a.port() != 0))
        .then_some(Self { node, addresses })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(self.node.as_bytes());
        out.push(self.addresses.len() as u8);
        for addr in &self.addresses {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(&sum.as_bytes()[..4]);
        out
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", base32(&self.to_bytes()))
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(text: &str) -> Result<Self, TicketError> {
        let text = text.trim();
        let body = text.strip_prefix(PREFIX).ok_or(TicketError::Prefix)?;
        let bytes = unbase32(body, PREFIX.len())?;
        let (payload, sum) = bytes
            .split_last_chunk::<4>()
            .ok_or(TicketError::Truncated)?;
        let mut r = payload;
        let mut take = |n: usize| -> Result<&[u8], TicketError> {
            let (head, tail) = r.split_at_checked(n).ok_or(TicketError::Truncated)?;
            r = tail;
            Ok(head)
        };
        let version = take(1)?[0];
        if version != VERSION {
            return Err(TicketError::Version(version));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(take(32)?);
        let count = take(1)?[0];
        if count == 0 || usize::from(count) > MAX_ADDRESSES {
            return Err(TicketError::AddressCount(count));
        }
        let mut addresses = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let ip = match take(1)?[0] {
                4 => {
                    let mut octets = [0u8; 4];
                    octets.copy_from_slice(take(4)?);
                    IpAddr::V4(Ipv4Addr::from(octets))
                }
                6 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(take(16)?);
                    IpAddr::V6(Ipv6Addr::from(octets))
                }
                other => return Err(TicketError::AddressKind(other)),
            };
            let port_bytes = take(2)?;
            let port = u16::from_be_bytes([port_bytes[0], port_bytes[1]]);
            if port == 0 {
                return Err(TicketError::Port);
            }
            addresses.push(SocketAddr::new(ip, port));
        }
        if !r.is_empty() {
            return Err(TicketError::Trailing(r.len()));
        }
        if blake3::hash(payload).as_bytes()[..4] != sum[..] {
            return Err(TicketError::Checksum);
        }
        let node = PartyId::from_bytes(key).map_err(|_| TicketError::NodeId)?;
        Ok(Ticket { node, addresses })
    }
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(text: &str, offset: usize) -> Result<Vec<u8>, TicketError> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for (i, c) in text.chars().enumerate() {
        let value = ALPHABET
            .iter()
            .position(|a| char::from(*a) == c)
            .ok_or(TicketError::Character(c, offset + i))? as u32;
        buffer = ((buffer << 5) | value) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node() -> PartyId {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        PartyId::of(&key)
    }

    fn ticket() -> Ticket {
        Ticket::new(
            node(),
            vec![
                "81.2.69.160:4433".parse().unwrap(),
                "[2001:db8::7]:4433".parse().unwrap(),
            ],
        )
        .unwrap()
    }

    #[test]
    fn tickets_round_trip() {
        let t = ticket();
        let text = t.to_string();
        assert!(text.starts_with("spare1"));
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(text.parse::<Ticket>().unwrap(), t);
        assert_eq!(format!("  {text}\n").parse::<Ticket>().unwrap(), t);
    }

    #[test]
    fn every_single_typo_is_caught() {
        let text = ticket().to_string();
        for i in PREFIX.len()..text.len() {
            for c in ['a', 'q', '7'] {
                let mut bytes = text.clone().into_bytes();
                if bytes[i] == c as u8 {
                    continue;
                }
                bytes[i] = c as u8;
                let typo = String::from_utf8(bytes).unwrap();
                assert!(typo.parse::<Ticket>().is_err(), "typo at {i} accepted");
            }
        }
    }

    #[test]
    fn bad_tickets_say_what_is_wrong() {
        let text = ticket().to_string();
        assert_eq!("hello".parse::<Ticket>(), Err(TicketError::Prefix));
        assert!(matches!(
            format!("{text}!").parse::<Ticket>(),
            Err(TicketError::Character('!', _))
        ));
        assert!(matches!(
            text[..30].parse::<Ticket>(),
            Err(TicketError::Truncated | TicketError::Checksum)
        ));
        assert!(matches!(
            format!("{text}aaaaaaaa").parse::<Ticket>(),
            Err(TicketError::Trailing(_) | TicketError::Checksum)
        ));
        assert!(Ticket::new(node(), vec![]).is_none());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "spare1[a-z2-7]{0,200}") {
            let _ = text.parse::<Ticket>();
        }

        #[test]
        fn any_addresses_round_trip(ports in proptest::collection::vec(1u16.., 1..=8), v6 in any::<bool>()) {
            let addresses: Vec<SocketAddr> = ports.iter().enumerate().map(|(i, p)| {
                if v6 && i % 2 == 0 {
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16)), *p)
                } else {
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8)), *p)
                }
            }).collect();
            let t = Ticket::new(node(), addresses).unwrap();
            prop_assert_eq!(t.to_string().parse::<Ticket>().unwrap(), t);
        }
    }
}
