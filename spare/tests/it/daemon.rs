//! `spare daemon` as a real process: demo mode fills the status and the ledger with
//! real work, the control channel pauses and resumes, serves only its owner, and a
//! second daemon on the same data folder refuses to start. `spare job submit` runs a
//! job on a daemon over QUIC and the order becomes a ledger entry.

#[cfg(target_os = "linux")]
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Kills the daemon when the test ends, pass or fail.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(spare: &Spare, extra: &[&str]) -> Daemon {
    let key = spare.path("node.key");
    let child = spare
        .command()
        .args([
            "--key-file",
            path_str(&key),
            "daemon",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    wait_for(
        Duration::from_secs(30),
        "the daemon's control channel",
        || spare.run(&["status", "--json"]).code == Some(0),
    );
    daemon
}

fn status(spare: &Spare) -> serde_json::Value {
    let run = spare.run(&["status", "--json"]).ok();
    serde_json::from_str(&run.stdout).unwrap()
}

#[track_caller]
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(target_os = "linux")]
fn data_dir(spare: &Spare) -> PathBuf {
    spare.home.path().join(".local/share/spare")
}

#[test]
fn demo_mode_fills_status_and_ledger_and_pausing_keeps_the_credit() {
    let spare = Spare::new();
    let _daemon = start_daemon(&spare, &["--demo"]);
    wait_for(
        Duration::from_secs(120),
        "a demo job and relay traffic",
        || {
            let s = status(&spare);
            s["gpu"]["jobs_done"].as_u64() >= Some(1)
                && s["gpu"]["demo_today_micro"].as_i64() > Some(0)
                // Enough relayed for a few usage promises (every 256 KiB in demo mode).
                && s["bandwidth"]["relayed_up_bytes"].as_u64() > Some(1_000_000)
        },
    );
    let s = status(&spare);
    assert_eq!(s["schema"], 1);
    assert_eq!(s["network"], "demo");
    assert_eq!(s["gpu"]["state"], "lending", "{s}");
    assert_eq!(
        s["earned_today_micro"], 0,
        "demo work counted as earnings: {s}"
    );

    // Pause the GPU for an hour: the state says so, with the time.
    let run = spare.run(&["pause", "gpu", "1h"]).ok();
    assert!(
        run.stdout.contains("GPU        paused: by you until"),
        "{}",
        run.stdout
    );
    let s = status(&spare);
    assert_eq!(s["gpu"]["state"], "paused");
    assert!(s["gpu"]["paused_by_you_until"].is_string(), "{s}");
    assert_eq!(s["bandwidth"]["state"], "lending");

    // Pausing bandwidth ends the relay sessions, and they are recorded: credit kept.
    // With --json the answer is the status, as JSON.
    let run = spare.run(&["pause", "bandwidth", "--json"]).ok();
    let paused: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(paused["bandwidth"]["state"], "paused", "{paused}");
    wait_for(
        Duration::from_secs(20),
        "a recorded demo relay session",
        || {
            let s = status(&spare);
            s["bandwidth"]["state"] == "paused"
                && s["bandwidth"]["demo_today_micro"].as_i64() > Some(0)
        },
    );
    let run = spare.run(&["resume", "--json"]).ok();
    let resumed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        resumed["gpu"]["paused_by_you_until"],
        serde_json::Value::Null,
        "{resumed}"
    );
    wait_for(Duration::from_secs(5), "lending after resume", || {
        let s = status(&spare);
        s["gpu"]["state"] == "lending" && s["bandwidth"]["state"] == "lending"
    });

    // The log tells the story a person would follow: the start, a job from acceptance
    // to its ledger entry, a relay session from start to record, the owner's pauses.
    let log = spare.run(&["logs", "-n", "100000"]).ok().stdout;
    for line in [
        "node started in demo mode",
        "job accepted and queued",
        "job done; sending its outputs",
        "GPU job recorded",
        "relay session started",
        "relay session ended",
        "relay session recorded",
        "the owner paused GPU until",
        "the owner resumed GPU and bandwidth",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }

    // The ledger holds it all as demo, verifiably; the earnings report keeps it apart.
    let run = spare.run(&["ledger", "verify"]).ok();
    assert!(run.stdout.contains("is intact"), "{}", run.stdout);
    let run = spare.run(&["earnings", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["all_time_earned_micro"], 0);
    assert!(
        report["demo_in_range"]["gpu_jobs"].as_u64() >= Some(1),
        "{report}"
    );
    assert!(
        report["demo_in_range"]["relay_sessions"].as_u64() >= Some(1),
        "{report}"
    );

    // The doctor finds the node, its endpoint and lending all well.
    let run = spare.run(&[
        "--key-file",
        path_str(&spare.path("node.key")),
        "doctor",
        "--json",
    ]);
    let checks: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    for name in [
        "node",
        "endpoint",
        "gpu lending",
        "bandwidth lending",
        "keyring",
    ] {
        let check = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks}"));
        assert_eq!(check["ok"], true, "{check}");
    }
}

#[test]
fn a_second_daemon_on_the_same_data_folder_refuses_to_start() {
    let spare = Spare::new();
    let _first = start_daemon(&spare, &[]);
    let run = spare
        .run(&[
            "--key-file",
            path_str(&spare.path("node.key")),
            "daemon",
            "--bind",
            "127.0.0.1:0",
        ])
        .fails();
    assert!(
        run.stderr
            .contains("another Spare node is already running with the data folder")
            && run.stderr.contains("(process "),
        "{}",
        run.stderr
    );
    // The first one is unharmed.
    assert_eq!(status(&spare)["schema"], 1);
}

#[cfg(target_os = "linux")]
/// Runs `spare ARGS` as the unprivileged user `nobody`.
fn as_nobody(spare: &Spare, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_spare"),
    ])
    .args(args)
    .env("HOME", "/nonexistent")
    .env("XDG_DATA_HOME", spare.home.path().join(".local/share"));
    Run::from(cmd.output().unwrap())
}

#[cfg(target_os = "linux")]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn the_control_channel_serves_only_its_owner() {
    // Only meaningful where the tests run as a user who can become another one.
    if !is_root() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must run this test as root (it switches to the user nobody)"
        );
        return;
    }
    let spare = Spare::new();
    let _daemon = start_daemon(&spare, &[]);
    // The data folder is private: another user cannot even reach the socket.
    let run = as_nobody(&spare, &["status"]).fails();
    assert!(
        run.stderr.contains("not allowed to reach the node"),
        "{}",
        run.stderr
    );

    // Opened up by mistake, the node still checks who is asking.
    for dir in [
        spare.home.path().to_owned(),
        spare.home.path().join(".local"),
        spare.home.path().join(".local/share"),
        data_dir(&spare),
    ] {
        chmod(&dir, 0o755);
    }
    chmod(&data_dir(&spare).join("control.sock"), 0o777);
    let run = as_nobody(&spare, &["pause", "gpu"]).fails();
    assert!(
        run.stderr.contains("serves only its owner"),
        "{}",
        run.stderr
    );
    assert_ne!(status(&spare)["gpu"]["state"], "paused");
}

#[cfg(target_os = "linux")]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid() == 0
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../compute/examples")
        .join(name)
        .join("job.json")
}

#[test]
fn job_submit_runs_on_the_node_and_the_order_is_the_ledger_entry() {
    let node = Spare::new();
    let _daemon = start_daemon(&node, &[]);
    let ticket = status(&node)["ticket"].as_str().unwrap().to_owned();
    let requester = Spare::new();
    let out = requester.path("out");
    let run = requester
        .run(&[
            "--key-file",
            path_str(&requester.path("requester.key")),
            "job",
            "submit",
            &ticket,
            path_str(&example("matmul")),
            "--out",
            path_str(&out),
        ])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let file = report["outputs"][0]["file"].as_str().unwrap();
    let expected = std::fs::read(example("matmul").with_file_name("expected-0-2.bin")).unwrap();
    assert_eq!(std::fs::read(file).unwrap(), expected);
    assert!(report["class"]["adapter"].is_string(), "{report}");

    let s = status(&node);
    assert_eq!(s["gpu"]["jobs_done"], 1, "{s}");
    let run = node.run(&["earnings", "--json"]).ok();
    let earnings: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        earnings["all_time"]["gpu_micro"].as_i64() > Some(0),
        "{earnings}"
    );
    let requester_id = requester
        .run(&[
            "--key-file",
            path_str(&requester.path("requester.key")),
            "id",
        ])
        .ok()
        .stdout;
    let csv = node.path("ledger.csv");
    node.run(&["ledger", "export", "--csv", path_str(&csv)])
        .ok();
    let exported = std::fs::read_to_string(&csv).unwrap();
    assert!(
        exported.contains("gpu_job") && exported.contains(requester_id.trim()),
        "{exported}"
    );
}

#[test]
fn a_demo_daemon_logs_to_the_os_log_folder_and_rotates_at_the_cap() {
    let spare = Spare::new();
    let key = spare.path("node.key");
    // Debug lines come fast in demo mode; at a 4 KiB cap the file rotates in seconds.
    let child = spare
        .command()
        .env("SPARE_LOG", "debug")
        .env("SPARE_LOG_MAX_BYTES", "4096")
        .args(["--key-file", path_str(&key), "daemon", "--demo"])
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = Daemon(child);
    let folder = spare.home.path().join(".local/state/spare/logs");
    let run = spare.run(&["logs", "--path"]).ok();
    assert_eq!(run.stdout.trim(), path_str(&folder));
    wait_for(
        Duration::from_secs(120),
        "the daemon's log to rotate",
        || folder.join("daemon.log.2").exists(),
    );
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= 4096, "{} is {len} bytes", path.display());
    }
    assert!(
        !folder.join("daemon.log.5").exists(),
        "more rotated files than kept"
    );
    // `spare logs` prints the newest lines, oldest first.
    let run = spare.run(&["logs", "-n", "3"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let time = |line: &str| line.split(' ').next().unwrap_or_default().to_owned();
    assert!(
        time(lines[0]) <= time(lines[2]),
        "not oldest first: {lines:?}"
    );
    let run = spare.run(&["logs", "--level", "error"]).ok();
    assert!(
        run.stdout.lines().all(|l| l.contains(" ERROR ")),
        "{}",
        run.stdout
    );
    let run = spare.run(&["logs", "--level", "loud"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("is not a log level"), "{}", run.stderr);
}

#[test]
fn logs_before_any_program_ran_say_where_they_will_be() {
    let spare = Spare::new();
    let run = spare.run(&["logs"]).fails();
    assert!(run.stderr.contains("no logs in"), "{}", run.stderr);
    assert!(run.stderr.contains("spare daemon"), "{}", run.stderr);
}

/// Mesa's software Vulkan driver manifest (installers/dev-setup.sh installs it).
#[cfg(target_os = "linux")]
fn lavapipe_icd() -> PathBuf {
    std::fs::read_dir("/usr/share/vulkan/icd.d")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("lvp_icd"))
        .expect("Mesa's lavapipe (mesa-vulkan-drivers) is installed by installers/dev-setup.sh")
}

/// A machine-side failure: the daemon's Vulkan driver manifest points at a library
/// that is not there, as after a broken driver update. GPU lending pauses itself and
/// says so everywhere; once the driver is back, `spare resume gpu` starts it again.
#[cfg(target_os = "linux")]
#[test]
fn a_broken_gpu_driver_pauses_lending_visibly_and_spare_resume_gpu_starts_it_again() {
    let node = Spare::new();
    let icd = node.path("icd.json");
    std::fs::write(
        &icd,
        r#"{"file_format_version": "1.0.0", "ICD": {"library_path": "/nonexistent/libvulkan_broken.so", "api_version": "1.3.0"}}"#,
    )
    .unwrap();
    let key = node.path("node.key");
    let child = node
        .command()
        .env("VK_ICD_FILENAMES", &icd)
        .env("VK_DRIVER_FILES", &icd)
        .args([
            "--key-file",
            path_str(&key),
            "daemon",
            "--bind",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = Daemon(child);
    wait_for(Duration::from_secs(30), "the daemon", || {
        node.run(&["status", "--json"]).code == Some(0)
    });
    let ticket = status(&node)["ticket"].as_str().unwrap().to_owned();
    let requester = Spare::new();
    let submit = || {
        requester.run(&[
            "--key-file",
            path_str(&requester.path("requester.key")),
            "job",
            "submit",
            &ticket,
            path_str(&example("vector_add")),
            "--out",
            path_str(&requester.path("out")),
        ])
    };
    // The job waits while the worker is tried three times, then fails with the reason.
    let run = submit().fails();
    assert!(run.stderr.contains("GPU"), "{}", run.stderr);
    let s = status(&node);
    assert_eq!(s["gpu"]["state"], "paused", "{s}");
    let reason = s["gpu"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the GPU keeps failing") && reason.contains("spare resume gpu"),
        "{reason}"
    );
    let doctor = node.run(&["doctor"]);
    assert_ne!(doctor.code, Some(0), "{}", doctor.stdout);
    assert!(
        doctor.stdout.contains("gpu lending") && doctor.stdout.contains("spare resume gpu"),
        "{}",
        doctor.stdout
    );
    let logs = node.run(&["logs", "-n", "200"]).ok();
    assert!(
        logs.stdout.contains("GPU lending paused"),
        "{}",
        logs.stdout
    );
    // While paused, jobs are refused at once with the reason.
    let run = submit().fails();
    assert!(run.stderr.contains("GPU is paused"), "{}", run.stderr);

    // The driver is back; the owner resumes, the self-test passes, jobs run.
    std::fs::copy(lavapipe_icd(), &icd).unwrap();
    node.run(&["resume", "gpu"]).ok();
    wait_for(Duration::from_secs(30), "GPU lending to resume", || {
        status(&node)["gpu"]["state"] == "lending"
    });
    assert_eq!(
        status(&node)["gpu"]["runner_stopped"],
        serde_json::Value::Null
    );
    submit().ok();
    assert_eq!(status(&node)["gpu"]["jobs_done"], 1);
}
