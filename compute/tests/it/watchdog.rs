//! A slice that overruns its ceiling several times over gets its worker killed; the
//! next job runs fine in a fresh worker.

use std::time::Duration;

use compute::manifest;
use compute::slicing::Budget;
use compute::supervisor::{JobError, Supervisor};

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
fn a_job_that_kills_the_worker_twice_is_not_run_again_and_repeated_failures_stop_lending() {
    let mut config = runner_config();
    config.ceiling = Duration::from_millis(5);
    let mut sup = Supervisor::new(config);
    let slow = slow_job();
    for _ in 0..2 {
        let err = sup
            .run(&admitted(slow.clone()), None, Budget::Active, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, JobError::Watchdog { .. }), "{err}");
    }
    assert_eq!(
        sup.run(&admitted(slow.clone()), None, Budget::Active, &mut |_| {})
            .unwrap_err(),
        JobError::Blocked
    );
    // A third loss of a different job within the window stops GPU lending with a reason.
    let mut other = slow_job();
    other.bindings[0].bytes.push(0);
    other.bindings[0].bytes.extend([0, 0, 0]);
    let err = sup
        .run(&admitted(other.clone()), None, Budget::Active, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, JobError::Watchdog { .. }), "{err}");
    let reason = sup.stopped().unwrap().to_owned();
    assert!(reason.contains("GPU worker keeps failing"), "{reason}");
    let err = sup
        .run(
            &admitted(example("vector_add").clone()),
            None,
            Budget::Active,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, JobError::Stopped(_)), "{err}");
    sup.reset_failures();
    run_to_end(&mut sup, &example("vector_add"));
}

#[test]
fn respawning_backs_off_after_a_failure() {
    let mut config = runner_config();
    config.ceiling = Duration::from_millis(5);
    config.backoff_base = Duration::from_secs(30);
    let mut sup = Supervisor::new(config);
    let err = sup
        .run(
            &admitted(slow_job().clone()),
            None,
            Budget::Active,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, JobError::Watchdog { .. }), "{err}");
    // The next job waits for the backoff instead of respawning at once.
    let err = sup
        .run(
            &admitted(example("vector_add").clone()),
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
