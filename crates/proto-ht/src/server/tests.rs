//! The server machine driven by plain chunks: a small client-side harness
//! encrypts queries and decrypts answers exactly as a real client would.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::query::MAX_PAYLOAD;

const SID: &str = "abcdefghijklmnopqrstuvwxy0";

fn key() -> Key {
    Key::from_hex(&"2a".repeat(32)).unwrap()
}

/// The client's end of one transport connection.
struct Wire {
    sid: String,
    up: ChunkCipher,
    down: ChunkCipher,
    conn: Option<ConnId>,
}

impl Wire {
    fn new(sid: &str) -> Wire {
        Wire::with_key(sid, &key())
    }

    fn with_key(sid: &str, key: &Key) -> Wire {
        let id = SessionId::parse(sid).unwrap();
        Wire {
            sid: sid.to_owned(),
            up: ChunkCipher::new(key, &id, Direction::ClientToServer),
            down: ChunkCipher::new(key, &id, Direction::ServerToClient),
            conn: None,
        }
    }

    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut chunk = plain.to_vec();
        self.up.apply(&mut chunk);
        chunk
    }
}

struct Harness {
    server: Server,
    now: Instant,
    /// Actions drained so far and not yet looked at.
    actions: Vec<Action>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(Limits::default())
    }

    fn with(limits: Limits) -> Harness {
        Harness {
            server: Server::new(key(), limits).unwrap(),
            now: Instant::now(),
            actions: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.server.poll_action() {
            self.actions.push(a);
        }
    }

    fn open(&mut self, wire: &mut Wire, plain: &[u8]) -> Result<ConnId, Refusal> {
        let mut chunk = wire.seal(plain);
        let r = self
            .server
            .handle_first_chunk(self.now, Some(&wire.sid), &mut chunk);
        if let Ok(conn) = r {
            wire.conn = Some(conn);
        }
        self.drain();
        r
    }

    fn send(&mut self, wire: &mut Wire, plain: &[u8]) {
        let mut chunk = wire.seal(plain);
        self.server.handle_chunk(wire.conn.unwrap(), &mut chunk);
        self.drain();
    }

    /// The answers sent on `wire`'s connection since the last call, as
    /// plaintext, in order.
    fn answers(&mut self, wire: &mut Wire) -> Vec<Vec<u8>> {
        let conn = wire.conn.unwrap();
        let mut out = Vec::new();
        self.actions.retain(|a| match a {
            Action::Send { conn: c, chunk } if *c == conn => {
                let mut plain = chunk.clone();
                wire.down.apply(&mut plain);
                out.push(plain);
                false
            }
            _ => true,
        });
        out
    }

    fn ended(&mut self, wire: &Wire) -> Option<EndReason> {
        let conn = wire.conn.unwrap();
        self.actions.iter().find_map(|a| match a {
            Action::EndConnection { conn: c, reason } if *c == conn => Some(*reason),
            _ => None,
        })
    }

    /// Takes the actions matching `f`.
    fn take<T>(&mut self, mut f: impl FnMut(&Action) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        self.actions.retain(|a| match f(a) {
            Some(t) => {
                out.push(t);
                false
            }
            None => true,
        });
        out
    }

    fn dials(&mut self) -> Vec<(TargetId, String, u16, Proto)> {
        self.take(|a| match a {
            Action::Dial {
                target,
                host,
                port,
                proto,
            } => Some((*target, host.clone(), *port, *proto)),
            _ => None,
        })
    }

    fn reads(&mut self) -> Vec<TargetId> {
        self.take(|a| match a {
            Action::Read { target } => Some(*target),
            _ => None,
        })
    }

    fn writes(&mut self) -> Vec<Vec<u8>> {
        self.take(|a| match a {
            Action::Write { data, .. } => Some(data.clone()),
            _ => None,
        })
    }

    /// Opens a TCP stream on `wire` (already open); returns its target and id.
    fn stream(&mut self, wire: &mut Wire, q: &str, proto: &str) -> (TargetId, String) {
        self.send(wire, format!("c{q} example.com {proto} 80").as_bytes());
        let (target, host, port, _) = self.dials().pop().expect("a dial");
        assert_eq!((host.as_str(), port), ("example.com", 80));
        self.server.handle_connected(target);
        self.drain();
        let answers = self.answers(wire);
        let sid = String::from_utf8(answers[0][q.len() + 2..].to_vec()).unwrap();
        assert_eq!(answers, [format!(".{q} {sid}").into_bytes()]);
        (target, sid)
    }

    /// Feeds one read of `data` (the read must have been granted).
    fn read(&mut self, target: TargetId, data: &[u8]) {
        assert!(self.reads().contains(&target), "no read granted");
        self.server.handle_read(target, data.to_vec());
        self.drain();
    }
}

fn opened() -> (Harness, Wire) {
    let mut h = Harness::new();
    let mut w = Wire::new(SID);
    h.open(&mut w, b"qp 0").unwrap();
    assert_eq!(
        h.answers(&mut w),
        [b"!p".to_vec()],
        "the probe names no stream"
    );
    (h, w)
}

#[test]
fn only_a_well_formed_first_query_opens_a_connection() {
    let mut h = Harness::new();
    let mut wrong = Wire::with_key(SID, &Key::from_hex(&"11".repeat(32)).unwrap());
    assert_eq!(h.open(&mut wrong, b"qp 0"), Err(Refusal::NotFound));
    let mut w = Wire::new(SID);
    assert_eq!(h.open(&mut w, b"not a query"), Err(Refusal::NotFound));
    let mut chunk = Wire::new(SID).seal(b"qp 0");
    assert_eq!(
        h.server.handle_first_chunk(h.now, None, &mut chunk),
        Err(Refusal::NotFound)
    );
    let mut chunk = Wire::new(SID).seal(b"qp 0");
    assert_eq!(
        h.server
            .handle_first_chunk(h.now, Some("UPPERCASEISNOTASESSIONID00"), &mut chunk),
        Err(Refusal::NotFound)
    );
    assert_eq!(h.server.session_count(), 0, "refusals leave no trace");
    assert_eq!(Refusal::NotFound.status(), 404);
    let mut w = Wire::new(SID);
    assert!(h.open(&mut w, b"qp 0").is_ok());
    assert_eq!(h.server.session_count(), 1);
}

#[test]
fn tcp_connect_download_and_end() {
    let (mut h, mut w) = opened();
    let (t, sid) = h.stream(&mut w, "c1", "tcp");
    assert_eq!(sid, "1", "stream ids are hex counters from 1");
    h.read(t, b"hello");
    h.read(t, b"world");
    h.send(&mut w, format!("dd1 {sid} 0 4").as_bytes());
    assert_eq!(
        h.answers(&mut w),
        [b".d1 hello".to_vec(), b".d1 world".to_vec()]
    );
    assert_eq!(h.reads(), [t], "the next read is granted");
    h.server.handle_target_end(t, TargetEnd::Eof);
    h.drain();
    assert_eq!(
        h.answers(&mut w),
        [b"!d1".to_vec()],
        "the end follows the last payload"
    );
    assert!(h.reads().is_empty(), "no read after the end");
    // The stream stays until `q`.
    h.send(&mut w, format!("qx {sid}").as_bytes());
    assert_eq!(h.answers(&mut w), [b".x".to_vec()]);
    assert!(h.actions.contains(&Action::CloseTarget { target: t }));
    h.send(&mut w, format!("qy {sid}").as_bytes());
    assert_eq!(h.answers(&mut w), [b"!y".to_vec()]);
}

#[test]
fn a_window_bounds_packets_in_flight_and_acks_move_it() {
    let (mut h, mut w) = opened();
    let (t, sid) = h.stream(&mut w, "c1", "tcp");
    for p in [b"a", b"b", b"c"] {
        h.read(t, p);
    }
    h.send(&mut w, format!("dd {sid} 0").as_bytes());
    assert_eq!(
        h.answers(&mut w),
        [b".d a".to_vec()],
        "no window: stop and wait"
    );
    h.send(&mut w, b".d 1");
    assert_eq!(h.answers(&mut w), [b".d b".to_vec()]);
    h.send(&mut w, b".d 2");
    assert_eq!(h.answers(&mut w), [b".d c".to_vec()]);
}

#[test]
fn resume_on_another_connection_sends_exactly_the_missing_packets() {
    let (mut h, mut a) = opened();
    let (t, sid) = h.stream(&mut a, "c1", "tcp");
    for i in 0..6u8 {
        h.read(t, &[b'0' + i]);
    }
    h.send(&mut a, format!("dd {sid} 0 4").as_bytes());
    assert_eq!(h.answers(&mut a).len(), 4);
    h.send(&mut a, b".d 2");
    let sent = h.answers(&mut a);
    assert_eq!(sent, [b".d 4".to_vec(), b".d 5".to_vec()]);
    // The connection breaks: the client got packets 0..=3 but acknowledged
    // only 0 and 1 before the break, and lost 4 and 5 in flight.
    h.server.handle_connection_closed(h.now, a.conn.unwrap());
    h.drain();
    let mut b = Wire::new(SID);
    h.open(&mut b, format!("de {sid} 2 8").as_bytes()).unwrap();
    assert_eq!(
        h.answers(&mut b),
        [b".e 2", b".e 3", b".e 4", b".e 5"].map(|x| x.to_vec())
    );
    // Starting before what was acknowledged is refused.
    h.send(&mut b, format!("df {sid} 1").as_bytes());
    assert_eq!(h.answers(&mut b), [b"!f".to_vec()]);
}

#[test]
fn a_new_download_replaces_the_open_batch_wherever_it_lives() {
    let (mut h, mut a) = opened();
    let (t, sid) = h.stream(&mut a, "c1", "tcp");
    h.send(&mut a, format!("dd {sid} 0 4").as_bytes());
    let mut b = Wire::new(SID);
    h.open(&mut b, format!("de {sid} 0 4").as_bytes()).unwrap();
    h.read(t, b"x");
    assert!(h.answers(&mut a).is_empty(), "the old batch ended silently");
    assert_eq!(h.answers(&mut b), [b".e x".to_vec()]);
    // Its late acknowledgement is ignored, not an error.
    h.send(&mut a, b".d 0");
    assert_eq!(h.ended(&a), None);
}

#[test]
fn uploads_are_acknowledged_in_order_and_withheld_while_the_target_is_behind() {
    let limits = Limits {
        max_buffer: 10,
        max_upload_ahead: 2,
        ..Limits::default()
    };
    let mut h = Harness::with(limits);
    let mut w = Wire::new(SID);
    h.open(&mut w, b"qp 0").unwrap();
    h.answers(&mut w);
    let (t, sid) = h.stream(&mut w, "c1", "tcp");
    h.send(&mut w, format!("uu {sid}").as_bytes());
    assert_eq!(h.answers(&mut w), [b".u 0".to_vec()]);
    h.send(&mut w, b"Uu 123456");
    h.send(&mut w, b"Uu 7890ab");
    assert_eq!(h.answers(&mut w), [b".u 1".to_vec()], "12 bytes wait: held");
    assert_eq!(h.writes(), [b"123456".to_vec(), b"7890ab".to_vec()]);
    h.server.handle_written(t, 12);
    h.drain();
    assert_eq!(h.answers(&mut w), [b".u 2".to_vec()]);
    // Past the bound on packets sent beyond a withheld acknowledgement.
    h.send(&mut w, b"Uu 0123456789ab");
    h.send(&mut w, b"Uu x");
    assert_eq!(
        h.ended(&w),
        None,
        "two packets past a withheld acknowledgement"
    );
    h.send(&mut w, b"Uu y");
    assert_eq!(h.ended(&w), Some(EndReason::UploadOverrun));
}

#[test]
fn an_empty_upload_half_closes_tcp_after_the_bytes_before_it() {
    let (mut h, mut w) = opened();
    let (t, sid) = h.stream(&mut w, "c1", "tcp");
    h.send(&mut w, format!("uu {sid}").as_bytes());
    h.send(&mut w, b"Uu data");
    h.send(&mut w, b"Uu ");
    let tail: Vec<&Action> = h
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Write { .. } | Action::ShutdownWrite { .. }))
        .collect();
    assert_eq!(
        tail,
        [
            &Action::Write {
                target: t,
                data: b"data".to_vec()
            },
            &Action::ShutdownWrite { target: t }
        ]
    );
    assert_eq!(
        h.answers(&mut w),
        [b".u 0", b".u 1", b".u 2"].map(|x| x.to_vec())
    );
    h.send(&mut w, b"Uu more");
    assert_eq!(h.answers(&mut w), [b"!u".to_vec()]);
}

#[test]
fn queries_the_server_cannot_serve_get_a_failure() {
    let (mut h, mut w) = opened();
    for q in [
        &b"da 9 0"[..],
        b"ub 9",
        b"qc 9",
        b"ce host tcp 0",
        b"nf host MX",
    ] {
        h.send(&mut w, q);
    }
    assert_eq!(
        h.answers(&mut w),
        [b"!a", b"!b", b"!c", b"!e", b"!f"].map(|x| x.to_vec())
    );
    assert_eq!(h.ended(&w), None);
    h.send(&mut w, b"cg host tcp 1");
    let (t, ..) = h.dials().pop().unwrap();
    h.server.handle_connect_failed(t);
    h.drain();
    assert_eq!(h.answers(&mut w), [b"!g".to_vec()]);
}

#[test]
fn broken_chunks_end_their_connection_only() {
    let (mut h, mut a) = opened();
    let mut b = Wire::new(SID);
    h.open(&mut b, b"qp 0").unwrap();
    h.answers(&mut b);
    h.send(&mut a, b"\xff\xfe garbage");
    assert_eq!(h.ended(&a), Some(EndReason::Undecodable));
    h.send(&mut b, b"qz 0");
    assert_eq!(
        h.answers(&mut b),
        [b"!z".to_vec()],
        "the other connection works"
    );
    // A chunk of an ended connection is ignored.
    h.send(&mut a, b"qz 0");
    assert!(h.answers(&mut a).is_empty());
}

#[test]
fn oversized_chunks_and_bad_acks_end_the_connection() {
    let (mut h, mut w) = opened();
    let big = vec![b'U'; h.server.limits().max_chunk + 1];
    h.send(&mut w, &big);
    assert_eq!(h.ended(&w), Some(EndReason::ChunkTooLarge));

    let (mut h, mut w) = opened();
    let (t, sid) = h.stream(&mut w, "c1", "tcp");
    h.read(t, b"x");
    h.send(&mut w, format!("dd {sid} 0 4").as_bytes());
    h.send(&mut w, b".d 5");
    assert_eq!(h.ended(&w), Some(EndReason::BadAck));
}

#[test]
fn query_ids_in_flight_are_unique_and_bounded() {
    let limits = Limits {
        max_in_flight: 2,
        ..Limits::default()
    };
    let mut h = Harness::with(limits);
    let mut w = Wire::new(SID);
    h.open(&mut w, b"na example.com A").unwrap();
    h.send(&mut w, b"nb example.com A");
    h.send(&mut w, b"nc example.com A");
    assert_eq!(h.answers(&mut w), [b"!c".to_vec()], "over the bound");
    h.send(&mut w, b"na example.com AAAA");
    assert_eq!(h.ended(&w), Some(EndReason::BadQueryId));
}

#[test]
fn dns_answers_carry_at_most_16_records() {
    let (mut h, mut w) = opened();
    for q in ["n1 a.example A", "n2 b.example AAAA", "n3 1.2.3.4 PTR"] {
        h.send(&mut w, q.as_bytes());
    }
    let lookups = h.take(|a| match a {
        Action::Resolve { lookup, kind, .. } => Some((*lookup, *kind)),
        _ => None,
    });
    assert_eq!(lookups.len(), 3);
    let many: Vec<String> = (0..20).map(|i| format!("10.0.0.{i}")).collect();
    h.server.handle_dns(lookups[0].0, Ok(many));
    h.server.handle_dns(lookups[1].0, Ok(vec![]));
    h.server.handle_dns(lookups[2].0, Err(DnsFailure::Failed));
    h.drain();
    let answers = h.answers(&mut w);
    let first = String::from_utf8(answers[0].clone()).unwrap();
    assert_eq!(first.split(' ').count(), 1 + 16);
    assert!(first.starts_with(".1 10.0.0.0 10.0.0.1 "));
    assert_eq!(answers[1..], [b".2".to_vec(), b"!3".to_vec()]);
}

#[test]
fn udp_datagrams_queue_and_the_oldest_drop() {
    let limits = Limits {
        // One packet kept.
        max_buffer: Limits::default().read_size,
        max_datagrams: 2,
        ..Limits::default()
    };
    let mut h = Harness::with(limits);
    let mut w = Wire::new(SID);
    h.open(&mut w, b"qp 0").unwrap();
    h.answers(&mut w);
    let (t, sid) = h.stream(&mut w, "c1", "udp");
    for d in [b"d1", b"d2", b"d3", b"d4"] {
        h.read(t, d);
    }
    let dropped = h.take(|a| match a {
        Action::Event(Event::DatagramsDropped(n)) => Some(*n),
        _ => None,
    });
    assert_eq!(dropped.iter().sum::<u64>(), 1);
    h.send(&mut w, format!("dd {sid} 0 8").as_bytes());
    assert_eq!(h.answers(&mut w), [b".d d1".to_vec()]);
    h.send(&mut w, b".d 1");
    assert_eq!(h.answers(&mut w), [b".d d3".to_vec()]);
    h.send(&mut w, b"uu 1");
    h.send(&mut w, b"Uu ");
    assert_eq!(
        h.writes(),
        [Vec::<u8>::new()],
        "an empty U is an empty datagram"
    );
}

/// One session keeps at most `max_session_buffer` download bytes across
/// its streams: a TCP stream waits for room, first refused first; a UDP
/// stream's datagrams are trimmed.
#[test]
fn a_session_keeps_at_most_its_buffer_across_streams() {
    let limits = Limits {
        read_size: 4,
        max_buffer: 16,
        max_session_buffer: 12,
        ..Limits::default()
    };
    let mut h = Harness::with(limits);
    let mut w = Wire::new(SID);
    h.open(&mut w, b"qp 0").unwrap();
    h.answers(&mut w);
    let (a, sa) = h.stream(&mut w, "c1", "tcp");
    let (b, _) = h.stream(&mut w, "c2", "tcp");
    // a: 4 + 4 kept and one read reserved = 12: b's read waits.
    assert_eq!(h.reads(), [a, b], "each stream reads once it opens");
    h.server.handle_read(a, b"aaaa".to_vec());
    h.server.handle_read(b, b"bbbb".to_vec());
    h.drain();
    let granted = h.reads();
    assert_eq!(granted.len(), 1, "room for one more read: {granted:?}");
    let first = granted[0];
    h.server.handle_read(first, b"xxxx".to_vec());
    h.drain();
    assert!(h.reads().is_empty(), "12 bytes kept: no more reads");
    // The client takes a's packets: room comes back, the other stream
    // (starved first) reads before a.
    h.send(&mut w, format!("dd {sa} 0 8").as_bytes());
    let got = h.answers(&mut w).len();
    assert!(got >= 1);
    h.send(&mut w, format!(".d {got:x}").as_bytes());
    let after = h.reads();
    assert!(!after.is_empty(), "room came back");
    let other = if first == a { b } else { a };
    assert_eq!(after[0], other, "the starved stream reads first");
    // UDP: datagrams past the session's room are dropped, oldest first.
    let (u, _) = h.stream(&mut w, "c3", "udp");
    for _ in 0..8 {
        h.read(u, b"uuuu");
    }
    let dropped: u64 = h
        .take(|a| match a {
            Action::Event(Event::DatagramsDropped(n)) => Some(*n),
            _ => None,
        })
        .iter()
        .sum();
    assert!(
        dropped >= 5,
        "the session's room bounds the queue ({dropped})"
    );
}

#[test]
fn idle_sessions_are_reclaimed_and_remembered() {
    let limits = Limits {
        session_idle: Duration::from_secs(5),
        max_sessions: 1,
        ..Limits::default()
    };
    let mut h = Harness::with(limits);
    let mut w = Wire::new(SID);
    h.open(&mut w, b"qp 0").unwrap();
    h.answers(&mut w);
    let (t, _) = h.stream(&mut w, "c1", "tcp");
    // Another session is over the limit.
    let mut other = Wire::new("zzzzzzzzzzzzzzzzzzzzzzzzzz");
    assert_eq!(h.open(&mut other, b"qp 0"), Err(Refusal::Busy));
    assert_eq!(
        h.server.poll_timeout(),
        None,
        "a connected session is not idle"
    );
    h.server.handle_connection_closed(h.now, w.conn.unwrap());
    let due = h.server.poll_timeout().unwrap();
    assert_eq!(due, h.now + Duration::from_secs(5));
    h.server.handle_timeout(due - Duration::from_millis(1));
    assert_eq!(h.server.session_count(), 1);
    h.server.handle_timeout(due);
    h.drain();
    assert_eq!(h.server.session_count(), 0);
    assert!(h.actions.contains(&Action::CloseTarget { target: t }));
    h.now = due;
    let mut again = Wire::new(SID);
    assert_eq!(h.open(&mut again, b"qp 0"), Err(Refusal::Reclaimed));
    // Forgotten after an hour.
    h.now = due + Duration::from_secs(3600);
    h.server.handle_timeout(h.now);
    let mut later = Wire::new(SID);
    assert!(h.open(&mut later, b"qp 0").is_ok());
}

#[test]
fn a_session_ended_by_the_server_still_goes_idle() {
    let (mut h, mut w) = opened();
    h.send(&mut w, b"\x00");
    assert!(h.ended(&w).is_some());
    assert_eq!(h.server.poll_timeout(), None);
    h.server.handle_connection_closed(h.now, w.conn.unwrap());
    assert!(h.server.poll_timeout().is_some());
}

#[test]
fn the_stream_limit_counts_dials_in_progress() {
    let limits = Limits {
        max_streams: 1,
        ..Limits::default()
    };
    let mut h = Harness::with(limits);
    let mut w = Wire::new(SID);
    h.open(&mut w, b"ca h tcp 1").unwrap();
    h.send(&mut w, b"cb h tcp 1");
    assert_eq!(h.answers(&mut w), [b"!b".to_vec()]);
}

#[test]
fn a_dial_finishing_after_its_connection_closes_is_closed() {
    let (mut h, mut w) = opened();
    h.send(&mut w, b"ca h tcp 1");
    let (t, ..) = h.dials().pop().unwrap();
    h.server.handle_connection_closed(h.now, w.conn.unwrap());
    h.server.handle_connected(t);
    h.drain();
    assert!(h.actions.contains(&Action::CloseTarget { target: t }));
}

#[test]
fn shutdown_ends_everything() {
    let (mut h, mut w) = opened();
    let (t, _) = h.stream(&mut w, "c1", "tcp");
    h.server.shutdown();
    h.drain();
    assert_eq!(h.ended(&w), Some(EndReason::Shutdown));
    assert!(h.actions.contains(&Action::CloseTarget { target: t }));
}

#[test]
fn a_full_upload_payload_fits_the_default_chunk_limit() {
    let (mut h, mut w) = opened();
    let (_, sid) = h.stream(&mut w, "c1", "tcp");
    h.send(&mut w, format!("uABCDEFGHIJKLMNOP {sid}").as_bytes());
    let mut chunk = b"UABCDEFGHIJKLMNOP ".to_vec();
    chunk.resize(chunk.len() + MAX_PAYLOAD, b'x');
    h.send(&mut w, &chunk);
    assert_eq!(h.ended(&w), None);
    assert_eq!(h.answers(&mut w).last().unwrap(), b".ABCDEFGHIJKLMNOP 1");
}

#[test]
fn truncated_queries_are_failures_or_end_the_connection() {
    for full in [
        &b"ca example.com tcp 80"[..],
        b"dd 1 0 4",
        b"uu 1",
        b"nq example.com AAAA",
        b".d 3",
    ] {
        for len in 0..full.len() {
            let (mut h, mut w) = opened();
            h.send(&mut w, &full[..len]);
            let answers = h.answers(&mut w);
            let ended = h.ended(&w).is_some();
            let failed = answers.len() == 1 && answers[0].first() == Some(&b'!');
            let started = matches!(
                h.actions.iter().find(|a| !matches!(a, Action::Event(_))),
                Some(Action::Dial { .. } | Action::Resolve { .. })
            );
            assert!(
                ended || failed || started || (answers.is_empty() && full[0] == b'.'),
                "{:?}: {answers:?}",
                String::from_utf8_lossy(&full[..len])
            );
        }
    }
}

/// One step of a random run.
#[derive(Debug, Clone)]
enum Step {
    Chunk(usize, Vec<u8>),
    Raw(usize, Vec<u8>),
    Close(usize),
    Connected(u64),
    Failed(u64),
    Read(u64, Vec<u8>),
    End(u64, bool),
    Written(u64, usize),
    Dns(u64, bool),
    Tick(u64),
}

fn query_text() -> impl Strategy<Value = Vec<u8>> {
    let pattern = |p: &str| {
        proptest::string::string_regex(p)
            .unwrap()
            .prop_map(String::into_bytes)
    };
    prop_oneof![
        pattern("c[a-c] h (tcp|udp) [1-9]"),
        pattern("q[a-c] [0-3]"),
        pattern("n[a-c] h (A|AAAA|PTR)"),
        pattern("u[a-c] [0-3]"),
        pattern("U[a-c] [a-z]{0,4}"),
        pattern("d[a-c] [0-3] [0-4]( [1-4])?"),
        pattern("\\.[a-c] [0-6]"),
        pattern("![a-c]"),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..3usize, query_text()).prop_map(|(c, q)| Step::Chunk(c, q)),
        1 => (0..3usize, proptest::collection::vec(any::<u8>(), 0..12)).prop_map(|(c, b)| Step::Raw(c, b)),
        1 => (0..3usize).prop_map(Step::Close),
        2 => (0..40u64).prop_map(Step::Connected),
        1 => (0..40u64).prop_map(Step::Failed),
        2 => (0..40u64, proptest::collection::vec(any::<u8>(), 0..4)).prop_map(|(t, d)| Step::Read(t, d)),
        1 => (0..40u64, any::<bool>()).prop_map(|(t, e)| Step::End(t, e)),
        1 => (0..40u64, 0..8usize).prop_map(|(t, n)| Step::Written(t, n)),
        1 => (0..40u64, any::<bool>()).prop_map(|(l, ok)| Step::Dns(l, ok)),
        1 => (0..400u64).prop_map(Step::Tick),
    ]
}

proptest! {
    /// The fuzz target's driver, on proptest's inputs.
    #[test]
    fn the_fuzz_driver_holds_its_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        super::fuzzing::drive(&data);
    }

    /// Any sequence of chunks and driver reports: never a panic, and every
    /// answer goes to a connection that was open when it was sent.
    #[test]
    fn random_runs_never_panic(steps in proptest::collection::vec(step(), 0..60)) {
        let limits = Limits {
            session_idle: Duration::from_secs(100),
            max_buffer: 8,
            max_session_buffer: 12,
            read_size: 2,
            max_datagrams: 2,
            ..Limits::default()
        };
        let mut h = Harness::with(limits);
        let mut wires: Vec<Wire> = (0..3).map(|_| Wire::new(SID)).collect();
        let start = h.now;
        for step in steps {
            match step {
                Step::Chunk(i, plain) | Step::Raw(i, plain) => {
                    let w = &mut wires[i];
                    match w.conn {
                        None => { let _ = h.open(w, &plain); }
                        Some(_) => h.send(w, &plain),
                    }
                }
                Step::Close(i) => {
                    if let Some(conn) = wires[i].conn.take() {
                        h.server.handle_connection_closed(h.now, conn);
                        wires[i] = Wire::new(SID);
                    }
                }
                Step::Connected(t) => h.server.handle_connected(TargetId(t)),
                Step::Failed(t) => h.server.handle_connect_failed(TargetId(t)),
                Step::Read(t, d) => h.server.handle_read(TargetId(t), d),
                Step::End(t, e) => h.server.handle_target_end(
                    TargetId(t),
                    if e { TargetEnd::Eof } else { TargetEnd::Error },
                ),
                Step::Written(t, n) => h.server.handle_written(TargetId(t), n),
                Step::Dns(l, ok) => h.server.handle_dns(
                    LookupId(l),
                    if ok { Ok(vec!["1.2.3.4".into()]) } else { Err(DnsFailure::Failed) },
                ),
                Step::Tick(s) => {
                    h.now = start + Duration::from_secs(s);
                    h.server.handle_timeout(h.now);
                }
            }
            h.drain();
            h.server.check_session_buffers();
            // Every answer decodes on its wire's keystream.
            for w in wires.iter_mut().filter(|w| w.conn.is_some()) {
                for answer in h.answers(w) {
                    prop_assert!(Answer::decode(&answer).is_ok(), "{answer:?}");
                }
            }
            h.actions.clear();
        }
    }

    /// A download cut at any point and resumed on a new connection from the
    /// last acknowledgement delivers every byte once, in order.
    #[test]
    fn resumed_downloads_lose_and_repeat_nothing(
        packets in 1..12u8,
        window in 1..6u64,
        cut_after in 0..12usize,
    ) {
        let (mut h, mut a) = opened();
        let (t, sid) = h.stream(&mut a, "c1", "tcp");
        for i in 0..packets {
            h.read(t, &[i]);
        }
        h.server.handle_target_end(t, TargetEnd::Eof);
        h.drain();
        let mut got = Vec::new();
        h.send(&mut a, format!("dd {sid} 0 {window:x}").as_bytes());
        let mut wire = a;
        let mut q = "d".to_owned();
        let mut received = 0usize;
        let mut resumed = false;
        loop {
            let answers = h.answers(&mut wire);
            if answers.is_empty() {
                break;
            }
            let mut done = false;
            for answer in answers {
                match Answer::decode(&answer).unwrap() {
                    Answer::Ok { body: Some(b), .. } => { got.extend_from_slice(b); received += 1; }
                    Answer::Fail { .. } => { done = true; }
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            if done {
                break;
            }
            if !resumed && received > cut_after {
                // The last packets "arrive" but their ack is lost with the
                // connection; the client resumes from what it acknowledged.
                resumed = true;
                let acked = got.len() - 1;
                got.truncate(acked);
                h.server.handle_connection_closed(h.now, wire.conn.unwrap());
                wire = Wire::new(SID);
                q = "r".into();
                h.open(&mut wire, format!("dr {sid} {acked:x} {window:x}").as_bytes()).unwrap();
                continue;
            }
            h.send(&mut wire, format!(".{q} {:x}", got.len()).as_bytes());
        }
        prop_assert_eq!(got, (0..packets).collect::<Vec<u8>>());
    }
}
