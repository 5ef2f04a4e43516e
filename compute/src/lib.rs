//! Spare's GPU kernel runner: the job format, admission with naga, sliced execution on
//! a wgpu device owned by a disposable worker process, and result digests.
//!
//! No networking here: jobs reach the runner from the node. The supervisor
//! (`supervisor.rs`) never touches the GPU; the worker (`worker.rs`, `gpu.rs`) owns it.

pub mod admission;
pub mod baseline;
pub mod capability;
pub mod gpu;
pub mod manifest;
pub mod respawn;
pub mod selftest;
pub mod slicing;
pub mod supervisor;
pub mod wire;
pub mod worker;

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 bytes from 64 hex characters.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}
