//! Running a small helper program (`nvidia-smi`, `ioreg`, `pmset`) with a time limit, so
//! a tool that hangs (as `nvidia-smi` can when the driver is wedged) never stalls a reading.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `program` with `args` and returns its standard output, or why not. The program is
/// killed if it runs longer than `limit`.
pub(crate) fn output(program: &Path, args: &[&str], limit: Duration) -> Result<String, String> {
    let name = program.display();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    // Read on another thread: a program whose output fills the pipe would otherwise
    // block before it exits.
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                // Not joined: a grandchild may still hold the pipe open; the thread ends
                // when it closes.
                drop(reader);
                return Err(format!(
                    "{name} did not answer within {} s",
                    limit.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for {name}: {e}")),
        }
    };
    let text = reader
        .join()
        .map_err(|_| format!("reading {name}'s output failed"))?;
    if !status.success() {
        return Err(format!("{name} failed ({status})"));
    }
    Ok(text)
}

/// Where `program` is on `PATH`, if anywhere.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            let plain = dir.join(program);
            let exe = dir.join(format!("{program}.exe"));
            [plain, exe]
        })
        .find(|candidate| candidate.is_file())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn runs_a_program_and_kills_one_that_hangs() {
        let sh = Path::new("/bin/sh");
        let out = output(sh, &["-c", "echo hello"], Duration::from_secs(5)).unwrap();
        assert_eq!(out, "hello\n");

        let started = Instant::now();
        let err = output(sh, &["-c", "sleep 10"], Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let err = output(sh, &["-c", "exit 3"], Duration::from_secs(5)).unwrap_err();
        assert!(err.contains("failed"), "{err}");
        let err = output(Path::new("/nonexistent/tool"), &[], Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-no-such-program-here").is_none());
    }
}
