//! The `flow_control` extension on the gateway's side.

use super::*;

fn flow_params() -> SessionParams {
    SessionParams {
        flow_control: true,
        max_frame_len: 1 << 20,
        ..params()
    }
}

/// Opens `id` and completes its address header.
fn open_dialed(s: &mut Session, id: &str) {
    s.handle_text(*T0, &open(id));
    let mut header = Vec::new();
    TargetAddr::parse("example.com:80")
        .unwrap()
        .encode(&mut header);
    s.handle_text(*T0, &data(id, &header));
    assert!(
        drain(s).iter().any(|a| matches!(a, Action::Dial { .. })),
        "dialed"
    );
}

#[test]
fn flow_window_update_without_the_extension_is_unsupported() {
    let mut s = Session::new(params(), *T0);
    s.handle_text(*T0, r#"{"type":"window_update","increment":5}"#);
    let actions = drain(&mut s);
    assert!(matches!(
        &actions[..],
        [Action::Send(Frame::Error {
            code: ErrorCode::Unsupported,
            ..
        })]
    ));
}

#[test]
fn flow_client_grants_become_credit_actions() {
    let mut s = Session::new(flow_params(), *T0);
    open_dialed(&mut s, "s1");
    s.handle_text(
        *T0,
        r#"{"type":"window_update","stream_id":"s1","increment":7}"#,
    );
    s.handle_text(*T0, r#"{"type":"window_update","increment":9}"#);
    // Late or unknown streams: dropped quietly.
    s.handle_text(
        *T0,
        r#"{"type":"window_update","stream_id":"s9","increment":1}"#,
    );
    s.handle_text(*T0, r#"{"type":"window_update","increment":0}"#);
    let actions = drain(&mut s);
    assert!(matches!(
        &actions[0],
        Action::Credit { id: Some(id), increment: 7 } if &**id == "s1"
    ));
    assert_eq!(
        actions[1],
        Action::Credit {
            id: None,
            increment: 9
        }
    );
    // An increment of 0 is not a window_update the extension allows.
    assert!(matches!(
        &actions[2..],
        [Action::Send(Frame::Error {
            code: ErrorCode::BadFrame,
            ..
        })]
    ));
}

#[test]
fn flow_client_bytes_are_checked_and_credit_follows_the_upstream() {
    let mut s = Session::new(flow_params(), *T0);
    open_dialed(&mut s, "s1");
    let serial = 1;
    let chunk = vec![7u8; 64 * 1024];
    // The whole initial window: accepted, forwarded, no grant yet.
    for _ in 0..4 {
        s.handle_text(*T0, &data("s1", &chunk));
    }
    let actions = drain(&mut s);
    assert_eq!(actions.len(), 4);
    assert!(actions.iter().all(|a| matches!(a, Action::Forward { .. })));
    // Half written upstream: the stream and the session get more credit.
    s.handle_consumed("s1", serial, 128 * 1024, *T0);
    let grants: Vec<_> = drain(&mut s)
        .into_iter()
        .map(|a| match a {
            Action::Send(Frame::WindowUpdate {
                stream_id,
                increment,
            }) => (stream_id.map(|s| s.into_owned()), increment),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(grants, vec![(Some("s1".to_owned()), 128 * 1024)]);
    // A report for an older stream of the same id is ignored.
    s.handle_consumed("s1", serial + 1, 1 << 20, *T0);
    assert!(drain(&mut s).is_empty());
    // Past the granted window: the stream ends with flow_control.
    s.handle_text(*T0, &data("s1", &chunk));
    s.handle_text(*T0, &data("s1", &chunk));
    s.handle_text(*T0, &data("s1", &[1]));
    let actions = drain(&mut s);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Send(Frame::StreamClose { reason: Some(r), .. }) if r == "flow_control"
        )),
        "{actions:?}"
    );
    assert!(!s.is_closed(), "a stream overrun ends only the stream");
}

#[test]
fn flow_session_overrun_closes_the_session() {
    let mut s = Session::new(
        SessionParams {
            max_streams: 100,
            ..flow_params()
        },
        *T0,
    );
    let chunk = vec![7u8; 256 * 1024];
    // 65 streams, a full initial window each: over the session's 64.
    for n in 1..=65 {
        let id = format!("s{n}");
        open_dialed(&mut s, &id);
        s.handle_text(*T0, &data(&id, &chunk));
        if n < 65 {
            assert!(!s.is_closed(), "{n}");
        }
    }
    assert!(s.is_closed());
    let actions = drain(&mut s);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Close {
            code: close_code::POLICY,
            ..
        }
    )));
}

#[test]
fn flow_a_closed_stream_returns_its_buffered_bytes_to_the_session() {
    let mut s = Session::new(
        SessionParams {
            max_streams: 100,
            ..flow_params()
        },
        *T0,
    );
    let chunk = vec![7u8; 256 * 1024];
    // Streams closed by the client with a full window unwritten: the
    // session gets the bytes back, and once half its window is free again,
    // it grants (nothing was ever reported written upstream).
    let mut granted = false;
    for n in 1..=40 {
        let id = format!("s{n}");
        open_dialed(&mut s, &id);
        s.handle_text(*T0, &data(&id, &chunk));
        s.handle_text(*T0, &close(&id));
        granted |= drain(&mut s).iter().any(|a| {
            matches!(
                a,
                Action::Send(Frame::WindowUpdate {
                    stream_id: None,
                    ..
                })
            )
        });
    }
    assert!(granted);
    // Late bytes for a closed stream use session credit (the client spent
    // it) and are released at once.
    for _ in 0..8 {
        s.handle_text(*T0, &data("s40", &chunk));
    }
    assert!(!s.is_closed());
}
