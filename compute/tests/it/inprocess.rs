//! The device side driven directly: slicing gives exactly the unsliced bytes, and
//! out-of-bounds accesses stay inside the job's buffers.

use compute::baseline::Baseline;
use compute::gpu::{Control, RunEnd};
use compute::manifest;
use compute::slicing::Budget;

use crate::support::*;

#[test]
fn sliced_run_gives_exactly_the_bytes_of_one_dispatch() {
    for job in [
        long_hash_job([96, 5, 3]),
        example("matmul"),
        example("prefix_sum"),
    ] {
        let baseline = Baseline::new(&job).unwrap();
        baseline.run();
        let whole = baseline.read(job.outputs[0]);

        let mut gpu = gpu();
        let mut resident = gpu.load(&job, None).unwrap();
        let control = Control::default();
        control.set_budget(Budget::Active);
        let mut slices = 0;
        let end = gpu
            .run(&mut resident, &control, &mut |_| slices += 1)
            .unwrap();
        assert_eq!(end, RunEnd::Finished);
        let sliced = gpu.read_back(&resident, &job.outputs).unwrap().remove(0);
        assert!(
            slices > job.steps.len(),
            "the job was not sliced ({slices} slices)"
        );
        assert!(sliced == whole, "slicing changed the result");
    }
}

#[test]
fn out_of_bounds_reads_are_zero_and_writes_are_dropped() {
    let src = r#"
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read_write> neighbour: array<u32>;

@compute @workgroup_size(16)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    out[i] = input[i + 1000000u] + 1u;
    out[i + 16u] = 99u;
    out[i + 123456u] = 99u;
}
"#;
    let manifest = format!(
        r#"{{"source": {src:?}, "entry_point": "main", "workgroups": [1, 1, 1],
        "bindings": [
          {{"binding": 0, "kind": "storage_read", "fill": {{"type": "u32", "value": 7, "count": 16}}}},
          {{"binding": 1, "kind": "storage_read_write", "zero": 64}},
          {{"binding": 2, "kind": "storage_read_write", "fill": {{"type": "u32", "value": 5, "count": 16}}}}
        ],
        "outputs": [1, 2]}}"#
    );
    let job = manifest::parse(&manifest, std::path::Path::new("."), "oob.json").unwrap();
    let mut sup = supervisor();
    let result = run_to_end(&mut sup, &job);
    assert_eq!(u32s(&result.outputs[0].data), vec![1; 16]);
    assert_eq!(
        u32s(&result.outputs[1].data),
        vec![5; 16],
        "a write escaped into another buffer"
    );
}
