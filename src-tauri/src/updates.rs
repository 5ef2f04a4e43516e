//! Updates: whether a newer Spare is out, and installing it when the owner says so.
//!
//! tauri-plugin-updater does the work. It fetches the update manifest from the endpoint
//! in `tauri.conf.json` (`plugins.updater`), or from `[updates] endpoint` in the config,
//! and installs a package only when its minisign signature matches the release key built
//! into the app (`plugins.updater.pubkey`) and names the version on offer
//! (`requireSignedVersion`): a mirror or a tampered manifest can offer a version, never
//! install one, nor pass an old signed release off as a new one. Checking is optional (`[updates] check`); installing
//! always waits for the owner's click in Settings.
//!
//! Only release builds name a release server (the release workflow sets the endpoint);
//! a build without one, and without `[updates] endpoint`, never checks, and says why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use node::config::Config;
use serde::Serialize;
use tauri::AppHandle;
use tauri::Url;
use tauri_plugin_notification::NotificationExt as _;
use tauri_plugin_updater::{Error, Update, Updater, UpdaterExt as _};
use ts_rs::TS;

use crate::error::CommandError;
use crate::host::Host;

/// The first automatic check waits this long after start, so it never competes with
/// the node's own start.
const FIRST_CHECK_AFTER: Duration = Duration::from_secs(5);
/// Then one check a day.
const CHECK_EVERY: Duration = Duration::from_secs(24 * 60 * 60);
/// A release server that does not answer in this time is reported as unreachable.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What a check found (`ui/src/bindings/UpdateCheck.ts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
pub struct UpdateCheck {
    /// This Spare's version.
    pub current: String,
    /// The newer version on offer, if there is one.
    pub available: Option<AvailableUpdate>,
}

/// A newer Spare on offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
pub struct AvailableUpdate {
    /// Its version.
    pub version: String,
    /// Its release notes, as the release server gives them.
    pub notes: Option<String>,
    /// When it was published (RFC 3339), if the release server says.
    pub published: Option<String>,
}

/// The update the owner was last shown, kept so Install installs exactly that one.
#[derive(Default)]
pub struct Updates {
    offered: Mutex<Option<Update>>,
}

impl Updates {
    fn offer(&self, update: Option<Update>) {
        *self.offered.lock().unwrap_or_else(|e| e.into_inner()) = update;
    }

    fn take(&self) -> Option<Update> {
        self.offered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Why a build checks nowhere: said in Settings when the owner presses Check now, and
/// logged once instead of checking.
const NO_RELEASE_SERVER: &str = "this build of Spare has no release server (only the \
     release workflow's builds name one), so it does not check for updates: install a \
     released Spare, or set [updates] endpoint in Settings to check a server you trust";

/// Where this app asks for updates: `[updates] endpoint`, else the build's own
/// (`plugins.updater.endpoints` of its config, set by the release workflow); `None`
/// when neither names one.
fn release_server(
    configured: Option<&str>,
    built_in: Option<&serde_json::Value>,
) -> Option<String> {
    if let Some(endpoint) = configured {
        return Some(endpoint.to_owned());
    }
    built_in?
        .get("endpoints")?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_owned)
}

fn server_of(app: &AppHandle, config: &Config) -> Option<String> {
    release_server(
        config.updates.endpoint.as_deref(),
        app.config().plugins.0.get("updater"),
    )
}

fn updater(app: &AppHandle, config: &Config) -> Result<Updater, CommandError> {
    if server_of(app, config).is_none() {
        return Err(CommandError::UpdateError {
            message: NO_RELEASE_SERVER.to_owned(),
        });
    }
    let mut builder = app.updater_builder().timeout(TIMEOUT);
    if let Some(endpoint) = &config.updates.endpoint {
        let url = Url::parse(endpoint).map_err(|e| CommandError::UpdateError {
            message: format!(
                "[updates] endpoint {endpoint:?} is not a URL ({e}): fix it in Settings or \
                 the config file, or remove it to use Spare's release server"
            ),
        })?;
        builder = builder.endpoints(vec![url]).map_err(explain)?;
    }
    builder.build().map_err(explain)
}

/// The config in force, read on a blocking thread (it is a file).
async fn config(host: &Arc<Host>) -> Result<Config, CommandError> {
    let host = Arc::clone(host);
    tauri::async_runtime::spawn_blocking(move || host.config())
        .await
        .map_err(CommandError::internal)?
}

/// Asks the release server whether a newer Spare is out.
pub async fn check(
    app: &AppHandle,
    host: &Arc<Host>,
    updates: &Updates,
) -> Result<UpdateCheck, CommandError> {
    let config = config(host).await?;
    let found = updater(app, &config)?.check().await.map_err(explain)?;
    let answer = UpdateCheck {
        current: app.package_info().version.to_string(),
        available: found.as_ref().map(|update| AvailableUpdate {
            version: update.version.clone(),
            notes: update.body.clone().filter(|n| !n.trim().is_empty()),
            published: update.raw_json["pub_date"].as_str().map(str::to_owned),
        }),
    };
    updates.offer(found);
    Ok(answer)
}

/// Downloads the update last offered, checks its signature, installs it, and restarts
/// Spare into it. Nothing changes unless every step succeeds.
pub async fn install(app: &AppHandle, updates: &Updates) -> Result<(), CommandError> {
    let update = updates.take().ok_or_else(|| CommandError::UpdateError {
        message: "no update is on offer: press Check now in Settings first".into(),
    })?;
    let version = update.version.clone();
    match update.download_and_install(|_, _| {}, || {}).await {
        Ok(()) => {
            tracing::info!("installed Spare {version}; restarting");
            // The node stops (RunEvent::Exit), then the new version starts.
            app.request_restart();
            Ok(())
        }
        Err(e) => {
            // Offered again: the owner may retry after fixing what the message names.
            updates.offer(Some(update));
            Err(explain(e))
        }
    }
}

/// Checks at start and once a day while `[updates] check` is on, and notifies the owner
/// once per new version. Failures (offline, say) are logged, never shown: the owner asked
/// for nothing.
pub async fn watch(app: AppHandle, host: Arc<Host>, updates: Arc<Updates>) {
    let mut told: Option<String> = None;
    let mut said_no_server = false;
    tokio::time::sleep(FIRST_CHECK_AFTER).await;
    loop {
        let config = config(&host).await.ok();
        let checking = config.as_ref().is_some_and(|c| c.updates.check);
        let server = config.as_ref().and_then(|c| server_of(&app, c));
        if checking && server.is_none() {
            if !said_no_server {
                tracing::info!("updates: {NO_RELEASE_SERVER}");
                said_no_server = true;
            }
        } else if checking {
            match check(&app, &host, &updates).await {
                Ok(UpdateCheck {
                    available: Some(update),
                    ..
                }) if told.as_deref() != Some(update.version.as_str()) => {
                    let _ = app
                        .notification()
                        .builder()
                        .title(format!("Spare {} is available", update.version))
                        .body("Open Spare's Settings to install it. Nothing changes until you do.")
                        .show();
                    told = Some(update.version);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("update check: {e}"),
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// The updater's error in the owner's words: what happened and what to do.
fn explain(e: Error) -> CommandError {
    let message = match &e {
        Error::Reqwest(_) | Error::Network(_) => format!(
            "cannot reach the update server ({e}): check the connection, or the [updates] \
             endpoint in Settings"
        ),
        Error::ReleaseNotFound | Error::Serialization(_) | Error::Semver(_) => format!(
            "the update server did not answer with an update manifest ({e}): try again \
             later, or check the [updates] endpoint"
        ),
        Error::TargetNotFound(_) | Error::TargetsNotFound(_) => format!(
            "the update server offers no Spare for this system ({e}): install the new \
             version from the download page"
        ),
        Error::SignedVersionMismatch { .. } | Error::MissingSignedVersion => format!(
            "the update server offered a package under another version than the one it was \
             signed for, so nothing was installed ({e}): this Spare is unchanged; tell \
             whoever runs the update server"
        ),
        Error::Minisign(_) | Error::Base64(_) | Error::SignatureUtf8(_) => format!(
            "the update is not signed with Spare's release key, so nothing was installed \
             ({e}): this Spare is unchanged; tell whoever runs the update server"
        ),
        Error::InsecureTransportProtocol => {
            "the update endpoint must be an https URL: fix [updates] endpoint".to_owned()
        }
        Error::AuthenticationFailed | Error::PackageInstallFailed | Error::DebInstallFailed => {
            format!(
                "the update was downloaded and its signature checked, but installing it \
                 failed ({e}): installing a system package needs an administrator; \
                 try again, or install the package by hand"
            )
        }
        _ => format!("the update failed: {e}"),
    };
    CommandError::UpdateError { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_a_release_server_checks_nowhere_unless_the_owner_names_one() {
        let none = serde_json::json!({"pubkey": "k", "endpoints": []});
        assert_eq!(release_server(None, Some(&none)), None);
        assert_eq!(release_server(None, None), None);
        let released = serde_json::json!({"endpoints": ["https://example.org/latest.json"]});
        assert_eq!(
            release_server(None, Some(&released)).as_deref(),
            Some("https://example.org/latest.json")
        );
        assert_eq!(
            release_server(Some("https://mine.example/l.json"), Some(&none)).as_deref(),
            Some("https://mine.example/l.json")
        );
        // The shipped config names no server (the release workflow adds one), and no
        // placeholder host that a check would try to reach.
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../tauri.conf.json")).unwrap();
        assert_eq!(release_server(None, conf["plugins"].get("updater")), None);
        assert!(!include_str!("../tauri.conf.json").contains("example.invalid/spare/releases"));
    }

    #[test]
    fn every_failure_names_what_to_do() {
        let cases = [
            (Error::Network("connection refused".into()), "cannot reach"),
            (Error::ReleaseNotFound, "update manifest"),
            (
                Error::TargetNotFound("linux-x86_64".into()),
                "no Spare for this system",
            ),
            (
                Error::SignatureUtf8("x".into()),
                "not signed with Spare's release key",
            ),
            (Error::MissingSignedVersion, "another version"),
            (Error::InsecureTransportProtocol, "https"),
            (Error::PackageInstallFailed, "administrator"),
        ];
        for (error, says) in cases {
            let CommandError::UpdateError { message } = explain(error) else {
                panic!("not an update error");
            };
            assert!(message.contains(says), "{message}");
        }
    }
}
