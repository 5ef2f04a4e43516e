//! The Spare node as a library: the lending policy driving the relay and the GPU
//! runner, the job service's node side, the recorder, the control channel, the config,
//! the identity and demo mode. The tray app (`src-tauri`) and the `spare` command
//! (`spare/`) both drive it through [`Node`] and [`NodeHandle`]; neither holds lending,
//! pricing or ledger logic of its own.
//!
//! Only this crate wires tokio, quinn (through `relay`), wgpu (through `compute`'s
//! worker process) and rusqlite (through `ledger`) together. It prints nothing: what
//! happens goes to `tracing`, and what the owner asks for comes back as values.

pub mod blame;
pub mod config;
pub mod control;
pub mod demo;
pub mod doctor;
pub mod earnings;
mod folder;
pub mod gpu_lane;
pub mod identity;
pub mod job_service;
pub mod ledger_view;
pub mod lending;
pub mod logs;
mod node;
pub mod paths;
pub mod recorder;
pub mod relay_settings;
pub mod router;
pub mod status;
#[doc(hidden)]
pub mod testing;

pub use node::*;
pub use status::*;
