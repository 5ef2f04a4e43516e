//! Choosing the input idle backend for this session.
//!
//! Linux: X11's screensaver extension when the session is X11; GNOME Mutter's idle
//! monitor over the session D-Bus on Wayland, or when no display is named but a GNOME
//! session is on the bus (a daemon started by systemd). Windows: `GetLastInputInfo`.
//! macOS: `HIDIdleTime` from `ioreg`.
//!
//! Known gap: Wayland compositors other than GNOME's (KDE, Sway, …) are not read yet; the
//! `ext-idle-notify-v1` protocol would cover them. XWayland's screensaver extension is
//! deliberately not used as a fallback there: it only sees input sent to X11 windows, so
//! it would report the owner as away while they type in native Wayland apps.

use super::InputIdle;

/// The best backend for this session, chosen once. A backend that cannot read says why
/// from `idle()`; the X11 and GNOME backends reconnect by themselves after an error.
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
    use crate::signals::InputIdle;
    use crate::signals::mutter::MutterIdle;
    use crate::signals::x11::X11Idle;

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
        match MutterIdle::connect() {
            Ok(mutter) => Box::new(mutter),
            Err(mutter_error) => Box::new(Unavailable {
                reason: if session.wayland_display.is_some() {
                    wayland_reason(&mutter_error)
                } else {
                    no_display_reason(&mutter_error)
                },
            }),
        }
    }

    pub(super) fn wayland_reason(mutter_error: &str) -> String {
        format!(
            "this Wayland session has no GNOME idle monitor ({mutter_error}); Spare can read \
             keyboard and mouse idle time on Wayland only under GNOME so far (an X11 \
             session works too)"
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
        fn wayland_without_gnome_names_the_gap() {
            let reason = wayland_reason("org.gnome.Mutter.IdleMonitor was not provided");
            assert!(reason.contains("only under GNOME"), "{reason}");
        }
    }
}
