//! The dashboard's commands (`ui/src/api.ts`): each translates one call into the node
//! API and its answer back, on a blocking thread (the node's calls wait on the ledger
//! and on the policy thread; none may block the UI's event loop).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, NaiveDate, Offset as _};
use ledger::{Ledger, Period};
use node::config::Config;
use node::doctor::Check;
use node::earnings::{self, Report};
use node::ledger_view::{self, EntryView, VerifyView};
use node::logs::{LogLevel, LogView};
use node::{NodeHandle, PauseFor, Status, Target};
use tauri::{AppHandle, Manager, State};

use crate::error::CommandError;
use crate::host::Host;
use crate::updates::{self, UpdateCheck, Updates};

/// Runs `work` on a blocking thread and waits for it.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(CommandError::internal)?
}

fn host(state: &State<'_, Arc<Host>>) -> Arc<Host> {
    Arc::clone(state)
}

/// Calls `act` on the node from a blocking thread, then pushes the new status (the tray
/// menu's pause and resume).
pub fn spawn_action(app: &AppHandle, act: impl FnOnce(&NodeHandle) + Send + 'static) {
    let host = Arc::clone(&app.state::<Arc<Host>>());
    tauri::async_runtime::spawn_blocking(move || match host.handle() {
        Ok(handle) => act(&handle),
        Err(e) => tracing::warn!("tray: {e}"),
    });
}

/// Starts the node again on a blocking thread if it could not start (the tray's "Start
/// the node again", a second launch); its status reaches the UI through the pump.
pub fn spawn_retry(app: &AppHandle) {
    let host = Arc::clone(&app.state::<Arc<Host>>());
    tauri::async_runtime::spawn_blocking(move || host.retry());
}

/// The node's status now; while it starts (the dashboard opens with the app), once it
/// has started.
#[tauri::command(rename_all = "snake_case")]
pub async fn status(host: State<'_, Arc<Host>>) -> Result<Status, CommandError> {
    let host = self::host(&host);
    blocking(move || Ok(host.handle_when_started(Duration::from_secs(15))?.status())).await
}

/// Starts the node again when it could not start, after the owner fixed the cause (the
/// dashboard's "Start the node again"): its status, or why it still cannot run.
#[tauri::command(rename_all = "snake_case")]
pub async fn node_start(host: State<'_, Arc<Host>>) -> Result<Status, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        host.retry();
        Ok(host.handle()?.status())
    })
    .await
}

/// Pauses `target` for `for`; answers once the pause is in force.
#[tauri::command(rename_all = "snake_case")]
pub async fn pause(
    host: State<'_, Arc<Host>>,
    target: Target,
    r#for: PauseFor,
) -> Result<Status, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        let handle = host.handle()?;
        handle.pause(target, r#for);
        Ok(handle.status())
    })
    .await
}

/// Ends the owner's pause of `target`.
#[tauri::command(rename_all = "snake_case")]
pub async fn resume(host: State<'_, Arc<Host>>, target: Target) -> Result<Status, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        let handle = host.handle()?;
        handle.resume(target);
        Ok(handle.status())
    })
    .await
}

/// "Why am I not earning?": the checks of `spare doctor`, each with its fix.
#[tauri::command(rename_all = "snake_case")]
pub async fn diagnostics(host: State<'_, Arc<Host>>) -> Result<Vec<Check>, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        let loaded = host.config();
        let config = loaded.clone().unwrap_or_default();
        Ok(node::doctor::run(
            loaded.as_ref().map_err(ToString::to_string),
            &node::identity::KeyStore::for_config(&config),
            &host.launch().data_dir,
        ))
    })
    .await
}

fn open_ledger(host: &Host) -> Result<Ledger, CommandError> {
    let path = host.ledger_path(&host.config()?);
    Ledger::open_read_only(&path)
        .map_err(|e| CommandError::ledger(&format!("cannot open the ledger {}", path.display()), e))
}

/// Earnings by `period` from the local date `since` (YYYY-MM-DD) on, or for all time.
#[tauri::command(rename_all = "snake_case")]
pub async fn earnings(
    host: State<'_, Arc<Host>>,
    period: Period,
    since: Option<String>,
) -> Result<Report, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        let since = since
            .map(|d| {
                NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| {
                    CommandError::internal(format!("{d:?} is not a date (YYYY-MM-DD): {e}"))
                })
            })
            .transpose()?;
        let ledger = open_ledger(&host)?;
        earnings::report(&ledger, period, since, Local::now().offset().fix())
            .map_err(|e| CommandError::ledger("reading earnings", e))
    })
    .await
}

/// Up to `limit` entries after `after_seq`, oldest first.
#[tauri::command(rename_all = "snake_case")]
pub async fn ledger_entries(
    host: State<'_, Arc<Host>>,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<EntryView>, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        ledger_view::page(&open_ledger(&host)?, after_seq, limit)
            .map_err(|e| CommandError::ledger("reading the ledger", e))
    })
    .await
}

/// Checks every entry's chain link and signature.
#[tauri::command(rename_all = "snake_case")]
pub async fn ledger_verify(host: State<'_, Arc<Host>>) -> Result<VerifyView, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        open_ledger(&host)?
            .verify()
            .map(VerifyView::from)
            .map_err(|e| CommandError::ledger("verifying the ledger", e))
    })
    .await
}

/// Writes the ledger as CSV to `path`; the number of entries written.
#[tauri::command(rename_all = "snake_case")]
pub async fn ledger_export_csv(
    host: State<'_, Arc<Host>>,
    path: String,
) -> Result<u64, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        let path = PathBuf::from(path.trim());
        if !path.is_absolute() {
            return Err(CommandError::IoError {
                message: format!(
                    "{} is not a full path: give the whole path, like /home/you/spare-ledger.csv",
                    path.display()
                ),
            });
        }
        ledger_view::export_csv_file(&open_ledger(&host)?, &path).map_err(|e| {
            CommandError::IoError {
                message: format!("{e:#}"),
            }
        })
    })
    .await
}

/// The config in force.
#[tauri::command(rename_all = "snake_case")]
pub async fn settings_get(host: State<'_, Arc<Host>>) -> Result<Config, CommandError> {
    let host = self::host(&host);
    blocking(move || host.config()).await
}

/// Checks and saves `config`, then restarts the node with it. Nothing is saved when
/// any value is refused.
#[tauri::command(rename_all = "snake_case")]
pub async fn settings_set(
    host: State<'_, Arc<Host>>,
    config: Config,
) -> Result<Config, CommandError> {
    let host = self::host(&host);
    blocking(move || {
        let before = host.config().ok();
        if before.as_ref() == Some(&config) {
            return Ok(config);
        }
        config.save(&host.launch().config_path)?;
        // The node reads everything but [updates]: a change there alone needs no restart.
        let node_part = |c: &Config| Config {
            updates: Default::default(),
            ..c.clone()
        };
        if before.as_ref().map(node_part) == Some(node_part(&config)) {
            return host.config();
        }
        host.restart();
        if let Err(CommandError::NodeUnavailable { message }) = host.handle() {
            return Err(CommandError::node_unavailable(format!(
                "the settings were saved, but the node did not start with them: {message}"
            )));
        }
        host.config()
    })
    .await
}

/// The names of the programs running now (for the exclusive-apps picker).
#[tauri::command(rename_all = "snake_case")]
pub async fn running_processes() -> Result<Vec<String>, CommandError> {
    blocking(|| Ok(signals::Machine::new(Vec::new()).running_programs())).await
}

/// Whether Spare starts at login.
#[tauri::command(rename_all = "snake_case")]
pub async fn autostart_get(app: AppHandle) -> Result<bool, CommandError> {
    blocking(move || crate::login::is_enabled(&app)).await
}

/// Turns start at login on or off; answers the setting now in force.
#[tauri::command(rename_all = "snake_case")]
pub async fn autostart_set(app: AppHandle, enabled: bool) -> Result<bool, CommandError> {
    blocking(move || crate::login::set(&app, enabled)).await
}

/// Asks the release server whether a newer Spare is out.
#[tauri::command(rename_all = "snake_case")]
pub async fn update_check(
    app: AppHandle,
    host: State<'_, Arc<Host>>,
    updates: State<'_, Arc<Updates>>,
) -> Result<UpdateCheck, CommandError> {
    updates::check(&app, &host, &updates).await
}

/// Installs the update the last check offered (signature checked), then restarts Spare.
#[tauri::command(rename_all = "snake_case")]
pub async fn update_install(
    app: AppHandle,
    updates: State<'_, Arc<Updates>>,
) -> Result<(), CommandError> {
    updates::install(&app, &updates).await
}

/// The newest lines of Spare's logs (the app's, a daemon's, the relay's), newest first,
/// at `level` or worse, with the folder they are in.
#[tauri::command(rename_all = "snake_case")]
pub async fn logs(level: Option<LogLevel>, limit: u32) -> Result<LogView, CommandError> {
    let limit = usize::try_from(limit.min(MAX_LOG_LINES)).unwrap_or(usize::MAX);
    blocking(move || node::logs::view(level, limit).map_err(CommandError::internal)).await
}

/// The most lines one `logs` call answers.
const MAX_LOG_LINES: u32 = 5_000;

/// Opens the log folder in the OS's file manager.
#[tauri::command(rename_all = "snake_case")]
pub async fn logs_open_folder() -> Result<(), CommandError> {
    blocking(|| {
        let folder = node::paths::log_dir().map_err(CommandError::internal)?;
        std::fs::create_dir_all(&folder).map_err(CommandError::internal)?;
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else if cfg!(windows) {
            "explorer"
        } else {
            "xdg-open"
        };
        let mut child = std::process::Command::new(opener)
            .arg(&folder)
            .spawn()
            .map_err(|e| {
                CommandError::internal(format!(
                    "cannot open {} with {opener}: {e}; the logs are in that folder",
                    folder.display()
                ))
            })?;
        // The opener hands the folder to the file manager and exits; reap it.
        std::thread::spawn(move || child.wait());
        Ok(())
    })
    .await
}
