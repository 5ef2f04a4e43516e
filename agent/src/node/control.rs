//! The local control channel: how `spare status`, `spare pause`, `spare resume` and
//! `spare ticket` reach a running node.
//!
//! Unix: a socket `control.sock` in the node's data folder. The folder is mode 0700,
//! the socket 0600, and each connection's peer credentials are checked: only the
//! user the node runs as is served. Windows: not built yet (a named pipe with an
//! owner-only ACL is the plan); `spare status` says so.
//!
//! Protocol: one JSON request per line, one JSON answer per line:
//! `{"cmd":"status"}`, `{"cmd":"pause","target":"gpu","for":{"seconds":3600}}`,
//! `{"cmd":"resume","target":"all"}`, `{"cmd":"ticket"}`; answers are
//! `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{NodeHandle, PauseFor, Target};

/// The socket's file name in the data folder.
pub const SOCKET: &str = "control.sock";

/// Longest request line.
const MAX_LINE: usize = 64 * 1024;

/// The control socket for a data folder.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
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

/// Answers one request line.
pub fn answer(node: &NodeHandle, line: &str) -> Answer {
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

#[cfg(unix)]
pub use unix::{request, serve};

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::path::Path;

    use anyhow::Context as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
    use tokio::net::{UnixListener, UnixStream};

    use super::{Answer, MAX_LINE, Request, answer};
    use crate::node::NodeHandle;

    /// Listens on `path` (replacing a stale socket: the caller holds the data folder's
    /// lock, so no other node uses it).
    pub fn serve(node: NodeHandle, path: &Path) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("listening on the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
        let owner = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .uid();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let node = node.clone();
                tokio::spawn(async move {
                    let peer = stream.peer_cred().map(|c| c.uid());
                    let mut stream = stream;
                    if peer.as_ref().ok() != Some(&owner) {
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
        Ok(())
    }

    async fn write_answer(stream: &mut UnixStream, answer: &Answer) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line).await
    }

    async fn serve_client(node: NodeHandle, stream: UnixStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
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
                let mut out = serde_json::to_vec(&too_long).map_err(std::io::Error::other)?;
                out.push(b'\n');
                write.write_all(&out).await?;
                return Ok(());
            }
            // Status reads the ledger: keep SQLite off the async threads.
            let handle = node.clone();
            let answered =
                tokio::task::spawn_blocking(move || answer(&handle, line.trim_end())).await;
            let answer = answered.unwrap_or_else(|e| Answer::error(e.to_string()));
            let mut out = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
            out.push(b'\n');
            write.write_all(&out).await?;
        }
    }

    /// Sends one request to the node whose control socket is `path` and returns its
    /// result (blocking; for the CLI).
    pub fn request(path: &Path, request: &Request) -> anyhow::Result<serde_json::Value> {
        use std::io::{BufRead as _, Write as _};
        let mut stream =
            std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    anyhow::anyhow!(
                        "no Spare node is running for this data folder (nothing answers at {}): \
                         start one with `spare daemon`",
                        path.display()
                    )
                }
                std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                    "not allowed to reach the node at {}: the control channel serves only the \
                     user the node runs as",
                    path.display()
                ),
                _ => anyhow::anyhow!("cannot reach the node at {}: {e}", path.display()),
            })?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        stream.write_all(&line)?;
        let mut reply = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut reply)
            .context("reading the node's answer")?;
        let answer: Answer = serde_json::from_str(&reply)
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
}

/// Windows: the named-pipe control channel is not built yet.
#[cfg(not(unix))]
pub fn serve(_node: NodeHandle, _path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Windows: the named-pipe control channel is not built yet.
#[cfg(not(unix))]
pub fn request(_path: &Path, _request: &Request) -> anyhow::Result<serde_json::Value> {
    anyhow::bail!(
        "the control channel is not available on this OS yet: use the tray app to see and \
         change the node's state"
    )
}
