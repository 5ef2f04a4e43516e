//! The GPU side: one wgpu device, jobs made resident on it, and sliced execution.
//!
//! This is what runs inside the worker process (`worker.rs`), which owns the device.
//! Shader modules are always created through `create_shader_module`, which keeps
//! wgpu's runtime bounds checks on; the trusted and unchecked paths are never used.
//! Compiled pipelines are kept per shader digest and entry point.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::admission::{self, Caps, RUNNER_GROUP};
use crate::manifest::{BindingKind, BindingRef, Job};
use crate::slicing::{self, Budget, Cursor, SLICE_BINDING, SLICE_UNIFORM_BYTES, SliceSizer};

/// Why the GPU could not run a job.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter could be found.
    #[error("no GPU adapter found (looked for Vulkan, Metal and DX12): {0}")]
    NoAdapter(String),
    /// The adapter refused to give a device.
    #[error("the GPU adapter {adapter} refused a device: {reason}")]
    NoDevice {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// The job was refused by admission (the worker checks again).
    #[error(transparent)]
    Refused(#[from] admission::Refused),
    /// The kernel could not be prepared for slicing.
    #[error(transparent)]
    Rewrite(#[from] slicing::RewriteError),
    /// wgpu reported a validation or out-of-memory error.
    #[error("the GPU refused the job while {doing}: {message}")]
    Wgpu {
        /// What was being done.
        doing: &'static str,
        /// What wgpu said.
        message: String,
    },
    /// A checkpoint does not belong to this job.
    #[error("the checkpoint does not match the job: {0}")]
    BadCheckpoint(String),
    /// The device was lost or a wait failed.
    #[error("the GPU device failed: {0}")]
    DeviceLost(String),
}

/// What a result was computed on, so requesters can compare like with like.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecClass {
    /// Adapter name, e.g. "NVIDIA GeForce RTX 4070" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub adapter: String,
    /// PCI vendor id, hex.
    pub vendor: String,
    /// PCI device id, hex.
    pub device: String,
    /// Kind of device: discrete, integrated, cpu, virtual.
    pub device_type: String,
    /// Backend: vulkan, metal, dx12.
    pub backend: String,
    /// Driver name.
    pub driver: String,
    /// Driver version and details.
    pub driver_info: String,
    /// The wgpu version the runner was built with.
    pub wgpu_version: String,
}

/// The wgpu version the runner is built with (kept equal to the workspace pin).
pub const WGPU_VERSION: &str = "30.0.2";

impl ExecClass {
    pub(crate) fn of(info: &wgpu::AdapterInfo) -> Self {
        Self {
            adapter: info.name.clone(),
            vendor: format!("{:#06x}", info.vendor),
            device: format!("{:#06x}", info.device),
            device_type: format!("{:?}", info.device_type).to_lowercase(),
            backend: info.backend.to_str().to_owned(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            wgpu_version: WGPU_VERSION.to_owned(),
        }
    }
}

/// An adapter as listed by `spare gpu info`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdapterSummary {
    /// Index to pass as `--adapter`.
    pub index: usize,
    /// What it is.
    pub class: ExecClass,
    /// Its compute limits that matter to jobs.
    pub max_storage_buffer_binding_size: u64,
    /// Workgroups per dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroup memory.
    pub max_compute_workgroup_storage_size: u32,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

/// Every compute-capable adapter, in a stable order.
pub fn adapters() -> Vec<AdapterSummary> {
    let instance = instance();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let limits = a.limits();
            AdapterSummary {
                index,
                class: ExecClass::of(&a.get_info()),
                max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
                max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
                max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
                max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            }
        })
        .collect()
}

/// Opens a device on adapter `index` (see [`adapters`]), or on the best adapter, with
/// the WebGPU default limits and no optional features.
pub fn open_device(
    index: Option<usize>,
) -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue), GpuError> {
    let instance = instance();
    let adapter = match index {
        Some(i) => pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .nth(i)
            .ok_or_else(|| GpuError::NoAdapter(format!("there is no adapter {i}")))?,
        None => pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?,
    };
    let info = adapter.get_info();
    // The only optional feature: an on-disk pipeline cache, where the backend has one.
    let features = adapter.features() & wgpu::Features::PIPELINE_CACHE;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("spare"),
        required_features: features,
        required_limits: wgpu::Limits::defaults(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| GpuError::NoDevice {
        adapter: info.name.clone(),
        reason: e.to_string(),
    })?;
    Ok((adapter, device, queue))
}

/// Yield and budget requests, shared between the thread that receives them and the
/// thread running slices.
#[derive(Debug, Default)]
pub struct Control {
    yield_requested: AtomicBool,
    idle: AtomicU8,
}

impl Control {
    /// Asks the run to stop after the slice in flight.
    pub fn request_yield(&self) {
        self.yield_requested.store(true, Ordering::SeqCst);
    }

    /// Clears a yield request (before resuming).
    pub fn clear_yield(&self) {
        self.yield_requested.store(false, Ordering::SeqCst);
    }

    fn yield_requested(&self) -> bool {
        self.yield_requested.load(Ordering::SeqCst)
    }

    /// Sets the slice budget.
    pub fn set_budget(&self, budget: Budget) {
        self.idle
            .store(u8::from(budget == Budget::Idle), Ordering::SeqCst);
    }

    fn budget(&self) -> Budget {
        if self.idle.load(Ordering::SeqCst) == 1 {
            Budget::Idle
        } else {
            Budget::Active
        }
    }
}

/// How far a job has run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The step being run.
    pub step: usize,
    /// Repeats of that step already done.
    pub repeat: u32,
    /// Position inside the current repeat's grid.
    pub cursor: Cursor,
    /// Workgroups run so far over the whole job.
    pub workgroups_done: u64,
}

/// A job's state, read back so it can resume on another device or in a fresh worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The job it belongs to.
    pub job_digest: [u8; 32],
    /// Where to continue.
    pub progress: Progress,
    /// Contents of every read-write buffer, by binding.
    pub buffers: Vec<(BindingRef, Vec<u8>)>,
}

/// One slice that finished.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct SliceReport {
    /// Workgroups in it.
    pub workgroups: u64,
    /// Its time from submit to completion.
    pub elapsed: Duration,
    /// Where the job stands.
    pub progress: Progress,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Every step ran.
    Finished,
    /// Stopped after a yield request; resume with another `run`.
    Yielded,
}

struct ResidentBinding {
    at: BindingRef,
    kind: BindingKind,
    buffer: wgpu::Buffer,
    size: u64,
}

/// A job whose buffers and pipelines live on the device.
pub struct Resident {
    job_digest: [u8; 32],
    steps: Vec<(wgpu::ComputePipeline, [u32; 3], u32)>,
    /// Per step: the pipeline's key and what is known of its speed.
    sizers: Vec<(PipelineKey, SliceSizer)>,
    bindings: Vec<ResidentBinding>,
    bind_groups: Vec<(u32, wgpu::BindGroup)>,
    slice_buffer: wgpu::Buffer,
    progress: Progress,
    /// Time spent in slices, submit to completion.
    pub gpu_time: Duration,
}

impl Resident {
    /// Where the job stands.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// True once every step ran.
    pub fn finished(&self) -> bool {
        self.progress.step >= self.steps.len()
    }
}

/// A compiled pipeline: the shader's BLAKE3 and the entry point.
type PipelineKey = ([u8; 32], String);

/// Bind group layouts (groups 0 to 3) and the pipeline layout made of them.
type Layouts = (Vec<wgpu::BindGroupLayout>, wgpu::PipelineLayout);

/// A device with its queue and compiled pipelines.
pub struct Gpu {
    info: wgpu::AdapterInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    lost: Arc<AtomicBool>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
    /// Measured speed of each pipeline, carried from job to job so a kernel seen
    /// before starts with slices of the right size.
    speeds: HashMap<PipelineKey, SliceSizer>,
    layouts: HashMap<Vec<(BindingRef, BindingKind)>, Layouts>,
    caps: Caps,
    disk_cache: Option<DiskCache>,
    /// Shapes of jobs that passed admission in this worker.
    admitted: std::collections::HashSet<[u8; 32]>,
}

/// wgpu's pipeline cache and the file it is kept in between workers.
struct DiskCache {
    cache: wgpu::PipelineCache,
    file: PathBuf,
}

/// First bytes of a pipeline cache file; a BLAKE3 of the data follows, then the data.
const CACHE_MAGIC: &[u8; 16] = b"spare-pcache-v1\0";

impl Gpu {
    /// Opens adapter `index` (see [`adapters`]), or the best one when `None`.
    pub fn open(index: Option<usize>, caps: Caps) -> Result<Gpu, GpuError> {
        let (adapter, device, queue) = open_device(index)?;
        let info = adapter.get_info();
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |_, _| flag.store(true, Ordering::SeqCst));
        // Errors are caught with error scopes where they can happen; anything else is
        // reported, never a panic inside wgpu's callback.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("spare gpu worker: uncaptured wgpu error: {e}\n").as_bytes(),
            );
        }));
        Ok(Gpu {
            info,
            device,
            queue,
            lost,
            pipelines: HashMap::new(),
            speeds: HashMap::new(),
            layouts: HashMap::new(),
            caps,
            disk_cache: None,
            admitted: std::collections::HashSet::new(),
        })
    }

    /// Keeps compiled pipelines in `dir` between workers, where the backend supports
    /// it (Vulkan); elsewhere does nothing. A missing, damaged or outdated file only
    /// means compiling afresh.
    pub fn use_pipeline_cache(&mut self, dir: &Path) {
        if !self
            .device
            .features()
            .contains(wgpu::Features::PIPELINE_CACHE)
        {
            return;
        }
        let Some(key) = wgpu::util::pipeline_cache_key(&self.info) else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let file = dir.join(key);
        let data = std::fs::read(&file)
            .ok()
            .and_then(|bytes| unwrap_cache_file(&bytes));
        #[allow(unsafe_code)]
        // SAFETY: wgpu requires `data` to come from `PipelineCache::get_data`. The file
        // is written only by `save_pipeline_cache` below, which wraps get_data's bytes
        // with a BLAKE3 checksum; `unwrap_cache_file` returns the data only when the
        // checksum matches, so a truncated or damaged file is never passed on. wgpu
        // and the driver also check that the data is for this adapter and driver, and
        // `fallback: true` makes a rejected cache start empty instead of failing.
        let cache = unsafe {
            self.device
                .create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                    label: Some("spare-pipelines"),
                    data: data.as_deref(),
                    fallback: true,
                })
        };
        self.disk_cache = Some(DiskCache { cache, file });
    }

    fn save_pipeline_cache(&self) {
        let Some(disk) = &self.disk_cache else {
            return;
        };
        let Some(data) = disk.cache.get_data() else {
            return;
        };
        let mut bytes = Vec::with_capacity(CACHE_MAGIC.len() + 32 + data.len());
        bytes.extend_from_slice(CACHE_MAGIC);
        bytes.extend_from_slice(blake3::hash(&data).as_bytes());
        bytes.extend_from_slice(&data);
        // Written beside and renamed over, so a crash never leaves half a file.
        let partial = disk.file.with_extension("partial");
        if std::fs::write(&partial, &bytes).is_ok() {
            let _ = std::fs::rename(&partial, &disk.file);
        }
    }

    /// What results from this device are computed on.
    pub fn exec_class(&self) -> ExecClass {
        ExecClass::of(&self.info)
    }

    fn scoped<T>(&self, doing: &'static str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let value = f();
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(scope.pop());
        match oom.or(validation) {
            Some(e) => Err(GpuError::Wgpu {
                doing,
                message: e.to_string(),
            }),
            None => Ok(value),
        }
    }

    /// Admits the job, compiles what is not compiled yet, uploads its buffers (or the
    /// checkpoint's), and returns it resident and ready to run.
    pub fn load(
        &mut self,
        job: &Job,
        checkpoint: Option<&Checkpoint>,
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
        let needs_compile = job.steps.iter().any(|s| {
            !self
                .pipelines
                .contains_key(&(shader_digest, s.entry_point.clone()))
        });
        if needs_compile {
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
            let Some((_, pipeline_layout)) = self.layouts.get(&layout_key) else {
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
        }

        if let Some(cp) = checkpoint {
            check_checkpoint(job, cp)?;
        }
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
        let slice_buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("spare-slice"),
            size: SLICE_UNIFORM_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let Some((group_layouts, _)) = self.layouts.get(&layout_key) else {
            return Err(GpuError::DeviceLost("bind group layouts vanished".into()));
        };
        let bind_groups = self.scoped("binding the buffers", || {
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
        })?;
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

    /// Runs slices until the job finishes or a yield is requested; a yield returns
    /// once the slice in flight has finished. `on_slice` hears of every slice.
    pub fn run(
        &mut self,
        job: &mut Resident,
        control: &Control,
        on_slice: &mut dyn FnMut(&SliceReport),
    ) -> Result<RunEnd, GpuError> {
        let end = self.run_slices(job, control, on_slice);
        for (key, sizer) in &job.sizers {
            self.speeds.insert(key.clone(), sizer.clone());
        }
        end
    }

    fn run_slices(
        &mut self,
        job: &mut Resident,
        control: &Control,
        on_slice: &mut dyn FnMut(&SliceReport),
    ) -> Result<RunEnd, GpuError> {
        loop {
            if job.finished() {
                return Ok(RunEnd::Finished);
            }
            if control.yield_requested() {
                return Ok(RunEnd::Yielded);
            }
            let (pipeline, grid, repeat) = &job.steps[job.progress.step];
            let (grid, repeat) = (*grid, *repeat);
            let budget = control.budget();
            let step = job.progress.step;
            let Some(slice) = job.progress.cursor.take(job.sizers[step].1.next(budget)) else {
                // This repeat is done: next repeat or next step.
                job.progress.repeat += 1;
                if job.progress.repeat >= repeat {
                    job.progress.step += 1;
                    job.progress.repeat = 0;
                    if let Some((_, next_grid, _)) = job.steps.get(job.progress.step) {
                        job.progress.cursor = Cursor::new(*next_grid);
                    }
                } else {
                    job.progress.cursor = Cursor::new(grid);
                }
                continue;
            };
            self.queue.write_buffer(
                &job.slice_buffer,
                0,
                &slicing::slice_uniform(slice.offset, grid),
            );
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                });
                pass.set_pipeline(pipeline);
                for (g, group) in &job.bind_groups {
                    pass.set_bind_group(*g, group, &[]);
                }
                pass.dispatch_workgroups(slice.size[0], slice.size[1], slice.size[2]);
            }
            let started = Instant::now();
            let index = self.queue.submit([encoder.finish()]);
            self.wait(Some(index))?;
            let elapsed = started.elapsed();
            job.gpu_time += elapsed;
            job.sizers[step].1.record(slice.workgroups(), elapsed);
            job.progress.workgroups_done += slice.workgroups();
            on_slice(&SliceReport {
                workgroups: slice.workgroups(),
                elapsed,
                progress: job.progress,
            });
        }
    }

    fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<(), GpuError> {
        // The supervisor's watchdog, not this wait, decides when a slice is hung: it
        // kills the whole process, which is the only reliable way to stop GPU work.
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
            .map_err(|e| GpuError::DeviceLost(e.to_string()))?;
        if self.lost.load(Ordering::SeqCst) {
            return Err(GpuError::DeviceLost("the device was lost".into()));
        }
        Ok(())
    }

    /// Reads buffers back, in the order asked.
    pub fn read_back(
        &self,
        job: &Resident,
        which: &[BindingRef],
    ) -> Result<Vec<Vec<u8>>, GpuError> {
        let mut staging = Vec::with_capacity(which.len());
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for r in which {
            let Some(b) = job.bindings.iter().find(|b| b.at == *r) else {
                return Err(GpuError::BadCheckpoint(format!(
                    "{r} is not a binding of the job"
                )));
            };
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: b.size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            encoder.copy_buffer_to_buffer(&b.buffer, 0, &buffer, 0, b.size);
            staging.push(buffer);
        }
        self.queue.submit([encoder.finish()]);
        for buffer in &staging {
            buffer.map_async(wgpu::MapMode::Read, .., |_| {});
        }
        self.wait(None)?;
        staging
            .iter()
            .map(|buffer| {
                let view = buffer.get_mapped_range(..).map_err(|e| GpuError::Wgpu {
                    doing: "reading results back",
                    message: e.to_string(),
                })?;
                Ok(view.to_vec())
            })
            .collect()
    }

    /// Reads back every read-write buffer with the job's position.
    pub fn checkpoint(&self, job: &Resident) -> Result<Checkpoint, GpuError> {
        let which: Vec<BindingRef> = job
            .bindings
            .iter()
            .filter(|b| b.kind == BindingKind::StorageReadWrite)
            .map(|b| b.at)
            .collect();
        let buffers = self.read_back(job, &which)?;
        Ok(Checkpoint {
            job_digest: job.job_digest,
            progress: job.progress,
            buffers: which.into_iter().zip(buffers).collect(),
        })
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

/// The data inside a pipeline cache file, if its checksum holds.
fn unwrap_cache_file(bytes: &[u8]) -> Option<Vec<u8>> {
    let rest = bytes.strip_prefix(CACHE_MAGIC.as_slice())?;
    let (sum, data) = rest.split_at_checked(32)?;
    (blake3::hash(data).as_bytes() == sum).then(|| data.to_vec())
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
