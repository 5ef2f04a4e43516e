//! Hostile requesters against the real node (lavapipe, quinn on loopback): jobs that
//! never finish are charged to whoever sent them and lending goes on for everyone else;
//! a worker that dies while idle is replaced before the next job, and a job that
//! arrives during the restart waits for it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use compute::manifest::{Binding, BindingKind, BindingRef, Job, Step};
use compute::supervisor::RunnerConfig;
use ed25519_dalek::SigningKey;
use job_protocol::{self as job_service, Code, SubmitError};
use ledger::{Network, PartyId};
use node::config::Config;
use node::{Node, NodeHandle, NodeOptions};
use relay::ticket::Ticket;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A node whose runner has a short slice ceiling (50 ms: the watchdog kills a worker
/// silent for 200 ms), so a hanging job costs little test time.
fn options(data: &tempfile::TempDir, backoff: Duration) -> NodeOptions {
    let mut options = NodeOptions::new(Config::default(), key(1), data.path().join("node"));
    options.bind = Some("127.0.0.1:0".parse().unwrap());
    let mut runner = RunnerConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_spare")),
        vec![compute::worker::WORKER_ARG.to_owned()],
    );
    runner.ceiling = Duration::from_millis(50);
    runner.backoff_base = backoff;
    options.runner = Some(runner);
    options
}

fn ticket(node: &NodeHandle) -> Ticket {
    node.status().ticket.parse().unwrap()
}

/// A job that passes admission but whose every workgroup runs for far longer than the
/// watchdog allows a slice (about a second here, five times the 200 ms watchdog; each
/// invocation stays under lavapipe's 65,535-iteration loop limit, so the work is long
/// by what each iteration does, with no nested loops). `salt` makes each one a
/// different job.
fn hanging_job(salt: u32) -> Job {
    let source = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;

fn mix(x: u32, i: u32) -> u32 {
    var h = (x ^ (x >> 13u)) * 0x5bd1e995u + i;
    h = (h ^ (h >> 11u)) * 0x27d4eb2du;
    return (h ^ (h >> 7u)) * 0x165667b1u;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    var h = li + out[1024];
    for (var i = 0u; i < 65000u; i = i + 1u) {
        h = mix(mix(mix(mix(mix(mix(mix(mix(h, i), i), i), i), i), i), i), i);
        h = mix(mix(mix(mix(mix(mix(mix(mix(h, i), i), i), i), i), i), i), i);
        h = mix(mix(mix(mix(mix(mix(mix(mix(h, i), i), i), i), i), i), i), i);
        h = mix(mix(mix(mix(mix(mix(mix(mix(h, i), i), i), i), i), i), i), i);
    }
    out[li] = h;
}
";
    let at = BindingRef {
        group: 0,
        binding: 0,
    };
    let mut bytes = vec![0u8; 4100];
    bytes[4096..].copy_from_slice(&salt.to_le_bytes());
    Job {
        source: source.to_owned(),
        steps: vec![Step {
            entry_point: "main".into(),
            workgroups: [64, 1, 1],
            repeat: 1,
        }],
        bindings: vec![Binding {
            at,
            kind: BindingKind::StorageReadWrite,
            bytes,
        }],
        outputs: vec![at],
    }
}

/// Submits `job` from `requester` with an order at the node's price.
async fn submit(ticket: &Ticket, requester: &SigningKey, job: &Job) -> Result<(), SubmitError> {
    let card = job_service::rate_card(ticket, requester).await.unwrap();
    let order = job_service::sign_order(
        requester,
        PartyId::of(&key(1)),
        Network::new("spare").unwrap(),
        job,
        card.price(job.total_workgroups()),
        Duration::from_secs(600),
    )
    .unwrap();
    job_service::submit(ticket, requester, job, order, &mut |_| {})
        .await
        .map(|_| ())
}

#[track_caller]
fn refused_with(result: Result<(), SubmitError>, code: Code, words: &str) {
    match result {
        Err(SubmitError::Refused(r)) => {
            assert_eq!(r.code, code, "{}", r.message);
            assert!(r.message.contains(words), "{:?}: {}", r.code, r.message);
        }
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_never_finish_are_charged_to_their_requesters_and_lending_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(options(&data, Duration::from_secs(1)))
        .await
        .unwrap();
    let handle = node.handle();
    let ticket = ticket(&handle);

    // One attacker: the first hanging job is killed by the watchdog and fails …
    let attacker = key(10);
    refused_with(
        submit(&ticket, &attacker, &hanging_job(0)).await,
        Code::JobFailed,
        "the GPU worker was killed",
    );
    // … and the attacker's next ones are refused while they cool off.
    for salt in 1..3 {
        refused_with(
            submit(&ticket, &attacker, &hanging_job(salt)).await,
            Code::CoolingOff,
            "your jobs are refused for 10 more minutes",
        );
    }
    // The same job is refused for good, whoever sends it.
    refused_with(
        submit(&ticket, &key(11), &hanging_job(0)).await,
        Code::JobBlocked,
        "not run again",
    );

    // Two more attackers with keys of their own: three requesters' jobs lost workers,
    // so the node runs its self-test, which passes; lending goes on.
    for (seed, salt) in [(12, 10), (13, 11)] {
        refused_with(
            submit(&ticket, &key(seed), &hanging_job(salt)).await,
            Code::JobFailed,
            "the GPU worker was killed",
        );
    }
    let status = handle.status();
    assert_eq!(status.gpu.runner_stopped, None, "{status:?}");
    assert_eq!(
        status.gpu.state.state,
        node::State::Lending,
        "{:?}",
        status.gpu.state
    );

    // An honest requester's job runs.
    submit(&ticket, &key(20), &node::demo::job(64))
        .await
        .unwrap();
    let status = handle.status();
    assert_eq!(status.gpu.jobs_done, 1, "{status:?}");
    assert_eq!(status.gpu.jobs_failed, 3, "{status:?}");
    assert_eq!(status.gpu.requesters_cooling_off, 3, "{status:?}");
    drop(node);

    // A restart forgives no one.
    let node = Node::start(options(&data, Duration::from_secs(1)))
        .await
        .unwrap();
    let ticket = self::ticket(&node.handle());
    refused_with(
        submit(&ticket, &attacker, &hanging_job(5)).await,
        Code::CoolingOff,
        "your jobs are refused for",
    );
    refused_with(
        submit(&ticket, &key(21), &hanging_job(0)).await,
        Code::JobBlocked,
        "not run again",
    );
    assert_eq!(node.handle().status().gpu.requesters_cooling_off, 3);
    drop(node);
}

/// The pids of the GPU workers of the node whose data folder is `data` (other tests'
/// nodes run in this process too: a worker is known by its pipeline cache folder).
fn workers(data: &tempfile::TempDir) -> Vec<u32> {
    let me = std::process::id().to_string();
    let cache = format!(
        "{}={}",
        compute::worker::PIPELINE_CACHE_ENV,
        data.path().join("node/pipelines").display()
    );
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent pid is the 4th field, after the parenthesised name.
        let parent = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1));
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let is_worker = String::from_utf8_lossy(&cmdline).contains(compute::worker::WORKER_ARG);
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let ours = environ
            .split(|b| *b == 0)
            .any(|var| var == cache.as_bytes());
        if parent == Some(me.as_str()) && is_worker && ours && !stat.contains(") Z ") {
            pids.push(pid);
        }
    }
    pids
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_idle_is_replaced_and_a_job_during_the_restart_waits() {
    let data = tempfile::tempdir().unwrap();
    // A machine failure backs off 2 s before the next worker starts.
    let node = Node::start(options(&data, Duration::from_secs(2)))
        .await
        .unwrap();
    let handle = node.handle();
    let ticket = ticket(&handle);
    let requester = key(2);
    submit(&ticket, &requester, &node::demo::job(64))
        .await
        .unwrap();
    let first = workers(&data);
    assert_eq!(first.len(), 1, "{first:?}");

    // Killed while idle: noticed at once, and a new worker starts after the back-off,
    // before any job needs it.
    kill(first[0]);
    wait_until(Duration::from_secs(20), "a new worker", || {
        let now = workers(&data);
        now.len() == 1 && now[0] != first[0]
    })
    .await;
    submit(&ticket, &requester, &node::demo::job(64))
        .await
        .unwrap();

    // Killed again, and a job sent at once: it waits in the queue for the restart (2 s
    // of back-off) instead of failing.
    let second = workers(&data);
    kill(second[0]);
    wait_until(Duration::from_secs(5), "the worker's exit", || {
        workers(&data).is_empty()
    })
    .await;
    let sent = Instant::now();
    submit(&ticket, &requester, &node::demo::job(64))
        .await
        .unwrap();
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    let status = handle.status();
    assert_eq!(status.gpu.jobs_done, 3, "{status:?}");
    assert_eq!(status.gpu.jobs_failed, 0, "{status:?}");
    assert_eq!(status.gpu.runner_stopped, None, "{status:?}");
    drop(node);
}
