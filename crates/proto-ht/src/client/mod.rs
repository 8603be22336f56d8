//! The client side of an HT session as a sans-IO state machine.
//!
//! [`Client`] keeps every rule of the client (CONTRACTS.md §2 and the
//! decisions of `docs/ht.md`): random query ids unique among open queries,
//! the probe `q{q} 0` that opens each transport connection, batches spread
//! over the connections and kept on the one that started them, upload
//! packets sent ahead up to a window and kept until acknowledged, download
//! windows and their acknowledgements (at least every `ceil(w/2)` packets,
//! and whenever the application has read everything), resuming a broken
//! connection's batches on another one with nothing lost or duplicated,
//! stream close, DNS and the status codes that end a session, and the
//! on-demand check of every connection ([`Client::check`]) that a driver
//! runs after a network change.
//!
//! It opens no socket, encrypts nothing and never reads the clock; a driver
//! feeds it and carries out what it asks:
//!
//! ```text
//!   driver                                Client
//!   ──────                                ──────
//!   connection up / lost          ──►  add_connection / connection_lost
//!   response status, chunk read   ──►  handle_status / handle_chunk
//!   app: open, send, read, close  ──►  open / send / shutdown / consumed / close
//!   connection writers            ◄──  poll_transmit  (plaintext chunks, per connection, in order)
//!   streams and the app           ◄──  poll_event
//! ```
//!
//! Download payloads are not queued as events: [`Client::handle_chunk`]
//! returns where the payload lies in the chunk the driver already holds, so
//! the driver hands it on without a copy. The application's reads come back
//! as [`Client::consumed`], which is what drives acknowledgements: the
//! server can be at most one window ahead of what was read, so a stream's
//! unread download is bounded by the window (twice the window just after a
//! resume, whose `d` starts from the last packet received).
//!
//! Time plays no part in the protocol's client rules (HT has no keepalive),
//! so the machine takes none; deadlines for opens, lookups and checks are
//! the driver's (a check's deadline is the driver calling
//! [`Client::check_expired`]).

mod answers;
mod config;
mod error;
mod event;
mod ids;
mod stream;
#[cfg(test)]
mod tests;

use crate::query::{DnsType, MAX_PAYLOAD, Proto, Query};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

pub use config::Config;
pub use error::{ConnError, OpenError, SendError};
pub use event::{EndReason, Event, Received, StatusClass, classify_status};
use ids::IdSource;
use stream::{Batch, Stream};

/// A transport connection, named by the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

/// A stream, named by the machine (the server's id comes later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(u64);

/// A DNS lookup in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupKey(u64);

/// A round of [`Client::check`], for its [`Client::check_expired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId(u64);

/// The stream the probe and the checks close: our server's stream ids are
/// hex counters from `1`, so `0` never names a stream (docs/ht.md), and
/// closing it changes nothing at the server. Its answer (`!{q}`) is
/// computed by the server's machine at once, with no resolver, no target
/// and no state touched, so it measures the path and nothing else.
const PROBE_STREAM: &str = "0";

/// What an open query waits for.
#[derive(Debug, Clone)]
enum Pending {
    Probe,
    Check,
    Connect(StreamKey),
    Disconnect(StreamKey),
    Dns(LookupKey),
    Up(StreamKey),
    Down(StreamKey),
}

#[derive(Debug)]
struct OpenQuery {
    what: Pending,
    /// The connection it went out on (`None`: waiting for one).
    conn: Option<ConnId>,
    /// For `c`, `q` and `n`: the plaintext, to send again elsewhere if the
    /// connection breaks before the answer.
    text: Vec<u8>,
}

#[derive(Debug)]
struct Conn {
    live: bool,
    /// The query whose answer the running check waits for from this
    /// connection: its check, or its opening probe when it was added
    /// during the round. `None`: answered, or no check running.
    awaited: Option<String>,
}

/// A running [`Client::check`].
#[derive(Debug)]
struct Check {
    round: CheckId,
    /// Whether some connection answered since the round (or its latest
    /// refresh) started.
    answered: bool,
}

/// The client's session machine. See the module documentation.
#[derive(Debug)]
pub struct Client {
    config: Config,
    ids: IdSource,
    queries: HashMap<String, OpenQuery>,
    conns: BTreeMap<ConnId, Conn>,
    streams: HashMap<StreamKey, Stream>,
    transmit: VecDeque<(ConnId, Vec<u8>)>,
    events: VecDeque<Event>,
    next_conn: u64,
    next_stream: u64,
    next_lookup: u64,
    next_check: u64,
    check: Option<Check>,
    ended: Option<EndReason>,
}

impl Client {
    /// A session with no connection yet.
    pub fn new(config: Config) -> Client {
        let config = config.sanitized();
        Client {
            ids: IdSource::new(config.seed, config.query_id_len),
            config,
            queries: HashMap::new(),
            conns: BTreeMap::new(),
            streams: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            next_conn: 0,
            next_stream: 0,
            next_lookup: 0,
            next_check: 0,
            check: None,
            ended: None,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<&EndReason> {
        self.ended.as_ref()
    }

    /// Connections known (probing or live).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Connections whose probe was answered.
    pub fn live_connections(&self) -> usize {
        self.conns.values().filter(|c| c.live).count()
    }

    /// Streams open or opening.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The server's id of `stream`, once opened.
    pub fn stream_id(&self, stream: StreamKey) -> Option<&str> {
        self.streams.get(&stream)?.id.as_deref()
    }

    /// Whether [`Client::send`] would take a packet now.
    pub fn can_send(&self, stream: StreamKey) -> bool {
        self.streams.get(&stream).is_some_and(|s| {
            !s.up.failed
                && s.up.fin.is_none()
                && s.up.kept.len() < self.config.upload_window as usize
        })
    }

    /// Whether `stream` was closed by the application but still waits for
    /// its upload to be acknowledged before `q` goes out (the driver bounds
    /// that wait with [`Client::abort`]).
    pub fn is_draining(&self, stream: StreamKey) -> bool {
        self.streams
            .get(&stream)
            .is_some_and(|s| s.closing && !s.close_sent)
    }

    /// Whether the target closed (and every payload was returned).
    pub fn is_eof(&self, stream: StreamKey) -> bool {
        self.streams.get(&stream).is_some_and(|s| s.down.eof)
    }

    /// The next plaintext chunk to send and its connection. Chunks of one
    /// connection come in the order they must be written.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A new transport connection: its first chunk is the probe `q{q} 0`,
    /// and queries waiting for a connection go on it. During a check, the
    /// probe's answer counts as this connection's answer: it was sent after
    /// the check started, over whatever path is there now.
    pub fn add_connection(&mut self) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let q = self.send_probe(conn, Pending::Probe);
        let awaited = self.check.is_some().then_some(q);
        self.conns.insert(
            conn,
            Conn {
                live: false,
                awaited,
            },
        );
        self.place_waiting();
        conn
    }

    /// Puts `q{q} 0` on `conn`, waiting as `what`; returns the query id.
    fn send_probe(&mut self, conn: ConnId, what: Pending) -> String {
        let q = self.fresh_id();
        let mut text = Vec::new();
        Query::Disconnect {
            q: &q,
            stream: PROBE_STREAM,
        }
        .encode(&mut text);
        self.transmit.push_back((conn, text));
        self.queries.insert(
            q.clone(),
            OpenQuery {
                what,
                conn: Some(conn),
                text: Vec::new(),
            },
        );
        q
    }

    /// Checks every connection now (the path may have changed): each gets
    /// the probe query `q{q} 0`, which has no effect at the server, and
    /// must answer before the driver's deadline, when the driver calls
    /// [`Client::check_expired`]. Only an answer to a query sent by this
    /// call counts: bytes already on their way prove nothing about the
    /// path now.
    ///
    /// Returns the round to expire, or `None` when there is no new round:
    /// the session ended, or a round is running already. That round then
    /// keeps its (earlier) deadline but waits for answers to the new
    /// queries, so a network that keeps changing cannot postpone the
    /// verdict.
    pub fn check(&mut self) -> Option<CheckId> {
        if self.ended.is_some() {
            return None;
        }
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            // An older check still unanswered stays among the open queries,
            // so its id is not reused while the server may still answer it;
            // its answer no longer counts.
            let q = self.send_probe(conn, Pending::Check);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.awaited = Some(q);
            }
        }
        match &mut self.check {
            Some(check) => {
                check.answered = false;
                None
            }
            None => {
                let round = CheckId(self.next_check);
                self.next_check += 1;
                self.check = Some(Check {
                    round,
                    answered: false,
                });
                Some(round)
            }
        }
    }

    /// Whether a check is running (some connection has not answered yet).
    pub fn checking(&self) -> bool {
        self.check.is_some()
    }

    /// The deadline of `round` passed (a round that finished already,
    /// every connection having answered, is ignored). Every connection that did not answer is
    /// treated as broken: [`Event::ConnectionDropped`] tells the driver to
    /// close it, and its batches resume on the others, as after any break.
    /// When no connection answered, the session ends with
    /// [`EndReason::Unanswered`] (`waited` is the deadline, for the reason).
    pub fn check_expired(&mut self, round: CheckId, waited: Duration) {
        let Some(check) = self.check.take_if(|c| c.round == round) else {
            return;
        };
        let silent: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.awaited.is_some())
            .map(|(id, _)| *id)
            .collect();
        for conn in silent {
            self.connection_lost(conn);
            self.events.push_back(Event::ConnectionDropped(conn));
        }
        if !check.answered {
            self.end(EndReason::Unanswered(waited));
        }
    }

    /// `q` from `conn` was answered: if the running check waited for it,
    /// the connection passed; the round is over once every one did.
    fn check_answered(&mut self, conn: ConnId, q: &str) {
        let Some(check) = &mut self.check else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.awaited.as_deref() != Some(q) {
            return;
        }
        c.awaited = None;
        check.answered = true;
        if self.conns.values().all(|c| c.awaited.is_none()) {
            self.check = None;
        }
    }

    /// A connection broke (or ended): everything it carried moves to the
    /// other connections (or waits for the next one). Batches resume from
    /// the last packet received (download) and from the packet the server
    /// says it expects (upload).
    pub fn connection_lost(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_none() {
            return;
        }
        self.transmit.retain(|(c, _)| *c != conn);
        let cut: Vec<String> = self
            .queries
            .iter()
            .filter(|(_, o)| o.conn == Some(conn))
            .map(|(q, _)| q.clone())
            .collect();
        for q in cut {
            let Some(open) = self.queries.remove(&q) else {
                continue;
            };
            match open.what {
                Pending::Probe | Pending::Check => {}
                Pending::Connect(_) | Pending::Disconnect(_) | Pending::Dns(_) => {
                    let q = self.fresh_id();
                    let text = retag(&open.text, &q);
                    self.queries.insert(
                        q.clone(),
                        OpenQuery {
                            conn: None,
                            text,
                            ..open
                        },
                    );
                    self.place(&q);
                }
                Pending::Up(key) => {
                    if let Some(s) = self.streams.get_mut(&key) {
                        s.up.batch = None;
                        s.up.ready = false;
                    }
                    self.start_upload(key);
                }
                Pending::Down(key) => {
                    if let Some(s) = self.streams.get_mut(&key) {
                        s.down.batch = None;
                    }
                    self.start_download(key);
                }
            }
        }
    }

    /// A connection's HTTP status. `403` and `404` end the session (with
    /// [`Event::SessionEnded`]); the driver acts on the rest.
    pub fn handle_status(&mut self, conn: ConnId, status: u16) -> StatusClass {
        let class = classify_status(status);
        match class {
            StatusClass::Reclaimed => self.end(EndReason::Reclaimed),
            StatusClass::WrongKey => self.end(EndReason::WrongKey),
            StatusClass::Ok => {}
            StatusClass::Busy | StatusClass::Other(_) => self.connection_lost(conn),
        }
        class
    }

    /// Ends the session: nothing more is sent.
    pub fn end(&mut self, reason: EndReason) {
        if self.ended.is_some() {
            return;
        }
        self.transmit.clear();
        self.ended = Some(reason.clone());
        self.events.push_back(Event::SessionEnded(reason));
    }

    /// Opens a stream to `host:port` (a name is resolved by the server).
    pub fn open(&mut self, host: &str, proto: Proto, port: u16) -> Result<StreamKey, OpenError> {
        if let Some(reason) = &self.ended {
            return Err(OpenError::SessionEnded(reason.clone()));
        }
        if self.streams.len() >= self.config.max_streams as usize {
            return Err(OpenError::TooManyStreams(self.config.max_streams));
        }
        if host.is_empty()
            || host.len() > crate::query::MAX_HOST
            || !host.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(OpenError::BadHost);
        }
        let key = StreamKey(self.next_stream);
        self.next_stream += 1;
        self.streams.insert(key, Stream::new());
        let q = self.fresh_id();
        let mut text = Vec::new();
        Query::Connect {
            q: &q,
            host,
            proto,
            port,
        }
        .encode(&mut text);
        self.queries.insert(
            q.clone(),
            OpenQuery {
                what: Pending::Connect(key),
                conn: None,
                text,
            },
        );
        self.place(&q);
        Ok(key)
    }

    /// Resolves `host` at the server.
    pub fn resolve(&mut self, host: &str, kind: DnsType) -> Result<LookupKey, OpenError> {
        if let Some(reason) = &self.ended {
            return Err(OpenError::SessionEnded(reason.clone()));
        }
        if host.is_empty()
            || host.len() > crate::query::MAX_HOST
            || !host.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(OpenError::BadHost);
        }
        let key = LookupKey(self.next_lookup);
        self.next_lookup += 1;
        let q = self.fresh_id();
        let mut text = Vec::new();
        Query::Dns { q: &q, host, kind }.encode(&mut text);
        self.queries.insert(
            q.clone(),
            OpenQuery {
                what: Pending::Dns(key),
                conn: None,
                text,
            },
        );
        self.place(&q);
        Ok(key)
    }

    /// Queues one upload packet (for UDP, one datagram). It goes out at
    /// once when the stream's batch may send, and is kept until
    /// acknowledged.
    pub fn send(&mut self, stream: StreamKey, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge(payload.len()));
        }
        self.queue_upload(stream, payload.to_vec(), false)
    }

    /// The application finished writing: an empty `U` tells the server to
    /// shut down its write side after every byte before it (TCP). Waits for
    /// room like [`Client::send`].
    pub fn shutdown(&mut self, stream: StreamKey) -> Result<(), SendError> {
        self.queue_upload(stream, Vec::new(), true)
    }

    fn queue_upload(
        &mut self,
        key: StreamKey,
        payload: Vec<u8>,
        fin: bool,
    ) -> Result<(), SendError> {
        if self.ended.is_some() {
            return Err(SendError::Closed);
        }
        let window = self.config.upload_window as usize;
        let Some(s) = self.streams.get_mut(&key) else {
            return Err(SendError::Closed);
        };
        if s.up.failed || s.up.fin.is_some() || s.closing {
            return Err(SendError::Closed);
        }
        if s.up.kept.len() >= window {
            return Err(SendError::Blocked);
        }
        if fin {
            s.up.fin = Some(s.up.end());
        }
        s.up.kept.push_back(payload);
        if s.id.is_none() {
            // Sent once the stream is open.
            return Ok(());
        }
        if s.up.batch.is_none() {
            self.start_upload(key);
        } else {
            self.flush_upload(key);
        }
        Ok(())
    }

    /// The application read `packets` more download payloads of `stream`:
    /// acknowledges when `ceil(w/2)` are unacknowledged, or when it has
    /// read everything received.
    pub fn consumed(&mut self, stream: StreamKey, packets: u64) {
        let every = self.config.ack_every();
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let d = &mut s.down;
        d.consumed = (d.consumed + packets).min(d.recv);
        let Some(batch) = &d.batch else {
            return;
        };
        let Some(conn) = batch.conn else {
            return;
        };
        if d.consumed > d.acked && (d.consumed - d.acked >= every || d.consumed == d.recv) {
            let mut text = Vec::new();
            Query::Ack {
                q: &batch.q,
                next: d.consumed,
            }
            .encode(&mut text);
            d.acked = d.consumed;
            self.transmit.push_back((conn, text));
        }
    }

    /// The application is done with `stream`. The `q` query goes out once
    /// every upload packet was acknowledged (bytes written before a close
    /// still reach the target); [`Event::Closed`] follows its answer.
    pub fn close(&mut self, stream: StreamKey) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        s.closing = true;
        self.maybe_disconnect(stream);
    }

    /// Like [`Client::close`] but without waiting for the upload: what was
    /// not acknowledged is given up.
    pub fn abort(&mut self, stream: StreamKey) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        s.closing = true;
        s.up.kept.clear();
        self.maybe_disconnect(stream);
    }

    /// Starts (or restarts) the download batch of an open stream from the
    /// next packet expected.
    fn start_download(&mut self, key: StreamKey) {
        let q = self.fresh_id();
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        if s.down.eof || s.id.is_none() || s.close_sent {
            return;
        }
        s.down.batch = Some(Batch {
            q: q.clone(),
            conn: None,
        });
        self.queries.insert(
            q.clone(),
            OpenQuery {
                what: Pending::Down(key),
                conn: None,
                text: Vec::new(),
            },
        );
        self.place(&q);
    }

    /// Starts (or restarts) the upload batch of an open stream. Only the
    /// stream's first batch sends ahead of the server's answer.
    fn start_upload(&mut self, key: StreamKey) {
        let q = self.fresh_id();
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        if s.up.done || s.up.failed || s.id.is_none() || s.close_sent {
            return;
        }
        s.up.ready = !s.up.started;
        s.up.started = true;
        s.up.sent = s.up.base;
        s.up.batch = Some(Batch {
            q: q.clone(),
            conn: None,
        });
        self.queries.insert(
            q.clone(),
            OpenQuery {
                what: Pending::Up(key),
                conn: None,
                text: Vec::new(),
            },
        );
        self.place(&q);
    }

    /// Puts the `U` chunks not yet sent on the batch's connection.
    fn flush_upload(&mut self, key: StreamKey) {
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        let up = &mut s.up;
        let Some(Batch {
            q,
            conn: Some(conn),
        }) = &up.batch
        else {
            return;
        };
        if !up.ready {
            return;
        }
        while up.sent < up.end() {
            let payload = &up.kept[(up.sent - up.base) as usize];
            let mut text = Vec::with_capacity(payload.len() + q.len() + 2);
            Query::UploadData { q, payload }.encode(&mut text);
            self.transmit.push_back((*conn, text));
            up.sent += 1;
        }
    }

    /// Sends `q` for a closing stream once its upload is acknowledged.
    fn maybe_disconnect(&mut self, key: StreamKey) {
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        if !s.closing || s.close_sent {
            return;
        }
        let Some(id) = s.id.clone() else {
            // Still opening: closed once the answer comes (or forgotten if
            // it fails).
            return;
        };
        if !s.up.drained() && !s.up.failed {
            return;
        }
        s.close_sent = true;
        // The stream's batches end with it at the server; their late
        // answers are ignored.
        for batch in [s.up.batch.take(), s.down.batch.take()]
            .into_iter()
            .flatten()
        {
            self.queries.remove(&batch.q);
        }
        let q = self.fresh_id();
        let mut text = Vec::new();
        Query::Disconnect { q: &q, stream: &id }.encode(&mut text);
        self.queries.insert(
            q.clone(),
            OpenQuery {
                what: Pending::Disconnect(key),
                conn: None,
                text,
            },
        );
        self.place(&q);
    }

    fn fresh_id(&mut self) -> String {
        let queries = &self.queries;
        self.ids.fresh(|id| queries.contains_key(id))
    }

    /// The connection for a new query: live before probing, then the one
    /// carrying the fewest batches, so streams spread over connections.
    fn pick_conn(&self) -> Option<ConnId> {
        let mut load: BTreeMap<ConnId, usize> = self.conns.keys().map(|c| (*c, 0)).collect();
        for o in self.queries.values() {
            if let (Some(c), Pending::Up(_) | Pending::Down(_)) = (o.conn, &o.what)
                && let Some(n) = load.get_mut(&c)
            {
                *n += 1;
            }
        }
        load.into_iter()
            .min_by_key(|(c, n)| (!self.conns[c].live, *n, *c))
            .map(|(c, _)| c)
    }

    /// Sends query `q` on a connection, or leaves it waiting for one.
    fn place(&mut self, q: &str) {
        if self.ended.is_some() {
            return;
        }
        let Some(conn) = self.pick_conn() else {
            return;
        };
        let Some(open) = self.queries.get_mut(q) else {
            return;
        };
        open.conn = Some(conn);
        match open.what.clone() {
            Pending::Probe | Pending::Check => {}
            Pending::Connect(_) | Pending::Disconnect(_) | Pending::Dns(_) => {
                self.transmit.push_back((conn, open.text.clone()));
            }
            Pending::Up(key) => {
                let Some(s) = self.streams.get_mut(&key) else {
                    return;
                };
                let (Some(id), Some(batch)) = (&s.id, &mut s.up.batch) else {
                    return;
                };
                batch.conn = Some(conn);
                let mut text = Vec::new();
                Query::Upload { q, stream: id }.encode(&mut text);
                self.transmit.push_back((conn, text));
                self.flush_upload(key);
            }
            Pending::Down(key) => {
                let window = u64::from(self.config.download_window);
                let Some(s) = self.streams.get_mut(&key) else {
                    return;
                };
                let (Some(id), Some(batch)) = (&s.id, &mut s.down.batch) else {
                    return;
                };
                batch.conn = Some(conn);
                let mut text = Vec::new();
                Query::Download {
                    q,
                    stream: id,
                    packet: s.down.recv,
                    window: Some(window),
                }
                .encode(&mut text);
                s.down.acked = s.down.recv;
                self.transmit.push_back((conn, text));
            }
        }
    }

    /// Places every query that waits for a connection.
    fn place_waiting(&mut self) {
        let waiting: Vec<String> = self
            .queries
            .iter()
            .filter(|(_, o)| o.conn.is_none())
            .map(|(q, _)| q.clone())
            .collect();
        for q in waiting {
            self.place(&q);
        }
    }
}

/// The same `c`/`q`/`n` query under a new id (the verb byte stays, the id
/// up to the first space is replaced).
fn retag(text: &[u8], q: &str) -> Vec<u8> {
    let rest = text[1..]
        .iter()
        .position(|&b| b == b' ')
        .map_or(&[][..], |at| &text[1 + at..]);
    let mut out = Vec::with_capacity(text.len() + q.len());
    out.push(text[0]);
    out.extend_from_slice(q.as_bytes());
    out.extend_from_slice(rest);
    out
}

fn answer_fields(body: Option<&[u8]>) -> Vec<String> {
    body.and_then(|b| std::str::from_utf8(b).ok())
        .map(|t| {
            t.split(' ')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
