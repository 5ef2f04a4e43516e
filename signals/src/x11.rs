//! Input idle time on X11: the MIT-SCREEN-SAVER extension's `QueryInfo`, through the
//! pure-Rust `x11rb` connection (no Xlib, so no crash when there is no display).
//!
//! One connection is kept and reused; after an error it is dropped and the next reading
//! connects again (the X server restarted, or had not started yet).

use std::time::Duration;

use x11rb::connection::RequestConnection;
use x11rb::protocol::screensaver::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{Atom, AtomEnum, ConnectionExt as _, Window};
use x11rb::rust_connection::RustConnection;

use super::InputIdle;

/// Reads the X server's time since the last input event.
pub(crate) struct X11Idle {
    display: String,
    connection: Option<(RustConnection, Window)>,
}

impl X11Idle {
    /// Connects now, so that a display that cannot be used is reported at once.
    pub(crate) fn connect(display: &str) -> Result<Self, String> {
        let mut idle = Self::lazy(display);
        idle.idle()?;
        Ok(idle)
    }

    /// Connects on the first reading.
    pub(crate) fn lazy(display: &str) -> Self {
        Self {
            display: display.to_owned(),
            connection: None,
        }
    }

    fn open(&self) -> Result<(RustConnection, Window), String> {
        let display = &self.display;
        let (connection, screen) = x11rb::connect(Some(display))
            .map_err(|e| format!("cannot connect to X display {display}: {e}"))?;
        let present = connection
            .extension_information(screensaver::X11_EXTENSION_NAME)
            .map_err(|e| format!("X display {display}: {e}"))?;
        if present.is_none() {
            return Err(format!(
                "X display {display} lacks the MIT-SCREEN-SAVER extension, which tells the \
                 time since the last input"
            ));
        }
        let root = x11rb::connection::Connection::setup(&connection)
            .roots
            .get(screen)
            .map(|s| s.root)
            .ok_or_else(|| format!("X display {display} has no screen {screen}"))?;
        Ok((connection, root))
    }

    fn query(connection: &RustConnection, root: Window) -> Result<Duration, String> {
        let reply = connection
            .screensaver_query_info(root)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?;
        Ok(Duration::from_millis(u64::from(reply.ms_since_user_input)))
    }
}

impl InputIdle for X11Idle {
    fn name(&self) -> &'static str {
        "X11 screensaver"
    }

    fn idle(&mut self) -> Result<Duration, String> {
        let (connection, root) = match self.connection.take() {
            Some(open) => open,
            None => self.open()?,
        };
        match Self::query(&connection, root) {
            Ok(idle) => {
                self.connection = Some((connection, root));
                Ok(idle)
            }
            // The connection is dropped here; the next reading opens a new one.
            Err(e) => Err(format!("X display {}: {e}", self.display)),
        }
    }
}

/// Whether the focused window is full-screen (a game or a film), from the window
/// manager's EWMH hints: `_NET_ACTIVE_WINDOW` on the root window, then that window's
/// `_NET_WM_STATE`. Without a window manager that sets them, nothing is found.
pub(crate) struct FullScreen {
    display: String,
    connection: Option<(RustConnection, Window, Atoms)>,
}

/// The atoms the full-screen check asks about, interned once per connection.
#[derive(Clone, Copy)]
struct Atoms {
    active_window: Atom,
    wm_state: Atom,
    fullscreen: Atom,
    wm_name: Atom,
}

impl FullScreen {
    /// Connects on the first check.
    pub(crate) fn new(display: &str) -> Self {
        Self {
            display: display.to_owned(),
            connection: None,
        }
    }

    /// The focused window's name and "(full-screen window)" when it is full-screen;
    /// `None` when it is not, or when the display cannot be read (the input idle reader
    /// reports display trouble; this one is only a hint).
    pub(crate) fn check(&mut self) -> Option<String> {
        let (connection, root, atoms) = match self.connection.take() {
            Some(open) => open,
            None => {
                let (connection, screen) = x11rb::connect(Some(&self.display)).ok()?;
                let root = x11rb::connection::Connection::setup(&connection)
                    .roots
                    .get(screen)?
                    .root;
                let atoms = Atoms::intern(&connection).ok()?;
                (connection, root, atoms)
            }
        };
        match Self::query(&connection, root, atoms) {
            Ok(found) => {
                self.connection = Some((connection, root, atoms));
                found
            }
            Err(_) => None,
        }
    }

    fn query(
        connection: &RustConnection,
        root: Window,
        atoms: Atoms,
    ) -> Result<Option<String>, Box<dyn std::error::Error>> {
        let active = connection
            .get_property(false, root, atoms.active_window, AtomEnum::WINDOW, 0, 1)?
            .reply()?;
        let Some(window) = active
            .value32()
            .and_then(|mut v| v.next())
            .filter(|w| *w != 0)
        else {
            return Ok(None);
        };
        let state = connection
            .get_property(false, window, atoms.wm_state, AtomEnum::ATOM, 0, 64)?
            .reply()?;
        let full_screen = state
            .value32()
            .is_some_and(|mut atoms_set| atoms_set.any(|a| a == atoms.fullscreen));
        if !full_screen {
            return Ok(None);
        }
        let name = connection
            .get_property(false, window, atoms.wm_name, AtomEnum::ANY, 0, 256)?
            .reply()?;
        let name = String::from_utf8_lossy(&name.value).trim().to_owned();
        let name = if name.is_empty() {
            "a window".to_owned()
        } else {
            name
        };
        Ok(Some(format!("{name} (full-screen window)")))
    }
}

impl Atoms {
    fn intern(connection: &RustConnection) -> Result<Self, Box<dyn std::error::Error>> {
        let atom = |name: &[u8]| -> Result<Atom, Box<dyn std::error::Error>> {
            Ok(connection.intern_atom(false, name)?.reply()?.atom)
        };
        Ok(Self {
            active_window: atom(b"_NET_ACTIVE_WINDOW")?,
            wm_state: atom(b"_NET_WM_STATE")?,
            fullscreen: atom(b"_NET_WM_STATE_FULLSCREEN")?,
            wm_name: atom(b"_NET_WM_NAME")?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use crate::x11_input_idle;

    pub(crate) use crate::testing::Xvfb;

    #[test]
    fn idle_time_grows_and_drops_on_input_under_xvfb() {
        let Some(xvfb) = Xvfb::start() else { return };
        let mut idle = x11_input_idle(&xvfb.display).expect("connect to Xvfb");
        assert_eq!(idle.name(), "X11 screensaver");

        std::thread::sleep(Duration::from_millis(1200));
        let before = idle.idle().expect("read idle time");
        assert!(before >= Duration::from_secs(1), "idle only {before:?}");

        xvfb.move_pointer(100, 120);
        let after = idle.idle().expect("read idle time after input");
        assert!(after < Duration::from_millis(500), "idle still {after:?}");
    }

    #[test]
    fn a_display_that_went_away_is_an_error_and_reconnects() {
        let Some(xvfb) = Xvfb::start() else { return };
        let display = xvfb.display.clone();
        let mut idle = x11_input_idle(&display).expect("connect to Xvfb");
        drop(xvfb);
        let err = idle.idle().unwrap_err();
        assert!(err.contains(&display), "{err}");
        // Still no server: connecting again fails with a reason, every time.
        let err = idle.idle().unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }

    #[test]
    fn finds_a_full_screen_active_window_under_xvfb() {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::{
            AtomEnum, ConnectionExt as _, CreateWindowAux, PropMode, WindowClass,
        };
        use x11rb::wrapper::ConnectionExt as _;

        let Some(xvfb) = Xvfb::start() else { return };
        let mut check = super::FullScreen::new(&xvfb.display);
        assert_eq!(check.check(), None, "no window manager, no active window");

        // Play the window manager: one window, marked active and full-screen.
        let (conn, screen) = x11rb::connect(Some(&xvfb.display)).unwrap();
        let root = conn.setup().roots[screen].root;
        let atom = |name: &[u8]| conn.intern_atom(false, name).unwrap().reply().unwrap().atom;
        let (active, state, fullscreen, name) = (
            atom(b"_NET_ACTIVE_WINDOW"),
            atom(b"_NET_WM_STATE"),
            atom(b"_NET_WM_STATE_FULLSCREEN"),
            atom(b"_NET_WM_NAME"),
        );
        let utf8 = atom(b"UTF8_STRING");
        let window = conn.generate_id().unwrap();
        conn.create_window(
            0,
            window,
            root,
            0,
            0,
            640,
            480,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )
        .unwrap();
        conn.change_property8(PropMode::REPLACE, window, name, utf8, "Big Game".as_bytes())
            .unwrap();
        conn.change_property32(PropMode::REPLACE, root, active, AtomEnum::WINDOW, &[window])
            .unwrap();
        conn.sync().unwrap();
        assert_eq!(check.check(), None, "active but not full-screen");

        conn.change_property32(
            PropMode::REPLACE,
            window,
            state,
            AtomEnum::ATOM,
            &[fullscreen],
        )
        .unwrap();
        conn.sync().unwrap();
        assert_eq!(
            check.check().as_deref(),
            Some("Big Game (full-screen window)")
        );

        conn.change_property32(PropMode::REPLACE, window, state, AtomEnum::ATOM, &[])
            .unwrap();
        conn.sync().unwrap();
        assert_eq!(check.check(), None, "left full-screen");
    }

    #[test]
    fn no_server_is_an_error_not_a_panic() {
        let err = x11_input_idle(":4093").err().expect("no server on :4093");
        assert!(err.contains("cannot connect to X display :4093"), "{err}");
    }
}
