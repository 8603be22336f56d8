//! `binary_data` messages: any bytes read against several frame limits agree
//! and what reads re-encodes to the same bytes; the encoder at the 255-byte
//! stream-id edge; and a client and a gateway machine joined in memory
//! exchanging binary and JSON `stream_data` (see
//! `proto_httvps::binary::fuzzing::drive`, which asserts the properties).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto_httvps::binary::fuzzing::drive(data);
});
