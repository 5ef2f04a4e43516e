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
//! Parsing is strict, to the ticket's last character: wrong prefix, too long for any
//! ticket, a character outside lowercase base32 (a space or line break inside named as
//! such), wrong version, an invalid key, an address count of 0 or over 8, a bad
//! checksum, a last character that does not read the one way Spare writes it, or any
//! character after the ticket's end are each a clear error. Whitespace around a pasted
//! ticket is forgiven (trimmed before parsing); whitespace inside is not. No I/O here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

const PREFIX: &str = "spare1";
const VERSION: u8 = 1;
/// The most addresses a ticket carries.
pub const MAX_ADDRESSES: usize = 8;
/// The longest a ticket's bytes can be: eight IPv6 addresses.
const MAX_BYTES: usize = 1 + 32 + 1 + MAX_ADDRESSES * (1 + 16 + 2) + 4;
/// The longest a ticket can be, in characters, prefix included.
pub const MAX_LENGTH: usize = PREFIX.len() + (MAX_BYTES * 8).div_ceil(5);
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A node id is the node's ed25519 public key: the one checked key type shared by
/// receipts, tickets and TLS (`receipt::PartyId`).
pub use receipt::PartyId;

/// Why a ticket string was refused. Positions count characters from 0, the prefix
/// included, in the ticket with its surrounding whitespace trimmed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// It does not start with `spare1`.
    #[error("not a Spare ticket: it should start with \"spare1\"")]
    Prefix,
    /// Longer than a ticket with the most addresses can be, checked before decoding.
    #[error(
        "this ticket is {length} characters long; a Spare ticket is at most {max}: \
         it is not a Spare ticket, or it was pasted more than once"
    )]
    TooLong {
        /// The ticket's length in characters.
        length: usize,
        /// The longest a ticket can be ([`MAX_LENGTH`]).
        max: usize,
    },
    /// A character outside lowercase base32.
    #[error("character {0:?} at position {1} is not part of a ticket (a-z, 2-7)")]
    Character(char, usize),
    /// Whitespace inside the ticket, such as a line break from an e-mail.
    #[error(
        "the ticket has a space or line break at position {0}: a ticket is one word; \
         copy it again in one piece"
    )]
    Whitespace(usize),
    /// The ticket ends early.
    #[error("the ticket is cut short: copy all of it")]
    Truncated,
    /// A newer ticket format.
    #[error("ticket version {0} is newer than this Spare understands (1): upgrade Spare")]
    Version(u8),
    /// A version no Spare ever wrote.
    #[error("ticket version {0} does not exist: the ticket was mistyped; copy it again")]
    UnknownVersion(u8),
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
    /// Characters after the ticket's end (its checksum).
    #[error(
        "the ticket has {0} unexpected {chars} after its end: copy the ticket alone, \
         nothing more",
        chars = if *.0 == 1 { "character" } else { "characters" }
    )]
    Trailing(usize),
    /// The checksum does not match, or the last character is not the one Spare
    /// writes: a typo or a cut.
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

    /// Parses a ticket, forgiving whitespace around it (as pasting adds) and nothing
    /// else: the ticket's fields say where it ends, and any character after that end
    /// is refused.
    fn from_str(text: &str) -> Result<Self, TicketError> {
        let text = text.trim();
        let body = text.strip_prefix(PREFIX).ok_or(TicketError::Prefix)?;
        let length = text.chars().count();
        if length > MAX_LENGTH {
            return Err(TicketError::TooLong {
                length,
                max: MAX_LENGTH,
            });
        }
        let (bytes, stray) = unbase32(body);
        // A stray character explains a ticket that cannot be read better than the
        // fields misread before it do.
        let fields = Fields::read(&bytes).map_err(|e| match stray {
            Some((i, c)) if c.is_whitespace() => TicketError::Whitespace(PREFIX.len() + i),
            Some((i, c)) => TicketError::Character(c, PREFIX.len() + i),
            None => e,
        })?;
        let (payload, sum) = bytes[..fields.end].split_at(fields.end - 4);
        if blake3::hash(payload).as_bytes()[..4] != *sum {
            return Err(TicketError::Checksum);
        }
        // The fields fill this many characters, all of them in the alphabet (the stray
        // one, if any, comes after); the last one's spare bits must be zero, so a
        // ticket reads only one way.
        let chars = (fields.end * 8).div_ceil(5);
        if body.get(..chars) != Some(base32(&bytes[..fields.end]).as_str()) {
            return Err(TicketError::Checksum);
        }
        let extra = body.chars().count().saturating_sub(chars);
        if extra > 0 {
            return Err(TicketError::Trailing(extra));
        }
        let node = PartyId::from_bytes(fields.key).map_err(|_| TicketError::NodeId)?;
        Ok(Ticket {
            node,
            addresses: fields.addresses,
        })
    }
}

/// A ticket's fields as read from its bytes, before its checksum is checked.
struct Fields {
    key: [u8; 32],
    addresses: Vec<SocketAddr>,
    /// Where the ticket's bytes end, its checksum included.
    end: usize,
}

impl Fields {
    fn read(bytes: &[u8]) -> Result<Fields, TicketError> {
        let mut r = bytes;
        let mut take = |n: usize| -> Result<&[u8], TicketError> {
            let (head, tail) = r.split_at_checked(n).ok_or(TicketError::Truncated)?;
            r = tail;
            Ok(head)
        };
        let version = take(1)?[0];
        if version > VERSION {
            return Err(TicketError::Version(version));
        }
        if version != VERSION {
            return Err(TicketError::UnknownVersion(version));
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
        take(4)?; // the checksum
        Ok(Fields {
            key,
            addresses,
            end: bytes.len() - r.len(),
        })
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

/// The bytes `text` spells up to its first character outside the alphabet, and that
/// character with its index, if there is one.
fn unbase32(text: &str) -> (Vec<u8>, Option<(usize, char)>) {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for (i, c) in text.chars().enumerate() {
        let Some(value) = ALPHABET.iter().position(|a| char::from(*a) == c) else {
            return (out, Some((i, c)));
        };
        buffer = ((buffer << 5) | value as u32) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    (out, None)
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
        assert_eq!(
            format!("{text}!").parse::<Ticket>(),
            Err(TicketError::Trailing(1))
        );
        assert_eq!(
            format!("{}!{}", &text[..20], &text[20..]).parse::<Ticket>(),
            Err(TicketError::Character('!', 20))
        );
        assert!(matches!(
            text[..30].parse::<Ticket>(),
            Err(TicketError::Truncated | TicketError::Checksum)
        ));
        assert_eq!("spare1".parse::<Ticket>(), Err(TicketError::Truncated));
        assert_eq!(
            format!("{text}aaaaaaaa").parse::<Ticket>(),
            Err(TicketError::Trailing(8))
        );
        assert!(Ticket::new(node(), vec![]).is_none());
    }

    /// A ticket of one IPv4 address fills its last character exactly, so one more
    /// character added only bits short of a byte: it used to be ignored.
    #[test]
    fn one_character_after_a_valid_ticket_is_refused_and_named() {
        let one_address = Ticket::new(node(), vec!["81.2.69.160:4433".parse().unwrap()]);
        for t in [one_address.unwrap(), ticket()] {
            let text = t.to_string();
            for extra in ["a", "q", "7", "!", "é"] {
                let err = format!("{text}{extra}").parse::<Ticket>().unwrap_err();
                assert_eq!(err, TicketError::Trailing(1), "{text}{extra}");
                assert_eq!(
                    err.to_string(),
                    "the ticket has 1 unexpected character after its end: copy the ticket \
                     alone, nothing more"
                );
            }
            let err = format!("{text} {text}").parse::<Ticket>().unwrap_err();
            assert_eq!(err, TicketError::Trailing(text.len() + 1));
            assert!(err.to_string().contains("unexpected characters"), "{err}");
        }
    }

    #[test]
    fn a_ten_kilobyte_ticket_is_refused_as_too_long_before_decoding() {
        let long = format!("spare1{}", "a".repeat(10 * 1024 - 6));
        let err = long.parse::<Ticket>().unwrap_err();
        assert_eq!(
            err,
            TicketError::TooLong {
                length: 10 * 1024,
                max: MAX_LENGTH
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "this ticket is 10240 characters long; a Spare ticket is at most {MAX_LENGTH}: \
                 it is not a Spare ticket, or it was pasted more than once"
            )
        );
        // The longest ticket there is parses; one character more is too long.
        let v6 = |i: u16| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(i, 1, 2, 3, 4, 5, 6, 7)), 9);
        let longest = Ticket::new(node(), (1..=8).map(v6).collect()).unwrap();
        let text = longest.to_string();
        assert_eq!(text.len(), MAX_LENGTH);
        assert_eq!(text.parse::<Ticket>(), Ok(longest));
        assert!(matches!(
            format!("{text}a").parse::<Ticket>(),
            Err(TicketError::TooLong { length, .. }) if length == MAX_LENGTH + 1
        ));
        assert!(matches!(
            format!("{text}{text}").parse::<Ticket>(),
            Err(TicketError::TooLong { .. })
        ));
    }

    #[test]
    fn whitespace_around_a_ticket_is_forgiven_and_inside_it_is_named() {
        let t = ticket();
        let text = t.to_string();
        assert_eq!(format!("\n\t {text} \r\n").parse::<Ticket>(), Ok(t));
        for space in [" ", "\n", "\r\n", "\t"] {
            let broken = format!("{}{space}{}", &text[..40], &text[40..]);
            let err = broken.parse::<Ticket>().unwrap_err();
            assert_eq!(err, TicketError::Whitespace(40), "{broken:?}");
            assert!(err.to_string().contains("one piece"), "{err}");
        }
    }

    #[test]
    fn a_last_character_with_spare_bits_set_is_refused() {
        // Two addresses make 64 bytes: 103 characters, the last with 3 spare bits.
        let text = ticket().to_string();
        let last = text.chars().last().unwrap();
        let index = ALPHABET
            .iter()
            .position(|a| char::from(*a) == last)
            .unwrap();
        let other = char::from(ALPHABET[index ^ 1]);
        let typo = format!("{}{other}", &text[..text.len() - 1]);
        assert_eq!(typo.parse::<Ticket>(), Err(TicketError::Checksum));
    }

    #[test]
    fn versions_are_named_older_than_any_or_newer() {
        let with_version = |version: u8| {
            let mut bytes = ticket().to_bytes();
            bytes[0] = version;
            let end = bytes.len() - 4;
            let sum = blake3::hash(&bytes[..end]);
            bytes[end..].copy_from_slice(&sum.as_bytes()[..4]);
            format!("{PREFIX}{}", base32(&bytes))
        };
        assert_eq!(
            with_version(0).parse::<Ticket>(),
            Err(TicketError::UnknownVersion(0))
        );
        let err = with_version(2).parse::<Ticket>().unwrap_err();
        assert_eq!(err, TicketError::Version(2));
        assert!(err.to_string().contains("upgrade Spare"), "{err}");
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

        #[test]
        fn nothing_may_follow_a_ticket(ports in proptest::collection::vec(1u16.., 1..=8), suffix in "[a-z2-7!#. -]{0,12}[a-z2-7!#.-]") {
            let addresses = ports.iter().map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), *p)).collect();
            let t = Ticket::new(node(), addresses).unwrap();
            let text = format!("{t}{suffix}");
            prop_assert!(text.parse::<Ticket>().is_err(), "{text} accepted");
        }
    }
}
