//! The node's logs: `tracing` events written to rotating files in the OS's log folder
//! (and to stderr for a daemon, where journald picks them up), and read back for
//! `spare logs` and the dashboard's Logs view.
//!
//! Each long-running program writes its own file (`daemon.log`, `app.log`,
//! `relay-serve.log`, `relay-connect.log`, …), and holds `NAME.lock` beside it while it
//! does, so two processes never write one file: a second one logs to stderr only. A
//! file that reaches its size cap is renamed `NAME.log.1` (the older ones move up to
//! `.4`, the oldest is deleted), so the folder stays under five caps per program
//! whatever runs for how long. The folder is private to its owner (relay logs name
//! clients' addresses). Lines are plain text: the local time (RFC 3339), the level, the module that
//! wrote it, and the message with its fields (`job=…`, `client=…`), which is what a
//! person follows a job or a session by.
//!
//! The filter comes from `SPARE_LOG`, else `RUST_LOG` (the `tracing-subscriber`
//! syntax: `info`, `node=debug,quinn=warn`), else `info`. quinn's `log` records reach
//! the same files through `tracing-log`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// A log file's size cap before it is rotated: 5 MB (`SPARE_LOG_MAX_BYTES` overrides
/// it, at least 4 KiB).
pub const MAX_FILE_BYTES: u64 = 5_000_000;

/// Rotated files kept per program, beside the one being written.
pub const KEEP: usize = 4;

/// How bad a line is, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but the node goes on.
    Warn,
    /// What the node did: jobs, sessions, starts and stops.
    Info,
    /// Detail for finding a problem.
    Debug,
    /// Everything.
    Trace,
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            other => Err(format!(
                "{other:?} is not a log level: use error, warn, info, debug or trace"
            )),
        }
    }
}

/// One line of a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LogLine {
    /// When, local time, RFC 3339 (`2026-12-06T19:25:25.123+01:00`).
    pub time: String,
    /// How bad.
    pub level: LogLevel,
    /// The module that wrote it, such as `node::recorder`.
    pub target: String,
    /// The message and its fields; a message of several lines keeps them.
    pub message: String,
}

/// The log folder and its newest lines, for the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LogView {
    /// The OS log folder the files are in.
    pub folder: String,
    /// Newest first.
    pub lines: Vec<LogLine>,
}

/// A file that rotates at a size cap: `NAME.log`, then `NAME.log.1` … `NAME.log.{keep}`.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// `NAME.lock`, locked for as long as this process writes `NAME.log`.
    _lock: File,
    written: u64,
    max_bytes: u64,
    keep: usize,
}

/// Why a log file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process writes this log.
    #[error("another process writes {0}")]
    Busy(PathBuf),
    /// The folder or the file could not be made.
    #[error("opening the log file {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Opens for appending, private to the owner where the OS has modes.
fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

impl RotatingFile {
    /// Opens `path` for appending (creating its folder, private to its owner), rotating
    /// at `max_bytes`; `Busy` when another process writes it.
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> Result<RotatingFile, OpenError> {
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let lock = open_private(&path.with_extension("lock")).map_err(io)?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Busy(path));
        }
        let file = open_private(&path).map_err(io)?;
        let written = file.metadata().map_err(io)?.len();
        Ok(RotatingFile {
            path,
            file,
            _lock: lock,
            written,
            max_bytes,
            keep,
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Moves the file aside and starts a new one. The file being written is moved
    /// first: if it cannot be (a virus scanner holding it on Windows), nothing older
    /// is touched and writing goes on in it.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let aside = self.rotated(0);
        std::fs::rename(&self.path, &aside)?;
        let _ = std::fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        if self.keep > 0 {
            std::fs::rename(&aside, self.rotated(1))?;
        } else {
            std::fs::remove_file(&aside)?;
        }
        self.file = open_private(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    /// Each event arrives as one write of whole lines, so a file never ends mid-line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written > 0
            && self.written + buf.len() as u64 > self.max_bytes
            && self.rotate().is_err()
        {
            // Keep writing where we are; try again after another cap's worth.
            self.written = 0;
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Local time with its offset, to the millisecond.
struct LocalTime;

impl FormatTime for LocalTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        )
    }
}

fn filter() -> tracing_subscriber::EnvFilter {
    let spec = std::env::var("SPARE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Where a program's log goes.
pub struct LogTo {
    /// The program's file name without `.log`: `daemon`, `app`, `relay`.
    pub program: &'static str,
    /// The folder (default: the OS log folder, `crate::paths::log_dir`).
    pub folder: Option<PathBuf>,
    /// Also write to stderr (a daemon under a service manager, a terminal).
    pub stderr: bool,
}

/// Sends this process's `tracing` events (and `log` records) to its rotating file,
/// and to stderr when asked. Returns the file's path, or `None` when another process
/// writes that file (then the events go to stderr only, and a warning says so). Call
/// it once, first thing; a second call changes nothing.
pub fn init(to: LogTo) -> anyhow::Result<Option<PathBuf>> {
    let folder = match to.folder {
        Some(folder) => folder,
        None => crate::paths::log_dir()?,
    };
    let path = folder.join(format!("{}.log", to.program));
    let max_bytes = std::env::var("SPARE_LOG_MAX_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(MAX_FILE_BYTES, |v| v.max(4096));
    let file = match RotatingFile::open(path.clone(), max_bytes, KEEP) {
        Ok(file) => file,
        Err(OpenError::Busy(path)) => {
            let _ = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_timer(LocalTime)
                .with_writer(std::io::stderr)
                .with_env_filter(filter())
                .try_init();
            tracing::warn!(
                "another process writes {}; this one logs to stderr only",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_timer(LocalTime)
        .with_writer(Mutex::new(file))
        .with_filter(filter());
    let stderr_layer = to.stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_timer(LocalTime)
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(Some(path))
}

/// Sends this process's warnings and errors to stderr only: the one-shot commands,
/// whose output is their answer.
pub fn init_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_env_filter(
            std::env::var("SPARE_LOG")
                .or_else(|_| std::env::var("RUST_LOG"))
                .unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
}

/// Every log file in `folder`, rotated ones included, oldest first.
pub fn files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".log")
                || name
                    .rsplit_once(".log.")
                    .is_some_and(|(_, n)| n.parse::<u32>().is_ok())
        })
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Parses a log file's text into lines; a line that does not start like one (a
/// message's second line) belongs to the line before it.
pub fn parse(text: &str) -> Vec<LogLine> {
    let mut lines: Vec<LogLine> = Vec::new();
    for raw in text.lines() {
        match parse_line(raw) {
            Some(line) => lines.push(line),
            None => {
                if let Some(last) = lines.last_mut() {
                    last.message.push('\n');
                    last.message.push_str(raw);
                }
            }
        }
    }
    lines
}

fn parse_line(raw: &str) -> Option<LogLine> {
    let (time, rest) = raw.split_once(' ')?;
    // A time starts with a four-digit year and a dash.
    if time.len() < 20 || !time.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let rest = rest.trim_start();
    let (level, rest) = rest.split_once(' ')?;
    let level = level.parse().ok()?;
    let rest = rest.trim_start();
    let (target, message) = match rest.split_once(": ") {
        Some((target, message)) if !target.contains(' ') => (target, message),
        _ => ("", rest),
    };
    Some(LogLine {
        time: time.to_owned(),
        level,
        target: target.to_owned(),
        message: message.to_owned(),
    })
}

/// The newest lines in `folder` at `level` or worse (`None`: all), newest first, at
/// most `limit`.
pub fn read(folder: &Path, level: Option<LogLevel>, limit: usize) -> Vec<LogLine> {
    let mut lines: Vec<LogLine> = files(folder)
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .flat_map(|bytes| parse(&String::from_utf8_lossy(&bytes)))
        .filter(|line| level.is_none_or(|level| line.level <= level))
        .collect();
    // RFC 3339 times with one offset sort as text. The files are read oldest first and
    // the sort is stable, so lines of the same millisecond keep the order they were
    // written in; reversed, the newest come first.
    lines.sort_by(|a, b| a.time.cmp(&b.time));
    lines.reverse();
    lines.truncate(limit);
    lines
}

/// The log folder and its newest lines, for the dashboard.
pub fn view(level: Option<LogLevel>, limit: usize) -> anyhow::Result<LogView> {
    let folder = crate::paths::log_dir()?;
    Ok(LogView {
        lines: read(&folder, level, limit),
        folder: folder.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_rotates_at_its_cap_and_keeps_only_so_many() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        let mut file = RotatingFile::open(path.clone(), 100, 2).unwrap();
        for n in 0..20 {
            file.write_all(format!("line {n:02} of the log, thirty b\n").as_bytes())
                .unwrap();
        }
        let names: Vec<_> = files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the log is private");
        }
        for p in files(dir.path()) {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(len <= 100, "{} is {len} bytes", p.display());
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.ends_with('\n'), "a file ends mid-line");
        }
        // The newest lines are in the file being written.
        assert!(std::fs::read_to_string(&path).unwrap().contains("line 19"));
        // A second writer is refused while the first holds the file.
        assert!(matches!(
            RotatingFile::open(path.clone(), 100, 2),
            Err(OpenError::Busy(_))
        ));
        drop(file);
        // Reopening appends and still counts what is there.
        let mut again = RotatingFile::open(path.clone(), 100, 2).unwrap();
        again.write_all(&[b'x'; 90]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 90);
    }

    #[test]
    fn lines_parse_back_with_their_level_target_and_continuations() {
        let text = "\
2026-12-06T19:25:25.123+01:00  INFO node::recorder: GPU job recorded amount_micro=5 network=demo
2026-12-06T19:25:26.001+01:00 ERROR spare_app: cannot open the dashboard: no display
  second line of the same message
2026-12-06T19:25:27.500+01:00  WARN node: the owner paused gpu until 18:00
";
        let lines = parse(text);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].level, LogLevel::Info);
        assert_eq!(lines[0].target, "node::recorder");
        assert_eq!(
            lines[0].message,
            "GPU job recorded amount_micro=5 network=demo"
        );
        assert_eq!(
            lines[1].message,
            "cannot open the dashboard: no display\n  second line of the same message"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.log"), text).unwrap();
        // Two lines of the same millisecond come back newest first too.
        std::fs::write(
            dir.path().join("relay.log"),
            "2026-12-06T19:25:28.000+01:00  INFO relay: first\n\
             2026-12-06T19:25:28.000+01:00  INFO relay: second\n",
        )
        .unwrap();
        let newest = read(dir.path(), None, 2);
        assert_eq!(
            newest
                .iter()
                .map(|l| l.message.as_str())
                .collect::<Vec<_>>(),
            ["second", "first"]
        );
        let worst = read(dir.path(), Some(LogLevel::Warn), 10);
        assert_eq!(worst.len(), 2);
        assert_eq!(worst[0].level, LogLevel::Warn, "newest first");
        assert_eq!(read(dir.path(), None, 1).len(), 1);
        assert!(
            "loud"
                .parse::<LogLevel>()
                .unwrap_err()
                .contains("error, warn")
        );
    }
}
