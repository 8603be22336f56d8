//! The session rules, driven with plain frames.

use super::*;
use crate::frame::encode_to_string;
use std::sync::LazyLock;

/// An arbitrary origin for simulated time; the tests only add to it.
static T0: LazyLock<Instant> = LazyLock::new(Instant::now);

fn params() -> SessionParams {
    SessionParams {
        max_streams: 2,
        max_frame_len: 4096,
        max_violations: 3,
        recently_closed: 4,
        max_stream_id_len: 16,
        stream_ready: false,
        binary_data: false,
        flow_control: false,
        windows: WindowLimits::default(),
        rtt: Duration::from_millis(100),
        idle_timeout: Duration::from_secs(60),
        pings: PingLimit::default(),
        drain_timeout: Duration::from_secs(10),
    }
}

fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn open(id: &str) -> String {
    format!(r#"{{"type":"stream_open","stream_id":"{id}","target":"example.com:80"}}"#)
}

fn data(id: &str, bytes: &[u8]) -> String {
    encode_to_string(&Frame::StreamData {
        stream_id: id.into(),
        data: bytes.to_vec(),
    })
}

fn close(id: &str) -> String {
    format!(r#"{{"type":"stream_close","stream_id":"{id}"}}"#)
}

fn header(target: &str) -> Vec<u8> {
    let mut out = Vec::new();
    TargetAddr::parse(target).unwrap().encode(&mut out);
    out
}

/// The (code, stream_id, reason) of every error frame, and the (id, reason) of every close.
type Errors = Vec<(String, Option<String>)>;
type Closes = Vec<(String, String)>;

fn frames(actions: &[Action]) -> (Errors, Closes) {
    let mut errors = Vec::new();
    let mut closes = Vec::new();
    for a in actions {
        match a {
            Action::Send(Frame::Error {
                code, stream_id, ..
            }) => errors.push((code.to_string(), stream_id.as_ref().map(|s| s.to_string()))),
            Action::Send(Frame::StreamClose { stream_id, reason }) => closes.push((
                stream_id.to_string(),
                reason.as_deref().unwrap_or("").to_owned(),
            )),
            _ => {}
        }
    }
    (errors, closes)
}

#[test]
fn ping_gets_pong() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, r#"{"type":"ping"}"#);
    assert_eq!(drain(&mut s), vec![Action::Send(Frame::Pong)]);
    s.handle_text(*T0, r#"{"type":"pong"}"#);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn header_in_first_frame_dials_with_rest() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    let a = drain(&mut s);
    assert!(matches!(&a[..], [Action::Open { id, .. }] if &**id == "s1"));
    let mut payload = header("1.2.3.4:80");
    payload.extend_from_slice(b"GET /");
    s.handle_text(*T0, &data("s1", &payload));
    match &drain(&mut s)[..] {
        [
            Action::Dial {
                id,
                target,
                initial,
                ..
            },
        ] => {
            assert_eq!(&**id, "s1");
            assert_eq!(target.to_string(), "1.2.3.4:80");
            assert_eq!(initial, b"GET /");
        }
        other => panic!("{other:?}"),
    }
    s.handle_text(*T0, &data("s1", b"more"));
    assert!(matches!(&drain(&mut s)[..], [Action::Forward { data, .. }] if data == b"more"));
}

#[test]
fn header_split_across_frames() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    let mut payload = header("example.org:443");
    payload.extend_from_slice(b"hi");
    for (i, byte) in payload.iter().enumerate() {
        s.handle_text(*T0, &data("s1", &[*byte]));
        let a = drain(&mut s);
        if i + 1 < payload.len() - 2 {
            assert!(a.is_empty(), "byte {i}: {a:?}");
        } else if i + 1 == payload.len() - 2 {
            assert!(
                matches!(&a[..], [Action::Dial { target, initial, .. }]
                    if target.to_string() == "example.org:443" && initial.is_empty()),
                "{a:?}"
            );
        } else {
            assert!(matches!(&a[..], [Action::Forward { .. }]), "{a:?}");
        }
    }
}

#[test]
fn bad_header_ends_stream_as_bad_stream() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    s.handle_text(*T0, &data("s1", &[9, 9, 9]));
    let a = drain(&mut s);
    let (errors, closes) = frames(&a);
    assert_eq!(errors, vec![("bad_stream".into(), Some("s1".into()))]);
    assert_eq!(closes, vec![("s1".into(), "bad_stream".into())]);
    // Abort comes before the frames.
    assert!(matches!(a[0], Action::Send(Frame::Error { .. })));
    assert!(
        a.iter().position(|x| matches!(x, Action::Abort { .. }))
            < a.iter()
                .position(|x| matches!(x, Action::Send(Frame::StreamClose { .. })))
    );
    assert_eq!(s.open_streams(), 0);
}

#[test]
fn limit_duplicate_and_unknown() {
    let mut s = Session::new(
        SessionParams {
            max_violations: 100,
            ..params()
        },
        *T0,
    );
    s.handle_text(*T0, &open("s1"));
    s.handle_text(*T0, &open("s2"));
    drain(&mut s);
    s.handle_text(*T0, &open("s3"));
    let (errors, closes) = frames(&drain(&mut s));
    assert_eq!(errors, vec![("stream_error".into(), Some("s3".into()))]);
    assert_eq!(closes, vec![("s3".into(), "limit".into())]);

    s.handle_text(*T0, &open("s1"));
    let (errors, closes) = frames(&drain(&mut s));
    assert_eq!(errors, vec![("stream_error".into(), Some("s1".into()))]);
    assert!(closes.is_empty(), "the existing stream continues");
    assert_eq!(s.open_streams(), 2);

    s.handle_text(*T0, &data("nope", b"x"));
    match &drain(&mut s)[..] {
        [
            Action::Send(Frame::Error {
                code,
                message,
                stream_id,
                ..
            }),
        ] => {
            assert_eq!(*code, ErrorCode::StreamError);
            assert_eq!(message, "unknown stream");
            assert_eq!(stream_id.as_deref(), Some("nope"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_close_finishes_and_late_frames_are_quiet() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    s.handle_text(*T0, &close("s1"));
    assert!(matches!(&drain(&mut s)[..], [Action::Finish { id }] if &**id == "s1"));
    s.handle_text(*T0, &data("s1", b"late"));
    s.handle_text(*T0, &close("s1"));
    assert!(drain(&mut s).is_empty());
    // The slot is free again.
    s.handle_text(*T0, &open("s2"));
    s.handle_text(*T0, &open("s3"));
    assert_eq!(s.open_streams(), 2);
}

#[test]
fn recently_closed_is_bounded() {
    let mut s = Session::new(
        SessionParams {
            max_violations: 100,
            ..params()
        },
        *T0,
    );
    for i in 0..10 {
        s.handle_text(*T0, &open(&format!("s{i}")));
        s.handle_text(*T0, &close(&format!("s{i}")));
    }
    drain(&mut s);
    assert!(s.recent.set.len() <= 4 && s.recent.order.len() <= 4);
    s.handle_text(*T0, &data("s9", b"x"));
    assert!(drain(&mut s).is_empty(), "recent: quiet");
    s.handle_text(*T0, &data("s0", b"x"));
    assert_eq!(frames(&drain(&mut s)).0.len(), 1, "forgotten: unknown");
}

#[test]
fn decode_errors_map_to_codes_and_session_continues() {
    let mut s = Session::new(
        SessionParams {
            max_violations: 100,
            ..params()
        },
        *T0,
    );
    for (text, code) in [
        ("not json", "bad_frame"),
        (r#"{"type":"teleport"}"#, "unsupported"),
        (
            r#"{"type":"stream_data","stream_id":"s1","data":"@@"}"#,
            "bad_stream",
        ),
        (
            r#"{"type":"hello","session_token":"t","version":"1"}"#,
            "bad_hello",
        ),
    ] {
        s.handle_text(*T0, text);
        let (errors, _) = frames(&drain(&mut s));
        assert_eq!(errors.len(), 1, "{text}");
        assert_eq!(errors[0].0, code, "{text}");
    }
    s.handle_binary();
    assert_eq!(frames(&drain(&mut s)).0[0].0, "bad_frame");
    assert!(!s.is_closed());
}

#[test]
fn bad_base64_ends_the_open_stream() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    s.handle_text(
        *T0,
        r#"{"type":"stream_data","stream_id":"s1","data":"@@"}"#,
    );
    let a = drain(&mut s);
    let (errors, closes) = frames(&a);
    assert_eq!(errors, vec![("bad_stream".into(), Some("s1".into()))]);
    assert_eq!(closes, vec![("s1".into(), "bad_stream".into())]);
    match &a[0] {
        Action::Send(Frame::Error { reason, .. }) => {
            assert_eq!(reason.as_deref(), Some("bad_stream"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_violations_close_with_policy() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    for _ in 0..4 {
        s.handle_text(*T0, "garbage");
    }
    let a = drain(&mut s);
    assert!(a.contains(&Action::Abort { id: "s1".into() }));
    assert_eq!(
        a.last(),
        Some(&Action::Close {
            code: close_code::POLICY,
            reason: "too many protocol violations"
        })
    );
    assert!(s.is_closed());
    s.handle_text(*T0, r#"{"type":"ping"}"#);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn oversized_closes_with_1009() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &" ".repeat(5000));
    let a = drain(&mut s);
    assert_eq!(frames(&a).0, vec![("bad_frame".into(), None)]);
    assert!(matches!(a.last(), Some(Action::Close { code: 1009, .. })));
}

#[test]
fn stream_end_and_stall_send_error_then_close() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    s.handle_text(*T0, &open("s2"));
    s.handle_text(*T0, &data("s1", &header("1.2.3.4:1")));
    s.handle_text(*T0, &data("s2", &header("1.2.3.4:2")));
    let serials: Vec<u64> = drain(&mut s)
        .iter()
        .filter_map(|a| match a {
            Action::Dial { serial, .. } => Some(*serial),
            _ => None,
        })
        .collect();
    // A stale serial is ignored.
    s.handle_stream_end(
        "s1",
        999,
        StreamEnd {
            reason: CloseReason::Eof,
            error: None,
        },
    );
    assert!(drain(&mut s).is_empty());
    s.handle_stream_end(
        "s1",
        serials[0],
        StreamEnd {
            reason: CloseReason::Refused,
            error: Some("connection refused".into()),
        },
    );
    let a = drain(&mut s);
    assert!(matches!(a[0], Action::Abort { .. }));
    let (errors, closes) = frames(&a);
    assert_eq!(errors, vec![("stream_error".into(), Some("s1".into()))]);
    assert_eq!(closes, vec![("s1".into(), "refused".into())]);
    s.handle_stall("s2", serials[1], 2000);
    let (_, closes) = frames(&drain(&mut s));
    assert_eq!(closes, vec![("s2".into(), "slow_upstream".into())]);
}

#[test]
fn drain_refuses_new_streams_then_shuts_down_the_rest() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    s.begin_drain(*T0);
    s.handle_text(*T0, &open("s2"));
    let (_, closes) = frames(&drain(&mut s));
    assert_eq!(closes, vec![("s2".into(), "shutdown".into())]);
    s.shutdown();
    let a = drain(&mut s);
    let (_, closes) = frames(&a);
    assert_eq!(closes, vec![("s1".into(), "shutdown".into())]);
    assert!(matches!(a.last(), Some(Action::Close { code: 1001, .. })));
}

#[test]
fn overlong_stream_ids_are_refused_without_echo() {
    let mut s = Session::new(params(), *T0);
    let long = "x".repeat(100);
    s.handle_text(*T0, &open(&long));
    let (errors, _) = frames(&drain(&mut s));
    assert_eq!(errors, vec![("bad_stream".into(), None)]);
    assert_eq!(s.open_streams(), 0);
}

#[test]
fn hello_checks() {
    let ok = check_hello(
        r#"{"type":"hello","session_token":"t","version":"1","client":"c"}"#,
        4096,
    )
    .unwrap();
    assert_eq!((ok.token.as_str(), ok.client.as_str()), ("t", "c"));
    let v2 = check_hello(
        r#"{"type":"hello","session_token":"t","version":"2"}"#,
        4096,
    );
    assert_eq!(v2.err().map(|r| r.code), Some(ErrorCode::BadVersion));
    for bad in [
        r#"{"type":"ping"}"#,
        "nope",
        r#"{"type":"hello","version":"1"}"#,
    ] {
        let r = check_hello(bad, 4096).err().unwrap();
        assert_eq!(r.code, ErrorCode::BadHello, "{bad}");
        assert_eq!(r.close_code, close_code::PROTOCOL);
    }
}

fn binary(id: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(crate::binary::encode_binary_stream_data(
        id, bytes, &mut out
    ));
    out
}

#[test]
fn binary_data_is_stream_data_when_negotiated() {
    let mut s = Session::new(
        SessionParams {
            binary_data: true,
            ..params()
        },
        *T0,
    );
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    let mut payload = header("1.2.3.4:80");
    payload.extend_from_slice(b"GET /");
    s.handle_binary_message(*T0, &binary("s1", &payload));
    assert!(matches!(
        &drain(&mut s)[..],
        [Action::Dial { initial, .. }] if initial == b"GET /"
    ));
    s.handle_binary_message(*T0, &binary("s1", b"more"));
    assert!(matches!(&drain(&mut s)[..], [Action::Forward { data, .. }] if data == b"more"));
    // JSON stream_data still works alongside.
    s.handle_text(*T0, &data("s1", b"json"));
    assert!(matches!(&drain(&mut s)[..], [Action::Forward { data, .. }] if data == b"json"));
    // Unknown kind: bad_frame; a truncated id: bad_stream; the session goes on.
    s.handle_binary_message(*T0, b"\x09rest");
    assert_eq!(frames(&drain(&mut s)).0, vec![("bad_frame".into(), None)]);
    s.handle_binary_message(*T0, b"\x01\x05s1");
    assert_eq!(frames(&drain(&mut s)).0, vec![("bad_stream".into(), None)]);
    assert!(!s.is_closed());
    // Unknown stream, as with JSON.
    s.handle_binary_message(*T0, &binary("s9", b"x"));
    assert_eq!(
        frames(&drain(&mut s)).0,
        vec![("stream_error".into(), Some("s9".into()))]
    );
}

#[test]
fn binary_data_over_the_limit_ends_the_session() {
    let mut s = Session::new(
        SessionParams {
            binary_data: true,
            ..params()
        },
        *T0,
    );
    s.handle_binary_message(*T0, &binary("s1", &[0; 4096]));
    let a = drain(&mut s);
    assert!(matches!(a.last(), Some(Action::Close { code, .. }) if *code == close_code::TOO_BIG));
}

#[test]
fn binary_messages_are_violations_without_the_extension() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    s.handle_binary_message(*T0, &binary("s1", b"x"));
    assert_eq!(frames(&drain(&mut s)).0, vec![("bad_frame".into(), None)]);
}

#[test]
fn hello_negotiates_binary_data() {
    let offered = check_hello(
        r#"{"type":"hello","session_token":"t","version":"1","features":["binary_data","x"]}"#,
        4096,
    )
    .unwrap();
    assert!(offered.binary_data);
    assert_eq!(offered.accepted_features(), vec!["binary_data"]);
    let plain = check_hello(
        r#"{"type":"hello","session_token":"t","version":"1"}"#,
        4096,
    )
    .unwrap();
    assert!(!plain.binary_data);
    assert!(plain.accepted_features().is_empty());
}

#[test]
fn idle_client_is_pinged_then_closed() {
    let mut s = Session::new(params(), *T0);
    assert_eq!(s.poll_timeout(), Some(*T0 + Duration::from_secs(30)));
    // Early wake-ups do nothing.
    s.handle_timeout(*T0 + Duration::from_secs(29));
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(*T0 + Duration::from_secs(30));
    assert_eq!(drain(&mut s), vec![Action::Send(Frame::Ping)]);
    assert_eq!(s.poll_timeout(), Some(*T0 + Duration::from_secs(60)));
    s.handle_timeout(*T0 + Duration::from_secs(60));
    assert_eq!(
        drain(&mut s),
        vec![Action::Close {
            code: close_code::NORMAL,
            reason: "idle timeout"
        }]
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn useful_traffic_resets_the_idle_timer_pings_do_not() {
    let mut s = Session::new(params(), *T0);
    s.handle_timeout(*T0 + Duration::from_secs(30));
    assert_eq!(drain(&mut s), vec![Action::Send(Frame::Ping)]);
    // Pings from the client are answered but prove nothing.
    let later = *T0 + Duration::from_secs(50);
    s.handle_ping(later);
    s.handle_text(later, r#"{"type":"ping"}"#);
    assert_eq!(drain(&mut s), vec![Action::Send(Frame::Pong)]);
    assert_eq!(s.poll_timeout(), Some(*T0 + Duration::from_secs(60)));
    // A pong answering our keepalive does.
    s.handle_pong(later);
    assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(30)));
    s.handle_timeout(*T0 + Duration::from_secs(60));
    assert!(drain(&mut s).is_empty(), "not idle: heard at 50 s");
    // An unsolicited pong (no keepalive out) does not.
    s.handle_text(later + Duration::from_secs(10), r#"{"type":"pong"}"#);
    assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(30)));
    // A frame that does something does.
    s.handle_text(later + Duration::from_secs(20), &open("s1"));
    assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(20 + 30)));
}

#[test]
fn late_data_for_a_closed_stream_is_quiet_up_to_what_could_be_in_flight() {
    let mut s = Session::new(
        SessionParams {
            windows: WindowLimits {
                max_stream_window: 10,
                ..WindowLimits::default()
            },
            ..params()
        },
        *T0,
    );
    open_and_dial(&mut s, "s1");
    s.handle_text(*T0, &close("s1"));
    drain(&mut s);
    s.handle_text(*T0, &data("s1", b"0123456789"));
    assert!(
        drain(&mut s).is_empty(),
        "within the allowance: dropped quietly"
    );
    for _ in 0..=params().max_violations {
        s.handle_text(*T0, &data("s1", b"x"));
    }
    let actions = drain(&mut s);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Send(Frame::Error {
            code: ErrorCode::StreamError,
            ..
        })
    )));
    assert!(
        s.is_closed(),
        "a client that keeps sending to a closed stream is cut"
    );
}

#[test]
fn a_client_that_only_pings_goes_idle() {
    let mut s = Session::new(params(), *T0);
    for n in 1..=70 {
        let now = *T0 + Duration::from_secs(n);
        s.handle_ping(now);
        s.handle_timeout(now);
    }
    let actions = drain(&mut s);
    assert!(
        actions.contains(&Action::Close {
            code: close_code::NORMAL,
            reason: "idle timeout"
        }),
        "{actions:?}"
    );
}

#[test]
fn a_ping_flood_ends_the_session() {
    let mut s = Session::new(params(), *T0);
    let burst = PingLimit::default().burst;
    for _ in 0..burst {
        s.handle_text(*T0, r#"{"type":"ping"}"#);
    }
    assert_eq!(drain(&mut s).len(), burst as usize, "the burst is answered");
    for _ in 0..=params().max_violations {
        s.handle_text(*T0, r#"{"type":"ping"}"#);
        s.handle_ping(*T0);
    }
    let actions = drain(&mut s);
    assert!(
        !actions.contains(&Action::Send(Frame::Pong)),
        "over budget: no answers"
    );
    assert!(actions.contains(&Action::Close {
        code: close_code::POLICY,
        reason: "too many protocol violations"
    }));
}

#[test]
fn unknown_frame_types_are_answered_without_a_violation_within_the_budget() {
    let mut s = Session::new(params(), *T0);
    for n in 0..(params().max_violations + 4) {
        // One a second: within the refill rate.
        s.handle_text(
            *T0 + Duration::from_secs(n.into()),
            r#"{"type":"teleport"}"#,
        );
    }
    assert!(!s.is_closed());
    let errors = drain(&mut s)
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                Action::Send(Frame::Error {
                    code: ErrorCode::Unsupported,
                    ..
                })
            )
        })
        .count();
    assert_eq!(errors as u32, params().max_violations + 4);
}

#[test]
fn idle_close_aborts_open_streams() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    s.handle_timeout(*T0 + Duration::from_secs(30));
    s.handle_timeout(*T0 + Duration::from_secs(90));
    let a = drain(&mut s);
    assert!(a.contains(&Action::Abort { id: "s1".into() }));
    assert!(matches!(
        a.last(),
        Some(Action::Close {
            code: close_code::NORMAL,
            ..
        })
    ));
}

#[test]
fn drain_ends_at_its_deadline_or_when_the_last_stream_ends() {
    // Deadline: streams still open are ended with `shutdown`.
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    let at = *T0 + Duration::from_secs(1);
    s.begin_drain(at);
    assert_eq!(s.poll_timeout(), Some(at + Duration::from_secs(10)));
    s.handle_timeout(at + Duration::from_secs(10));
    let a = drain(&mut s);
    assert_eq!(frames(&a).1, vec![("s1".into(), "shutdown".into())]);
    assert!(matches!(a.last(), Some(Action::Close { code: 1001, .. })));

    // Last stream gone: the session closes at once.
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    s.begin_drain(*T0);
    assert!(drain(&mut s).is_empty());
    s.handle_text(*T0, &close("s1"));
    let a = drain(&mut s);
    assert!(
        matches!(a.last(), Some(Action::Close { code: 1001, .. })),
        "{a:?}"
    );

    // Nothing open: closes when the drain begins.
    let mut s = Session::new(params(), *T0);
    s.begin_drain(*T0);
    assert!(matches!(
        drain(&mut s).last(),
        Some(Action::Close { code: 1001, .. })
    ));
}

#[test]
fn handshake_deadline_and_first_message() {
    let h = Handshake::new(*T0, Duration::from_secs(5), 4096, PingLimit::default());
    assert_eq!(h.poll_timeout(), *T0 + Duration::from_secs(5));
    assert!(h.handle_timeout(*T0 + Duration::from_secs(4)).is_none());
    let late = h.handle_timeout(*T0 + Duration::from_secs(5)).unwrap();
    assert_eq!(
        (late.code, late.close_code),
        (ErrorCode::BadHello, close_code::POLICY)
    );
    assert_eq!(h.handle_binary().close_code, close_code::PROTOCOL);
    assert_eq!(h.handle_oversized().close_code, close_code::TOO_BIG);
    let hello = h
        .handle_text(
            r#"{"type":"hello","session_token":"t","version":"1","features":["half_close"]}"#,
        )
        .unwrap();
    assert!(hello.half_close && !hello.stream_ready);
    let big = format!(
        r#"{{"type":"hello","session_token":"{}","version":"1"}}"#,
        "x".repeat(5000)
    );
    assert_eq!(
        h.handle_text(&big).err().unwrap().close_code,
        close_code::TOO_BIG
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// A message a client might send: valid frames with small ids, binary
    /// messages, and garbage.
    fn message() -> impl Strategy<Value = Result<String, Vec<u8>>> {
        let id = "s[0-9]{1,2}";
        prop_oneof![
            id.prop_map(|id| Ok(open(&id))),
            (id, proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(id, d)| Ok(data(&id, &d))),
            id.prop_map(|id| Ok(close(&id))),
            id.prop_map(|id| Ok(format!(
                r#"{{"type":"stream_shutdown","stream_id":"{id}"}}"#
            ))),
            Just(Ok(r#"{"type":"ping"}"#.to_owned())),
            "\\PC{0,40}".prop_map(Ok),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Err),
        ]
    }

    proptest! {
        /// Whatever the client sends, the machine never panics, never opens
        /// more than `max_streams`, closes at most once and stays closed.
        #[test]
        fn never_panics_and_ends_defined(
            binary_data in any::<bool>(),
            messages in proptest::collection::vec(message(), 0..40),
            ticks in proptest::collection::vec(0u64..40, 0..40),
        ) {
            let mut s = Session::new(SessionParams { binary_data, ..params() }, *T0);
            let mut now = *T0;
            let mut closes = 0;
            for (i, m) in messages.iter().enumerate() {
                now += Duration::from_secs(ticks.get(i).copied().unwrap_or(0));
                s.handle_timeout(now);
                match m {
                    Ok(text) => s.handle_text(now, text),
                    Err(bytes) => s.handle_binary_message(now, bytes),
                }
                for a in drain(&mut s) {
                    if let Action::Close { .. } = a {
                        closes += 1;
                    }
                }
                prop_assert!(s.open_streams() <= 2);
                prop_assert!(closes <= 1);
                prop_assert_eq!(s.poll_timeout().is_none(), s.is_closed());
            }
        }
    }
}

/// Opens `id`, sends its header and returns the serial of its `Dial`.
fn open_and_dial(s: &mut Session, id: &str) -> u64 {
    s.handle_text(*T0, &open(id));
    s.handle_text(*T0, &data(id, &header("1.2.3.4:80")));
    let a = drain(s);
    match &a[..] {
        [Action::Open { .. }, Action::Dial { serial, .. }] => *serial,
        other => panic!("{other:?}"),
    }
}

fn eof() -> StreamEnd {
    StreamEnd {
        reason: CloseReason::Eof,
        error: None,
    }
}

/// Contract: "ids are never reused within a session". A reopen of a recently
/// closed id, while its upstream may still be flushing, gets `bad_stream`
/// and no slot; the old stream's bookkeeping is left as it was.
#[test]
fn reopening_a_recently_closed_id_is_refused() {
    let mut s = Session::new(params(), *T0);
    let old = open_and_dial(&mut s, "s1");
    s.handle_text(*T0, &close("s1"));
    assert_eq!(drain(&mut s), vec![Action::Finish { id: "s1".into() }]);

    s.handle_text(*T0, &open("s1"));
    let a = drain(&mut s);
    let (errors, closes) = frames(&a);
    assert_eq!(errors, vec![("bad_stream".into(), Some("s1".into()))]);
    assert_eq!(closes, vec![("s1".into(), "bad_stream".into())]);
    assert!(matches!(&a[0], Action::Send(Frame::Error { reason, .. })
        if reason.as_deref() == Some("bad_stream")));
    assert!(
        !a.iter().any(|x| matches!(
            x,
            Action::Open { .. } | Action::Abort { .. } | Action::Finish { .. }
        )),
        "no new slot, and the lingering stream is not touched: {a:?}"
    );
    assert_eq!(s.open_streams(), 0);
    assert!(s.recent.contains("s1"), "still remembered as closed");

    // Whatever follows for the id — the refused stream's header, the old
    // task's end report, a close — stays quiet.
    s.handle_text(*T0, &data("s1", &header("5.6.7.8:80")));
    s.handle_stream_end("s1", old, eof());
    s.handle_text(*T0, &close("s1"));
    assert!(drain(&mut s).is_empty());
    // Both slots are still free.
    s.handle_text(*T0, &open("s2"));
    s.handle_text(*T0, &open("s3"));
    assert_eq!(s.open_streams(), 2);
    assert!(!s.is_closed());
}

#[test]
fn reopening_an_id_the_gateway_ended_is_refused() {
    let mut s = Session::new(params(), *T0);
    let serial = open_and_dial(&mut s, "s1");
    s.handle_stream_end("s1", serial, eof());
    drain(&mut s);
    s.handle_text(*T0, &open("s1"));
    let a = drain(&mut s);
    assert_eq!(frames(&a).0, vec![("bad_stream".into(), Some("s1".into()))]);
    assert!(!a.iter().any(|x| matches!(x, Action::Open { .. })));
    assert_eq!(s.open_streams(), 0);
}

#[test]
fn refused_reuse_takes_no_slot_from_open_streams() {
    let mut s = Session::new(params(), *T0);
    let s1 = open_and_dial(&mut s, "s1");
    let s2 = open_and_dial(&mut s, "s2");
    s.handle_text(*T0, &close("s1"));
    s.handle_text(*T0, &open("s1"));
    drain(&mut s);
    assert_eq!(s.open_streams(), 1);
    // s2 goes on untouched, under its own serial.
    s.handle_text(*T0, &data("s2", b"x"));
    assert_eq!(
        drain(&mut s),
        vec![Action::Forward {
            id: "s2".into(),
            serial: s2,
            data: b"x".to_vec()
        }]
    );
    // The freed slot is a fresh id's, and a stale report cannot end it.
    let s3 = open_and_dial(&mut s, "s3");
    assert!(s3 > s2 && s2 > s1);
    s.handle_stream_end("s1", s1, eof());
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.open_streams(), 2);
}

#[test]
fn repeated_reuse_counts_as_violations() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, &open("s1"));
    s.handle_text(*T0, &close("s1"));
    drain(&mut s);
    for _ in 0..4 {
        s.handle_text(*T0, &open("s1"));
    }
    let a = drain(&mut s);
    assert!(matches!(a.last(), Some(Action::Close { code: 1008, .. })));
}

/// Past the `recently_closed` bound an id is forgotten and may open again;
/// the new stream's serial keeps the old task's late report away from it.
#[test]
fn a_forgotten_id_opens_under_a_new_serial() {
    let mut s = Session::new(params(), *T0);
    let old = open_and_dial(&mut s, "s1");
    s.handle_text(*T0, &close("s1"));
    for i in 2..6 {
        s.handle_text(*T0, &open(&format!("s{i}")));
        s.handle_text(*T0, &close(&format!("s{i}")));
    }
    drain(&mut s);
    assert!(!s.recent.contains("s1"));
    let new = open_and_dial(&mut s, "s1");
    assert_ne!(new, old);
    s.handle_stream_end("s1", old, eof());
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.open_streams(), 1);
}

#[test]
fn fuzz_hook_checks_slots_on_reuse() {
    let mut input = br#"{"type":"hello","session_token":"t","version":"1"}"#.to_vec();
    for text in [open("s1"), close("s1"), open("s1"), open("s1"), open("s2")] {
        input.extend_from_slice(b"\xff\x00");
        input.extend_from_slice(text.as_bytes());
    }
    fuzzing::drive(&input);
}

mod flow;
