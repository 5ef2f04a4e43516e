//! Tickets from untrusted text: never a panic; a parsed ticket prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::ticket::Ticket;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ticket) = text.parse::<Ticket>() {
            assert_eq!(ticket.to_string().parse::<Ticket>(), Ok(ticket));
        }
    }
});
