//! Integration tests for the relay: real quinn endpoints and real TCP servers on
//! loopback, a real curl through the SOCKS5 proxy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

mod bursts;
mod flows;
mod hostile;
mod limits;
mod udp;
