//! Compiled pipelines kept on disk between workers (Vulkan's pipeline cache), with a
//! checksum so a damaged file only means compiling afresh.

use std::path::{Path, PathBuf};

use super::Gpu;

/// wgpu's pipeline cache and the file it is kept in between workers.
pub(super) struct DiskCache {
    pub(super) cache: wgpu::PipelineCache,
    file: PathBuf,
}

/// First bytes of a pipeline cache file; a BLAKE3 of the data follows, then the data.
const CACHE_MAGIC: &[u8; 16] = b"spare-pcache-v1\0";

impl Gpu {
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

    pub(super) fn save_pipeline_cache(&self) {
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
}

/// The data inside a pipeline cache file, if its checksum holds.
fn unwrap_cache_file(bytes: &[u8]) -> Option<Vec<u8>> {
    let rest = bytes.strip_prefix(CACHE_MAGIC.as_slice())?;
    let (sum, data) = rest.split_at_checked(32)?;
    (blake3::hash(data).as_bytes() == sum).then(|| data.to_vec())
}
