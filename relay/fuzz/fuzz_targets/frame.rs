//! Frames and datagram headers from untrusted bytes: never a panic, and whatever
//! decodes survives a round trip (varints need not be minimal, so the bytes may differ).
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = wire::decode(data) {
        let again = wire::encode(&frame);
        assert!(used > 0 && used <= data.len());
        assert_eq!(wire::decode(&again), Ok(Some((frame, again.len()))));
    }
    let mut reader = wire::FrameReader::new();
    for chunk in data.chunks(7) {
        reader.push(chunk);
        while let Ok(Some(_)) = reader.next_frame() {}
    }
    let _ = wire::decode_datagram(data);
});
