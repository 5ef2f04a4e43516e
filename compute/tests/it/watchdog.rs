//! A slice that overruns its ceiling several times over gets its worker killed; the
//! next job runs fine in a fresh worker.

use std::time::Duration;

use compute::manifest;
use compute::slicing::Budget;
use compute::supervisor::{Cause, JobError, Supervisor};

use crate::support::*;

/// One workgroup that keeps lavapipe busy for far longer than the test's ceiling
/// (each invocation stays under lavapipe's 65,535-iteration loop limit, so the work is
/// made long by what each iteration does). One workgroup takes about 80 ms here, four
/// times the 20 ms watchdog: an idle machine must not finish a slice in time.
fn slow_job() -> manifest::Job {
    let src = r#"
@group(0) @binding(0) var<storage, read_write> out: array<u32>;

fn mix(x: u32, i: u32) -> u32 {
    var h = (x ^ (x >> 13u)) * 0x5bd1e995u + i;
    h = (h ^ (h >> 11u)) * 0x27d4eb2du;
    return (h ^ (h >> 7u)) * 0x165667b1u;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    var h = li;
    for (var i = 0u; i < 60000u; i = i + 1u) {
        h = mix(mix(mix(mix(h, i), i), i), i);
    }
    out[li] = h;
}
"#;
    let manifest = format!(
        r#"{{"source": {src:?}, "entry_point": "main", "workgroups": [4, 1, 1],
        "bindings": [{{"binding": 0, "kind": "storage_read_write", "zero": 1024}}], "outputs": [0]}}"#
    );
    manifest::parse(&manifest, std::path::Path::new("."), "slow.json").unwrap()
}

#[test]
fn overrunning_slice_kills_the_worker_and_the_next_job_runs() {
    let mut config = runner_config();
    config.ceiling = Duration::from_millis(5);
    config.watchdog_factor = 4;
    let mut sup = Supervisor::new(config);
    let pid = {
        sup.exec_class().unwrap();
        sup.worker_pid().unwrap()
    };

    let err = sup
        .run(
            &admitted(slow_job().clone()),
            None,
            Budget::Active,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            JobError::Watchdog {
                limit_ms: 20,
                ceiling_ms: 5
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("killed"), "{err}");
    assert!(sup.worker_pid().is_none());
    // The killed worker is gone, not left running on the GPU.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains(") Z")
        }
    );

    let result = run_to_end(&mut sup, &example("vector_add"));
    assert_eq!(f32s(&result.outputs[0].data)[10], 5.25);
    assert!(sup.stopped().is_none());
}

#[test]
fn hanging_jobs_are_charged_to_the_job_and_never_stop_lending() {
    let mut config = runner_config();
    config.ceiling = Duration::from_millis(5);
    // Even with a long back-off configured, a job's fault restarts the worker at once.
    config.backoff_base = Duration::from_secs(30);
    let mut sup = Supervisor::new(config);
    for i in 0..4u8 {
        let mut slow = slow_job();
        slow.bindings[0].bytes[0] = i;
        let err = sup
            .run(&admitted(slow), None, Budget::Active, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, JobError::Watchdog { .. }), "{err}");
        assert_eq!(err.cause(), Some(Cause::Job));
    }
    assert!(sup.stopped().is_none(), "{:?}", sup.stopped());
    run_to_end(&mut sup, &example("vector_add"));
}

#[test]
fn compiling_past_its_deadline_kills_the_worker_and_blames_the_job() {
    let mut config = runner_config();
    config.compile_timeout = Duration::from_millis(1);
    let mut sup = Supervisor::new(config);
    // A long straight-line kernel: turning it into a pipeline takes far longer than a
    // millisecond (its WGSL was checked before compiling starts).
    let mut src = String::from(
        "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n\
         @compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
         var x = id.x;\n",
    );
    for i in 0..3000 {
        src.push_str(&format!("    x = (x ^ (x >> 7u)) * 1664525u + {i}u;\n"));
    }
    src.push_str("    out[id.x] = x;\n}\n");
    let manifest = format!(
        r#"{{"source": {src:?}, "entry_point": "main", "workgroups": [1, 1, 1],
        "bindings": [{{"binding": 0, "kind": "storage_read_write", "zero": 256}}], "outputs": [0]}}"#
    );
    let job = manifest::parse(&manifest, std::path::Path::new("."), "long.json").unwrap();
    let err = sup
        .run(&admitted(job), None, Budget::Active, &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(err, JobError::CompileTimeout { limit_ms: 1 }),
        "{err}"
    );
    assert_eq!(err.cause(), Some(Cause::Job));
    assert!(
        err.to_string().contains("compiling the kernel took over"),
        "{err}"
    );
    assert!(sup.worker_pid().is_none());
    assert!(sup.stopped().is_none());
}

#[test]
fn a_worker_killed_while_idle_is_noticed_at_once_and_replaced_before_the_next_job() {
    let mut sup = supervisor();
    let (tx, exited) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    sup.on_worker_exit(std::sync::Arc::new(move || {
        let _ = tx.lock().unwrap().send(());
    }));
    run_to_end(&mut sup, &example("vector_add"));
    let pid = sup.worker_pid().unwrap();
    kill(pid);
    exited
        .recv_timeout(Duration::from_secs(10))
        .expect("the exit hook fires when the idle worker dies");
    let what = sup.watch_idle().expect("the dead worker is noticed");
    assert!(what.contains("exited while idle"), "{what}");
    // Replaced (after the machine's back-off, zero here) before any job asks.
    assert!(sup.restart_lost().is_none());
    let replacement = sup.worker_pid().expect("a new worker runs");
    assert_ne!(replacement, pid);
    run_to_end(&mut sup, &example("vector_add"));
    assert_eq!(sup.worker_pid(), Some(replacement));
}

#[test]
fn the_self_test_passes_on_a_working_gpu() {
    let mut sup = supervisor();
    sup.self_test().unwrap();
    assert!(sup.stopped().is_none());
}

/// A worker the test can break and mend: a shell script (run by `sh`, so it is never
/// executed while written) that fails as a GPU without a driver does, then starts the
/// real worker.
struct Worker(tempfile::TempDir);

impl Worker {
    fn broken() -> Self {
        let worker = Worker(tempfile::tempdir().unwrap());
        std::fs::write(worker.script(), "echo 'no GPU driver' >&2\nexit 3\n").unwrap();
        worker
    }

    fn script(&self) -> std::path::PathBuf {
        self.0.path().join("worker.sh")
    }

    /// How the supervisor starts it.
    fn command(&self) -> (std::path::PathBuf, Vec<String>) {
        ("/bin/sh".into(), vec![self.script().display().to_string()])
    }

    fn mend(&self) {
        let real = env!("CARGO_BIN_EXE_spare-gpu-worker");
        std::fs::write(self.script(), format!("exec '{real}'\n")).unwrap();
    }
}

#[test]
fn a_machine_that_keeps_failing_stops_lending_until_a_retry_or_reset_passes_the_self_test() {
    let worker = Worker::broken();
    let mut config = runner_config();
    config.worker = worker.command();
    config.retry_after = Duration::from_millis(300);
    let mut sup = Supervisor::new(config);
    for _ in 0..3 {
        let err = sup
            .run(
                &admitted(example("vector_add")),
                None,
                Budget::Active,
                &mut |_| {},
            )
            .unwrap_err();
        assert!(matches!(err, JobError::StartFailed(_)), "{err}");
        assert_eq!(err.cause(), Some(Cause::Machine));
    }
    let stop = sup.stopped().unwrap().clone();
    assert!(
        stop.reason.contains("the GPU keeps failing (3 failures"),
        "{stop:?}"
    );
    let err = sup
        .run(
            &admitted(example("vector_add")),
            None,
            Budget::Active,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, JobError::Stopped(_)), "{err}");
    // The retry time comes while the machine is still broken: stopped again, for longer.
    while !sup.retry_due(std::time::Instant::now()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sup.self_test().is_err());
    let again = sup.stopped().unwrap().clone();
    assert!(again.reason.contains("self-test"), "{again:?}");
    assert!(again.retry_at > stop.retry_at);
    // The owner mends it and resumes: the self-test passes and jobs run again.
    worker.mend();
    sup.reset_failures();
    sup.self_test().unwrap();
    assert!(sup.stopped().is_none());
    run_to_end(&mut sup, &example("vector_add"));
}

#[test]
fn respawning_backs_off_after_a_machine_failure() {
    let worker = Worker::broken();
    let mut config = runner_config();
    config.worker = worker.command();
    config.backoff_base = Duration::from_secs(30);
    let mut sup = Supervisor::new(config);
    let err = sup
        .run(
            &admitted(example("vector_add")),
            None,
            Budget::Active,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, JobError::StartFailed(_)), "{err}");
    // The next job waits for the backoff instead of respawning at once.
    let err = sup
        .run(
            &admitted(example("vector_add")),
            None,
            Budget::Active,
            &mut |_| {},
        )
        .unwrap_err();
    let JobError::BackingOff(ms) = err else {
        panic!("expected a backoff, got {err}");
    };
    assert!(ms > 25_000 && ms <= 30_000, "{ms}");
    assert!(err.to_string().contains("restarting"), "{err}");
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
