//! The SETTINGS frame (RFC 9114 §7.2.4): identifier/value pairs, each a
//! varint. Unknown identifiers are ignored; HTTP/2's are an error.

use bytes::{Bytes, BytesMut};

use crate::error::{Code, H3Error};
use crate::frame;
use crate::varint;

/// Setting identifiers this crate uses.
pub mod id {
    /// RFC 9204 §5: the QPACK dynamic table's capacity; we send 0.
    pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x1;
    /// RFC 9114 §7.2.4.1: the largest field section a peer accepts.
    pub const MAX_FIELD_SECTION_SIZE: u64 = 0x6;
    /// RFC 9204 §5: streams that may block on the dynamic table; we send 0.
    pub const QPACK_BLOCKED_STREAMS: u64 = 0x7;
    /// RFC 8441 §3 / RFC 9220 §3: extended CONNECT (`:protocol`) allowed.
    pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x8;
    /// HTTP/2 settings RFC 9114 §7.2.4.1 forbids in HTTP/3.
    pub const HTTP2_ONLY: [u64; 4] = [0x2, 0x3, 0x4, 0x5];
}

/// The settings one side sent, as far as we use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`.
    pub enable_connect_protocol: bool,
    /// `SETTINGS_MAX_FIELD_SECTION_SIZE`, if given (unbounded otherwise).
    pub max_field_section_size: Option<u64>,
    /// `SETTINGS_QPACK_MAX_TABLE_CAPACITY` (0 unless given).
    pub qpack_max_table_capacity: u64,
}

impl Settings {
    /// Parses a SETTINGS frame's payload.
    pub fn decode(mut payload: &[u8]) -> Result<Settings, H3Error> {
        let bad = |why: String| H3Error::new(Code::SettingsError, why);
        let mut seen = Vec::new();
        let mut s = Settings::default();
        while !payload.is_empty() {
            let (Some(key), Some(value)) = (varint::get(&mut payload), varint::get(&mut payload))
            else {
                return Err(H3Error::new(Code::FrameError, "truncated SETTINGS"));
            };
            if id::HTTP2_ONLY.contains(&key) {
                return Err(bad(format!("HTTP/2 setting {key:#x} in SETTINGS")));
            }
            if seen.contains(&key) {
                return Err(bad(format!("setting {key:#x} given twice")));
            }
            seen.push(key);
            match key {
                id::ENABLE_CONNECT_PROTOCOL => match value {
                    0 | 1 => s.enable_connect_protocol = value == 1,
                    // RFC 8441 §3: any other value is a protocol error.
                    _ => return Err(bad(format!("ENABLE_CONNECT_PROTOCOL = {value}"))),
                },
                id::MAX_FIELD_SECTION_SIZE => s.max_field_section_size = Some(value),
                id::QPACK_MAX_TABLE_CAPACITY => s.qpack_max_table_capacity = value,
                _ => {}
            }
        }
        Ok(s)
    }

    /// The whole SETTINGS frame we send: no dynamic table, no blocked
    /// streams, our field section bound and, on a server, extended CONNECT.
    pub fn frame(&self) -> Bytes {
        let mut payload = BytesMut::new();
        let mut put = |k: u64, v: u64| {
            varint::put(&mut payload, k);
            varint::put(&mut payload, v);
        };
        put(id::QPACK_MAX_TABLE_CAPACITY, 0);
        put(id::QPACK_BLOCKED_STREAMS, 0);
        if let Some(max) = self.max_field_section_size {
            put(id::MAX_FIELD_SECTION_SIZE, max);
        }
        if self.enable_connect_protocol {
            put(id::ENABLE_CONNECT_PROTOCOL, 1);
        }
        frame::encode(frame::kind::SETTINGS, &payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameReader};

    fn payload(pairs: &[(u64, u64)]) -> Vec<u8> {
        let mut p = Vec::new();
        for (k, v) in pairs {
            varint::put(&mut p, *k);
            varint::put(&mut p, *v);
        }
        p
    }

    #[test]
    fn our_frame_parses_back() {
        let ours = Settings {
            enable_connect_protocol: true,
            max_field_section_size: Some(16_384),
            qpack_max_table_capacity: 0,
        };
        let mut r = FrameReader::new(1024);
        r.push(&ours.frame());
        let Some(Frame::Other { kind, payload }) = r.next_frame().unwrap() else {
            panic!("no frame")
        };
        assert_eq!(kind, frame::kind::SETTINGS);
        assert_eq!(Settings::decode(&payload).unwrap(), ours);
    }

    #[test]
    fn unknown_ids_are_ignored_and_bad_ones_refused() {
        let s = Settings::decode(&payload(&[(0x21, 5), (0x8, 1), (0x33, 1)])).unwrap();
        assert!(s.enable_connect_protocol);
        for bad in [
            payload(&[(0x8, 2)]),
            payload(&[(0x2, 0)]),
            payload(&[(0x6, 1), (0x6, 2)]),
        ] {
            assert_eq!(
                Settings::decode(&bad).unwrap_err().code,
                Code::SettingsError
            );
        }
        assert_eq!(
            Settings::decode(&[0x08]).unwrap_err().code,
            Code::FrameError
        );
    }
}
