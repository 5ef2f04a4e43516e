//! `spare logs`: the node's log files (the daemon's, the tray app's and the relay's,
//! see `node::logs`) printed oldest first, and with `--follow` the lines written after,
//! as `tail -f` would, across rotations.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use node::logs::{self, LogLevel, LogLine};

/// How often `--follow` looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

fn show(line: &LogLine) -> String {
    let level = format!("{:?}", line.level).to_ascii_uppercase();
    if line.target.is_empty() {
        format!("{} {level:>5} {}", line.time, line.message)
    } else {
        format!("{} {level:>5} {}: {}", line.time, line.target, line.message)
    }
}

/// Prints the newest `lines` lines at `level` or worse from `folder`, then, with
/// `follow`, every line written after, until interrupted.
pub fn print(
    folder: &Path,
    level: Option<LogLevel>,
    lines: usize,
    follow: bool,
) -> anyhow::Result<()> {
    if !follow && logs::files(folder).is_empty() {
        anyhow::bail!(
            "no logs in {} yet: they are written by `spare daemon` and the tray app while they run",
            folder.display()
        );
    }
    // Where each file being written ends now, so following starts after what is shown.
    let mut followed: HashMap<PathBuf, Followed> = current(folder)
        .into_iter()
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            let at = Followed {
                offset: meta.len(),
                id: identity(&meta),
            };
            Some((p, at))
        })
        .collect();
    let newest = logs::read(folder, level, lines);
    for line in newest.iter().rev() {
        println!("{}", show(line));
    }
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        for file in current(folder) {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let id = identity(&meta);
            let at = followed
                .entry(file.clone())
                .or_insert(Followed { offset: 0, id });
            if at.id != id || meta.len() < at.offset {
                // Rotated: what was written before the rename is now `NAME.log.1`.
                let mut moved = file.clone().into_os_string();
                moved.push(".1");
                let moved = PathBuf::from(moved);
                let same = std::fs::metadata(&moved).is_ok_and(|m| identity(&m) == at.id);
                if same && at.id.is_some() {
                    print_new(&moved, &mut at.offset, level);
                }
                *at = Followed { offset: 0, id };
            }
            print_new(&file, &mut at.offset, level);
        }
    }
}

/// Where `spare logs --follow` is in one file.
struct Followed {
    offset: u64,
    /// The file's identity (its inode on Unix), to tell a rotation from growth.
    id: Option<u64>,
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    Some(meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> Option<u64> {
    None
}

/// Prints the whole lines of `path` after `offset` at `level` or worse, and moves
/// `offset` past them; a line still being written is read again when complete.
fn print_new(path: &Path, offset: &mut u64, level: Option<LogLevel>) {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(*offset))?;
        f.read_to_end(&mut bytes)
    });
    if read.is_err() {
        return;
    }
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return;
    };
    *offset += end as u64 + 1;
    for line in logs::parse(&String::from_utf8_lossy(&bytes[..end])) {
        if level.is_none_or(|level| line.level <= level) {
            println!("{}", show(&line));
        }
    }
}

/// The files being written now (not the rotated ones).
fn current(folder: &Path) -> Vec<PathBuf> {
    logs::files(folder)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect()
}
