//! Node benchmarks. Prints one JSON object a line (format in DESIGN.md).
//!
//! 1. User input → GPU yielded, end to end: a real X server (Xvfb), real input
//!    (`xdotool`), the node's X11 reader, policy thread and GPU lane with a long job on a
//!    real device; p50 and p99 over many trials. Baseline, measured in the same run: the
//!    owner's pause command → GPU yielded (the same lane without the input path).
//! 2. The daemon's CPU and resident memory: `spare daemon` as a real process, idle and
//!    then lending in demo mode; its GPU worker is measured apart.
//!
//! `cargo bench -p spare` runs the full trials (60 s per daemon phase); without
//! `--bench` (as `make test` runs it) a smoke size checks that the benchmark works.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// This benchmark's figures, as JSON lines.
const REPORT: bench_support::Reporter = bench_support::Reporter::new("node");

use bench_support::proc::{children, cpu_seconds, rss_mb};

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
    runtime.block_on(input::input_to_yield(if full { 40 } else { 2 }));
    daemon_resources(if full {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(2)
    });
}

fn spare_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_spare"))
}

/// User input → GPU yielded: X11 under Xvfb, so Linux only.
#[cfg(target_os = "linux")]
mod input {
    use std::time::{Duration, Instant};

    use compute::supervisor::RunnerConfig;
    use ed25519_dalek::SigningKey;
    use job_protocol as job_service;
    use ledger::{Network, PartyId};
    use node::config::Config;
    use node::lending::Limits;
    use node::{Node, NodeOptions, PauseFor, Target};

    use super::{REPORT, spare_exe};

    pub async fn input_to_yield(trials: usize) {
        let Some(xvfb) = node::testing::Xvfb::start() else {
            return;
        };
        let data = tempfile::tempdir().unwrap();
        let node_key = SigningKey::from_bytes(&[1; 32]);
        let mut options = NodeOptions::new(Config::default(), node_key.clone(), data.path().into());
        options.bind = Some("127.0.0.1:0".parse().unwrap());
        options.runner = Some(RunnerConfig::new(
            spare_exe(),
            vec![compute::worker::WORKER_ARG.to_owned()],
        ));
        options.input = Some(signals::x11_input_idle(&xvfb.display).unwrap());
        options.limits = Some(Limits {
            idle_threshold: Duration::from_secs(1),
            gpu_duty_percent: 100,
            ..Limits::from_config(&Config::default())
        });
        let node = Node::start(options).await.unwrap();
        let handle = node.handle();
        let ticket: relay::ticket::Ticket = handle.status().ticket.parse().unwrap();
        let requester = SigningKey::from_bytes(&[2; 32]);
        // A job that outlasts the benchmark.
        let job = node::testing::long_job(1_000_000);
        let card = job_service::rate_card(&ticket, &requester).await.unwrap();
        let order = job_service::sign_order(
            &requester,
            PartyId::of(&node_key),
            Network::new(card.network.clone()).unwrap(),
            &job,
            card.price(job.total_workgroups()),
            Duration::from_secs(3600),
        )
        .unwrap();
        let submitted = tokio::spawn(async move {
            let _ = job_service::submit(&ticket, &requester, &job, order, &mut |_| {}).await;
        });

        let running = || {
            let s = handle.status();
            s.gpu.running && !s.gpu.yielded
        };
        let (mut input, mut command) = (Vec::new(), Vec::new());
        for trial in 0..trials {
            wait(Duration::from_secs(120), &running).await;
            // Let a few slices run, and land the input anywhere in the policy's tick.
            tokio::time::sleep(Duration::from_millis(100 + (trial as u64 * 37) % 100)).await;
            let started = Instant::now();
            xvfb.move_pointer(10 + trial as u32 % 300, 20);
            input.push(yielded_after(&handle, started).await);

            wait(Duration::from_secs(120), &running).await;
            tokio::time::sleep(Duration::from_millis(100 + (trial as u64 * 53) % 100)).await;
            let started = Instant::now();
            handle.pause(Target::Gpu, PauseFor::UntilResumed);
            command.push(yielded_after(&handle, started).await);
            handle.resume(Target::Gpu);
        }
        drop(node);
        submitted.abort();
        let (p50, p99) = percentiles(&mut input);
        let (base50, base99) = percentiles(&mut command);
        eprintln!(
            "user input → GPU yielded over {trials} trials: p50 {p50:.1} ms, p99 {p99:.1} ms; \
             owner's pause command → yielded: p50 {base50:.1} ms, p99 {base99:.1} ms"
        );
        REPORT.line(
            "input_to_yield_p50",
            p50,
            "ms",
            "pause_command_to_yield_p50",
            base50,
            "report",
        );
        REPORT.line(
            "input_to_yield_p99",
            p99,
            "ms",
            "pause_command_to_yield_p99",
            base99,
            "<= 300 ms",
        );
    }

    async fn wait(limit: Duration, done: &impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "the job did not run");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn yielded_after(handle: &node::NodeHandle, started: Instant) -> f64 {
        loop {
            if let Some(at) = handle.last_yield()
                && at > started
            {
                return (at - started).as_secs_f64() * 1000.0;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the GPU did not yield"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn percentiles(samples: &mut [f64]) -> (f64, f64) {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.99))
    }
}

#[cfg(not(target_os = "linux"))]
mod input {
    pub async fn input_to_yield(_trials: usize) {
        eprintln!("the input-to-yield benchmark needs X11 under Xvfb: Linux only");
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(home: &Path, demo: bool) -> Daemon {
    let mut cmd = Command::new(spare_exe());
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .args(["--key-file"])
        .arg(home.join("node.key"))
        .args(["daemon", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if demo {
        cmd.arg("--demo");
    }
    let daemon = Daemon(cmd.spawn().unwrap());
    let socket = home.join(".local/share/spare/control.sock");
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "no daemon");
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

/// Runs the daemon for `period` after a settling second; returns the share of one
/// core it used, its peak resident MB, and its worker's (CPU share, peak MB).
fn measure(home: &Path, demo: bool, period: Duration) -> (f64, f64, f64, f64) {
    let daemon = start_daemon(home, demo);
    let pid = daemon.0.id();
    std::thread::sleep(Duration::from_secs(if demo { 5 } else { 1 }));
    let cpu_start = cpu_seconds(pid).unwrap();
    let worker_cpu_start: f64 = children(pid).iter().filter_map(|c| cpu_seconds(*c)).sum();
    let started = Instant::now();
    let (mut peak, mut worker_peak) = (0f64, 0f64);
    while started.elapsed() < period {
        peak = peak.max(rss_mb(pid).unwrap_or(0.0));
        let worker: f64 = children(pid).iter().filter_map(|c| rss_mb(*c)).sum();
        worker_peak = worker_peak.max(worker);
        std::thread::sleep(Duration::from_millis(250));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid).unwrap() - cpu_start) / elapsed * 100.0;
    let worker_cpu_end: f64 = children(pid).iter().filter_map(|c| cpu_seconds(*c)).sum();
    let worker_cpu = (worker_cpu_end - worker_cpu_start).max(0.0) / elapsed * 100.0;
    drop(daemon);
    (cpu, peak, worker_cpu, worker_peak)
}

fn daemon_resources(period: Duration) {
    let home = tempfile::tempdir().unwrap();
    let (idle_cpu, idle_rss, _, _) = measure(home.path(), false, period);
    let demo_home = tempfile::tempdir().unwrap();
    let (demo_cpu, demo_rss, worker_cpu, worker_rss) = measure(demo_home.path(), true, period);
    eprintln!(
        "daemon over {} s: idle {idle_cpu:.3} % of a core, {idle_rss:.1} MB resident; lending \
         in demo mode {demo_cpu:.2} % and {demo_rss:.1} MB (its GPU worker {worker_cpu:.1} % \
         and {worker_rss:.1} MB)",
        period.as_secs()
    );
    REPORT.line(
        "daemon_idle_cpu",
        idle_cpu,
        "% of a core",
        "target",
        0.2,
        "<= 0.2 %",
    );
    REPORT.line(
        "daemon_idle_rss",
        idle_rss,
        "MB",
        "target",
        40.0,
        "<= 40 MB",
    );
    REPORT.line(
        "daemon_demo_cpu",
        demo_cpu,
        "% of a core",
        "daemon_idle_cpu",
        idle_cpu,
        "report",
    );
    REPORT.line(
        "daemon_demo_rss",
        demo_rss,
        "MB",
        "daemon_idle_rss",
        idle_rss,
        "report",
    );
    REPORT.line(
        "gpu_worker_demo_rss",
        worker_rss,
        "MB",
        "daemon_demo_rss",
        demo_rss,
        "report",
    );
}
