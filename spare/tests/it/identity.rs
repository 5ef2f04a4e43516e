//! `spare id`: the node key in the OS keyring (a real Secret Service), or in a key file
//! by explicit choice.

use crate::support::*;

fn is_node_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Needs the session bus and unlocked gnome-keyring that `make test` provides.
#[test]
fn id_is_created_once_in_the_real_secret_service() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "no D-Bus session: run the tests with `make test`, which starts gnome-keyring in \
         dbus-run-session"
    );
    let spare = Spare::new();
    let mut cmd = spare.command();
    // The keyring daemon of this test session; keep its address.
    cmd.arg("id");
    let first = Run::from(cmd.output().unwrap()).ok();
    let id = first.stdout.trim().to_owned();
    assert!(is_node_id(&id), "{id:?}");

    let again = spare.run(&["id"]).ok();
    assert_eq!(again.stdout.trim(), id, "the node id changed between runs");
    assert!(!again.stderr.contains("created"), "{}", again.stderr);

    // Another home, same keyring: the same node (the key is the keyring's, not a file's).
    let elsewhere = Spare::new().run(&["id"]).ok();
    assert_eq!(elsewhere.stdout.trim(), id);
    assert!(
        walk(spare.home.path()).is_empty(),
        "spare id wrote files: {:?}",
        walk(spare.home.path())
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn without_a_keyring_the_error_names_the_fix() {
    let spare = Spare::new();
    let run = Run::from(
        spare
            .command()
            .arg("id")
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/spare-test-bus",
            )
            .output()
            .unwrap(),
    )
    .fails();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // Plain words first, the keyring's own words after.
    assert!(
        run.stderr.starts_with("error: your keyring is"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("fix:"), "{}", run.stderr);
    assert!(run.stderr.contains("--key-file PATH"), "{}", run.stderr);
}

/// A demo needs no keyring: without one, `spare daemon --demo` keeps a key of its own
/// in its data folder, says so, and runs.
#[test]
fn a_demo_without_a_keyring_keeps_its_own_key_and_runs() {
    let spare = Spare::new();
    let broken_bus = "unix:path=/nonexistent/spare-test-bus";
    let mut daemon = spare
        .command()
        .args(["daemon", "--demo", "--bind", "127.0.0.1:0"])
        .env("DBUS_SESSION_BUS_ADDRESS", broken_bus)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let key = spare.path(".local/share/spare/demo-node.key");
    let start = std::time::Instant::now();
    let status = loop {
        let run = spare.run(&["status", "--json"]);
        if run.code == Some(0) {
            break run.stdout;
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = daemon.kill();
            let out = daemon.wait_with_output().unwrap();
            panic!("no demo daemon: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = daemon.kill();
    let out = daemon.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.contains("\"demo\": true"), "{status}");
    assert!(key.exists(), "no demo key at {}", key.display());
    assert!(
        stderr.contains("demo mode keeps its own node key") && stderr.contains("your keyring is"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn key_file_is_created_private_and_stays_the_same() {
    use std::os::unix::fs::PermissionsExt as _;
    let spare = Spare::new();
    let key = spare.path("secrets/node.key");
    let first = spare.run(&["--key-file", path_str(&key), "id"]).ok();
    assert!(
        first.stderr.contains("created a new node key in key file"),
        "{}",
        first.stderr
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = spare.run(&["id", "--key-file", path_str(&key)]).ok();
    assert_eq!(first.stdout, again.stdout);
    assert!(is_node_id(again.stdout.trim()));
}

#[cfg(unix)]
#[test]
fn group_or_world_readable_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let spare = Spare::new();
    let key = spare.path("node.key");
    spare.run(&["--key-file", path_str(&key), "id"]).ok();
    let before = std::fs::read(&key).unwrap();
    for mode in [0o644, 0o640, 0o606] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let run = spare.run(&["--key-file", path_str(&key), "id"]).fails();
        assert!(
            run.stderr.contains("readable or writable by other users"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("chmod 600 {}", key.display())),
            "{}",
            run.stderr
        );
    }
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the refused key file was changed"
    );
}

#[cfg(unix)]
#[test]
fn key_file_from_the_config_is_used() {
    let spare = Spare::new();
    let key = spare.path("from-config.key");
    let config = spare.path("config.toml");
    std::fs::write(
        &config,
        format!("[node]\nkey_file = {:?}\n", path_str(&key)),
    )
    .unwrap();
    spare.run(&["--config", path_str(&config), "id"]).ok();
    assert!(key.exists());
}
