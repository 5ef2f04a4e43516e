//! Choosing the input idle backend for this session.
//!
//! Linux: X11's screensaver extension when the session is X11. On Wayland, GNOME Mutter's
//! idle monitor over the session D-Bus first (Mutter does not offer the Wayland protocol),
//! then the compositor's `ext-idle-notify-v1` protocol (KDE Plasma 5.27+, Sway 1.8+ and
//! other wlroots 0.16+ compositors). With no display named, GNOME's monitor when a GNOME
//! session is on the bus (a daemon started by systemd). Windows: `GetLastInputInfo`.
//! macOS: `HIDIdleTime` from `ioreg`.
//!
//! Known gap: Wayland compositors with neither (older wlroots ones such as Sway 1.7, which
//! offer only KDE's older `org_kde_kwin_idle`) are not read. XWayland's screensaver
//! extension is deliberately not used as a fallback there: it only sees input sent to X11
//! windows, so it would report the owner as away while they type in native Wayland apps.

use super::InputIdle;

/// The best backend for this session, chosen once. A backend that cannot read says why
/// from `idle()`; the X11, GNOME and Wayland backends reconnect by themselves after an
/// error.
pub fn input_idle() -> Box<dyn InputIdle> {
    #[cfg(target_os = "linux")]
    {
        linux::choose(&linux::Session::from_env())
    }
    #[cfg(windows)]
    {
        Box::new(super::windows::LastInput)
    }
    #[cfg(target_os = "macos")]
    {
        Box::new(super::macos::HidIdle::new())
    }
    #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
    {
        Box::new(Unavailable {
            reason: "reading keyboard and mouse idle time is not supported on this OS".into(),
        })
    }
}

/// A backend that cannot read, and says why every time it is asked.
#[cfg(not(any(windows, target_os = "macos")))]
pub(crate) struct Unavailable {
    pub(crate) reason: String,
}

#[cfg(not(any(windows, target_os = "macos")))]
impl InputIdle for Unavailable {
    fn name(&self) -> &'static str {
        "none"
    }

    fn idle(&mut self) -> Result<std::time::Duration, String> {
        Err(self.reason.clone())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Unavailable;
    use crate::InputIdle;
    use crate::mutter::MutterIdle;
    use crate::wayland::WaylandIdle;
    use crate::x11::X11Idle;

    /// The parts of the environment that say what kind of session this is.
    pub(super) struct Session {
        pub(super) display: Option<String>,
        pub(super) wayland_display: Option<String>,
    }

    impl Session {
        pub(super) fn from_env() -> Self {
            let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
            Self {
                display: var("DISPLAY"),
                wayland_display: var("WAYLAND_DISPLAY"),
            }
        }
    }

    pub(super) fn choose(session: &Session) -> Box<dyn InputIdle> {
        let x11_session = session.wayland_display.is_none();
        if let (true, Some(display)) = (x11_session, &session.display) {
            match X11Idle::connect(display) {
                Ok(x11) => return Box::new(x11),
                // A display that is named but unreachable may come up later (the
                // daemon started before the X server); GNOME may answer meanwhile.
                Err(_) => match MutterIdle::connect() {
                    Ok(mutter) => return Box::new(mutter),
                    Err(_) => return Box::new(X11Idle::lazy(display)),
                },
            }
        }
        let mutter_error = match MutterIdle::connect() {
            Ok(mutter) => return Box::new(mutter),
            Err(e) => e,
        };
        let reason = match &session.wayland_display {
            Some(display) => match WaylandIdle::connect(display) {
                Ok(wayland) => return Box::new(wayland),
                Err(wayland_error) => wayland_reason(&mutter_error, &wayland_error),
            },
            None => no_display_reason(&mutter_error),
        };
        Box::new(Unavailable { reason })
    }

    pub(super) fn wayland_reason(mutter_error: &str, wayland_error: &str) -> String {
        format!(
            "this Wayland session has neither GNOME's idle monitor ({mutter_error}) nor \
             the ext-idle-notify-v1 protocol ({wayland_error}); Spare reads keyboard and \
             mouse idle time on Wayland through one of those two (an X11 session works too)"
        )
    }

    pub(super) fn no_display_reason(mutter_error: &str) -> String {
        format!(
            "no display: DISPLAY and WAYLAND_DISPLAY are unset and no GNOME session answers \
             on D-Bus ({mutter_error}), so there is no keyboard or mouse to watch (start \
             Spare from inside the desktop session)"
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn without_a_display_idle_is_an_error_with_a_reason() {
            let session = Session {
                display: None,
                wayland_display: None,
            };
            let mut backend = choose(&session);
            match backend.idle() {
                Err(reason) => {
                    assert_eq!(backend.name(), "none");
                    assert!(reason.starts_with("no display: DISPLAY and WAYLAND_DISPLAY"));
                }
                // Only on a machine where a GNOME session is on the bus.
                Ok(_) => assert_eq!(backend.name(), "GNOME Mutter IdleMonitor"),
            }
        }

        #[test]
        fn an_unreachable_x11_display_is_an_error_not_a_panic() {
            let session = Session {
                display: Some(":4091".into()),
                wayland_display: None,
            };
            let mut backend = choose(&session);
            if backend.name() == "X11 screensaver" {
                let reason = backend.idle().unwrap_err();
                assert!(reason.contains(":4091"), "{reason}");
            }
        }

        #[test]
        fn wayland_pointing_nowhere_is_an_error_with_a_reason() {
            let session = Session {
                display: None,
                wayland_display: Some("/nonexistent/wayland-spare-test".into()),
            };
            let mut backend = choose(&session);
            match backend.idle() {
                Err(reason) => {
                    assert_eq!(backend.name(), "none");
                    assert!(reason.contains("neither GNOME's idle monitor"), "{reason}");
                    assert!(
                        reason.contains(
                            "cannot connect to the Wayland compositor at \
                                         /nonexistent/wayland-spare-test"
                        ),
                        "{reason}"
                    );
                }
                // Only on a machine where a GNOME session is on the bus.
                Ok(_) => assert_eq!(backend.name(), "GNOME Mutter IdleMonitor"),
            }
        }

        #[test]
        fn wayland_without_either_names_both() {
            let reason = wayland_reason(
                "org.gnome.Mutter.IdleMonitor was not provided",
                "the Wayland compositor at /run/user/1000/wayland-0 lacks the \
                 ext-idle-notify-v1 protocol",
            );
            assert!(reason.contains("Mutter.IdleMonitor"), "{reason}");
            assert!(reason.contains("lacks the ext-idle-notify-v1"), "{reason}");
        }
    }
}
