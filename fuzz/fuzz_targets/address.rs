//! The address header parser never panics, and what it accepts re-encodes to
//! the bytes it consumed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_httvps::TargetAddr;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((target, used))) = TargetAddr::decode(data) {
        let mut out = Vec::new();
        target.encode(&mut out);
        assert_eq!(&out[..], &data[..used]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(target) = TargetAddr::parse(text) {
            assert_eq!(TargetAddr::parse(&target.to_string()).unwrap(), target);
        }
    }
});
