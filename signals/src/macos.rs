//! macOS readings taken from the system's own tools, so that no `unsafe` is needed:
//! `ioreg` for the input idle time (`HIDIdleTime`) and `pmset` for the battery.
//!
//! The parsers are plain functions compiled everywhere, so they are tested on every OS;
//! running the tools happens only on macOS.

#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::path::Path;
use std::time::Duration;

use super::InputIdle;
use super::command;

/// `HIDIdleTime` from `ioreg -c IOHIDSystem -d 4`. Each reading starts `ioreg` (about
/// 10 ms), which is affordable at the daemon's ten readings a second only while lending.
pub(crate) struct HidIdle;

impl HidIdle {
    pub(crate) fn new() -> Self {
        Self
    }
}

impl InputIdle for HidIdle {
    fn name(&self) -> &'static str {
        "macOS HIDIdleTime"
    }

    fn idle(&mut self) -> Result<Duration, String> {
        let out = command::output(
            Path::new("/usr/sbin/ioreg"),
            &["-c", "IOHIDSystem", "-d", "4"],
            Duration::from_secs(2),
        )?;
        parse_hid_idle_time(&out).ok_or_else(|| "ioreg showed no HIDIdleTime".into())
    }
}

/// The first `"HIDIdleTime" = N` in `ioreg` output; N is in nanoseconds.
pub(crate) fn parse_hid_idle_time(ioreg: &str) -> Option<Duration> {
    ioreg.lines().find_map(|line| {
        let (_, value) = line.split_once("\"HIDIdleTime\" =")?;
        value.trim().parse::<u64>().ok().map(Duration::from_nanos)
    })
}

/// (on battery, battery percent) from `pmset -g batt`: the first line says what power
/// is drawn from (`'AC Power'`, `'Battery Power'`), a later line gives each battery's
/// `NN%`. Without a battery line (a desktop Mac) both are `None`.
pub(crate) fn parse_pmset_batt(pmset: &str) -> (Option<bool>, Option<u32>) {
    let Some(battery_line) = pmset.lines().find(|l| l.contains("InternalBattery")) else {
        return (None, None);
    };
    let on_battery = pmset
        .lines()
        .find(|l| l.starts_with("Now drawing from"))
        .map(|l| l.contains("'Battery Power'"));
    let percent = battery_line
        .split(|c: char| c.is_whitespace() || c == ';')
        .find_map(|word| word.strip_suffix('%')?.parse::<u32>().ok())
        .filter(|p| *p <= 100);
    (on_battery, percent)
}

/// Runs `pmset -g batt`; both `None` when it cannot be read.
pub(crate) fn battery() -> (Option<bool>, Option<u32>) {
    command::output(
        Path::new("/usr/bin/pmset"),
        &["-g", "batt"],
        Duration::from_secs(2),
    )
    .map(|out| parse_pmset_batt(&out))
    .unwrap_or((None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hid_idle_time_in_nanoseconds() {
        let ioreg = r#"+-o Root  <class IORegistryEntry, id 0x100000100, retain 29>
  +-o IOResources  <class IOResources, id 0x100000101>
    +-o IOHIDSystem  <class IOHIDSystem, id 0x1000002e4, registered>
    | {
    |   "HIDParameters" = {"HIDClickTime"=500000000}
    |   "HIDIdleTime" = 12345678901
    |   "IOClass" = "IOHIDSystem"
    | }
"#;
        assert_eq!(
            parse_hid_idle_time(ioreg),
            Some(Duration::from_nanos(12_345_678_901))
        );
        assert_eq!(parse_hid_idle_time("no such key"), None);
        assert_eq!(parse_hid_idle_time(r#""HIDIdleTime" = soon"#), None);
    }

    #[test]
    fn reads_pmset_battery_lines() {
        let on_ac = "Now drawing from 'AC Power'\n -InternalBattery-0 (id=4653155)\t100%; charged; 0:00 remaining present: true\n";
        assert_eq!(parse_pmset_batt(on_ac), (Some(false), Some(100)));

        let on_battery = "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=4653155)\t57%; discharging; 3:12 remaining present: true\n";
        assert_eq!(parse_pmset_batt(on_battery), (Some(true), Some(57)));

        let desktop = "Now drawing from 'AC Power'\n";
        assert_eq!(parse_pmset_batt(desktop), (None, None));

        let odd = " -InternalBattery-0 (id=1)\t(no value); charging\n";
        assert_eq!(parse_pmset_batt(odd), (None, None));
    }
}
