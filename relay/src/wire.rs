//! The relay's wire protocol, version 1: frames on QUIC streams and the datagram
//! header. Sans-IO: bytes in, frames out, no sockets and no clock.
//!
//! A connection uses ALPN [`ALPN`]. Its first bidirectional stream, opened by the
//! client, is the control stream (`Hello` → `Welcome`, then `Promise`, `Usage`,
//! `Paused`, `Resumed`, `Ping`, `Pong`). Every other bidirectional stream is one flow:
//! the client's first frame says what it wants (`Connect` for TCP egress, `ConnectUdp`
//! for UDP egress, `Dial` for a peer), the node answers `Status`, and on `ok` the stream
//! carries raw bytes. A client that accepts peers says `Listen` on the control stream;
//! the node then opens a stream to it for each peer that dials, starting `Incoming`.
//!
//! Frame layout:
//!
//! ```text
//! type     1 byte
//! length   QUIC variable-length integer (RFC 9000 §16), at most MAX_FRAME
//! payload  `length` bytes; fields in a fixed order per type:
//!          integers as QUIC varints, strings as varint length + UTF-8,
//!          keys as 32 bytes, signatures as 64 bytes
//! ```
//!
//! Decoding is strict: unknown types, oversized lengths, short or long payloads, bad
//! UTF-8 and out-of-range fields are errors, never panics; traffic that fails to decode
//! closes the connection.

use std::fmt;

/// The ALPN of relay connections.
pub const ALPN: &[u8] = b"spare-relay/1";
/// The protocol version this build speaks.
pub const VERSION: u64 = 1;
/// The largest frame payload.
pub const MAX_FRAME: u64 = 16 * 1024;
/// The longest string field (authorities, messages).
pub const MAX_STRING: u64 = 1024;

/// A status code, in the spirit of RFC 9209's Proxy-Status error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The flow is open.
    Ok,
    /// The destination address is in a prohibited range.
    DestinationIpProhibited,
    /// The destination (host or port) is not allowed by this node.
    DestinationProhibited,
    /// The destination could not be parsed.
    MalformedAuthority,
    /// The name did not resolve.
    DnsError,
    /// The destination refused the connection.
    ConnectionRefused,
    /// The destination did not answer in time.
    ConnectionTimeout,
    /// A day or month quota is used up.
    QuotaExceeded,
    /// Too many flows or flow openings too fast.
    RateLimited,
    /// Usage promises lag behind usage.
    PaymentRequired,
    /// No such peer is listening on this node.
    PeerNotFound,
    /// This node does not offer that (egress off, UDP off, wrong version).
    NotOffered,
    /// Something failed on the node.
    InternalError,
}

impl Status {
    const ALL: [Status; 13] = [
        Status::Ok,
        Status::DestinationIpProhibited,
        Status::DestinationProhibited,
        Status::MalformedAuthority,
        Status::DnsError,
        Status::ConnectionRefused,
        Status::ConnectionTimeout,
        Status::QuotaExceeded,
        Status::RateLimited,
        Status::PaymentRequired,
        Status::PeerNotFound,
        Status::NotOffered,
        Status::InternalError,
    ];

    fn code(self) -> u64 {
        Status::ALL.iter().position(|s| *s == self).unwrap_or(0) as u64
    }

    fn from_code(code: u64) -> Option<Status> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Status::ALL.get(i).copied())
    }

    /// The stable name shown to users and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::DestinationIpProhibited => "destination_ip_prohibited",
            Status::DestinationProhibited => "destination_prohibited",
            Status::MalformedAuthority => "malformed_authority",
            Status::DnsError => "dns_error",
            Status::ConnectionRefused => "connection_refused",
            Status::ConnectionTimeout => "connection_timeout",
            Status::QuotaExceeded => "quota_exceeded",
            Status::RateLimited => "rate_limited",
            Status::PaymentRequired => "payment_required",
            Status::PeerNotFound => "peer_not_found",
            Status::NotOffered => "not_offered",
            Status::InternalError => "internal_error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Client → node, first on the control stream.
    Hello {
        /// The protocol version the client speaks.
        version: u64,
    },
    /// Node → client: the terms of the session.
    Welcome {
        /// The version both will speak.
        version: u64,
        /// This session's id (the reference in the client's promises).
        session: [u8; 32],
        /// Price in micro-credits per GiB relayed (up plus down).
        price_per_gib: u64,
        /// How many bytes may be relayed beyond what the client has promised to pay.
        promise_margin: u64,
        /// The network promises are made on (`demo` for demo traffic).
        network: String,
    },
    /// Client → node: a signed cumulative usage promise (a `relay_session` receipt).
    Promise {
        /// The receipt's canonical bytes.
        receipt: Vec<u8>,
        /// The client's signature over them.
        signature: [u8; 64],
    },
    /// Node → client: bytes relayed in the session so far.
    Usage {
        /// Client to destination or peer.
        up: u64,
        /// Destination or peer to client.
        down: u64,
    },
    /// Node → client: flows are held until the reason is gone.
    Paused {
        /// Why.
        status: Status,
        /// A sentence for the user.
        message: String,
    },
    /// Node → client: flows move again.
    Resumed,
    /// Either way: are you there?
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// The answer to a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Client → node, control stream: accept peers that dial this client.
    Listen,
    /// Client → node, first on a flow: TCP to `authority` (`host:port`).
    Connect {
        /// Where to.
        authority: String,
    },
    /// Client → node, first on a flow: UDP to `authority`, payloads as datagrams.
    ConnectUdp {
        /// Where to.
        authority: String,
    },
    /// Client → node, first on a flow: reach a listening client.
    Dial {
        /// The peer's id (ed25519 public key).
        peer: [u8; 32],
    },
    /// Node → listening client, first on a stream the node opened: a peer dialled.
    Incoming {
        /// Who dialled.
        from: [u8; 32],
    },
    /// Node → client: the answer to a flow request (or why a session ends).
    Status {
        /// The code.
        status: Status,
        /// A sentence for the user ("" when `ok`).
        message: String,
    },
}

/// Why bytes are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An unknown frame type.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A length over the limit.
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLong(u64),
    /// The payload ended before its fields did.
    #[error("frame payload ends early")]
    Short,
    /// Bytes left in the payload after its fields.
    #[error("{0} unexpected bytes at the end of a frame")]
    Trailing(usize),
    /// A string field is not UTF-8 or is too long.
    #[error("a text field is not valid UTF-8 or is over {MAX_STRING} bytes")]
    BadString,
    /// An unknown status code.
    #[error("unknown status code {0}")]
    BadStatus(u64),
    /// A datagram without a valid header.
    #[error("malformed datagram header")]
    BadDatagram,
}

mod kind {
    pub const HELLO: u8 = 1;
    pub const WELCOME: u8 = 2;
    pub const PROMISE: u8 = 3;
    pub const USAGE: u8 = 4;
    pub const PAUSED: u8 = 5;
    pub const RESUMED: u8 = 6;
    pub const PING: u8 = 7;
    pub const PONG: u8 = 8;
    pub const LISTEN: u8 = 9;
    pub const CONNECT: u8 = 10;
    pub const CONNECT_UDP: u8 = 11;
    pub const DIAL: u8 = 12;
    pub const INCOMING: u8 = 13;
    pub const STATUS: u8 = 14;
}

/// Appends a QUIC variable-length integer (values up to 2⁶² − 1; larger are clamped).
pub fn put_varint(out: &mut Vec<u8>, value: u64) {
    let v = value.min((1 << 62) - 1);
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Reads a QUIC varint: `Ok(None)` if `buf` is too short to hold it.
pub fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut value = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    Some((value, len))
}

/// Encodes a frame.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut payload = Vec::new();
    let put_str = |p: &mut Vec<u8>, s: &str| {
        let s = truncate(s, MAX_STRING as usize);
        put_varint(p, s.len() as u64);
        p.extend_from_slice(s.as_bytes());
    };
    let kind = match frame {
        Frame::Hello { version } => {
            put_varint(&mut payload, *version);
            kind::HELLO
        }
        Frame::Welcome {
            version,
            session,
            price_per_gib,
            promise_margin,
            network,
        } => {
            put_varint(&mut payload, *version);
            payload.extend_from_slice(session);
            put_varint(&mut payload, *price_per_gib);
            put_varint(&mut payload, *promise_margin);
            put_str(&mut payload, network);
            kind::WELCOME
        }
        Frame::Promise { receipt, signature } => {
            put_varint(&mut payload, receipt.len() as u64);
            payload.extend_from_slice(receipt);
            payload.extend_from_slice(signature);
            kind::PROMISE
        }
        Frame::Usage { up, down } => {
            put_varint(&mut payload, *up);
            put_varint(&mut payload, *down);
            kind::USAGE
        }
        Frame::Paused { status, message } => {
            put_varint(&mut payload, status.code());
            put_str(&mut payload, message);
            kind::PAUSED
        }
        Frame::Resumed => kind::RESUMED,
        Frame::Ping { nonce } => {
            put_varint(&mut payload, *nonce);
            kind::PING
        }
        Frame::Pong { nonce } => {
            put_varint(&mut payload, *nonce);
            kind::PONG
        }
        Frame::Listen => kind::LISTEN,
        Frame::Connect { authority } => {
            put_str(&mut payload, authority);
            kind::CONNECT
        }
        Frame::ConnectUdp { authority } => {
            put_str(&mut payload, authority);
            kind::CONNECT_UDP
        }
        Frame::Dial { peer } => {
            payload.extend_from_slice(peer);
            kind::DIAL
        }
        Frame::Incoming { from } => {
            payload.extend_from_slice(from);
            kind::INCOMING
        }
        Frame::Status { status, message } => {
            put_varint(&mut payload, status.code());
            put_str(&mut payload, message);
            kind::STATUS
        }
    };
    let mut out = Vec::with_capacity(payload.len() + 9);
    out.push(kind);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Decodes the frame at the start of `buf`: `Ok(None)` when more bytes are needed,
/// otherwise the frame and how many bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    if !(kind::HELLO..=kind::STATUS).contains(&kind) {
        return Err(WireError::UnknownType(kind));
    }
    let Some((len, len_size)) = get_varint(&buf[1..]) else {
        return Ok(None);
    };
    if len > MAX_FRAME {
        return Err(WireError::TooLong(len));
    }
    let start = 1 + len_size;
    let end = start + len as usize;
    let Some(payload) = buf.get(start..end) else {
        return Ok(None);
    };
    let frame = parse_payload(kind, payload)?;
    Ok(Some((frame, end)))
}

struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, WireError> {
        let (v, n) = get_varint(self.0).ok_or(WireError::Short)?;
        self.0 = &self.0[n..];
        Ok(v)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(WireError::Short)?;
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = self.varint()?;
        if len > MAX_STRING {
            return Err(WireError::BadString);
        }
        let bytes = self.bytes(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::BadString)
    }

    fn status(&mut self) -> Result<Status, WireError> {
        let code = self.varint()?;
        Status::from_code(code).ok_or(WireError::BadStatus(code))
    }

    fn end(self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.0.len()))
        }
    }
}

fn parse_payload(kind: u8, payload: &[u8]) -> Result<Frame, WireError> {
    let mut f = Fields(payload);
    let frame = match kind {
        kind::HELLO => Frame::Hello {
            version: f.varint()?,
        },
        kind::WELCOME => Frame::Welcome {
            version: f.varint()?,
            session: f.array()?,
            price_per_gib: f.varint()?,
            promise_margin: f.varint()?,
            network: f.string()?,
        },
        kind::PROMISE => {
            let len = f.varint()?;
            let receipt = f
                .bytes(usize::try_from(len).map_err(|_| WireError::Short)?)?
                .to_vec();
            Frame::Promise {
                receipt,
                signature: f.array()?,
            }
        }
        kind::USAGE => Frame::Usage {
            up: f.varint()?,
            down: f.varint()?,
        },
        kind::PAUSED => Frame::Paused {
            status: f.status()?,
            message: f.string()?,
        },
        kind::RESUMED => Frame::Resumed,
        kind::PING => Frame::Ping { nonce: f.varint()? },
        kind::PONG => Frame::Pong { nonce: f.varint()? },
        kind::LISTEN => Frame::Listen,
        kind::CONNECT => Frame::Connect {
            authority: f.string()?,
        },
        kind::CONNECT_UDP => Frame::ConnectUdp {
            authority: f.string()?,
        },
        kind::DIAL => Frame::Dial { peer: f.array()? },
        kind::INCOMING => Frame::Incoming { from: f.array()? },
        kind::STATUS => Frame::Status {
            status: f.status()?,
            message: f.string()?,
        },
        other => return Err(WireError::UnknownType(other)),
    };
    f.end()?;
    Ok(frame)
}

/// Accumulates stream bytes and yields whole frames.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        match decode(&self.buf)? {
            None => Ok(None),
            Some((frame, used)) => {
                self.buf.drain(..used);
                Ok(Some(frame))
            }
        }
    }
}

/// Prefixes a UDP payload with its flow's header (RFC 9297: quarter stream id, then
/// context id 0).
pub fn encode_datagram(stream_id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    put_varint(&mut out, stream_id / 4);
    put_varint(&mut out, 0);
    out.extend_from_slice(payload);
    out
}

/// Splits a datagram into its flow's stream id and the UDP payload.
pub fn decode_datagram(datagram: &[u8]) -> Result<(u64, &[u8]), WireError> {
    let (quarter, n) = get_varint(datagram).ok_or(WireError::BadDatagram)?;
    let (context, m) = get_varint(&datagram[n..]).ok_or(WireError::BadDatagram)?;
    if context != 0 || quarter > (u64::MAX >> 2) {
        return Err(WireError::BadDatagram);
    }
    Ok((quarter * 4, &datagram[n + m..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = Status> {
        (0..Status::ALL.len()).prop_map(|i| Status::ALL[i])
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let text = "\\PC{0,40}";
        prop_oneof![
            any::<u64>().prop_map(|v| Frame::Hello { version: v >> 2 }),
            (
                any::<u64>(),
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<u64>(),
                text
            )
                .prop_map(|(v, s, p, m, n)| Frame::Welcome {
                    version: v >> 2,
                    session: s,
                    price_per_gib: p >> 2,
                    promise_margin: m >> 2,
                    network: n,
                }),
            (
                proptest::collection::vec(any::<u8>(), 0..300),
                any::<[u8; 32]>()
            )
                .prop_map(|(r, s)| {
                    let mut signature = [0u8; 64];
                    signature[..32].copy_from_slice(&s);
                    Frame::Promise {
                        receipt: r,
                        signature,
                    }
                }),
            (any::<u64>(), any::<u64>()).prop_map(|(u, d)| Frame::Usage {
                up: u >> 2,
                down: d >> 2
            }),
            (status(), text).prop_map(|(status, message)| Frame::Paused { status, message }),
            Just(Frame::Resumed),
            any::<u64>().prop_map(|n| Frame::Ping { nonce: n >> 2 }),
            any::<u64>().prop_map(|n| Frame::Pong { nonce: n >> 2 }),
            Just(Frame::Listen),
            text.prop_map(|authority| Frame::Connect { authority }),
            text.prop_map(|authority| Frame::ConnectUdp { authority }),
            any::<[u8; 32]>().prop_map(|peer| Frame::Dial { peer }),
            any::<[u8; 32]>().prop_map(|from| Frame::Incoming { from }),
            (status(), text).prop_map(|(status, message)| Frame::Status { status, message }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(f in frame()) {
            let bytes = encode(&f);
            prop_assert_eq!(decode(&bytes).unwrap(), Some((f, bytes.len())));
        }

        /// Any prefix of a frame asks for more bytes, never errors or panics.
        #[test]
        fn prefixes_ask_for_more(f in frame(), cut in 0usize..64) {
            let bytes = encode(&f);
            let cut = cut.min(bytes.len().saturating_sub(1));
            prop_assert_eq!(decode(&bytes[..cut]).unwrap(), None);
        }

        /// Random bytes decode to a frame, ask for more, or fail: never panic; and a
        /// decoded frame survives a round trip (varints need not be minimal on the wire).
        #[test]
        fn arbitrary_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Some((f, used))) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
                let again = encode(&f);
                prop_assert_eq!(decode(&again).unwrap(), Some((f, again.len())));
            }
        }

        #[test]
        fn frames_split_anywhere_are_reassembled(fs in proptest::collection::vec(frame(), 1..5), split in 1usize..50) {
            let stream: Vec<u8> = fs.iter().flat_map(encode).collect();
            let mut reader = FrameReader::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(split) {
                reader.push(chunk);
                while let Some(f) = reader.next_frame().unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(got, fs);
        }

        #[test]
        fn datagrams_round_trip(id in 0u64..(1 << 60), payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let stream_id = id * 4;
            let d = encode_datagram(stream_id, &payload);
            let (got_id, got) = decode_datagram(&d).unwrap();
            prop_assert_eq!(got_id, stream_id);
            prop_assert_eq!(got, &payload[..]);
        }
    }

    #[test]
    fn malformed_frames_are_named() {
        assert_eq!(decode(&[0, 0]), Err(WireError::UnknownType(0)));
        assert_eq!(decode(&[99, 0]), Err(WireError::UnknownType(99)));
        // A length over the limit (0x8000_8001 = 32,769 bytes).
        assert_eq!(
            decode(&[kind::CONNECT, 0x80, 0, 0x80, 1]),
            Err(WireError::TooLong(32_769))
        );
        // A payload with a byte too many.
        assert_eq!(decode(&[kind::PING, 2, 1, 1]), Err(WireError::Trailing(1)));
        // A status code nobody knows.
        assert_eq!(
            decode(&[kind::STATUS, 2, 63, 0]),
            Err(WireError::BadStatus(63))
        );
        // Not UTF-8.
        assert_eq!(
            decode(&[kind::CONNECT, 2, 1, 0xff]),
            Err(WireError::BadString)
        );
        // A string length past the payload.
        assert_eq!(decode(&[kind::CONNECT, 1, 5]), Err(WireError::Short));
        assert_eq!(decode_datagram(&[0, 1, 9]), Err(WireError::BadDatagram));
        assert_eq!(decode_datagram(&[]), Err(WireError::BadDatagram));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(1000);
        let f = Frame::Status {
            status: Status::InternalError,
            message: long,
        };
        let Some((Frame::Status { message, .. }, _)) = decode(&encode(&f)).unwrap() else {
            panic!("expected a status");
        };
        assert!(message.len() <= MAX_STRING as usize && message.chars().all(|c| c == 'é'));
    }
}
