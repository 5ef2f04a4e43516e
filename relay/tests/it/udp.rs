//! UDP egress: datagrams to a real UDP server and back through the node; oversized
//! ones are dropped, never queued, and the flow goes on.

use std::time::Duration;

use relay::client::RelayClient;
use relay::node::{NodeConfig, RelayNode};
use relay::policy::EgressPolicy;
use relay::wire::Status;
use tokio::net::UdpSocket;

use crate::flows::{key, loopback};

/// Echoes each datagram; a datagram starting with `big` is answered with 4,000 bytes.
async fn udp_echo() -> std::net::SocketAddr {
    let socket = UdpSocket::bind(loopback()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let reply = if buf[..n].starts_with(b"big") {
                vec![b'x'; 4_000]
            } else {
                buf[..n].to_vec()
            };
            let _ = socket.send_to(&reply, from).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_go_through_and_oversized_replies_are_dropped() {
    let echo = udp_echo().await;
    let mut config = NodeConfig::new(key(1), loopback());
    crate::flows::allow_loopback_egress(&mut config);
    let node = RelayNode::start(config).unwrap();
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
        .await
        .unwrap();
    let mut flow = client.open_udp(&echo.to_string()).await.unwrap();

    for i in 0..5u8 {
        let payload = vec![i; 900];
        flow.send(&payload).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), flow.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, payload);
    }
    // A reply larger than a QUIC datagram can carry is dropped by the node.
    flow.send(b"big please").unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(300), flow.recv()).await;
    assert!(nothing.is_err(), "an oversized datagram arrived");
    // A payload too large to send is an error on the client, not a queue.
    assert!(flow.send(&vec![0u8; 4_000]).is_err());
    // The flow still works.
    flow.send(b"after").unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), flow.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"after");
    let (up, down) = node.relayed();
    assert_eq!((up, down), (5 * 900 + 10 + 5, 5 * 900 + 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_to_a_prohibited_address_is_refused() {
    let mut config = NodeConfig::new(key(1), loopback());
    config.egress = Some(EgressPolicy::open());
    let node = RelayNode::start(config).unwrap();
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
        .await
        .unwrap();
    let err = client.open_udp("127.0.0.1:53").await.err().unwrap();
    let relay::client::ClientError::Refused { status, .. } = err else {
        panic!("{err}");
    };
    assert_eq!(status, Status::DestinationIpProhibited);
}
