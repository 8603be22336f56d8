//! The client machine against the gateway's machine in memory, and
//! arbitrary input on simulated time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::{T0, config, data_text, events, ready_text, target};
use super::*;
use crate::MAX_FRAME_LEN;
use crate::frame::decode;
use crate::server;
use crate::streams::StreamRuleError;

/// A client and a gateway machine joined in memory, like quinn-proto's
/// `Pair`: messages cross instantly; the "upstream" records what the
/// gateway would dial and forward.
struct Pair {
    now: Instant,
    client: Client,
    handshake: server::Handshake,
    server: Option<server::Session>,
    binary: bool,
    dialed: HashMap<String, (String, Vec<u8>)>,
    /// What the gateway may still send, per stream (`None`: the session).
    credit: HashMap<Option<String>, u64>,
    received: HashMap<String, Vec<u8>>,
    closed: Vec<server::Action>,
}

impl Pair {
    fn new(offer: Features) -> Pair {
        let now = *T0;
        Pair {
            now,
            client: Client::new(Config { offer, ..config() }, "tok", now),
            handshake: server::Handshake::new(
                now,
                Duration::from_secs(10),
                4096,
                server::PingLimit::default(),
            ),
            server: None,
            binary: false,
            dialed: HashMap::new(),
            credit: HashMap::new(),
            received: HashMap::new(),
            closed: Vec::new(),
        }
    }

    /// Moves messages both ways until neither side has anything to say.
    fn drive(&mut self) {
        loop {
            let mut progress = false;
            while let Some(t) = self.client.poll_transmit() {
                progress = true;
                self.deliver_to_server(t);
            }
            let actions: Vec<server::Action> = match &mut self.server {
                Some(s) => std::iter::from_fn(|| s.poll_action()).collect(),
                None => Vec::new(),
            };
            for action in actions {
                progress = true;
                self.run(action);
            }
            if !progress {
                return;
            }
        }
    }

    fn deliver_to_server(&mut self, t: Transmit) {
        let now = self.now;
        let Some(server) = &mut self.server else {
            let Transmit::Text(text) = t else {
                panic!("binary hello")
            };
            let hello = self.handshake.handle_text(&text).unwrap();
            let features: Vec<Cow<'_, str>> = hello
                .accepted_features()
                .into_iter()
                .map(Into::into)
                .collect();
            self.binary = hello.binary_data;
            self.server = Some(server::Session::new(
                server::SessionParams {
                    max_streams: 2,
                    max_frame_len: self.client.config().max_frame_len,
                    max_violations: 3,
                    recently_closed: 8,
                    max_stream_id_len: 64,
                    stream_ready: hello.stream_ready,
                    binary_data: hello.binary_data,
                    flow_control: hello.flow_control,
                    windows: crate::flow::WindowLimits::default(),
                    rtt: Duration::from_millis(100),
                    idle_timeout: Duration::from_secs(60),
                    pings: server::PingLimit::default(),
                    drain_timeout: Duration::from_secs(5),
                },
                now,
            ));
            let ready = Frame::Ready {
                session_id: "pair".into(),
                max_streams: 2,
                features,
            };
            let text = encode_to_string(&ready);
            assert!(self.client.handle_text(now, &text).is_none());
            return;
        };
        match t {
            Transmit::Text(text) => server.handle_text(now, &text),
            Transmit::Binary(b) => server.handle_binary_message(now, &b),
        }
    }

    fn run(&mut self, action: server::Action) {
        match action {
            server::Action::Send(frame) => {
                let text = encode_to_string(&frame);
                if let Some(data) = self.client.handle_text(self.now, &text) {
                    let bytes = data.payload.bytes(&[]).to_vec();
                    self.received
                        .entry(data.stream_id.into_owned())
                        .or_default()
                        .extend(bytes);
                }
            }
            server::Action::Dial {
                id,
                target,
                initial,
                ..
            } => {
                self.dialed
                    .insert(id.to_string(), (target.to_string(), initial));
            }
            server::Action::Forward { id, data, .. } => {
                self.dialed.get_mut(&*id).unwrap().1.extend(data);
            }
            other @ (server::Action::Finish { .. }
            | server::Action::Abort { .. }
            | server::Action::Close { .. }) => self.closed.push(other),
            server::Action::Credit { id, increment } => {
                *self.credit.entry(id.map(|id| id.to_string())).or_default() += increment;
            }
            server::Action::Open { .. } | server::Action::ShutdownWrite { .. } => {}
        }
    }

    /// The upstream answers: what the gateway's stream task would send.
    fn reply(&mut self, id: &str, bytes: &[u8]) {
        let text = data_text(id, bytes);
        if let Some(data) = self.client.handle_text(self.now, &text) {
            let bytes = data.payload.bytes(&[]).to_vec();
            self.received
                .entry(id.to_owned())
                .or_default()
                .extend(bytes);
        }
    }
}

#[test]
fn pair_handshake_stream_and_close() {
    let mut p = Pair::new(Features::ALL);
    p.drive();
    let info = p.client.session_info().unwrap().clone();
    assert_eq!(info.max_streams, 2);
    assert_eq!(info.features, Features::ALL);
    assert!(p.binary);

    let id = p.client.open_stream(None, &target()).unwrap();
    p.client.send_data(&id, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    p.drive();
    let (dialed, bytes) = &p.dialed[&id];
    assert_eq!(dialed, "example.com:443");
    assert_eq!(bytes, b"GET / HTTP/1.1\r\n\r\n");

    p.reply(&id, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(p.received[&id], b"HTTP/1.1 200 OK\r\n\r\n");

    // Two streams is the gateway's limit; the client refuses a third itself.
    let second = p.client.open_stream(None, &target()).unwrap();
    assert!(matches!(
        p.client.open_stream(None, &target()),
        Err(CommandError::Stream(StreamRuleError::StreamLimit {
            max: 2
        }))
    ));
    assert!(p.client.shutdown_stream(&second).unwrap());
    p.client.close_stream(&id, None);
    p.drive();
    assert!(matches!(&p.closed[..], [server::Action::Finish { id: f }] if **f == *id));
    assert_eq!(p.server.as_ref().unwrap().open_streams(), 1);
    // The freed slot can be used again, on both sides.
    p.client.open_stream(None, &target()).unwrap();
    p.drive();
    assert_eq!(p.server.as_ref().unwrap().open_streams(), 2);
}

#[test]
fn pair_gateway_error_and_keepalive() {
    let mut p = Pair::new(Features::NONE);
    p.drive();
    assert_eq!(p.client.session_info().unwrap().features, Features::NONE);
    // A stream the gateway ends with an error reaches the client typed.
    let id = p.client.open_stream(None, &target()).unwrap();
    p.drive();
    let serial = 1;
    p.server.as_mut().unwrap().handle_stream_end(
        &id,
        serial,
        server::StreamEnd {
            reason: server::CloseReason::Refused,
            error: Some("connection refused".into()),
        },
    );
    p.drive();
    let ev = events(&mut p.client);
    assert!(
        ev.iter().any(|e| matches!(e, Event::StreamClosed { end: StreamEnd::Error { reason: Some(r), .. }, .. } if r == "refused")),
        "{ev:?}"
    );
    // Both sides keep each other alive on simulated time.
    for _ in 0..10 {
        p.now += Duration::from_secs(15);
        p.client.handle_timeout(p.now);
        p.server.as_mut().unwrap().handle_timeout(p.now);
        p.drive();
    }
    assert!(p.client.is_established());
    assert!(!p.server.as_ref().unwrap().is_closed());
}

/// Any message a gateway might send: valid frames on small ids, garbage,
/// binary messages, closes and the passing of time.
#[derive(Debug, Clone)]
enum Input {
    Text(String),
    Binary(Vec<u8>),
    Close(Option<u16>),
    Wait(u64),
    Open,
    Send(u8, Vec<u8>),
    CloseStream(u8),
}

fn input() -> impl Strategy<Value = Input> {
    let id = "s[1-4]";
    prop_oneof![
        (id, proptest::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(id, d)| Input::Text(data_text(&id, &d))),
        id.prop_map(|id| Input::Text(format!(r#"{{"type":"stream_close","stream_id":"{id}"}}"#))),
        id.prop_map(|id| Input::Text(format!(r#"{{"type":"stream_ready","stream_id":"{id}"}}"#))),
        (0u32..4, proptest::collection::vec("[a-z_]{1,12}", 0..3)).prop_map(|(n, f)| Input::Text(
            ready_text(n, &f.iter().map(String::as_str).collect::<Vec<_>>())
        )),
        Just(Input::Text(r#"{"type":"ping"}"#.into())),
        Just(Input::Text(
            r#"{"type":"error","code":"bad_frame","message":"m"}"#.into()
        )),
        "\\PC{0,40}".prop_map(Input::Text),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Input::Binary),
        proptest::option::of(1000u16..1015).prop_map(Input::Close),
        (0u64..60).prop_map(Input::Wait),
        Just(Input::Open),
        (1u8..5, proptest::collection::vec(any::<u8>(), 0..2000))
            .prop_map(|(i, d)| Input::Send(i, d)),
        (1u8..5).prop_map(Input::CloseStream),
    ]
}

proptest! {
    /// Whatever the gateway sends and whenever, the client never panics,
    /// never exceeds its limits, reports its end exactly once when it ends,
    /// and asks for a timer exactly while it lives.
    #[test]
    fn never_panics_and_ends_defined(
        binary_ready in any::<bool>(),
        inputs in proptest::collection::vec(input(), 0..60),
    ) {
        let mut c = Client::new(config(), "tok", *T0);
        if binary_ready {
            c.handle_text(*T0, &ready_text(3, &["binary_data", "half_close"]));
        }
        let mut now = *T0;
        let mut closed = 0;
        for input in inputs {
            match input {
                Input::Text(t) => {
                    if let Some(d) = c.handle_text(now, &t) {
                        prop_assert!(c.is_open(&d.stream_id));
                    }
                }
                Input::Binary(b) => {
                    if let Some(d) = c.handle_binary(now, &b) {
                        prop_assert!(c.is_open(&d.stream_id));
                        let _ = d.payload.bytes(&b);
                    }
                }
                Input::Close(code) => c.handle_close(code, "bye"),
                Input::Wait(s) => {
                    now += Duration::from_secs(s);
                    c.handle_timeout(now);
                }
                Input::Open => { let _ = c.open_stream(None, &target()); }
                Input::Send(i, d) => {
                    if let Ok(n) = c.send_data(&format!("s{i}"), &d) {
                        prop_assert!(n <= d.len() && n <= 1024);
                    }
                }
                Input::CloseStream(i) => { c.close_stream(&format!("s{i}"), None); }
            }
            prop_assert!(c.queued_transmits() < 200);
            while let Some(t) = c.poll_transmit() {
                // Everything the client sends is a frame the gateway can read.
                match t {
                    Transmit::Text(text) => prop_assert!(decode(&text).is_ok()),
                    Transmit::Binary(b) => prop_assert!(crate::binary::decode_binary_frame(&b, MAX_FRAME_LEN).is_ok()),
                }
            }
            while let Some(e) = c.poll_event() {
                if let Event::SessionClosed(_) = e {
                    closed += 1;
                }
            }
            prop_assert!(closed <= 1);
            prop_assert_eq!(c.poll_timeout().is_none(), c.close_reason().is_some());
            prop_assert_eq!(closed == 1, c.close_reason().is_some());
            let max = c.session_info().map_or(0, |i| i.max_streams as usize);
            prop_assert!(c.open_streams() <= max);
        }
    }

    /// Arbitrary bytes as the first message never establish a session
    /// unless they are a `ready`.
    #[test]
    fn first_message_is_ready_or_the_end(text in "\\PC{0,80}") {
        let mut c = Client::new(config(), "tok", *T0);
        c.handle_text(*T0, &text);
        let is_ready = matches!(decode(&text), Ok(Frame::Ready { .. }));
        let is_ping = matches!(decode(&text), Ok(Frame::Ping));
        prop_assert_eq!(c.is_established(), is_ready);
        prop_assert_eq!(c.close_reason().is_none(), is_ready || is_ping);
    }
}

#[test]
fn fuzz_hooks_run() {
    fuzzing::drive(b"\x2f\xa0\xff\xb0hi\xff\xc0\xff\x61\x01\x02s1x");
    fuzzing::drive(b"\x00\x00{\"type\":\"ready\",\"session_id\":\"x\",\"max_streams\":2}\xff\xa0\xff\xb0hi\xff\x93\xff\x00{\"type\":\"ping\"}");
    server::fuzzing::drive(
        b"{\"type\":\"hello\",\"session_token\":\"t\",\"version\":\"1\"}\xff\x00{\"type\":\"stream_open\",\"stream_id\":\"s1\",\"target\":\"a:1\"}\xff\xd9\xff\xe0",
    );
}

/// A paused reader on one stream stalls only that stream's sender, and
/// every byte arrives once it reads again (`flow_control` in both machines).
#[test]
fn pair_flow_control_stalls_only_the_paused_stream() {
    let mut p = Pair::new(Features::ALL);
    p.client = Client::new(
        Config {
            max_frame_len: MAX_FRAME_LEN,
            max_chunk: 64 * 1024,
            send_queue_frames: 1024,
            stream_queue_frames: 1024,
            ..config()
        },
        "tok",
        p.now,
    );
    p.drive();
    assert!(p.client.session_info().unwrap().features.flow_control);
    let paused = p.client.open_stream(None, &target()).unwrap();
    let other = p.client.open_stream(None, &target()).unwrap();
    p.drive();
    // Upload: the gateway's upstream for `paused` takes nothing; the client
    // may send exactly the initial stream window, then is blocked there.
    let chunk = vec![5u8; 64 * 1024];
    let mut sent = 0;
    while let Ok(n) = p.client.send_data(&paused, &chunk) {
        sent += n;
    }
    assert_eq!(sent as u64, crate::flow::INITIAL_STREAM_WINDOW);
    assert_eq!(
        p.client.send_data(&paused, &chunk),
        Err(CommandError::Blocked)
    );
    // The other stream still has its own window (the session's is larger).
    assert_eq!(p.client.send_data(&other, &chunk), Ok(64 * 1024));
    p.drive();
    // The upstream writes half of `paused`'s bytes: credit comes back.
    let server = p.server.as_mut().unwrap();
    server.handle_consumed(&paused, 1, 128 * 1024, p.now);
    p.drive();
    assert!(
        events(&mut p.client).contains(&Event::Writable),
        "the grant wakes the blocked writer"
    );
    assert_eq!(p.client.send_data(&paused, &chunk), Ok(64 * 1024));
    p.drive();
    assert_eq!(p.dialed[&paused].1.len(), 320 * 1024);

    // Download: the client's application does not read `paused`; the
    // gateway may send the window and no more.
    let gateway_credit = crate::flow::INITIAL_STREAM_WINDOW as usize;
    let reply = vec![9u8; gateway_credit];
    for piece in reply.chunks(64 * 1024) {
        p.reply(&paused, piece);
    }
    assert_eq!(p.received[&paused].len(), gateway_credit);
    assert!(p.client.poll_transmit().is_none(), "no grant while paused");
    // One byte more than granted: the client ends that stream only.
    p.reply(&paused, b"x");
    assert!(!p.client.is_open(&paused));
    assert!(p.client.is_open(&other));
    let evs = events(&mut p.client);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            Event::StreamClosed { stream_id, end: StreamEnd::Malformed(m) }
                if *stream_id == paused && m.contains("flow control")
        )),
        "{evs:?}"
    );
    // The application reads `other`: grants go out as it consumes.
    p.reply(&other, &vec![1u8; 100 * 1024]);
    p.reply(&other, &vec![1u8; 100 * 1024]);
    p.client.consumed(&other, 200 * 1024, p.now);
    p.drive();
    assert_eq!(
        p.credit.get(&Some(other.clone())),
        Some(&(200 * 1024)),
        "the stream's consumed bytes come back as its credit"
    );
}
