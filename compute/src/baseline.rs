//! The baseline: a job run with plain wgpu in this process, one whole dispatch per
//! step and repeat, no slicing, no worker. Benchmarks compare the runner against it
//! and tests check that slicing gives exactly its bytes.

use crate::gpu::GpuError;
use crate::manifest::{BindingKind, Job};

/// A device and a job made resident on it, ready to dispatch whole.
pub struct Baseline {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipelines: Vec<(wgpu::ComputePipeline, [u32; 3], u32)>,
    bind_groups: Vec<(u32, wgpu::BindGroup)>,
    buffers: Vec<(crate::manifest::BindingRef, wgpu::Buffer, u64)>,
}

impl Baseline {
    /// Compiles the job as written (no rewrite) and uploads its buffers.
    pub fn new(job: &Job) -> Result<Baseline, GpuError> {
        let (_, device, queue) = crate::gpu::open_device(None)?;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(job.source.as_str().into()),
        });
        // The same explicit layout as the runner's (all of the job's bindings), so every
        // step can use the same bind groups.
        let max_group = job.bindings.iter().map(|b| b.at.group).max().unwrap_or(0);
        let layouts: Vec<wgpu::BindGroupLayout> = (0..=max_group)
            .map(|g| {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = job
                    .bindings
                    .iter()
                    .filter(|b| b.at.group == g)
                    .map(|b| wgpu::BindGroupLayoutEntry {
                        binding: b.at.binding,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match b.kind {
                                BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                                BindingKind::StorageRead => {
                                    wgpu::BufferBindingType::Storage { read_only: true }
                                }
                                BindingKind::StorageReadWrite => {
                                    wgpu::BufferBindingType::Storage { read_only: false }
                                }
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    })
                    .collect();
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: None,
                    entries: &entries,
                })
            })
            .collect();
        let refs: Vec<Option<&wgpu::BindGroupLayout>> = layouts.iter().map(Some).collect();
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &refs,
            immediate_size: 0,
        });
        let mut pipelines = Vec::new();
        for step in &job.steps {
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: Some(&layout),
                module: &module,
                entry_point: Some(&step.entry_point),
                compilation_options: Default::default(),
                cache: None,
            });
            pipelines.push((pipeline, step.workgroups, step.repeat));
        }
        let buffers: Vec<_> = job
            .bindings
            .iter()
            .map(|b| {
                let usage = match b.kind {
                    BindingKind::Uniform => wgpu::BufferUsages::UNIFORM,
                    _ => wgpu::BufferUsages::STORAGE,
                } | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST;
                let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: b.bytes.len() as u64,
                    usage,
                    mapped_at_creation: false,
                });
                queue.write_buffer(&buffer, 0, &b.bytes);
                (b.at, buffer, b.bytes.len() as u64)
            })
            .collect();
        let bind_groups = layouts
            .iter()
            .enumerate()
            .map(|(g, layout)| {
                let entries: Vec<_> = buffers
                    .iter()
                    .filter(|(r, _, _)| r.group == g as u32)
                    .map(|(r, buffer, _)| wgpu::BindGroupEntry {
                        binding: r.binding,
                        resource: buffer.as_entire_binding(),
                    })
                    .collect();
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout,
                    entries: &entries,
                });
                (g as u32, group)
            })
            .collect();
        Ok(Baseline {
            device,
            queue,
            pipelines,
            bind_groups,
            buffers,
        })
    }

    /// Writes the job's initial buffer contents again (as a fresh job would need).
    pub fn upload(&self, job: &Job) {
        for b in &job.bindings {
            if let Some((_, buffer, _)) = self.buffers.iter().find(|(r, _, _)| *r == b.at) {
                self.queue.write_buffer(buffer, 0, &b.bytes);
            }
        }
    }

    /// Runs every step whole, in one submission, and waits for it.
    pub fn run(&self) {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for (pipeline, grid, repeat) in &self.pipelines {
                pass.set_pipeline(pipeline);
                for (g, group) in &self.bind_groups {
                    pass.set_bind_group(*g, group, &[]);
                }
                for _ in 0..*repeat {
                    pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                }
            }
        }
        self.queue.submit([encoder.finish()]);
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }

    /// Reads one binding back.
    pub fn read(&self, at: crate::manifest::BindingRef) -> Vec<u8> {
        let Some((_, buffer, size)) = self.buffers.iter().find(|(r, _, _)| *r == at) else {
            return Vec::new();
        };
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: *size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, *size);
        self.queue.submit([encoder.finish()]);
        staging.map_async(wgpu::MapMode::Read, .., |_| {});
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        staging
            .get_mapped_range(..)
            .map(|v| v.to_vec())
            .unwrap_or_default()
    }
}
