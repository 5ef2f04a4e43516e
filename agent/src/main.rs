//! `spare`: the Spare node's command-line interface. See `agent::cli`.

fn main() -> std::process::ExitCode {
    agent::cli::main()
}
