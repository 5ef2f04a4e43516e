//! Relay benchmarks, all in one run on one machine, printed as JSON lines:
//! goodput through the node against direct quinn, peer relay goodput, added latency
//! on a 64-byte echo, CPU per GB relayed and memory per idle client.
//!
//! `cargo bench -p relay` moves 1 GiB per goodput figure and connects 1,000 idle
//! clients; without `--bench` (as `make test` runs it) a small smoke size.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use relay::client::RelayClient;
use relay::node::{NodeConfig, RelayNode};
use relay::policy::EgressPolicy;
use relay::ticket::PartyId;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// This benchmark's figures, as JSON lines.
const REPORT: bench_support::Reporter = bench_support::Reporter::new("relay");

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        eprintln!("smoke run (no --bench): checks the benchmark works; its figures mean nothing");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(full));
}

async fn run(full: bool) {
    let bytes: u64 = if full { 1 << 30 } else { 8 << 20 };
    let echoes = if full { 2_000 } else { 50 };
    let idle_clients = if full { 1_000 } else { 20 };

    // Baseline: a direct quinn client → server with the relay's TLS and transport.
    let cpu_before = cpu_seconds();
    let direct = direct_quinn_goodput(bytes).await;
    let direct_cpu = cpu_seconds() - cpu_before;

    // Client → node → TCP sink.
    let mut config = NodeConfig::new(key(1), loopback());
    let mut policy = EgressPolicy::open();
    policy.allow_loopback_for_tests = true;
    config.egress = Some(policy);
    let node = RelayNode::start(config).unwrap();
    let ticket = node.ticket(vec![]).unwrap();
    let client = RelayClient::connect(&ticket, &key(2)).await.unwrap();
    let (sink, sink_done) = tcp_sink().await;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let (mut send, _recv) = client.open_tcp(&sink.to_string()).await.unwrap();
    write_zeros(&mut send, bytes).await;
    send.finish().unwrap();
    let received = sink_done.await.unwrap();
    let relay_secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    assert_eq!(received, bytes, "the sink did not get every byte");
    let relayed = mb_per_s(bytes, relay_secs);
    // The baseline runs again after the relay and its better figure counts, so that
    // warm-up or a noisy neighbour cannot flatter the ratio.
    let direct = direct.max(direct_quinn_goodput(bytes).await);
    REPORT.line(
        "goodput_tcp_egress",
        relayed,
        "MB/s",
        "direct_quinn",
        direct,
        ">= 0.8",
    );
    REPORT.line(
        "cpu_per_gb_relayed",
        cpu / (bytes as f64 / 1e9),
        "CPU-s/GB",
        "direct_quinn_cpu_per_gb",
        direct_cpu / (bytes as f64 / 1e9),
        "report (client, node and sink in one process)",
    );

    // Peer relay: client A → node → client B.
    let listener_key = key(3);
    let listener_id = PartyId::of(&listener_key);
    let listening = Arc::new(RelayClient::connect(&ticket, &listener_key).await.unwrap());
    listening.listen().await.unwrap();
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    let accepting = listening.clone();
    tokio::spawn(async move {
        let (_, _send, mut recv) = accepting.accept_peer().await.unwrap();
        let n = drain(&mut recv).await;
        let _ = got_tx.send(n);
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dialer = RelayClient::connect(&ticket, &key(4)).await.unwrap();
    let started = Instant::now();
    let (mut send, _recv) = dialer.dial(listener_id).await.unwrap();
    write_zeros(&mut send, bytes).await;
    send.finish().unwrap();
    assert_eq!(got_rx.await.unwrap(), bytes);
    let peer = mb_per_s(bytes, started.elapsed().as_secs_f64());
    REPORT.line(
        "goodput_peer_relay",
        peer,
        "MB/s",
        "direct_quinn",
        direct,
        "report",
    );

    // Added latency: a 64-byte echo through the node vs over direct quinn.
    let direct_rtt = direct_quinn_echo(echoes).await;
    let echo = echo_server().await;
    let (mut send, mut recv) = client.open_tcp(&echo.to_string()).await.unwrap();
    let mut relayed_rtt = Vec::with_capacity(echoes);
    let mut buf = [0u8; 64];
    for i in 0..echoes {
        let started = Instant::now();
        send.write_all(&[i as u8; 64]).await.unwrap();
        recv.read_exact(&mut buf).await.unwrap();
        relayed_rtt.push(started.elapsed());
    }
    for (q, name, target) in [
        (0.5, "added_latency_p50", "<= 1 ms"),
        (0.99, "added_latency_p99", "<= 5 ms"),
    ] {
        let relayed = percentile(&mut relayed_rtt, q);
        let base = percentile(&mut direct_rtt.clone(), q);
        REPORT.line(
            name,
            ms(relayed.saturating_sub(base)),
            "ms",
            "direct_quinn_echo_rtt",
            ms(base),
            target,
        );
    }

    // Memory per idle client: connect many clients through one endpoint and hold them.
    drop((client, dialer, listening));
    let rss_before = rss_bytes();
    let conns = idle_connections(&node, idle_clients).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss_bytes();
    assert_eq!(
        node.clients(),
        idle_clients,
        "not every idle client stayed connected"
    );
    let per_client = (rss_after.saturating_sub(rss_before)) as f64 / idle_clients as f64 / 1024.0;
    REPORT.line(
        "memory_per_idle_client",
        per_client,
        "KiB",
        "process_rss_before",
        rss_before as f64 / 1024.0,
        "report (node and client sides together)",
    );
    drop(conns);
}

async fn direct_quinn_goodput(bytes: u64) -> f64 {
    let (server_addr, server_id, done) =
        quinn_server(|mut recv: quinn::RecvStream, _send| async move { drain(&mut recv).await })
            .await;
    let conn = quinn_client(server_addr, server_id).await;
    let started = Instant::now();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    write_zeros(&mut send, bytes).await;
    send.finish().unwrap();
    assert_eq!(done.await.unwrap(), bytes);
    mb_per_s(bytes, started.elapsed().as_secs_f64())
}

async fn direct_quinn_echo(echoes: usize) -> Vec<Duration> {
    let (server_addr, server_id, _done) = quinn_server(
        |mut recv: quinn::RecvStream, mut send: quinn::SendStream| async move {
            let _ = tokio::io::copy(&mut recv, &mut send).await;
            0
        },
    )
    .await;
    let conn = quinn_client(server_addr, server_id).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(echoes);
    for i in 0..echoes {
        let started = Instant::now();
        send.write_all(&[i as u8; 64]).await.unwrap();
        recv.read_exact(&mut buf).await.unwrap();
        rtts.push(started.elapsed());
    }
    rtts
}

/// A plain quinn server with the relay's TLS and transport settings that hands its
/// first stream to `serve`.
async fn quinn_server<F, Fut>(
    serve: F,
) -> (SocketAddr, PartyId, tokio::sync::oneshot::Receiver<u64>)
where
    F: FnOnce(quinn::RecvStream, quinn::SendStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let server_key = key(10);
    let id = PartyId::of(&server_key);
    let tls = relay::tls::server_config(&server_key).unwrap();
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(relay::endpoint::transport_config(
        Duration::from_secs(30),
        64,
    )));
    let endpoint = quinn::Endpoint::server(config, loopback()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let conn = endpoint.accept().await.unwrap().await.unwrap();
        let (send, recv) = conn.accept_bi().await.unwrap();
        let n = serve(recv, send).await;
        let _ = tx.send(n);
        conn.closed().await;
        drop(endpoint);
    });
    (addr, id, rx)
}

async fn quinn_client(addr: SocketAddr, id: PartyId) -> quinn::Connection {
    let tls = relay::tls::client_config(&key(11), id).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(relay::endpoint::transport_config(
        Duration::from_secs(30),
        64,
    )));
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint.connect(addr, "spare-node").unwrap().await.unwrap()
}

async fn idle_connections(
    node: &RelayNode,
    n: usize,
) -> Vec<(quinn::Connection, quinn::SendStream)> {
    let tls = relay::tls::client_config(&key(20), node.id()).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = relay::endpoint::transport_config(Duration::from_secs(30), 64);
    transport.keep_alive_interval(Some(Duration::from_secs(5)));
    config.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(config);
    let addr = node.local_addr().unwrap();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let conn = endpoint.connect(addr, "spare-node").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        relay::io::write_frame(
            &mut send,
            &relay::wire::Frame::Hello {
                version: relay::wire::VERSION,
            },
        )
        .await
        .unwrap();
        relay::io::read_frame(&mut recv, Duration::from_secs(10))
            .await
            .unwrap();
        out.push((conn, send));
    }
    std::mem::forget(endpoint); // keep the socket for the connections' lifetime
    out
}

async fn tcp_sink() -> (SocketAddr, tokio::sync::oneshot::Receiver<u64>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let n = drain(&mut tcp).await;
        let _ = tx.send(n);
    });
    (addr, rx)
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn drain<R: tokio::io::AsyncRead + Unpin>(from: &mut R) -> u64 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n as u64,
        }
    }
}

async fn write_zeros(to: &mut quinn::SendStream, bytes: u64) {
    let chunk = vec![0u8; 256 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        to.write_all(&chunk[..n]).await.unwrap();
        left -= n as u64;
    }
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// User plus system CPU seconds of this process (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of /proc/pid/stat, counted after the ")" (state is field 3).
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of this process in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
