//! The node in-process: the job service's refusals on loopback, each with its code,
//! and real X11 input under Xvfb stopping GPU lending with the job yielded.

use std::path::PathBuf;
use std::time::Duration;

use compute::manifest::Job;
use compute::supervisor::RunnerConfig;
use ed25519_dalek::SigningKey;
use job_protocol::{self as job_service, Code, JobWire, OrderWire, Reply, Request};
use ledger::{EntryKind, Network, PartyId};
use node::config::Config;
use node::{Node, NodeHandle, NodeOptions};
use relay::ticket::Ticket;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn options(data: &tempfile::TempDir) -> NodeOptions {
    let mut options = NodeOptions::new(Config::default(), key(1), data.path().join("node"));
    options.bind = Some("127.0.0.1:0".parse().unwrap());
    options.runner = Some(RunnerConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_spare")),
        vec![compute::worker::WORKER_ARG.to_owned()],
    ));
    options
}

fn ticket(node: &NodeHandle) -> Ticket {
    node.status().ticket.parse().unwrap()
}

/// A small job: one buffer of `n` zeros, doubled in place.
fn small_job(n: usize) -> Job {
    node::demo::job(n as u32 / 64)
}

/// Signs an order with every term given.
fn order(
    requester: &SigningKey,
    payee: PartyId,
    network: &str,
    job: &Job,
    amount: i64,
    issued_at_ms: u64,
    expires_at_ms: u64,
) -> OrderWire {
    job_service::sign_order_at(
        requester,
        payee,
        Network::new(network).unwrap(),
        job,
        amount as u64,
        issued_at_ms,
        expires_at_ms,
    )
    .unwrap()
}

fn wire(job: &Job) -> JobWire {
    JobWire::of(job)
}

/// Sends raw bytes as one request and returns the node's first answer.
async fn raw(ticket: &Ticket, header: &[u8], body: &[u8]) -> Reply {
    let (_endpoint, conn) = relay::client::connect_service(ticket, &key(2), job_service::ALPN)
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&(header.len() as u32).to_be_bytes())
        .await
        .unwrap();
    send.write_all(header).await.unwrap();
    let _ = send.write_all(body).await;
    let _ = send.finish();
    tokio::time::timeout(Duration::from_secs(30), job_service::read_frame(&mut recv))
        .await
        .expect("no answer")
        .expect("an answer frame")
}

async fn submit_raw(ticket: &Ticket, order: OrderWire, job: &JobWire, body: &[u8]) -> Reply {
    let request = Request::Submit {
        order,
        job: job.clone(),
    };
    raw(ticket, &serde_json::to_vec(&request).unwrap(), body).await
}

#[track_caller]
fn refused(reply: Reply, code: Code, words: &str) {
    match reply {
        Reply::Refused(r) => {
            assert_eq!(r.code, code, "{}", r.message);
            assert!(r.message.contains(words), "{:?}: {}", r.code, r.message);
        }
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_order_is_refused_with_its_code_and_a_good_one_runs() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(options(&data)).await.unwrap();
    let handle = node.handle();
    let ticket = ticket(&handle);
    let card = job_service::rate_card(&ticket, &key(2)).await.unwrap();
    assert_eq!(card.network, "spare");
    let node_party = PartyId::of(&key(1));
    let requester = key(2);
    let job = small_job(64 * 64);
    let body: Vec<u8> = job.bindings.iter().flat_map(|b| b.bytes.clone()).collect();
    let now = job_service::now_ms();
    let price = card.price(job.total_workgroups()) as i64;
    let good = |amount| {
        order(
            &requester,
            node_party,
            "spare",
            &job,
            amount,
            now,
            now + 60_000,
        )
    };

    // A bad signature: one bit of the signature flipped.
    let mut forged = good(price);
    let mut sig = ledger::unhex(&forged.signature).unwrap();
    sig[5] ^= 1;
    forged.signature = ledger::hex(&sig);
    refused(
        submit_raw(&ticket, forged, &wire(&job), &body).await,
        Code::BadSignature,
        "does not verify",
    );
    // Expired an hour ago.
    let old = order(
        &requester,
        node_party,
        "spare",
        &job,
        price,
        now - 7_200_000,
        now - 3_600_000,
    );
    refused(
        submit_raw(&ticket, old, &wire(&job), &body).await,
        Code::Expired,
        "expired",
    );
    // Paying less than the rate card.
    refused(
        submit_raw(&ticket, good(price - 1), &wire(&job), &body).await,
        Code::Underpriced,
        "asks",
    );
    // For another node.
    let elsewhere = order(
        &requester,
        PartyId::of(&key(3)),
        "spare",
        &job,
        price,
        now,
        now + 60_000,
    );
    refused(
        submit_raw(&ticket, elsewhere, &wire(&job), &body).await,
        Code::WrongNode,
        "sign the order for the node in the ticket",
    );
    // For another network.
    let demo = order(
        &requester,
        node_party,
        "demo",
        &job,
        price,
        now,
        now + 60_000,
    );
    refused(
        submit_raw(&ticket, demo, &wire(&job), &body).await,
        Code::WrongNetwork,
        "\"demo\"",
    );
    // Signed for a different job.
    let other = small_job(128 * 64);
    let mismatched = order(
        &requester,
        node_party,
        "spare",
        &other,
        price,
        now,
        now + 60_000,
    );
    refused(
        submit_raw(&ticket, mismatched, &wire(&job), &body).await,
        Code::DigestMismatch,
        "different job",
    );
    // A malformed manifest, and a request that is not JSON at all.
    let no_steps = br#"{"type":"submit","order":{"receipt":"","signature":"","expires_at_ms":0},"job":{"source":"","bindings":[],"outputs":[]}}"#;
    refused(
        raw(&ticket, no_steps, b"").await,
        Code::MalformedManifest,
        "steps",
    );
    refused(
        raw(&ticket, b"{ not json", b"").await,
        Code::MalformedManifest,
        "not a valid job request",
    );
    // More input bytes than declared, and fewer.
    let mut longer = body.clone();
    longer.extend_from_slice(&[1; 32]);
    refused(
        submit_raw(&ticket, good(price), &wire(&job), &longer).await,
        Code::InputsTooLarge,
        "more input bytes",
    );
    refused(
        submit_raw(&ticket, good(price), &wire(&job), &body[..100]).await,
        Code::InputsTruncated,
        "ended before",
    );
    // A shader admission refuses, located.
    let mut bad_shader = job.clone();
    bad_shader.source = bad_shader.source.replace("x >> 15u", "y >> 15u");
    let bad_order = order(
        &requester,
        node_party,
        "spare",
        &bad_shader,
        price,
        now,
        now + 60_000,
    );
    refused(
        submit_raw(&ticket, bad_order, &wire(&bad_shader), &body).await,
        Code::NotAdmitted,
        "wgsl:",
    );

    // The good one runs (this machine has no display: the node lends at once), and
    // replaying it is refused.
    let order = good(price);
    let received = job_service::submit(&ticket, &requester, &job, order.clone(), &mut |_| {})
        .await
        .unwrap();
    let (output, bytes) = &received.outputs[0];
    assert_eq!(output.bytes, (64 * 64 * 4) as u64);
    assert_eq!(bytes.len(), 64 * 64 * 4);
    let replay = job_service::submit(&ticket, &requester, &job, order, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&replay, job_service::SubmitError::Refused(r) if r.code == Code::Replayed),
        "{replay}"
    );
    let status = handle.status();
    assert_eq!(status.gpu.jobs_done, 1);
    assert_eq!(status.gpu.earned_today_micro, price, "{status:?}");
    drop(node);
}

/// Real X11 input under Xvfb (Linux).
#[cfg(target_os = "linux")]
mod x11 {
    use std::time::{Duration, Instant};

    use job_protocol::{self as job_service, Code};
    use ledger::{Network, PartyId};
    use node::Node;
    use node::config::Config;
    use node::lending::Limits;

    use super::{key, options, ticket};

    async fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        start.elapsed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn x11_input_stops_gpu_lending_and_the_job_yields_then_resumes() {
        let Some(xvfb) = node::testing::Xvfb::start() else {
            return;
        };
        let data = tempfile::tempdir().unwrap();
        let mut options = options(&data);
        options.input = Some(signals::x11_input_idle(&xvfb.display).unwrap());
        options.limits = Some(Limits {
            idle_threshold: Duration::from_secs(1),
            gpu_duty_percent: 100,
            ..Limits::from_config(&Config::default())
        });
        let node = Node::start(options).await.unwrap();
        let handle = node.handle();
        assert_eq!(handle.status().signals.input_backend, "X11 screensaver");
        let ticket = ticket(&handle);
        let job = node::testing::long_job(64);
        let requester = key(2);
        let card = job_service::rate_card(&ticket, &requester).await.unwrap();
        let order = job_service::sign_order(
            &requester,
            PartyId::of(&key(1)),
            Network::new("spare").unwrap(),
            &job,
            card.price(job.total_workgroups()),
            Duration::from_secs(600),
        )
        .unwrap();
        let submitted = tokio::spawn(async move {
            job_service::submit(&ticket, &requester, &job, order, &mut |_| {}).await
        });

        wait_until(Duration::from_secs(60), "the job to run", || {
            handle.status().gpu.running
        })
        .await;
        xvfb.move_pointer(200, 200);
        let yielded = wait_until(Duration::from_secs(5), "the GPU to yield", || {
            let s = handle.status();
            s.gpu.yielded && s.gpu.state.state == node::State::Waiting
        })
        .await;
        let s = handle.status();
        assert!(
            s.gpu
                .state
                .reason
                .as_deref()
                .unwrap()
                .starts_with("user active"),
            "{s:?}"
        );
        assert!(
            yielded < Duration::from_secs(2),
            "yielded after {yielded:?}"
        );
        // The owner leaves again: after the threshold the job resumes where it stopped.
        wait_until(Duration::from_secs(10), "the job to resume", || {
            let s = handle.status();
            s.gpu.running && !s.gpu.yielded
        })
        .await;
        assert!(!submitted.is_finished());
        drop(node);
        let ended = tokio::time::timeout(Duration::from_secs(30), submitted)
            .await
            .expect("the requester heard nothing")
            .unwrap();
        assert!(
            matches!(&ended, Err(job_service::SubmitError::Refused(r)) if r.code == Code::NodeStopping),
            "{ended:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_quota_use_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let start = |data: &tempfile::TempDir| {
        let mut options = options(data);
        options.config.bandwidth.daily_quota_mb = 2;
        Node::start(options)
    };
    // A previous run today used 1 MB of the 2 MB daily quota.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let today = relay::limits::Period::utc(secs);
    std::fs::create_dir_all(data.path().join("node")).unwrap();
    std::fs::write(
        data.path().join("node/quota.json"),
        format!(
            r#"{{"day":{},"month":{},"day_used":1000000,"month_used":1000000}}"#,
            today.day, today.month
        ),
    )
    .unwrap();
    let node = start(&data).await.unwrap();
    assert_eq!(node.handle().status().bandwidth.quota_percent, Some(50));
    node.shutdown();
    // Stopping saves it again; the next run starts from there.
    let node = start(&data).await.unwrap();
    assert_eq!(node.handle().status().bandwidth.quota_percent, Some(50));
    // A quota file from another day counts for nothing today.
    node.shutdown();
    std::fs::write(
        data.path().join("node/quota.json"),
        format!(
            r#"{{"day":{},"month":{},"day_used":1000000,"month_used":1000000}}"#,
            today.day - 1,
            today.month - 1
        ),
    )
    .unwrap();
    let node = start(&data).await.unwrap();
    assert_eq!(node.handle().status().bandwidth.quota_percent, Some(0));
}

/// The tray app restarts its node in-process when settings change, while handles to the
/// old node may still be held: the folder's lock, the control socket and the UDP port
/// must all come free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_frees_its_folder_and_port_for_the_next_one_in_the_same_process() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = || {
        let mut options = options(&data);
        options.bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        options.demo = true;
        Node::start(options)
    };
    let control = node::control::socket_path(&data.path().join("node"));
    let mut first = start().await.unwrap();
    first.serve_control(&data.path().join("node")).unwrap();
    let held = first.handle();
    tokio::task::block_in_place(|| first.shutdown());
    // The endpoint lives as long as a handle does: the app drops its handles once the
    // node has stopped.
    drop(held);

    // Another node may take the folder at once; the port is free once the old
    // connections have drained.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut second = loop {
        match start().await {
            Ok(node) => break node,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(
                    !e.to_string().contains("already running"),
                    "the stopped node still holds the folder: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the port never came free: {e:#}"),
        }
    };
    second.serve_control(&data.path().join("node")).unwrap();
    let request = node::control::Request::Status;
    let status = tokio::task::spawn_blocking(move || node::control::request(&control, &request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status["listening"], format!("127.0.0.1:{port}"));
    tokio::task::block_in_place(|| second.shutdown());
}

#[test]
fn stopping_the_node_records_running_relay_sessions_with_their_last_promise() {
    use relay::client::RelayClient;

    // Like `spare daemon`: the runtime ends right after the node stops, so whatever the
    // node has not recorded by then is lost.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let (node, clients) = runtime.block_on(async {
        let mut options = options(&data);
        options.config.relay.price_per_gib = 1_000_000;
        let node = Node::start(options).await.unwrap();
        let ticket = ticket(&node.handle());
        let (listener_key, dialer_key) = (key(7), key(8));
        let listener =
            std::sync::Arc::new(RelayClient::connect(&ticket, &listener_key).await.unwrap());
        listener.listen().await.unwrap();
        let sink = listener.clone();
        let received = tokio::spawn(async move {
            let (_, _send, mut recv) = sink.accept_peer().await.unwrap();
            let mut total = 0usize;
            let mut buf = vec![0u8; 1 << 16];
            while total < 40 << 20 {
                match recv.read(&mut buf).await {
                    Ok(Some(n)) => total += n,
                    Ok(None) | Err(_) => break,
                }
            }
            total
        });
        let dialer = RelayClient::connect(&ticket, &dialer_key).await.unwrap();
        let peer = relay::ticket::PartyId::of(&listener_key);
        let (mut send, _recv) = dialer.dial(peer).await.unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..40 {
            send.write_all(&chunk).await.unwrap();
        }
        assert_eq!(received.await.unwrap(), 40 << 20);
        // Usage is reported every 16 MiB at the default margin; let the promise land.
        tokio::time::sleep(Duration::from_millis(300)).await;
        (node, (listener, dialer, send))
    });
    // The sessions are still open when the node stops: their promises must be kept.
    runtime.block_on(async { tokio::task::block_in_place(|| drop(node)) });
    drop(clients);
    drop(runtime);
    let ledger = ledger::Ledger::open_existing(data.path().join("node/ledger.sqlite3")).unwrap();
    let entries = ledger.entries(0, 10).unwrap();
    let relayed: u64 = entries
        .iter()
        .filter(|e| e.receipt.kind == EntryKind::RelaySession)
        .map(|e| e.receipt.units)
        .sum();
    assert!(
        relayed >= 32 << 20,
        "only {relayed} bytes recorded: {entries:?}"
    );
}

/// A running job's progress is in the status: workgroups done of the whole job's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_jobs_progress_is_in_the_status() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(options(&data)).await.unwrap();
    let handle = node.handle();
    let ticket = ticket(&handle);
    let job = node::testing::long_job(1);
    let total = job.total_workgroups();
    let requester = key(2);
    let card = job_service::rate_card(&ticket, &requester).await.unwrap();
    let order = job_service::sign_order(
        &requester,
        PartyId::of(&key(1)),
        Network::new("spare").unwrap(),
        &job,
        card.price(total),
        Duration::from_secs(600),
    )
    .unwrap();
    let _submitted = tokio::spawn(async move {
        job_service::submit(&ticket, &requester, &job, order, &mut |_| {}).await
    });
    let start = std::time::Instant::now();
    let mut seen = Vec::new();
    loop {
        if let Some(progress) = handle.status().gpu.job {
            assert_eq!(progress.workgroups_total, total);
            seen.push(progress.workgroups_done);
            if progress.workgroups_done > 0 && seen.len() > 2 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(*seen.last().unwrap() < total, "{seen:?}");
    drop(node);
}
