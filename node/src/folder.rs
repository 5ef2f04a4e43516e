//! The data folder: its lock (one node per folder), its privacy, and the small state
//! files the node keeps there (the owner's pauses, the quotas' use, who is charged for
//! lost GPU workers), each written whole
//! to a temporary file and renamed into place, so a crash leaves the old file or the new
//! one, never half of one.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::lending::{LendingPolicy, PauseUntil, Resource};

/// Another node holds the data folder's lock.
#[derive(Debug)]
pub(crate) struct Busy {
    /// Its process id as it wrote it (empty when it wrote none).
    pub pid: String,
}

/// Takes the data folder's lock (one node per data folder): the lock file, held for
/// the node's life, or `Busy` when another node holds it.
pub(crate) fn take_lock(dir: &Path) -> anyhow::Result<Result<File, Busy>> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = dir.join("node.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if file.try_lock().is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        return Ok(Err(Busy {
            pid: pid.trim().to_owned(),
        }));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(Ok(file))
}

/// Creates the data folder, private to its owner.
pub(crate) fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// Writes `value` as JSON to `file` whole: a temporary file beside it, renamed over it.
fn write_whole(file: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let partial = file.with_extension("partial");
    let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    std::fs::write(&partial, json)?;
    std::fs::rename(&partial, file)
}

/// Pauses as saved: wall-clock times, so they survive a restart.
#[derive(Default, Serialize, Deserialize)]
struct SavedPauses {
    gpu: Option<SavedPause>,
    bandwidth: Option<SavedPause>,
}

#[derive(Serialize, Deserialize)]
struct SavedPause {
    /// Unix milliseconds; `None`: until resumed.
    until_ms: Option<u64>,
    label: String,
}

pub(crate) fn restore_pauses(file: &Path, policy: &mut LendingPolicy) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let Ok(saved) = serde_json::from_str::<SavedPauses>(&text) else {
        tracing::warn!("ignoring unreadable {}", file.display());
        return;
    };
    let now_ms = job_protocol::now_ms();
    for (resource, pause) in [
        (Resource::Gpu, saved.gpu),
        (Resource::Bandwidth, saved.bandwidth),
    ] {
        let Some(pause) = pause else { continue };
        let until = match pause.until_ms {
            None => PauseUntil::Resumed,
            Some(ms) if ms <= now_ms => continue,
            Some(ms) => PauseUntil::Time(
                Instant::now() + Duration::from_millis(ms - now_ms),
                pause.label,
            ),
        };
        policy.pause(Some(resource), until);
    }
}

pub(crate) fn save_pauses(file: &Path, policy: &LendingPolicy) {
    let now = Instant::now();
    let now_ms = job_protocol::now_ms();
    let saved = |resource| {
        policy.paused(resource).map(|p| match p {
            PauseUntil::Resumed => SavedPause {
                until_ms: None,
                label: "you resume".into(),
            },
            PauseUntil::Time(at, label) => SavedPause {
                until_ms: Some(now_ms + at.saturating_duration_since(now).as_millis() as u64),
                label: label.clone(),
            },
        })
    };
    let pauses = SavedPauses {
        gpu: saved(Resource::Gpu),
        bandwidth: saved(Resource::Bandwidth),
    };
    if let Err(e) = write_whole(file, &pauses) {
        tracing::error!("cannot save pauses to {}: {e}", file.display());
    }
}

/// Takes back who was charged for lost GPU workers before the restart.
pub(crate) fn restore_blame(file: &Path, blame: &mut crate::blame::Blame) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    match serde_json::from_str(&text) {
        Ok(saved) => blame.restore(saved, Instant::now(), job_protocol::now_ms()),
        Err(e) => tracing::warn!("ignoring unreadable {}: {e}", file.display()),
    }
}

/// Saves who is charged for lost GPU workers.
pub(crate) fn save_blame(file: &Path, saved: &crate::blame::Saved) {
    if let Err(e) = write_whole(file, saved) {
        tracing::error!("cannot save {}: {e}", file.display());
    }
}

/// The quotas' use as saved: the UTC day and month it was counted in.
#[derive(Serialize, Deserialize)]
struct SavedQuota {
    day: i64,
    month: i64,
    day_used: u64,
    month_used: u64,
}

pub(crate) fn restore_quota(file: &Path) -> Option<(relay::limits::Period, u64, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    let Ok(saved) = serde_json::from_str::<SavedQuota>(&text) else {
        tracing::warn!("ignoring unreadable {}", file.display());
        return None;
    };
    let period = relay::limits::Period {
        day: saved.day,
        month: saved.month,
    };
    Some((period, saved.day_used, saved.month_used))
}

pub(crate) fn save_quota(
    file: &Path,
    (period, day_used, month_used): (relay::limits::Period, u64, u64),
) {
    let saved = SavedQuota {
        day: period.day,
        month: period.month,
        day_used,
        month_used,
    };
    if let Err(e) = write_whole(file, &saved) {
        tracing::error!("cannot save the quota's use to {}: {e}", file.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lending::Limits;

    #[test]
    fn a_second_node_on_the_same_folder_is_refused_with_the_first_ones_process() {
        let dir = tempfile::tempdir().unwrap();
        let _held = take_lock(dir.path()).unwrap().unwrap();
        let busy = take_lock(dir.path()).unwrap().unwrap_err();
        assert_eq!(busy.pid, std::process::id().to_string());
    }

    #[test]
    fn pauses_and_quota_survive_a_restart_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pauses.json");
        let mut policy = LendingPolicy::new(Limits::from_config(&Default::default()));
        policy.pause(Some(Resource::Bandwidth), PauseUntil::Resumed);
        save_pauses(&file, &policy);
        let mut restored = LendingPolicy::new(Limits::from_config(&Default::default()));
        restore_pauses(&file, &mut restored);
        assert!(restored.paused(Resource::Bandwidth).is_some());
        assert!(restored.paused(Resource::Gpu).is_none());

        std::fs::write(&file, "{not json").unwrap();
        let mut untouched = LendingPolicy::new(Limits::from_config(&Default::default()));
        restore_pauses(&file, &mut untouched);
        assert!(untouched.paused(Resource::Bandwidth).is_none());

        let quota = dir.path().join("quota.json");
        let period = relay::limits::Period {
            day: 20_000,
            month: 657,
        };
        save_quota(&quota, (period, 5, 7));
        let (back, day, month) = restore_quota(&quota).unwrap();
        assert_eq!((back.day, back.month, day, month), (20_000, 657, 5, 7));
        std::fs::write(&quota, "[]").unwrap();
        assert!(restore_quota(&quota).is_none());
    }
}
