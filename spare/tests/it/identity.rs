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
    assert!(run.stderr.contains("keyring"), "{}", run.stderr);
    assert!(run.stderr.contains("fix:"), "{}", run.stderr);
    assert!(run.stderr.contains("--key-file PATH"), "{}", run.stderr);
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
