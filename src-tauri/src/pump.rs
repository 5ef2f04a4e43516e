//! Pushes the node's status to the dashboard (the `status-changed` event) and the tray
//! whenever it changes, and why it is not running when it stops or cannot start (the
//! `node-down` event): no polling. Sends notifications when something newly needs the
//! owner.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use node::Status;
use serde::Serialize;
use tauri::{AppHandle, Emitter as _};
use tauri_plugin_notification::NotificationExt as _;
use ts_rs::TS;

use crate::attention;
use crate::host::{Down, Host};

/// The event name (`STATUS_CHANGED` in `ui/src/api.ts`).
pub const STATUS_CHANGED: &str = "status-changed";

/// The event name (`NODE_DOWN` in `ui/src/api.ts`).
pub const NODE_DOWN: &str = "node-down";

/// Why the node is not running (`ui/src/bindings/NodeDown.ts`), pushed when it stops or
/// cannot start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
pub struct NodeDown {
    /// Why, and what to do.
    pub why: String,
    /// It is starting, restarting or quitting and needs nothing from the owner; otherwise
    /// the owner must fix the cause (a locked keyring, a port in use), then start it again.
    pub planned: bool,
}

/// At most this many pushes a second: meters move smoothly, the UI is never flooded.
const MIN_GAP: Duration = Duration::from_millis(250);

/// Runs for the app's lifetime.
pub async fn run(app: AppHandle, host: Arc<Host>) {
    let mut generations = host.generations();
    let mut notified: HashSet<&'static str> = HashSet::new();
    loop {
        generations.borrow_and_update();
        match host.handle() {
            Ok(node) => {
                let mut changes = node.changes();
                loop {
                    changes.borrow_and_update();
                    let reading = node.clone();
                    let Ok(status) =
                        tauri::async_runtime::spawn_blocking(move || reading.status()).await
                    else {
                        break;
                    };
                    publish(&app, Some(&status), None, &mut notified);
                    tokio::time::sleep(MIN_GAP).await;
                    tokio::select! {
                        changed = changes.changed() => if changed.is_err() { break },
                        _ = generations.changed() => break,
                    }
                }
            }
            Err(_) => {
                publish(&app, None, host.down().as_ref(), &mut notified);
                if generations.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

fn publish(
    app: &AppHandle,
    status: Option<&Status>,
    down: Option<&Down>,
    notified: &mut HashSet<&'static str>,
) {
    let needs = attention::attention(status, down);
    crate::tray::show(app, status, down.map(Down::why), &needs);
    if let Some(status) = status {
        let _ = app.emit(STATUS_CHANGED, status);
    } else if let Some(down) = down {
        let _ = app.emit(
            NODE_DOWN,
            NodeDown {
                why: down.why().to_owned(),
                planned: matches!(down, Down::Planned(_)),
            },
        );
    }
    for item in &needs {
        if notified.insert(item.key) {
            let _ = app
                .notification()
                .builder()
                .title(&item.title)
                .body(&item.body)
                .show();
        }
    }
    // A cause that passed may notify again if it comes back.
    notified.retain(|key| needs.iter().any(|n| n.key == *key));
}
