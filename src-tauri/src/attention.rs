//! What the tray shows and when the owner is notified, decided from the node's status
//! alone (no I/O here, so the rules are tested as a table).

use node::{ResourceState, State, Status};

use crate::host::Down;
use ledger::MicroCredits;

/// The tray icon's state (`icons/tray-*.png`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrayState {
    /// At least one resource is lent.
    Lending,
    /// Nothing lent now; it starts by itself.
    Waiting,
    /// Paused, by the owner or by a cause that lasts (a game, the battery).
    Paused,
    /// Something needs the owner (see [`Attention`]).
    Attention,
}

/// Something that needs the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attention {
    /// Stable key: a notification is sent when a key first appears.
    pub key: &'static str,
    /// The notification's title.
    pub title: String,
    /// What happened and what to do.
    pub body: String,
}

/// What needs the owner, from the status (or from why the node is down).
pub fn attention(status: Option<&Status>, down: Option<&Down>) -> Vec<Attention> {
    let mut out = Vec::new();
    match down {
        // The full cause is technical: the notification says what it means and where
        // the rest is; the dashboard shows the cause and its fix.
        Some(Down::Key(_)) => out.push(Attention {
            key: "keyring",
            title: "Spare needs its key".into(),
            body: "Spare cannot read its node key, so nothing is lent. Open Spare's \
                   dashboard for the cause and the fix, then start the node again."
                .into(),
        }),
        Some(Down::Failed(why)) => out.push(Attention {
            key: "node_down",
            title: "Spare is not lending".into(),
            body: why.clone(),
        }),
        Some(Down::Planned(_)) | None => {}
    }
    let Some(status) = status else {
        return out;
    };
    if let Some(why) = &status.gpu.runner_stopped {
        out.push(Attention {
            key: "gpu_worker",
            title: "GPU lending paused".into(),
            body: format!(
                "The GPU itself fails (not a requester's job), so Spare paused lending it: \
                 {why}. Open the dashboard to resume, or \"Why am I not earning?\" for the \
                 checks."
            ),
        });
    }
    if status.bandwidth.quota_percent.is_some_and(|p| p >= 100) {
        out.push(Attention {
            key: "quota",
            title: "Bandwidth quota reached".into(),
            body: "Spare stopped relaying until the quota resets. Raise the quota in Settings \
                   to lend more."
                .into(),
        });
    }
    out
}

/// The tray's state: attention first, then lending, paused, waiting (also while the
/// node starts).
pub fn tray_state(status: Option<&Status>, attention: &[Attention]) -> TrayState {
    if !attention.is_empty() {
        return TrayState::Attention;
    }
    let Some(status) = status else {
        return TrayState::Waiting;
    };
    let states = [status.gpu.state.state, status.bandwidth.state.state];
    if states.contains(&State::Lending) {
        TrayState::Lending
    } else if states.iter().all(|s| *s == State::Paused) {
        TrayState::Paused
    } else {
        TrayState::Waiting
    }
}

/// One resource's line in the tray menu: `GPU: lending`, `Bandwidth: paused: game running: x`.
pub fn state_line(name: &str, state: &ResourceState) -> String {
    match &state.reason {
        None => format!("{name}: lending"),
        Some(reason) => format!("{name}: {}: {reason}", state.state),
    }
}

/// The tray's tooltip: the state and today's earnings.
pub fn tooltip(status: Option<&Status>, down: Option<&str>) -> String {
    match status {
        None => format!("Spare: {}", down.unwrap_or("not running")),
        Some(s) => {
            let today = MicroCredits(s.earned_today_micro);
            let demo = if s.demo { " (demo mode)" } else { "" };
            format!(
                "Spare{demo}\n{}\n{}\nToday: {today} credits",
                state_line("GPU", &s.gpu.state),
                state_line("Bandwidth", &s.bandwidth.state)
            )
        }
    }
}

/// Everything the tray shows: the tray sets only what changed since it last showed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrayView {
    /// The icon.
    pub state: TrayState,
    /// The tooltip.
    pub tooltip: String,
    /// The menu's first state line.
    pub gpu_line: String,
    /// The menu's second state line (empty while the node is not running).
    pub bandwidth_line: String,
    /// Resume is enabled: the owner paused something.
    pub resume: bool,
    /// "Start the node again" is enabled: the node could not start, and the owner can fix
    /// why (a planned stop or restart passes by itself).
    pub start_again: bool,
}

/// What the tray shows for `status` (or `down`, why there is none) and `attention`.
pub fn tray_view(status: Option<&Status>, down: Option<&str>, attention: &[Attention]) -> TrayView {
    let (gpu_line, bandwidth_line) = match status {
        Some(s) => (
            state_line("GPU", &s.gpu.state),
            state_line("Bandwidth", &s.bandwidth.state),
        ),
        None => (
            format!("Not running: {}", down.unwrap_or("starting")),
            String::new(),
        ),
    };
    TrayView {
        state: tray_state(status, attention),
        tooltip: tooltip(status, down),
        gpu_line,
        bandwidth_line,
        resume: paused_by_owner(status),
        start_again: status.is_none()
            && attention
                .iter()
                .any(|a| matches!(a.key, "keyring" | "node_down")),
    }
}

/// Whether the owner paused anything (the menu's Resume is enabled then).
pub fn paused_by_owner(status: Option<&Status>) -> bool {
    status.is_some_and(|s| {
        s.gpu.state.paused_by_you_until.is_some() || s.bandwidth.state.paused_by_you_until.is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(gpu: State, bandwidth: State) -> Status {
        let mut s = Status::default();
        s.gpu.state.state = gpu;
        s.bandwidth.state.state = bandwidth;
        if gpu != State::Lending {
            s.gpu.state.reason = Some("user active 3 s ago".into());
        }
        if bandwidth != State::Lending {
            s.bandwidth.state.reason = Some("by you until 18:00".into());
        }
        s
    }

    #[test]
    fn the_tray_state_follows_the_resources() {
        use State::*;
        let table = [
            (Lending, Lending, TrayState::Lending),
            (Lending, Paused, TrayState::Lending),
            (Waiting, Lending, TrayState::Lending),
            (Waiting, Waiting, TrayState::Waiting),
            (Waiting, Paused, TrayState::Waiting),
            (Paused, Paused, TrayState::Paused),
        ];
        for (gpu, bandwidth, want) in table {
            let s = status(gpu, bandwidth);
            assert_eq!(tray_state(Some(&s), &[]), want, "{gpu:?} {bandwidth:?}");
        }
        assert_eq!(tray_state(None, &[]), TrayState::Waiting);
    }

    #[test]
    fn a_failing_worker_a_full_quota_or_a_missing_key_need_the_owner() {
        let mut s = status(State::Lending, State::Lending);
        assert!(attention(Some(&s), None).is_empty());
        s.gpu.runner_stopped = Some("the GPU keeps failing (3 failures in 10 minutes)".into());
        s.bandwidth.quota_percent = Some(100);
        let found = attention(Some(&s), None);
        let keys: Vec<_> = found.iter().map(|a| a.key).collect();
        assert_eq!(keys, ["gpu_worker", "quota"]);
        assert!(found[0].body.contains("3 failures in 10 minutes"));
        assert_eq!(tray_state(Some(&s), &found), TrayState::Attention);
        s.bandwidth.quota_percent = Some(99);
        s.gpu.runner_stopped = None;
        assert!(attention(Some(&s), None).is_empty());

        let down = attention(
            None,
            Some(&Down::Key("cannot read its node key: locked".into())),
        );
        assert_eq!(down[0].key, "keyring");
        assert!(down[0].body.contains("cannot read its node key"));
        assert!(down[0].body.contains("start the node again"));
        let failed = Down::Failed("port in use".into());
        assert_eq!(attention(None, Some(&failed))[0].key, "node_down");
        let restarting = Down::Planned("restarting".into());
        assert!(attention(None, Some(&restarting)).is_empty());
    }

    #[test]
    fn start_again_is_offered_only_when_the_owner_must_fix_a_node_that_cannot_start() {
        let running = status(State::Lending, State::Paused);
        let view = tray_view(Some(&running), None, &[]);
        assert!(!view.start_again);
        assert_eq!(view.gpu_line, "GPU: lending");
        for down in [
            Down::Key("locked".into()),
            Down::Failed("port in use".into()),
        ] {
            let needs = attention(None, Some(&down));
            let view = tray_view(None, Some(down.why()), &needs);
            assert!(view.start_again, "{down:?}");
            assert_eq!(view.state, TrayState::Attention);
            assert_eq!(view.gpu_line, format!("Not running: {}", down.why()));
            assert_eq!(view.bandwidth_line, "");
        }
        let restarting = Down::Planned("the node is restarting".into());
        let view = tray_view(
            None,
            Some(restarting.why()),
            &attention(None, Some(&restarting)),
        );
        assert!(!view.start_again);
        assert_eq!(view.state, TrayState::Waiting);
    }

    #[test]
    fn the_menu_and_tooltip_say_the_state_and_reason_in_words() {
        let mut s = status(State::Waiting, State::Paused);
        s.earned_today_micro = 1_500_000;
        s.bandwidth.state.paused_by_you_until = Some("18:00".into());
        assert_eq!(
            state_line("GPU", &s.gpu.state),
            "GPU: waiting: user active 3 s ago"
        );
        let tip = tooltip(Some(&s), None);
        assert!(
            tip.contains("Bandwidth: paused: by you until 18:00"),
            "{tip}"
        );
        assert!(
            tip.contains(&format!("Today: {} credits", MicroCredits(1_500_000))),
            "{tip}"
        );
        assert!(paused_by_owner(Some(&s)));
        assert_eq!(tooltip(None, Some("locked")), "Spare: locked");
    }
}
