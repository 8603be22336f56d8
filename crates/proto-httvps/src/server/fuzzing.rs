//! Hidden hooks for the fuzz targets in `fuzz/` (`server_session`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{
    Action, CloseReason, Handshake, PingLimit, Session, SessionParams, StreamEnd, close_code,
};

/// Drives a handshake and then a whole session from raw client bytes:
/// `0xff` separates messages, the first one is the hello, and the first
/// byte of each later one picks the input (text, binary, stream events,
/// timer, drain). Asserts the machine's invariants.
pub fn drive(data: &[u8]) {
    let start = Instant::now();
    let mut chunks = data.split(|&b| b == 0xff);
    let handshake = Handshake::new(start, Duration::from_secs(10), 4096, PingLimit::default());
    let Some(first) = chunks.next() else { return };
    let (binary_data, flow_control) = match std::str::from_utf8(first) {
        Ok(text) => match handshake.handle_text(text) {
            Ok(hello) => (hello.binary_data, hello.flow_control),
            Err(reject) => {
                assert_ne!(reject.close_code, close_code::NORMAL);
                (false, false)
            }
        },
        Err(_) => {
            let _ = handshake.handle_binary();
            (false, false)
        }
    };
    let params = SessionParams {
        max_streams: 4,
        max_frame_len: 4096,
        max_violations: 8,
        recently_closed: 8,
        max_stream_id_len: 32,
        stream_ready: true,
        binary_data,
        flow_control,
        windows: crate::flow::WindowLimits::default(),
        rtt: Duration::from_millis(100),
        idle_timeout: Duration::from_secs(60),
        pings: PingLimit::default(),
        drain_timeout: Duration::from_secs(5),
    };
    let mut session = Session::new(params, start);
    let mut now = start;
    let mut serials: HashMap<String, u64> = HashMap::new();
    // Ids the driver holds a slot for: from `Open` to `Abort` or `Finish`.
    let mut live: HashSet<String> = HashSet::new();
    for chunk in chunks {
        let Some((&op, body)) = chunk.split_first() else {
            continue;
        };
        now += Duration::from_secs(u64::from(op & 0x0f) * 4);
        match op >> 4 {
            0..=8 => {
                if let Ok(text) = std::str::from_utf8(body) {
                    session.handle_text(now, text);
                }
            }
            9..=11 => session.handle_binary_message(now, body),
            12 if op & 1 == 1 => {
                // The driver reports bytes written to an upstream.
                if let Some((id, serial)) = serials.iter().next() {
                    session.handle_consumed(&id.clone(), *serial, body.len() * 4096, now);
                }
            }
            12 => {
                if let Some((id, serial)) = serials.iter().next() {
                    let end = StreamEnd {
                        reason: CloseReason::Eof,
                        error: None,
                    };
                    session.handle_stream_end(&id.clone(), *serial, end);
                }
            }
            13 => session.handle_timeout(now),
            14 => session.begin_drain(now),
            _ => match op & 3 {
                0 => session.handle_oversized(),
                1 => session.handle_ping(now),
                _ => session.handle_pong(now),
            },
        }
        let mut closes = 0;
        while let Some(action) = session.poll_action() {
            match action {
                // An open never replaces a slot, and only live streams
                // are dialed, finished or aborted.
                Action::Open { id, .. } => assert!(live.insert(id.to_string()), "{id}"),
                Action::Finish { id } | Action::Abort { id } => {
                    assert!(live.remove(&*id), "{id}");
                }
                Action::Dial { id, serial, .. } => {
                    assert!(live.contains(&*id), "{id}");
                    serials.insert(id.to_string(), serial);
                }
                Action::Close { .. } => closes += 1,
                Action::Send(frame) => {
                    // Everything the machine sends must be a frame a peer can read.
                    let text = crate::frame::encode_to_string(&frame);
                    assert!(crate::frame::decode(&text).is_ok(), "{text}");
                }
                _ => {}
            }
        }
        assert!(closes <= 1);
        assert!(session.open_streams() <= 4);
        assert_eq!(session.open_streams(), live.len());
        assert_eq!(session.poll_timeout().is_none(), session.is_closed());
    }
}
