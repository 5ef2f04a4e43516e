//! Spare's own known-good job: the judge of whether a failure is the machine's.
//!
//! When workers keep dying under jobs from several requesters, or when lending that
//! stopped itself is tried again, the supervisor runs this job. It is small, always
//! terminates, and its answer is computed here on the CPU, so a worker that dies on it,
//! hangs on it or returns anything else tells that the GPU (its driver, its memory)
//! is at fault, not the requesters.

use crate::admission::{AdmittedJob, Caps};
use crate::manifest::{self, Job};

/// Invocations: 16 workgroups of 256.
const INVOCATIONS: u32 = 16 * 256;

const SOURCE: &str = r#"
@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var h = id.x * 2654435761u;
    for (var i = 0u; i < 64u; i = i + 1u) {
        h = (h ^ (h >> 15u)) * 0x2c1b3c6du + i;
    }
    out[id.x] = h;
}
"#;

/// The job, admitted. (It always is; an error would be a bug in this file, said as such.)
pub fn job() -> Result<AdmittedJob, String> {
    let manifest = serde_json::json!({
        "source": SOURCE,
        "entry_point": "main",
        "workgroups": [INVOCATIONS / 256, 1, 1],
        "bindings": [{"binding": 0, "kind": "storage_read_write", "zero": INVOCATIONS * 4}],
        "outputs": [0],
    });
    let job: Job = manifest::parse(
        &manifest.to_string(),
        std::path::Path::new("."),
        "self-test",
    )
    .map_err(|e| format!("Spare's self-test job is malformed (a bug): {e}"))?;
    AdmittedJob::admit(job, &Caps::default())
        .map_err(|e| format!("Spare's self-test job is refused (a bug): {e}"))
}

/// The bytes the job must produce.
pub fn expected_output() -> Vec<u8> {
    (0..INVOCATIONS)
        .flat_map(|x| {
            let mut h = x.wrapping_mul(2_654_435_761);
            for i in 0..64u32 {
                h = (h ^ (h >> 15)).wrapping_mul(0x2c1b_3c6d).wrapping_add(i);
            }
            h.to_le_bytes()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_self_test_job_is_admitted_and_its_answer_has_one_word_per_invocation() {
        let job = super::job().unwrap();
        assert_eq!(job.steps.len(), 1);
        assert_eq!(super::expected_output().len(), 16 * 256 * 4);
    }
}
