//! The Relay's control channel from raw bytes: the same input drives the
//! relay's `ServerSession` (verdicts picked from the input) and the
//! desktop's `ClientMachine`, cut into steps at `0xff`, each step's first
//! byte choosing the input and how far time moves (see
//! `proto_relay::fuzzing`). Both drives assert their machine's invariants:
//! every line sent decodes, bounded buffers and output, one close.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto_relay::fuzzing::drive(data);
});
