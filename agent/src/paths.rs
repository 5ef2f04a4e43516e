//! Where Spare keeps its files on each platform (through the `directories` crate).
//!
//! Linux: `~/.config/spare/config.toml` and `~/.local/share/spare/ledger.sqlite3`
//! (honouring `XDG_CONFIG_HOME` and `XDG_DATA_HOME`); macOS:
//! `~/Library/Application Support/org.spare.spare/`; Windows: `%APPDATA%\spare\spare\config\`
//! and `%APPDATA%\spare\spare\data\` (pipeline cache under `%LOCALAPPDATA%\spare\spare\cache\`).

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
