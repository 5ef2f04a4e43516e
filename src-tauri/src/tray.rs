//! The tray icon and its menu: the state of each resource with its reason, pause and
//! resume, the dashboard, quit. Menu clicks call the same node API the dashboard does.

use node::{PauseFor, Status, Target};
use std::sync::Mutex;
use tauri::image::Image;
use tauri::menu::{IsMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};

use tauri::{AppHandle, Manager, Wry};

use crate::attention::{self, Attention, TrayState, TrayView};

/// The tray icon's id.
const TRAY_ID: &str = "spare";

/// The menu items whose text or state changes with the node's status.
pub struct TrayItems {
    gpu: MenuItem<Wry>,
    bandwidth: MenuItem<Wry>,
    resume: MenuItem<Wry>,
    start_again: MenuItem<Wry>,
    /// What is shown now: each change sets only what differs (the status changes up to
    /// four times a second; the icon and menu rarely do).
    shown: Mutex<Option<TrayView>>,
}

/// The icon for `state`, from `icons/`.
fn icon(state: TrayState) -> Image<'static> {
    let bytes: &'static [u8] = match state {
        TrayState::Lending => include_bytes!("../../icons/tray-lending.png"),
        TrayState::Waiting => include_bytes!("../../icons/tray-waiting.png"),
        TrayState::Paused => include_bytes!("../../icons/tray-paused.png"),
        TrayState::Attention => include_bytes!("../../icons/tray-attention.png"),
    };
    // The PNGs are ours and checked by a test: decoding cannot fail at run time.
    Image::from_bytes(bytes).unwrap_or_else(|_| Image::new(&[0, 0, 0, 0], 1, 1))
}

/// The durations a pause submenu offers, with their menu ids.
const DURATIONS: [(&str, &str); 3] = [
    ("1h", "For 1 hour"),
    ("tomorrow", "Until tomorrow"),
    ("until-resumed", "Until I resume"),
];

fn pause_menu(app: &AppHandle, target: Target, label: &str) -> tauri::Result<Submenu<Wry>> {
    let items = DURATIONS
        .iter()
        .map(|(id, text)| {
            MenuItem::with_id(
                app,
                format!("pause:{}:{id}", target_id(target)),
                *text,
                true,
                None::<&str>,
            )
        })
        .collect::<tauri::Result<Vec<_>>>()?;
    let refs: Vec<&dyn IsMenuItem<Wry>> = items.iter().map(|i| i as _).collect();
    Submenu::with_id_and_items(
        app,
        format!("pause:{}", target_id(target)),
        label,
        true,
        &refs,
    )
}

fn target_id(target: Target) -> &'static str {
    match target {
        Target::Gpu => "gpu",
        Target::Bandwidth => "bandwidth",
        Target::All => "all",
    }
}

/// Creates the tray icon and its menu.
pub fn create(app: &AppHandle) -> tauri::Result<TrayItems> {
    let gpu = MenuItem::with_id(app, "state:gpu", "GPU: starting", false, None::<&str>)?;
    let bandwidth = MenuItem::with_id(
        app,
        "state:bandwidth",
        "Bandwidth: starting",
        false,
        None::<&str>,
    )?;
    let resume = MenuItem::with_id(app, "resume", "Resume", false, None::<&str>)?;
    let start_again = MenuItem::with_id(app, "start", "Start the node again", false, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &gpu,
            &bandwidth,
            &PredefinedMenuItem::separator(app)?,
            &pause_menu(app, Target::Gpu, "Pause GPU")?,
            &pause_menu(app, Target::Bandwidth, "Pause bandwidth")?,
            &pause_menu(app, Target::All, "Pause all")?,
            &resume,
            &start_again,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "open", "Open dashboard", true, None::<&str>)?,
            &MenuItem::with_id(app, "quit", "Quit Spare", true, None::<&str>)?,
        ],
    )?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(TrayState::Waiting))
        .tooltip("Spare: starting")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(on_menu)
        .on_tray_icon_event(on_click)
        .build(app)?;
    Ok(TrayItems {
        gpu,
        bandwidth,
        resume,
        start_again,
        shown: Mutex::new(None),
    })
}

/// A left click opens the dashboard (the menu is on the right button).
fn on_click(tray: &TrayIcon, event: TrayIconEvent) {
    if let TrayIconEvent::Click {
        button: MouseButton::Left,
        button_state: MouseButtonState::Up,
        ..
    } = event
    {
        crate::show_dashboard(tray.app_handle());
    }
}

fn on_menu(app: &AppHandle, event: MenuEvent) {
    let id = event.id().as_ref().to_owned();
    match id.as_str() {
        "open" => crate::show_dashboard(app),
        "quit" => crate::quit(app),
        "resume" => crate::commands::spawn_action(app, |handle| handle.resume(Target::All)),
        "start" => crate::commands::spawn_retry(app),
        _ => {
            let Some((target, how_long)) = parse_pause(&id) else {
                return;
            };
            crate::commands::spawn_action(app, move |handle| handle.pause(target, how_long));
        }
    }
}

/// `pause:gpu:1h` → (GPU, one hour).
fn parse_pause(id: &str) -> Option<(Target, PauseFor)> {
    let mut parts = id.split(':');
    if parts.next()? != "pause" {
        return None;
    }
    let target = parts.next()?.parse().ok()?;
    let how_long = parts.next()?.parse().ok()?;
    Some((target, how_long))
}

/// Shows `status` (or why there is none) in the icon, the tooltip and the menu.
pub fn show(app: &AppHandle, status: Option<&Status>, down: Option<&str>, attention: &[Attention]) {
    let Some(items) = app.try_state::<TrayItems>() else {
        return;
    };
    let view = attention::tray_view(status, down, attention);
    let mut shown = items.shown.lock().unwrap_or_else(|p| p.into_inner());
    let old = shown.as_ref();
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        if old.is_none_or(|o| o.state != view.state) {
            let _ = tray.set_icon(Some(icon(view.state)));
        }
        if old.is_none_or(|o| o.tooltip != view.tooltip) {
            let _ = tray.set_tooltip(Some(&view.tooltip));
        }
    }
    if old.is_none_or(|o| o.gpu_line != view.gpu_line) {
        let _ = items.gpu.set_text(&view.gpu_line);
    }
    if old.is_none_or(|o| o.bandwidth_line != view.bandwidth_line) {
        let _ = items.bandwidth.set_text(&view.bandwidth_line);
    }
    if old.is_none_or(|o| o.resume != view.resume) {
        let _ = items.resume.set_enabled(view.resume);
    }
    if old.is_none_or(|o| o.start_again != view.start_again) {
        let _ = items.start_again.set_enabled(view.start_again);
    }
    *shown = Some(view);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pause_item_names_a_target_and_a_duration() {
        for target in [Target::Gpu, Target::Bandwidth, Target::All] {
            for (duration, _) in DURATIONS {
                let id = format!("pause:{}:{duration}", target_id(target));
                let (t, _) = parse_pause(&id).unwrap_or_else(|| panic!("{id} does not parse"));
                assert_eq!(t, target);
            }
        }
        assert_eq!(
            parse_pause("pause:gpu:1h"),
            Some((Target::Gpu, PauseFor::Seconds(3600)))
        );
        assert_eq!(parse_pause("open"), None);
    }

    #[test]
    fn the_tray_icons_decode() {
        for state in [
            TrayState::Lending,
            TrayState::Waiting,
            TrayState::Paused,
            TrayState::Attention,
        ] {
            let image = icon(state);
            assert_eq!((image.width(), image.height()), (64, 64), "{state:?}");
        }
    }
}
