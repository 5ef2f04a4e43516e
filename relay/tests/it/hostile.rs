//! The default policy refuses every special destination; a wrong node id is never
//! trusted; stalled and malformed clients are cut off without affecting others.

use std::time::Duration;

use relay::client::{ClientError, RelayClient};
use relay::node::{NodeConfig, RelayNode};
use relay::policy::EgressPolicy;
use relay::wire::Status;
use tokio::io::AsyncReadExt;

use crate::flows::{echo_server, key, loopback};

/// Sends `text` through an echo flow opened by `client` and checks it comes back.
async fn echo_round_trip(client: &RelayClient, echo: std::net::SocketAddr, text: &[u8]) {
    let (mut send, mut recv) = client.open_tcp(&echo.to_string()).await.unwrap();
    send.write_all(text).await.unwrap();
    send.finish().unwrap();
    let mut back = Vec::new();
    AsyncReadExt::read_to_end(&mut recv, &mut back)
        .await
        .unwrap();
    assert_eq!(back, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_refuses_every_special_destination() {
    let echo = echo_server().await;
    let mut config = NodeConfig::new(key(1), loopback());
    config.egress = Some(EgressPolicy::open()); // open mode, default protections
    let node = RelayNode::start(config).unwrap();
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
        .await
        .unwrap();
    let port = echo.port();
    let targets = [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0177.0.0.1",
        "0.0.0.0",
        "[::]",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:0.0.0.0]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "169.254.169.254",
        "100.64.0.1",
        "10.0.0.1",
        "192.168.1.1",
        "[fc00::1]",
        "[fe80::1]",
        "224.0.0.1",
        "255.255.255.255",
        "localhost",
    ];
    for target in targets {
        let authority = format!("{target}:{port}");
        let err = client.open_tcp(&authority).await.unwrap_err();
        let ClientError::Refused { status, message } = &err else {
            panic!("{authority}: {err}");
        };
        assert!(
            matches!(
                status,
                Status::DestinationIpProhibited | Status::MalformedAuthority
            ),
            "{authority}: {status} {message}"
        );
    }
    assert_eq!(node.relayed(), (0, 0), "nothing may have been relayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_with_another_node_id_is_refused_by_the_client() {
    let node = RelayNode::start(NodeConfig::new(key(1), loopback())).unwrap();
    let addr = node.local_addr().unwrap();
    let impostor_id = relay::ticket::PartyId::of(&key(7));
    let ticket = relay::ticket::Ticket::new(impostor_id, vec![addr]).unwrap();
    let err = RelayClient::connect(&ticket, &key(2)).await.err().unwrap();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_malformed_clients_are_cut_off_and_others_carry_on() {
    let echo = echo_server().await;
    let mut config = NodeConfig::new(key(1), loopback());
    crate::flows::allow_loopback_egress(&mut config);
    config.first_frame_timeout = Duration::from_millis(300);
    let node = RelayNode::start(config).unwrap();
    let ticket = node.ticket(vec![]).unwrap();

    // A well-behaved client keeps working throughout.
    let good = RelayClient::connect(&ticket, &key(2)).await.unwrap();

    // An empty destination is refused as malformed, with a reason.
    let bad = RelayClient::connect(&ticket, &key(3)).await.unwrap();
    let err = bad.open_tcp("").await;
    assert!(
        matches!(
            err,
            Err(ClientError::Refused {
                status: Status::MalformedAuthority,
                ..
            })
        ),
        "{err:?}"
    );

    // A flow that never sends its first frame is reset after the deadline.
    let silent = raw_connection(&node).await;
    let (mut control, mut control_recv) = silent.open_bi().await.unwrap();
    relay::io::write_frame(
        &mut control,
        &relay::wire::Frame::Hello {
            version: relay::wire::VERSION,
        },
    )
    .await
    .unwrap();
    relay::io::read_frame(&mut control_recv, Duration::from_secs(5))
        .await
        .unwrap();
    let (mut flow_send, mut flow_recv) = silent.open_bi().await.unwrap();
    flow_send.write_all(&[]).await.unwrap(); // opens the stream, says nothing
    flow_send.write_all(&[10]).await.unwrap(); // the first byte of a Connect, then nothing
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), flow_recv.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Err(_))),
        "the silent flow was not reset: {read:?}"
    );

    echo_round_trip(&good, echo, b"still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_says_hello_is_closed() {
    let mut config = NodeConfig::new(key(1), loopback());
    config.first_frame_timeout = Duration::from_millis(300);
    let node = RelayNode::start(config).unwrap();
    let tls = relay::tls::client_config(&key(2), node.id()).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
    let conn = endpoint
        .connect(node.local_addr().unwrap(), "spare-node")
        .unwrap()
        .await
        .unwrap();
    assert_eq!(relay::tls::peer_id(&conn), Some(node.id()));
    // Say nothing: the node closes the connection once the deadline passes.
    let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap();
    let quinn::ConnectionError::ApplicationClosed(close) = reason else {
        panic!("closed for another reason: {reason}");
    };
    assert_eq!(close.error_code, quinn::VarInt::from_u32(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(node.clients(), 0, "the silent client still holds a slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_limit_wait_and_other_clients_carry_on() {
    let echo = echo_server().await;
    let mut config = NodeConfig::new(key(1), loopback());
    crate::flows::allow_loopback_egress(&mut config);
    config.max_flows_per_client = 4;
    let node = RelayNode::start(config).unwrap();
    let ticket = node.ticket(vec![]).unwrap();
    let greedy = RelayClient::connect(&ticket, &key(2)).await.unwrap();
    let mut held = Vec::new();
    // The control stream counts as one of the four.
    for _ in 0..3 {
        held.push(greedy.open_tcp(&echo.to_string()).await.unwrap());
    }
    let fifth = tokio::time::timeout(
        Duration::from_millis(500),
        greedy.open_tcp(&echo.to_string()),
    )
    .await;
    assert!(fifth.is_err(), "a flow past the limit was opened");

    let other = RelayClient::connect(&ticket, &key(3)).await.unwrap();
    echo_round_trip(&other, echo, b"unaffected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_held_back_not_buffered() {
    // A server that sends without end.
    let flood = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let flood_addr = flood.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = flood.accept().await {
            tokio::spawn(async move {
                let chunk = vec![9u8; 64 * 1024];
                while tokio::io::AsyncWriteExt::write_all(&mut tcp, &chunk)
                    .await
                    .is_ok()
                {}
            });
        }
    });
    let echo = echo_server().await;
    let mut config = NodeConfig::new(key(1), loopback());
    crate::flows::allow_loopback_egress(&mut config);
    let node = RelayNode::start(config).unwrap();
    let ticket = node.ticket(vec![]).unwrap();
    let sleepy = RelayClient::connect(&ticket, &key(2)).await.unwrap();
    let (_send, _recv) = sleepy.open_tcp(&flood_addr.to_string()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, first) = node.relayed();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, second) = node.relayed();
    // Flow control stops the node once the client's windows are full (a few MiB).
    assert!(
        second < 32 << 20,
        "{second} bytes pushed at a client that never reads"
    );
    assert!(
        second - first < 1 << 20,
        "the node kept sending: {first} then {second}"
    );

    let other = RelayClient::connect(&ticket, &key(3)).await.unwrap();
    echo_round_trip(&other, echo, b"still fine").await;
}

async fn raw_connection(node: &RelayNode) -> quinn::Connection {
    let tls = relay::tls::client_config(&key(2), node.id()).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
    let conn = endpoint
        .connect(node.local_addr().unwrap(), "spare-node")
        .unwrap()
        .await
        .unwrap();
    std::mem::forget(endpoint);
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_truncated_frames_close_the_connection_not_the_node() {
    let node = RelayNode::start(NodeConfig::new(key(1), loopback())).unwrap();
    // Garbage instead of Hello.
    let conn = raw_connection(&node).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0xff, 0x00, 0x01]).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap();
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(_)),
        "{reason}"
    );

    // A good Hello, then a truncated frame on the control stream.
    let conn = raw_connection(&node).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    relay::io::write_frame(
        &mut send,
        &relay::wire::Frame::Hello {
            version: relay::wire::VERSION,
        },
    )
    .await
    .unwrap();
    relay::io::read_frame(&mut recv, Duration::from_secs(5))
        .await
        .unwrap();
    send.write_all(&[7, 9, 1]).await.unwrap(); // a Ping claiming 9 bytes, then the end
    send.finish().unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap();
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(_)),
        "{reason}"
    );

    // The node still serves others.
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(3)).await;
    assert!(client.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_protocol_version_is_told_so() {
    let node = RelayNode::start(NodeConfig::new(key(1), loopback())).unwrap();
    let conn = raw_connection(&node).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    relay::io::write_frame(&mut send, &relay::wire::Frame::Hello { version: 99 })
        .await
        .unwrap();
    let reply = relay::io::read_frame(&mut recv, Duration::from_secs(5))
        .await
        .unwrap();
    let relay::wire::Frame::Status { status, message } = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(status, Status::NotOffered);
    assert!(message.contains("protocol 1, not 99"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_flows_waits_a_bounded_time_then_is_rate_limited() {
    const RATE: u64 = 5;
    const FLOOD: usize = 60; // within the 63 flows a client may hold open at once
    let mut config = NodeConfig::new(key(1), loopback());
    config.flow_opens_per_second = RATE;
    config.flow_open_wait = Duration::from_secs(1);
    let node = RelayNode::start(config).unwrap();
    let client = std::sync::Arc::new(
        RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
            .await
            .unwrap(),
    );
    let nobody = relay::ticket::PartyId::of(&key(9));
    let started = std::time::Instant::now();
    let mut dials = tokio::task::JoinSet::new();
    for _ in 0..FLOOD {
        let client = client.clone();
        dials.spawn(async move { client.dial(nobody).await.err() });
    }
    let (mut served, mut limited) = (0, 0);
    while let Some(answer) = dials.join_next().await {
        match answer.unwrap() {
            Some(ClientError::Refused {
                status: Status::RateLimited,
                message,
            }) => {
                assert!(message.contains("slow down"), "{message}");
                limited += 1;
            }
            Some(ClientError::Refused {
                status: Status::PeerNotFound,
                ..
            }) => served += 1,
            other => panic!("{other:?}"),
        }
    }
    let took = started.elapsed();
    // Every flow was answered within the longest wait (and a margin for a slow
    // machine); those served are the burst plus the rate over that time, the rest
    // were refused.
    assert!(took < Duration::from_secs(4), "the flood took {took:?}");
    let most = 2 * RATE + RATE * (took.as_secs() + 2);
    assert!(
        served <= most as usize,
        "{served} of {FLOOD} flows served in {took:?}"
    );
    assert!(served >= 2 * RATE as usize, "only {served} served");
    assert_eq!(served + limited, FLOOD);
    // Nothing of the flood is left holding the node: once the longest wait has
    // passed, a new flow is served again.
    assert_eq!(node.clients(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = client.dial(nobody).await;
    assert!(
        matches!(
            after,
            Err(ClientError::Refused {
                status: Status::PeerNotFound,
                ..
            })
        ),
        "{:?}",
        after.err()
    );
}
