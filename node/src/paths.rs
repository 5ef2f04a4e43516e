//! Where Spare keeps its files on each platform (through the `directories` crate).
//!
//! Linux: `~/.config/spare/config.toml` and `~/.local/share/spare/ledger.sqlite3`
//! (honouring `XDG_CONFIG_HOME` and `XDG_DATA_HOME`); macOS:
//! `~/Library/Application Support/org.spare.spare/`; Windows: `%APPDATA%\spare\spare\config\`
//! and `%APPDATA%\spare\spare\data\` (pipeline cache under `%LOCALAPPDATA%\spare\spare\cache\`).
//!
//! Logs go where each OS keeps them: `~/.local/state/spare/logs` on Linux (honouring
//! `XDG_STATE_HOME`), `~/Library/Logs/Spare` on macOS, and
//! `%LOCALAPPDATA%\spare\spare\data\logs` on Windows.

use std::path::PathBuf;

use anyhow::Context as _;
use directories::ProjectDirs;

/// The platform directories for Spare.
fn project_dirs() -> anyhow::Result<ProjectDirs> {
    ProjectDirs::from("org", "spare", "spare")
        .context("cannot find the home directory to keep Spare's files in: set HOME")
}

/// The default config file.
pub fn config_file() -> anyhow::Result<PathBuf> {
    Ok(project_dirs()?.config_dir().join("config.toml"))
}

/// Where the node keeps its files: ledger, lock, control socket, pauses.
pub fn data_dir() -> anyhow::Result<PathBuf> {
    Ok(project_dirs()?.data_dir().to_owned())
}

/// The default ledger file.
pub fn ledger_file() -> anyhow::Result<PathBuf> {
    Ok(project_dirs()?.data_dir().join("ledger.sqlite3"))
}

/// The ledger `config` names, or the default one.
pub fn ledger_file_of(config: &crate::config::Config) -> anyhow::Result<PathBuf> {
    match &config.node.ledger {
        Some(path) => Ok(path.clone()),
        None => ledger_file(),
    }
}

/// Where GPU workers keep compiled pipelines between runs.
pub fn pipeline_cache_dir() -> anyhow::Result<PathBuf> {
    Ok(project_dirs()?.cache_dir().join("pipelines"))
}

/// Where running relay sessions' latest promises are checkpointed.
pub fn relay_sessions_dir() -> anyhow::Result<PathBuf> {
    Ok(project_dirs()?.data_dir().join("relay-sessions"))
}

/// The OS's log folder for Spare (see the top of this file).
pub fn log_dir() -> anyhow::Result<PathBuf> {
    let dirs = project_dirs()?;
    if cfg!(target_os = "macos") {
        let home = directories::BaseDirs::new()
            .context("cannot find the home directory to keep Spare's logs in: set HOME")?;
        return Ok(home.home_dir().join("Library/Logs/Spare"));
    }
    Ok(match dirs.state_dir() {
        Some(state) => state.join("logs"),
        None => dirs.data_local_dir().join("logs"),
    })
}
