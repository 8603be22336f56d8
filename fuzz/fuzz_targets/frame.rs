//! Any text either fails to decode or decodes to a frame that re-encodes to
//! text decoding to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_httvps::{decode, encode_to_string};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = decode(text) {
        let again = encode_to_string(&frame);
        assert_eq!(decode(&again).expect("re-encoded frame decodes"), frame);
    }
});
