//! The whole tray app's footprint. Prints one JSON object a line (format in DESIGN.md).
//!
//! `spare-app` runs as a real process on a real X server (Xvfb), idle (no demo: nothing
//! lent, the owner is "active") and then lending in demo mode; each in the tray alone
//! (`--minimized`: no dashboard window, so no WebKit processes) and with the dashboard
//! open. Over each period it samples the resident memory of the app and every process
//! under it (WebKit's web and network processes) and their CPU time. With the dashboard
//! open, the processes share WebKit's libraries, so their resident sets summed count
//! those pages once per process: the proportional set size (PSS, shared pages split
//! between the processes that map them) is the fair whole-app figure, and the RSS sum is
//! reported beside it. Target: at most 150 MB (Electron-based peers are reported at
//! 300-400 MB). The GPU worker is reported apart, as in the node's benchmark: it runs
//! requesters' kernels and exists only while lending.
//!
//! Baseline, measured in the same run: WebKitGTK's own MiniBrowser (shipped beside
//! `WebKitWebProcess` in the same package) showing `about:blank`, with the graphics
//! settings the app uses, is the least any WebKitGTK window costs on this machine. The
//! dashboard's figure is also reported against it: what Spare adds to a blank window.
//!
//! `cargo bench -p spare-app` measures 60 s per phase; without `--bench` (as `make test`
//! runs it) a smoke size checks that the benchmark works.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::Duration;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        eprintln!("smoke run (no --bench): checks the benchmark works; its figures mean nothing");
    }
    let phase = Duration::from_secs(if full { 60 } else { 3 });
    #[cfg(target_os = "linux")]
    linux::run(phase);
    #[cfg(not(target_os = "linux"))]
    eprintln!(
        "the app benchmark measures Linux only (Xvfb and /proc); nothing measured for {phase:?} phases"
    );
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use bench_support::proc::{command_line, cpu_seconds, descendants, pss_mb, rss_mb};

    /// This benchmark's figures, as JSON lines.
    const REPORT: bench_support::Reporter = bench_support::Reporter::new("app");

    /// What one phase measured.
    struct Figures {
        /// App and WebKit, peak of the sum of resident sets, MB.
        rss: f64,
        /// The same as proportional set size (shared pages split between processes).
        pss: f64,
        /// App and WebKit CPU, percent of one core.
        cpu: f64,
        /// The GPU worker's peak resident set, MB.
        worker_rss: f64,
        /// How many processes were measured at the peak.
        processes: usize,
        /// The path of WebKit's web process, where one ran.
        web_process: Option<std::path::PathBuf>,
    }

    /// Measures WebKitGTK's MiniBrowser showing `about:blank`: `None` (and says why) where
    /// there is none beside `web_process`.
    fn measure_blank(
        display: &str,
        web_process: &Option<std::path::PathBuf>,
        period: Duration,
    ) -> Option<Figures> {
        let browser = web_process.as_ref()?.with_file_name("MiniBrowser");
        if !browser.exists() {
            eprintln!(
                "no {} beside WebKit's web process: the blank-window baseline is skipped",
                browser.display()
            );
            return None;
        }
        let home = tempfile::tempdir().unwrap();
        let mut command = Command::new(browser);
        command.arg("about:blank");
        // The variables `spare-app` sets for itself (`lighter_graphics` in main.rs).
        command.env("GDK_GL", "disable");
        command.env("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
        let app = spawn(command, home.path(), display);
        Some(sample(app, false, false, period))
    }

    fn report_blank(blank: &Option<Figures>) {
        let Some(blank) = blank else { return };
        eprintln!(
            "WebKitGTK's MiniBrowser showing about:blank: {:.1} MB PSS over {} processes \
             ({:.1} MB resident summed)",
            blank.pss, blank.processes, blank.rss
        );
        REPORT.line(
            "webkit_blank_window_pss",
            blank.pss,
            "MB",
            "target",
            150.0,
            "report (the least a WebKitGTK window costs here)",
        );
    }

    pub fn run(period: Duration) {
        let xvfb =
            node::testing::Xvfb::start().expect("Xvfb is needed: run installers/dev-setup.sh");
        let mut blank = None;
        for demo in [false, true] {
            let mode = if demo { "demo" } else { "idle" };
            let tray = measure(&xvfb.display, demo, true, period);
            let open = measure(&xvfb.display, demo, false, period);
            if blank.is_none() {
                blank = Some(measure_blank(&xvfb.display, &open.web_process, period));
                report_blank(blank.as_ref().unwrap());
            }
            eprintln!(
                "tray app {mode} over {} s: in the tray {:.1} MB resident, {:.2} % of a core; \
                 dashboard open {:.1} MB resident summed over {} processes ({:.1} MB PSS), \
                 {:.2} %; GPU worker {:.1} MB",
                period.as_secs(),
                tray.rss,
                tray.cpu,
                open.rss,
                open.processes,
                open.pss,
                open.cpu,
                open.worker_rss.max(tray.worker_rss)
            );
            REPORT.line(
                &format!("app_{mode}_tray_rss"),
                tray.rss,
                "MB",
                "target",
                150.0,
                "<= 150 MB",
            );
            REPORT.line(
                &format!("app_{mode}_dashboard_pss"),
                open.pss,
                "MB",
                "target",
                150.0,
                "<= 150 MB",
            );
            if let Some(Some(blank)) = &blank {
                REPORT.line(
                    &format!("app_{mode}_dashboard_pss_vs_blank_webkit"),
                    open.pss,
                    "MB",
                    "webkit_blank_window_pss",
                    blank.pss,
                    "report",
                );
            }
            REPORT.line(
                &format!("app_{mode}_dashboard_rss_sum"),
                open.rss,
                "MB",
                &format!("app_{mode}_dashboard_pss"),
                open.pss,
                "report",
            );
            REPORT.line(
                &format!("app_{mode}_tray_cpu"),
                tray.cpu,
                "% of a core",
                "none",
                0.0,
                "report",
            );
            REPORT.line(
                &format!("app_{mode}_dashboard_cpu"),
                open.cpu,
                "% of a core",
                &format!("app_{mode}_tray_cpu"),
                tray.cpu,
                "report",
            );
            if demo {
                REPORT.line(
                    "gpu_worker_demo_rss",
                    open.worker_rss.max(tray.worker_rss),
                    "MB",
                    "app_demo_tray_rss",
                    tray.rss,
                    "report",
                );
            }
        }
    }

    /// Stops the app (SIGTERM: it stops its node cleanly) when dropped.
    struct App(Child);

    impl Drop for App {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg(self.0.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn start(home: &Path, display: &str, demo: bool, minimized: bool) -> App {
        let config = home.join("config/spare");
        std::fs::create_dir_all(&config).unwrap();
        let port = 21_000
            + u16::from(demo) * 7
            + u16::from(minimized) * 3
            + (std::process::id() % 500) as u16;
        std::fs::write(
            config.join("config.toml"),
            format!("[relay]\nport = {port}\n"),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_spare-app"));
        if demo {
            command.arg("--demo");
        }
        if minimized {
            command.arg("--minimized");
        }
        spawn(command, home, display)
    }

    /// Starts `command` with its own home folders on `display`.
    fn spawn(mut command: Command, home: &Path, display: &str) -> App {
        let child = command
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("DISPLAY", display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        App(child)
    }

    /// `minimized`: the app in the tray with no dashboard window (it has no WebKit
    /// processes then); otherwise with the dashboard open.
    fn measure(display: &str, demo: bool, minimized: bool, period: Duration) -> Figures {
        let home = tempfile::tempdir().unwrap();
        let app = start(home.path(), display, demo, minimized);
        sample(app, demo, minimized, period)
    }

    /// Samples `app` and the processes under it over `period`, once its WebKit processes
    /// (unless `minimized`) and its work (`demo`) have started; then stops it.
    fn sample(app: App, demo: bool, minimized: bool, period: Duration) -> Figures {
        let pid = app.0.id();
        // WebKit starts its processes and the dashboard loads; demo work begins.
        let web_process = if minimized {
            None
        } else {
            Some(wait_for_webkit(pid))
        };
        std::thread::sleep(Duration::from_secs(if demo { 10 } else { 3 }));
        let cpu_start: f64 = app_processes(pid)
            .iter()
            .filter_map(|p| cpu_seconds(*p))
            .sum();
        let started = Instant::now();
        let mut peak = Figures {
            rss: 0.0,
            pss: 0.0,
            cpu: 0.0,
            worker_rss: 0.0,
            processes: 0,
            web_process,
        };
        while started.elapsed() < period {
            let processes = app_processes(pid);
            let rss: f64 = processes.iter().filter_map(|p| rss_mb(*p)).sum();
            if rss > peak.rss {
                peak.rss = rss;
                peak.processes = processes.len();
            }
            peak.pss = peak
                .pss
                .max(processes.iter().filter_map(|p| pss_mb(*p)).sum());
            let worker: f64 = workers(pid).iter().filter_map(|p| rss_mb(*p)).sum();
            peak.worker_rss = peak.worker_rss.max(worker);
            std::thread::sleep(Duration::from_millis(250));
        }
        let cpu_end: f64 = app_processes(pid)
            .iter()
            .filter_map(|p| cpu_seconds(*p))
            .sum();
        peak.cpu = (cpu_end - cpu_start).max(0.0) / started.elapsed().as_secs_f64() * 100.0;
        drop(app);
        peak
    }

    /// Waits for the web process under `pid`; returns its executable's path.
    fn wait_for_webkit(pid: u32) -> std::path::PathBuf {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(web) = descendants(pid)
                .into_iter()
                .find(|p| command_line(*p).contains("WebKitWebProcess"))
                && let Ok(path) = std::fs::read_link(format!("/proc/{web}/exe"))
            {
                return path;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the app started no WebKit process within 60 s");
    }

    /// The app and its WebKit processes: everything under it but GPU workers.
    fn app_processes(pid: u32) -> Vec<u32> {
        let mut all = vec![pid];
        all.extend(
            descendants(pid)
                .into_iter()
                .filter(|p| !command_line(*p).contains(compute::worker::WORKER_ARG)),
        );
        all
    }

    fn workers(pid: u32) -> Vec<u32> {
        descendants(pid)
            .into_iter()
            .filter(|p| command_line(*p).contains(compute::worker::WORKER_ARG))
            .collect()
    }
}
