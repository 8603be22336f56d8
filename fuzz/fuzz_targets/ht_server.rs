//! The HT server machine driven from raw bytes: chunks (encrypted on the
//! client's keystream, or raw) on several connections of two sessions,
//! mixed with dial, read, write, DNS and timer reports, connection closes
//! and a shutdown (see `proto_ht::server::fuzzing::drive`, which asserts
//! the machine's invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto_ht::server::fuzzing::drive(data);
});
