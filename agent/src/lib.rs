//! The Spare node: its identity, its configuration, its ledger, and the `spare`
//! command that drives them.
//!
//! Only this crate wires the other crates together; the GUI and the CLI drive the
//! same API.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod earnings;
pub mod identity;
pub mod job_service;
pub mod jobs;
pub mod ledger_view;
pub mod lending;
pub mod node;
pub mod paths;
pub mod relaying;
pub mod signals;
#[doc(hidden)]
pub mod testing;
