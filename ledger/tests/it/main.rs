//! Integration tests for the ledger, on real SQLite files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod append;
mod crash;
mod earnings;
mod migrate;
mod read_only;
mod support;
mod tamper;
