//! The slow signals, read every few seconds: battery, games and exclusive apps, GPU
//! temperature, CPU and memory use.
//!
//! `Machine` owns one `sysinfo::System` and refreshes only what each reading needs; the
//! process list (the costly part, 5–10 ms for ~130 processes) is scanned at most every
//! few seconds and only for names and executable paths.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sysinfo::{MemoryRefreshKind, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::command;

/// How often the process list is scanned for games, and `nvidia-smi` asked.
const SLOW_EVERY: Duration = Duration::from_secs(5);

/// The longest `nvidia-smi` may take before it is killed.
const NVIDIA_SMI_LIMIT: Duration = Duration::from_secs(3);

/// One reading of the machine. `None` means unknown or not applicable.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MachineReading {
    /// Running on battery power (`None`: no battery, or unknown).
    pub on_battery: Option<bool>,
    /// The battery's charge in percent (the mean when there are several).
    pub battery_percent: Option<u32>,
    /// A game or exclusive app that is running, by a readable name such as
    /// `"eldenring.exe"` or `"hl2_linux (Steam library)"`; else a full-screen focused
    /// window (`"Big Game (full-screen window)"`) where the OS tells, X11 only so far.
    pub game: Option<String>,
    /// The hottest GPU's temperature in °C.
    pub gpu_temperature_c: Option<u32>,
    /// The whole machine's CPU use in percent (`None` on the first reading, which has no
    /// interval to measure over).
    pub cpu_percent: Option<f32>,
    /// Memory in use, in percent of the total.
    pub memory_used_percent: Option<u32>,
}

/// Where `nvidia-smi` is, looked up once.
enum NvidiaSmi {
    NotLookedUp,
    Absent,
    At(PathBuf),
}

/// Reads the slow signals of this machine.
pub struct Machine {
    /// The owner's exclusive apps, lower-case and without ".exe".
    exclusive_apps: Vec<String>,
    /// `None` when sysinfo cannot work on this OS.
    system: Option<System>,
    cpu_primed: bool,
    last_slow: Option<Instant>,
    game: Option<String>,
    nvidia_smi: NvidiaSmi,
    nvidia_temperature: Option<u32>,
    /// The focused window's full-screen hint, in X11 sessions only.
    #[cfg(target_os = "linux")]
    full_screen: Option<super::x11::FullScreen>,
}

impl Machine {
    /// A reader that pauses GPU lending while any of `exclusive_apps` runs: process names
    /// matched case-insensitively, with or without ".exe".
    pub fn new(exclusive_apps: Vec<String>) -> Machine {
        Machine {
            exclusive_apps: exclusive_apps.iter().map(|a| app_key(a)).collect(),
            system: System::new().ok(),
            cpu_primed: false,
            last_slow: None,
            game: None,
            nvidia_smi: NvidiaSmi::NotLookedUp,
            nvidia_temperature: None,
            #[cfg(target_os = "linux")]
            full_screen: x11_session_display().map(|d| super::x11::FullScreen::new(&d)),
        }
    }

    /// Takes one reading. Never fails: what cannot be read is `None`.
    pub fn read(&mut self) -> MachineReading {
        let slow_due = self.last_slow.is_none_or(|at| at.elapsed() >= SLOW_EVERY);
        if slow_due {
            self.last_slow = Some(Instant::now());
            self.game = self.find_game().or_else(|| self.find_full_screen());
            self.nvidia_temperature = self.read_nvidia_temperature();
        }
        let (on_battery, battery_percent) = battery();
        let gpu_temperature_c = gpu_temperature().max(self.nvidia_temperature);
        MachineReading {
            on_battery,
            battery_percent,
            game: self.game.clone(),
            gpu_temperature_c,
            cpu_percent: self.read_cpu(),
            memory_used_percent: self.read_memory(),
        }
    }

    fn read_cpu(&mut self) -> Option<f32> {
        let system = self.system.as_mut()?;
        system.refresh_cpu_usage();
        let primed = std::mem::replace(&mut self.cpu_primed, true);
        primed.then(|| system.global_cpu_usage().clamp(0.0, 100.0))
    }

    fn read_memory(&mut self) -> Option<u32> {
        let system = self.system.as_mut()?;
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = system.total_memory();
        let used = system.used_memory().min(total);
        (total > 0).then(|| u32::try_from(used * 100 / total).unwrap_or(100))
    }

    /// The first exclusive app running, else the first game from a store's library; the
    /// lowest process id wins so that the name shown does not flicker between readings.
    fn find_game(&mut self) -> Option<String> {
        let system = self.system.as_mut()?;
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_exe(UpdateKind::OnlyIfNotSet),
        );
        let mut exclusive = None;
        let mut library = None;
        for (pid, process) in system.processes() {
            let name = process.name().to_string_lossy();
            let exe = process.exe();
            if is_exclusive(&self.exclusive_apps, &name, exe) {
                if exclusive.as_ref().is_none_or(|(p, _)| pid < p) {
                    exclusive = Some((*pid, name.into_owned()));
                }
            } else if let Some(folder) = exe.and_then(game_folder)
                && library.as_ref().is_none_or(|(p, _)| pid < p)
            {
                library = Some((*pid, format!("{name} ({folder})")));
            }
        }
        exclusive.or(library).map(|(_, name)| name)
    }

    /// The names of the programs running now, sorted and without repeats: the
    /// choices for the owner's exclusive-apps list.
    pub fn running_programs(&mut self) -> Vec<String> {
        let Some(system) = self.system.as_mut() else {
            return Vec::new();
        };
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        let names: std::collections::BTreeSet<String> = system
            .processes()
            .values()
            .map(|p| p.name().to_string_lossy().into_owned())
            .filter(|name| !name.is_empty())
            .collect();
        names.into_iter().collect()
    }

    /// A full-screen focused window, where the OS tells (X11 only so far).
    fn find_full_screen(&mut self) -> Option<String> {
        #[cfg(target_os = "linux")]
        {
            self.full_screen.as_mut()?.check()
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }

    fn read_nvidia_temperature(&mut self) -> Option<u32> {
        if let NvidiaSmi::NotLookedUp = self.nvidia_smi {
            self.nvidia_smi = match command::find_on_path("nvidia-smi") {
                Some(path) => NvidiaSmi::At(path),
                None => NvidiaSmi::Absent,
            };
        }
        let NvidiaSmi::At(path) = &self.nvidia_smi else {
            return None;
        };
        let out = command::output(
            path,
            &[
                "--query-gpu=temperature.gpu",
                "--format=csv,noheader,nounits",
            ],
            NVIDIA_SMI_LIMIT,
        )
        .ok()?;
        parse_nvidia_smi(&out)
    }
}

/// The X11 display of this session, unless it is a Wayland session (where XWayland's
/// windows are only some of the windows).
#[cfg(target_os = "linux")]
fn x11_session_display() -> Option<String> {
    if std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    std::env::var("DISPLAY").ok().filter(|d| !d.is_empty())
}

/// How an app name is compared: lower-case, without a trailing ".exe".
fn app_key(name: &str) -> String {
    let lower = name.trim().to_lowercase();
    match lower.strip_suffix(".exe") {
        Some(stem) => stem.to_owned(),
        None => lower,
    }
}

/// Whether a process is one of the owner's exclusive apps, by its name or by its
/// executable's file name (Linux shortens process names to 15 characters).
fn is_exclusive(apps: &[String], name: &str, exe: Option<&Path>) -> bool {
    let file_name = exe
        .and_then(Path::file_name)
        .map(|f| app_key(&f.to_string_lossy()));
    let name = app_key(name);
    apps.iter()
        .any(|app| *app == name || file_name.as_ref() == Some(app))
}

/// The game store library an executable was installed into, if any. Paths are compared
/// in lower case with either slash, so Windows, macOS and Linux paths all work.
///
/// Store launchers and background services that live beside the games (the Epic Games
/// launcher, Epic Online Services, the Steam Linux Runtime that also hosts Steam's own
/// web helper) are not games.
pub(crate) fn game_folder(exe: &Path) -> Option<&'static str> {
    const LIBRARIES: [(&str, &str); 5] = [
        ("/steamapps/common/", "Steam library"),
        ("/epic games/", "Epic Games library"),
        ("/games/heroic/", "Heroic library"),
        ("/gog galaxy/games/", "GOG library"),
        ("/gog games/", "GOG library"),
    ];
    const NOT_GAMES: [&str; 3] = [
        "/epic games/launcher/",
        "/epic games/epic online services/",
        "/steamapps/common/steamlinuxruntime",
    ];
    let path = exe.to_string_lossy().to_lowercase().replace('\\', "/");
    if NOT_GAMES.iter().any(|folder| path.contains(folder)) {
        return None;
    }
    LIBRARIES
        .iter()
        .find(|(folder, _)| path.contains(folder))
        .map(|(_, library)| *library)
}

/// The hottest GPU in `nvidia-smi`'s CSV (one line per GPU; "[N/A]" where unknown).
fn parse_nvidia_smi(out: &str) -> Option<u32> {
    out.lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .max()
}

/// (on battery, battery percent) from the OS.
fn battery() -> (Option<bool>, Option<u32>) {
    #[cfg(target_os = "linux")]
    {
        read_power_supply(Path::new("/sys/class/power_supply"))
    }
    #[cfg(target_os = "macos")]
    {
        super::macos::battery()
    }
    #[cfg(windows)]
    {
        super::windows::power_status()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        (None, None)
    }
}

/// The hottest GPU's temperature that the OS exposes without a vendor tool. Linux only
/// (hwmon); elsewhere only `nvidia-smi` is asked.
fn gpu_temperature() -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        read_drm_temperature(Path::new("/sys/class/drm"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// (on battery, battery percent) from a Linux `power_supply` class folder: mains and USB
/// supplies say whether they are `online`; system batteries give `capacity` and `status`.
/// Batteries of devices (a wireless mouse: `scope` is `Device`) are ignored. Without a
/// system battery both are `None`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn read_power_supply(root: &Path) -> (Option<bool>, Option<u32>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return (None, None);
    };
    let mut any_mains_online: Option<bool> = None;
    let mut capacities = Vec::new();
    let mut statuses = Vec::new();
    let mut batteries = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        match read("type").as_deref() {
            Some("Mains" | "USB") => {
                if let Some(online) = read("online") {
                    any_mains_online = Some(any_mains_online == Some(true) || online == "1");
                }
            }
            Some("Battery") if read("scope").as_deref() != Some("Device") => {
                batteries += 1;
                capacities.extend(read("capacity").and_then(|c| c.parse::<u32>().ok()));
                statuses.extend(read("status"));
            }
            _ => {}
        }
    }
    if batteries == 0 {
        return (None, None);
    }
    let on_battery = match any_mains_online {
        Some(online) => Some(!online),
        None if statuses.iter().any(|s| s == "Discharging") => Some(true),
        None if statuses
            .iter()
            .any(|s| matches!(s.as_str(), "Charging" | "Full" | "Not charging")) =>
        {
            Some(false)
        }
        None => None,
    };
    let percent = (!capacities.is_empty()).then(|| {
        let sum: u32 = capacities.iter().map(|c| (*c).min(100)).sum();
        sum / u32::try_from(capacities.len()).unwrap_or(1)
    });
    (on_battery, percent)
}

/// The hottest `cardN/device/hwmon/hwmon*/temp1_input` (millidegrees) under a Linux
/// `drm` class folder. AMD and Intel drivers expose these; NVIDIA's does not.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn read_drm_temperature(drm: &Path) -> Option<u32> {
    let cards = std::fs::read_dir(drm).ok()?;
    let mut hottest = None;
    for card in cards.flatten() {
        let name = card.file_name();
        let name = name.to_string_lossy();
        // Connectors such as "card0-DP-1" sit beside the cards.
        let is_card = name
            .strip_prefix("card")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_card {
            continue;
        }
        let Ok(hwmons) = std::fs::read_dir(card.path().join("device/hwmon")) else {
            continue;
        };
        for hwmon in hwmons.flatten() {
            let Ok(text) = std::fs::read_to_string(hwmon.path().join("temp1_input")) else {
                continue;
            };
            let Ok(millidegrees) = text.trim().parse::<u32>() else {
                continue;
            };
            hottest = hottest.max(Some(millidegrees / 1000));
        }
    }
    hottest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_programs_lists_this_test_process() {
        let mut machine = Machine::new(Vec::new());
        let names = machine.running_programs();
        let me = std::env::current_exe().unwrap();
        let me = me.file_name().unwrap().to_string_lossy();
        // Linux cuts process names to 15 characters.
        let short: String = me.chars().take(15).collect();
        assert!(
            names
                .iter()
                .any(|n| me.starts_with(n.as_str())
                    && n.starts_with(&short[..short.len().min(n.len())])),
            "{names:?}"
        );
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "not sorted and unique"
        );
    }
    use std::fs;

    #[test]
    fn classifies_game_library_folders() {
        let cases: &[(&str, Option<&str>)] = &[
            // Windows
            (
                r"C:\Program Files (x86)\Steam\steamapps\common\ELDEN RING\Game\eldenring.exe",
                Some("Steam library"),
            ),
            (
                r"D:\SteamLibrary\steamapps\common\Hades\x64\Hades.exe",
                Some("Steam library"),
            ),
            (
                r"C:\Program Files\Epic Games\Fortnite\FortniteGame\Binaries\Win64\FortniteClient-Win64-Shipping.exe",
                Some("Epic Games library"),
            ),
            (
                r"C:\Program Files (x86)\Epic Games\Launcher\Portal\Binaries\Win64\EpicGamesLauncher.exe",
                None,
            ),
            (
                r"C:\Program Files (x86)\Epic Games\Epic Online Services\EpicOnlineServices.exe",
                None,
            ),
            (
                r"C:\Program Files (x86)\GOG Galaxy\Games\The Witcher 3\bin\x64\witcher3.exe",
                Some("GOG library"),
            ),
            (
                r"C:\GOG Games\Stardew Valley\Stardew Valley.exe",
                Some("GOG library"),
            ),
            (r"C:\Program Files (x86)\GOG Galaxy\GalaxyClient.exe", None),
            (r"C:\Program Files (x86)\Steam\steam.exe", None),
            (r"C:\Windows\System32\notepad.exe", None),
            // macOS
            (
                "/Users/ana/Library/Application Support/Steam/steamapps/common/Dota 2/game/dota.app/Contents/MacOS/dota2",
                Some("Steam library"),
            ),
            (
                "/Users/Shared/Epic Games/Fortnite/FortniteGame/Binaries/Mac/FortniteClient-Mac-Shipping",
                Some("Epic Games library"),
            ),
            (
                "/Applications/Epic Games Launcher.app/Contents/MacOS/EpicGamesLauncher-Mac-Shipping",
                None,
            ),
            ("/Applications/Safari.app/Contents/MacOS/Safari", None),
            // Linux
            (
                "/home/ana/.local/share/Steam/steamapps/common/Half-Life 2/hl2_linux",
                Some("Steam library"),
            ),
            (
                "/home/ana/.local/share/Steam/steamapps/common/Proton 9.0 (Beta)/files/bin/wine64-preloader",
                Some("Steam library"),
            ),
            (
                "/home/ana/.local/share/Steam/steamapps/common/SteamLinuxRuntime_sniper/pressure-vessel/bin/pv-adverb",
                None,
            ),
            (
                "/home/ana/.local/share/Steam/ubuntu12_64/steamwebhelper",
                None,
            ),
            (
                "/home/ana/Games/Heroic/Hollow Knight/hollow_knight.x86_64",
                Some("Heroic library"),
            ),
            (
                "/home/ana/GOG Games/Celeste/Celeste.bin.x86_64",
                Some("GOG library"),
            ),
            ("/usr/bin/firefox", None),
        ];
        for (path, expected) in cases {
            assert_eq!(game_folder(Path::new(path)), *expected, "{path}");
        }
    }

    #[test]
    fn matches_exclusive_apps_by_name_or_executable_ignoring_case_and_exe() {
        let apps: Vec<String> = ["EldenRing.exe", "blender", " DaVinci Resolve "]
            .iter()
            .map(|a| app_key(a))
            .collect();
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("eldenring.exe", None, true),
            ("ELDENRING", None, true),
            (
                "eldenring",
                Some(r"C:\Games\ELDEN RING\Game\eldenring.exe"),
                true,
            ),
            ("Blender.exe", None, true),
            ("blender", Some("/usr/bin/blender"), true),
            // Linux cuts process names to 15 characters; the executable still matches.
            ("blender-softwar", Some("/opt/blender/blender"), true),
            ("davinci resolve", None, true),
            ("blender-launcher", None, false),
            ("eldenring.exe.bak", None, false),
            ("firefox", Some("/usr/lib/firefox/firefox"), false),
        ];
        for (name, exe, expected) in cases {
            assert_eq!(
                is_exclusive(&apps, name, exe.map(Path::new)),
                *expected,
                "{name} {exe:?}"
            );
        }
        assert!(!is_exclusive(&[], "anything", None));
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn supply(root: &Path, name: &str, files: &[(&str, &str)]) {
        for (file, text) in files {
            write(&root.join(name).join(file), &format!("{text}\n"));
        }
    }

    #[test]
    fn reads_batteries_and_mains_from_a_sysfs_tree() {
        // A laptop on AC.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        supply(root, "AC", &[("type", "Mains"), ("online", "1")]);
        supply(
            root,
            "BAT0",
            &[
                ("type", "Battery"),
                ("capacity", "81"),
                ("status", "Charging"),
            ],
        );
        // A wireless mouse's battery is not the machine's.
        supply(
            root,
            "hidpp_battery_0",
            &[
                ("type", "Battery"),
                ("scope", "Device"),
                ("capacity", "5"),
                ("status", "Discharging"),
            ],
        );
        assert_eq!(read_power_supply(root), (Some(false), Some(81)));

        // Unplugged: two batteries, mean charge; a USB-C port that is also offline.
        fs::write(root.join("AC/online"), "0\n").unwrap();
        supply(
            root,
            "ucsi-source-psy-USBC000:001",
            &[("type", "USB"), ("online", "0")],
        );
        supply(
            root,
            "BAT1",
            &[
                ("type", "Battery"),
                ("capacity", "40"),
                ("status", "Discharging"),
            ],
        );
        assert_eq!(read_power_supply(root), (Some(true), Some(60)));

        // Charging over USB-C with the barrel plug out.
        fs::write(root.join("ucsi-source-psy-USBC000:001/online"), "1\n").unwrap();
        assert_eq!(read_power_supply(root).0, Some(false));
    }

    #[test]
    fn battery_status_decides_when_no_mains_supply_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        supply(
            root,
            "BAT0",
            &[
                ("type", "Battery"),
                ("capacity", "55"),
                ("status", "Discharging"),
            ],
        );
        assert_eq!(read_power_supply(root), (Some(true), Some(55)));
        fs::write(root.join("BAT0/status"), "Full\n").unwrap();
        assert_eq!(read_power_supply(root), (Some(false), Some(55)));
        fs::write(root.join("BAT0/status"), "Unknown\n").unwrap();
        fs::remove_file(root.join("BAT0/capacity")).unwrap();
        assert_eq!(read_power_supply(root), (None, None));
    }

    #[test]
    fn no_battery_or_no_folder_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_power_supply(dir.path()), (None, None));
        supply(dir.path(), "AC", &[("type", "Mains"), ("online", "1")]);
        assert_eq!(read_power_supply(dir.path()), (None, None));
        assert_eq!(read_power_supply(&dir.path().join("missing")), (None, None));
    }

    #[test]
    fn reads_the_hottest_gpu_from_hwmon() {
        let dir = tempfile::tempdir().unwrap();
        let drm = dir.path();
        assert_eq!(read_drm_temperature(drm), None);

        write(
            &drm.join("card0/device/hwmon/hwmon3/temp1_input"),
            "47000\n",
        );
        write(
            &drm.join("card1/device/hwmon/hwmon5/temp1_input"),
            "63500\n",
        );
        // Ignored: a connector, a card without hwmon, garbage.
        write(
            &drm.join("card0-DP-1/device/hwmon/hwmon9/temp1_input"),
            "99000\n",
        );
        fs::create_dir_all(drm.join("card2/device")).unwrap();
        write(&drm.join("card3/device/hwmon/hwmon7/temp1_input"), "hot\n");
        write(
            &drm.join("renderD128/device/hwmon/hwmon8/temp1_input"),
            "98000\n",
        );
        assert_eq!(read_drm_temperature(drm), Some(63));
    }

    #[test]
    fn parses_nvidia_smi_csv() {
        assert_eq!(parse_nvidia_smi("45\n"), Some(45));
        assert_eq!(parse_nvidia_smi("45\n71\n[N/A]\n"), Some(71));
        assert_eq!(parse_nvidia_smi("[N/A]\n"), None);
        assert_eq!(parse_nvidia_smi(""), None);
    }

    #[test]
    fn reads_this_machine_without_panicking() {
        let mut machine = Machine::new(vec![]);
        let first = machine.read();
        assert_eq!(
            first.cpu_percent, None,
            "no interval yet on the first reading"
        );

        // Keep a core busy so the second reading has something to see.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::black_box(0u64);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(500));
        let second = machine.read();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();

        let cpu = second.cpu_percent.expect("CPU use on the second reading");
        assert!(cpu > 0.0 && cpu <= 100.0, "CPU {cpu}% while a core spins");
        let memory = second.memory_used_percent.expect("memory use");
        assert!((1..=100).contains(&memory), "memory {memory}%");
        if let Some(percent) = second.battery_percent {
            assert!(percent <= 100);
        }
        if let Some(temperature) = second.gpu_temperature_c {
            assert!((1..150).contains(&temperature), "GPU at {temperature} °C");
        }
    }

    #[test]
    fn finds_a_running_exclusive_app() {
        // This test's own process stands in for the owner's app, named in upper case with
        // ".exe" to show that neither matters (the stem: on Windows the file name already
        // ends in ".exe").
        let exe = std::env::current_exe().unwrap();
        let stem = exe.file_stem().unwrap().to_string_lossy().to_uppercase();
        let mut machine = Machine::new(vec![format!("{stem}.EXE")]);
        let game = machine.read().game.expect("our own process found");
        // Linux shortens the name to 15 characters; Windows adds ".exe".
        assert!(stem.to_lowercase().starts_with(&app_key(&game)), "{game}");

        let mut machine = Machine::new(vec!["surely-not-running-here".into()]);
        let game = machine.read().game;
        assert!(
            game.as_ref().is_none_or(|g| g.contains("library")),
            "{game:?}"
        );
    }
}
