//! The framed channel between the supervisor and its GPU worker process.
//!
//! A frame is a JSON header plus binary blobs (buffer contents travel as raw bytes,
//! not inside the JSON):
//!
//! ```text
//! u32 LE header length, header (JSON), u32 LE blob count, then per blob: u64 LE length, bytes
//! ```
//!
//! Lengths are capped before anything is allocated; a malformed frame is an error, never
//! a panic or an unbounded allocation.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::gpu::{ExecClass, Progress, SliceReport};
use crate::manifest::{BindingKind, BindingRef, Step};
use crate::slicing::Budget;

/// The largest JSON header accepted.
pub const MAX_HEADER: u32 = 16 * 1024 * 1024;
/// The most blobs in one frame.
pub const MAX_BLOBS: u32 = 256;
/// The largest blob accepted (one buffer).
pub const MAX_BLOB: u64 = 1 << 30;
/// All blobs of one frame together.
pub const MAX_FRAME_BLOBS: u64 = 5 << 30;

/// One message and its blobs.
#[derive(Debug)]
pub struct Frame<T> {
    /// The JSON part.
    pub header: T,
    /// The binary parts.
    pub blobs: Vec<Vec<u8>>,
}

/// Writes one frame and flushes.
pub fn write_frame<T: Serialize>(
    out: &mut impl Write,
    header: &T,
    blobs: &[&[u8]],
) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let mut head = Vec::with_capacity(8 + json.len());
    head.extend_from_slice(&(json.len() as u32).to_le_bytes());
    head.extend_from_slice(&json);
    head.extend_from_slice(&(blobs.len() as u32).to_le_bytes());
    out.write_all(&head)?;
    for blob in blobs {
        out.write_all(&(blob.len() as u64).to_le_bytes())?;
        out.write_all(blob)?;
    }
    out.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
) -> io::Result<Option<Frame<T>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(invalid(format!(
            "frame header of {len} bytes is over the {MAX_HEADER} limit"
        )));
    }
    let mut json = vec![0u8; len as usize];
    input.read_exact(&mut json)?;
    let header =
        serde_json::from_slice(&json).map_err(|e| invalid(format!("bad frame header: {e}")))?;
    let mut count = [0u8; 4];
    input.read_exact(&mut count)?;
    let count = u32::from_le_bytes(count);
    if count > MAX_BLOBS {
        return Err(invalid(format!(
            "{count} blobs in a frame; the limit is {MAX_BLOBS}"
        )));
    }
    let mut blobs = Vec::with_capacity(count as usize);
    let mut total = 0u64;
    for _ in 0..count {
        let mut len = [0u8; 8];
        input.read_exact(&mut len)?;
        let len = u64::from_le_bytes(len);
        if len > MAX_BLOB {
            return Err(invalid(format!(
                "blob of {len} bytes is over the {MAX_BLOB} limit"
            )));
        }
        total = total.saturating_add(len);
        if total > MAX_FRAME_BLOBS {
            return Err(invalid(format!(
                "frame blobs total over the {MAX_FRAME_BLOBS} byte limit"
            )));
        }
        let mut blob = Vec::new();
        input.take(len).read_to_end(&mut blob)?;
        if blob.len() as u64 != len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        blobs.push(blob);
    }
    Ok(Some(Frame { header, blobs }))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A job as sent to the worker; binding contents follow as blobs, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobHeader {
    /// WGSL source.
    pub source: String,
    /// Dispatches.
    pub steps: Vec<Step>,
    /// Bindings; contents are the frame's blobs in this order.
    pub bindings: Vec<(BindingRef, BindingKind)>,
    /// Outputs.
    pub outputs: Vec<BindingRef>,
}

/// A checkpoint as sent or received; buffer contents follow the job's blobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// The job's digest, hex.
    pub job_digest: String,
    /// Where to continue.
    pub progress: Progress,
    /// Which buffers the blobs hold.
    pub buffers: Vec<BindingRef>,
}

/// Supervisor → worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Load and run a job (from a checkpoint, if given).
    Run {
        /// The job.
        job: JobHeader,
        /// Where to resume from.
        checkpoint: Option<CheckpointHeader>,
        /// Slice budget to start with.
        budget: Budget,
    },
    /// Stop after the slice in flight.
    Yield,
    /// Change the slice budget from the next slice on.
    SetBudget {
        /// The new budget.
        budget: Budget,
    },
    /// Continue a yielded job.
    Resume {
        /// Slice budget.
        budget: Budget,
    },
    /// Read back the yielded job's state.
    Checkpoint,
    /// Forget the yielded job and free its buffers.
    Drop,
}

/// Worker → supervisor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The worker opened its device.
    Ready {
        /// What it runs on.
        class: ExecClass,
    },
    /// The worker could not start.
    StartFailed {
        /// Why.
        message: String,
    },
    /// The worker took up a `Run`: from now on, losing it is the job's doing.
    Received,
    /// The job's shader is being compiled (only when it is not compiled yet).
    Compiling,
    /// It is compiled; its buffers are uploaded next.
    Compiled,
    /// The job is compiled and its buffers are on the device; slices start now.
    Loaded,
    /// A slice finished (also the watchdog's heartbeat).
    Slice {
        /// The slice.
        report: SliceReport,
    },
    /// The job finished; output contents follow as blobs, in `outputs` order.
    Done {
        /// Output bindings.
        outputs: Vec<BindingRef>,
        /// Time spent in slices, in microseconds.
        gpu_time_us: u64,
        /// Where it ended.
        progress: Progress,
    },
    /// The job stopped after a yield request.
    Yielded {
        /// Where it stands.
        progress: Progress,
    },
    /// The checkpoint asked for; buffer contents follow as blobs.
    Checkpoint {
        /// The checkpoint.
        checkpoint: CheckpointHeader,
    },
    /// The job was dropped.
    Dropped,
    /// The worker's GPU device was lost; the worker exits after saying so.
    DeviceLost {
        /// What the driver said.
        message: String,
    },
    /// The request failed; the worker is still healthy.
    Failed {
        /// Why, in a sentence.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Yield, &[b"abc", b""]).unwrap();
        let frame: Frame<Request> = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        assert!(matches!(frame.header, Request::Yield));
        assert_eq!(frame.blobs, vec![b"abc".to_vec(), Vec::new()]);
        assert!(read_frame::<Request>(&mut &[][..]).unwrap().is_none());
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let huge = (MAX_HEADER + 1).to_le_bytes();
        assert!(read_frame::<Request>(&mut &huge[..]).is_err());
        let mut not_json = 3u32.to_le_bytes().to_vec();
        not_json.extend_from_slice(b"{{{");
        assert!(read_frame::<Request>(&mut not_json.as_slice()).is_err());
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Yield, &[b"abcdef"]).unwrap();
        for cut in 1..buf.len() {
            assert!(read_frame::<Request>(&mut &buf[..cut]).is_err() || cut < 4);
        }
    }
}
