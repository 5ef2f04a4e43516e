//! Windows: the control channel as a named pipe that only the node's user can use.
//!
//! The node's side: the pipe is created with a protected DACL holding one entry, full
//! access for the user SID the node runs as, so the kernel refuses everyone else at open
//! time (the default pipe DACL would let Everyone read). Remote clients are rejected. The
//! first instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`, so the node refuses to
//! start behind a pipe of the same name that another program created first. Each client
//! process's token user is compared with the node's own before a request is read; a
//! client that cannot be inspected is refused.
//!
//! The client's side: it opens the pipe at identification level (the server may learn who
//! it is, never act as it) and checks that the server process runs as the same user, so a
//! pipe squatted while no node runs cannot hand it a false ticket.
//!
//! Not done here: impersonating the client. Comparing process tokens refuses a client
//! whose process the node may not query, which can happen when exactly one of the two
//! runs elevated. This code has been compiled and linted for Windows, not yet run there.
//!
//! The Win32 calls (token queries, SID strings, the security descriptor) are this
//! module's `unsafe`.

#![allow(unsafe_code)]

use std::io::{self, BufRead as _, Write as _};
use std::os::windows::fs::OpenOptionsExt as _;
use std::os::windows::io::{AsRawHandle as _, FromRawHandle as _, OwnedHandle, RawHandle};
use std::path::Path;
use std::ptr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
    TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::SECURITY_IDENTIFICATION;
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::Node;
use super::{
    Answer, Request, no_node, not_allowed, pipe_name, result_of, serve_client, write_answer,
};

/// How long the client waits for a free pipe instance.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// How long the client waits for the node's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// The pipe for a control path: `socket_path(data_dir)` stands for its data folder.
fn pipe_for(path: &Path) -> String {
    pipe_name(path.parent().unwrap_or(path))
}

/// Serves the pipe of the data folder that `path` (from `socket_path`) stands for. The
/// caller holds the data folder's lock, so no other node of this user serves it. The
/// task serving it stops when aborted.
pub fn serve(node: Node, path: &Path) -> anyhow::Result<tokio::task::AbortHandle> {
    let name = pipe_for(path);
    let user = process_user(None).context("reading the user this node runs as")?;
    let first = create_instance(&name, true, &user).map_err(|e| {
        if e.raw_os_error() == Some(ERROR_ACCESS_DENIED.cast_signed()) {
            anyhow::anyhow!(
                "another program already holds the control pipe {name}; the node will not \
                 share it (a second node on this data folder would have been stopped by its \
                 lock, so this is another program, perhaps another user's)"
            )
        } else {
            anyhow::Error::new(e).context(format!("creating the control pipe {name}"))
        }
    })?;
    Ok(tokio::spawn(accept(node, name, user, first)).abort_handle())
}

/// Hands each connected instance to a task of its own, for as long as the runtime runs.
async fn accept(node: Node, name: String, user: String, first: NamedPipeServer) {
    let mut waiting = Some(first);
    loop {
        let instance = match waiting.take() {
            Some(instance) => instance,
            None => match create_instance(&name, false, &user) {
                Ok(instance) => instance,
                Err(e) => {
                    tracing::warn!(
                        "control pipe: cannot open another instance of {name}: {e}; \
                         trying again in a second"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let connected = instance.connect().await;
        // The next instance exists before this one is handed on, so a client never finds
        // the pipe gone (tokio's `named_pipe` docs); on failure the loop tries again.
        waiting = create_instance(&name, false, &user).ok();
        if connected.is_err() {
            // A client that left before it was seen; do not spin if this repeats.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let node = node.clone();
        let user = user.clone();
        tokio::spawn(async move {
            let mut instance = instance;
            if !client_runs_as(&instance, &user) {
                let refusal = Answer::error(format!(
                    "refused: this node belongs to user {user}; the control channel serves \
                     only its owner"
                ));
                let _ = write_answer(&mut instance, &refusal).await;
                return;
            }
            let _ = serve_client(node, instance).await;
        });
    }
}

/// A pipe instance that only `user` (a string SID) can open, and only from this machine.
fn create_instance(name: &str, first: bool, user: &str) -> io::Result<NamedPipeServer> {
    // Protected (`P`: nothing inherited), one entry: all access for `user`. The explicit
    // SID rather than OWNER RIGHTS (`OW`): the owner of a new object can be the
    // Administrators group when an administrator runs elevated.
    let sddl: Vec<u16> = format!("D:P(A;;GA;;;{user})")
        .encode_utf16()
        .chain([0])
        .collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated UTF-16 that outlives the call; `descriptor` is
    // writable and receives a LocalAlloc'd descriptor, freed below; the size
    // out-parameter is optional and left null.
    let converted = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            ptr::null_mut(),
        )
    };
    if converted == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor,
        bInheritHandle: 0,
    };
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true);
    // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES (length set, no inheritance)
    // whose descriptor stays allocated until the call returns, as tokio requires.
    let created =
        unsafe { options.create_with_security_attributes_raw(name, (&raw mut attributes).cast()) };
    // SAFETY: `descriptor` was allocated by the conversion above, which documents
    // LocalFree as its release; CreateNamedPipeW has returned and keeps its own copy.
    unsafe { LocalFree(descriptor) };
    created
}

/// Whether the process at the client end of `pipe` runs as `user`; false when that
/// cannot be told.
fn client_runs_as(pipe: &NamedPipeServer, user: &str) -> bool {
    let mut pid = 0;
    // SAFETY: the handle is the live server end of a pipe, borrowed for the call; `pid`
    // is a writable u32.
    let ok = unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle(), &mut pid) };
    ok != 0 && process_user(Some(pid)).is_ok_and(|them| them == user)
}

/// Whether the process at the server end of the pipe `handle` runs as `user`; false
/// when that cannot be told.
fn server_runs_as(handle: RawHandle, user: &str) -> bool {
    let mut pid = 0;
    // SAFETY: the caller passes the live client end of a pipe, borrowed for the call;
    // `pid` is a writable u32.
    let ok = unsafe { GetNamedPipeServerProcessId(handle, &mut pid) };
    ok != 0 && process_user(Some(pid)).is_ok_and(|them| them == user)
}

/// The user SID, as a string ("S-1-5-21-…"), that process `pid` (or, with `None`, this
/// process) runs as.
fn process_user(pid: Option<u32>) -> io::Result<String> {
    let opened = match pid {
        None => None,
        Some(pid) => {
            // SAFETY: no pointers are passed; a null result is checked below.
            let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
            if process.is_null() {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `process` is a fresh handle that nothing else owns or closes.
            Some(unsafe { OwnedHandle::from_raw_handle(process) })
        }
    };
    let process = match &opened {
        Some(process) => process.as_raw_handle(),
        // SAFETY: GetCurrentProcess has no preconditions; its pseudo handle needs no
        // closing.
        None => unsafe { GetCurrentProcess() },
    };
    let mut token = ptr::null_mut();
    // SAFETY: `process` is a live process handle (opened above, or the pseudo handle);
    // `token` is writable.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: OpenProcessToken succeeded, so `token` is a fresh handle that nothing else
    // owns or closes.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    let mut len = 0u32;
    // SAFETY: a null buffer of length 0 only asks for the size needed, written to `len`;
    // the call's expected failure (ERROR_INSUFFICIENT_BUFFER) is judged by `len` below.
    unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            ptr::null_mut(),
            0,
            &mut len,
        )
    };
    if len == 0 {
        return Err(io::Error::last_os_error());
    }
    // u64s, so that the TOKEN_USER at the start (which holds a pointer) is aligned.
    let mut buffer = vec![0u64; (len as usize).div_ceil(size_of::<u64>())];
    // SAFETY: `buffer` is writable for at least `len` bytes.
    let filled = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            buffer.as_mut_ptr().cast(),
            len,
            &mut len,
        )
    };
    if filled == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call above wrote a TOKEN_USER at the start of `buffer`, which is
    // aligned for it; the SID it points to lies inside `buffer`, alive until the end of
    // this function.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text = ptr::null_mut();
    // SAFETY: `sid` is the valid SID above; `text` is writable and receives a
    // LocalAlloc'd string, freed below.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut units = 0;
    // SAFETY: `text` is NUL-terminated (ConvertSidToStringSidW's contract); the loop
    // reads up to and including the NUL and no further.
    while unsafe { *text.add(units) } != 0 {
        units += 1;
    }
    // SAFETY: the `units` code units before the NUL were just read, so they are valid.
    let sid = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, units) });
    // SAFETY: `text` came from ConvertSidToStringSidW, which documents LocalFree as its
    // release, and is not used after this.
    unsafe { LocalFree(text.cast()) };
    Ok(sid)
}

/// Sends one request to the node that serves the data folder `path` (from `socket_path`)
/// stands for and returns its result (blocking; for the CLI).
pub fn request(path: &Path, request: &Request) -> anyhow::Result<serde_json::Value> {
    let name = pipe_for(path);
    let pipe = open(&name)?;
    let user = process_user(None).context("reading the user this command runs as")?;
    if !server_runs_as(pipe.as_raw_handle(), &user) {
        anyhow::bail!(
            "the control pipe {name} is not served by a Spare node of yours (its server does \
             not run as you, or could not be checked): refusing to talk to it"
        );
    }
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    // A pipe opened through std has no read timeout: the exchange runs on a thread, left
    // behind if the node does not answer in time (the CLI exits soon after).
    let (done, answered) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut pipe = pipe;
        let exchanged = pipe.write_all(&line).and_then(|()| {
            let mut reply = String::new();
            io::BufReader::new(&pipe)
                .read_line(&mut reply)
                .map(|_| reply)
        });
        let _ = done.send(exchanged);
    });
    let reply = match answered.recv_timeout(ANSWER_WAIT) {
        Ok(exchanged) => exchanged.context("reading the node's answer")?,
        Err(_) => anyhow::bail!(
            "the node at {name} did not answer within {} s",
            ANSWER_WAIT.as_secs()
        ),
    };
    result_of(&reply)
}

/// Opens the client end of `name`, waiting up to `BUSY_WAIT` while every instance is
/// taken.
fn open(name: &str) -> anyhow::Result<std::fs::File> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            // Identification level: whoever serves the pipe may learn who we are but
            // cannot act as us, should it not be the node.
            .security_qos_flags(SECURITY_IDENTIFICATION)
            .open(name);
        let e = match opened {
            Ok(pipe) => return Ok(pipe),
            Err(e) => e,
        };
        let busy = e.raw_os_error() == Some(ERROR_PIPE_BUSY.cast_signed());
        if busy && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return Err(match e.kind() {
            io::ErrorKind::NotFound => no_node(name),
            io::ErrorKind::PermissionDenied => not_allowed(name),
            _ if busy => anyhow::anyhow!(
                "the node at {name} stayed busy for {} s: try again",
                BUSY_WAIT.as_secs()
            ),
            _ => anyhow::anyhow!("cannot reach the node at {name}: {e}"),
        });
    }
}
