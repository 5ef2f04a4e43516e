//! The node's identity: one ed25519 key, kept in the OS keyring, or in a file only
//! when the owner asks for that explicitly.
//!
//! The node id is the key's public half. The key is created on first use. The keyring
//! stores are chosen per OS (see ARCHITECTURE.md): the Secret Service over D-Bus on
//! Linux and the BSDs, the login Keychain on macOS, the Credential Manager on Windows.
//! There is no silent fallback: without a usable keyring the caller gets an error that
//! names the fix.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use keyring_core::{CredentialStore, Entry};
use ledger::{PartyId, hex, unhex};

/// The keyring service name the node key is stored under.
pub const KEYRING_SERVICE: &str = "spare";
/// The keyring user name the node key is stored under.
pub const KEYRING_USER: &str = "node-key";
/// First line of a key file: a format tag, then the secret key in hex.
const FILE_TAG: &str = "spare-node-key-v1:";

/// Where the node key lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStore {
    /// The OS keyring (the default).
    Keyring,
    /// A file, mode 0600, chosen explicitly with `--key-file` or `node.key_file`.
    File(PathBuf),
}

impl KeyStore {
    /// Where `config` keeps the key: its `node.key_file`, else the OS keyring.
    pub fn for_config(config: &crate::config::Config) -> KeyStore {
        match &config.node.key_file {
            Some(path) => KeyStore::File(path.clone()),
            None => KeyStore::Keyring,
        }
    }
}

impl fmt::Display for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyStore::Keyring => f.write_str(KEYRING_NAME),
            KeyStore::File(path) => write!(f, "key file {}", path.display()),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
const KEYRING_NAME: &str = "the Secret Service keyring (D-Bus)";
#[cfg(target_os = "macos")]
const KEYRING_NAME: &str = "the macOS login Keychain";
#[cfg(windows)]
const KEYRING_NAME: &str = "the Windows Credential Manager";
#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    windows
)))]
const KEYRING_NAME: &str = "the OS keyring";

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
const KEYRING_FIX: &str = "start and unlock a Secret Service keyring in your session (GNOME \
     Keyring or KWallet; on a server: `dbus-run-session` with `gnome-keyring-daemon --unlock`), \
     or keep the key in a file instead with `--key-file PATH` (created with mode 0600)";
#[cfg(target_os = "macos")]
const KEYRING_FIX: &str = "unlock your login keychain (Keychain Access), or keep the key in a \
     file instead with `--key-file PATH` (created with mode 0600)";
#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos"
)))]
const KEYRING_FIX: &str = "make sure the Credential Manager service runs in your session, or \
     keep the key in a file instead with `--key-file PATH`";

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The OS keyring could not be reached, is locked, or refused access.
    #[error("{plain} ({KEYRING_NAME}: {detail})\n  fix: {KEYRING_FIX}")]
    KeyringUnavailable {
        /// What is wrong, in plain words.
        plain: &'static str,
        /// What the keyring said.
        detail: String,
    },
    /// The keyring holds something under Spare's entry that is not a node key.
    #[error(
        "the node key in {KEYRING_NAME} (service {KEYRING_SERVICE:?}, user {KEYRING_USER:?}) is \
         damaged: {0}\n  fix: restore it from a backup; deleting the entry makes a new node id"
    )]
    KeyringCorrupt(String),
    /// The key file can be read by other users, so the key may be known to them.
    #[error(
        "key file {path} is readable or writable by other users (mode {mode:03o}), so Spare \
         refuses to use it\n  fix: chmod 600 {path}"
    )]
    FileTooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file's folder can be written by other users, who could replace the key.
    #[error(
        "key file {path} is in {folder}, which other users can write to (mode {mode:03o}), \
         so Spare refuses to use it\n  fix: chmod go-w {folder}, or keep the key in a private folder"
    )]
    FolderTooOpen {
        /// The key file.
        path: String,
        /// Its folder.
        folder: String,
        /// The folder's permission bits.
        mode: u32,
    },
    /// The key file could not be read or created.
    #[error("cannot {action} key file {path}: {source}")]
    FileIo {
        /// What was being attempted.
        action: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file exists but does not hold a node key.
    #[error(
        "key file {path} is not a Spare node key: {reason}\n  fix: point --key-file at the right \
         file, or move this one away to create a new node id"
    )]
    FileMalformed {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The OS gave no randomness for a new key.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

/// The node's key and id.
pub struct NodeIdentity {
    key: SigningKey,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret half.
        f.debug_struct("NodeIdentity")
            .field("id", &self.id())
            .finish()
    }
}

impl NodeIdentity {
    /// The node id: the public key.
    pub fn id(&self) -> PartyId {
        PartyId::of(&self.key)
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

/// Whether the key was found or made just now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// It was already there.
    Loaded,
    /// It was created by this call.
    Created,
}

/// Loads the node key from `store`, creating it on first use.
pub fn load_or_create(store: &KeyStore) -> Result<(NodeIdentity, Origin), IdentityError> {
    match store {
        KeyStore::Keyring => keyring::load_or_create(),
        KeyStore::File(path) => file::load_or_create(path),
    }
}

/// The key for demo mode: the owner's store's, or, when the keyring cannot be used (a
/// fresh VM, a remote session), a key of the demo's own in `demo_dir`. Demo credits are
/// worthless, so a demo needs no keyring. Returns why the demo's own key is used, for
/// the owner, when it is.
pub fn load_or_create_for_demo(
    store: &KeyStore,
    demo_dir: &Path,
) -> Result<(NodeIdentity, Option<String>), IdentityError> {
    match load_or_create(store) {
        Ok((identity, _)) => Ok((identity, None)),
        Err(e @ IdentityError::KeyringUnavailable { .. }) => {
            let path = demo_dir.join("demo-node.key");
            std::fs::create_dir_all(demo_dir).map_err(|source| IdentityError::FileIo {
                action: "creating the folder of",
                path: path.display().to_string(),
                source,
            })?;
            let (identity, _) = file::load_or_create(&path)?;
            let first = e.to_string();
            let first = first.lines().next().unwrap_or_default();
            Ok((
                identity,
                Some(format!(
                    "demo mode keeps its own node key in {} because {first}; demo credits are \
                     worthless, and a real node still needs the keyring (or --key-file)",
                    path.display()
                )),
            ))
        }
        Err(e) => Err(e),
    }
}

fn new_secret() -> Result<[u8; 32], IdentityError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| IdentityError::Random(e.to_string()))?;
    Ok(secret)
}

mod keyring {
    use super::*;

    fn store() -> Result<Arc<CredentialStore>, keyring_core::Error> {
        #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
        let store: Arc<CredentialStore> = zbus_secret_service_keyring_store::Store::new()?;
        #[cfg(target_os = "macos")]
        let store: Arc<CredentialStore> = apple_native_keyring_store::keychain::Store::new()?;
        #[cfg(windows)]
        let store: Arc<CredentialStore> = windows_native_keyring_store::Store::new()?;
        Ok(store)
    }

    fn unavailable(e: keyring_core::Error) -> IdentityError {
        let plain = match &e {
            keyring_core::Error::NoStorageAccess(_) => {
                "your keyring is locked or refused Spare, so the node key cannot be read"
            }
            keyring_core::Error::PlatformFailure(_) => {
                "your keyring is not running, or is locked and did not answer, so the node key \
                 cannot be read"
            }
            _ => "your keyring could not keep the node key",
        };
        IdentityError::KeyringUnavailable {
            plain,
            detail: e.to_string(),
        }
    }

    pub(super) fn load_or_create() -> Result<(NodeIdentity, Origin), IdentityError> {
        let store = store().map_err(unavailable)?;
        let entry =
            Entry::new_in_store(&store, KEYRING_SERVICE, KEYRING_USER).map_err(unavailable)?;
        match entry.get_secret() {
            Ok(secret) => Ok((decode(&secret)?, Origin::Loaded)),
            Err(keyring_core::Error::NoEntry) => {
                let secret = new_secret()?;
                entry.set_secret(&secret).map_err(unavailable)?;
                // The keyring has no create-if-absent: two processes creating the key at
                // the same moment could each store one, the last write winning. Reading
                // back makes this process use what the keyring kept; the daemon and the
                // tray app create the key once at start, before anything else runs.
                let stored = entry.get_secret().map_err(unavailable)?;
                Ok((decode(&stored)?, Origin::Created))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    fn decode(secret: &[u8]) -> Result<NodeIdentity, IdentityError> {
        let secret: [u8; 32] = secret.try_into().map_err(|_| {
            IdentityError::KeyringCorrupt(format!("expected 32 bytes, found {}", secret.len()))
        })?;
        Ok(NodeIdentity {
            key: SigningKey::from_bytes(&secret),
        })
    }
}

mod file {
    use super::*;

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError {
        let path = path.display().to_string();
        move |source| IdentityError::FileIo {
            action,
            path,
            source,
        }
    }

    pub(super) fn load_or_create(path: &Path) -> Result<(NodeIdentity, Origin), IdentityError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((load(path)?, Origin::Loaded)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
            Err(e) => Err(io("read", path)(e)),
        }
    }

    fn load(path: &Path) -> Result<NodeIdentity, IdentityError> {
        let malformed = |reason: &str| IdentityError::FileMalformed {
            path: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let meta = std::fs::metadata(path).map_err(io("read", path))?;
        if !meta.is_file() {
            return Err(malformed("not a regular file"));
        }
        check_private(path, &meta)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            check_folder(path, dir)?;
        }
        let text = std::fs::read_to_string(path).map_err(io("read", path))?;
        let Some(hex_key) = text.trim_end().strip_prefix(FILE_TAG) else {
            return Err(malformed(&format!("it does not start with {FILE_TAG:?}")));
        };
        let secret: [u8; 32] = unhex(hex_key)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("expected 64 hex characters after the tag"))?;
        Ok(NodeIdentity {
            key: SigningKey::from_bytes(&secret),
        })
    }

    #[cfg(unix)]
    fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), IdentityError> {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::FileTooOpen {
                path: path.display().to_string(),
                mode,
            });
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), IdentityError> {
        // On Windows the file inherits the ACL of the user's profile directory.
        Ok(())
    }

    fn create(path: &Path) -> Result<(NodeIdentity, Origin), IdentityError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(io("create the folder of", path))?;
        check_folder(path, dir)?;
        let secret = new_secret()?;
        // The key is written whole to a private temporary file, then linked into place
        // (which fails if the name exists): a crash never leaves an empty or partial
        // key file, and of two processes creating it at once exactly one wins.
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "node.key".into());
        let temp = dir.join(format!(".{file_name}.{}.partial", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temp).and_then(|mut file| {
            let text = format!("{FILE_TAG}{}\n", hex(&secret));
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(io("write", path)(e));
        }
        let linked = std::fs::hard_link(&temp, path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok((
                NodeIdentity {
                    key: SigningKey::from_bytes(&secret),
                },
                Origin::Created,
            )),
            // Created by another process just now: use that one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok((load(path)?, Origin::Loaded))
            }
            Err(e) => Err(io("create", path)(e)),
        }
    }

    /// Refuses a key file in a folder others may write to (they could swap the key),
    /// unless the folder is sticky, like /tmp, where only owners may rename files.
    #[cfg(unix)]
    fn check_folder(path: &Path, dir: &Path) -> Result<(), IdentityError> {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir)
            .map_err(io("check the folder of", path))?
            .permissions()
            .mode();
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            return Err(IdentityError::FolderTooOpen {
                path: path.display().to_string(),
                folder: dir.display().to_string(),
                mode: mode & 0o777,
            });
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn check_folder(_path: &Path, _dir: &Path) -> Result<(), IdentityError> {
        Ok(())
    }

    fn create_private_dir(dir: &Path) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.key");
        let (first, origin) = load_or_create(&KeyStore::File(path.clone())).unwrap();
        assert_eq!(origin, Origin::Created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (again, origin) = load_or_create(&KeyStore::File(path)).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(first.id(), again.id());
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        load_or_create(&KeyStore::File(path.clone())).unwrap();
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load_or_create(&KeyStore::File(path.clone())).unwrap_err();
            assert!(matches!(err, IdentityError::FileTooOpen { .. }), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_in_a_folder_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = load_or_create(&KeyStore::File(shared.join("node.key"))).unwrap_err();
        assert!(matches!(err, IdentityError::FolderTooOpen { .. }), "{err}");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        assert!(!shared.join("node.key").exists());
        // A sticky folder (like /tmp) is fine: only owners can replace files there.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        load_or_create(&KeyStore::File(shared.join("node.key"))).unwrap();
    }

    #[test]
    fn no_partial_key_file_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        load_or_create(&KeyStore::File(path.clone())).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("node.key")]);
    }

    #[test]
    fn malformed_key_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        std::fs::write(&path, "hello\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = load_or_create(&KeyStore::File(path.clone())).unwrap_err();
        assert!(matches!(err, IdentityError::FileMalformed { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    }
}
