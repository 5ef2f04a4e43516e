//! Test support for the node's tests and benchmarks: a GPU job long enough to watch,
//! and the real X server of `signals::testing`.

use compute::manifest::{Binding, BindingKind, BindingRef, Job, Step};
pub use signals::testing::Xvfb;

/// A job long enough to watch: 65,535 workgroups of 64, each invocation a few thousand
/// rounds (long by workgroup count: lavapipe stops loops past 65,535 iterations), run
/// `repeat` times.
pub fn long_job(repeat: u32) -> Job {
    let source = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x ^ (id.y * 7919u);
    for (var i = 0u; i < 2000u; i = i + 1u) {
        x = (x ^ (x >> 15u)) * 2246822519u + i;
    }
    out[(id.y * 64u + id.x) % 1024u] = x;
}
";
    let at = BindingRef {
        group: 0,
        binding: 0,
    };
    Job {
        source: source.to_owned(),
        steps: vec![Step {
            entry_point: "main".into(),
            workgroups: [1, 65_535, 1],
            repeat,
        }],
        bindings: vec![Binding {
            at,
            kind: BindingKind::StorageReadWrite,
            bytes: vec![0; 4096],
        }],
        outputs: vec![at],
    }
}
