//! Every rule of the session, with the exact lines on the wire.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::*;
use crate::code::ErrorCode;
use crate::message::Forward;

static T0: LazyLock<Instant> = LazyLock::new(Instant::now);

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const AUTH: &str = r#"{"type":"auth","token":"jwt","version":"1.0","client_info":{"os":"linux","version":"1.0.0"}}"#;
const REGISTER: &str = r#"{"type":"register","tunnel_info":{"name":"office-pc","protocol":"tcp","ports":[3389,22],"public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#;
const TID: &str = "7d3f0a52-1b8e-4c1e-9a57-0d2b6c9e8f10";

fn at(secs: f64) -> Instant {
    *T0 + Duration::from_secs_f64(secs)
}

fn config() -> ServerConfig {
    ServerConfig {
        features: vec!["tunnel".into()],
        server_version: "1.2.3".into(),
        ..ServerConfig::default()
    }
}

fn fresh() -> ServerSession {
    let mut s = ServerSession::new(config(), at(0.0));
    assert_eq!(
        sent(&mut s),
        [r#"{"type":"hello","version":"1.0","features":["tunnel"]}"#]
    );
    s
}

fn feed(s: &mut ServerSession, line: &str, secs: f64) {
    s.handle_bytes(format!("{line}\n").as_bytes(), at(secs));
}

fn sent(s: &mut ServerSession) -> Vec<String> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|line| {
            let text = String::from_utf8(line).unwrap();
            text.strip_suffix('\n').expect("one line").to_owned()
        })
        .collect()
}

/// The events that ask something of the driver (the `Refused` reports of
/// error lines already sent are [`refusals`]').
fn events(s: &mut ServerSession) -> Vec<ServerEvent> {
    std::iter::from_fn(|| s.poll_event())
        .filter(|e| !matches!(e, ServerEvent::Refused { .. }))
        .collect()
}

/// The reasons of the error lines sent that kept the connection.
fn refusals(s: &mut ServerSession) -> Vec<String> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            ServerEvent::Refused { failure } => Some(failure.wire().reason.to_owned()),
            _ => None,
        })
        .collect()
}

fn signed_in() -> ServerSession {
    let mut s = fresh();
    feed(&mut s, AUTH, 1.0);
    events(&mut s);
    s.auth_verdict(Ok(Claims {
        sub: "alice".into(),
    }))
    .unwrap();
    sent(&mut s);
    s
}

fn grant() -> RegisterGrant {
    RegisterGrant {
        tunnel_id: TID.into(),
        config: TunnelConfig {
            endpoint: "relay.example:51820".into(),
            public_key: KEY.into(),
            allowed_ips: vec!["10.0.0.0/24".into()],
            address: "10.0.0.7/32".into(),
            forwards: vec![Forward {
                port: 22,
                public: "relay.example:40022".into(),
            }],
        },
        reconnect_token: Token::new("rt-1"),
    }
}

fn registered() -> ServerSession {
    let mut s = signed_in();
    feed(&mut s, REGISTER, 2.0);
    events(&mut s);
    s.register_result(Ok(grant())).unwrap();
    sent(&mut s);
    s
}

fn heartbeat(tunnel_id: &str) -> String {
    format!(
        r#"{{"type":"heartbeat","tunnel_id":"{tunnel_id}","stats":{{"bytes_in":1024,"bytes_out":2048,"connected_since":"2026-05-01T10:00:00Z"}}}}"#
    )
}

fn error_line(code: u16, message: &str, reason: &str) -> String {
    format!(
        r#"{{"type":"error","code":{code},"message":"{message}","details":{{"reason":"{reason}"}}}}"#
    )
}

/// The session is closed, and its last event says why.
#[track_caller]
fn assert_closed(s: &mut ServerSession, reason: &str) {
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
    match events(s).as_slice() {
        [.., ServerEvent::Closed { failure }] => assert_eq!(failure.wire().reason, reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn auth_success() {
    let mut s = fresh();
    feed(&mut s, AUTH, 1.0);
    assert_eq!(
        events(&mut s),
        [ServerEvent::Authenticate {
            token: Token::new("jwt"),
            client_info: ClientInfo {
                os: "linux".into(),
                version: "1.0.0".into()
            },
        }]
    );
    assert!(sent(&mut s).is_empty(), "nothing before the verdict");
    s.auth_verdict(Ok(Claims {
        sub: "alice".into(),
    }))
    .unwrap();
    assert_eq!(
        sent(&mut s),
        [
            r#"{"type":"auth_response","status":"success","server_info":{"version":"1.2.3","features":["tunnel"]}}"#
        ]
    );
    assert_eq!(s.subject(), Some("alice"));
    assert!(!s.is_closed());
}

#[test]
fn the_seeds_bare_auth_is_accepted() {
    let mut s = fresh();
    feed(&mut s, r#"{"type":"auth","token":"jwt"}"#, 1.0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Authenticate { .. }]
    ));
}

#[test]
fn an_auth_refusal_is_sent_then_the_session_closes() {
    let mut s = fresh();
    feed(&mut s, AUTH, 1.0);
    events(&mut s);
    let refusal = Refusal::new(ErrorCode::TokenExpired, "token_expired", "token expired");
    s.auth_verdict(Err(refusal)).unwrap();
    assert_eq!(
        sent(&mut s),
        [error_line(1003, "token expired", "token_expired")]
    );
    assert_closed(&mut s, "token_expired");
    // Closed: nothing more is read or sent, and late verdicts are no-ops.
    feed(&mut s, AUTH, 2.0);
    assert!(sent(&mut s).is_empty() && events(&mut s).is_empty());
    assert_eq!(s.auth_verdict(Ok(Claims { sub: "x".into() })), Ok(()));
    assert_eq!(s.heartbeat_ok("t"), Ok(()));
}

#[test]
fn anything_before_auth_fails_and_closes() {
    for line in [
        REGISTER,
        &heartbeat(TID),
        r#"{"type":"register_ack","tunnel_id":"x"}"#,
    ] {
        let mut s = fresh();
        feed(&mut s, line, 1.0);
        assert_eq!(
            sent(&mut s),
            [error_line(
                1001,
                "authenticate first: send auth and wait for auth_response",
                "auth_required"
            )]
        );
        assert_closed(&mut s, "auth_required");
    }
}

#[test]
fn a_register_while_the_auth_verdict_is_pending_fails() {
    let mut s = fresh();
    s.handle_bytes(format!("{AUTH}\n{REGISTER}\n").as_bytes(), at(1.0));
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Authenticate { .. }, ServerEvent::Closed { .. }]
    ));
    assert_eq!(
        sent(&mut s),
        [error_line(
            1001,
            "authenticate first: send auth and wait for auth_response",
            "auth_required"
        )]
    );
    // The verdict comes after the close: ignored.
    assert_eq!(s.auth_verdict(Ok(Claims { sub: "a".into() })), Ok(()));
    assert!(sent(&mut s).is_empty());
}

#[test]
fn a_second_auth_closes() {
    let expected = error_line(2002, "this connection already sent auth", "duplicate_auth");
    // While the first one's verdict is pending…
    let mut s = fresh();
    s.handle_bytes(format!("{AUTH}\n{AUTH}\n").as_bytes(), at(1.0));
    assert_eq!(sent(&mut s), std::slice::from_ref(&expected));
    assert!(s.is_closed());
    // …and after it succeeded.
    let mut s = signed_in();
    feed(&mut s, AUTH, 2.0);
    assert_eq!(sent(&mut s), [expected]);
    assert_closed(&mut s, "duplicate_auth");
}

#[test]
fn another_major_version_closes() {
    let mut s = fresh();
    feed(
        &mut s,
        r#"{"type":"auth","token":"jwt","version":"2.0"}"#,
        1.0,
    );
    assert_eq!(
        sent(&mut s),
        [error_line(
            2002,
            r#"protocol version \"2.0\" is not supported; this relay speaks 1.x"#,
            "unsupported_version"
        )]
    );
    assert_closed(&mut s, "unsupported_version");
}

#[test]
fn malformed_lines_close_with_their_reason() {
    let cases = [
        ("{", "malformed_json"),
        ("[1,2]", "malformed_json"),
        (r#"{"token":"jwt"}"#, "malformed_json"),
        (r#"{"type":"auth"}"#, "malformed_json"),
        (
            r#"{"type":"register","tunnel_info":{"name":"a","protocol":"tcp","ports":[70000],"public_key":""}}"#,
            "malformed_json",
        ),
        (r#"{"type":"unregister"}"#, "unknown_type"),
        (r#"{"type":"hello","version":"1.0"}"#, "unknown_type"),
    ];
    for (line, reason) in cases {
        let mut s = signed_in();
        feed(&mut s, line, 2.0);
        let out = sent(&mut s);
        assert_eq!(out.len(), 1, "{line}");
        let error: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], 2002, "{line}");
        assert_eq!(error["details"]["reason"], reason, "{line}");
        assert_closed(&mut s, reason);
    }
    let mut s = signed_in();
    feed(&mut s, r#"{"type":"unregister"}"#, 2.0);
    assert_eq!(
        sent(&mut s),
        [error_line(
            2002,
            r#"unknown message type \"unregister\""#,
            "unknown_type"
        )]
    );
}

#[test]
fn a_line_at_the_cap_is_read_one_byte_over_closes() {
    let config = ServerConfig {
        max_line: 64,
        ..config()
    };
    // A valid auth padded with JSON whitespace to exactly the cap.
    let short = r#"{"type":"auth","token":"jwt"}"#;
    let padded = format!("{short:<64}");
    assert_eq!(padded.len(), 64);
    let mut s = ServerSession::new(config.clone(), at(0.0));
    sent(&mut s);
    feed(&mut s, &padded, 1.0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Authenticate { .. }]
    ));
    let mut s = ServerSession::new(config.clone(), at(0.0));
    sent(&mut s);
    feed(&mut s, &format!("{padded} "), 1.0);
    assert_eq!(
        sent(&mut s),
        [error_line(
            2002,
            "a line is longer than 64 bytes",
            "line_too_long"
        )]
    );
    assert_closed(&mut s, "line_too_long");
    // The same through handle_line, for drivers that frame lines themselves.
    let mut s = ServerSession::new(config, at(0.0));
    sent(&mut s);
    s.handle_line(format!("{padded} ").as_bytes(), at(1.0));
    assert_closed(&mut s, "line_too_long");
}

#[test]
fn blank_lines_and_crlf_are_fine() {
    let mut s = fresh();
    s.handle_bytes(format!("\n \r\n{AUTH}\r\n").as_bytes(), at(1.0));
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Authenticate { .. }]
    ));
    assert!(sent(&mut s).is_empty());
}

#[test]
fn register_and_its_response() {
    let mut s = signed_in();
    feed(&mut s, REGISTER, 2.0);
    assert_eq!(
        events(&mut s),
        [ServerEvent::Register {
            info: TunnelInfo {
                name: "office-pc".into(),
                protocol: "tcp".into(),
                ports: vec![3389, 22],
                public_key: KEY.into(),
            },
            public_key: std::array::from_fn(|i| i as u8),
            resume: None,
        }]
    );
    assert_eq!(s.tunnel_id(), None);
    s.register_result(Ok(grant())).unwrap();
    assert_eq!(
        sent(&mut s),
        [format!(
            r#"{{"type":"register_response","status":"success","tunnel_id":"{TID}","config":{{"endpoint":"relay.example:51820","public_key":"{KEY}","allowed_ips":["10.0.0.0/24"],"address":"10.0.0.7/32","forwards":[{{"port":22,"public":"relay.example:40022"}}]}},"reconnect_token":"rt-1"}}"#
        )]
    );
    assert_eq!(s.tunnel_id(), Some(TID));
}

#[test]
fn a_resume_carries_the_tunnel_and_its_token() {
    let mut s = signed_in();
    let line = format!(
        r#"{{"type":"register","tunnel_info":{{"name":"office-pc","protocol":"tcp","ports":[22],"public_key":"{KEY}"}},"tunnel_id":"{TID}","reconnect_token":"rt-1"}}"#
    );
    feed(&mut s, &line, 2.0);
    match events(&mut s).as_slice() {
        [ServerEvent::Register { resume, .. }] => assert_eq!(
            resume,
            &Some(Resume {
                tunnel_id: TID.into(),
                reconnect_token: Token::new("rt-1")
            })
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_half_resume_is_refused_and_the_session_goes_on() {
    let mut s = signed_in();
    let line = format!(
        r#"{{"type":"register","tunnel_info":{{"name":"office-pc","protocol":"tcp","ports":[22],"public_key":"{KEY}"}},"tunnel_id":"{TID}"}}"#
    );
    feed(&mut s, &line, 2.0);
    assert_eq!(
        sent(&mut s),
        [error_line(
            2002,
            "a resume needs both tunnel_id and reconnect_token",
            "incomplete_resume"
        )]
    );
    assert!(!s.is_closed() && events(&mut s).is_empty());
    feed(&mut s, REGISTER, 3.0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Register { .. }]
    ));
}

#[test]
fn an_invalid_tunnel_is_answered_by_the_session() {
    let mut s = signed_in();
    let line = r#"{"type":"register","tunnel_info":{"name":"office pc","protocol":"tcp","ports":[22],"public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#;
    feed(&mut s, line, 2.0);
    assert_eq!(
        sent(&mut s),
        [error_line(
            2002,
            "the name must be 1 to 64 of A-Z a-z 0-9 . _ -",
            "invalid_name"
        )]
    );
    assert!(events(&mut s).is_empty(), "the driver is not asked");
    assert!(!s.is_closed());
    let line = r#"{"type":"register","tunnel_info":{"name":"pc","protocol":"udp","ports":[22],"public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#;
    feed(&mut s, line, 2.0);
    assert_eq!(
        sent(&mut s),
        [error_line(
            2002,
            r#"only the \"tcp\" protocol is forwarded"#,
            "unsupported_protocol"
        )]
    );
}

#[test]
fn one_tunnel_per_connection() {
    let expected = error_line(
        2001,
        "this connection already registered a tunnel",
        "already_registered",
    );
    let mut s = signed_in();
    feed(&mut s, REGISTER, 2.0);
    assert_eq!(events(&mut s).len(), 1);
    feed(&mut s, REGISTER, 2.0);
    assert_eq!(
        refusals(&mut s),
        ["already_registered"],
        "the second is not passed on"
    );
    assert_eq!(sent(&mut s), std::slice::from_ref(&expected));
    s.register_result(Ok(grant())).unwrap();
    sent(&mut s);
    feed(&mut s, REGISTER, 3.0);
    assert_eq!(sent(&mut s), [expected]);
    assert!(!s.is_closed());
}

#[test]
fn a_register_refusal_keeps_the_connection() {
    let mut s = signed_in();
    feed(&mut s, REGISTER, 2.0);
    events(&mut s);
    let refusal = Refusal::new(
        ErrorCode::RateLimit,
        "tunnel_creation",
        "10 tunnels per hour",
    )
    .with_retry_after(600);
    s.register_result(Err(refusal)).unwrap();
    assert_eq!(
        sent(&mut s),
        [
            r#"{"type":"error","code":3001,"message":"10 tunnels per hour","details":{"reason":"tunnel_creation","retry_after":600}}"#
        ]
    );
    assert!(!s.is_closed());
    feed(&mut s, REGISTER, 3.0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Register { .. }]
    ));
}

#[test]
fn register_ack_only_for_this_connections_tunnel() {
    let unknown = |id: &str| {
        error_line(
            2002,
            &format!(r#"no tunnel \"{id}\" on this connection"#),
            "unknown_tunnel",
        )
    };
    let mut s = signed_in();
    feed(
        &mut s,
        &format!(r#"{{"type":"register_ack","tunnel_id":"{TID}"}}"#),
        2.0,
    );
    assert_eq!(sent(&mut s), [unknown(TID)], "before any register");
    let mut s = registered();
    feed(
        &mut s,
        r#"{"type":"register_ack","tunnel_id":"other"}"#,
        3.0,
    );
    assert_eq!(sent(&mut s), [unknown("other")]);
    feed(
        &mut s,
        &format!(r#"{{"type":"register_ack","tunnel_id":"{TID}"}}"#),
        3.0,
    );
    feed(
        &mut s,
        &format!(r#"{{"type":"register_ack","tunnel_id":"{TID}"}}"#),
        3.0,
    );
    assert_eq!(
        events(&mut s),
        [ServerEvent::RegisterAck {
            tunnel_id: TID.into()
        }],
        "a duplicate ack is ignored"
    );
    assert!(sent(&mut s).is_empty());
    assert!(!s.is_closed());
}

#[test]
fn heartbeats_are_answered_with_the_drivers_clock() {
    let mut s = registered();
    feed(&mut s, &heartbeat(TID), 10.0);
    assert_eq!(
        events(&mut s),
        [ServerEvent::Heartbeat {
            tunnel_id: TID.into(),
            stats: Stats {
                bytes_in: 1024,
                bytes_out: 2048,
                connected_since: "2026-05-01T10:00:00Z".into()
            },
        }]
    );
    s.heartbeat_ok("2026-05-01T10:00:40Z").unwrap();
    assert_eq!(
        sent(&mut s),
        [r#"{"type":"heartbeat_response","status":"ok","server_time":"2026-05-01T10:00:40Z"}"#]
    );
    assert_eq!(
        s.heartbeat_ok("x"),
        Err(SessionError::ApiMisuse("no heartbeat awaits an answer"))
    );
}

#[test]
fn an_early_heartbeat_gets_rate_limit_and_the_connection_stays() {
    let mut s = registered();
    feed(&mut s, &heartbeat(TID), 10.0);
    events(&mut s);
    feed(&mut s, &heartbeat(TID), 20.5);
    assert_eq!(
        sent(&mut s),
        [
            r#"{"type":"error","code":3001,"message":"heartbeat too early: at most one per 30s","details":{"reason":"heartbeat_too_early","retry_after":20}}"#
        ]
    );
    assert!(events(&mut s).is_empty() && !s.is_closed());
    // Within the slack (28 s) it is fine, and the interval counts from it.
    feed(&mut s, &heartbeat(TID), 38.0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Heartbeat { .. }]
    ));
    feed(&mut s, &heartbeat(TID), 65.0);
    assert!(events(&mut s).is_empty());
    let out = sent(&mut s);
    assert!(out[0].contains(r#""retry_after":3"#), "{out:?}");
}

#[test]
fn heartbeats_for_another_tunnel_are_refused() {
    let mut s = signed_in();
    feed(&mut s, &heartbeat(TID), 5.0);
    assert_eq!(
        sent(&mut s),
        [error_line(
            2002,
            &format!(r#"no tunnel \"{TID}\" on this connection"#),
            "unknown_tunnel"
        )]
    );
    let mut s = registered();
    feed(&mut s, &heartbeat("b"), 5.0);
    assert!(sent(&mut s)[0].contains("unknown_tunnel"));
    assert!(events(&mut s).is_empty() && !s.is_closed());
}

#[test]
fn verdicts_nobody_asked_for_are_misuse() {
    let mut s = fresh();
    let refusal = Refusal::new(ErrorCode::AuthFailed, "x", "x");
    assert!(s.auth_verdict(Err(refusal.clone())).is_err());
    assert!(s.register_result(Err(refusal.clone())).is_err());
    let mut s = signed_in();
    assert!(s.auth_verdict(Ok(Claims { sub: "a".into() })).is_err());
    assert!(s.register_result(Ok(grant())).is_err());
    assert!(sent(&mut s).is_empty() && !s.is_closed());
}

#[test]
fn the_auth_deadline() {
    let mut s = fresh();
    assert_eq!(s.poll_timeout(), Some(at(10.0)));
    s.handle_timeout(at(9.999));
    assert!(!s.is_closed());
    // A verdict still pending at the deadline does not save it.
    feed(&mut s, AUTH, 9.0);
    events(&mut s);
    s.handle_timeout(at(10.0));
    assert_eq!(
        sent(&mut s),
        [error_line(
            1001,
            "no successful auth within 10s",
            "auth_timeout"
        )]
    );
    assert_closed(&mut s, "auth_timeout");
}

#[test]
fn the_idle_deadline() {
    let mut s = registered();
    // Signed in at 1 s: 3 × 30 s + 10 s later.
    assert_eq!(s.poll_timeout(), Some(at(101.0)));
    feed(&mut s, &heartbeat(TID), 50.0);
    events(&mut s);
    assert_eq!(s.poll_timeout(), Some(at(150.0)));
    s.handle_timeout(at(149.0));
    assert!(!s.is_closed());
    s.handle_timeout(at(150.0));
    assert_eq!(
        sent(&mut s),
        [error_line(5000, "no heartbeat within 100s", "idle_timeout")]
    );
    assert_closed(&mut s, "idle_timeout");
}

#[test]
fn too_many_errors_close() {
    let mut s = registered();
    for _ in 0..8 {
        feed(&mut s, &heartbeat("nope"), 5.0);
    }
    assert_eq!(sent(&mut s).len(), 8);
    assert!(!s.is_closed());
    feed(&mut s, &heartbeat("nope"), 5.0);
    assert_eq!(
        sent(&mut s),
        [error_line(
            3001,
            "too many errors on this connection",
            "too_many_errors"
        )]
    );
    assert_closed(&mut s, "too_many_errors");
}

#[test]
fn shutdown() {
    let mut s = registered();
    s.shutdown();
    assert_eq!(
        sent(&mut s),
        [error_line(
            5000,
            "the relay is shutting down",
            "shutting_down"
        )]
    );
    assert_closed(&mut s, "shutting_down");
    s.shutdown();
    assert!(sent(&mut s).is_empty());
}

#[test]
fn forwards_that_cannot_open_end_the_session_with_their_own_reason() {
    let mut s = registered();
    s.forwards_failed();
    assert_eq!(
        sent(&mut s),
        [error_line(
            5000,
            "the relay could not open the tunnel's public forwards",
            "forwards_unavailable"
        )]
    );
    assert_closed(&mut s, "forwards_unavailable");
    s.shutdown();
    assert!(sent(&mut s).is_empty(), "closed once");
}

#[test]
fn lines_after_the_closing_one_are_not_read() {
    let mut s = fresh();
    s.handle_bytes(format!("{REGISTER}\n{AUTH}\n{AUTH}\n").as_bytes(), at(1.0));
    assert_eq!(sent(&mut s).len(), 1);
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Closed { .. }]
    ));
    assert_eq!(s.decoder.buffered(), 0, "nothing kept after the close");
}

#[test]
fn every_failure_has_one_wire_form() {
    use ErrorCode::*;
    let refusal = Refusal::new(TunnelExists, "name_taken", "taken").with_retry_after(5);
    let cases = [
        (
            Failure::Decode(crate::codec::DecodeError::MissingType),
            InvalidConfig,
            "malformed_json",
            true,
        ),
        (
            Failure::LineTooLong { max: 1 },
            InvalidConfig,
            "line_too_long",
            true,
        ),
        (Failure::AuthRequired, AuthFailed, "auth_required", true),
        (
            Failure::AuthRefused(refusal.clone()),
            TunnelExists,
            "name_taken",
            true,
        ),
        (
            Failure::RegisterRefused(refusal),
            TunnelExists,
            "name_taken",
            false,
        ),
        (
            Failure::AlreadyRegistered,
            TunnelExists,
            "already_registered",
            false,
        ),
    ];
    for (failure, code, reason, close) in cases {
        let wire = failure.wire();
        assert_eq!(
            (wire.code, wire.reason, wire.close),
            (code, reason, close),
            "{failure:?}"
        );
    }
    let failure = Failure::AuthRefused(
        Refusal::new(RateLimit, "auth_attempts", "slow down").with_retry_after(12),
    );
    assert_eq!(failure.wire().retry_after, Some(12));
    assert_eq!(failure.to_string(), "slow down");
}
