//! Windows: the two Win32 queries Spare needs. Each fills a struct that we own and
//! reads nothing else, which is the whole of this module's `unsafe`.

#![allow(unsafe_code)]

use std::time::Duration;

use windows_sys::Win32::System::Power::{GetSystemPowerStatus, SYSTEM_POWER_STATUS};
use windows_sys::Win32::System::SystemInformation::GetTickCount;
use windows_sys::Win32::UI::Input::KeyboardAndMouse::{GetLastInputInfo, LASTINPUTINFO};

use super::InputIdle;

/// `GetLastInputInfo`: the tick count of the last input in this desktop session.
pub(crate) struct LastInput;

impl InputIdle for LastInput {
    fn name(&self) -> &'static str {
        "Windows GetLastInputInfo"
    }

    fn idle(&mut self) -> Result<Duration, String> {
        let mut info = LASTINPUTINFO {
            cbSize: size_of::<LASTINPUTINFO>() as u32,
            dwTime: 0,
        };
        // SAFETY: `info` is a live, writable LASTINPUTINFO with `cbSize` set as the API
        // requires; the call writes only into it.
        let ok = unsafe { GetLastInputInfo(&mut info) };
        if ok == 0 {
            return Err(
                "GetLastInputInfo failed: Spare must run in the owner's desktop \
                        session (not as a service) to see keyboard and mouse input"
                    .into(),
            );
        }
        // SAFETY: GetTickCount takes no arguments and has no preconditions.
        let now = unsafe { GetTickCount() };
        // Both are milliseconds since boot in 32 bits; the wrapping difference stays right
        // across the 49.7-day wrap.
        Ok(Duration::from_millis(u64::from(
            now.wrapping_sub(info.dwTime),
        )))
    }
}

/// `GetSystemPowerStatus`: (on battery, battery percent); both `None` without a battery.
pub(crate) fn power_status() -> (Option<bool>, Option<u32>) {
    let mut status = SYSTEM_POWER_STATUS {
        ACLineStatus: 0,
        BatteryFlag: 0,
        BatteryLifePercent: 0,
        SystemStatusFlag: 0,
        BatteryLifeTime: 0,
        BatteryFullLifeTime: 0,
    };
    // SAFETY: `status` is a live, writable SYSTEM_POWER_STATUS; the call writes only into it.
    let ok = unsafe { GetSystemPowerStatus(&mut status) };
    // BatteryFlag 128: no system battery; 255: unknown.
    if ok == 0 || status.BatteryFlag == 128 || status.BatteryFlag == 255 {
        return (None, None);
    }
    let on_battery = match status.ACLineStatus {
        0 => Some(true),
        1 => Some(false),
        _ => None,
    };
    let percent = (status.BatteryLifePercent <= 100).then(|| u32::from(status.BatteryLifePercent));
    (on_battery, percent)
}
