//! Hidden hook for the fuzz target `relay_control` and the proptests.

use std::time::{Duration, Instant};

use super::{Claims, RegisterGrant, ServerConfig, ServerEvent, ServerSession};
use crate::code::ErrorCode;
use crate::codec::decode_server;
use crate::message::{Forward, ServerMessage, Token, TunnelConfig};
use crate::server::Refusal;

/// Drives one session from raw client bytes: `0xff` separates steps, the
/// first byte of each picks the input (bytes, timer, shutdown, a stray
/// verdict) and how far time moves. The verdicts follow the input too: a
/// token whose length is a multiple of 3 is refused, and so is a tunnel
/// whose name starts with `x`. Asserts the session's invariants; returns
/// how many heartbeats were answered (how deep the input went).
pub fn drive(data: &[u8]) -> usize {
    let config = ServerConfig {
        max_line: 4096,
        max_soft_errors: 4,
        ..ServerConfig::default()
    };
    let mut now = Instant::now();
    let mut session = ServerSession::new(config.clone(), now);
    let mut closes = 0;
    let mut errors = 0;
    let mut answered = 0;
    for step in data.split(|&b| b == 0xff) {
        let Some((&op, body)) = step.split_first() else {
            continue;
        };
        now += Duration::from_secs(u64::from(op & 0x0f) * 4);
        let was_closed = session.is_closed();
        match op >> 4 {
            0..=11 => session.handle_bytes(body, now),
            12 => session.handle_timeout(now),
            13 => session.shutdown(),
            // Verdicts nobody asked for are errors, never panics.
            14 => {
                let _ = session.heartbeat_ok("2026-01-01T00:00:00Z");
            }
            _ => {
                // Every event is answered at once below, so nothing waits
                // for a verdict here: an open session calls it misuse.
                let refusal = Refusal::new(ErrorCode::ServerError, "x", "x");
                let open = !was_closed;
                assert_eq!(session.register_result(Err(refusal.clone())).is_err(), open);
                assert_eq!(session.auth_verdict(Err(refusal)).is_err(), open);
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::Authenticate { token, .. } => {
                    let verdict = if token.expose().len() % 3 == 0 {
                        Err(Refusal::new(ErrorCode::InvalidToken, "bad_signature", "no"))
                    } else {
                        Ok(Claims { sub: "sub".into() })
                    };
                    session.auth_verdict(verdict).expect("asked for");
                }
                ServerEvent::Register { info, .. } => {
                    let result = if info.name.starts_with('x') {
                        Err(
                            Refusal::new(ErrorCode::RateLimit, "tunnel_creation", "wait")
                                .with_retry_after(60),
                        )
                    } else {
                        Ok(grant(&info.ports))
                    };
                    session.register_result(result).expect("asked for");
                }
                ServerEvent::Heartbeat { .. } => {
                    session
                        .heartbeat_ok("2026-01-01T00:00:00Z")
                        .expect("asked for");
                    answered += 1;
                }
                ServerEvent::RegisterAck { tunnel_id } => {
                    assert_eq!(session.tunnel_id(), Some(tunnel_id.as_str()));
                }
                ServerEvent::Refused { failure } => assert!(!failure.wire().close),
                ServerEvent::Closed { .. } => closes += 1,
            }
        }
        let mut sent = 0;
        while let Some(line) = session.poll_transmit() {
            sent += 1;
            // Every line is one line a client can read.
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(line.last(), Some(&b'\n'));
            let message = decode_server(&line[..line.len() - 1]).expect("our lines decode");
            errors += usize::from(matches!(message, ServerMessage::Error(_)));
        }
        if was_closed {
            assert_eq!(sent, 0, "nothing after the close");
        }
        assert!(closes <= 1);
        assert_eq!(session.is_closed(), closes == 1);
        assert_eq!(session.poll_timeout().is_none(), session.is_closed());
        assert!(session.decoder.buffered() <= config.max_line);
        // The soft-error cap bounds what a peer can make the relay write.
        assert!(
            errors <= config.max_soft_errors as usize + 1,
            "{errors} errors"
        );
    }
    answered
}

fn grant(ports: &[u16]) -> RegisterGrant {
    RegisterGrant {
        tunnel_id: "6f1c7e0e-0000-4000-8000-000000000001".into(),
        config: TunnelConfig {
            endpoint: "relay.example:51820".into(),
            public_key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
            allowed_ips: vec!["10.0.0.0/24".into()],
            address: "10.0.0.7/32".into(),
            forwards: ports
                .iter()
                .map(|&port| Forward {
                    port,
                    public: format!("relay.example:{}", 40000 + u32::from(port) % 20000),
                })
                .collect(),
        },
        reconnect_token: Token::new("rt"),
    }
}
