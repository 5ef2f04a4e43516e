//! Rate caps by back-pressure, and payment: a client whose promises lag is paused,
//! then resumed when they catch up; the session's latest promise is reported.

use std::time::{Duration, Instant};

use relay::client::RelayClient;
use relay::node::{NodeConfig, RelayNode};
use relay::wire::Status;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::flows::{echo_server, key, loopback, node_with_loopback_egress};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_client_upload_cap_holds_within_five_percent() {
    const RATE: u64 = 2_000_000;
    const BYTES: u64 = 6_000_000;
    let sink = TcpListener::bind(loopback()).await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = sink.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        let _ = done_tx.send((total, Instant::now()));
    });
    let mut config = NodeConfig::new(key(1), loopback());
    crate::flows::allow_loopback_egress(&mut config);
    config.client_rate = (RATE, 0);
    let node = RelayNode::start(config).unwrap();
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
        .await
        .unwrap();
    let (mut send, _recv) = client.open_tcp(&sink_addr.to_string()).await.unwrap();
    let started = Instant::now();
    let chunk = vec![7u8; 64 * 1024];
    let mut left = BYTES;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        send.write_all(&chunk[..n]).await.unwrap();
        left -= n as u64;
    }
    send.finish().unwrap();
    let (total, ended) = done_rx.await.unwrap();
    assert_eq!(total, BYTES);
    // The bucket starts full (100 ms of burst): that much passes at once.
    let secs = ended.duration_since(started).as_secs_f64();
    let rate = (BYTES - RATE / 10) as f64 / secs;
    let error = (rate - RATE as f64).abs() / RATE as f64;
    assert!(
        error < 0.05,
        "{rate:.0} B/s against a cap of {RATE} B/s ({:.1} %)",
        error * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_promises_pause_the_client_until_they_catch_up() {
    let echo = echo_server().await;
    let (sessions_tx, mut sessions) = tokio::sync::mpsc::unbounded_channel();
    let mut config = NodeConfig::new(key(1), loopback());
    crate::flows::allow_loopback_egress(&mut config);
    config.price_per_gib = 1_000_000;
    config.promise_margin = 256 * 1024;
    config.sessions = Some(sessions_tx);
    config.checkpoint_every = Duration::from_millis(200);
    let node = RelayNode::start(config).unwrap();
    let client_key = key(2);
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &client_key)
        .await
        .unwrap();
    client.set_paying(false).await;

    let (mut send, mut recv) = client.open_tcp(&echo.to_string()).await.unwrap();
    const BYTES: usize = 1 << 20;
    let writer = tokio::spawn(async move {
        let data = vec![1u8; BYTES];
        send.write_all(&data).await.unwrap();
        send.finish().unwrap();
    });
    let reader = tokio::spawn(async move {
        let mut echoed = Vec::new();
        AsyncReadExt::read_to_end(&mut recv, &mut echoed)
            .await
            .unwrap();
        echoed.len()
    });

    // Without promises the node stops after the margin and says why.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (up, down) = node.relayed();
    assert!(
        up + down <= 256 * 1024 + 128 * 1024,
        "{up} + {down} relayed without promises"
    );
    let (status, message) = client.notice().expect("the node announced the pause");
    assert_eq!(status, Status::PaymentRequired, "{message}");
    assert!(!reader.is_finished());

    // Paying again resumes the flow, and everything arrives.
    client.set_paying(true).await;
    let echoed = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(echoed, BYTES);
    // The last bytes may have run past the margin again; the client's promise for them
    // resumes it.
    let resumed = tokio::time::timeout(Duration::from_secs(5), async {
        while client.notice().is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(resumed.is_ok(), "still paused: {:?}", client.notice());
    // Long enough for a checkpoint of the running session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(client);

    // While it ran, the session was checkpointed; its last record carries the latest
    // promise, signed by the client.
    let mut checkpoints = 0;
    let record = loop {
        let record = tokio::time::timeout(Duration::from_secs(40), sessions.recv())
            .await
            .unwrap()
            .unwrap();
        if record.ended {
            break record;
        }
        checkpoints += 1;
    };
    assert!(checkpoints >= 1, "no checkpoint while the session ran");
    assert_eq!((record.up, record.down), (BYTES as u64, BYTES as u64));
    let receipt = record
        .receipt
        .expect("a promise was accepted")
        .receipt()
        .clone();
    assert_eq!(receipt.kind, receipt::EntryKind::RelaySession);
    assert_eq!(receipt.counterparty, receipt::PartyId::of(&client_key));
    assert!(
        receipt.units + 256 * 1024 >= 2 * BYTES as u64,
        "{} bytes promised",
        receipt.units
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_quota_ends_flows_and_refuses_new_ones() {
    let echo = echo_server().await;
    let mut config = NodeConfig::new(key(1), loopback());
    crate::flows::allow_loopback_egress(&mut config);
    config.quota = (100_000, 0);
    let node = RelayNode::start(config).unwrap();
    let client = RelayClient::connect(&node.ticket(vec![]).unwrap(), &key(2))
        .await
        .unwrap();
    let (mut send, mut recv) = client.open_tcp(&echo.to_string()).await.unwrap();
    let writer = tokio::spawn(async move {
        let _ = send.write_all(&vec![3u8; 300_000]).await;
        let _ = send.finish();
    });
    let mut echoed = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        AsyncReadExt::read_to_end(&mut recv, &mut echoed),
    )
    .await;
    let _ = writer.await;
    let (up, down) = node.relayed();
    assert!(
        up + down <= 100_000,
        "{up} + {down} bytes relayed past a 100,000-byte quota"
    );
    let err = client.open_tcp(&echo.to_string()).await.unwrap_err();
    let relay::client::ClientError::Refused { status, message } = err else {
        panic!("{err}");
    };
    assert_eq!(status, Status::QuotaExceeded, "{message}");
    assert!(message.contains("today's"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_clients_with_the_reason_and_refuses_new_ones_until_resumed() {
    let node = node_with_loopback_egress();
    let ticket = node.ticket(vec![]).unwrap();
    let client = RelayClient::connect(&ticket, &key(2)).await.unwrap();
    node.set_stopped(Some("user active 3 s ago".into()));
    let reason = tokio::time::timeout(Duration::from_secs(5), client.closed())
        .await
        .expect("the connection was not closed");
    assert!(reason.contains("user active 3 s ago"), "{reason}");

    let Err(relay::client::ClientError::Refused { status, message }) =
        RelayClient::connect(&ticket, &key(3)).await
    else {
        panic!("a new client was served while the node was stopped");
    };
    assert_eq!(status, Status::NotOffered);
    assert!(
        message.contains("not lending bandwidth now: user active 3 s ago"),
        "{message}"
    );

    node.set_stopped(None);
    let echo = echo_server().await;
    let client = RelayClient::connect(&ticket, &key(3)).await.unwrap();
    let (mut send, mut recv) = client.open_tcp(&echo.to_string()).await.unwrap();
    send.write_all(b"back").await.unwrap();
    send.finish().unwrap();
    let mut echoed = Vec::new();
    AsyncReadExt::read_to_end(&mut recv, &mut echoed)
        .await
        .unwrap();
    assert_eq!(echoed, b"back");
}
