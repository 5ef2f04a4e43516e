//! The platform signals that feed the lending policy's `Sample`: how long the owner has
//! been away from the keyboard and mouse, and the slower readings of the machine (battery,
//! games, GPU temperature, CPU and memory use), plus the owner's schedule.
//!
//! Keyboard and mouse idle time is read on X11, under GNOME (Wayland or X11), on Wayland
//! compositors that offer `ext-idle-notify-v1` (KDE Plasma, Sway, …), on Windows and on
//! macOS; `input` says which backend a session gets.
//!
//! Each reader has one small interface and a backend per OS. A reader that cannot read
//! says why in plain words, naming the fix where there is one; nothing here panics, and
//! nothing needs a display to exist (crates that crash without one are not used).
//!
//! This crate only reads, and knows nothing of lending: deciding what to do with the
//! readings is the node's lending policy's job (`node::lending`).

mod command;
mod input;
mod machine;
mod macos;
pub mod schedule;
#[doc(hidden)]
pub mod testing;

#[cfg(target_os = "linux")]
mod mutter;
#[cfg(target_os = "linux")]
mod wayland;
#[cfg(windows)]
mod windows;
#[cfg(target_os = "linux")]
mod x11;

pub use input::input_idle;
pub use machine::{Machine, MachineReading};
pub use schedule::{Rule, Schedule};

/// Time since the last keyboard or mouse input.
///
/// Reading it must be cheap: the daemon polls it 20 times a second while a job holds the GPU,
/// to give the machine back as soon as the owner returns.
pub trait InputIdle: Send {
    /// The backend's name for diagnostics, e.g. "X11 screensaver".
    fn name(&self) -> &'static str;

    /// Time since the last input, or why it cannot be read.
    fn idle(&mut self) -> Result<std::time::Duration, String>;
}

/// The X11 backend alone, on the named display (such as `":90"`), for tests under Xvfb
/// and for diagnostics. Fails when the display cannot be reached or lacks the
/// MIT-SCREEN-SAVER extension.
#[cfg(target_os = "linux")]
pub fn x11_input_idle(display: &str) -> Result<Box<dyn InputIdle>, String> {
    Ok(Box::new(x11::X11Idle::connect(display)?))
}

/// The Wayland `ext-idle-notify-v1` backend alone, on the named socket (`WAYLAND_DISPLAY`'s
/// value: a name under `XDG_RUNTIME_DIR` or an absolute path), for tests under a headless
/// compositor and for diagnostics. Fails when the compositor cannot be reached or lacks
/// the protocol.
#[cfg(target_os = "linux")]
pub fn wayland_input_idle(display: &str) -> Result<Box<dyn InputIdle>, String> {
    Ok(Box::new(wayland::WaylandIdle::connect(display)?))
}
