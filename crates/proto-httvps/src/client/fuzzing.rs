//! Hidden hooks for the fuzz targets in `fuzz/` (`client_session`).

use std::time::{Duration, Instant};

use super::{Client, Config, Event, Features, SessionInfo};
use crate::TargetAddr;

/// Drives a whole client from raw gateway bytes: the first byte of each
/// `0xff`-separated chunk picks the input (text, binary, close, timer,
/// command), the rest is its content. Asserts the machine's invariants.
pub fn drive(data: &[u8]) {
    let start = Instant::now();
    let config = Config {
        max_frame_len: 4096,
        send_queue_frames: 4,
        ..Config::default()
    };
    // The first byte picks the start: a fresh handshake, or a session
    // already established (so the fuzzer reaches streams quickly).
    let (mut client, data) = match data.split_first() {
        Some((&mode, rest)) if mode & 1 == 1 => {
            let features = Features {
                stream_ready: mode & 2 != 0,
                half_close: mode & 4 != 0,
                binary_data: mode & 8 != 0,
                flow_control: mode & 0x80 != 0,
            };
            let info = SessionInfo {
                session_id: "fuzz".into(),
                max_streams: u32::from((mode >> 4) & 7),
                features,
            };
            (Client::established(config, info, start), rest)
        }
        Some((_, rest)) => (Client::new(config, "token", start), rest),
        None => return,
    };
    let mut now = start;
    let mut closed = 0;
    let target = TargetAddr::parse("example.com:443").expect("valid target");
    for chunk in data.split(|&b| b == 0xff) {
        let Some((&op, body)) = chunk.split_first() else {
            continue;
        };
        now += Duration::from_millis(u64::from(op & 0x0f) * 500);
        match op >> 4 {
            0..=5 => {
                if let Ok(text) = std::str::from_utf8(body)
                    && let Some(data) = client.handle_text(now, text)
                {
                    assert!(client.is_open(&data.stream_id));
                }
            }
            6..=8 => {
                if let Some(data) = client.handle_binary(now, body) {
                    assert!(client.is_open(&data.stream_id));
                    let _ = data.payload.bytes(body);
                }
            }
            9 => client.handle_timeout(now),
            10 => {
                let _ = client.open_stream(None, &target);
            }
            11 => {
                let _ = client.send_data("s1", body);
            }
            12 => {
                let _ = client.shutdown_stream("s1");
                client.close_stream("s2", None);
            }
            13 => client.handle_control(now),
            14 => client.handle_close(body.first().map(|&b| 1000 + u16::from(b)), ""),
            _ => client.handle_transport_error("fuzz"),
        }
        while client.poll_transmit().is_some() {}
        while let Some(event) = client.poll_event() {
            if let Event::SessionClosed(_) = event {
                closed += 1;
            }
        }
        assert!(closed <= 1);
        assert_eq!(
            client.poll_timeout().is_none(),
            client.close_reason().is_some()
        );
        let max = client.session_info().map_or(0, |i| i.max_streams as usize);
        assert!(client.open_streams() <= max);
    }
}
