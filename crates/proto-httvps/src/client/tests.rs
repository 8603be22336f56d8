//! The client machine, driven with plain frames on simulated time.

use std::sync::LazyLock;
use std::time::Duration;

use super::*;
use crate::MAX_FRAME_LEN;
use crate::frame::decode;
use crate::streams::StreamRuleError;

/// An arbitrary origin for simulated time; the tests only add to it.
pub(super) static T0: LazyLock<Instant> = LazyLock::new(Instant::now);

fn secs(n: u64) -> Instant {
    *T0 + Duration::from_secs(n)
}

pub(super) fn config() -> Config {
    Config {
        client_name: "test".into(),
        max_frame_len: 4096,
        max_chunk: 1024,
        send_queue_frames: 4,
        ..Config::default()
    }
}

pub(super) fn target() -> TargetAddr {
    TargetAddr::parse("example.com:443").unwrap()
}

fn texts(c: &mut Client) -> Vec<Frame<'static>> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|t| match t {
            Transmit::Text(text) => decode(&text).unwrap().into_owned(),
            Transmit::Binary(b) => crate::binary::decode_binary_frame(&b, MAX_FRAME_LEN)
                .unwrap()
                .into_owned(),
        })
        .collect()
}

pub(super) fn events(c: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

pub(super) fn ready_text(max_streams: u32, features: &[&str]) -> String {
    encode_to_string(&Frame::Ready {
        session_id: "sess".into(),
        max_streams,
        features: features.iter().map(|f| (*f).into()).collect(),
    })
}

/// A client past `ready` with every extension but `binary_data` agreed.
fn connected(max_streams: u32) -> Client {
    let mut c = Client::new(config(), "tok", *T0);
    texts(&mut c);
    c.handle_text(
        *T0,
        &ready_text(max_streams, &["stream_ready", "half_close"]),
    );
    events(&mut c);
    c
}

pub(super) fn data_text(id: &str, bytes: &[u8]) -> String {
    let mut out = String::new();
    encode_stream_data(id, bytes, &mut out);
    out
}

#[test]
fn hello_offers_features_and_ready_negotiates() {
    let mut c = Client::new(config(), "tok", *T0);
    assert!(!c.is_established());
    match &texts(&mut c)[..] {
        [
            Frame::Hello {
                session_token,
                version,
                client,
                features,
            },
        ] => {
            assert_eq!(session_token.expose(), "tok");
            assert_eq!((version.as_ref(), client.as_ref()), ("1", "test"));
            assert_eq!(
                features,
                &["stream_ready", "half_close", "binary_data", "flow_control"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.poll_timeout(), Some(secs(10)));
    // The gateway lists one we did not offer and one we do not know.
    c.handle_text(secs(1), &ready_text(8, &["binary_data", "teleport"]));
    let info = SessionInfo {
        session_id: "sess".into(),
        max_streams: 8,
        features: Features {
            binary_data: true,
            ..Features::NONE
        },
    };
    assert_eq!(events(&mut c), vec![Event::Connected(info.clone())]);
    assert_eq!(c.session_info(), Some(&info));
    assert_eq!(c.poll_timeout(), Some(secs(1 + 15)));
}

#[test]
fn only_offered_features_count() {
    let mut c = Client::new(
        Config {
            offer: Features::NONE,
            ..config()
        },
        "tok",
        *T0,
    );
    let hello = texts(&mut c);
    assert!(matches!(&hello[..], [Frame::Hello { features, .. }] if features.is_empty()));
    c.handle_text(
        *T0,
        &ready_text(2, &["stream_ready", "half_close", "binary_data"]),
    );
    assert_eq!(c.session_info().unwrap().features, Features::NONE);
}

#[test]
fn handshake_timeout() {
    let mut c = Client::new(config(), "tok", *T0);
    c.handle_timeout(secs(9));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(secs(10));
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::HandshakeTimeout(
            Duration::from_secs(10)
        ))]
    );
    assert_eq!(c.poll_timeout(), None);
    // Closed is final: a late ready changes nothing.
    c.handle_text(secs(11), &ready_text(2, &[]));
    assert!(events(&mut c).is_empty());
    assert!(!c.is_established());
}

#[test]
fn handshake_refused_with_the_gateway_code() {
    let mut c = Client::new(config(), "tok", *T0);
    texts(&mut c);
    c.handle_text(
        *T0,
        r#"{"type":"error","code":"auth_failed","message":"session token is not valid"}"#,
    );
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::Refused {
            code: ErrorCode::AuthFailed,
            message: "session token is not valid".into()
        })]
    );
    assert_eq!(
        c.open_stream(None, &target()),
        Err(CommandError::Closed(CloseReason::Refused {
            code: ErrorCode::AuthFailed,
            message: "session token is not valid".into()
        }))
    );
}

#[test]
fn handshake_answers_pings_and_rejects_anything_else() {
    let mut c = Client::new(config(), "tok", *T0);
    texts(&mut c);
    c.handle_text(*T0, r#"{"type":"ping"}"#);
    assert_eq!(texts(&mut c), vec![Frame::Pong]);
    assert_eq!(c.open_stream(None, &target()), Err(CommandError::NotReady));
    c.handle_text(*T0, &data_text("s1", b"x"));
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::HandshakeFailed(
            ProtocolError::UnexpectedFrame("stream_data")
        ))]
    );

    let mut c = Client::new(config(), "tok", *T0);
    c.handle_binary(*T0, b"\x01\x02s1hi");
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::HandshakeFailed(
            ProtocolError::UnexpectedBinary
        ))]
    );

    let mut c = Client::new(config(), "tok", *T0);
    c.handle_text(*T0, "not json");
    assert!(matches!(
        &events(&mut c)[..],
        [Event::SessionClosed(CloseReason::HandshakeFailed(
            ProtocolError::Unreadable(_)
        ))]
    ));

    let mut c = Client::new(config(), "tok", *T0);
    c.handle_close(Some(1008), "auth_failed");
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::Gateway {
            code: 1008,
            reason: "auth_failed".into()
        })]
    );
}

#[test]
fn open_queues_open_and_address_header() {
    let mut c = connected(2);
    assert_eq!(c.open_stream(None, &target()).unwrap(), "s1");
    let mut header = Vec::new();
    target().encode(&mut header);
    assert_eq!(
        texts(&mut c),
        vec![
            Frame::StreamOpen {
                stream_id: "s1".into(),
                target: "example.com:443".into()
            },
            Frame::StreamData {
                stream_id: "s1".into(),
                data: header
            },
        ]
    );
}

#[test]
fn stream_limit_and_id_rules_are_local() {
    let mut c = connected(2);
    c.open_stream(None, &target()).unwrap();
    c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    let err = c.open_stream(None, &target()).unwrap_err();
    assert_eq!(
        err,
        CommandError::Stream(StreamRuleError::StreamLimit { max: 2 })
    );
    assert!(texts(&mut c).is_empty(), "nothing sent past the limit");
    assert!(c.close_stream("s1", None));
    assert_eq!(c.open_stream(None, &target()).unwrap(), "s3");
    assert_eq!(
        c.send_data("s1", b"x"),
        Err(CommandError::Stream(StreamRuleError::UnknownStream(
            "s1".into()
        )))
    );
    assert!(!c.close_stream("s1", None), "closing twice sends nothing");
}

#[test]
fn send_data_chunks_spells_and_blocks() {
    let mut c = connected(2);
    c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    assert_eq!(c.send_data("s1", b""), Ok(0));
    assert_eq!(c.send_data("s1", &[7; 3000]), Ok(1024));
    assert_eq!(
        texts(&mut c),
        vec![Frame::StreamData {
            stream_id: "s1".into(),
            data: vec![7; 1024]
        }]
    );
    // The queue bound: four data frames, then Blocked until drained.
    for _ in 0..4 {
        c.send_data("s1", b"x").unwrap();
    }
    assert_eq!(c.send_data("s1", b"x"), Err(CommandError::Blocked));
    // Control frames still get through while data is blocked.
    assert!(c.close_stream("s1", Some("done")));
    assert_eq!(c.queued_transmits(), 5);
    texts(&mut c);
    c.open_stream(None, &target()).unwrap();
    assert_eq!(c.send_data("s2", b"x"), Ok(1));
}

#[test]
fn binary_data_spells_data_as_binary_messages() {
    let mut c = Client::new(config(), "tok", *T0);
    texts(&mut c);
    c.handle_text(*T0, &ready_text(2, &["binary_data"]));
    c.open_stream(None, &target()).unwrap();
    // The header stays JSON, as the contract's first data frame.
    assert!(matches!(c.poll_transmit(), Some(Transmit::Text(_))));
    assert!(matches!(c.poll_transmit(), Some(Transmit::Text(_))));
    c.send_data("s1", b"hi").unwrap();
    assert_eq!(
        c.poll_transmit(),
        Some(Transmit::Binary(b"\x01\x02s1hi".to_vec()))
    );
    // Binary from the gateway: handed back in place.
    let message = b"\x01\x02s1reply";
    let got = c.handle_binary(*T0, message).unwrap();
    assert_eq!(got.stream_id, "s1");
    assert_eq!(got.payload, Payload::InMessage(4));
    assert_eq!(got.payload.bytes(message), b"reply");
    // Unknown or closed stream: dropped quietly.
    assert_eq!(c.handle_binary(*T0, b"\x01\x02s9x"), None);
    // A broken binary message is dropped and reported.
    assert_eq!(c.handle_binary(*T0, b"\x07"), None);
    assert!(matches!(
        &events(&mut c)[..],
        [Event::Connected(_), Event::Ignored(_)]
    ));
}

#[test]
fn binary_without_the_extension_is_ignored() {
    let mut c = connected(2);
    c.open_stream(None, &target()).unwrap();
    assert_eq!(c.handle_binary(*T0, b"\x01\x02s1hi"), None);
    assert_eq!(
        events(&mut c),
        vec![Event::Ignored(ProtocolError::UnexpectedBinary)]
    );
    assert!(c.is_established());
}

#[test]
fn stream_lifecycle() {
    let mut c = connected(4);
    c.open_stream(None, &target()).unwrap();
    c.open_stream(None, &target()).unwrap();
    c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    c.handle_text(*T0, r#"{"type":"stream_ready","stream_id":"s1"}"#);
    c.handle_text(*T0, r#"{"type":"stream_ready","stream_id":"s9"}"#);
    assert_eq!(
        events(&mut c),
        vec![Event::StreamReady {
            stream_id: "s1".into()
        }]
    );
    let text = data_text("s1", b"hello");
    let got = c.handle_text(*T0, &text).unwrap();
    assert_eq!(
        (got.stream_id.as_ref(), got.payload),
        ("s1", Payload::Decoded(b"hello".to_vec()))
    );
    // Gateway closes s1; late data is dropped quietly.
    c.handle_text(
        *T0,
        r#"{"type":"stream_close","stream_id":"s1","reason":"eof"}"#,
    );
    assert_eq!(c.handle_text(*T0, &data_text("s1", b"late")), None);
    // A stream-scoped error ends s2; the close that follows is quiet.
    c.handle_text(
        *T0,
        r#"{"type":"error","code":"stream_error","message":"connection refused","stream_id":"s2","reason":"refused"}"#,
    );
    c.handle_text(
        *T0,
        r#"{"type":"stream_close","stream_id":"s2","reason":"refused"}"#,
    );
    // Bad base64 for s3: the client ends it and tells the gateway.
    c.handle_text(
        *T0,
        r#"{"type":"stream_data","stream_id":"s3","data":"@@"}"#,
    );
    let ev = events(&mut c);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(
        ev[0],
        Event::StreamClosed {
            stream_id: "s1".into(),
            end: StreamEnd::Closed {
                reason: Some("eof".into())
            }
        }
    );
    assert_eq!(
        ev[1],
        Event::StreamClosed {
            stream_id: "s2".into(),
            end: StreamEnd::Error {
                code: ErrorCode::StreamError,
                message: "connection refused".into(),
                reason: Some("refused".into())
            }
        }
    );
    assert!(
        matches!(&ev[2], Event::StreamClosed { stream_id, end: StreamEnd::Malformed(_) } if stream_id == "s3")
    );
    assert_eq!(
        texts(&mut c),
        vec![Frame::StreamClose {
            stream_id: "s3".into(),
            reason: Some("bad_stream".into())
        }]
    );
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn shutdown_needs_half_close() {
    let mut c = connected(2);
    c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    assert_eq!(c.shutdown_stream("s1"), Ok(true));
    assert_eq!(
        texts(&mut c),
        vec![Frame::StreamShutdown {
            stream_id: "s1".into()
        }]
    );
    let mut c = Client::new(config(), "tok", *T0);
    c.handle_text(*T0, &ready_text(2, &[]));
    c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    assert_eq!(c.shutdown_stream("s1"), Ok(false));
    assert!(texts(&mut c).is_empty());
    assert!(c.shutdown_stream("s2").is_err());
}

#[test]
fn keepalive_pings_and_declares_a_silent_gateway_dead() {
    let mut c = connected(2);
    assert_eq!(c.poll_timeout(), Some(secs(15)));
    c.handle_timeout(secs(15));
    assert_eq!(texts(&mut c), vec![Frame::Ping]);
    // A late timer: the next ping is one interval after it, not a burst.
    c.handle_timeout(secs(32));
    assert_eq!(texts(&mut c), vec![Frame::Ping]);
    assert_eq!(c.poll_timeout(), Some(secs(45)), "dead_at comes first");
    // The pong counts as life.
    c.handle_text(secs(33), r#"{"type":"pong"}"#);
    assert_eq!(c.poll_timeout(), Some(secs(47)));
    c.handle_timeout(secs(47));
    c.handle_timeout(secs(62));
    c.handle_timeout(secs(77));
    assert_eq!(texts(&mut c).len(), 3);
    assert!(c.is_established());
    c.handle_timeout(secs(78));
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::KeepaliveTimeout(
            Duration::from_secs(45)
        ))]
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_probe_pings_at_once_and_ends_a_silent_session_at_its_deadline() {
    let mut c = connected(2);
    c.probe(secs(5), Duration::from_secs(3));
    assert_eq!(texts(&mut c), vec![Frame::Ping], "the ping goes at once");
    assert_eq!(c.poll_timeout(), Some(secs(8)), "not the keepalive's 45 s");
    // A second probe cannot push the first one's deadline back.
    c.probe(secs(6), Duration::from_secs(10));
    assert_eq!(c.poll_timeout(), Some(secs(8)));
    texts(&mut c);
    c.handle_timeout(secs(8));
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::KeepaliveTimeout(
            Duration::from_secs(3)
        ))]
    );
}

#[test]
fn an_answered_probe_leaves_the_keepalive_as_it_was() {
    let mut c = connected(2);
    c.probe(secs(5), Duration::from_secs(3));
    texts(&mut c);
    // Bytes still arriving from before the path broke are no answer.
    c.handle_text(secs(6), r#"{"type":"ping"}"#);
    assert_eq!(
        c.poll_timeout(),
        Some(secs(8)),
        "still waiting for the pong"
    );
    c.handle_text(secs(6), r#"{"type":"pong"}"#);
    assert_eq!(c.poll_timeout(), Some(secs(15)), "the next keepalive ping");
    c.handle_timeout(secs(9));
    assert!(c.is_established(), "the probe's deadline no longer counts");
    // Before the session is up, a probe does nothing.
    let mut fresh = Client::new(config(), "tok", *T0);
    while fresh.poll_transmit().is_some() {}
    fresh.probe(*T0, Duration::from_secs(1));
    assert!(fresh.poll_transmit().is_none());
}

#[test]
fn websocket_control_frames_count_as_life() {
    let mut c = connected(2);
    c.handle_control(secs(40));
    c.handle_timeout(secs(50));
    assert!(c.is_established());
    assert_eq!(c.poll_timeout(), Some(secs(65)));
}

#[test]
fn gateway_pings_are_answered() {
    let mut c = connected(2);
    c.handle_text(*T0, r#"{"type":"ping"}"#);
    assert_eq!(texts(&mut c), vec![Frame::Pong]);
    assert!(events(&mut c).is_empty(), "pings are never surfaced");
}

#[test]
fn session_error_names_the_close() {
    for close_with_frame in [true, false] {
        let mut c = connected(2);
        c.handle_text(
            *T0,
            r#"{"type":"error","code":"bad_frame","message":"too many protocol violations"}"#,
        );
        assert!(
            c.is_established(),
            "an error alone does not end the session"
        );
        if close_with_frame {
            c.handle_close(Some(1008), "too many protocol violations");
        } else {
            c.handle_transport_error("connection reset");
        }
        assert_eq!(
            events(&mut c),
            vec![
                Event::GatewayError {
                    code: ErrorCode::BadFrame,
                    message: "too many protocol violations".into()
                },
                Event::SessionClosed(CloseReason::SessionError {
                    code: ErrorCode::BadFrame,
                    message: "too many protocol violations".into()
                })
            ]
        );
    }
    let mut c = connected(2);
    c.handle_close(None, "");
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::Gateway {
            code: 1005,
            reason: String::new()
        })]
    );
}

#[test]
fn oversized_frames_end_the_session_and_junk_is_ignored() {
    let mut c = connected(2);
    c.handle_text(*T0, "x");
    c.handle_text(*T0, r#"{"type":"teleport"}"#);
    c.handle_text(*T0, r#"{"type":"hello","session_token":"t","version":"1"}"#);
    assert_eq!(events(&mut c).len(), 3);
    assert!(c.is_established());
    c.handle_text(*T0, &" ".repeat(4097));
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::Protocol(
            ProtocolError::TooLarge {
                len: 4097,
                max: 4096
            }
        ))]
    );
}

#[test]
fn truncated_frames_never_panic() {
    let mut c = connected(2);
    c.open_stream(None, &target()).unwrap();
    for full in [
        data_text("s1", b"some bytes"),
        r#"{"type":"stream_close","stream_id":"s1","reason":"eof"}"#.to_owned(),
        r#"{"type":"error","code":"stream_error","message":"m","stream_id":"s1"}"#.to_owned(),
    ] {
        for cut in 0..full.len() {
            c.handle_text(*T0, &full[..cut]);
        }
    }
    assert!(c.is_established());
    assert!(c.is_open("s1"), "no truncated frame reads as a close");
    let mut binary = Vec::new();
    crate::binary::encode_binary_stream_data("s1", b"x", &mut binary);
    for cut in 0..binary.len() {
        assert_eq!(c.handle_binary(*T0, &binary[..cut]), None);
    }
}

#[test]
fn local_close_is_final_and_keeps_queued_frames() {
    let mut c = connected(2);
    c.open_stream(None, &target()).unwrap();
    c.close_session();
    c.close_session();
    assert_eq!(
        events(&mut c),
        vec![Event::SessionClosed(CloseReason::Local)]
    );
    assert_eq!(texts(&mut c).len(), 2, "the driver may still flush them");
    assert!(matches!(
        c.send_data("s1", b"x"),
        Err(CommandError::Closed(CloseReason::Local))
    ));
    assert!(!c.close_stream("s1", None));
}

#[test]
fn two_phase_send_frees_its_place_when_the_stream_ends_between() {
    let mut c = connected(2);
    c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    let slot = c.reserve_data("s1", 5000).unwrap();
    assert_eq!(slot.len(), 1024);
    let transmit = slot.encode("s1", &[1; 5000]);
    // The gateway ends the stream while the driver encodes outside its lock.
    c.handle_text(*T0, r#"{"type":"stream_close","stream_id":"s1"}"#);
    c.queue_data("s1", slot, transmit);
    assert!(texts(&mut c).is_empty(), "dropped, as the gateway would");
    // Its place was freed: a full queue's worth fits on another stream.
    c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    for _ in 0..4 {
        c.send_data("s2", b"x").unwrap();
    }
    assert_eq!(c.send_data("s2", b"x"), Err(CommandError::Blocked));
    // An empty write takes no place and queues nothing.
    let empty = c.reserve_data("s2", 0).unwrap();
    assert!(empty.is_empty());
    c.queue_data("s2", empty, Transmit::Text(String::new()));
    assert_eq!(c.queued_transmits(), 4);
}

#[test]
fn decoded_input_is_the_same_as_text() {
    let mut a = connected(2);
    let mut b = connected(2);
    a.open_stream(None, &target()).unwrap();
    b.open_stream(None, &target()).unwrap();
    for text in [
        data_text("s1", b"hi"),
        r#"{"type":"ping"}"#.to_owned(),
        "junk".to_owned(),
        r#"{"type":"stream_close","stream_id":"s1"}"#.to_owned(),
    ] {
        let from_text = a.handle_text(*T0, &text);
        let decoded = b.handle_decoded(*T0, crate::decode_limited(&text, 4096));
        assert_eq!(from_text, decoded);
        assert_eq!(texts(&mut a), texts(&mut b));
        assert_eq!(events(&mut a), events(&mut b));
    }
}

/// What a frame is, for the ordering tests: `kind id`.
fn label(frame: &Frame<'_>) -> String {
    match frame {
        Frame::StreamOpen { stream_id, .. }
        | Frame::StreamData { stream_id, .. }
        | Frame::StreamClose { stream_id, .. } => format!("{} {stream_id}", frame.kind()),
        other => other.kind().to_owned(),
    }
}

#[test]
fn control_frames_overtake_data_and_streams_take_turns() {
    let mut c = Client::new(
        Config {
            send_queue_frames: 64,
            ..config()
        },
        "tok",
        *T0,
    );
    texts(&mut c);
    c.handle_text(*T0, &ready_text(8, &[]));
    let s1 = c.open_stream(None, &target()).unwrap();
    texts(&mut c);
    // A bulk writer fills its stream's queue (8 frames by default).
    while c.send_data(&s1, &[1; 1024]).is_ok() {}
    assert_eq!(c.send_data(&s1, b"x"), Err(CommandError::Blocked));
    // Three pings read meanwhile owe one pong; a new stream opens.
    for _ in 0..3 {
        c.handle_text(secs(1), r#"{"type":"ping"}"#);
    }
    let s2 = c.open_stream(None, &target()).unwrap();
    c.send_data(&s2, b"GET /").unwrap();
    c.close_stream(&s2, None);
    let order: Vec<String> = texts(&mut c).iter().map(label).collect();
    let expected_head = [
        "stream_open s2".to_owned(),
        // The closed stream's frames go ahead, in order, before its close
        // (its slot may be reused at once: the gateway must see the close
        // before any later open).
        "stream_data s2".to_owned(),
        "stream_data s2".to_owned(),
        "stream_close s2".to_owned(),
        "pong".to_owned(),
    ];
    assert_eq!(order[..5], expected_head, "{order:?}");
    assert_eq!(order.iter().filter(|l| *l == "pong").count(), 1);
    assert!(
        order[5..].iter().all(|l| l == "stream_data s1"),
        "{order:?}"
    );
}

#[test]
fn a_stream_cannot_take_the_whole_send_queue() {
    let mut c = Client::new(
        Config {
            send_queue_frames: 64,
            stream_queue_frames: 4,
            ..config()
        },
        "tok",
        *T0,
    );
    texts(&mut c);
    c.handle_text(*T0, &ready_text(8, &[]));
    let (a, b) = (
        c.open_stream(None, &target()).unwrap(),
        c.open_stream(None, &target()).unwrap(),
    );
    texts(&mut c);
    let mut sent_a = 0;
    while c.send_data(&a, &[1; 1024]).is_ok() {
        sent_a += 1;
    }
    assert_eq!(sent_a, 4, "one stream's share of the queue");
    for _ in 0..3 {
        c.send_data(&b, &[2; 1024]).unwrap();
    }
    let order: Vec<String> = texts(&mut c).iter().map(label).collect();
    let want: Vec<String> = [&a, &b, &a, &b, &a, &b, &a]
        .iter()
        .map(|id| format!("stream_data {id}"))
        .collect();
    assert_eq!(order, want);
}
