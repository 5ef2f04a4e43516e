//! The GPU side: one wgpu device, jobs made resident on it, and sliced execution.
//!
//! This is what runs inside the worker process (`worker.rs`), which owns the device.
//! Shader modules are always created through `create_shader_module`, which keeps
//! wgpu's runtime bounds checks on; the trusted and unchecked paths are never used.
//! Compiled pipelines are kept per shader digest and entry point.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::admission::{self, Caps};
use crate::manifest::{BindingKind, BindingRef};
use crate::slicing::{self, Budget, Cursor, SliceSizer};
use cache::DiskCache;

mod cache;
mod load;
pub use load::LoadStage;

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
