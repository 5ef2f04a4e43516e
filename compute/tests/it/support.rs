//! Examples, devices and helpers for the GPU tests.

use std::path::PathBuf;

use compute::admission::Caps;
use compute::gpu::Gpu;
use compute::manifest::{self, Job};

pub fn example(name: &str) -> Job {
    manifest::load(&example_dir(name).join("job.json")).unwrap()
}

pub fn example_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Opens the GPU, loudly: on the project's machines the tests must run on a device.
pub fn gpu() -> Gpu {
    match Gpu::open(None, Caps::default()) {
        Ok(gpu) => gpu,
        Err(e) => panic!(
            "no GPU device for the GPU tests ({e}). Install Mesa's software Vulkan \
             (installers/dev-setup.sh does: mesa-vulkan-drivers) or run on a machine with a GPU."
        ),
    }
}

pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

use std::time::Duration;

use compute::slicing::Budget;
use compute::supervisor::{Outcome, RunnerConfig, Supervisor};

pub fn runner_config() -> RunnerConfig {
    let mut config = RunnerConfig::new(env!("CARGO_BIN_EXE_spare-gpu-worker").into(), vec![]);
    config.backoff_base = Duration::ZERO;
    config
}

pub fn supervisor() -> Supervisor {
    Supervisor::new(runner_config())
}

/// Runs a job to the end through a worker process; returns its outputs' bytes.
pub fn run_to_end(sup: &mut Supervisor, job: &Job) -> compute::supervisor::JobResult {
    match sup
        .run(&admitted(job.clone()), None, Budget::Active, &mut |_| {})
        .unwrap()
    {
        Outcome::Done(result) => *result,
        other => panic!("expected the job to finish, got {other:?}"),
    }
}

/// The integer mix of the int_hash example, on the CPU.
pub fn int_hash(i: u32) -> u32 {
    let mix = |x: u32| {
        let mut h = x;
        h ^= h >> 16;
        h = h.wrapping_mul(0x7feb352d);
        h ^= h >> 15;
        h = h.wrapping_mul(0x846ca68b);
        h ^= h >> 16;
        h
    };
    let mut h = i;
    for round in 0..16 {
        h = mix(h.wrapping_add(round));
    }
    h
}

/// The int_hash example over a bigger grid: long enough to slice many times.
pub fn long_hash_job(grid: [u32; 3]) -> Job {
    let mut job = example("int_hash");
    job.steps[0].workgroups = grid;
    let n = grid.iter().product::<u32>() as usize * 64;
    job.bindings[0].bytes = vec![0; n * 4];
    job
}

/// `job`, admitted under the default caps (the supervisor runs only admitted jobs).
pub fn admitted(job: compute::manifest::Job) -> compute::admission::AdmittedJob {
    compute::admission::AdmittedJob::admit(job, &compute::admission::Caps::default()).unwrap()
}
