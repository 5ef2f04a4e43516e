//! Integration tests for the `spare` command, run as a real process against real
//! files and a real Secret Service.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod config;
mod daemon;
mod hostile;
mod identity;
mod jobs;
mod json;
mod ledger_cli;
mod node;
mod relay_cli;
mod support;
