//! Input idle time under GNOME (Wayland or X11): `org.gnome.Mutter.IdleMonitor`'s
//! `GetIdletime` on the session D-Bus, through zbus's blocking API.
//!
//! One connection is kept and reused; after an error it is dropped and the next reading
//! connects again (GNOME Shell restarted, or the session bus went away).

use std::time::Duration;

use zbus::blocking::Connection;

use super::InputIdle;

const SERVICE: &str = "org.gnome.Mutter.IdleMonitor";
const PATH: &str = "/org/gnome/Mutter/IdleMonitor/Core";

/// Asks GNOME's compositor for the time since the last input.
pub(crate) struct MutterIdle {
    connection: Option<Connection>,
}

impl MutterIdle {
    /// Connects and reads once, so that a session without GNOME is reported at once.
    pub(crate) fn connect() -> Result<Self, String> {
        let mut idle = Self { connection: None };
        idle.idle()?;
        Ok(idle)
    }

    fn query(connection: &Connection) -> Result<Duration, String> {
        let reply = connection
            .call_method(Some(SERVICE), PATH, Some(SERVICE), "GetIdletime", &())
            .map_err(|e| format!("{SERVICE}: {e}"))?;
        let millis: u64 = reply
            .body()
            .deserialize()
            .map_err(|e| format!("{SERVICE} answered GetIdletime oddly: {e}"))?;
        Ok(Duration::from_millis(millis))
    }
}

impl InputIdle for MutterIdle {
    fn name(&self) -> &'static str {
        "GNOME Mutter IdleMonitor"
    }

    fn idle(&mut self) -> Result<Duration, String> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                Connection::session().map_err(|e| format!("cannot reach the session D-Bus: {e}"))?
            }
        };
        let idle = Self::query(&connection)?;
        self.connection = Some(connection);
        Ok(idle)
    }
}
