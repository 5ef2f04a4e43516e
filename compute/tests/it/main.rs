//! Integration tests for the GPU runner, on a real wgpu device (Mesa lavapipe on CI)
//! and a real worker process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod admission;
mod examples;
mod inprocess;
mod support;
mod watchdog;
mod yielding;
