//! What Spare's benchmarks share: the JSON line each figure is printed as (format in
//! DESIGN.md), and readings of processes from `/proc` (Linux; `None` or empty elsewhere).

#![allow(clippy::print_stdout)]

/// Prints one benchmark's figures as JSON lines.
pub struct Reporter {
    bench: &'static str,
}

impl Reporter {
    /// Figures of the benchmark named `bench`.
    pub const fn new(bench: &'static str) -> Self {
        Self { bench }
    }

    /// One figure: `value` in `unit`, against `baseline` (measured in the same run, or a
    /// target) whose value is `baseline_value`; `ratio` is null when that is 0.
    pub fn line(
        &self,
        metric: &str,
        value: f64,
        unit: &str,
        baseline: &str,
        baseline_value: f64,
        target: &str,
    ) {
        println!(
            "{}",
            json_line(
                self.bench,
                metric,
                value,
                unit,
                baseline,
                baseline_value,
                target
            )
        );
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn json_line(
    bench: &str,
    metric: &str,
    value: f64,
    unit: &str,
    baseline: &str,
    baseline_value: f64,
    target: &str,
) -> serde_json::Value {
    let ratio = if baseline_value == 0.0 {
        serde_json::Value::Null
    } else {
        serde_json::json!(round3(value / baseline_value))
    };
    serde_json::json!({
        "bench": bench,
        "metric": metric,
        "value": round3(value),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round3(baseline_value),
        "ratio": ratio,
        "target": target,
    })
}

/// Readings of other processes, from `/proc`.
pub mod proc {
    /// The fields of `/proc/PID/stat` after the command name (which may hold spaces).
    fn stat_fields(pid: u32) -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        Some(rest.split_whitespace().map(str::to_owned).collect())
    }

    /// CPU seconds (user + system) the process has used.
    pub fn cpu_seconds(pid: u32) -> Option<f64> {
        let fields = stat_fields(pid)?;
        let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    fn kb(path: &str, key: &str) -> Option<f64> {
        let text = std::fs::read_to_string(path).ok()?;
        let line = text.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Resident memory, MB.
    pub fn rss_mb(pid: u32) -> Option<f64> {
        Some(kb(&format!("/proc/{pid}/status"), "VmRSS:")? / 1024.0)
    }

    /// Proportional set size (shared pages split between the processes mapping them), MB.
    pub fn pss_mb(pid: u32) -> Option<f64> {
        Some(kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:")? / 1024.0)
    }

    /// The process's parent.
    pub fn parent_of(pid: u32) -> Option<u32> {
        stat_fields(pid)?.get(1)?.parse().ok()
    }

    /// The processes whose parent is `pid`.
    pub fn children(pid: u32) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|child| parent_of(*child) == Some(pid))
            .collect()
    }

    /// Every process under `pid`, children first.
    pub fn descendants(pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut frontier = vec![pid];
        while let Some(parent) = frontier.pop() {
            for child in children(parent) {
                out.push(child);
                frontier.push(child);
            }
        }
        out
    }

    /// The process's command line, arguments joined by spaces.
    pub fn command_line(pid: u32) -> String {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_is_one_json_object_with_its_ratio() {
        let line = json_line("node", "rss", 12.34567, "MB", "target", 40.0, "<= 40 MB");
        assert_eq!(line["value"], 12.346);
        assert_eq!(line["ratio"], 0.309);
        assert_eq!(line["bench"], "node");
        let unbased = json_line("node", "cpu", 1.0, "%", "none", 0.0, "report");
        assert!(unbased["ratio"].is_null());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read_from_proc() {
        let me = std::process::id();
        assert!(proc::rss_mb(me).unwrap() > 0.0);
        assert!(proc::cpu_seconds(me).is_some());
        assert!(proc::command_line(me).contains("bench_support"));
        let parent = proc::parent_of(me).unwrap();
        assert!(proc::children(parent).contains(&me));
    }
}
