//! Test support shared by the unit tests, the integration tests and the benchmarks of
//! this crate and the crates above it: a real X server (Xvfb) on a free display, and
//! real input events through `xdotool`.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An Xvfb server on a free display, killed when dropped.
pub struct Xvfb {
    child: Child,
    /// The display name, such as `":90"`.
    pub display: String,
}

impl Xvfb {
    /// Starts one on a free display, which Xvfb picks itself (`-displayfd`: it also
    /// clears lock files that dead servers left behind). `None` when Xvfb or xdotool
    /// is not installed, which is allowed only outside CI (`CI=true` fails instead:
    /// `installers/dev-setup.sh` installs them).
    pub fn start() -> Option<Xvfb> {
        use std::io::BufRead as _;
        let xvfb = Path::new("/usr/bin/Xvfb");
        if !xvfb.exists() || !Path::new("/usr/bin/xdotool").exists() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "Xvfb and xdotool are needed for the X11 tests (installers/dev-setup.sh \
                 installs them)"
            );
            eprintln!("note: skipping an X11 test: Xvfb or xdotool is not installed");
            return None;
        }
        let mut child = Command::new(xvfb)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x480x24",
                "-nolisten",
                "tcp",
                // No server reset when the last client leaves: a client that connects
                // during one is refused ("cannot open display").
                "-noreset",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Xvfb: {e}"));
        // Xvfb prints the display number once it accepts connections.
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut line));
        let number = line.trim();
        if !matches!(read, Some(Ok(n)) if n > 0) || number.parse::<u32>().is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Xvfb did not report a display: {read:?} {line:?}");
        }
        Some(Xvfb {
            display: format!(":{number}"),
            child,
        })
    }

    /// Moves the pointer: a real input event for the server.
    pub fn move_pointer(&self, x: u32, y: u32) {
        let status = Command::new("xdotool")
            .args(["mousemove", "--screen", "0", &x.to_string(), &y.to_string()])
            .env("DISPLAY", &self.display)
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "xdotool failed: {status:?}"
        );
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its lock file and socket; SIGKILL would leave them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
