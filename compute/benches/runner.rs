//! GPU runner benchmarks: job overhead against raw wgpu, the worker round trip,
//! slicing overhead on a long job, and yield latency. Prints one JSON object a line
//! (format in DESIGN.md).
//!
//! `cargo bench -p compute` runs the full sizes; without `--bench` (as `make test`
//! runs it) a small smoke size checks that the benchmark works.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compute::admission::Caps;
use compute::baseline::Baseline;
use compute::gpu::{Control, Gpu, RunEnd};
use compute::manifest::{self, Job};
use compute::slicing::Budget;
use compute::supervisor::{Outcome, RunnerConfig, Supervisor};

/// This benchmark's figures, as JSON lines.
const REPORT: bench_support::Reporter = bench_support::Reporter::new("gpu_runner");

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        eprintln!("smoke run (no --bench): checks the benchmark works; its figures mean nothing");
    }
    let small = manifest::load(&example("vector_add")).unwrap();
    let (reps, long_grid, long_repeat, yields) = if full {
        (200, [4096, 64, 1], 10, 40)
    } else {
        (3, [64, 4, 1], 2, 2)
    };

    // 1. A small job, warm, through the runner in this process vs raw wgpu, measured
    // alternately so that drift on a shared machine hits both alike.
    let baseline = Baseline::new(&small).unwrap();
    baseline.run();
    let expected = baseline.read(small.outputs[0]);
    let mut gpu = Gpu::open(None, Caps::default()).unwrap();
    let control = Control::default();
    control.set_budget(Budget::Idle);
    let (mut raw_times, mut runner_times) = (Vec::new(), Vec::new());
    for _ in 0..reps + 5 {
        let started = Instant::now();
        baseline.upload(&small);
        baseline.run();
        std::hint::black_box(baseline.read(small.outputs[0]));
        raw_times.push(started.elapsed());

        let started = Instant::now();
        let mut resident = gpu.load(&small, None).unwrap();
        assert_eq!(
            gpu.run(&mut resident, &control, &mut |_| {}).unwrap(),
            RunEnd::Finished
        );
        let out = gpu.read_back(&resident, &small.outputs).unwrap();
        runner_times.push(started.elapsed());
        assert!(
            out[0] == expected,
            "the runner's output differs from raw wgpu's"
        );
    }
    // The first runs compile and learn the kernel's speed: warm figures only.
    let raw = median_of(&mut raw_times[5..].to_vec());
    let runner = median_of(&mut runner_times[5..].to_vec());
    REPORT.line(
        "job_overhead_small",
        ms(runner),
        "ms",
        "raw_wgpu_same_kernel",
        ms(raw),
        "<= 1.2x",
    );

    // 2. The same job through the worker process (what lending uses).
    let mut config = RunnerConfig::new(worker_exe(), vec![]);
    config.backoff_base = Duration::ZERO;
    let mut supervisor = Supervisor::new(config);
    supervisor.exec_class().unwrap();
    let via_worker = median(reps, || {
        let outcome = supervisor
            .run(&admitted(small.clone()), None, Budget::Idle, &mut |_| {})
            .unwrap();
        assert!(matches!(outcome, Outcome::Done(_)));
    });
    REPORT.line(
        "job_worker_round_trip_small",
        ms(via_worker),
        "ms",
        "runner_in_process",
        ms(runner),
        "report",
    );

    // 3. A long job (the grid run `long_repeat` times, about a second on lavapipe):
    // sliced at the idle budget vs whole dispatches in one submission.
    let mut long = long_hash_job(long_grid);
    long.steps[0].repeat = long_repeat;
    let whole_baseline = Baseline::new(&long).unwrap();
    whole_baseline.run(); // warm
    let whole = median(3, || whole_baseline.run());
    let mut resident = gpu.load(&long, None).unwrap();
    gpu.run(&mut resident, &control, &mut |_| {}).unwrap(); // warm the pipeline and sizer
    // Only the run is timed, as for the baseline: loading (the upload) is the same
    // work either way.
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut resident = gpu.load(&long, None).unwrap();
        let started = Instant::now();
        gpu.run(&mut resident, &control, &mut |_| {}).unwrap();
        runs.push(started.elapsed());
    }
    runs.sort();
    let sliced = runs[1];
    REPORT.line(
        "slicing_overhead_long_job",
        ms(sliced),
        "ms",
        "whole_dispatches",
        ms(whole),
        "<= 1.05x",
    );

    // 4. Yield latency at the active budget: yield request -> slice in flight done and
    // the worker reporting the job yielded. Requests are sent while slices run (after
    // the first slice of each run), not while the job's buffers are being uploaded.
    let mut latencies = Vec::new();
    let requested: Arc<Mutex<Option<Instant>>> = Arc::default();
    let yielder = supervisor.yielder();
    let mut outcome = None;
    for i in 0..yields {
        let requested_by_trigger = requested.clone();
        let yielder = yielder.clone();
        let delay = Duration::from_millis(5 + (i * 7 % 30) as u64);
        let (slicing_tx, slicing_rx) = std::sync::mpsc::channel::<()>();
        let trigger = std::thread::spawn(move || {
            if slicing_rx.recv().is_err() {
                return;
            }
            std::thread::sleep(delay);
            *requested_by_trigger.lock().unwrap() = Some(Instant::now());
            yielder.request();
        });
        let mut on_slice = |_: &compute::gpu::SliceReport| {
            let _ = slicing_tx.send(());
        };
        let result = if outcome.is_none() {
            supervisor.run(&admitted(long.clone()), None, Budget::Active, &mut on_slice)
        } else {
            supervisor.resume(Budget::Active, &mut on_slice)
        }
        .unwrap();
        drop(slicing_tx);
        let returned = Instant::now();
        trigger.join().unwrap();
        match result {
            Outcome::Yielded(_) => {
                if let Some(at) = requested.lock().unwrap().take() {
                    latencies.push(returned.saturating_duration_since(at));
                }
                outcome = Some(());
            }
            Outcome::Done(_) => outcome = None, // finished before the yield: start again
        }
    }
    latencies.sort();
    if latencies.is_empty() {
        eprintln!("no yields measured: the long job finished too quickly");
        return;
    }
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    REPORT.line(
        "yield_latency_p50",
        ms(p(0.5)),
        "ms",
        "active_budget",
        10.0,
        "report",
    );
    REPORT.line(
        "yield_latency_p99",
        ms(p(0.99)),
        "ms",
        "active_budget",
        10.0,
        "<= 50 ms",
    );
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("job.json")
}

fn worker_exe() -> PathBuf {
    // Benches are built next to the package's binaries.
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("spare-gpu-worker{}", std::env::consts::EXE_SUFFIX))
}

fn long_hash_job(grid: [u32; 3]) -> Job {
    let mut job = manifest::load(&example("int_hash")).unwrap();
    job.steps[0].workgroups = grid;
    job.bindings[0].bytes = vec![0; grid.iter().product::<u32>() as usize * 64 * 4];
    job
}

fn median_of(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn median(reps: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..reps.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `job`, admitted under the default caps (the supervisor runs only admitted jobs).
fn admitted(job: compute::manifest::Job) -> compute::admission::AdmittedJob {
    compute::admission::AdmittedJob::admit(job, &compute::admission::Caps::default()).unwrap()
}
