//! Every rule of the client machine, with the exact lines on the wire.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::*;
use crate::message::{ClientInfo, Forward, Token, TunnelConfig};

static T0: LazyLock<Instant> = LazyLock::new(Instant::now);

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TID: &str = "7d3f0a52-1b8e-4c1e-9a57-0d2b6c9e8f10";
const HELLO: &str = r#"{"type":"hello","version":"1.0","features":["tunnel","monitoring"]}"#;
const AUTH_OK: &str = r#"{"type":"auth_response","status":"success","server_info":{"version":"1.0.0","features":["tunnel"]}}"#;
const REGISTER: &str = r#"{"type":"register","tunnel_info":{"name":"office-pc","protocol":"tcp","ports":[3389,22],"public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#;

fn at(secs: f64) -> Instant {
    *T0 + Duration::from_secs_f64(secs)
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::new(Token::new("jwt"), "office-pc", vec![3389, 22], KEY);
    config.client_info = ClientInfo {
        os: "linux".into(),
        version: "9.9.9".into(),
    };
    config
}

fn register_response(tunnel_id: &str, address: &str, token: &str) -> String {
    format!(
        r#"{{"type":"register_response","status":"success","tunnel_id":"{tunnel_id}","config":{{"endpoint":"relay.example:51820","public_key":"{KEY}","allowed_ips":["10.0.0.0/24"],"address":"{address}","forwards":[{{"port":22,"public":"relay.example:40022"}}]}},"reconnect_token":"{token}"}}"#
    )
}

fn tunnel_config(address: &str) -> TunnelConfig {
    TunnelConfig {
        endpoint: "relay.example:51820".into(),
        public_key: KEY.into(),
        allowed_ips: vec!["10.0.0.0/24".into()],
        address: address.into(),
        forwards: vec![Forward {
            port: 22,
            public: "relay.example:40022".into(),
        }],
    }
}

fn error(code: u16, reason: &str, retry_after: Option<u64>) -> String {
    let retry = retry_after.map_or(String::new(), |s| format!(r#","retry_after":{s}"#));
    format!(
        r#"{{"type":"error","code":{code},"message":"m","details":{{"reason":"{reason}"{retry}}}}}"#
    )
}

fn feed(m: &mut ClientMachine, line: &str, secs: f64) {
    m.handle_bytes(format!("{line}\n").as_bytes(), at(secs));
}

fn sent(m: &mut ClientMachine) -> Vec<String> {
    std::iter::from_fn(|| m.poll_transmit())
        .map(|line| {
            let text = String::from_utf8(line).unwrap();
            text.strip_suffix('\n').expect("one line").to_owned()
        })
        .collect()
}

fn events(m: &mut ClientMachine) -> Vec<ClientEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn changed(from: TunnelState, to: TunnelState) -> ClientEvent {
    ClientEvent::StateChanged { from, to }
}

/// Connected and waiting for `hello` at `secs`.
fn dialed(secs: f64) -> ClientMachine {
    let mut m = ClientMachine::new(config()).unwrap();
    m.connect(at(secs));
    m.transport_connected(at(secs));
    events(&mut m);
    m
}

/// Through hello, auth and register: Registered at 1 s.
fn registered() -> ClientMachine {
    let mut m = dialed(0.0);
    feed(&mut m, HELLO, 0.1);
    feed(&mut m, AUTH_OK, 0.2);
    feed(&mut m, &register_response(TID, "10.0.0.7/32", "rt-1"), 1.0);
    sent(&mut m);
    events(&mut m);
    m
}

/// The answer to the heartbeat that confirms the ack.
const HEARTBEAT_OK: &str = r#"{"type":"heartbeat_response","status":"ok","server_time":"t"}"#;

/// WireGuard up at 2 s, the relay's answer at 2 s: Active, heartbeats
/// every 30 s from 2 s.
fn active() -> ClientMachine {
    let mut m = registered();
    m.wireguard_up(at(2.0));
    feed(&mut m, HEARTBEAT_OK, 2.0);
    sent(&mut m);
    events(&mut m);
    assert_eq!(m.state(), TunnelState::Active);
    m
}

#[test]
fn a_bad_tunnel_is_refused_before_any_dial() {
    let mut config = config();
    config.ports = vec![22, 22];
    assert_eq!(
        ClientMachine::new(config).unwrap_err().reason,
        "duplicate_port"
    );
}

#[test]
fn connect_asks_the_driver_to_dial() {
    let mut m = ClientMachine::new(config()).unwrap();
    assert_eq!(m.poll_timeout(), None);
    m.connect(at(0.0));
    assert_eq!(
        events(&mut m),
        [
            changed(TunnelState::Disconnected, TunnelState::Authenticating),
            ClientEvent::Dial
        ]
    );
    assert_eq!(m.poll_timeout(), Some(at(10.0)), "the dial timeout");
    m.connect(at(1.0));
    assert!(events(&mut m).is_empty(), "a second connect does nothing");
    // Nothing is read before the connection is up.
    feed(&mut m, HELLO, 1.0);
    assert!(sent(&mut m).is_empty());
    m.transport_connected(at(2.0));
    assert_eq!(m.poll_timeout(), Some(at(7.0)), "hello within 5 s");
}

#[test]
fn hello_then_auth() {
    let mut m = dialed(0.0);
    feed(&mut m, HELLO, 0.5);
    assert_eq!(
        sent(&mut m),
        [
            r#"{"type":"auth","token":"jwt","version":"1.0","client_info":{"os":"linux","version":"9.9.9"}}"#
        ]
    );
    assert_eq!(m.poll_timeout(), Some(at(5.5)));
}

#[test]
fn another_major_version_stops_the_machine() {
    let mut m = dialed(0.0);
    feed(
        &mut m,
        r#"{"type":"hello","version":"2.0","features":[]}"#,
        0.5,
    );
    assert!(sent(&mut m).is_empty());
    assert_eq!(
        events(&mut m),
        [
            ClientEvent::ConnectionFailed(ClientError::UnsupportedVersion("2.0".into())),
            ClientEvent::CloseTransport,
            changed(TunnelState::Authenticating, TunnelState::Disconnected),
        ]
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn auth_success_then_register() {
    let mut m = dialed(0.0);
    feed(&mut m, HELLO, 0.1);
    sent(&mut m);
    feed(&mut m, AUTH_OK, 0.2);
    assert_eq!(sent(&mut m), [REGISTER]);
}

#[test]
fn register_response_registers_then_wireguard_makes_it_active() {
    let mut m = dialed(0.0);
    feed(&mut m, HELLO, 0.1);
    feed(&mut m, AUTH_OK, 0.2);
    sent(&mut m);
    feed(&mut m, &register_response(TID, "10.0.0.7/32", "rt-1"), 1.0);
    let registration = Registration {
        tunnel_id: TID.into(),
        config: tunnel_config("10.0.0.7/32"),
        reconnect_token: Some(Token::new("rt-1")),
    };
    assert_eq!(
        events(&mut m),
        [
            ClientEvent::Registered(registration),
            changed(TunnelState::Authenticating, TunnelState::Registered),
        ]
    );
    assert_eq!(m.tunnel_id(), Some(TID));
    assert_eq!(m.saved().unwrap().reconnect_token, Token::new("rt-1"));
    assert_eq!(m.poll_timeout(), None, "waiting for WireGuard");
    m.wireguard_up(at(2.0));
    assert_eq!(
        sent(&mut m),
        [
            format!(r#"{{"type":"register_ack","tunnel_id":"{TID}"}}"#),
            format!(
                r#"{{"type":"heartbeat","tunnel_id":"{TID}","stats":{{"bytes_in":0,"bytes_out":0,"connected_since":""}}}}"#
            )
        ]
    );
    assert!(events(&mut m).is_empty(), "Active once the relay answers");
    m.wireguard_up(at(2.5));
    assert!(sent(&mut m).is_empty(), "only once per registration");
    feed(&mut m, HEARTBEAT_OK, 2.5);
    assert_eq!(
        events(&mut m),
        [
            changed(TunnelState::Registered, TunnelState::Active),
            ClientEvent::HeartbeatAnswered {
                rtt: Duration::from_millis(500),
                server_time: "t".into()
            }
        ]
    );
}

#[test]
fn heartbeats_every_interval_with_the_latest_stats() {
    let mut m = active();
    assert_eq!(m.poll_timeout(), Some(at(32.0)));
    m.set_stats(1024, 2048, "2026-05-01T10:00:00Z");
    m.handle_timeout(at(31.9));
    assert!(sent(&mut m).is_empty());
    m.handle_timeout(at(32.0));
    assert_eq!(
        sent(&mut m),
        [format!(
            r#"{{"type":"heartbeat","tunnel_id":"{TID}","stats":{{"bytes_in":1024,"bytes_out":2048,"connected_since":"2026-05-01T10:00:00Z"}}}}"#
        )]
    );
    assert_eq!(m.poll_timeout(), Some(at(37.0)), "the answer deadline");
    feed(
        &mut m,
        r#"{"type":"heartbeat_response","status":"ok","server_time":"2026-05-01T10:00:32Z"}"#,
        32.25,
    );
    assert_eq!(
        events(&mut m),
        [ClientEvent::HeartbeatAnswered {
            rtt: Duration::from_millis(250),
            server_time: "2026-05-01T10:00:32Z".into()
        }]
    );
    assert_eq!(m.poll_timeout(), Some(at(62.0)));
}

#[test]
fn three_missed_heartbeats_mean_the_connection_is_lost() {
    let mut m = active();
    for (n, secs) in [(1, 32.0), (2, 62.0), (3, 92.0)] {
        m.handle_timeout(at(secs));
        assert_eq!(sent(&mut m).len(), 1, "heartbeat {n}");
        m.handle_timeout(at(secs + 5.0));
        assert!(sent(&mut m).is_empty());
    }
    assert_eq!(
        events(&mut m),
        [
            ClientEvent::ConnectionFailed(ClientError::HeartbeatMisses(3)),
            ClientEvent::CloseTransport,
            changed(TunnelState::Active, TunnelState::Reconnecting),
            ClientEvent::Retrying {
                attempt: 1,
                delay: Duration::from_secs(1)
            },
        ]
    );
    assert_eq!(m.poll_timeout(), Some(at(98.0)));
}

#[test]
fn an_answer_in_time_resets_the_misses_a_late_one_does_not() {
    let mut m = active();
    let answer = r#"{"type":"heartbeat_response","status":"ok","server_time":"t"}"#;
    // Two misses, the second answered late.
    m.handle_timeout(at(32.0));
    m.handle_timeout(at(37.0));
    m.handle_timeout(at(62.0));
    m.handle_timeout(at(67.0));
    feed(&mut m, answer, 68.0);
    assert!(events(&mut m).is_empty(), "a late answer is ignored");
    // Answered in time: the count starts again.
    m.handle_timeout(at(92.0));
    feed(&mut m, answer, 93.0);
    for secs in [122.0, 127.0, 152.0, 157.0] {
        m.handle_timeout(at(secs));
    }
    assert_eq!(
        m.state(),
        TunnelState::Active,
        "two misses since the answer"
    );
    m.handle_timeout(at(182.0));
    m.handle_timeout(at(187.0));
    assert_eq!(m.state(), TunnelState::Reconnecting);
}

#[test]
fn a_drop_resumes_with_the_saved_tunnel() {
    let mut m = active();
    m.transport_lost(at(10.0));
    assert_eq!(
        events(&mut m),
        [
            changed(TunnelState::Active, TunnelState::Reconnecting),
            ClientEvent::Retrying {
                attempt: 1,
                delay: Duration::from_secs(1)
            },
        ]
    );
    assert_eq!(m.tunnel_id(), None);
    m.handle_timeout(at(11.0));
    assert_eq!(events(&mut m), [ClientEvent::Dial]);
    m.transport_connected(at(11.1));
    feed(&mut m, HELLO, 11.2);
    feed(&mut m, AUTH_OK, 11.3);
    let lines = sent(&mut m);
    assert_eq!(
        lines[1],
        format!(
            r#"{{"type":"register","tunnel_info":{{"name":"office-pc","protocol":"tcp","ports":[3389,22],"public_key":"{KEY}"}},"tunnel_id":"{TID}","reconnect_token":"rt-1"}}"#
        )
    );
    feed(&mut m, &register_response(TID, "10.0.0.7/32", "rt-2"), 11.4);
    let registration = Registration {
        tunnel_id: TID.into(),
        config: tunnel_config("10.0.0.7/32"),
        reconnect_token: Some(Token::new("rt-2")),
    };
    // Resumed, but Active only once WireGuard is up again.
    assert_eq!(events(&mut m), [ClientEvent::Resumed(registration)]);
    assert_eq!(m.state(), TunnelState::Reconnecting);
    assert_eq!(m.retries(), 1);
    m.wireguard_up(at(12.0));
    let lines = sent(&mut m);
    assert_eq!(
        lines[0],
        format!(r#"{{"type":"register_ack","tunnel_id":"{TID}"}}"#)
    );
    assert!(lines[1].starts_with(r#"{"type":"heartbeat""#), "{lines:?}");
    feed(&mut m, HEARTBEAT_OK, 12.1);
    assert_eq!(
        events(&mut m)[0],
        changed(TunnelState::Reconnecting, TunnelState::Active)
    );
    assert_eq!(m.retries(), 0);
    assert_eq!(m.saved().unwrap().reconnect_token, Token::new("rt-2"));
}

#[test]
fn a_refused_resume_is_reported_and_a_fresh_tunnel_registered() {
    let mut m = active();
    m.transport_lost(at(10.0));
    m.handle_timeout(at(11.0));
    m.transport_connected(at(11.0));
    feed(&mut m, HELLO, 11.0);
    feed(&mut m, AUTH_OK, 11.0);
    sent(&mut m);
    events(&mut m);
    feed(&mut m, &error(1002, "bad_reconnect_token", None), 11.5);
    assert_eq!(
        sent(&mut m),
        [REGISTER],
        "the same connection, no resume fields"
    );
    let seen = events(&mut m);
    assert!(
        matches!(&seen[..], [
            ClientEvent::ServerError(ServerError { code: ErrorCode::InvalidToken, .. }),
            ClientEvent::ResumeRefused { tunnel_id },
        ] if tunnel_id == TID),
        "{seen:?}"
    );
    assert!(m.saved().is_none());
    feed(
        &mut m,
        &register_response("new-id", "10.0.0.9/32", "rt-9"),
        12.0,
    );
    assert!(matches!(
        events(&mut m).as_slice(),
        [ClientEvent::Registered(r)] if r.tunnel_id == "new-id" && r.config.address == "10.0.0.9/32"
    ));
    assert_eq!(m.state(), TunnelState::Reconnecting);
}

#[test]
fn sign_in_errors_stop_and_say_so() {
    for (code, reason) in [
        (1001, "auth_failed"),
        (1002, "bad_signature"),
        (1003, "token_expired"),
    ] {
        let mut m = dialed(0.0);
        feed(&mut m, HELLO, 0.1);
        sent(&mut m);
        feed(&mut m, &error(code, reason, None), 0.2);
        let events = events(&mut m);
        match &events[..] {
            [
                ClientEvent::ServerError(e),
                ClientEvent::CloseTransport,
                ClientEvent::StateChanged {
                    to: TunnelState::Disconnected,
                    ..
                },
            ] => {
                assert_eq!(e.code.as_u16(), code);
                assert_eq!(e.reason, reason);
                assert!(e.sentence.contains("sign in to the relay again"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.poll_timeout(), None, "no retry");
    }
    let mut m = dialed(0.0);
    feed(&mut m, &error(1003, "token_expired", None), 0.2);
    match events(&mut m).first() {
        Some(ClientEvent::ServerError(e)) => {
            assert_eq!(
                e.sentence,
                "Your sign-in has expired: sign in to the relay again."
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tunnel_exists_and_invalid_config_stop() {
    for code in [2001, 2002] {
        let mut m = dialed(0.0);
        feed(&mut m, HELLO, 0.1);
        feed(&mut m, AUTH_OK, 0.2);
        sent(&mut m);
        events(&mut m);
        feed(&mut m, &error(code, "r", None), 0.3);
        assert_eq!(m.state(), TunnelState::Disconnected);
        assert_eq!(m.poll_timeout(), None);
    }
}

#[test]
fn rate_limit_while_connecting_waits_at_least_retry_after() {
    let mut m = dialed(0.0);
    feed(&mut m, HELLO, 0.1);
    feed(&mut m, &error(3001, "auth_attempts", Some(60)), 0.2);
    let events = events(&mut m);
    assert_eq!(
        events[1..],
        [
            ClientEvent::CloseTransport,
            ClientEvent::Retrying {
                attempt: 1,
                delay: Duration::from_secs(60)
            }
        ]
    );
    match &events[0] {
        ClientEvent::ServerError(e) => {
            assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
            assert!(e.sentence.contains("wait"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.state(), TunnelState::Authenticating, "still connecting");
    assert_eq!(m.poll_timeout(), Some(at(60.2)));
    // A shorter retry_after than the backoff: the backoff wins.
    let mut m = dialed(0.0);
    feed(&mut m, &error(3001, "auth_attempts", None), 0.2);
    assert_eq!(m.poll_timeout(), Some(at(1.2)));
}

#[test]
fn rate_limit_while_active_delays_the_next_heartbeat() {
    let mut m = active();
    m.handle_timeout(at(32.0));
    sent(&mut m);
    feed(&mut m, &error(3001, "heartbeat_too_early", Some(45)), 32.1);
    assert_eq!(m.state(), TunnelState::Active);
    assert_eq!(m.poll_timeout(), Some(at(77.1)));
    m.handle_timeout(at(37.0));
    m.handle_timeout(at(62.0));
    assert!(sent(&mut m).is_empty(), "not before retry_after");
    m.handle_timeout(at(77.1));
    assert_eq!(sent(&mut m).len(), 1);
}

#[test]
fn server_error_and_unknown_codes_retry_with_backoff() {
    for code in [5000, 4242] {
        let mut m = active();
        feed(&mut m, &error(code, "r", None), 5.0);
        assert_eq!(m.state(), TunnelState::Reconnecting);
        assert_eq!(m.poll_timeout(), Some(at(6.0)));
    }
}

#[test]
fn malformed_lines_lose_the_connection_unknown_types_are_skipped() {
    let mut m = active();
    feed(
        &mut m,
        r#"{"type":"notice","text":"maintenance at 3am"}"#,
        5.0,
    );
    assert!(events(&mut m).is_empty());
    feed(&mut m, r#"{"type":"heartbeat_response""#, 5.0);
    let events = events(&mut m);
    assert!(
        matches!(
            &events[0],
            ClientEvent::ConnectionFailed(ClientError::Malformed(_))
        ),
        "{events:?}"
    );
    assert_eq!(m.state(), TunnelState::Reconnecting);
}

#[test]
fn a_message_out_of_order_loses_the_connection() {
    let mut m = dialed(0.0);
    feed(&mut m, AUTH_OK, 0.1);
    assert_eq!(
        events(&mut m)[0],
        ClientEvent::ConnectionFailed(ClientError::Unexpected {
            kind: "auth_response",
            waiting_for: "hello"
        })
    );
}

#[test]
fn lines_after_a_failure_in_the_same_read_are_dropped() {
    let mut m = dialed(0.0);
    m.handle_bytes(format!("{{\n{HELLO}\n").as_bytes(), at(0.1));
    assert!(
        sent(&mut m).is_empty(),
        "the hello belonged to the dead connection"
    );
}

#[test]
fn a_line_over_the_cap_loses_the_connection() {
    let mut config = config();
    config.max_line = 32;
    let mut m = ClientMachine::new(config).unwrap();
    m.connect(at(0.0));
    m.transport_connected(at(0.0));
    events(&mut m);
    m.handle_bytes(&[b' '; 33], at(0.1));
    assert_eq!(
        events(&mut m)[0],
        ClientEvent::ConnectionFailed(ClientError::LineTooLong { max: 32 })
    );
}

#[test]
fn a_status_other_than_success_stops() {
    let mut m = dialed(0.0);
    feed(&mut m, HELLO, 0.1);
    feed(&mut m, r#"{"type":"auth_response","status":"denied"}"#, 0.2);
    assert_eq!(
        events(&mut m)[0],
        ClientEvent::ConnectionFailed(ClientError::Refused {
            step: "auth",
            status: "denied".into()
        })
    );
    assert_eq!(m.state(), TunnelState::Disconnected);
}

#[test]
fn answers_not_in_time() {
    let mut m = dialed(0.0);
    m.handle_timeout(at(4.9));
    assert!(events(&mut m).is_empty());
    m.handle_timeout(at(5.0));
    assert_eq!(
        events(&mut m)[0],
        ClientEvent::ConnectionFailed(ClientError::Timeout {
            waiting_for: "hello",
            after: Duration::from_secs(5)
        })
    );
    let mut m = ClientMachine::new(config()).unwrap();
    m.connect(at(0.0));
    events(&mut m);
    m.handle_timeout(at(10.0));
    assert_eq!(
        events(&mut m)[..2],
        [
            ClientEvent::ConnectionFailed(ClientError::Timeout {
                waiting_for: "the connection",
                after: Duration::from_secs(10)
            }),
            ClientEvent::CloseTransport,
        ]
    );
}

#[test]
fn the_backoff_then_giving_up() {
    let mut m = active();
    let mut now = 10.0;
    m.transport_lost(at(now));
    let mut delays = Vec::new();
    loop {
        let mut retrying = None;
        for event in events(&mut m) {
            match event {
                ClientEvent::Retrying { delay, .. } => retrying = Some(delay),
                ClientEvent::GaveUp { attempts } => {
                    assert_eq!(attempts, 10);
                    retrying = None;
                }
                _ => {}
            }
        }
        let Some(delay) = retrying else { break };
        delays.push(delay.as_secs());
        now += delay.as_secs_f64();
        m.handle_timeout(at(now));
        m.transport_lost(at(now));
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]);
    assert_eq!(m.state(), TunnelState::Disconnected);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_failing_first_connect_retries_as_authenticating() {
    let mut m = ClientMachine::new(config()).unwrap();
    m.connect(at(0.0));
    events(&mut m);
    m.transport_lost(at(0.5));
    assert_eq!(
        events(&mut m),
        [ClientEvent::Retrying {
            attempt: 1,
            delay: Duration::from_secs(1)
        }]
    );
    assert_eq!(m.state(), TunnelState::Authenticating);
}

#[test]
fn disconnect_keeps_the_tunnel_for_the_next_connect() {
    let mut m = active();
    m.disconnect();
    assert_eq!(
        events(&mut m),
        [
            ClientEvent::CloseTransport,
            changed(TunnelState::Active, TunnelState::Disconnected)
        ]
    );
    assert_eq!(m.poll_timeout(), None);
    m.connect(at(20.0));
    m.transport_connected(at(20.0));
    feed(&mut m, HELLO, 20.0);
    feed(&mut m, AUTH_OK, 20.0);
    assert!(sent(&mut m)[1].contains(r#""tunnel_id":"7d3f"#));
    // Disconnecting while waiting to dial closes nothing.
    m.transport_lost(at(21.0));
    events(&mut m);
    m.disconnect();
    assert_eq!(
        events(&mut m),
        [changed(
            TunnelState::Authenticating,
            TunnelState::Disconnected
        )]
    );
}

#[test]
fn a_stored_tunnel_is_resumed_on_the_first_connect() {
    let mut config = config();
    config.resume = Some(SavedTunnel {
        tunnel_id: TID.into(),
        last_config: tunnel_config("10.0.0.7/32"),
        reconnect_token: Token::new("rt-0"),
    });
    let mut m = ClientMachine::new(config).unwrap();
    m.connect(at(0.0));
    m.transport_connected(at(0.0));
    feed(&mut m, HELLO, 0.0);
    feed(&mut m, AUTH_OK, 0.0);
    assert!(sent(&mut m)[1].ends_with(r#""reconnect_token":"rt-0"}"#));
    events(&mut m);
    feed(&mut m, &register_response(TID, "10.0.0.7/32", "rt-1"), 0.5);
    let events = events(&mut m);
    assert!(matches!(events[0], ClientEvent::Resumed(_)), "{events:?}");
    assert_eq!(
        events[1],
        changed(TunnelState::Authenticating, TunnelState::Registered)
    );
}

#[test]
fn inputs_at_the_wrong_time_are_ignored() {
    let mut m = ClientMachine::new(config()).unwrap();
    m.wireguard_up(at(0.0));
    m.transport_connected(at(0.0));
    m.transport_lost(at(0.0));
    m.handle_timeout(at(100.0));
    feed(&mut m, HELLO, 0.0);
    assert!(events(&mut m).is_empty() && sent(&mut m).is_empty());
    let mut m = active();
    m.transport_connected(at(5.0));
    m.wireguard_up(at(5.0));
    assert!(events(&mut m).is_empty() && sent(&mut m).is_empty());
}
