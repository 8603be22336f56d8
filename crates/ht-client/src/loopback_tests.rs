//! The driver against a small in-process HT server model on loopback
//! (plain `http://`): probe, streams both ways with windows, half-close,
//! DNS, a connection cut mid-transfer, and the `404`/`403`/`503` answers.
//! The real `ht-server` is tested against this client by the workspace's
//! end-to-end tests; this model only keeps the contract's rules, so the
//! driver's own logic (HTTP framing, cipher, connection slots, resume) is
//! covered without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use engine::transport::{DnsQuestion, DnsRecord, Transport, TunnelSession};
use net::{ErrorCode, TargetAddr};
use proto_ht::query::{Answer, Query};
use proto_ht::{ChunkCipher, Direction, Key, SessionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::http::{Chunk, decode_chunk, encode_chunk};
use crate::{HtClientConfig, HtTransport};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Status(u16),
}

#[derive(Default)]
struct MockStream {
    expected: u64,
    /// Every download packet: here, each upload packet echoed back.
    packets: Vec<Vec<u8>>,
    acked: u64,
    target_closed: bool,
    down: Option<(u64, String, u64, u64)>,
    up: Option<(u64, String)>,
}

#[derive(Default)]
struct Model {
    streams: HashMap<String, MockStream>,
    next_stream: u64,
    writers: HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    connections: u64,
    /// New connections get `403` (the session was reclaimed).
    reclaimed: bool,
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

impl Model {
    fn send(&self, conn: u64, chunk: Vec<u8>) {
        if let Some(w) = self.writers.get(&conn) {
            let _ = w.send(chunk);
        }
    }

    fn pump(&mut self, id: &str) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        let Some((conn, q, w, mut next)) = s.down.clone() else {
            return;
        };
        let mut out = Vec::new();
        while next < s.acked + w && (next as usize) < s.packets.len() {
            out.push(answer(true, &q, Some(&s.packets[next as usize])));
            next += 1;
        }
        if s.target_closed && next as usize == s.packets.len() {
            out.push(answer(false, &q, None));
            s.down = None;
        } else {
            s.down = Some((conn, q, w, next));
        }
        for chunk in out {
            self.send(conn, chunk);
        }
    }

    fn handle(&mut self, conn: u64, chunk: &[u8]) {
        let Ok(query) = Query::decode(chunk) else {
            return;
        };
        match query {
            Query::Disconnect { q, stream } => {
                let known = self.streams.remove(stream).is_some();
                self.send(conn, answer(known, q, None));
            }
            Query::Connect { q, port, .. } => {
                if port == 1 {
                    self.send(conn, answer(false, q, None));
                    return;
                }
                self.next_stream += 1;
                let id = format!("{:x}", self.next_stream);
                self.streams.insert(id.clone(), MockStream::default());
                self.send(conn, answer(true, q, Some(id.as_bytes())));
            }
            Query::Dns { q, host, .. } => {
                let reply = if host == "nx.example" {
                    answer(false, q, None)
                } else {
                    answer(true, q, Some(b"192.0.2.7"))
                };
                self.send(conn, reply);
            }
            Query::Upload { q, stream } => {
                let Some(s) = self.streams.get_mut(stream) else {
                    return self.send(conn, answer(false, q, None));
                };
                s.up = Some((conn, q.to_owned()));
                let p = format!("{:x}", s.expected);
                self.send(conn, answer(true, q, Some(p.as_bytes())));
            }
            Query::UploadData { q, payload } => {
                let Some((id, s)) = self
                    .streams
                    .iter_mut()
                    .find(|(_, s)| s.up.as_ref().is_some_and(|(c, bq)| *c == conn && bq == q))
                else {
                    return;
                };
                if payload.is_empty() {
                    s.target_closed = true;
                } else {
                    s.packets.push(payload.to_vec());
                }
                s.expected += 1;
                let p = format!("{:x}", s.expected);
                let id = id.clone();
                self.send(conn, answer(true, q, Some(p.as_bytes())));
                self.pump(&id);
            }
            Query::Download {
                q,
                stream,
                packet,
                window,
            } => {
                let Some(s) = self.streams.get_mut(stream) else {
                    return self.send(conn, answer(false, q, None));
                };
                assert!(packet >= s.acked && packet as usize <= s.packets.len());
                s.acked = packet;
                s.down = Some((conn, q.to_owned(), window.unwrap_or(1), packet));
                let id = stream.to_owned();
                self.pump(&id);
            }
            Query::Ack { q, next } => {
                let found = self
                    .streams
                    .iter_mut()
                    .find(|(_, s)| matches!(&s.down, Some((c, bq, ..)) if *c == conn && bq == q));
                if let Some((id, s)) = found {
                    assert!(next >= s.acked, "acknowledgements never go back");
                    s.acked = next;
                    let id = id.clone();
                    self.pump(&id);
                }
            }
            Query::End { .. } => {}
        }
    }
}

struct Server {
    addr: std::net::SocketAddr,
    model: Arc<Mutex<Model>>,
}

/// Serves the model; the connection numbered `cut` (if any) is dropped
/// after that many chunks from the client.
async fn serve(key: Key, mode: Mode, cut: Option<(u64, usize)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let model = Arc::new(Mutex::new(Model::default()));
    let m = model.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let conn = {
                let mut m = m.lock().unwrap();
                m.connections += 1;
                m.connections
            };
            let limit = cut.filter(|(c, _)| *c == conn).map(|(_, n)| n);
            tokio::spawn(connection(sock, key.clone(), m.clone(), mode, conn, limit));
        }
    });
    Server { addr, model }
}

async fn connection(
    mut sock: TcpStream,
    key: Key,
    model: Arc<Mutex<Model>>,
    mode: Mode,
    conn: u64,
    limit: Option<usize>,
) {
    let mut buf = BytesMut::new();
    let sid = loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
            assert_eq!(req.method, Some("POST"));
            assert_eq!(req.path, Some("/base/ht/create.php"));
            let cookie = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("cookie"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .unwrap();
            let sid = SessionId::parse(cookie.strip_prefix("PHPSESSID=").unwrap()).unwrap();
            let _ = buf.split_to(len);
            break sid;
        }
        if sock.read_buf(&mut buf).await.unwrap() == 0 {
            return;
        }
    };
    let mut down = ChunkCipher::new(&key, &sid, Direction::ClientToServer);
    let mut up = Some(ChunkCipher::new(&key, &sid, Direction::ServerToClient));
    let (mut rd, wr) = sock.into_split();
    let mut wr = Some(wr);
    let mut first = true;
    let mut seen = 0;
    loop {
        let chunk = match decode_chunk(&mut buf, 1 << 20).unwrap() {
            Some(Chunk::Data(c)) => c,
            Some(Chunk::End) => return,
            None => {
                if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                continue;
            }
        };
        let mut chunk = chunk.to_vec();
        down.apply(&mut chunk);
        if first {
            first = false;
            let reclaimed = model.lock().unwrap().reclaimed;
            let status = match mode {
                _ if Query::decode(&chunk).is_err() => 404,
                _ if reclaimed => 403,
                Mode::Status(s) => s,
                Mode::Normal => 200,
            };
            let mut wr = wr.take().expect("the first chunk comes once");
            if status != 200 {
                let _ = wr
                    .write_all(
                        format!("HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                    )
                    .await;
                return;
            }
            wr.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            model.lock().unwrap().writers.insert(conn, tx);
            let mut up = up.take().expect("the first chunk comes once");
            tokio::spawn(async move {
                while let Some(mut answer) = rx.recv().await {
                    up.apply(&mut answer);
                    let mut out = Vec::new();
                    encode_chunk(&mut out, &answer);
                    if wr.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
        seen += 1;
        if limit.is_some_and(|n| seen > n) {
            model.lock().unwrap().writers.remove(&conn);
            return;
        }
        model.lock().unwrap().handle(conn, &chunk);
    }
}

fn key() -> Key {
    Key::from_hex(&"3c".repeat(32)).unwrap()
}

fn config(server: &Server) -> HtClientConfig {
    let mut c = HtClientConfig::new(format!("http://{}/base", server.addr), key());
    c.connections = 2;
    c.machine.download_window = 4;
    c.machine.upload_window = 4;
    c.connection_retry.initial_backoff = Duration::from_millis(10);
    c
}

async fn echo_round_trip(session: &dyn TunnelSession, bytes: usize) {
    let target = TargetAddr::domain("echo.example", 7).unwrap();
    let opened = session.open(target, Duration::from_secs(5)).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(opened.stream);
    let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for piece in sent.chunks(10_000) {
            wr.write_all(piece).await.unwrap();
        }
        wr.shutdown().await.unwrap();
        wr
    });
    let mut got = Vec::new();
    rd.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the echo differs");
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn a_session_carries_streams_dns_and_reports_its_connections() {
    let server = serve(key(), Mode::Normal, None).await;
    let transport = HtTransport::new(config(&server)).unwrap();
    assert!(transport.server().starts_with("http://127.0.0.1:"));
    let session = transport.connect_session().await.unwrap();
    assert_eq!(session.session_id().len(), 26);
    echo_round_trip(&session, 300_000).await;
    let resolver = session.resolver().unwrap();
    assert_eq!(
        resolver
            .lookup(DnsQuestion::A("example.com".into()))
            .await
            .unwrap(),
        [DnsRecord::Addr("192.0.2.7".parse().unwrap())]
    );
    let nx = resolver
        .lookup(DnsQuestion::A("nx.example".into()))
        .await
        .unwrap_err();
    assert_eq!(nx.kind, local_proxy::ConnectErrorKind::Unreachable);
    let refused = session
        .open(
            TargetAddr::domain("x.example", 1).unwrap(),
            Duration::from_secs(1),
        )
        .await
        .err()
        .unwrap();
    assert_eq!(refused.kind, local_proxy::ConnectErrorKind::Refused);
    let mut state = session.shared.state.subscribe();
    while session.slot_stats().connections < 2 {
        state.changed().await.unwrap();
    }
    session.close();
    assert!(session.closed().await.contains("closed"));
}

#[tokio::test]
async fn a_connection_cut_mid_transfer_resumes_on_another() {
    // One connection, which dies after 30 chunks from the client: the
    // transfer can only finish on its replacement, resumed.
    let server = serve(key(), Mode::Normal, Some((1, 30))).await;
    let mut c = config(&server);
    c.connections = 1;
    let transport = HtTransport::new(c).unwrap();
    let session = transport.connect().await.unwrap();
    echo_round_trip(&*session, 400_000).await;
    assert!(
        server.model.lock().unwrap().connections >= 2,
        "the cut connection was replaced"
    );
}

#[tokio::test]
async fn a_wrong_key_is_fatal_and_403_503_are_not() {
    let server = serve(key(), Mode::Normal, None).await;
    let mut c = config(&server);
    c.key = Key::from_hex(&"11".repeat(32)).unwrap();
    let e = HtTransport::new(c).unwrap().connect().await.err().unwrap();
    assert_eq!(e.code, ErrorCode::AuthFailed);
    assert!(e.is_fatal());
    assert!(e.message.contains("wrong key"), "{}", e.message);

    let server = serve(key(), Mode::Status(403), None).await;
    let e = HtTransport::new(config(&server))
        .unwrap()
        .connect()
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::SessionLost);
    assert!(e.message.contains("reclaimed"), "{}", e.message);
    assert!(!e.is_fatal());

    let server = serve(key(), Mode::Status(503), None).await;
    let e = HtTransport::new(config(&server))
        .unwrap()
        .connect()
        .await
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::ServerError);
    assert!(!e.is_fatal());
}

#[tokio::test]
async fn udp_datagrams_map_each_target_to_its_stream() {
    let server = serve(key(), Mode::Normal, None).await;
    let session = HtTransport::new(config(&server))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let assoc = session.datagrams().unwrap().associate().await.unwrap();
    let a = TargetAddr::domain("a.example", 53).unwrap();
    let b = TargetAddr::domain("b.example", 53).unwrap();
    assoc
        .send(net::Datagram::new(a.clone(), &b"to a"[..]))
        .await
        .unwrap();
    assoc
        .send(net::Datagram::new(b.clone(), &b"to b"[..]))
        .await
        .unwrap();
    let mut got = [assoc.recv().await.unwrap(), assoc.recv().await.unwrap()];
    got.sort_by_key(|d| d.payload.clone());
    assert_eq!(got[0].target, a);
    assert_eq!(&got[0].payload[..], b"to a");
    assert_eq!(got[1].target, b);
    assert_eq!(server.model.lock().unwrap().streams.len(), 2);
}

#[tokio::test]
async fn a_session_reclaimed_mid_way_ends_and_its_streams_fail() {
    let server = serve(key(), Mode::Normal, None).await;
    let session = HtTransport::new(config(&server))
        .unwrap()
        .connect_session()
        .await
        .unwrap();
    let opened = session
        .open(
            TargetAddr::domain("echo.example", 7).unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let mut stream = opened.stream;
    // The server forgets the session and drops its connections: the
    // replacements get 403.
    {
        let mut m = server.model.lock().unwrap();
        m.reclaimed = true;
        m.writers.clear();
    }
    let reason = session.closed().await;
    assert!(reason.contains("reclaimed"), "{reason}");
    let mut buf = [0u8; 16];
    let read = stream.read(&mut buf).await;
    assert_eq!(
        read.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionAborted
    );
    assert!(stream.write_all(b"more").await.is_err());
}
