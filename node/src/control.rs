//! The local control channel: how `spare status`, `spare pause`, `spare resume` and
//! `spare ticket` reach a running node.
//!
//! Unix: a socket `control.sock` in the node's data folder. The folder is mode 0700,
//! the socket 0600, and each connection's peer credentials are checked: only the
//! user the node runs as is served.
//!
//! Windows: a named pipe `\\.\pipe\spare-control-<hash>`, the hash taken from the data
//! folder's path (`pipe_name`), so each data folder has its own. The pipe's DACL grants
//! access to the node's user SID alone, remote clients are rejected, the server compares
//! each client process's user with its own, and the client checks the server's the same
//! way (see `control_windows.rs`). That code is compiled and linted for Windows but has
//! not yet been run on Windows.
//!
//! Protocol: one JSON request per line, one JSON answer per line:
//! `{"cmd":"status"}`, `{"cmd":"pause","target":"gpu","for":{"seconds":3600}}`,
//! `{"cmd":"resume","target":"all"}`, `{"cmd":"ticket"}`; answers are
//! `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::status::{PauseFor, Status, Target};

/// The socket's file name in the data folder.
pub const SOCKET: &str = "control.sock";

/// Longest request line.
const MAX_LINE: usize = 64 * 1024;

/// The control socket for a data folder. On Windows no file is made there: the path
/// stands for its data folder, whose pipe `pipe_name` names.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// The named pipe that serves the data folder `data_dir` on Windows:
/// `\\.\pipe\spare-control-` and 16 hex digits of the BLAKE3 hash of the folder's
/// absolute path, lowercased because Windows paths are case-insensitive. Defined on every
/// OS so that it is tested everywhere.
pub fn pipe_name(data_dir: &Path) -> String {
    let absolute = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    // Collecting the components drops a trailing separator and `.` parts.
    let normal: PathBuf = absolute.components().collect();
    let hash = blake3::hash(normal.to_string_lossy().to_lowercase().as_bytes());
    format!(r"\\.\pipe\spare-control-{}", &hash.to_hex()[..16])
}

/// A request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The node's status.
    Status,
    /// Pause lending.
    Pause {
        /// What to pause.
        target: Target,
        /// For how long.
        #[serde(rename = "for")]
        how_long: PauseFor,
    },
    /// Resume lending.
    Resume {
        /// What to resume.
        target: Target,
    },
    /// The node's ticket.
    Ticket,
}

/// An answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The result, when ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What went wrong, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    fn ok(result: serde_json::Value) -> Self {
        Self {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// What the control channel asks of the node. `NodeHandle` is the node's; the channel
/// itself knows only this, so it depends on the node's status types and nothing more.
pub trait Controlled: Send + Sync + 'static {
    /// The node's state now.
    fn status(&self) -> Status;
    /// Pauses lending of `target` for `how_long`.
    fn pause(&self, target: Target, how_long: PauseFor);
    /// Ends the owner's pause of `target`.
    fn resume(&self, target: Target);
    /// The node's ticket.
    fn ticket(&self) -> String;
}

/// The node as the control channel holds it.
pub type Node = std::sync::Arc<dyn Controlled>;

/// Answers one request line.
pub fn answer(node: &dyn Controlled, line: &str) -> Answer {
    let request: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => {
            return Answer::error(format!(
                "not a control request: {e} (expected e.g. {{\"cmd\":\"status\"}})"
            ));
        }
    };
    match request {
        Request::Status => match serde_json::to_value(node.status()) {
            Ok(v) => Answer::ok(v),
            Err(e) => Answer::error(e.to_string()),
        },
        Request::Pause { target, how_long } => {
            node.pause(target, how_long);
            Answer::ok(serde_json::Value::Null)
        }
        Request::Resume { target } => {
            node.resume(target);
            Answer::ok(serde_json::Value::Null)
        }
        Request::Ticket => Answer::ok(serde_json::Value::String(node.ticket())),
    }
}

/// Writes one answer line.
#[cfg(any(unix, windows))]
async fn write_answer<W>(write: &mut W, answer: &Answer) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt as _;
    let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

/// Answers one client's request lines until it hangs up or sends a line that is too long.
#[cfg(any(unix, windows))]
async fn serve_client<S>(node: Node, stream: S) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read);
    loop {
        let mut line = String::new();
        let n = (&mut lines)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') && n >= MAX_LINE {
            let too_long = Answer::error(format!("a request is at most {MAX_LINE} bytes"));
            write_answer(&mut write, &too_long).await?;
            return Ok(());
        }
        // Status reads the ledger: keep SQLite off the async threads.
        let handle = node.clone();
        let answered = tokio::task::spawn_blocking(move || answer(&*handle, line.trim_end())).await;
        let answer = answered.unwrap_or_else(|e| Answer::error(e.to_string()));
        write_answer(&mut write, &answer).await?;
    }
}

/// The result in the node's answer line, or its refusal as an error.
#[cfg(any(unix, windows))]
fn result_of(reply: &str) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let answer: Answer = serde_json::from_str(reply)
        .with_context(|| format!("the node's answer is not understood: {reply:?}"))?;
    match answer {
        Answer {
            ok: true, result, ..
        } => Ok(result.unwrap_or_default()),
        Answer { error, .. } => Err(anyhow::anyhow!(
            "{}",
            error.unwrap_or_else(|| "the node refused".into())
        )),
    }
}

/// The client's error when nothing answers at `at`.
#[cfg(any(unix, windows))]
fn no_node(at: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no Spare node is running for this data folder (nothing answers at {at}): start one \
         with `spare daemon`"
    )
}

/// The client's error when the OS refuses it access to `at`.
#[cfg(any(unix, windows))]
fn not_allowed(at: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "not allowed to reach the node at {at}: the control channel serves only the user the \
         node runs as"
    )
}

#[cfg(unix)]
pub use unix::{request, serve};

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::path::Path;

    use anyhow::Context as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt, BufReader};
    use tokio::net::UnixListener;

    use super::Node;
    use super::{
        Answer, MAX_LINE, Request, no_node, not_allowed, result_of, serve_client, write_answer,
    };

    /// Listens on `path` (replacing a stale socket: the caller holds the data folder's
    /// lock, so no other node uses it). The task serving it stops when aborted.
    pub fn serve(node: Node, path: &Path) -> anyhow::Result<tokio::task::AbortHandle> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("listening on the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
        let owner = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .uid();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let node = node.clone();
                tokio::spawn(async move {
                    let peer = stream.peer_cred().map(|c| c.uid());
                    let mut stream = stream;
                    if peer.as_ref().ok() != Some(&owner) {
                        // Take the request line first, so the refusal is what the
                        // client reads rather than a broken pipe.
                        let mut line = String::new();
                        let _ = tokio::time::timeout(
                            std::time::Duration::from_secs(2),
                            BufReader::new(AsyncReadExt::take(&mut stream, MAX_LINE as u64))
                                .read_line(&mut line),
                        )
                        .await;
                        let refusal = Answer::error(format!(
                            "refused: this node belongs to user {owner}; the control channel \
                             serves only its owner"
                        ));
                        let _ = write_answer(&mut stream, &refusal).await;
                        return;
                    }
                    let _ = serve_client(node, stream).await;
                });
            }
        });
        Ok(server.abort_handle())
    }

    /// Sends one request to the node whose control socket is `path` and returns its
    /// result (blocking; for the CLI).
    pub fn request(path: &Path, request: &Request) -> anyhow::Result<serde_json::Value> {
        use std::io::{BufRead as _, Write as _};
        let at = path.display().to_string();
        let mut stream =
            std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    no_node(&at)
                }
                std::io::ErrorKind::PermissionDenied => not_allowed(&at),
                _ => anyhow::anyhow!("cannot reach the node at {at}: {e}"),
            })?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        // A node that refuses may close before taking the request; its answer says why.
        let _ = stream.write_all(&line);
        let mut reply = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut reply)
            .context("reading the node's answer")?;
        result_of(&reply)
    }
}

#[cfg(windows)]
pub use windows::{request, serve};

// The Win32 calls need `unsafe`; they live in their own file, as in `signals`.
#[cfg(windows)]
#[path = "control_windows.rs"]
mod windows;

/// Elsewhere: no control channel.
#[cfg(not(any(unix, windows)))]
pub fn serve(_node: Node, _path: &Path) -> anyhow::Result<tokio::task::AbortHandle> {
    Ok(tokio::spawn(async {}).abort_handle())
}

/// Elsewhere: no control channel.
#[cfg(not(any(unix, windows)))]
pub fn request(_path: &Path, _request: &Request) -> anyhow::Result<serde_json::Value> {
    anyhow::bail!(
        "the control channel is not available on this OS: use the tray app to see and change \
         the node's state"
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{pipe_name, result_of};

    #[test]
    fn each_data_folder_has_its_own_pipe() {
        let a = pipe_name(Path::new("/home/ada/.local/share/spare"));
        let b = pipe_name(Path::new("/home/bob/.local/share/spare"));
        assert_ne!(a, b);
        assert!(a.starts_with(r"\\.\pipe\spare-control-"), "{a}");
        let hash = &a[r"\\.\pipe\spare-control-".len()..];
        assert_eq!(hash.len(), 16);
        assert!(hash.bytes().all(|c| c.is_ascii_hexdigit()), "{hash}");
    }

    #[test]
    fn a_folder_has_one_pipe_however_it_is_spelled() {
        let plain = pipe_name(Path::new("/srv/Spare/data"));
        assert_eq!(plain, pipe_name(Path::new("/srv/Spare/data/")));
        assert_eq!(plain, pipe_name(Path::new("/srv/Spare/./data")));
        assert_eq!(plain, pipe_name(Path::new("/SRV/spare/DATA")));
    }

    #[test]
    fn answers_become_results_or_errors() {
        let ok = result_of(r#"{"ok":true,"result":{"paused":false}}"#).unwrap();
        assert_eq!(ok["paused"], false);
        let refused = result_of(r#"{"ok":false,"error":"refused: not yours"}"#).unwrap_err();
        assert_eq!(refused.to_string(), "refused: not yours");
        let garbled = result_of("").unwrap_err();
        assert!(
            format!("{garbled:#}").contains("not understood"),
            "{garbled:#}"
        );
    }
}
