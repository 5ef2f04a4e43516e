//! `spare-app`: Spare's tray app. A thin shell over the node: it runs the node
//! in-process, shows its state in the tray and the dashboard (`ui/`), and turns clicks
//! into node calls. No lending, pricing or ledger logic lives here.
//!
//! Run with the hidden first argument `__gpu-worker [ADAPTER]`, the same binary is the
//! GPU worker process that the node's runner starts (as `spare` is).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod attention;
#[cfg(test)]
mod bindings;
mod commands;
mod error;
mod host;
mod login;
mod pump;
mod tray;
mod updates;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tauri::{AppHandle, Manager, RunEvent};

use crate::host::{Host, Launch};

/// Spare's tray app.
#[derive(Parser, Debug)]
#[command(name = "spare-app", version)]
struct Args {
    /// Demo mode: a built-in requester and relay clients send real work, recorded on the
    /// demo network (never as earnings), so every screen fills within a minute.
    #[arg(long)]
    demo: bool,
    /// Start in the tray without opening the dashboard (how start-at-login runs it).
    #[arg(long)]
    minimized: bool,
    /// The config file (default: the platform's, as `spare` uses).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let mut raw = std::env::args().skip(1);
    if raw.next().as_deref() == Some(compute::worker::WORKER_ARG) {
        let adapter = raw.next().and_then(|a| a.parse().ok());
        return compute::worker::main(adapter);
    }
    #[cfg(target_os = "linux")]
    lighter_graphics();
    let args = Args::parse();
    // The app's log: its file in the OS log folder (the dashboard's Logs view and
    // `spare logs` read it), and stderr for a terminal.
    if let Err(e) = node::logs::init(node::logs::LogTo {
        program: "app",
        folder: None,
        stderr: true,
    }) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("warning: {e:#}; logging to stderr only");
        }
        node::logs::init_stderr();
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let launch = Launch {
        config_named: args.config.is_some(),
        config_path: match args.config {
            Some(path) => path,
            None => node::paths::config_file()?,
        },
        data_dir: node::paths::data_dir()?,
        demo: args.demo,
    };
    let host = Host::new(launch);
    let updates = Arc::new(updates::Updates::default());
    let minimized = args.minimized;
    let app = tauri::Builder::default()
        // First: a second launch hands over to this app and exits.
        .plugin(tauri_plugin_single_instance::init(|app, args, _cwd| {
            second_launch(app, &args);
        }))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_updater::Builder::new().build());
    // Start at login: the plugin on Windows and macOS, Spare's own entry on Linux (login.rs).
    #[cfg(not(target_os = "linux"))]
    let app = app.plugin(tauri_plugin_autostart::init(
        tauri_plugin_autostart::MacosLauncher::LaunchAgent,
        Some(vec!["--minimized"]),
    ));
    let app = app
        .manage(Arc::clone(&host))
        .manage(Arc::clone(&updates))
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::node_start,
            commands::pause,
            commands::resume,
            commands::diagnostics,
            commands::earnings,
            commands::ledger_entries,
            commands::ledger_verify,
            commands::ledger_export_csv,
            commands::settings_get,
            commands::settings_set,
            commands::running_processes,
            commands::autostart_get,
            commands::autostart_set,
            commands::update_check,
            commands::update_install,
            commands::logs,
            commands::logs_open_folder,
        ])
        .setup(move |app| {
            let handle = app.handle().clone();
            let items = tray::create(&handle)?;
            app.manage(items);
            if !minimized {
                show_dashboard(&handle);
            }
            let starting = Arc::clone(&host);
            tauri::async_runtime::spawn(async move {
                let _ = tauri::async_runtime::spawn_blocking(move || starting.start()).await;
            });
            tauri::async_runtime::spawn(pump::run(handle.clone(), Arc::clone(&host)));
            tauri::async_runtime::spawn(updates::watch(
                handle.clone(),
                Arc::clone(&host),
                Arc::clone(&updates),
            ));
            stop_on_signals(handle);
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|app, event| match event {
        // Closing the dashboard closes only the window (and its WebKit processes, about
        // 90 MB): Spare keeps lending from the tray. Quit is in the tray menu.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        // Relay sessions end with their last promise recorded; jobs stop cleanly.
        RunEvent::Exit => app.state::<Arc<Host>>().stop("Spare is quitting"),
        _ => {}
    });
    Ok(())
}

/// The dashboard is a few forms and SVG charts, and the tray an icon and a menu: neither
/// needs OpenGL. Where there is no GPU driver, GTK's and WebKit's OpenGL set-up loads
/// Mesa's software driver and LLVM: about 50 MB in the app even with the dashboard
/// closed. So on Linux GTK's OpenGL and WebKit's composited mode are off unless the owner
/// set the variables. (Changing the webview's hardware-acceleration policy after it
/// started kills its web process, so this is done before GTK starts.)
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lighter_graphics() {
    for (var, value) in [
        ("GDK_GL", "disable"),
        ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: called first thing in `main`, before any thread exists, so nothing
            // can read the environment while it changes.
            unsafe { std::env::set_var(var, value) };
        }
    }
}

/// Spare is launched again while it runs (`args` as the second launch got them, its
/// program first): no second node starts. If the node could not start (a locked keyring
/// at login, say), it tries again, as a fresh start would. Launched as at login
/// (`--minimized`) it leaves the window as it is; otherwise (the desktop's menu, a click
/// on the launcher) it shows the dashboard. Options that only take effect at start are
/// logged as ignored.
fn second_launch(app: &AppHandle, args: &[String]) {
    commands::spawn_retry(app);
    let Ok(second) = Args::try_parse_from(args) else {
        show_dashboard(app);
        return;
    };
    if second.demo || second.config.is_some() {
        tracing::warn!(
            "Spare is already running: --demo and --config take effect when it starts \
             (quit it from the tray menu and start it again with them)"
        );
    }
    if !second.minimized {
        show_dashboard(app);
    }
}

/// Shows and focuses the dashboard, opening its window (from tauri.conf.json, where it
/// is not created at start) when it is closed.
pub fn show_dashboard(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(DASHBOARD) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let Some(config) = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == DASHBOARD)
    else {
        return;
    };
    if let Err(e) = tauri::WebviewWindowBuilder::from_config(app, config).and_then(|b| b.build()) {
        tracing::error!("cannot open the dashboard: {e}");
    }
}

/// The dashboard window's label (tauri.conf.json, capabilities/default.json).
const DASHBOARD: &str = "main";

/// Quits: the node stops (see `RunEvent::Exit` in `run`), then the process ends.
pub fn quit(app: &AppHandle) {
    app.exit(0);
}

/// SIGTERM and Ctrl-C quit the app as the menu's Quit does (service managers and
/// package removal stop it that way).
fn stop_on_signals(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                quit(&app);
                return;
            }
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            quit(&app);
        }
    });
}
