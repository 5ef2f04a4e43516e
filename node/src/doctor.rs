//! "Why am I not earning?": each thing lending needs, checked, as pass or fail with
//! the fix. `spare doctor` prints them; the tray app shows the same list.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::identity::{self, KeyStore};
use crate::{ResourceState, Status, control};

/// One check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Check {
    /// What was checked, e.g. `keyring`.
    pub name: &'static str,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do, when it failed.
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Runs every check. `config` is the loaded config or why it could not be loaded.
pub fn run(config: Result<&Config, String>, store: &KeyStore, data_dir: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match config {
        Ok(config) => {
            checks.push(pass("config", "the config file is valid"));
            config.clone()
        }
        Err(why) => {
            checks.push(fail(
                "config",
                why,
                "fix the lines named (`spare config check` lists them); the node cannot start \
                 until then",
            ));
            Config::default()
        }
    };
    checks.push(match identity::load_or_create(store) {
        Ok((identity, _)) => pass(
            "keyring",
            format!("node key found in {store}: node {}", identity.id()),
        ),
        Err(e) => fail(
            "keyring",
            e.to_string(),
            "unlock or install the OS keyring (on Linux: gnome-keyring or KeePassXC with \
             Secret Service), or keep the key in a file with --key-file",
        ),
    });
    checks.push(gpu_check(&config));
    let status = control::request(&control::socket_path(data_dir), &control::Request::Status)
        .and_then(|v| Ok(serde_json::from_value::<Status>(v)?));
    match status {
        Err(e) => checks.push(fail(
            "node",
            format!("{e:#}"),
            "start the node: `spare daemon` (or the tray app)",
        )),
        Ok(status) => {
            checks.push(pass(
                "node",
                format!(
                    "running as node {} on network {}",
                    status.node_id, status.network
                ),
            ));
            checks.push(reachable(&status));
            checks.push(policy("gpu lending", &status.gpu.state, &config));
            checks.push(policy(
                "bandwidth lending",
                &status.bandwidth.state,
                &config,
            ));
            checks.push(match status.bandwidth.quota_percent {
                Some(p) if p >= 100 => fail(
                    "quota",
                    "the bandwidth quota is used up",
                    "wait for the next day or month, or raise bandwidth.daily_quota_mb / \
                     bandwidth.monthly_quota_gb",
                ),
                Some(p) => pass("quota", format!("{p} % of the bandwidth quota used")),
                None => pass("quota", "no bandwidth quota set"),
            });
        }
    }
    checks
}

fn gpu_check(config: &Config) -> Check {
    if !config.gpu.enabled {
        return fail(
            "gpu",
            "GPU lending is off in the settings",
            "set gpu.enabled = true to lend the GPU",
        );
    }
    let adapters = compute::gpu::adapters();
    match adapters.first() {
        None => fail(
            "gpu",
            "no GPU adapter found (Vulkan, Metal or DX12)",
            "install the GPU's driver; on Linux, Vulkan comes with mesa-vulkan-drivers or the \
             vendor's driver",
        ),
        Some(a) if a.class.device_type == "cpu" => pass(
            "gpu",
            format!(
                "only a software adapter: {} (jobs run on the CPU, slowly)",
                a.class.adapter
            ),
        ),
        Some(a) => pass("gpu", format!("{} ({})", a.class.adapter, a.class.backend)),
    }
}

/// Whether this machine can reach the node's endpoint: the job service answers at the
/// listening port over loopback.
fn reachable(status: &Status) -> Check {
    let Ok(listening) = status.listening.parse::<SocketAddr>() else {
        return fail(
            "endpoint",
            format!("the node reports no usable address ({})", status.listening),
            "restart the node",
        );
    };
    let local = SocketAddr::from(([127, 0, 0, 1], listening.port()));
    let Ok(ticket) = status.ticket.parse::<relay::ticket::Ticket>() else {
        return fail(
            "endpoint",
            "the node's ticket is invalid",
            "restart the node",
        );
    };
    let Some(probe) = relay::ticket::Ticket::new(ticket.node, vec![local]) else {
        return fail(
            "endpoint",
            "the node's ticket is invalid",
            "restart the node",
        );
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    job_protocol::rate_card(&probe, &key),
                )
                .await
                .map_err(|_| "no answer in 10 s".to_owned())?
                .map_err(|e| e.to_string())
            })
        });
    match answered {
        Ok(_) => pass(
            "endpoint",
            format!("listening on {listening} (UDP) and answering from this machine"),
        ),
        Err(e) => fail(
            "endpoint",
            format!("listening on {listening} but not answering: {e}"),
            "check that no firewall on this machine drops UDP to that port",
        ),
    }
}

fn policy(name: &'static str, state: &ResourceState, config: &Config) -> Check {
    let Some(reason) = &state.reason else {
        return pass(name, "lending now");
    };
    let detail = format!("{}: {reason}", state.state);
    let fix = if reason.starts_with("user active") {
        format!(
            "lending starts after {} minutes without keyboard or mouse input \
             (lending.idle_minutes)",
            config.lending.idle_minutes
        )
    } else if reason.starts_with("by you") {
        "resume with `spare resume` (or from the tray menu)".into()
    } else if reason.contains("off in your settings") {
        "turn it on in the settings (gpu.enabled / bandwidth.enabled)".into()
    } else if reason.starts_with("game running") {
        "lending resumes when the game closes; remove it from lending.exclusive_apps if it \
         should not pause lending"
            .into()
    } else if reason == "on battery" {
        "plug the computer in".into()
    } else if reason.starts_with("outside your schedule") {
        "lending resumes inside lending.schedule; widen it to lend more".into()
    } else if reason.starts_with("resting") {
        "the duty cycle limit (gpu.max_duty_cycle_percent) is resting the GPU; it resumes \
         by itself"
            .into()
    } else if reason.starts_with("GPU at") {
        "lending resumes when the GPU cools down (gpu.max_temperature_c)".into()
    } else if reason.starts_with("the GPU ") {
        "check the GPU's driver (the gpu check above, and `spare logs`); Spare tries again by \
         itself, or resume now with `spare resume gpu` (or Resume in the dashboard)"
            .into()
    } else if reason.contains("quota") {
        "raise bandwidth.daily_quota_mb / bandwidth.monthly_quota_gb, or wait for the next \
         period"
            .into()
    } else {
        "see the reason".into()
    };
    fail(name, detail, fix)
}
