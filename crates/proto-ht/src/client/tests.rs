//! The client machine against a small in-memory model of the server's
//! rules (CONTRACTS.md §2, docs/ht.md), with connections that can be cut at
//! any point.

use std::collections::{BTreeMap, HashMap, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::query::{Answer, Query};

/// The server's side of one stream, as the contract has it.
#[derive(Default)]
struct ServerStream {
    /// Upload: the next packet expected, and the bytes received in order.
    expected: u64,
    uploaded: Vec<u8>,
    upload_fin: bool,
    /// Download: every packet the target produced (ids from 0), the last
    /// acknowledgement, and whether the target closed.
    packets: Vec<Vec<u8>>,
    acked: u64,
    target_closed: bool,
    /// The open download batch: connection, query id, window, next to send.
    down: Option<(ConnId, String, u64, u64)>,
    up: Option<(ConnId, String)>,
}

#[derive(Default)]
struct Server {
    streams: BTreeMap<String, ServerStream>,
    next_stream: u64,
    /// Chunks in flight, per connection and direction.
    to_server: HashMap<ConnId, VecDeque<Vec<u8>>>,
    to_client: HashMap<ConnId, VecDeque<Vec<u8>>>,
    /// Stream ids the test closed with `q`.
    disconnected: Vec<String>,
    /// What those streams had uploaded when closed.
    closed_uploads: HashMap<String, Vec<u8>>,
}

fn answer(ok: bool, q: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    if ok {
        Answer::Ok { q, body }.encode(&mut out);
    } else {
        Answer::Fail { q }.encode(&mut out);
    }
    out
}

impl Server {
    fn out(&mut self, conn: ConnId, chunk: Vec<u8>) {
        self.to_client.entry(conn).or_default().push_back(chunk);
    }

    /// Sends what the stream's download batch may send now.
    fn pump(&mut self, stream: &str) {
        let s = self.streams.get_mut(stream).unwrap();
        let Some((conn, q, w, next)) = s.down.clone() else {
            return;
        };
        let mut next = next;
        let mut out = Vec::new();
        while next < s.acked + w && (next as usize) < s.packets.len() {
            out.push(answer(true, &q, Some(&s.packets[next as usize])));
            next += 1;
        }
        let mut ended = false;
        if s.target_closed && next as usize == s.packets.len() && next < s.acked + w + 1 {
            out.push(answer(false, &q, None));
            ended = true;
        }
        s.down = if ended {
            None
        } else {
            Some((conn, q, w, next))
        };
        for chunk in out {
            self.out(conn, chunk);
        }
    }

    /// Handles one chunk from the client on `conn`.
    fn handle(&mut self, conn: ConnId, chunk: &[u8]) {
        match Query::decode(chunk).expect("the client sends well-formed queries") {
            Query::Disconnect { q, stream } => {
                let removed = self.streams.remove(stream);
                let known = removed.is_some();
                if let Some(s) = removed {
                    self.disconnected.push(stream.to_owned());
                    self.closed_uploads.insert(stream.to_owned(), s.uploaded);
                }
                let reply = answer(known, q, None);
                self.out(conn, reply);
            }
            Query::Connect { q, host, .. } => {
                if host == "refused.example" {
                    let reply = answer(false, q, None);
                    self.out(conn, reply);
                    return;
                }
                self.next_stream += 1;
                let id = format!("{:x}", self.next_stream);
                self.streams.insert(id.clone(), ServerStream::default());
                let reply = answer(true, q, Some(id.as_bytes()));
                self.out(conn, reply);
            }
            Query::Dns { q, host, .. } => {
                let reply = if host == "nx.example" {
                    answer(false, q, None)
                } else {
                    answer(true, q, Some(b"192.0.2.1 192.0.2.2"))
                };
                self.out(conn, reply);
            }
            Query::Upload { q, stream } => {
                let s = self.streams.get_mut(stream).expect("known stream");
                s.up = Some((conn, q.to_owned()));
                let reply = format!("{:x}", s.expected);
                let reply = answer(true, q, Some(reply.as_bytes()));
                self.out(conn, reply);
            }
            Query::UploadData { q, payload } => {
                let s = self
                    .streams
                    .values_mut()
                    .find(|s| s.up.as_ref() == Some(&(conn, q.to_owned())))
                    .expect("U on an open batch of this connection");
                assert!(!s.upload_fin, "nothing after the end of the upload");
                if payload.is_empty() {
                    s.upload_fin = true;
                }
                s.uploaded.extend_from_slice(payload);
                s.expected += 1;
                let reply = format!("{:x}", s.expected);
                let reply = answer(true, q, Some(reply.as_bytes()));
                self.out(conn, reply);
            }
            Query::Download {
                q,
                stream,
                packet,
                window,
            } => {
                let s = self.streams.get_mut(stream).expect("known stream");
                assert!(packet >= s.acked, "d from before an acknowledgement");
                assert!(packet as usize <= s.packets.len());
                s.acked = packet;
                s.down = Some((conn, q.to_owned(), window.unwrap_or(1), packet));
                self.pump(stream);
            }
            Query::Ack { q, next } => {
                let Some(id) = self
                    .streams
                    .iter()
                    .find(|(_, s)| matches!(&s.down, Some((c, bq, _, _)) if *c == conn && bq == q))
                    .map(|(id, _)| id.clone())
                else {
                    // An upload batch has no client acks; a stale batch.
                    return;
                };
                let s = self.streams.get_mut(&id).unwrap();
                let sent = s.down.as_ref().unwrap().3;
                assert!(
                    next >= s.acked && next <= sent,
                    "ack {next} outside {}..={sent}",
                    s.acked
                );
                s.acked = next;
                self.pump(&id);
            }
            Query::End { q } => {
                for s in self.streams.values_mut() {
                    if s.up.as_ref().is_some_and(|(c, bq)| *c == conn && bq == q) {
                        s.up = None;
                    }
                    if matches!(&s.down, Some((c, bq, _, _)) if *c == conn && bq == q) {
                        s.down = None;
                    }
                }
            }
        }
    }
}

/// A client and the model server, wired together.
struct Pair {
    client: Client,
    server: Server,
    events: Vec<Event>,
    /// Download bytes the application read, per stream.
    read: HashMap<StreamKey, Vec<u8>>,
    /// Payloads received and not yet read.
    unread: HashMap<StreamKey, VecDeque<Vec<u8>>>,
}

impl Pair {
    fn new(config: Config, conns: usize) -> Pair {
        let mut client = Client::new(config);
        for _ in 0..conns {
            client.add_connection();
        }
        let mut pair = Pair {
            client,
            server: Server::default(),
            events: Vec::new(),
            read: HashMap::new(),
            unread: HashMap::new(),
        };
        pair.settle();
        pair
    }

    /// Moves the client's chunks onto their connections.
    fn collect(&mut self) {
        while let Some((conn, chunk)) = self.client.poll_transmit() {
            self.server
                .to_server
                .entry(conn)
                .or_default()
                .push_back(chunk);
        }
        while let Some(e) = self.client.poll_event() {
            self.events.push(e);
        }
    }

    /// Delivers one chunk each way on `conn`; `false` when nothing moved.
    fn step(&mut self, conn: ConnId) -> bool {
        self.collect();
        let mut moved = false;
        if let Some(chunk) = self
            .server
            .to_server
            .get_mut(&conn)
            .and_then(VecDeque::pop_front)
        {
            self.server.handle(conn, &chunk);
            moved = true;
        }
        if let Some(chunk) = self
            .server
            .to_client
            .get_mut(&conn)
            .and_then(VecDeque::pop_front)
        {
            match self
                .client
                .handle_chunk(conn, &chunk)
                .expect("a valid answer")
            {
                Received::Nothing => {}
                Received::Data { stream, at } => {
                    self.unread
                        .entry(stream)
                        .or_default()
                        .push_back(chunk[at].to_vec());
                }
            }
            moved = true;
        }
        self.collect();
        moved
    }

    /// The application reads one payload of `stream`.
    fn read_one(&mut self, stream: StreamKey) -> bool {
        let Some(p) = self.unread.get_mut(&stream).and_then(VecDeque::pop_front) else {
            return false;
        };
        self.read.entry(stream).or_default().extend_from_slice(&p);
        self.client.consumed(stream, 1);
        self.collect();
        true
    }

    /// Runs until nothing moves, the application reading everything.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            let conns: Vec<ConnId> = self.client.conns.keys().copied().collect();
            let mut moved = false;
            for c in conns {
                moved |= self.step(c);
            }
            let keys: Vec<StreamKey> = self.unread.keys().copied().collect();
            for k in keys {
                while self.read_one(k) {
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Cuts `conn`: both directions' chunks in flight are lost.
    fn cut(&mut self, conn: ConnId) {
        self.server.to_server.remove(&conn);
        self.server.to_client.remove(&conn);
        self.client.connection_lost(conn);
        self.collect();
    }

    fn opened(&mut self, host: &str) -> (StreamKey, String) {
        let key = self.client.open(host, Proto::Tcp, 80).unwrap();
        self.settle();
        let id = self.client.stream_id(key).expect("opened").to_owned();
        assert!(self.events.contains(&Event::Opened {
            stream: key,
            id: id.clone()
        }));
        (key, id)
    }
}

fn config() -> Config {
    Config {
        download_window: 4,
        upload_window: 4,
        ..Config::default()
    }
}

#[test]
fn each_connection_starts_with_the_probe_and_becomes_live_on_its_answer() {
    let mut client = Client::new(Config::default());
    let a = client.add_connection();
    let b = client.add_connection();
    let (conn, probe) = client.poll_transmit().unwrap();
    assert_eq!(conn, a);
    let Query::Disconnect { q, stream } = Query::decode(&probe).unwrap() else {
        panic!("a probe");
    };
    assert_eq!(stream, "0");
    assert_eq!(client.poll_transmit().unwrap().0, b);
    assert_eq!(client.live_connections(), 0);
    // Either answer proves key and session.
    client.handle_chunk(a, &answer(false, q, None)).unwrap();
    assert_eq!(client.live_connections(), 1);
    assert_eq!(client.poll_event(), Some(Event::ConnectionReady(a)));
}

#[test]
fn a_stream_uploads_and_downloads_in_order_and_closes() {
    let mut pair = Pair::new(config(), 2);
    let (key, id) = pair.opened("example.com");
    for i in 0..10u8 {
        while pair.client.send(key, &[i; 3]).is_err() {
            pair.settle();
        }
    }
    pair.client.shutdown(key).unwrap();
    pair.settle();
    let s = &pair.server.streams[&id];
    assert_eq!(
        s.uploaded,
        (0..10u8).flat_map(|i| [i; 3]).collect::<Vec<_>>()
    );
    assert!(s.upload_fin);
    assert_eq!(pair.client.send(key, b"late"), Err(SendError::Closed));
    // The target answers 9 packets and closes.
    let s = pair.server.streams.get_mut(&id).unwrap();
    s.packets = (0..9u8).map(|i| vec![i; 5]).collect();
    s.target_closed = true;
    pair.server.pump(&id);
    pair.settle();
    assert_eq!(
        pair.read[&key],
        (0..9u8).flat_map(|i| [i; 5]).collect::<Vec<_>>()
    );
    assert!(pair.events.contains(&Event::Eof(key)));
    pair.client.close(key);
    pair.settle();
    assert_eq!(pair.server.disconnected, [id]);
    assert!(pair.events.contains(&Event::Closed(key)));
    assert_eq!(pair.client.open_streams(), 0);
}

#[test]
fn the_upload_window_blocks_and_acknowledgements_free_it() {
    let mut pair = Pair::new(config(), 1);
    let (key, _) = pair.opened("example.com");
    for i in 0..4u8 {
        pair.client.send(key, &[i]).unwrap();
    }
    assert!(!pair.client.can_send(key));
    assert_eq!(pair.client.send(key, b"x"), Err(SendError::Blocked));
    pair.settle();
    assert!(pair.events.contains(&Event::Writable(key)));
    assert!(pair.client.can_send(key));
    assert_eq!(
        pair.client.send(key, &vec![0; MAX_PAYLOAD + 1]),
        Err(SendError::TooLarge(MAX_PAYLOAD + 1))
    );
}

#[test]
fn the_first_upload_goes_out_before_the_answer_to_u() {
    let mut client = Client::new(config());
    let conn = client.add_connection();
    client.poll_transmit();
    let key = client.open("example.com", Proto::Tcp, 80).unwrap();
    let (_, c) = client.poll_transmit().unwrap();
    let q = crate::query::query_id(&c).unwrap().to_owned();
    client
        .handle_chunk(conn, &answer(true, &q, Some(b"7")))
        .unwrap();
    client.poll_transmit().unwrap(); // d
    client.send(key, b"ab").unwrap();
    let (_, u) = client.poll_transmit().unwrap();
    assert!(matches!(
        Query::decode(&u),
        Ok(Query::Upload { stream: "7", .. })
    ));
    let (_, data) = client.poll_transmit().unwrap();
    assert!(matches!(
        Query::decode(&data),
        Ok(Query::UploadData { payload: b"ab", .. })
    ));
}

#[test]
fn acknowledgements_come_every_half_window_and_when_everything_was_read() {
    let cfg = Config {
        download_window: 8,
        ..Config::default()
    };
    assert_eq!(cfg.ack_every(), 4);
    assert_eq!(
        Config {
            download_window: 7,
            ..cfg.clone()
        }
        .ack_every(),
        4
    );
    let mut client = Client::new(cfg);
    let conn = client.add_connection();
    client.poll_transmit();
    let key = client.open("example.com", Proto::Tcp, 80).unwrap();
    let (_, c) = client.poll_transmit().unwrap();
    let q = crate::query::query_id(&c).unwrap().to_owned();
    client
        .handle_chunk(conn, &answer(true, &q, Some(b"1")))
        .unwrap();
    let (_, d) = client.poll_transmit().unwrap();
    let Query::Download {
        q: dq,
        packet: 0,
        window: Some(8),
        ..
    } = Query::decode(&d).unwrap()
    else {
        panic!("d from 0 with the window: {d:?}");
    };
    let dq = dq.to_owned();
    // Eight packets arrive (the whole window); the application reads them
    // one by one, but only after all arrived.
    for i in 0..8u8 {
        let got = client
            .handle_chunk(conn, &answer(true, &dq, Some(&[i + 1])))
            .unwrap();
        assert!(matches!(got, Received::Data { stream, .. } if stream == key));
    }
    assert_eq!(
        client.handle_chunk(conn, &answer(true, &dq, Some(b"x"))),
        Err(ConnError::PastWindow)
    );
    let mut acks = Vec::new();
    for _ in 0..8 {
        client.consumed(key, 1);
        while let Some((_, chunk)) = client.poll_transmit() {
            if let Ok(Query::Ack { next, .. }) = Query::decode(&chunk) {
                acks.push(next);
            }
        }
    }
    assert_eq!(acks, [4, 8], "every ceil(w/2) packets, and the last");
    // An empty payload breaks the protocol (the end is `!`).
    assert_eq!(
        client.handle_chunk(conn, &answer(true, &dq, Some(b""))),
        Err(ConnError::EmptyDownload)
    );
}

#[test]
fn refused_opens_and_failed_lookups_are_reported() {
    let mut pair = Pair::new(config(), 1);
    let key = pair.client.open("refused.example", Proto::Tcp, 1).unwrap();
    let ok = pair.client.resolve("example.com", DnsType::A).unwrap();
    let nx = pair.client.resolve("nx.example", DnsType::Aaaa).unwrap();
    pair.settle();
    assert!(pair.events.contains(&Event::OpenFailed(key)));
    assert!(pair.events.contains(&Event::Resolved {
        lookup: ok,
        records: Some(vec!["192.0.2.1".into(), "192.0.2.2".into()])
    }));
    assert!(pair.events.contains(&Event::Resolved {
        lookup: nx,
        records: None
    }));
    assert_eq!(
        pair.client.open("bad host", Proto::Tcp, 1),
        Err(OpenError::BadHost)
    );
}

#[test]
fn status_403_ends_the_session_with_its_reason_and_404_names_the_key() {
    let mut client = Client::new(Config::default());
    let conn = client.add_connection();
    assert_eq!(client.handle_status(conn, 200), StatusClass::Ok);
    assert_eq!(client.handle_status(conn, 403), StatusClass::Reclaimed);
    assert_eq!(
        client.poll_event(),
        Some(Event::SessionEnded(EndReason::Reclaimed))
    );
    assert!(client.ended().unwrap().to_string().contains("reclaimed"));
    assert!(matches!(
        client.open("example.com", Proto::Tcp, 1),
        Err(OpenError::SessionEnded(EndReason::Reclaimed))
    ));
    assert_eq!(client.poll_transmit(), None, "nothing more is sent");
    let mut other = Client::new(Config::default());
    let conn = other.add_connection();
    assert_eq!(other.handle_status(conn, 404), StatusClass::WrongKey);
    assert!(other.ended().unwrap().to_string().contains("wrong key"));
    assert_eq!(classify_status(503), StatusClass::Busy);
}

#[test]
fn the_stream_limit_is_enforced() {
    let mut client = Client::new(Config {
        max_streams: 2,
        ..Config::default()
    });
    client.open("a", Proto::Tcp, 1).unwrap();
    client.open("b", Proto::Udp, 1).unwrap();
    assert_eq!(
        client.open("c", Proto::Tcp, 1),
        Err(OpenError::TooManyStreams(2))
    );
}

#[test]
fn batches_spread_over_connections() {
    let mut pair = Pair::new(config(), 4);
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (key, _) = pair.opened("example.com");
        let s = &pair.client.streams[&key];
        used.insert(s.down.batch.as_ref().unwrap().conn.unwrap());
    }
    assert_eq!(used.len(), 4, "one download batch per connection");
}

#[test]
fn query_ids_are_unique_among_open_queries() {
    // A one-character id space of 62: the generator must skip taken ids.
    let mut client = Client::new(Config {
        query_id_len: 1,
        ..Config::default()
    });
    client.add_connection();
    for i in 0..60 {
        client.resolve(&format!("h{i}"), DnsType::A).unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while let Some((_, chunk)) = client.poll_transmit() {
        let q = crate::query::query_id(&chunk).unwrap().to_owned();
        assert!(seen.insert(q), "a query id used twice");
    }
    assert_eq!(seen.len(), 61);
}

#[test]
fn queries_wait_for_a_connection_and_cut_ones_move() {
    let mut client = Client::new(Config::default());
    let lookup = client.resolve("example.com", DnsType::A).unwrap();
    assert_eq!(client.poll_transmit(), None);
    let a = client.add_connection();
    client.poll_transmit(); // probe
    let (conn, n) = client.poll_transmit().unwrap();
    assert_eq!(conn, a);
    client.connection_lost(a);
    let b = client.add_connection();
    client.poll_transmit(); // probe
    let (conn, again) = client.poll_transmit().unwrap();
    assert_eq!(conn, b);
    assert_eq!(n[0], again[0]);
    assert_eq!(n[1 + 8..], again[1 + 8..], "the same question");
    let q = crate::query::query_id(&again).unwrap().to_owned();
    client.handle_chunk(b, &answer(false, &q, None)).unwrap();
    assert!(std::iter::from_fn(|| client.poll_event()).any(|e| e
        == Event::Resolved {
            lookup,
            records: None
        }));
}

#[test]
fn a_close_waits_for_the_upload_and_abort_does_not() {
    let mut pair = Pair::new(config(), 1);
    let (key, id) = pair.opened("example.com");
    pair.client.send(key, b"last words").unwrap();
    pair.client.close(key);
    assert!(pair.client.is_draining(key));
    pair.settle();
    assert!(!pair.client.is_draining(key));
    assert_eq!(pair.server.disconnected, std::slice::from_ref(&id));
    // Abort: `q` at once, even with packets unacknowledged.
    let (key, id) = pair.opened("example.com");
    pair.client.send(key, b"lost").unwrap();
    pair.client.abort(key);
    let sent: Vec<Vec<u8>> = std::iter::from_fn(|| pair.client.poll_transmit())
        .map(|(_, c)| c)
        .collect();
    assert!(
        sent.iter().any(
            |c| matches!(Query::decode(c), Ok(Query::Disconnect { stream, .. }) if stream == id)
        )
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Two streams, cuts anywhere, then both closed: each stream's bytes
    /// arrive once and in order, and both end with `q` at the server.
    #[test]
    fn two_streams_survive_cuts_and_close(
        actions in proptest::collection::vec(0u8..8, 20..200),
    ) {
        let mut pair = Pair::new(config(), 2);
        let (a, a_id) = pair.opened("a.example");
        let (b, b_id) = pair.opened("b.example");
        let mut next = [0u8; 2];
        for act in actions {
            let conns: Vec<ConnId> = pair.client.conns.keys().copied().collect();
            match act {
                0..=3 => {
                    let c = conns[usize::from(act) % conns.len()];
                    pair.step(c);
                }
                4 | 5 => {
                    let (key, i) = if act == 4 { (a, 0) } else { (b, 1) };
                    if next[i] < 30 && pair.client.send(key, &[next[i]; 5]).is_ok() {
                        next[i] += 1;
                    }
                    pair.collect();
                }
                6 => {
                    pair.cut(conns[0]);
                    pair.client.add_connection();
                    pair.collect();
                }
                _ => pair.settle(),
            }
        }
        pair.settle();
        pair.client.close(a);
        pair.client.close(b);
        pair.settle();
        prop_assert_eq!(pair.server.disconnected.len(), 2);
        prop_assert!(pair.events.contains(&Event::Closed(a)));
        prop_assert!(pair.events.contains(&Event::Closed(b)));
        for (id, n) in [(a_id, next[0]), (b_id, next[1])] {
            let want: Vec<u8> = (0..n).flat_map(|i| [i; 5]).collect();
            prop_assert_eq!(&pair.server.closed_uploads[&id], &want);
        }
        prop_assert_eq!(pair.client.open_streams(), 0);
    }

    /// Connections cut at random points: every uploaded and downloaded byte
    /// arrives exactly once, in order.
    #[test]
    fn cuts_lose_and_duplicate_nothing(
        actions in proptest::collection::vec(0u8..10, 50..400),
        sizes in proptest::collection::vec(1usize..40, 30),
    ) {
        let mut pair = Pair::new(config(), 3);
        let (key, id) = pair.opened("example.com");
        // The target's download: 30 packets, then the close.
        {
            let s = pair.server.streams.get_mut(&id).unwrap();
            s.packets = sizes.iter().enumerate().map(|(i, n)| vec![i as u8; *n]).collect();
            s.target_closed = true;
        }
        pair.server.pump(&id);
        let want_down: Vec<u8> = sizes.iter().enumerate().flat_map(|(i, n)| vec![i as u8; *n]).collect();
        let want_up: Vec<u8> = (0..40u8).flat_map(|i| [i; 7]).collect();
        let mut sent_up = 0u8;
        let mut shut = false;
        for a in actions {
            let conns: Vec<ConnId> = pair.client.conns.keys().copied().collect();
            match a {
                0..=4 => {
                    let c = conns[usize::from(a) % conns.len()];
                    pair.step(c);
                }
                5 => {
                    pair.read_one(key);
                }
                6 | 7 => {
                    if sent_up < 40 {
                        if pair.client.send(key, &[sent_up; 7]).is_ok() {
                            sent_up += 1;
                        }
                    } else if !shut {
                        shut = pair.client.shutdown(key).is_ok();
                    }
                    pair.collect();
                }
                8 => {
                    let c = conns[conns.len() - 1];
                    pair.cut(c);
                    pair.client.add_connection();
                    pair.collect();
                }
                _ => {
                    // A cut with no replacement for a while.
                    if conns.len() > 1 {
                        pair.cut(conns[0]);
                    }
                }
            }
        }
        // Finish: connections come back, the writer sends the rest.
        while pair.client.connections() < 2 {
            pair.client.add_connection();
        }
        loop {
            pair.settle();
            if sent_up < 40 {
                if pair.client.send(key, &[sent_up; 7]).is_ok() {
                    sent_up += 1;
                }
            } else if !shut {
                shut = pair.client.shutdown(key).is_ok();
            } else {
                break;
            }
        }
        pair.settle();
        let s = &pair.server.streams[&id];
        prop_assert_eq!(&s.uploaded, &want_up);
        prop_assert!(s.upload_fin);
        prop_assert_eq!(pair.read.get(&key).cloned().unwrap_or_default(), want_down);
        prop_assert!(pair.client.is_eof(key));
        prop_assert!(pair.events.contains(&Event::Eof(key)));
    }
}

#[test]
fn a_refused_upload_ends_the_stream_for_its_reader_too() {
    let mut client = Client::new(Config::default());
    let conn = client.add_connection();
    let (_, probe) = client.poll_transmit().unwrap();
    let pq = crate::query::query_id(&probe).unwrap().to_owned();
    client
        .handle_chunk(conn, &answer(false, &pq, None))
        .unwrap();
    let key = client.open("example.com", Proto::Tcp, 80).unwrap();
    let (_, c) = client.poll_transmit().unwrap();
    let cq = crate::query::query_id(&c).unwrap().to_owned();
    client
        .handle_chunk(conn, &answer(true, &cq, Some(b"1")))
        .unwrap();
    while client.poll_transmit().is_some() {}
    client.send(key, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut uq = None;
    while let Some((_, chunk)) = client.poll_transmit() {
        if let Ok(Query::Upload { q, .. }) = Query::decode(&chunk) {
            uq = Some(q.to_owned());
        }
    }
    let uq = uq.expect("a u batch");
    while client.poll_event().is_some() {}
    // The server refuses the batch (e.g. too many queries in flight): the
    // request is lost, so the reader must not wait for an answer.
    client
        .handle_chunk(conn, &answer(false, &uq, None))
        .unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(events.contains(&Event::Eof(key)), "{events:?}");
    assert_eq!(client.send(key, b"more"), Err(SendError::Closed));
}

/// The queries `client` put on the wire since the last call, per
/// connection, without delivering them.
fn drain(client: &mut Client) -> Vec<(ConnId, Vec<u8>)> {
    std::iter::from_fn(|| client.poll_transmit()).collect()
}

fn events(client: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

/// A client with `n` live connections (their probes answered), nothing
/// left to send.
fn live_client(n: usize) -> (Client, Vec<ConnId>) {
    let mut client = Client::new(Config::default());
    let conns: Vec<ConnId> = (0..n).map(|_| client.add_connection()).collect();
    for (conn, probe) in drain(&mut client) {
        let q = crate::query::query_id(&probe).unwrap().to_owned();
        client.handle_chunk(conn, &answer(false, &q, None)).unwrap();
    }
    events(&mut client);
    assert_eq!(client.live_connections(), n);
    (client, conns)
}

/// The check query `client` sent on `conn`: must be `q{q} 0`.
fn check_query(sent: &[(ConnId, Vec<u8>)], conn: ConnId) -> String {
    let chunks: Vec<&Vec<u8>> = sent
        .iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(chunks.len(), 1, "one check per connection");
    let Query::Disconnect { q, stream } = Query::decode(chunks[0]).unwrap() else {
        panic!("a check is the probe query");
    };
    assert_eq!(stream, PROBE_STREAM, "it names no stream the server has");
    q.to_owned()
}

const WAITED: Duration = Duration::from_secs(3);

#[test]
fn a_check_goes_on_every_connection_and_passes_when_they_answer() {
    let mut pair = Pair::new(config(), 3);
    let (key, id) = pair.opened("example.com");
    let round = pair.client.check().expect("a new round");
    assert!(pair.client.checking());
    pair.collect();
    let sent: Vec<(ConnId, Vec<u8>)> = pair
        .server
        .to_server
        .iter()
        .flat_map(|(c, q)| q.iter().map(|t| (*c, t.clone())))
        .collect();
    for conn in pair.client.conns.keys().copied().collect::<Vec<_>>() {
        check_query(&sent, conn);
    }
    pair.settle();
    assert!(!pair.client.checking(), "every connection answered");
    pair.events.clear();
    pair.client.check_expired(round, WAITED);
    pair.collect();
    assert_eq!(pair.events, [], "nothing dropped, nothing ended");
    assert_eq!(pair.client.live_connections(), 3);
    assert!(pair.server.disconnected.is_empty(), "no stream was closed");
    // The stream still carries.
    let s = pair.server.streams.get_mut(&id).unwrap();
    s.packets = vec![b"after".to_vec()];
    pair.server.pump(&id);
    pair.settle();
    assert_eq!(pair.read[&key], b"after");
}

#[test]
fn a_silent_connection_is_dropped_and_its_batches_resume_elsewhere() {
    let mut pair = Pair::new(config(), 2);
    let (key, id) = pair.opened("example.com");
    let silent = pair.client.streams[&key]
        .down
        .batch
        .as_ref()
        .unwrap()
        .conn
        .unwrap();
    let other = *pair.client.conns.keys().find(|c| **c != silent).unwrap();
    let round = pair.client.check().unwrap();
    pair.collect();
    // Only `other` carries anything: `silent` is a path that died.
    while pair.step(other) {}
    assert!(pair.client.checking(), "silent has not answered");
    pair.client.check_expired(round, WAITED);
    // What was in flight on the dead path is lost.
    pair.server.to_server.remove(&silent);
    pair.server.to_client.remove(&silent);
    pair.collect();
    assert!(pair.events.contains(&Event::ConnectionDropped(silent)));
    assert!(!pair.events.contains(&Event::ConnectionDropped(other)));
    assert_eq!(pair.client.ended(), None, "one connection answered");
    assert_eq!(pair.client.connections(), 1);
    // The download resumed on `other`, from the last packet received.
    let s = pair.server.streams.get_mut(&id).unwrap();
    s.packets = vec![b"one".to_vec(), b"two".to_vec()];
    pair.server.pump(&id);
    pair.settle();
    assert_eq!(pair.read[&key], b"onetwo");
    assert_eq!(
        pair.client.streams[&key].down.batch.as_ref().unwrap().conn,
        Some(other)
    );
}

#[test]
fn no_answer_at_all_ends_the_session_with_its_reason() {
    let (mut client, conns) = live_client(2);
    let round = client.check().unwrap();
    drain(&mut client);
    client.check_expired(round, WAITED);
    let seen = events(&mut client);
    for conn in conns {
        assert!(seen.contains(&Event::ConnectionDropped(conn)));
    }
    assert!(seen.contains(&Event::SessionEnded(EndReason::Unanswered(WAITED))));
    assert_eq!(client.ended(), Some(&EndReason::Unanswered(WAITED)));
    assert!(
        EndReason::Unanswered(WAITED)
            .to_string()
            .contains("did not answer a check within 3s after a network change")
    );
    assert_eq!(client.check(), None, "nothing to check once ended");
}

#[test]
fn a_second_check_keeps_the_round_and_only_its_own_answers_count() {
    let (mut client, conns) = live_client(1);
    let a = conns[0];
    let round = client.check().unwrap();
    let first = check_query(&drain(&mut client), a);
    assert_eq!(client.check(), None, "the running round goes on");
    let second = check_query(&drain(&mut client), a);
    assert_ne!(first, second);
    // The answer to the first check left before the second change: it
    // proves nothing about the path now.
    client
        .handle_chunk(a, &answer(false, &first, None))
        .unwrap();
    assert!(client.checking());
    client
        .handle_chunk(a, &answer(false, &second, None))
        .unwrap();
    assert!(!client.checking());
    client.check_expired(round, WAITED);
    assert_eq!(client.ended(), None);
    // Answered late, the first round's query was stale; after the first
    // round the next check is a new round.
    assert!(client.check().is_some());
}

#[test]
fn an_expiry_counts_only_answers_to_the_latest_check() {
    let (mut client, conns) = live_client(1);
    let a = conns[0];
    let round = client.check().unwrap();
    let first = check_query(&drain(&mut client), a);
    client.check();
    drain(&mut client);
    client
        .handle_chunk(a, &answer(false, &first, None))
        .unwrap();
    client.check_expired(round, WAITED);
    assert_eq!(client.ended(), Some(&EndReason::Unanswered(WAITED)));
}

#[test]
fn a_connection_opened_during_a_check_answers_with_its_probe() {
    let (mut client, conns) = live_client(1);
    let round = client.check().unwrap();
    drain(&mut client);
    // The old connection breaks (a reset from the old path), its slot opens
    // a new one over the new path.
    client.connection_lost(conns[0]);
    let b = client.add_connection();
    let sent = drain(&mut client);
    let probe = check_query(&sent, b);
    client
        .handle_chunk(b, &answer(false, &probe, None))
        .unwrap();
    assert!(!client.checking());
    client.check_expired(round, WAITED);
    assert_eq!(client.ended(), None);
    assert!(!events(&mut client).contains(&Event::ConnectionDropped(b)));
}

#[test]
fn the_late_deadline_of_a_finished_round_is_ignored() {
    let (mut client, conns) = live_client(1);
    let first = client.check().unwrap();
    let q = check_query(&drain(&mut client), conns[0]);
    client
        .handle_chunk(conns[0], &answer(false, &q, None))
        .unwrap();
    let second = client.check().unwrap();
    assert_ne!(first, second);
    // The first round's timer fires late: the second round is untouched.
    client.check_expired(first, WAITED);
    assert!(client.checking());
    assert_eq!(client.ended(), None);
    client.check_expired(second, WAITED);
    assert_eq!(client.ended(), Some(&EndReason::Unanswered(WAITED)));
}
