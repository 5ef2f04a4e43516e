//! Destination authorities from untrusted text: parsed strictly, checked, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::policy::{Authority, EgressPolicy};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(authority) = text.parse::<Authority>() {
            let _ = EgressPolicy::open().check_authority(&authority);
            // What parses prints back to something that parses the same.
            assert_eq!(authority.to_string().parse::<Authority>(), Ok(authority));
        }
    }
});
