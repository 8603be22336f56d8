//! The `binary_data` message parser never panics, and what it accepts
//! re-encodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_httvps::binary::encode_binary_stream_data;
use proto_httvps::{MAX_FRAME_LEN, decode_binary_limited};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_binary_limited(data, MAX_FRAME_LEN) {
        let mut out = Vec::new();
        assert!(encode_binary_stream_data(
            frame.stream_id,
            &data[frame.payload_at..],
            &mut out
        ));
        assert_eq!(out, data);
    }
});
