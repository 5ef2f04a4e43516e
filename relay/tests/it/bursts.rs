//! Bursts of new flows, as a browser opening a page makes them: through the SOCKS5 proxy
//! and over peer relay, every flow of a burst larger than the node's flow-open rate
//! arrives, its data intact; new flows wait their turn instead of failing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay::client::{self, RelayClient};
use relay::node::{NodeConfig, RelayNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::flows::{allow_loopback_egress, echo_server, key, loopback};

const FLOWS: usize = 200;
const AT_ONCE: usize = 100;
/// Low enough that the first 100 flows already exceed the burst (twice the rate) and
/// all 200 take several seconds of the rate, high enough that the streams a client may
/// hold (63 flows) never wait longer than the node's default bound (3 s).
const FLOW_OPENS_PER_SECOND: u64 = 25;

/// Distinct bytes for flow `i`.
fn payload(i: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; 8 * 1024 + i];
    blake3::Hasher::new()
        .update(&(i as u64).to_le_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    bytes
}

/// Sends `payload` on `tcp`, ends its half, and returns everything that comes back.
async fn echo_through(mut tcp: TcpStream, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let (mut read, mut write) = tcp.split();
    let send = async {
        write.write_all(payload).await?;
        write.shutdown().await
    };
    let mut back = Vec::new();
    let (sent, received) = tokio::join!(send, read.read_to_end(&mut back));
    sent?;
    received?;
    Ok(back)
}

/// A SOCKS5 CONNECT to `target` through `proxy` (RFC 1928, no authentication): the
/// connection, ready for data, or the proxy's reply code.
async fn socks5_connect(proxy: SocketAddr, target: SocketAddr) -> Result<TcpStream, String> {
    let SocketAddr::V4(target) = target else {
        return Err("the test speaks IPv4 only".into());
    };
    let mut tcp = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
    let step = async {
        tcp.write_all(&[5, 1, 0]).await?;
        let mut choice = [0u8; 2];
        tcp.read_exact(&mut choice).await?;
        assert_eq!(choice, [5, 0], "the proxy asks for no authentication");
        let mut request = vec![5, 1, 0, 1];
        request.extend_from_slice(&target.ip().octets());
        request.extend_from_slice(&target.port().to_be_bytes());
        tcp.write_all(&request).await?;
        let mut reply = [0u8; 10];
        tcp.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(reply[1])
    };
    match step.await {
        Ok(0) => Ok(tcp),
        Ok(code) => Err(format!("SOCKS5 reply {code}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `FLOWS` flows, `AT_ONCE` at a time, each opened by `open` and checked to echo
/// its own bytes; returns the failures and how long it took.
async fn burst<F, Opening>(open: F) -> (Vec<String>, Duration)
where
    F: Fn() -> Opening + Clone + Send + 'static,
    Opening: Future<Output = Result<TcpStream, String>> + Send,
{
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    let mut flows = tokio::task::JoinSet::new();
    for i in 0..FLOWS {
        let slot = slots.clone().acquire_owned().await.unwrap();
        let open = open.clone();
        flows.spawn(async move {
            let _slot = slot;
            let sent = payload(i);
            let tcp = open().await.map_err(|e| format!("flow {i}: {e}"))?;
            let back = echo_through(tcp, &sent)
                .await
                .map_err(|e| format!("flow {i}: {e}"))?;
            if back != sent {
                return Err(format!(
                    "flow {i}: {} bytes back, BLAKE3 {} instead of {}",
                    back.len(),
                    blake3::hash(&back),
                    blake3::hash(&sent)
                ));
            }
            Ok(())
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = flows.join_next().await {
        if let Err(e) = done.unwrap() {
            failures.push(e);
        }
    }
    (failures, started.elapsed())
}

/// The node must have spread the flows out: the first `2 × rate` open at once, the
/// rest at the rate.
fn assert_spread_at_the_rate(took: Duration) {
    let least = Duration::from_secs_f64(
        (FLOWS as f64 - 2.0 * FLOW_OPENS_PER_SECOND as f64) / FLOW_OPENS_PER_SECOND as f64,
    );
    assert!(
        took >= least.mul_f64(0.9),
        "{FLOWS} flows in {took:?}, faster than the rate allows"
    );
}

/// Every byte of every flow was relayed once each way (the counters are bumped just
/// after each write, so the last may trail the client's read by a moment).
async fn assert_relayed_exactly(node: &RelayNode) {
    let bytes: u64 = (0..FLOWS).map(|i| payload(i).len() as u64).sum();
    for _ in 0..100 {
        if node.relayed() == (bytes, bytes) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.relayed(), (bytes, bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_the_socks5_proxy_waits_and_every_flow_arrives_intact() {
    let echo = echo_server().await;
    let mut config = NodeConfig::new(key(1), loopback());
    allow_loopback_egress(&mut config);
    config.flow_opens_per_second = FLOW_OPENS_PER_SECOND;
    let node = RelayNode::start(config).unwrap();
    let client = Arc::new(
        RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
            .await
            .unwrap(),
    );
    let socks = TcpListener::bind(loopback()).await.unwrap();
    let proxy = socks.local_addr().unwrap();
    tokio::spawn(async move { client::serve_socks5(client, &socks).await });

    let (failures, took) = burst(move || socks5_connect(proxy, echo)).await;
    assert!(
        failures.is_empty(),
        "{} of {FLOWS} flows failed: {failures:#?}",
        failures.len()
    );
    assert_spread_at_the_rate(took);
    assert_relayed_exactly(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_peer_relay_waits_and_every_flow_arrives_intact() {
    let echo = echo_server().await;
    // Peer relay only: client A's port forward → node → client B → B's echo server.
    let mut config = NodeConfig::new(key(1), loopback());
    config.flow_opens_per_second = FLOW_OPENS_PER_SECOND;
    let node = RelayNode::start(config).unwrap();
    let ticket = node.ticket(vec![]).unwrap();

    let b_key = key(4);
    let b_id = relay::ticket::PartyId::of(&b_key);
    let b = Arc::new(RelayClient::connect(&ticket, &b_key).await.unwrap());
    tokio::spawn(client::forward_peers(b, echo));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let a = Arc::new(RelayClient::connect(&ticket, &key(5)).await.unwrap());
    let local = TcpListener::bind(loopback()).await.unwrap();
    let forward = local.local_addr().unwrap();
    tokio::spawn(async move { client::dial_forward(a, b_id, &local).await });

    let (failures, took) =
        burst(move || async move { TcpStream::connect(forward).await.map_err(|e| e.to_string()) })
            .await;
    assert!(
        failures.is_empty(),
        "{} of {FLOWS} flows failed: {failures:#?}",
        failures.len()
    );
    assert_spread_at_the_rate(took);
    assert_relayed_exactly(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socks5_proxy_tries_a_rate_limited_flow_again() {
    let echo = echo_server().await;
    // A node that lets no flow wait: past the burst of 10, flows are refused at once
    // until the rate (5 a second) earns new turns.
    let mut config = NodeConfig::new(key(1), loopback());
    allow_loopback_egress(&mut config);
    config.flow_opens_per_second = 5;
    config.flow_open_wait = Duration::ZERO;
    let node = RelayNode::start(config).unwrap();
    let client = Arc::new(
        RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
            .await
            .unwrap(),
    );
    let socks = TcpListener::bind(loopback()).await.unwrap();
    let proxy = socks.local_addr().unwrap();
    tokio::spawn(async move { client::serve_socks5(client, &socks).await });

    let mut flows = tokio::task::JoinSet::new();
    for i in 0..12 {
        flows.spawn(async move {
            let tcp = socks5_connect(proxy, echo).await?;
            let sent = payload(i);
            let back = echo_through(tcp, &sent).await.map_err(|e| e.to_string())?;
            (back == sent)
                .then_some(())
                .ok_or("the echo differs".to_owned())
        });
    }
    while let Some(done) = flows.join_next().await {
        done.unwrap().unwrap();
    }
}
