//! The gateway's machines, driven from raw client bytes: the first message
//! goes through the hello check, the rest through the established session,
//! with stream ends, timers and a drain mixed in (see
//! `proto_httvps::server::fuzzing::drive`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto_httvps::server::fuzzing::drive(data);
});
