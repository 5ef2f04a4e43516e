//! TCP egress through the node, SOCKS5 with curl, and peer relay port forwards.

use std::net::SocketAddr;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use relay::client::{self, ClientError, RelayClient};
use relay::node::{NodeConfig, RelayNode};
use relay::policy::EgressPolicy;
use relay::wire::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt as _};
use tokio::net::TcpListener;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Open egress that may reach loopback (the explicit test setting).
pub fn allow_loopback_egress(config: &mut NodeConfig) {
    let mut policy = EgressPolicy::open();
    policy.allow_loopback_for_tests = true;
    config.egress = Some(policy);
}

/// A node that may reach loopback, in open egress mode.
pub fn node_with_loopback_egress() -> RelayNode {
    let mut config = NodeConfig::new(key(1), loopback());
    allow_loopback_egress(&mut config);
    RelayNode::start(config).unwrap()
}

/// A tiny HTTP server that answers every request with a fixed body.
async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let body = "hello through the relay\n";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(reply.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// An echo server.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_an_http_server_through_the_socks5_proxy() {
    let http = http_server().await;
    let node = node_with_loopback_egress();
    let ticket = node.ticket(vec![]).unwrap();
    let client = Arc::new(RelayClient::connect(&ticket, &key(2)).await.unwrap());
    let socks = TcpListener::bind(loopback()).await.unwrap();
    let socks_addr = socks.local_addr().unwrap();
    tokio::spawn(async move { client::serve_socks5(client, &socks).await });

    let output = tokio::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--socks5-hostname",
            &socks_addr.to_string(),
            &format!("http://localhost:{}/", http.port()),
        ])
        .output()
        .await
        .expect("curl is installed by installers/dev-setup.sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello through the relay\n"
    );
    let (up, down) = node.relayed();
    assert!(
        up > 0 && down > 0,
        "bytes were not metered: {up} up, {down} down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_flow_carries_bytes_both_ways_and_is_metered_exactly() {
    let echo = echo_server().await;
    let node = node_with_loopback_egress();
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(3))
        .await
        .unwrap();
    let (mut send, mut recv) = client.open_tcp(&echo.to_string()).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let payload = payload.clone();
        tokio::spawn(async move {
            send.write_all(&payload).await.unwrap();
            send.finish().unwrap();
        })
    };
    let mut echoed = Vec::new();
    AsyncReadExt::read_to_end(&mut recv, &mut echoed)
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(echoed == payload, "the echo differs");
    assert_eq!(node.relayed(), (200_000, 200_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_relay_port_forward_carries_a_tcp_protocol() {
    let echo = echo_server().await;
    // Peer relay only: the node never dials anywhere itself.
    let node = RelayNode::start(NodeConfig::new(key(1), loopback())).unwrap();
    let ticket = node.ticket(vec![]).unwrap();

    let listener_key = key(4);
    let listener_id = relay::ticket::PartyId::of(&listener_key);
    let listening = Arc::new(RelayClient::connect(&ticket, &listener_key).await.unwrap());
    tokio::spawn(client::forward_peers(listening, echo));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let dialer = Arc::new(RelayClient::connect(&ticket, &key(5)).await.unwrap());
    let local = TcpListener::bind(loopback()).await.unwrap();
    let local_addr = local.local_addr().unwrap();
    let forwarding = dialer.clone();
    tokio::spawn(async move { client::dial_forward(forwarding, listener_id, &local).await });

    for round in 0..3 {
        let mut tcp = tokio::net::TcpStream::connect(local_addr).await.unwrap();
        let line = format!("round {round}: hello peer\n");
        tcp.write_all(line.as_bytes()).await.unwrap();
        let mut got = vec![0u8; line.len()];
        tcp.read_exact(&mut got).await.unwrap();
        assert_eq!(got, line.as_bytes());
    }

    // Egress is off on this node: a CONNECT is refused with a reason.
    let err = dialer.open_tcp(&echo.to_string()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                status: Status::NotOffered,
                ..
            }
        ),
        "{err}"
    );
    // And a peer that is not listening is named as such.
    let nobody = relay::ticket::PartyId::of(&key(9));
    let err = dialer.dial(nobody).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                status: Status::PeerNotFound,
                ..
            }
        ),
        "{err}"
    );
}
