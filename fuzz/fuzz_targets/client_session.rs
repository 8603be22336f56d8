//! The whole client machine, driven from raw gateway bytes: handshake,
//! streams, keepalive and closes never panic, and the machine always ends in
//! a defined state (see `proto_httvps::client::fuzzing::drive`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto_httvps::client::fuzzing::drive(data);
});
