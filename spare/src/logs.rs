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
    let mut offsets: HashMap<PathBuf, u64> = current(folder)
        .into_iter()
        .filter_map(|p| Some((p.clone(), std::fs::metadata(&p).ok()?.len())))
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
            let Ok(len) = std::fs::metadata(&file).map(|m| m.len()) else {
                continue;
            };
            let offset = offsets.entry(file.clone()).or_insert(0);
            if len < *offset {
                // Rotated: the file was renamed and a new one started.
                *offset = 0;
            }
            if len == *offset {
                continue;
            }
            let mut text = String::new();
            let read = std::fs::File::open(&file).and_then(|mut f| {
                f.seek(SeekFrom::Start(*offset))?;
                f.take(len - *offset).read_to_string(&mut text)
            });
            if read.is_err() {
                continue;
            }
            // Only whole lines: the rest is read again when it is complete.
            let Some(end) = text.rfind('\n') else {
                continue;
            };
            *offset += end as u64 + 1;
            for line in logs::parse(&text[..end]) {
                if level.is_none_or(|level| line.level <= level) {
                    println!("{}", show(&line));
                }
            }
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
