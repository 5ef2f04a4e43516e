//! Frames and datagram headers from untrusted bytes: never a panic, and whatever
//! decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = wire::decode(data) {
        assert_eq!(wire::encode(&frame), data[..used]);
    }
    let mut reader = wire::FrameReader::new();
    for chunk in data.chunks(7) {
        reader.push(chunk);
        while let Ok(Some(_)) = reader.next_frame() {}
    }
    let _ = wire::decode_datagram(data);
});
