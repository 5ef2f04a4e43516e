//! `spare`: the Spare node's command-line interface (`cli`), over the `node` library.
//!
//! Run with the hidden first argument `__gpu-worker [ADAPTER]`, the same binary is the
//! GPU worker process that the runner's supervisor starts (see `compute::worker`).

mod cli;
mod daemon;
mod doctor;
mod jobs;
mod logs;
mod relaying;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(compute::worker::WORKER_ARG) {
        let adapter = args.next().and_then(|a| a.parse().ok());
        return compute::worker::main(adapter);
    }
    cli::main()
}
