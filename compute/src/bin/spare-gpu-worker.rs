//! A GPU worker process on its own, for the runner's tests and benchmarks; `spare`
//! runs the same worker when re-executed with `__gpu-worker`.

fn main() -> std::process::ExitCode {
    let adapter = std::env::var("SPARE_GPU_ADAPTER")
        .ok()
        .and_then(|v| v.parse().ok());
    compute::worker::main(adapter)
}
