//! The job format: a JSON manifest naming a WGSL kernel, its grid and its buffers.
//!
//! Parsing resolves everything the manifest points at (files relative to the manifest,
//! base64, zero and fill contents) into a self-contained [`Job`] that can be sent to a
//! worker. Nothing here touches a GPU; admission checks live in `admission.rs`, which
//! reads the manifest, never the other way round. The format is documented in `compute/JOBS.md`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The largest WGSL source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// The most bindings a manifest may list (more than a shader can use).
pub const MAX_BINDINGS: usize = 64;
/// The most steps a job may have.
pub const MAX_STEPS: usize = 1024;
/// One buffer's bytes at most (the WebGPU default `maxStorageBufferBindingSize`).
pub const MAX_BUFFER_BYTES: u64 = 128 * 1024 * 1024;
/// All buffers of one manifest together, checked while reading, before the node's own
/// (smaller) budget is applied by admission.
pub const MAX_TOTAL_BYTES: u64 = 4 << 30;

/// Why a manifest could not be turned into a job.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON for the job format.
    #[error("manifest {path}:{line}:{column}: {message}")]
    Json {
        /// The file (or `<inline>`).
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde said.
        message: String,
    },
    /// The manifest is well-formed but says something impossible.
    #[error("manifest {path}: {message}")]
    Invalid {
        /// The file (or `<inline>`).
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A manifest as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// A WGSL file, relative to the manifest.
    #[serde(default)]
    pub wgsl: Option<PathBuf>,
    /// Inline WGSL source.
    #[serde(default)]
    pub source: Option<String>,
    /// The entry point of a single-step job.
    #[serde(default)]
    pub entry_point: Option<String>,
    /// The whole grid of a single-step job, in workgroups.
    #[serde(default)]
    pub workgroups: Option<[u32; 3]>,
    /// The buffers.
    pub bindings: Vec<ManifestBinding>,
    /// Which bindings to return.
    pub outputs: Vec<BindingRef>,
    /// Dispatches run in order over the same buffers (instead of `entry_point` and
    /// `workgroups`).
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
}

/// One buffer binding as written in the manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestBinding {
    /// Bind group, 0 to 2 (group 3 is the runner's).
    #[serde(default)]
    pub group: u32,
    /// Binding number within the group.
    pub binding: u32,
    /// How the shader uses it.
    pub kind: BindingKind,
    /// Contents from a file, relative to the manifest.
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Contents as base64.
    #[serde(default)]
    pub base64: Option<String>,
    /// This many zero bytes.
    #[serde(default)]
    pub zero: Option<u64>,
    /// A typed value repeated.
    #[serde(default)]
    pub fill: Option<Fill>,
}

/// A typed value repeated `count` times.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fill {
    /// `u32`, `i32` or `f32`.
    #[serde(rename = "type")]
    pub ty: FillType,
    /// The value.
    pub value: serde_json::Number,
    /// How many times.
    pub count: u64,
}

/// The element type of a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillType {
    /// 32-bit unsigned.
    U32,
    /// 32-bit signed.
    I32,
    /// 32-bit float.
    F32,
}

/// How a shader uses a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    /// `var<storage, read>`.
    StorageRead,
    /// `var<storage, read_write>`.
    StorageReadWrite,
    /// `var<uniform>`.
    Uniform,
}

/// A binding named by number (group 0) or by `{"group": g, "binding": b}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "BindingRefRepr", into = "BindingRefRepr")]
pub struct BindingRef {
    /// Bind group.
    pub group: u32,
    /// Binding number.
    pub binding: u32,
}

impl std::fmt::Display for BindingRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "@group({}) @binding({})", self.group, self.binding)
    }
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(untagged)]
enum BindingRefRepr {
    Number(u32),
    Full { group: u32, binding: u32 },
}

impl From<BindingRefRepr> for BindingRef {
    fn from(r: BindingRefRepr) -> Self {
        match r {
            BindingRefRepr::Number(binding) => BindingRef { group: 0, binding },
            BindingRefRepr::Full { group, binding } => BindingRef { group, binding },
        }
    }
}

impl From<BindingRef> for BindingRefRepr {
    fn from(r: BindingRef) -> Self {
        BindingRefRepr::Full {
            group: r.group,
            binding: r.binding,
        }
    }
}

/// One dispatch of a job: an entry point over a grid, repeated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The compute entry point.
    pub entry_point: String,
    /// The whole grid, in workgroups.
    pub workgroups: [u32; 3],
    /// How many times to run it (default 1).
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

/// A buffer with its initial contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Where it is bound.
    pub at: BindingRef,
    /// How the shader uses it.
    pub kind: BindingKind,
    /// Initial contents.
    pub bytes: Vec<u8>,
}

/// A self-contained job: everything a worker needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// WGSL source.
    pub source: String,
    /// Dispatches, in order.
    pub steps: Vec<Step>,
    /// Buffers.
    pub bindings: Vec<Binding>,
    /// Which bindings are returned.
    pub outputs: Vec<BindingRef>,
}

impl Job {
    /// BLAKE3 over every part of the job, each length-prefixed: what a requester
    /// signs and what identifies a job that caused a GPU loss.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        let mut part = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        part(b"spare-job-v1");
        part(self.source.as_bytes());
        part(&serde_json::to_vec(&self.steps).unwrap_or_default());
        for b in &self.bindings {
            part(&serde_json::to_vec(&(b.at, b.kind)).unwrap_or_default());
            part(&b.bytes);
        }
        part(&serde_json::to_vec(&self.outputs).unwrap_or_default());
        *h.finalize().as_bytes()
    }

    /// Total bytes of all buffers.
    pub fn buffer_bytes(&self) -> u64 {
        self.bindings.iter().map(|b| b.bytes.len() as u64).sum()
    }

    /// Total workgroups over all steps and repeats (saturating: a job's grid and
    /// repeats can multiply past `u64`).
    pub fn total_workgroups(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| {
                u64::from(s.workgroups[0])
                    .saturating_mul(u64::from(s.workgroups[1]))
                    .saturating_mul(u64::from(s.workgroups[2]))
                    .saturating_mul(u64::from(s.repeat))
            })
            .fold(0u64, u64::saturating_add)
    }
}

/// Reads a manifest file and everything it points at.
pub fn load(path: &Path) -> Result<Job, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, &path.display().to_string())
}

/// Parses manifest text; relative paths are taken from `base`.
pub fn parse(text: &str, base: &Path, name: &str) -> Result<Job, ManifestError> {
    let manifest: Manifest = serde_json::from_str(text).map_err(|e| ManifestError::Json {
        path: name.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let files = Files { base, name };
    let source = files.source(&manifest)?;
    let steps = files.steps(&manifest)?;
    let bindings = files.bindings(&manifest)?;
    for out in &manifest.outputs {
        if !bindings.iter().any(|b| b.at == *out) {
            return Err(files.invalid(format!("output {out} is not one of the bindings")));
        }
    }
    Ok(Job {
        source,
        steps,
        bindings,
        outputs: manifest.outputs.clone(),
    })
}

/// A manifest's folder (its files are read relative to it) and its name (for errors).
struct Files<'a> {
    base: &'a Path,
    name: &'a str,
}

impl Files<'_> {
    fn invalid(&self, message: String) -> ManifestError {
        ManifestError::Invalid {
            path: self.name.to_owned(),
            message,
        }
    }

    /// Reads `rel` (a `what`): a regular file, after following symlinks, of at most
    /// `limit` bytes, that does not change while it is read.
    ///
    /// The kind and the size are checked before the file is opened, since opening a
    /// FIFO waits for a writer and a device such as `/dev/zero` never ends; at most
    /// `limit + 1` bytes are read whatever happens to the file meanwhile.
    fn read_file(&self, rel: &Path, what: &str, limit: u64) -> Result<Vec<u8>, ManifestError> {
        let invalid = |m| self.invalid(m);
        let full = self.base.join(rel);
        let shown = full.display();
        let cannot = |e: std::io::Error| invalid(format!("cannot read {what} {shown}: {e}"));
        let meta = std::fs::metadata(&full).map_err(cannot)?;
        if !meta.is_file() {
            let kind = kind_of(meta.file_type());
            return Err(invalid(format!(
                "{what} {shown} is a {kind}, not a regular file: give a file"
            )));
        }
        let size = meta.len();
        if size > limit {
            return Err(invalid(format!(
                "{what} {shown} is {size} bytes; the limit is {limit}"
            )));
        }
        let file = std::fs::File::open(&full).map_err(cannot)?;
        // `size` is at most `limit`, itself at most a buffer's size.
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        std::io::Read::read_to_end(&mut std::io::Read::take(file, limit + 1), &mut bytes)
            .map_err(cannot)?;
        if bytes.len() as u64 != size {
            return Err(invalid(format!(
                "{what} {shown} changed while it was read ({size} bytes before, {} read): \
                 give a file that nothing is writing to",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// The kernel's WGSL, from its file or inline.
    fn source(&self, manifest: &Manifest) -> Result<String, ManifestError> {
        let invalid = |m| self.invalid(m);
        let read_file = |rel: &Path, what: &str, limit: u64| self.read_file(rel, what, limit);
        Ok(match (&manifest.wgsl, &manifest.source) {
            (Some(file), None) => {
                // `read_file` returns at most the limit.
                let bytes = read_file(file, "WGSL file", MAX_SOURCE_BYTES as u64)?;
                String::from_utf8(bytes)
                    .map_err(|_| invalid(format!("WGSL file {} is not UTF-8", file.display())))?
            }
            (None, Some(source)) => source.clone(),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give either `wgsl` (a file) or `source` (inline WGSL), not both".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "no kernel: give `wgsl` (a file path) or `source` (inline WGSL)".into(),
                ));
            }
        })
    }

    /// The dispatches: a `steps` list, or one top-level entry point and grid.
    fn steps(&self, manifest: &Manifest) -> Result<Vec<Step>, ManifestError> {
        let invalid = |m| self.invalid(m);
        Ok(
            match (&manifest.steps, &manifest.entry_point, manifest.workgroups) {
                (Some(steps), None, None) => {
                    if steps.is_empty() {
                        return Err(invalid(
                            "`steps` is empty: give at least one dispatch".into(),
                        ));
                    }
                    if steps.len() > MAX_STEPS {
                        return Err(invalid(format!(
                            "{} steps; a job has at most {MAX_STEPS}",
                            steps.len()
                        )));
                    }
                    steps.clone()
                }
                (None, Some(entry_point), Some(workgroups)) => vec![Step {
                    entry_point: entry_point.clone(),
                    workgroups,
                    repeat: 1,
                }],
                (Some(_), _, _) => {
                    return Err(invalid(
                        "with `steps`, leave out the top-level `entry_point` and `workgroups`"
                            .into(),
                    ));
                }
                (None, _, _) => {
                    return Err(invalid(
                        "give `entry_point` and `workgroups` (or a `steps` list)".into(),
                    ));
                }
            },
        )
    }

    /// The buffers, every size checked before anything is allocated.
    fn bindings(&self, manifest: &Manifest) -> Result<Vec<Binding>, ManifestError> {
        let invalid = |m| self.invalid(m);
        let read_file = |rel: &Path, what: &str, limit: u64| self.read_file(rel, what, limit);
        if manifest.bindings.len() > MAX_BINDINGS {
            return Err(invalid(format!(
                "{} bindings; a job has at most {MAX_BINDINGS}",
                manifest.bindings.len()
            )));
        }
        let mut bindings: Vec<Binding> = Vec::new();
        let mut total = 0u64;
        for b in &manifest.bindings {
            let at = BindingRef {
                group: b.group,
                binding: b.binding,
            };
            if bindings.iter().any(|other| other.at == at) {
                return Err(invalid(format!("{at} is listed twice")));
            }
            let sources = [
                b.data.is_some(),
                b.base64.is_some(),
                b.zero.is_some(),
                b.fill.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(format!(
                    "{at}: give exactly one of `data`, `base64`, `zero` or `fill`"
                )));
            }
            // Every size is checked before anything is allocated.
            let declared = match (&b.data, &b.base64, b.zero, &b.fill) {
                (_, Some(text), _, _) => text.len() as u64 / 4 * 3,
                (_, _, Some(n), _) => n,
                (_, _, _, Some(fill)) => fill.count.saturating_mul(4),
                _ => 0,
            };
            if declared > MAX_BUFFER_BYTES || total.saturating_add(declared) > MAX_TOTAL_BYTES {
                return Err(invalid(format!(
                    "{at}: {declared} bytes is too large (one buffer: at most {}; all together: \
                     at most {MAX_TOTAL_BYTES})",
                    MAX_BUFFER_BYTES
                )));
            }
            let bytes = if let Some(file) = &b.data {
                read_file(file, "data file", MAX_BUFFER_BYTES)?
            } else if let Some(text) = &b.base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| invalid(format!("{at}: `base64` is not valid base64: {e}")))?
            } else if let Some(n) = b.zero {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|n| *n as u64 <= MAX_BUFFER_BYTES)
                    .ok_or_else(|| invalid(format!("{at}: `zero` of {n} bytes is too large")))?;
                vec![0; n]
            } else if let Some(fill) = &b.fill {
                fill_bytes(fill).map_err(|m| invalid(format!("{at}: {m}")))?
            } else {
                Vec::new()
            };
            total = total.saturating_add(bytes.len() as u64);
            if total > MAX_TOTAL_BYTES {
                return Err(invalid(format!(
                    "the buffers total over {MAX_TOTAL_BYTES} bytes"
                )));
            }
            bindings.push(Binding {
                at,
                kind: b.kind,
                bytes,
            });
        }
        Ok(bindings)
    }
}

/// What a path that is not a regular file is, in words.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_char_device() || file_type.is_block_device() {
            return "device";
        }
        if file_type.is_fifo() {
            return "FIFO";
        }
        if file_type.is_socket() {
            return "socket";
        }
    }
    if file_type.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

fn fill_bytes(fill: &Fill) -> Result<Vec<u8>, String> {
    let count = usize::try_from(fill.count)
        .ok()
        .filter(|c| {
            (*c as u64)
                .checked_mul(4)
                .is_some_and(|bytes| bytes <= MAX_BUFFER_BYTES)
        })
        .ok_or_else(|| format!("fill count {} is too large", fill.count))?;
    let word: [u8; 4] = match fill.ty {
        FillType::U32 => fill
            .value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("fill value {} is not a u32", fill.value))?
            .to_le_bytes(),
        FillType::I32 => fill
            .value
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| format!("fill value {} is not an i32", fill.value))?
            .to_le_bytes(),
        FillType::F32 => (fill
            .value
            .as_f64()
            .ok_or_else(|| format!("fill value {} is not a number", fill.value))?
            as f32)
            .to_le_bytes(),
    };
    Ok(word.repeat(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(base: &Path) -> Files<'_> {
        Files {
            base,
            name: "job.json",
        }
    }

    /// Reads `path` as a data file, failing the test instead of hanging if it blocks.
    fn read_data(path: &Path) -> Result<Vec<u8>, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = path.to_owned();
        std::thread::spawn(move || {
            let read = files(Path::new("."))
                .read_file(&path, "data file", MAX_BUFFER_BYTES)
                .map_err(|e| e.to_string());
            let _ = tx.send(read);
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a data file blocked")
    }

    #[test]
    fn a_regular_file_and_a_symlink_to_one_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("input.bin"), [1, 2, 3, 4]).unwrap();
        let read = files(dir.path()).read_file(Path::new("input.bin"), "data file", 4);
        assert_eq!(read.unwrap(), [1, 2, 3, 4]);
        let err = files(dir.path())
            .read_file(Path::new("input.bin"), "data file", 3)
            .unwrap_err();
        assert!(
            err.to_string().contains("is 4 bytes; the limit is 3"),
            "{err}"
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("input.bin", dir.path().join("link.bin")).unwrap();
            assert_eq!(
                read_data(&dir.path().join("link.bin")).unwrap(),
                [1, 2, 3, 4]
            );
        }
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_data(dir.path()).unwrap_err();
        assert!(
            err.contains("is a directory, not a regular file: give a file"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_refused_at_once_even_through_a_symlink() {
        let err = read_data(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("is a device, not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zeros.bin");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read_data(&link).unwrap_err();
        assert!(err.contains("is a device, not a regular file"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("input.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        let err = read_data(&fifo).unwrap_err();
        assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_whose_length_differs_from_its_metadata_is_refused() {
        // Files in /proc report 0 bytes and then read as more: what a file that grows
        // while it is read looks like.
        let err = read_data(Path::new("/proc/self/status")).unwrap_err();
        assert!(
            err.contains("changed while it was read (0 bytes before"),
            "{err}"
        );
    }
}
