//! Test support shared by the unit tests, the integration tests and the benchmarks:
//! a real X server (Xvfb) on a free display, real input events through `xdotool`, and
//! a GPU job long enough to watch.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compute::manifest::{Binding, BindingKind, BindingRef, Job, Step};

/// An Xvfb server on a free display, killed when dropped.
pub struct Xvfb {
    child: Child,
    /// The display name, such as `":90"`.
    pub display: String,
}

impl Xvfb {
    /// Starts one on the first free display from `:90`. `None` when Xvfb or xdotool is
    /// not installed, which is allowed only outside CI (`CI=true` fails instead:
    /// `installers/dev-setup.sh` installs them).
    pub fn start() -> Option<Xvfb> {
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
        for n in 90..130 {
            let socket = format!("/tmp/.X11-unix/X{n}");
            let lock = format!("/tmp/.X{n}-lock");
            if Path::new(&socket).exists() || Path::new(&lock).exists() {
                continue;
            }
            let display = format!(":{n}");
            let Ok(child) = Command::new(xvfb)
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "640x480x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            else {
                continue;
            };
            let mut server = Xvfb { child, display };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                // Exited: another test or user took this display first; try the next.
                if !matches!(server.child.try_wait(), Ok(None)) {
                    break;
                }
                if Path::new(&socket).exists() {
                    return Some(server);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start Xvfb on any display from :90 to :129");
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A job long enough to watch: 65,535 workgroups of 64, each invocation a few thousand
/// rounds (long by workgroup count: lavapipe stops loops past 65,535 iterations), run
/// `repeat` times.
pub fn long_job(repeat: u32) -> Job {
    let source = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x ^ (id.y * 7919u);
    for (var i = 0u; i < 2000u; i = i + 1u) {
        x = (x ^ (x >> 15u)) * 2246822519u + i;
    }
    out[(id.y * 64u + id.x) % 1024u] = x;
}
";
    let at = BindingRef {
        group: 0,
        binding: 0,
    };
    Job {
        source: source.to_owned(),
        steps: vec![Step {
            entry_point: "main".into(),
            workgroups: [1, 65_535, 1],
            repeat,
        }],
        bindings: vec![Binding {
            at,
            kind: BindingKind::StorageReadWrite,
            bytes: vec![0; 4096],
        }],
        outputs: vec![at],
    }
}
