//! Yield during a long job, then resume (in the same worker, or from a checkpoint in a
//! fresh one): the result is the same as an uninterrupted run.

use compute::slicing::Budget;
use compute::supervisor::Outcome;

use crate::support::*;

fn expected(job: &compute::manifest::Job) -> Vec<u32> {
    (0..(job.bindings[0].bytes.len() / 4) as u32)
        .map(int_hash)
        .collect()
}

#[test]
fn yield_then_resume_gives_the_same_result() {
    let job = long_hash_job([4096, 8, 1]);
    let mut sup = supervisor();
    let yielder = sup.yielder();
    let mut seen = 0;
    let outcome = sup
        .run(&admitted(job.clone()), None, Budget::Active, &mut |_| {
            seen += 1;
            if seen == 2 {
                yielder.request();
            }
        })
        .unwrap();
    let Outcome::Yielded(progress) = outcome else {
        panic!("expected a yield, got {outcome:?}");
    };
    // The worker runs ahead of the events the supervisor has read, so a few more slices
    // may finish before the request reaches it; the yield benchmark measures the delay.
    assert!(seen >= 2, "{seen} slices before yielding");
    assert!(progress.workgroups_done > 0 && progress.workgroups_done < 4096 * 8);

    let Outcome::Done(result) = sup.resume(Budget::Idle, &mut |_| {}).unwrap() else {
        panic!("expected the resumed job to finish");
    };
    assert_eq!(result.workgroups, 4096 * 8);
    assert!(
        u32s(&result.outputs[0].data) == expected(&job),
        "wrong result after resuming"
    );
}

#[test]
fn checkpoint_resumes_in_a_fresh_worker() {
    let job = long_hash_job([2048, 8, 2]);
    let mut sup = supervisor();
    let yielder = sup.yielder();
    let mut seen = 0;
    let outcome = sup
        .run(&admitted(job.clone()), None, Budget::Active, &mut |_| {
            seen += 1;
            if seen == 2 {
                yielder.request();
            }
        })
        .unwrap();
    assert!(matches!(outcome, Outcome::Yielded(_)), "{outcome:?}");
    let checkpoint = sup.checkpoint().unwrap();
    drop(sup); // kills the worker and everything on its device

    let mut fresh = supervisor();
    let Outcome::Done(result) = fresh
        .run(
            &admitted(job.clone()),
            Some(&checkpoint),
            Budget::Idle,
            &mut |_| {},
        )
        .unwrap()
    else {
        panic!("expected the job to finish from its checkpoint");
    };
    assert!(
        u32s(&result.outputs[0].data) == expected(&job),
        "wrong result after resuming"
    );
    assert!(result.workgroups == 2048 * 8 * 2);

    // A checkpoint from another job is refused.
    let other = long_hash_job([8, 1, 1]);
    let err = fresh
        .run(
            &admitted(other.clone()),
            Some(&checkpoint),
            Budget::Idle,
            &mut |_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");
}

#[test]
fn checkpoints_that_do_not_fit_the_job_are_refused() {
    let job = long_hash_job([2048, 8, 1]);
    let mut sup = supervisor();
    let yielder = sup.yielder();
    let outcome = sup
        .run(&admitted(job.clone()), None, Budget::Active, &mut |_| {
            yielder.request()
        })
        .unwrap();
    assert!(matches!(outcome, Outcome::Yielded(_)), "{outcome:?}");
    let good = sup.checkpoint().unwrap();

    let mut outside = good.clone();
    outside.progress.cursor.next = [4096, 0, 0];
    outside.progress.cursor.done = false;
    let mut other_grid = good.clone();
    other_grid.progress.cursor.grid = [65535, 65535, 1];
    let mut past_end = good.clone();
    past_end.progress.step = 1;
    for bad in [outside, other_grid, past_end] {
        let err = sup
            .run(
                &admitted(job.clone()),
                Some(&bad),
                Budget::Idle,
                &mut |_| {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("checkpoint"), "{err}");
    }
    // The worker is still healthy and the good checkpoint still finishes the job.
    let Outcome::Done(result) = sup
        .run(
            &admitted(job.clone()),
            Some(&good),
            Budget::Idle,
            &mut |_| {},
        )
        .unwrap()
    else {
        panic!("expected the job to finish");
    };
    assert!(
        u32s(&result.outputs[0].data) == expected(&job),
        "wrong result"
    );
}

#[test]
fn a_worker_that_died_while_idle_is_replaced() {
    let mut sup = supervisor();
    sup.exec_class().unwrap();
    let pid = sup.worker_pid().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    // The job never hears of it: the dead worker is found before the job is sent, and
    // the job runs in a fresh one.
    let job = example("vector_add");
    let result = run_to_end(&mut sup, &job);
    assert_ne!(sup.worker_pid(), Some(pid));
    assert_eq!(f32s(&result.outputs[0].data)[2], 1.25);
}
