//! The node's configuration: one TOML file, every key optional, every value checked.
//!
//! `config.example.toml` (embedded as [`EXAMPLE`]) documents every key with its
//! default; a test keeps it equal to [`Config::default`]. Problems are reported with
//! the key, the line and what is allowed, all at once, so one `spare config check`
//! run shows everything to fix.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The documented example config, every key at its default.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the node keeps its files.
    pub node: NodeConfig,
    /// When lending starts.
    pub lending: LendingConfig,
    /// GPU lending limits.
    pub gpu: GpuConfig,
    /// Bandwidth lending limits.
    pub bandwidth: BandwidthConfig,
    /// The relay node.
    pub relay: RelayConfig,
    /// Update checks (the tray app's; `spare daemon` ignores them).
    pub updates: UpdatesConfig,
}

/// Where the relay node may send its clients' traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum EgressMode {
    /// Peer relay only: clients reach each other; the node dials nothing itself.
    #[default]
    Off,
    /// Only to the hosts and ports in `allow`.
    Allowlist,
    /// To any public destination (the node's IP address becomes the clients').
    Open,
}

/// `[relay]`: the relay node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// The UDP port the node listens on.
    pub port: u16,
    /// Egress mode.
    pub egress: EgressMode,
    /// Allowed destinations in `allowlist` mode, as `host:ports`.
    pub allow: Vec<String>,
    /// Price in micro-credits per GiB relayed; 0 relays for free.
    pub price_per_gib: u64,
    /// Addresses for the ticket, as `ip:port`; empty means this machine's own.
    pub public_addresses: Vec<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            port: 4433,
            egress: EgressMode::Off,
            allow: Vec::new(),
            price_per_gib: 0,
            public_addresses: Vec::new(),
        }
    }
}

/// `[node]`: where the node keeps its files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The ledger file; `None` means the platform data directory.
    pub ledger: Option<PathBuf>,
    /// Keep the node key in this file instead of the OS keyring.
    pub key_file: Option<PathBuf>,
}

/// `[lending]`: when lending starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct LendingConfig {
    /// Minutes without keyboard or mouse input before lending starts.
    pub idle_minutes: u32,
    /// When lending is allowed, as rules like `"Mon-Fri 22:00-07:00"`; empty: any time.
    pub schedule: Vec<String>,
    /// Programs that pause GPU lending while they run (games found in Steam, Epic and
    /// GOG library folders pause it too).
    pub exclusive_apps: Vec<String>,
}

impl Default for LendingConfig {
    fn default() -> Self {
        Self {
            idle_minutes: 5,
            schedule: Vec::new(),
            exclusive_apps: Vec::new(),
        }
    }
}

/// `[gpu]`: GPU lending limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Lend the GPU at all.
    pub enabled: bool,
    /// The most of the GPU's time lending may use, in percent.
    pub max_duty_cycle_percent: u32,
    /// Stop lending above this GPU temperature, in °C.
    pub max_temperature_c: u32,
    /// The most memory one job's buffers may take together, in megabytes.
    pub max_job_memory_mb: u32,
    /// The price asked for GPU jobs, in micro-credits per million workgroups.
    pub price_per_million_workgroups: u64,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_duty_cycle_percent: 60,
            max_temperature_c: 80,
            max_job_memory_mb: 512,
            price_per_million_workgroups: 100_000,
        }
    }
}

/// `[bandwidth]`: bandwidth lending limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct BandwidthConfig {
    /// Lend bandwidth at all.
    pub enabled: bool,
    /// Lend bandwidth only while the owner is away, like the GPU (otherwise it is
    /// lent whenever allowed, within the caps below).
    pub only_when_away: bool,
    /// Upload cap in kilobits per second; 0 means no cap.
    pub upload_kbps: u32,
    /// Download cap in kilobits per second; 0 means no cap.
    pub download_kbps: u32,
    /// Data allowed per day, up and down together, in megabytes; 0 means no quota.
    pub daily_quota_mb: u32,
    /// Data allowed per calendar month, in gigabytes; 0 means no quota.
    pub monthly_quota_gb: u32,
}

impl Default for BandwidthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            only_when_away: false,
            upload_kbps: 0,
            download_kbps: 0,
            daily_quota_mb: 0,
            monthly_quota_gb: 0,
        }
    }
}

/// `[updates]`: whether and where the tray app looks for a newer Spare. It only tells
/// the owner; installing waits for their click. Headless installs update with their
/// package manager, so `spare daemon` reads none of this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    /// Check at start and once a day, and notify when a newer Spare is out.
    pub check: bool,
    /// The update manifest's address instead of the one Spare was built with (a mirror).
    /// Updates are installed only when signed with Spare's release key, whatever serves
    /// them.
    pub endpoint: Option<String>,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        Self {
            check: true,
            endpoint: None,
        }
    }
}

/// Why `endpoint` cannot be an update manifest's address, if it cannot: it must be an
/// `https://` URL, or `http://` to this machine only (a local mirror or a test).
pub fn endpoint_problem(endpoint: &str) -> Option<String> {
    const LIKE: &str = "give a URL like \"https://example.org/spare/latest.json\"";
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Some(format!("{endpoint:?} is not a URL: {LIKE}"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        _ if host.is_empty() => Some(format!("{endpoint:?} names no host: {LIKE}")),
        "https" => None,
        "http" if loopback => None,
        "http" => Some(format!(
            "{endpoint:?} is plain http: use https (plain http is allowed only to this machine)"
        )),
        _ => Some(format!("{endpoint:?} is not an https URL: {LIKE}")),
    }
}

/// One thing wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Problem {
    /// The key, as `section.key`, when known.
    pub key: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write config {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("config {path} is invalid:{}", list(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Everything found wrong, in line order.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Checks this config and writes it to `path` (written whole, then renamed into
    /// place, so a crash never leaves half a file). A config that would not load is
    /// refused with every problem, and nothing is written. The file is rewritten
    /// from the values: comments in it are not kept (`spare config example` documents
    /// every key).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let body = toml::to_string(self).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            problems: vec![Problem {
                key: None,
                line: None,
                message: e.to_string(),
            }],
        })?;
        let text = format!(
            "# Spare node configuration, written by Spare's settings.\n# Every key is \
             documented in `spare config example`.\n\n{body}"
        );
        Config::parse(&text).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })?;
        let write = |source| ConfigError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let partial = path.with_extension("toml.partial");
        std::fs::write(&partial, text).map_err(write)?;
        std::fs::rename(&partial, path).map_err(write)
    }

    /// Reads the config at `path`, or the defaults when `path` is the default location
    /// and nothing is there yet.
    pub fn load_or_default(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        if !explicit && !path.exists() {
            return Ok(Config::default());
        }
        Config::load(path)
    }

    /// Parses and checks config text; on failure returns every problem found: a syntax
    /// error alone (nothing past it can be read), otherwise every unknown key, every
    /// value of the wrong type and every value out of range, in line order.
    pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
        let doc: toml::Table = text.parse().map_err(|e| vec![from_toml(text, &e)])?;
        // The keys that can be read are checked too, with the others at their defaults.
        let (readable, mut problems) = split_readable(text, doc);
        let config: Config = match readable.try_into() {
            Ok(config) => config,
            Err(e) => {
                problems.push(from_toml(text, &e));
                return Err(problems);
            }
        };
        problems.extend(config.range_problems(text));
        problems.sort_by_key(|p| p.line);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    fn range_problems(&self, text: &str) -> Vec<Problem> {
        let (l, g, b) = (&self.lending, &self.gpu, &self.bandwidth);
        // Each numeric key with its value, the range allowed and the unit people read.
        let ranges: [(&str, &str, u32, RangeInclusive<u32>, &str); 8] = [
            (
                "lending",
                "idle_minutes",
                l.idle_minutes,
                1..=1440,
                "minutes",
            ),
            (
                "gpu",
                "max_duty_cycle_percent",
                g.max_duty_cycle_percent,
                1..=100,
                "percent",
            ),
            (
                "gpu",
                "max_temperature_c",
                g.max_temperature_c,
                50..=100,
                "°C",
            ),
            (
                "gpu",
                "max_job_memory_mb",
                g.max_job_memory_mb,
                1..=4096,
                "MB",
            ),
            (
                "bandwidth",
                "upload_kbps",
                b.upload_kbps,
                0..=100_000_000,
                "kbit/s (0 = no cap)",
            ),
            (
                "bandwidth",
                "download_kbps",
                b.download_kbps,
                0..=100_000_000,
                "kbit/s (0 = no cap)",
            ),
            (
                "bandwidth",
                "daily_quota_mb",
                b.daily_quota_mb,
                0..=100_000_000,
                "MB (0 = no quota)",
            ),
            (
                "bandwidth",
                "monthly_quota_gb",
                b.monthly_quota_gb,
                0..=1_000_000,
                "GB (0 = no quota)",
            ),
        ];
        let mut out: Vec<Problem> = ranges
            .into_iter()
            .filter(|(_, _, value, range, _)| !range.contains(value))
            .map(|(section, key, value, range, unit)| Problem {
                key: Some(format!("{section}.{key}")),
                line: locate(text, section, key),
                message: format!(
                    "{value} is out of range: allowed {} to {} {unit}",
                    range.start(),
                    range.end()
                ),
            })
            .collect();
        out.extend(self.rule_problems(text));
        out
    }

    /// The problems of the keys that are not plain numbers: rules, names, addresses.
    fn rule_problems(&self, text: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        for rule in &self.lending.schedule {
            if let Err(why) = rule.parse::<signals::Rule>() {
                out.push(Problem {
                    key: Some("lending.schedule".into()),
                    line: locate(text, "lending", "schedule"),
                    message: why,
                });
            }
        }
        if self
            .lending
            .exclusive_apps
            .iter()
            .any(|a| a.trim().is_empty())
        {
            out.push(Problem {
                key: Some("lending.exclusive_apps".into()),
                line: locate(text, "lending", "exclusive_apps"),
                message: "has an empty name: list programs by name, e.g. [\"eldenring.exe\"]"
                    .into(),
            });
        }
        if self.relay.port == 0 {
            out.push(Problem {
                key: Some("relay.port".into()),
                line: locate(text, "relay", "port"),
                message: "0 is out of range: allowed 1 to 65535".into(),
            });
        }
        for rule in &self.relay.allow {
            if let Err(why) = rule.parse::<relay::policy::AllowRule>() {
                out.push(Problem {
                    key: Some("relay.allow".into()),
                    line: locate(text, "relay", "allow"),
                    message: why,
                });
            }
        }
        if self.relay.egress == EgressMode::Allowlist && self.relay.allow.is_empty() {
            out.push(Problem {
                key: Some("relay.egress".into()),
                line: locate(text, "relay", "egress"),
                message: "is \"allowlist\" but `allow` lists no destination: add some, or set \
                          egress = \"off\""
                    .into(),
            });
        }
        for address in &self.relay.public_addresses {
            if address.parse::<std::net::SocketAddr>().is_err() {
                out.push(Problem {
                    key: Some("relay.public_addresses".into()),
                    line: locate(text, "relay", "public_addresses"),
                    message: format!(
                        "{address:?} is not an address: use ip:port, e.g. \"203.0.113.7:4433\""
                    ),
                });
            }
        }
        if let Some(why) = self.updates.endpoint.as_deref().and_then(endpoint_problem) {
            out.push(Problem {
                key: Some("updates.endpoint".into()),
                line: locate(text, "updates", "endpoint"),
                message: why,
            });
        }
        for (key, path) in [
            ("ledger", &self.node.ledger),
            ("key_file", &self.node.key_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                out.push(Problem {
                    key: Some(format!("node.{key}")),
                    line: locate(text, "node", key),
                    message: "is empty: give a file path, or remove the line for the default"
                        .into(),
                });
            }
        }
        out
    }
}

/// Splits a parsed file into the keys that can be read and a problem for each one that
/// cannot (an unknown key or section, a value of the wrong type), by reading each key
/// on its own: serde stops at the first error of a whole file.
fn split_readable(text: &str, doc: toml::Table) -> (toml::Table, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut readable = toml::Table::new();
    for (section, value) in doc {
        let toml::Value::Table(keys) = value else {
            match unreadable(text, &[&section], value.clone()) {
                Some(problem) => problems.push(problem),
                None => {
                    readable.insert(section, value);
                }
            }
            continue;
        };
        let empty = toml::Value::Table(toml::Table::new());
        if let Some(mut problem) = unreadable(text, &[&section], empty) {
            // An unknown section is one problem, not one per key in it.
            problem.line = problem
                .line
                .or_else(|| keys.keys().find_map(|key| locate(text, &section, key)));
            problems.push(problem);
            continue;
        }
        let mut kept = toml::Table::new();
        for (key, value) in keys {
            match unreadable(text, &[&section, &key], value.clone()) {
                Some(problem) => problems.push(problem),
                None => {
                    kept.insert(key, value);
                }
            }
        }
        readable.insert(section, toml::Value::Table(kept));
    }
    (readable, problems)
}

/// The problem of `value` at `path` (a section, or a section and a key) read as a
/// config on its own, if it cannot be.
fn unreadable(text: &str, path: &[&str], value: toml::Value) -> Option<Problem> {
    let alone = path.iter().rev().fold(value, |inner, name| {
        toml::Value::Table(toml::Table::from_iter([((*name).to_owned(), inner)]))
    });
    let e = alone.try_into::<Config>().err()?;
    let line = match path {
        [section, key] => locate(text, section, key).or_else(|| locate_section(text, section)),
        [section] => locate_section(text, section),
        _ => None,
    };
    Some(Problem {
        key: Some(path.join(".")),
        line,
        message: explain(e.message()),
    })
}

/// Turns a TOML or serde error into a located problem.
fn from_toml(text: &str, e: &toml::de::Error) -> Problem {
    let line = e.span().map(|span| line_of(text, span.start));
    let key = line.and_then(|line| key_on_line(text, line));
    let message = explain(e.message());
    Problem { key, line, message }
}

/// A serde message, with what to write instead where the message does not say.
fn explain(message: &str) -> String {
    let message = message.trim();
    if message.starts_with("unknown field") {
        return format!("{message} (check the spelling; `spare config example` lists every key)");
    }
    let expected = message.rsplit_once("expected ").map_or("", |(_, e)| e);
    let fix = match expected {
        "u16" | "u32" | "u64" => ": give a whole number, 0 or more, without quotes",
        "a boolean" => ": give true or false, without quotes",
        "a string" | "path string" => ": give text in double quotes",
        "a sequence" => ": give a list in brackets, e.g. [\"…\"]",
        _ => "",
    };
    match message.strip_prefix("invalid type: ") {
        Some(found) => format!("wrong type: {found}{fix}"),
        None => format!("{message}{fix}"),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The `section.key` a line assigns, from the line's text and the last table header
/// above it (enough for the flat files Spare uses).
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            section = header.trim().to_owned();
        }
        if i + 1 == line {
            let (key, _) = trimmed.split_once('=')?;
            let key = key.trim().trim_matches('"');
            return Some(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    None
}

/// The line of the `[section]` header, or where `section = …` is set before any header.
fn locate_section(text: &str, section: &str) -> Option<usize> {
    let header = text.lines().position(|raw| {
        let trimmed = raw.trim();
        let header = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        header.is_some_and(|h| h.trim() == section)
    });
    header.map(|i| i + 1).or_else(|| locate(text, "", section))
}

/// The line where `key` is set inside `[section]`.
fn locate(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            current = header.trim().to_owned();
            continue;
        }
        let Some((k, _)) = trimmed.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        if (current == section && k == key)
            || (current.is_empty() && k == format!("{section}.{key}"))
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_to_the_defaults() {
        assert_eq!(Config::parse(EXAMPLE).unwrap(), Config::default());
    }

    #[test]
    fn example_with_comments_removed_sets_every_key() {
        // Every key of the config appears in the example, uncommented, at its default,
        // so the example documents them all.
        let serialized = toml::to_string(&Config::default()).unwrap();
        for line in serialized.lines().filter(|l| l.contains('=')) {
            assert!(
                EXAMPLE
                    .lines()
                    .any(|e| e.trim_start_matches("# ").trim() == line.trim()),
                "the example does not document `{line}`"
            );
        }
    }

    #[test]
    fn update_endpoints_must_be_https_or_this_machine() {
        for good in [
            "https://example.org/spare/latest.json",
            "https://user@example.org:8443/x",
            "http://127.0.0.1:8080/latest.json",
            "http://localhost/latest.json",
            "http://[::1]:9000/latest.json",
        ] {
            assert_eq!(endpoint_problem(good), None, "{good}");
        }
        for (bad, says) in [
            ("http://example.org/latest.json", "plain http"),
            ("http://192.168.1.2/latest.json", "plain http"),
            ("ftp://example.org/latest.json", "not an https URL"),
            ("example.org/latest.json", "not a URL"),
            ("https:///latest.json", "names no host"),
        ] {
            let why = endpoint_problem(bad).unwrap_or_default();
            assert!(why.contains(says), "{bad}: {why}");
        }
        let problems =
            Config::parse("[updates]\ncheck = false\nendpoint = \"http://example.org/\"\n")
                .unwrap_err();
        assert_eq!(problems[0].key.as_deref(), Some("updates.endpoint"));
        assert_eq!(problems[0].line, Some(3));
    }

    #[test]
    fn relay_settings_are_checked() {
        let problems = Config::parse(
            "[relay]\nport = 0\negress = \"allowlist\"\nallow = [\"1.2.3.4:80\"]\npublic_addresses = [\"nowhere\"]\n",
        )
        .unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            shown.iter().any(|p| p.starts_with("line 2: relay.port")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.starts_with("line 4: relay.allow") && p.contains("not addresses")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.starts_with("line 5: relay.public_addresses")),
            "{shown:?}"
        );
        let problems = Config::parse("[relay]\negress = \"everywhere\"\n").unwrap_err();
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[0].message.contains("allowlist"), "{}", problems[0]);
    }

    #[test]
    fn lending_schedule_and_apps_are_checked() {
        let problems = Config::parse(
            "[lending]\nschedule = [\"Mon-Fri 22:00-07:00\", \"Funday 10:00\"]\nexclusive_apps = [\" \"]\n",
        )
        .unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("line 2: lending.schedule"),
            "{shown:?}"
        );
        assert!(shown[0].contains("Funday"), "{shown:?}");
        assert!(
            shown[1].starts_with("line 3: lending.exclusive_apps"),
            "{shown:?}"
        );
        let ok = Config::parse("[lending]\nschedule = [\"daily 01:00-06:30\"]\n").unwrap();
        assert_eq!(ok.lending.schedule.len(), 1);
    }

    #[test]
    fn a_saved_config_loads_back_equal_and_a_bad_one_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spare/config.toml");
        let mut config = Config::default();
        config.lending.idle_minutes = 12;
        config.lending.schedule = vec!["Mon-Fri 22:00-07:00".into()];
        config.bandwidth.daily_quota_mb = 500;
        config.relay.egress = EgressMode::Allowlist;
        config.relay.allow = vec!["example.com:443".into()];
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);

        let mut bad = config.clone();
        bad.gpu.max_duty_cycle_percent = 0;
        bad.lending.schedule = vec!["Funday".into()];
        let Err(ConfigError::Invalid { problems, .. }) = bad.save(&path) else {
            panic!("an invalid config was saved");
        };
        let keys: Vec<_> = problems.iter().filter_map(|p| p.key.clone()).collect();
        assert!(
            keys.contains(&"gpu.max_duty_cycle_percent".to_owned()),
            "{keys:?}"
        );
        assert!(keys.contains(&"lending.schedule".to_owned()), "{keys:?}");
        assert_eq!(
            Config::load(&path).unwrap(),
            config,
            "the good file was touched"
        );
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named_with_its_line_and_the_allowed_keys() {
        let problems = Config::parse("[gpu]\nenabled = true\nduty_cycle = 50\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        let p = &problems[0];
        assert_eq!(p.line, Some(3));
        assert_eq!(p.key.as_deref(), Some("gpu.duty_cycle"));
        assert!(p.message.contains("max_duty_cycle_percent"), "{p}");
    }

    #[test]
    fn wrong_type_is_named() {
        let problems = Config::parse("\n[bandwidth]\nenabled = \"yes\"\n").unwrap_err();
        let p = &problems[0];
        assert_eq!(
            (p.line, p.key.as_deref()),
            (Some(3), Some("bandwidth.enabled"))
        );
        assert!(
            p.message.contains("wrong type") && p.message.contains("bool"),
            "{p}"
        );
    }

    #[test]
    fn every_out_of_range_value_is_reported_at_once() {
        let text = "[gpu]\nmax_duty_cycle_percent = 150\nmax_temperature_c = 20\n\n[lending]\nidle_minutes = 0\n";
        let problems = Config::parse(text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "line 2: gpu.max_duty_cycle_percent: 150 is out of range: allowed 1 to 100 percent",
                "line 3: gpu.max_temperature_c: 20 is out of range: allowed 50 to 100 °C",
                "line 6: lending.idle_minutes: 0 is out of range: allowed 1 to 1440 minutes",
            ]
        );
    }

    #[test]
    fn every_unknown_key_wrong_type_and_bad_value_is_reported_at_once() {
        let text = "[gpu]\nmax_job_memory_mb = \"lots\"\nenabled = \"yes\"\n\n[relay]\n\
                    price_per_gib = -3\nport = 0\n\n[lending]\nidel_minutes = 5\n\
                    idle_minutes = 0\n\n[bogus]\nx = 1\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let Err(ConfigError::Invalid { problems, .. }) = Config::load(&path) else {
            panic!("a config with problems loaded");
        };
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.key.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            found,
            vec![
                (Some(2), "gpu.max_job_memory_mb"),
                (Some(3), "gpu.enabled"),
                (Some(6), "relay.price_per_gib"),
                (Some(7), "relay.port"),
                (Some(10), "lending.idel_minutes"),
                (Some(11), "lending.idle_minutes"),
                (Some(13), "bogus"),
            ],
            "{problems:?}"
        );
        let says = |i: usize, words: &[&str]| {
            let shown = problems[i].to_string();
            assert!(words.iter().all(|w| shown.contains(w)), "{shown}");
        };
        says(0, &["wrong type", "\"lots\"", "give a whole number"]);
        says(1, &["wrong type", "give true or false"]);
        says(2, &["-3", "give a whole number, 0 or more"]);
        says(3, &["out of range"]);
        says(4, &["unknown field `idel_minutes`", "idle_minutes"]);
        says(5, &["out of range: allowed 1 to 1440"]);
        says(6, &["unknown field `bogus`", "check the spelling"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn wrong_types_in_dotted_and_inline_keys_are_each_named() {
        let text = "gpu.max_job_memory_mb = \"lots\"\nrelay = { port = \"x\", allow = 3 }\n\
                    updates = 7\n";
        let problems = Config::parse(text).unwrap_err();
        let mut found: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.key.as_deref().unwrap_or_default()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                (Some(1), "gpu.max_job_memory_mb"),
                (Some(2), "relay.allow"),
                (Some(2), "relay.port"),
                (Some(3), "updates"),
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn dotted_keys_are_located_too() {
        let problems = Config::parse("gpu.max_temperature_c = 200\n").unwrap_err();
        assert_eq!(problems[0].line, Some(1));
    }

    #[test]
    fn negative_number_is_a_range_or_type_problem_with_a_line() {
        let problems = Config::parse("[lending]\nidle_minutes = -5\n").unwrap_err();
        assert_eq!(problems[0].line, Some(2));
        assert_eq!(problems[0].key.as_deref(), Some("lending.idle_minutes"));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let problems = Config::parse("[gpu\nenabled = true\n").unwrap_err();
        assert_eq!(problems[0].line, Some(1));
    }
}
