//! Receipts from untrusted bytes: never a panic; whatever decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use receipt::Receipt;

fuzz_target!(|data: &[u8]| {
    if let Ok(receipt) = Receipt::from_bytes(data) {
        assert_eq!(receipt.to_bytes(), data);
    }
});
