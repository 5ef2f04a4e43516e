//! Making a job resident: admission (once per job shape), compiling what is not
//! compiled yet, uploading the buffers (or a checkpoint's), and binding them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Checkpoint, Gpu, GpuError, Progress, Resident, ResidentBinding};

/// Where loading a job has got to (see [`Gpu::load_observed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadStage {
    /// The shader is being compiled and its pipelines created.
    Compiling,
    /// They are; the buffers are uploaded next.
    Compiled,
}

/// The bindings a layout is made for.
type LayoutKey = Vec<(BindingRef, BindingKind)>;
use crate::admission::{self, RUNNER_GROUP};
use crate::manifest::{BindingKind, BindingRef, Job};
use crate::slicing::{self, Cursor, SLICE_BINDING, SLICE_UNIFORM_BYTES};

impl Gpu {
    /// Admits the job, compiles what is not compiled yet, uploads its buffers (or the
    /// checkpoint's), and returns it resident and ready to run.
    pub fn load(
        &mut self,
        job: &Job,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<Resident, GpuError> {
        self.load_observed(job, checkpoint, &mut |_| {})
    }

    /// [`load`](Self::load), telling `on_stage` when compiling starts and ends (the
    /// supervisor gives compiling a deadline of its own).
    pub fn load_observed(
        &mut self,
        job: &Job,
        checkpoint: Option<&Checkpoint>,
        on_stage: &mut dyn FnMut(LoadStage),
    ) -> Result<Resident, GpuError> {
        let digest = job.digest();
        if let Some(cp) = checkpoint
            && cp.job_digest != digest
        {
            return Err(GpuError::BadCheckpoint(
                "it was taken from another job".into(),
            ));
        }
        let layout_key: Vec<(BindingRef, BindingKind)> =
            job.bindings.iter().map(|b| (b.at, b.kind)).collect();
        // A compiled pipeline belongs to a shader *and* the layout it was made with.
        let shader_digest = {
            let mut h = blake3::Hasher::new();
            h.update(job.source.as_bytes());
            h.update(&serde_json::to_vec(&layout_key).unwrap_or_default());
            *h.finalize().as_bytes()
        };
        // Admission is skipped only for a job of exactly the same shape (source, steps,
        // bindings and their sizes) as one admitted before: the contents do not matter
        // to it, and the check costs more than a small job's dispatch.
        let shape = {
            let mut h = blake3::Hasher::new();
            h.update(&shader_digest);
            h.update(&serde_json::to_vec(&job.steps).unwrap_or_default());
            for b in &job.bindings {
                h.update(&(b.bytes.len() as u64).to_le_bytes());
            }
            *h.finalize().as_bytes()
        };
        let mut admitted = None;
        if !self.admitted.contains(&shape) {
            admitted = Some(admission::admit(job, &self.caps)?);
            self.admitted.insert(shape);
        }

        if !self.layouts.contains_key(&layout_key) {
            let made = self.scoped("creating the bind group layouts", || {
                self.make_layouts(&layout_key)
            })?;
            self.layouts.insert(layout_key.clone(), made);
        }
        self.compile(job, &layout_key, shader_digest, admitted, on_stage)?;

        if let Some(cp) = checkpoint {
            check_checkpoint(job, cp)?;
        }
        let bindings = self.upload(job, checkpoint)?;
        let slice_buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("spare-slice"),
            size: SLICE_UNIFORM_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_groups = self.bind(&layout_key, &bindings, &slice_buffer)?;
        let mut steps = Vec::with_capacity(job.steps.len());
        let mut sizers = Vec::with_capacity(job.steps.len());
        for step in &job.steps {
            let key = (shader_digest, step.entry_point.clone());
            let Some(pipeline) = self.pipelines.get(&key) else {
                return Err(GpuError::DeviceLost("a compiled pipeline vanished".into()));
            };
            steps.push((pipeline.clone(), step.workgroups, step.repeat));
            let sizer = self.speeds.get(&key).cloned().unwrap_or_default();
            sizers.push((key, sizer));
        }
        let progress = match checkpoint {
            Some(cp) => cp.progress,
            None => Progress {
                step: 0,
                repeat: 0,
                cursor: Cursor::new(job.steps.first().map_or([0; 3], |s| s.workgroups)),
                workgroups_done: 0,
            },
        };
        Ok(Resident {
            job_digest: digest,
            steps,
            bindings,
            bind_groups,
            slice_buffer,
            progress,
            sizers,
            gpu_time: Duration::ZERO,
        })
    }

    /// Compiles the job's entry points that are not compiled yet for this layout.
    fn compile(
        &mut self,
        job: &Job,
        layout_key: &LayoutKey,
        shader_digest: [u8; 32],
        admitted: Option<admission::Admitted>,
        on_stage: &mut dyn FnMut(LoadStage),
    ) -> Result<(), GpuError> {
        let needs_compile = job.steps.iter().any(|s| {
            !self
                .pipelines
                .contains_key(&(shader_digest, s.entry_point.clone()))
        });
        if needs_compile {
            on_stage(LoadStage::Compiling);
            let admitted = match admitted {
                Some(admitted) => admitted,
                None => admission::admit(job, &self.caps)?,
            };
            let mut module = admitted.module;
            slicing::rewrite(&mut module)?;
            let shader = self.scoped("compiling the shader", || {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some("job"),
                        source: wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(module)),
                    })
            })?;
            let Some((_, pipeline_layout)) = self.layouts.get(layout_key) else {
                return Err(GpuError::DeviceLost("pipeline layout vanished".into()));
            };
            let mut compiled = Vec::new();
            for step in &job.steps {
                let key = (shader_digest, step.entry_point.clone());
                if self.pipelines.contains_key(&key) || compiled.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                let pipeline = self.scoped("creating the compute pipeline", || {
                    self.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(&step.entry_point),
                            layout: Some(pipeline_layout),
                            module: &shader,
                            entry_point: Some(&step.entry_point),
                            compilation_options: wgpu::PipelineCompilationOptions::default(),
                            cache: self.disk_cache.as_ref().map(|d| &d.cache),
                        })
                })?;
                compiled.push((key, pipeline));
            }
            self.pipelines.extend(compiled);
            self.save_pipeline_cache();
            on_stage(LoadStage::Compiled);
        }
        Ok(())
    }

    /// The job's buffers on the device, with the checkpoint's contents where it has
    /// them.
    fn upload(
        &self,
        job: &Job,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<Vec<ResidentBinding>, GpuError> {
        let restored: BTreeMap<BindingRef, &Vec<u8>> = checkpoint
            .map(|cp| cp.buffers.iter().map(|(r, b)| (*r, b)).collect())
            .unwrap_or_default();
        let mut bindings = Vec::with_capacity(job.bindings.len());
        for b in &job.bindings {
            let bytes = restored.get(&b.at).map_or(&b.bytes, |v| *v);
            if bytes.len() != b.bytes.len() {
                return Err(GpuError::BadCheckpoint(format!("{} changed size", b.at)));
            }
            let usage = match b.kind {
                BindingKind::Uniform => wgpu::BufferUsages::UNIFORM,
                _ => wgpu::BufferUsages::STORAGE,
            } | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST;
            let buffer = self.scoped("creating a buffer", || {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: bytes.len() as u64,
                    usage,
                    mapped_at_creation: false,
                })
            })?;
            self.queue.write_buffer(&buffer, 0, bytes);
            bindings.push(ResidentBinding {
                at: b.at,
                kind: b.kind,
                buffer,
                size: bytes.len() as u64,
            });
        }
        Ok(bindings)
    }

    /// One bind group per group the layout has: the job's buffers, and the runner's
    /// slice uniform in its own group.
    fn bind(
        &self,
        layout_key: &LayoutKey,
        bindings: &[ResidentBinding],
        slice_buffer: &wgpu::Buffer,
    ) -> Result<Vec<(u32, wgpu::BindGroup)>, GpuError> {
        let Some((group_layouts, _)) = self.layouts.get(layout_key) else {
            return Err(GpuError::DeviceLost("bind group layouts vanished".into()));
        };
        self.scoped("binding the buffers", || {
            group_layouts
                .iter()
                .enumerate()
                .map(|(g, layout)| {
                    let g = g as u32;
                    let entries: Vec<wgpu::BindGroupEntry<'_>> = if g == RUNNER_GROUP {
                        vec![wgpu::BindGroupEntry {
                            binding: SLICE_BINDING,
                            resource: slice_buffer.as_entire_binding(),
                        }]
                    } else {
                        bindings
                            .iter()
                            .filter(|b| b.at.group == g)
                            .map(|b| wgpu::BindGroupEntry {
                                binding: b.at.binding,
                                resource: b.buffer.as_entire_binding(),
                            })
                            .collect()
                    };
                    (
                        g,
                        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: None,
                            layout,
                            entries: &entries,
                        }),
                    )
                })
                .collect::<Vec<_>>()
        })
    }

    fn make_layouts(
        &self,
        key: &[(BindingRef, BindingKind)],
    ) -> (Vec<wgpu::BindGroupLayout>, wgpu::PipelineLayout) {
        let mut layouts = Vec::new();
        for g in 0..=RUNNER_GROUP {
            let entries: Vec<wgpu::BindGroupLayoutEntry> = if g == RUNNER_GROUP {
                vec![buffer_entry(
                    SLICE_BINDING,
                    wgpu::BufferBindingType::Uniform,
                )]
            } else {
                key.iter()
                    .filter(|(r, _)| r.group == g)
                    .map(|(r, kind)| {
                        let ty = match kind {
                            BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                            BindingKind::StorageRead => {
                                wgpu::BufferBindingType::Storage { read_only: true }
                            }
                            BindingKind::StorageReadWrite => {
                                wgpu::BufferBindingType::Storage { read_only: false }
                            }
                        };
                        buffer_entry(r.binding, ty)
                    })
                    .collect()
            };
            layouts.push(
                self.device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: None,
                        entries: &entries,
                    }),
            );
        }
        let refs: Vec<Option<&wgpu::BindGroupLayout>> = layouts.iter().map(Some).collect();
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &refs,
                immediate_size: 0,
            });
        (layouts, pipeline_layout)
    }
}

/// A checkpoint must describe a position inside this job, and restore only buffers the
/// job writes: anything else could make the worker run outside the admitted grid or
/// replace the requester's inputs.
fn check_checkpoint(job: &Job, cp: &Checkpoint) -> Result<(), GpuError> {
    let bad = |why: String| Err(GpuError::BadCheckpoint(why));
    let p = cp.progress;
    let Some(step) = job.steps.get(p.step) else {
        return bad(format!(
            "its step {} is not one of the job's {}",
            p.step,
            job.steps.len()
        ));
    };
    if p.repeat >= step.repeat {
        return bad(format!(
            "repeat {} of a step run {} times",
            p.repeat, step.repeat
        ));
    }
    if p.cursor.grid != step.workgroups {
        return bad(format!(
            "grid {:?} is not the step's {:?}",
            p.cursor.grid, step.workgroups
        ));
    }
    if !p.cursor.done
        && p.cursor
            .next
            .iter()
            .zip(step.workgroups)
            .any(|(n, g)| *n >= g)
    {
        return bad(format!("position {:?} is outside the grid", p.cursor.next));
    }
    if p.workgroups_done > job.total_workgroups() {
        return bad("more workgroups done than the job has".into());
    }
    for (at, _) in &cp.buffers {
        let writable = job
            .bindings
            .iter()
            .any(|b| b.at == *at && b.kind == BindingKind::StorageReadWrite);
        if !writable {
            return bad(format!("{at} is not a read-write buffer of the job"));
        }
    }
    Ok(())
}

fn buffer_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}
