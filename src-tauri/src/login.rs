//! Start at login. On Linux Spare writes its own XDG autostart entry: the
//! autostart plugin's writes `~/.config/autostart` even where `XDG_CONFIG_HOME` points
//! elsewhere (desktops then never read it), and leaves the program's path unquoted, so a
//! path with a space (an AppImage in "My Apps") starts nothing. On Windows and macOS the
//! plugin's registry key and launch agent are used as they are.

use tauri::AppHandle;

use crate::error::CommandError;

/// Whether Spare starts at login.
pub fn is_enabled(app: &AppHandle) -> Result<bool, CommandError> {
    imp::is_enabled(app).map_err(|e| CommandError::IoError {
        message: format!("cannot read the start-at-login setting: {e}"),
    })
}

/// Turns start at login on or off; answers the setting now in force.
pub fn set(app: &AppHandle, enabled: bool) -> Result<bool, CommandError> {
    imp::set(app, enabled).map_err(|e| CommandError::IoError {
        message: format!("cannot change the start-at-login setting: {e}"),
    })?;
    is_enabled(app)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::path::{Path, PathBuf};

    use tauri::{AppHandle, Manager as _};

    /// The entry's file name in the autostart folder.
    const ENTRY: &str = "Spare.desktop";

    pub fn is_enabled(_app: &AppHandle) -> io::Result<bool> {
        Ok(entry_path()?.exists())
    }

    pub fn set(app: &AppHandle, enabled: bool) -> io::Result<()> {
        let path = entry_path()?;
        if !enabled {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        // An AppImage runs from a temporary mount: the entry must start the image.
        let program = match app.env().appimage {
            Some(image) => PathBuf::from(image),
            None => std::env::current_exe()?,
        };
        write(&path, &entry(&program)?)
    }

    /// `$XDG_CONFIG_HOME/autostart/Spare.desktop` (`~/.config` when unset), as the XDG
    /// Autostart spec says desktops look for it.
    fn entry_path() -> io::Result<PathBuf> {
        let dirs = directories::BaseDirs::new().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no home folder to find ~/.config in",
            )
        })?;
        Ok(dirs.config_dir().join("autostart").join(ENTRY))
    }

    /// The entry that starts `program` in the tray.
    pub(super) fn entry(program: &Path) -> io::Result<String> {
        let program = program.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "Spare's path {} is not valid UTF-8, which an autostart entry cannot hold: \
                     move Spare to a folder whose name is",
                    program.display()
                ),
            )
        })?;
        // The spec writes a literal % as %%, but GLib looks for the program by its
        // written path before it reads %% back: GNOME could never start such an entry.
        if program.contains('%') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "Spare's path {program} holds a %, from which desktops cannot start a \
                     program at login: move Spare to a folder without % in its name"
                ),
            ));
        }
        Ok(format!(
            "[Desktop Entry]\n\
             Type=Application\n\
             Version=1.0\n\
             Name=Spare\n\
             Comment=Lends this computer's idle GPU and bandwidth while you are away\n\
             Exec={} --minimized\n\
             Icon=spare-app\n\
             Terminal=false\n\
             StartupNotify=false\n\
             X-GNOME-Autostart-enabled=true\n",
            exec_arg(program)
        ))
    }

    /// One argument of an `Exec=` line, quoted and escaped as the Desktop Entry spec
    /// says: `%` doubled, quoted when it holds a reserved character, and inside quotes
    /// `"`, `` ` ``, `$` and `\` escaped (the backslash twice: the value's own escaping
    /// applies first). A newline becomes the value escape `\n`.
    pub(super) fn exec_arg(arg: &str) -> String {
        const RESERVED: &[char] = &[
            ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#',
            '(', ')', '`',
        ];
        let arg = arg.replace('%', "%%");
        if !arg.contains(RESERVED) {
            return arg;
        }
        let mut out = String::with_capacity(arg.len() + 2);
        out.push('"');
        for c in arg.chars() {
            match c {
                '"' | '`' | '$' => {
                    out.push_str("\\\\");
                    out.push(c);
                }
                '\\' => out.push_str("\\\\\\\\"),
                '\n' => out.push_str("\\n"),
                _ => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// Writes `text` to `path` whole (a temporary file renamed over it), creating the
    /// folder.
    fn write(path: &Path, text: &str) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temporary = dir.join(format!(".{ENTRY}.new"));
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, path)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use tauri::AppHandle;
    use tauri_plugin_autostart::ManagerExt as _;

    pub fn is_enabled(app: &AppHandle) -> Result<bool, tauri_plugin_autostart::Error> {
        app.autolaunch().is_enabled()
    }

    pub fn set(app: &AppHandle, enabled: bool) -> Result<(), tauri_plugin_autostart::Error> {
        let launcher = app.autolaunch();
        if enabled {
            launcher.enable()
        } else {
            launcher.disable()
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::path::Path;

    use super::imp::{entry, exec_arg};

    /// What a desktop reads back from an `Exec=` value: the string escapes first, then
    /// the quoting (the Desktop Entry spec's order), then `%%`.
    fn unquote(value: &str) -> Vec<String> {
        let mut unescaped = String::new();
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                unescaped.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => unescaped.push('\n'),
                Some('\\') => unescaped.push('\\'),
                Some(other) => {
                    unescaped.push('\\');
                    unescaped.push(other);
                }
                None => unescaped.push('\\'),
            }
        }
        let mut args = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        let mut chars = unescaped.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => current.extend(chars.next()),
                ' ' if !quoted => args.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        args.push(current);
        args.into_iter().map(|a| a.replace("%%", "%")).collect()
    }

    #[test]
    fn a_plain_path_is_written_as_it_is() {
        assert_eq!(exec_arg("/usr/bin/spare-app"), "/usr/bin/spare-app");
        assert_eq!(exec_arg("--minimized"), "--minimized");
    }

    #[test]
    fn a_path_with_a_percent_sign_is_refused_with_the_fix() {
        let error = entry(Path::new("/home/ana/100% real/spare-app")).unwrap_err();
        assert!(
            error.to_string().contains("without % in its name"),
            "{error}"
        );
    }

    #[test]
    fn any_path_reads_back_as_the_same_program() {
        for path in [
            "/usr/bin/spare-app",
            "/home/ana/My Apps/Spare.AppImage",
            "/home/ana/$HOME/`x`/\"q\"/back\\slash/Spare",
            "/opt/it's (new)/spare-app",
            "/tmp/line\nbreak/spare-app",
        ] {
            let text = entry(Path::new(path)).unwrap();
            let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).unwrap();
            assert_eq!(unquote(exec), [path, "--minimized"], "{exec}");
        }
    }

    /// GLib's own desktop-entry parser (`gio launch`, as GNOME starts autostart entries)
    /// runs a program from a folder whose name holds every character that needs care.
    #[test]
    fn glib_launches_the_program_from_an_awkward_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join("My Apps $HOME `x` \"q\" back\\slash (it's) ~ #;&|*?<>");
        std::fs::create_dir_all(&folder).unwrap();
        let program = folder.join("spare-app");
        let marker = dir.path().join("ran");
        std::fs::write(
            &program,
            format!("#!/bin/sh\nprintf '%s' \"$*\" > '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let desktop = dir.path().join("Spare.desktop");
        std::fs::write(&desktop, entry(&program).unwrap()).unwrap();
        let launched = std::process::Command::new("gio")
            .arg("launch")
            .arg(&desktop)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .status()
            .expect("gio (apt: libglib2.0-bin) runs the entry");
        assert!(launched.success(), "gio launch failed: {launched}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !marker.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "--minimized");
    }

    #[test]
    fn the_entry_starts_spare_in_the_tray_and_is_enabled() {
        let text = entry(Path::new("/usr/bin/spare-app")).unwrap();
        assert!(text.starts_with("[Desktop Entry]\n"));
        assert!(text.contains("\nType=Application\n"));
        assert!(text.contains("\nExec=/usr/bin/spare-app --minimized\n"));
        assert!(text.contains("\nX-GNOME-Autostart-enabled=true\n"));
        assert!(!text.contains("Hidden="));
    }
}
