//! The HT server as a sans-IO machine: every session, connection and stream
//! of one server, with no socket and no clock.
//!
//! ```text
//!   driver                                   Server
//!   ──────                                   ──────
//!   first chunk of a POST ──handle_first_chunk──▶ judge: 404 / 403 / 503 / ConnId
//!   later chunks          ──handle_chunk────────▶ decrypt, decode, serve
//!   connection gone       ──handle_connection_closed
//!   dial / read / write / DNS results ──handle_*──▶ streams and batches
//!   timer                 ──handle_timeout(now)──▶ reclaim idle sessions
//!                         ◀──poll_action─────── Send (encrypted chunk), EndConnection,
//!                                               Dial, Read, Write, ShutdownWrite,
//!                                               CloseTarget, Resolve, Event
//!                         ◀──poll_timeout────── next deadline
//! ```
//!
//! One machine holds every session because a session's streams outlive any
//! one connection and its batches move between connections: "a new `d`/`u`
//! for a stream replaces that stream's open batch of the same direction
//! wherever it is". The cost is one lock in the driver; in return every rule
//! (resume, replacement, limits, reclaiming) is tested here from plain
//! chunks. After each input the driver drains [`Server::poll_action`] in
//! order: answers of one connection must go out in the order they were
//! encrypted, since each direction of a connection is one keystream.
//!
//! Decisions the contract leaves to the server (docs/ht.md):
//! - Stream ids are lowercase hex counters from `1`, per session, so the
//!   client's probe `q{q} 0` names no stream and is answered `!{q}`.
//! - A chunk that does not decode ends its connection, except a `c`, `q`,
//!   `n`, `u` or `d` whose query id is readable: that query is answered
//!   `!{q}` (the client learns which query failed). A broken `U`, `.` or `!`
//!   ends the connection, because `!{q}` on a batch would read as "target
//!   closed".
//! - An acknowledgement beyond the packets sent ends the connection (the
//!   client then resumes elsewhere from what it really has); a `d` from a
//!   packet the server no longer keeps, or has not read yet, is `!{q}`.
//! - A query id already in flight on the connection ends the connection.
//! - Acknowledgements (`.`) and ends (`!`) for a batch that is no longer
//!   open (replaced, ended, or closed by the server) are ignored: they may
//!   cross the server's `!{q}` or a replacement on the wire.
//! - An empty `U` on a TCP stream half-closes the target after every byte
//!   before it; later `U`s on that stream are `!{q}`.

#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod queries;
mod stream;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

pub use limits::{Limits, LimitsError};
pub use targets::TargetEnd;

use crate::cipher::{ChunkCipher, Direction, Key, SessionId};
use crate::query::{Answer, DnsType, Proto, Query};
use stream::Stream;

/// A transport connection, as the machine names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A target connection (one per stream, named from its dial on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(pub u64);

/// One DNS question handed to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// Why the first chunk of a connection does not open it: the HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No cookie, a wrong key, garbage, a probe: the ordinary `404` page.
    #[error("not an HT connection")]
    NotFound,
    /// The PHPSESSID was reclaimed: `403`, the client starts a new session.
    #[error("the session was reclaimed")]
    Reclaimed,
    /// Too many sessions, or connections of this session: `503`.
    #[error("too many sessions or connections")]
    Busy,
}

impl Refusal {
    /// The HTTP status that says it (the one mapping from refusal to wire).
    pub fn status(self) -> u16 {
        match self {
            Refusal::NotFound => 404,
            Refusal::Reclaimed => 403,
            Refusal::Busy => 503,
        }
    }
}

/// Why the machine ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// A chunk that is no query (see the module doc).
    Undecodable,
    /// A chunk over [`Limits::max_chunk`].
    ChunkTooLarge,
    /// An acknowledgement beyond the packets sent.
    BadAck,
    /// A query id already in flight on the connection, or a batch chunk
    /// whose id names a query of another kind.
    BadQueryId,
    /// Upload packets past [`Limits::max_upload_ahead`] withheld
    /// acknowledgements.
    UploadOverrun,
    /// The server is shutting down.
    Shutdown,
}

impl EndReason {
    /// A stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Undecodable => "undecodable",
            EndReason::ChunkTooLarge => "chunk_too_large",
            EndReason::BadAck => "bad_ack",
            EndReason::BadQueryId => "bad_query_id",
            EndReason::UploadOverrun => "upload_overrun",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// Something that happened, for logs and metrics (nothing to carry out).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A session was created by its first connection.
    SessionOpened,
    /// A session with no connection for [`Limits::session_idle`] was
    /// reclaimed, with its streams.
    SessionReclaimed,
    /// A transport connection was accepted.
    ConnectionOpened,
    /// The machine ended a connection.
    ConnectionEnded(EndReason),
    /// A transport connection went away (the driver said so, or the
    /// machine ended it).
    ConnectionClosed,
    /// A stream was opened.
    StreamOpened(Proto),
    /// A stream was closed (by `q` or with its session).
    StreamClosed(Proto),
    /// A query was answered: its verb name and whether it succeeded.
    Query {
        /// `connect`, `disconnect`, `dns`, `upload` or `download`.
        verb: &'static str,
        /// `.` (true) or `!` (false).
        ok: bool,
    },
    /// Bytes from the client on their way to a target.
    BytesUp(usize),
    /// Bytes from a target on their way to the client.
    BytesDown(usize),
    /// Datagrams dropped from a full UDP queue.
    DatagramsDropped(u64),
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this (already encrypted) chunk on the connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// One answer, encrypted: the next bytes of the connection's
        /// server-to-client keystream.
        chunk: Vec<u8>,
    },
    /// End the connection (the last chunk, then close). The machine has
    /// already forgotten it.
    EndConnection {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: EndReason,
    },
    /// Resolve (when a name), check under the target policy, and connect;
    /// answer with [`Server::handle_connected`] or
    /// [`Server::handle_connect_failed`].
    Dial {
        /// The target's name from now on.
        target: TargetId,
        /// A name or an IP literal (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
        /// TCP or UDP.
        proto: Proto,
    },
    /// Read the target once (at most [`Limits::read_size`] bytes, or one
    /// datagram) and report with [`Server::handle_read`] or
    /// [`Server::handle_target_end`].
    Read {
        /// The target.
        target: TargetId,
    },
    /// Write these bytes (TCP) or send this datagram (UDP), after the
    /// writes before it; report with [`Server::handle_written`].
    Write {
        /// The target.
        target: TargetId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Shut down the target's write side after the writes before it.
    ShutdownWrite {
        /// The target.
        target: TargetId,
    },
    /// Close the target (or abandon its dial); nothing more is reported.
    CloseTarget {
        /// The target.
        target: TargetId,
    },
    /// Resolve a DNS question; answer with [`Server::handle_dns`].
    Resolve {
        /// The question's name.
        lookup: LookupId,
        /// The name, or for PTR an IP literal.
        host: String,
        /// The record type.
        kind: DnsType,
    },
    /// For logs and metrics.
    Event(Event),
}

/// Why a DNS question found nothing to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFailure {
    /// No such name, or the resolver failed: `!{q}`.
    Failed,
}

/// One query waiting for an answer, or one open batch, on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Dial(TargetId),
    Dns(LookupId),
    Download(String),
    Upload(String),
}

struct Conn {
    session: SessionId,
    rx: ChunkCipher,
    tx: ChunkCipher,
    queries: HashMap<String, Pending>,
}

struct Session {
    conns: HashSet<ConnId>,
    streams: HashMap<String, Stream>,
    /// Dials in progress (they count against the stream limit).
    dialing: usize,
    next_stream: u64,
    /// When the last connection went away.
    idle_since: Option<Instant>,
    /// Download bytes kept by all streams (`Limits::max_session_buffer`).
    kept: usize,
    /// TCP streams refused a read for want of session room, first refused
    /// first: pumped again, in turn, when room comes back.
    starved: Starved,
}

impl Server {
    /// Asserts that every session's count of kept bytes is the sum of its
    /// streams' and within `max_session_buffer` (for the fuzz driver).
    #[doc(hidden)]
    pub fn check_session_buffers(&self) {
        for s in self.sessions.values() {
            let sum: usize = s.streams.values().map(Stream::kept_bytes).sum();
            assert_eq!(s.kept, sum, "a session's kept bytes drifted");
            assert!(s.kept <= self.limits.max_session_buffer, "{} kept", s.kept);
        }
    }
}

/// A queue of stream ids without duplicates.
#[derive(Default)]
struct Starved {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Starved {
    fn push(&mut self, sid: &str) {
        if self.ids.insert(sid.to_owned()) {
            self.order.push_back(sid.to_owned());
        }
    }

    fn pop(&mut self) -> Option<String> {
        let sid = self.order.pop_front()?;
        self.ids.remove(&sid);
        Some(sid)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Session {
    /// Runs `f` on a stream and keeps `kept` in step with what it changed.
    fn with_stream<R>(&mut self, sid: &str, f: impl FnOnce(&mut Stream) -> R) -> Option<R> {
        let st = self.streams.get_mut(sid)?;
        let before = st.kept_bytes();
        let r = f(st);
        self.kept = self.kept + st.kept_bytes() - before;
        Some(r)
    }
}

/// Where a target belongs.
enum TargetRef {
    Dialing {
        session: SessionId,
        conn: ConnId,
        q: String,
        proto: Proto,
    },
    Stream {
        session: SessionId,
        stream: String,
    },
}

/// Reclaimed ids, oldest first, remembered for a while.
#[derive(Default)]
struct Reclaimed {
    order: VecDeque<(Instant, SessionId)>,
    ids: HashSet<SessionId>,
}

/// Every session of one HT server. See the module doc.
pub struct Server {
    key: Key,
    limits: Limits,
    sessions: HashMap<SessionId, Session>,
    conns: HashMap<ConnId, Conn>,
    targets: HashMap<TargetId, TargetRef>,
    lookups: HashMap<LookupId, (ConnId, String)>,
    reclaimed: Reclaimed,
    /// Sessions without a connection, by the time they lost their last one:
    /// the next reclaim without a scan of every session (the driver asks
    /// for the deadline after every input).
    idle: BTreeSet<(Instant, SessionId)>,
    /// Connections the machine ended, until the driver reports them closed.
    ending: HashMap<ConnId, SessionId>,
    actions: VecDeque<Action>,
    next_id: u64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("sessions", &self.sessions.len())
            .field("connections", &self.conns.len())
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with the pre-shared `key`.
    pub fn new(key: Key, limits: Limits) -> Result<Server, LimitsError> {
        limits.check()?;
        Ok(Server {
            key,
            limits,
            sessions: HashMap::new(),
            conns: HashMap::new(),
            targets: HashMap::new(),
            lookups: HashMap::new(),
            reclaimed: Reclaimed::default(),
            idle: BTreeSet::new(),
            ending: HashMap::new(),
            actions: VecDeque::new(),
            next_id: 1,
        })
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sessions alive.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Connections open.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The next thing to do, in order; drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Server::handle_timeout`] is next due: an idle session's
    /// reclaim, or a remembered id's expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self
            .idle
            .first()
            .map(|(t, _)| *t + self.limits.session_idle);
        let forget = self
            .reclaimed
            .order
            .front()
            .map(|(t, _)| *t + self.limits.remember_reclaimed);
        idle.into_iter().chain(forget).min()
    }

    /// Reclaims sessions idle for [`Limits::session_idle`] and forgets
    /// reclaimed ids older than [`Limits::remember_reclaimed`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.limits.session_idle;
        let due: Vec<SessionId> = self
            .idle
            .iter()
            .take_while(|(t, _)| *t + idle <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            self.reclaim(id, now);
        }
        while let Some((t, _)) = self.reclaimed.order.front() {
            if *t + self.limits.remember_reclaimed > now {
                break;
            }
            if let Some((_, id)) = self.reclaimed.order.pop_front() {
                self.reclaimed.ids.remove(&id);
            }
        }
    }

    fn reclaim(&mut self, id: SessionId, now: Instant) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        if let Some(t) = session.idle_since {
            self.idle.remove(&(t, id.clone()));
        }
        // Only sessions without connections are reclaimed: nothing of
        // theirs is left in `conns` or `ending`.
        debug_assert!(session.conns.is_empty());
        for (_, stream) in session.streams {
            self.targets.remove(&stream.target);
            self.actions.push_back(Action::CloseTarget {
                target: stream.target,
            });
            self.event(Event::StreamClosed(stream.proto));
        }
        // Dials in progress find no session when they finish, and close.
        if self.reclaimed.order.len() >= self.limits.max_reclaimed
            && let Some((_, old)) = self.reclaimed.order.pop_front()
        {
            self.reclaimed.ids.remove(&old);
        }
        self.reclaimed.ids.insert(id.clone());
        self.reclaimed.order.push_back((now, id));
        self.event(Event::SessionReclaimed);
    }

    /// Ends every connection and closes every target (graceful shutdown).
    pub fn shutdown(&mut self) {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort();
        for conn in conns {
            self.end_connection(conn, EndReason::Shutdown);
        }
        let mut targets: Vec<TargetId> = self.targets.keys().copied().collect();
        targets.sort();
        for target in targets {
            self.targets.remove(&target);
            self.actions.push_back(Action::CloseTarget { target });
        }
        self.sessions.clear();
        self.idle.clear();
        self.lookups.clear();
    }

    /// Judges the first chunk of a new `POST /ht/create.php` whose cookie
    /// carried `phpsessid`. The chunk is decrypted in place (it is the first
    /// of the connection's client-to-server keystream); when it is a
    /// well-formed query the connection opens and the query is served as
    /// any other. Nothing changes on a refusal.
    pub fn handle_first_chunk(
        &mut self,
        now: Instant,
        phpsessid: Option<&str>,
        chunk: &mut [u8],
    ) -> Result<ConnId, Refusal> {
        let id = phpsessid
            .and_then(SessionId::parse)
            .ok_or(Refusal::NotFound)?;
        if chunk.len() > self.limits.max_chunk {
            return Err(Refusal::NotFound);
        }
        let mut rx = ChunkCipher::new(&self.key, &id, Direction::ClientToServer);
        rx.apply(chunk);
        if Query::decode(chunk).is_err() {
            return Err(Refusal::NotFound);
        }
        // A session past its idle time is reclaimed now, even if the timer
        // has not fired yet: the outcome does not depend on the driver's
        // timer resolution.
        let overdue = self.sessions.get(&id).is_some_and(|s| {
            s.idle_since
                .is_some_and(|t| t + self.limits.session_idle <= now)
        });
        if overdue {
            self.reclaim(id.clone(), now);
        }
        // Only a client that holds the key learns about sessions.
        if self.reclaimed.ids.contains(&id) {
            return Err(Refusal::Reclaimed);
        }
        match self.sessions.get(&id) {
            Some(s) if s.conns.len() >= self.limits.max_connections_per_session => {
                return Err(Refusal::Busy);
            }
            Some(_) => {}
            None if self.sessions.len() >= self.limits.max_sessions => {
                return Err(Refusal::Busy);
            }
            None => {
                self.sessions.insert(
                    id.clone(),
                    Session {
                        conns: HashSet::new(),
                        streams: HashMap::new(),
                        dialing: 0,
                        next_stream: 1,
                        idle_since: None,
                        kept: 0,
                        starved: Starved::default(),
                    },
                );
                self.event(Event::SessionOpened);
            }
        }
        let conn = ConnId(self.next_id());
        let session = self.sessions.get_mut(&id).expect("inserted above");
        session.conns.insert(conn);
        if let Some(t) = session.idle_since.take() {
            self.idle.remove(&(t, id.clone()));
        }
        let tx = ChunkCipher::new(&self.key, &id, Direction::ServerToClient);
        self.conns.insert(
            conn,
            Conn {
                session: id,
                rx,
                tx,
                queries: HashMap::new(),
            },
        );
        self.event(Event::ConnectionOpened);
        self.serve(conn, chunk);
        Ok(conn)
    }

    /// A later chunk of `conn`, still encrypted (decrypted in place).
    /// Chunks of a connection that is gone are ignored.
    pub fn handle_chunk(&mut self, conn: ConnId, chunk: &mut [u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if chunk.len() > self.limits.max_chunk {
            self.end_connection(conn, EndReason::ChunkTooLarge);
            return;
        }
        c.rx.apply(chunk);
        self.serve(conn, chunk);
    }

    /// The driver's reader saw more than [`Limits::max_chunk`] announced
    /// (it need not buffer the chunk to say so).
    pub fn handle_oversized_chunk(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.end_connection(conn, EndReason::ChunkTooLarge);
        }
    }

    /// The connection went away (the client closed it, its body ended, or
    /// an I/O error). Its batches end; its streams stay with the session.
    pub fn handle_connection_closed(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.forget_batches(conn, &c);
            self.forget_connection(conn, &c.session, now);
        } else if let Some(session) = self.ending.remove(&conn) {
            self.forget_connection(conn, &session, now);
        }
    }

    /// Ends `conn` from the machine's side. Its session keeps counting it
    /// until the driver reports it closed, which starts the idle clock (the
    /// machine has no clock of its own).
    fn end_connection(&mut self, conn: ConnId, reason: EndReason) {
        if let Some(c) = self.conns.remove(&conn) {
            self.actions
                .push_back(Action::EndConnection { conn, reason });
            self.event(Event::ConnectionEnded(reason));
            self.forget_batches(conn, &c);
            self.ending.insert(conn, c.session);
        }
    }

    fn forget_connection(&mut self, conn: ConnId, session: &SessionId, now: Instant) {
        if let Some(s) = self.sessions.get_mut(session) {
            s.conns.remove(&conn);
            if s.conns.is_empty() {
                s.idle_since = Some(now);
                self.idle.insert((now, session.clone()));
            }
        }
        self.event(Event::ConnectionClosed);
    }

    /// The batches of a connection that is gone end silently; dials and
    /// lookups still running find the connection gone when they finish.
    fn forget_batches(&mut self, conn: ConnId, c: &Conn) {
        let Some(session) = self.sessions.get_mut(&c.session) else {
            return;
        };
        for pending in c.queries.values() {
            match pending {
                Pending::Download(sid) => {
                    if let Some(st) = session.streams.get_mut(sid)
                        && st.down.as_ref().is_some_and(|d| d.conn == conn)
                    {
                        st.down = None;
                    }
                }
                Pending::Upload(sid) => {
                    if let Some(st) = session.streams.get_mut(sid)
                        && st.up.as_ref().is_some_and(|u| u.conn == conn)
                    {
                        st.up = None;
                    }
                }
                Pending::Dial(_) | Pending::Dns(_) => {}
            }
        }
    }

    fn event(&mut self, event: Event) {
        self.actions.push_back(Action::Event(event));
    }

    /// Encrypts `answer` on `conn`'s keystream and queues it.
    fn send(&mut self, conn: ConnId, answer: &Answer<'_>) {
        push_answer(&mut self.conns, &mut self.actions, conn, answer);
    }

    fn fail(&mut self, conn: ConnId, q: &str, verb: &'static str) {
        self.send(conn, &Answer::Fail { q });
        self.event(Event::Query { verb, ok: false });
    }

    fn ok(&mut self, conn: ConnId, q: &str, body: Option<&[u8]>, verb: &'static str) {
        self.send(conn, &Answer::Ok { q, body });
        self.event(Event::Query { verb, ok: true });
    }
}

/// Encrypts `answer` with `conn`'s keystream and queues it. A free function
/// so that a download packet can be encoded straight from the stream's
/// buffer (borrowed from `sessions`) without copying it out first.
fn push_answer(
    conns: &mut HashMap<ConnId, Conn>,
    actions: &mut VecDeque<Action>,
    conn: ConnId,
    answer: &Answer<'_>,
) {
    if let Some(c) = conns.get_mut(&conn) {
        let body = match answer {
            Answer::Ok { body: Some(b), .. } => b.len(),
            _ => 0,
        };
        let mut chunk = Vec::with_capacity(body + crate::query::MAX_QUERY_ID + 2);
        match answer {
            // A body (a download packet, most of the bytes) is encrypted
            // as it is copied in, not copied and then encrypted in place:
            // one pass over it less (that copy was most of the server's
            // memmove in the profile, bench/README.md issue 12).
            Answer::Ok { q, body: Some(b) } => {
                Answer::Ok { q, body: None }.encode(&mut chunk);
                chunk.push(b' ');
                c.tx.apply(&mut chunk);
                c.tx.apply_extend(b, &mut chunk);
            }
            _ => {
                answer.encode(&mut chunk);
                c.tx.apply(&mut chunk);
            }
        }
        actions.push_back(Action::Send { conn, chunk });
    }
}
