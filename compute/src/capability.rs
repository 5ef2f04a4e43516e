//! Capability benchmark: what a node advertises about each GPU adapter, measured with
//! built-in kernels: memory bandwidth (a copy) and FP32 throughput (chains of
//! multiply-adds).
//!
//! Each kernel is dispatched whole with plain wgpu after one warm-up; the best of a few
//! runs is reported, timed from submit to completion.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::gpu::{ExecClass, GpuError};

const COPY_KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    if i < arrayLength(&dst) {
        dst[i] = src[i];
    }
}
"#;

/// Multiply-adds per loop iteration per invocation (4 chains × 4).
const FMA_PER_ITERATION: u64 = 16;
/// Loop iterations per invocation (far below lavapipe's 65,535-iteration loop limit).
const FMA_ITERATIONS: u64 = 512;

const FMA_KERNEL: &str = r#"
@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    var a = f32(i) * 1e-7;
    var b = a + 0.5;
    var c = a + 0.25;
    var d = a + 0.125;
    for (var k = 0u; k < 512u; k = k + 1u) {
        a = fma(a, 0.9999, 0.0001); b = fma(b, 0.9999, 0.0001);
        c = fma(c, 0.9999, 0.0001); d = fma(d, 0.9999, 0.0001);
        a = fma(a, 0.9999, 0.0001); b = fma(b, 0.9999, 0.0001);
        c = fma(c, 0.9999, 0.0001); d = fma(d, 0.9999, 0.0001);
        a = fma(a, 0.9999, 0.0001); b = fma(b, 0.9999, 0.0001);
        c = fma(c, 0.9999, 0.0001); d = fma(d, 0.9999, 0.0001);
        a = fma(a, 0.9999, 0.0001); b = fma(b, 0.9999, 0.0001);
        c = fma(c, 0.9999, 0.0001); d = fma(d, 0.9999, 0.0001);
    }
    if i < arrayLength(&out) {
        out[i] = a + b + c + d;
    }
}
"#;

/// What one adapter can do.
#[derive(Clone, Debug, Serialize)]
pub struct Capability {
    /// Which adapter.
    pub class: ExecClass,
    /// Copy bandwidth, bytes read plus bytes written per second, in GB/s.
    pub bandwidth_gb_s: f64,
    /// FP32 multiply-add throughput (2 FLOPs each), in GFLOP/s.
    pub fp32_gflop_s: f64,
}

/// Problem sizes: `full` for `spare gpu bench`, small for smoke tests.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Bytes copied per dispatch (each way).
    pub copy_bytes: u64,
    /// Invocations of the FMA kernel per dispatch.
    pub fma_invocations: u64,
    /// Timed runs (after one warm-up); the best counts.
    pub runs: u32,
}

impl Sizes {
    /// What `spare gpu bench` uses: 64 MiB copied, 4M invocations × 8,192 FMAs.
    pub const FULL: Sizes = Sizes {
        copy_bytes: 64 << 20,
        fma_invocations: 4 << 20,
        runs: 5,
    };
    /// A quick check that the kernels run.
    pub const SMOKE: Sizes = Sizes {
        copy_bytes: 1 << 20,
        fma_invocations: 1 << 14,
        runs: 1,
    };
}

/// Measures adapter `index` (or the default one).
pub fn measure(index: Option<usize>, sizes: Sizes) -> Result<Capability, GpuError> {
    let (adapter, device, queue) = crate::gpu::open_device(index)?;
    let class = ExecClass::of(&adapter.get_info());

    let copy_vec4s = sizes.copy_bytes / 16;
    let src = storage(&device, sizes.copy_bytes);
    let dst = storage(&device, sizes.copy_bytes);
    let copy = kernel(&device, COPY_KERNEL, &[&src, &dst]);
    let copy_time = best(&device, &queue, &copy, copy_vec4s, sizes.runs);

    let out = storage(&device, sizes.fma_invocations * 4);
    let fma = kernel(&device, FMA_KERNEL, &[&out]);
    let fma_time = best(&device, &queue, &fma, sizes.fma_invocations, sizes.runs);

    let flops = sizes.fma_invocations * FMA_ITERATIONS * FMA_PER_ITERATION * 2;
    Ok(Capability {
        class,
        bandwidth_gb_s: (2 * sizes.copy_bytes) as f64 / copy_time.as_secs_f64() / 1e9,
        fp32_gflop_s: flops as f64 / fma_time.as_secs_f64() / 1e9,
    })
}

fn storage(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: size.max(16),
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    })
}

fn kernel(
    device: &wgpu::Device,
    source: &str,
    buffers: &[&wgpu::Buffer],
) -> (wgpu::ComputePipeline, wgpu::BindGroup) {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    (pipeline, group)
}

/// The best time of `runs` whole dispatches covering `items` invocations.
fn best(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    (pipeline, group): &(wgpu::ComputePipeline, wgpu::BindGroup),
    items: u64,
    runs: u32,
) -> Duration {
    let groups = items.div_ceil(256);
    let x = groups.min(32_768) as u32;
    let y = groups.div_ceil(u64::from(x)) as u32;
    let mut best = Duration::MAX;
    for run in 0..=runs {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        let started = Instant::now();
        queue.submit([encoder.finish()]);
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
        if run > 0 {
            best = best.min(started.elapsed());
        }
    }
    best.max(Duration::from_nanos(1))
}
