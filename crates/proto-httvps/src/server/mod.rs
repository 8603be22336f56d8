//! The gateway side of a session as sans-IO state machines.
//!
//! Two machines, one per phase:
//!
//! - [`Handshake`] waits for the first message: a `hello` of version "1"
//!   before [`SessionParams`]'s hello deadline ([`check_hello`] holds the
//!   rules). Validating the token needs the backend, so that step stays in
//!   the driver; the machine says what to answer when the hello is bad or late.
//! - [`Session`], after `ready`: every WebSocket message goes through
//!   [`Session::handle_text`] (or one of the other `handle_*` inputs), and the
//!   driver then drains [`Session::poll_action`] in order and carries each
//!   [`Action`] out: send a frame, dial an upstream, forward bytes, end a
//!   stream, close the session. It owns the rules of the contract — stream
//!   table, `max_streams`, the address header that starts each stream,
//!   recently closed ids, violation counting — and the session's timers:
//!   a keepalive `ping` after half the idle timeout, the idle close, and the
//!   drain deadline on shutdown ([`Session::poll_timeout`],
//!   [`Session::handle_timeout`]). Time is always an argument.
//!
//! The rules are unit-tested here without sockets; the driver owns channels,
//! tasks and the one timer it re-arms from `poll_timeout`.
//!
//! Ordering rule the driver relies on: when the gateway ends a stream, the
//! machine emits [`Action::Abort`] *before* the `stream_close` frame,
//! so the driver can stop the stream's task (and with it any data frames)
//! before the close reaches the client's queue.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::TargetAddr;
use crate::address::MAX_HEADER_LEN;
use crate::binary::decode_binary_frame;
use crate::error::{DecodeError, ErrorCode};
use crate::flow::{INITIAL_SESSION_WINDOW, INITIAL_STREAM_WINDOW, RecvWindow, WindowLimits};
use crate::frame::{Frame, decode_limited};

/// A stream id, shared between the table, actions and the stream's task.
pub type StreamId = Arc<str>;

/// WebSocket close codes the gateway uses (RFC 6455 §7.4.1).
pub mod close_code {
    /// Idle timeout.
    pub const NORMAL: u16 = 1000;
    /// Gateway shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Bad or missing `hello`, wrong version.
    pub const PROTOCOL: u16 = 1002;
    /// Authentication failed, hello timeout, too many violations.
    pub const POLICY: u16 = 1008;
    /// A message over the frame limit.
    pub const TOO_BIG: u16 = 1009;
    /// The backend could not validate the session; the client may retry.
    pub const TRY_AGAIN: u16 = 1013;
}

/// The machine-readable `reason` of a `stream_close` the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The upstream closed its side.
    Eof,
    /// `stream_open` past `max_streams`.
    Limit,
    /// The target (or Outline node) refused the connection.
    Refused,
    /// DNS failed or no route to the target.
    Unreachable,
    /// The target is refused by the gateway's policy (private address…).
    NotAllowed,
    /// The dial did not finish in time.
    Timeout,
    /// Any other upstream failure.
    UpstreamError,
    /// The upstream did not take our bytes within the stall bound.
    SlowUpstream,
    /// A malformed stream frame or address header.
    BadStream,
    /// The client sent more than its `flow_control` credit on the stream.
    FlowControl,
    /// The gateway is shutting down.
    Shutdown,
}

impl CloseReason {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Eof => "eof",
            CloseReason::Limit => "limit",
            CloseReason::Refused => "refused",
            CloseReason::Unreachable => "unreachable",
            CloseReason::NotAllowed => "not_allowed",
            CloseReason::Timeout => "timeout",
            CloseReason::UpstreamError => "upstream_error",
            CloseReason::SlowUpstream => "slow_upstream",
            CloseReason::BadStream => "bad_stream",
            CloseReason::FlowControl => "flow_control",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// How a stream's task ended, as it reports to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// The `stream_close` reason.
    pub reason: CloseReason,
    /// Text for a `stream_error` frame sent before the close; `None` for a clean end.
    pub error: Option<String>,
}

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue this frame for the client.
    Send(Frame<'static>),
    /// A stream was accepted (for logs and metrics; nothing to dial yet).
    Open {
        /// The stream.
        id: StreamId,
        /// The `stream_open` target text, informational only.
        target: String,
    },
    /// The address header is complete: connect the upstream and send `initial`
    /// (the bytes after the header) first.
    Dial {
        /// The stream.
        id: StreamId,
        /// Distinguishes this stream from an earlier one with the same id.
        serial: u64,
        /// Where the header says to go.
        target: TargetAddr,
        /// Payload that followed the header.
        initial: Vec<u8>,
    },
    /// Queue bytes toward the stream's upstream.
    Forward {
        /// The stream.
        id: StreamId,
        /// The stream's serial, to report a stall.
        serial: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The client closed the stream: flush what is queued, shut the upstream
    /// down, send nothing back.
    Finish {
        /// The stream.
        id: StreamId,
    },
    /// The client finished writing (`stream_shutdown`): once what is queued is
    /// written, shut down the upstream's write side and keep relaying replies.
    ShutdownWrite {
        /// The stream.
        id: StreamId,
    },
    /// The client granted credit (`flow_control`): the stream's upstream
    /// bytes may use `increment` more, or every stream's when `id` is `None`.
    Credit {
        /// The stream; `None` for the session's window.
        id: Option<StreamId>,
        /// Bytes of credit added.
        increment: u64,
    },
    /// The gateway ends the stream now; frames for the client follow.
    Abort {
        /// The stream.
        id: StreamId,
    },
    /// Close the WebSocket with this code; nothing after it is processed.
    Close {
        /// RFC 6455 close code (see [`close_code`]).
        code: u16,
        /// Short text for the close frame.
        reason: &'static str,
    },
}

/// The limits one session runs under.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Open streams allowed at once.
    pub max_streams: u32,
    /// Largest message accepted.
    pub max_frame_len: usize,
    /// Violations tolerated; one more closes the session.
    pub max_violations: u32,
    /// Recently closed ids remembered: late frames for them are dropped
    /// quietly, and a `stream_open` reusing one is refused (`bad_stream`).
    /// An id forgotten past this bound may be opened again; the new stream
    /// gets a new serial, so the old one's late reports cannot touch it.
    pub recently_closed: usize,
    /// Longest stream id accepted.
    pub max_stream_id_len: usize,
    /// Send `stream_ready` when a stream's upstream is connected (negotiated
    /// in hello/ready).
    pub stream_ready: bool,
    /// Binary `stream_data` messages are frames (the `binary_data` extension
    /// was negotiated); otherwise a binary message is a violation.
    pub binary_data: bool,
    /// Per-stream and per-session credit (`flow_control`, negotiated): the
    /// machine checks the client's bytes against what it granted and grants
    /// more as the driver reports them written upstream
    /// ([`Session::handle_consumed`]); the client's grants come out as
    /// [`Action::Credit`] for the driver's senders.
    pub flow_control: bool,
    /// How far the receive windows may grow.
    pub windows: WindowLimits,
    /// The round-trip estimate that decides when a window grows.
    pub rtt: Duration,
    /// Silence after which the session closes (1000, "idle timeout"); the
    /// gateway pings after half of it. Only useful traffic counts: frames
    /// other than pings, and pongs that answer the gateway's keepalive — a
    /// client that only pings is idle.
    pub idle_timeout: Duration,
    /// The client's ping budget (WebSocket and JSON pings, and frames of
    /// unknown types, which are answered too); past it each one is a violation.
    pub pings: PingLimit,
    /// How long open streams may run on after [`Session::begin_drain`].
    pub drain_timeout: Duration,
}

struct Entry {
    serial: u64,
    /// Bytes of the address header received so far; `None` once dialed.
    header: Option<Vec<u8>>,
    /// The stream's receive window (`flow_control`).
    recv: Option<RecvWindow>,
}

/// A bounded set of ids, forgetting the oldest first, each with the late
/// bytes it may still receive.
struct RecentIds {
    cap: usize,
    order: VecDeque<StreamId>,
    /// Id → bytes of late `stream_data` it may still receive quietly.
    set: HashMap<StreamId, u64>,
    /// What a closed stream may receive late: at most what the client could
    /// have had in flight when the close crossed its writes.
    late_allowance: u64,
}

impl RecentIds {
    fn insert(&mut self, id: StreamId) {
        if self.cap == 0 || self.set.contains_key(&id) {
            return;
        }
        self.set.insert(id.clone(), self.late_allowance);
        self.order.push_back(id);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains_key(id)
    }

    /// Late bytes for a closed stream: `None` when the id is not recent,
    /// `Some(false)` once they pass the allowance (a client that keeps
    /// sending to a closed stream costs CPU at line rate).
    fn spend_late(&mut self, id: &str, n: usize) -> Option<bool> {
        let left = self.set.get_mut(id)?;
        match left.checked_sub(n as u64) {
            Some(rest) => {
                *left = rest;
                Some(true)
            }
            None => {
                *left = 0;
                Some(false)
            }
        }
    }
}

/// One established session's protocol state.
pub struct Session {
    params: SessionParams,
    streams: HashMap<StreamId, Entry>,
    recent: RecentIds,
    violations: u32,
    draining: bool,
    closed: bool,
    next_serial: u64,
    /// Bounded by the input that caused them: a handful per message read,
    /// one abort per open stream on close.
    actions: VecDeque<Action>,
    /// When the client last sent useful traffic (see [`SessionParams::idle_timeout`]).
    last_rx: Instant,
    pings: PingBudget,
    /// A keepalive ping went out since `last_rx`.
    pinged: bool,
    /// Set by [`Session::begin_drain`]: open streams end at this instant.
    drain_deadline: Option<Instant>,
    /// The session's receive window (`flow_control`).
    recv: Option<RecvWindow>,
}

impl Session {
    /// A session that has just sent `ready` at `now`.
    pub fn new(params: SessionParams, now: Instant) -> Self {
        let recent = RecentIds {
            cap: params.recently_closed,
            order: VecDeque::new(),
            set: HashMap::new(),
            late_allowance: params.windows.max_stream_window,
        };
        Session {
            streams: HashMap::new(),
            recent,
            violations: 0,
            draining: false,
            closed: false,
            next_serial: 0,
            actions: VecDeque::new(),
            last_rx: now,
            pings: PingBudget::new(params.pings, now),
            pinged: false,
            drain_deadline: None,
            recv: params.flow_control.then(|| {
                RecvWindow::session(INITIAL_SESSION_WINDOW, params.windows.max_session_window)
            }),
            params,
        }
    }

    /// When [`Session::handle_timeout`] must run next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let idle = self.params.idle_timeout;
        // Keepalive: ping at half the idle timeout, close at the full one.
        let keepalive = if self.pinged {
            self.last_rx + idle
        } else {
            self.last_rx + idle / 2
        };
        Some(match self.drain_deadline {
            Some(drain) => keepalive.min(drain),
            None => keepalive,
        })
    }

    /// The timer fired: ping an idle client, close a silent one, end the drain.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.drain_deadline.is_some_and(|d| now >= d) {
            self.shutdown();
            return;
        }
        let idle = self.params.idle_timeout;
        if self.pinged && now >= self.last_rx + idle {
            self.close(close_code::NORMAL, "idle timeout");
        } else if !self.pinged && now >= self.last_rx + idle / 2 {
            self.pinged = true;
            self.actions.push_back(Action::Send(Frame::Ping));
        }
    }

    /// Records that the client was heard from.
    fn heard(&mut self, now: Instant) {
        self.last_rx = now;
        self.pinged = false;
    }

    /// A draining session whose last stream ended closes at once.
    fn check_drained(&mut self) {
        if self.draining && self.streams.is_empty() {
            self.shutdown();
        }
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Streams currently open (dialing or connected).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Whether a [`Action::Close`] was emitted; later inputs are ignored.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether [`Session::begin_drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// A WebSocket text message from the client.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        if self.closed {
            return;
        }
        match decode_limited(text, self.params.max_frame_len) {
            Ok(frame) => self.handle_frame(now, frame),
            Err(err) => self.handle_decode_error(now, err),
        }
        self.check_drained();
    }

    /// A WebSocket ping (the WebSocket layer answers it): spends the ping
    /// budget, never counts as useful traffic.
    pub fn handle_ping(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if !self.pings.take(now) {
            self.violation();
        }
    }

    /// A WebSocket pong: useful only as the answer to our keepalive.
    pub fn handle_pong(&mut self, now: Instant) {
        if self.pinged {
            self.heard(now);
        }
    }

    /// A binary WebSocket message: a `stream_data` when the `binary_data`
    /// extension was negotiated, a violation otherwise.
    pub fn handle_binary_message(&mut self, now: Instant, message: &[u8]) {
        if self.closed {
            return;
        }
        if !self.params.binary_data {
            self.handle_binary();
            return;
        }
        self.heard(now);
        match decode_binary_frame(message, self.params.max_frame_len) {
            Ok(frame) => self.handle_frame(now, frame),
            Err(err) => self.handle_decode_error(now, err),
        }
        self.check_drained();
    }

    /// A binary WebSocket message outside the `binary_data` extension: the
    /// contract allows text only.
    pub fn handle_binary(&mut self) {
        if self.closed {
            return;
        }
        self.send_error(ErrorCode::BadFrame, "binary messages are not frames", None);
        self.violation();
    }

    /// A message the WebSocket layer refused as too large before we saw it.
    pub fn handle_oversized(&mut self) {
        if self.closed {
            return;
        }
        let msg = format!("message over the {}-byte limit", self.params.max_frame_len);
        self.send_error(ErrorCode::BadFrame, &msg, None);
        self.close(close_code::TOO_BIG, "message too big");
    }

    /// A stream's task ended on its own (dial failure, upstream EOF or error).
    pub fn handle_stream_end(&mut self, id: &str, serial: u64, end: StreamEnd) {
        if self.closed || !self.is_current(id, serial) {
            return;
        }
        self.end_stream(id, end.reason, end.error.as_deref());
        self.check_drained();
    }

    /// The upstream of a stream did not make room in time.
    pub fn handle_stall(&mut self, id: &str, serial: u64, waited_ms: u128) {
        if self.closed || !self.is_current(id, serial) {
            return;
        }
        let msg = format!("upstream did not accept data within {waited_ms} ms; stream ended");
        self.end_stream(id, CloseReason::SlowUpstream, Some(&msg));
        self.check_drained();
    }

    /// Shutdown began at `now`: refuse new streams, let open ones run until
    /// the drain timeout, close at once when none is open.
    pub fn begin_drain(&mut self, now: Instant) {
        if self.draining || self.closed {
            return;
        }
        self.draining = true;
        self.drain_deadline = Some(now + self.params.drain_timeout);
        self.check_drained();
    }

    /// The drain is over: end what is still open and close with 1001.
    pub fn shutdown(&mut self) {
        if self.closed {
            return;
        }
        let mut ids: Vec<StreamId> = self.streams.keys().cloned().collect();
        ids.sort();
        for id in ids {
            self.end_stream(&id, CloseReason::Shutdown, None);
        }
        self.close(close_code::GOING_AWAY, "gateway shutting down");
    }

    /// Ends every stream without frames (the connection is gone or closing).
    pub fn abort_all(&mut self) {
        let ids: Vec<StreamId> = self.streams.drain().map(|(id, _)| id).collect();
        for id in ids {
            self.actions.push_back(Action::Abort { id });
        }
    }

    fn is_current(&self, id: &str, serial: u64) -> bool {
        self.streams.get(id).is_some_and(|e| e.serial == serial)
    }

    fn handle_frame(&mut self, now: Instant, frame: Frame<'_>) {
        match &frame {
            Frame::Ping | Frame::Pong => {}
            _ => self.heard(now),
        }
        match frame {
            Frame::Ping => {
                if self.pings.take(now) {
                    self.actions.push_back(Action::Send(Frame::Pong));
                } else {
                    self.violation();
                }
            }
            Frame::Pong => self.handle_pong(now),
            Frame::StreamOpen { stream_id, target } => self.handle_open(&stream_id, &target),
            Frame::StreamData { stream_id, data } => self.handle_data(now, &stream_id, data),
            Frame::StreamClose { stream_id, .. } => self.handle_close(&stream_id),
            Frame::StreamShutdown { stream_id } => self.handle_shutdown(&stream_id),
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => self.handle_window_update(stream_id.as_deref(), increment),
            Frame::Hello { .. } => {
                // Choice: a second hello is a violation, not fatal; the session goes on.
                self.send_error(ErrorCode::BadHello, "session already established", None);
                self.violation();
            }
            Frame::Ready { .. } | Frame::StreamReady { .. } => {
                self.send_error(ErrorCode::Unsupported, "that is a gateway frame", None);
                self.violation();
            }
            // A client may report an error; there is nothing to answer.
            Frame::Error { .. } => {}
        }
    }

    fn handle_decode_error(&mut self, now: Instant, err: DecodeError) {
        match &err {
            // Frame types of a later version are answered and end nothing
            // (the contract), within the ping budget: each costs an answer.
            DecodeError::UnknownType(_) => {
                if self.pings.take(now) {
                    self.send_error(err.code(), &err.to_string(), None);
                } else {
                    self.violation();
                }
            }
            DecodeError::TooLarge { .. } => {
                self.send_error(ErrorCode::BadFrame, &err.to_string(), None);
                self.close(close_code::TOO_BIG, "message too big");
            }
            DecodeError::BadStream { .. } => {
                let id = err.stream_id().map(str::to_owned);
                let open = id
                    .as_deref()
                    .is_some_and(|id| self.streams.contains_key(id));
                let reason = open.then_some(CloseReason::BadStream);
                self.send_error_with(
                    ErrorCode::BadStream,
                    &err.to_string(),
                    id.as_deref(),
                    reason,
                );
                if let Some(id) = id.filter(|_| open) {
                    self.end_stream(&id, CloseReason::BadStream, None);
                }
                self.violation();
            }
            _ => {
                self.send_error(err.code(), &err.to_string(), None);
                self.violation();
            }
        }
    }

    fn check_id(&mut self, id: &str) -> bool {
        if id.is_empty() || id.len() > self.params.max_stream_id_len {
            let msg = format!(
                "stream_id must be 1 to {} bytes",
                self.params.max_stream_id_len
            );
            // An overlong id is not echoed back: it could be most of a frame.
            let echo = (!id.is_empty() && id.len() <= self.params.max_stream_id_len).then_some(id);
            self.send_error(ErrorCode::BadStream, &msg, echo);
            self.violation();
            return false;
        }
        true
    }

    fn handle_open(&mut self, id: &str, target: &str) {
        if !self.check_id(id) {
            return;
        }
        if self.streams.contains_key(id) {
            self.send_error(ErrorCode::StreamError, "duplicate stream id", Some(id));
            self.violation();
            return;
        }
        if self.recent.contains(id) {
            self.refuse_reused(id);
            return;
        }
        if self.draining {
            let shutdown = Some(CloseReason::Shutdown);
            self.send_error_with(
                ErrorCode::StreamError,
                "gateway is shutting down",
                Some(id),
                shutdown,
            );
            self.send_close(id, CloseReason::Shutdown);
            return;
        }
        if self.streams.len() >= self.params.max_streams as usize {
            let msg = format!("stream limit ({}) reached", self.params.max_streams);
            let limit = Some(CloseReason::Limit);
            self.send_error_with(ErrorCode::StreamError, &msg, Some(id), limit);
            self.send_close(id, CloseReason::Limit);
            self.violation();
            return;
        }
        let id: StreamId = Arc::from(id);
        self.next_serial += 1;
        let recv = self
            .params
            .flow_control
            .then(|| RecvWindow::new(INITIAL_STREAM_WINDOW, self.params.windows.max_stream_window));
        self.streams.insert(
            id.clone(),
            Entry {
                serial: self.next_serial,
                header: Some(Vec::new()),
                recv,
            },
        );
        self.actions.push_back(Action::Open {
            id,
            target: target.to_owned(),
        });
    }

    /// A `stream_open` for an id that ended recently. Contract: "ids are
    /// never reused within a session". The old stream may still linger — its
    /// upstream flushing after a client close, its task reporting its end —
    /// and every late frame for the id is being dropped quietly as belonging
    /// to it, so the new stream gets no slot: a `bad_stream` error (a stream
    /// frame that breaks the id rules, like an id of the wrong length in
    /// `check_id`) and a `stream_close` with the same reason,
    /// so the client's attempt ends; the id stays remembered as closed and the
    /// old stream's state is untouched.
    fn refuse_reused(&mut self, id: &str) {
        let msg = "stream id reused: that stream was closed recently";
        let reason = Some(CloseReason::BadStream);
        self.send_error_with(ErrorCode::BadStream, msg, Some(id), reason);
        self.send_close(id, CloseReason::BadStream);
        self.violation();
    }

    fn handle_data(&mut self, now: Instant, id: &str, data: Vec<u8>) {
        let Some(id) = self.streams.get_key_value(id).map(|(k, _)| k.clone()) else {
            match self.recent.spend_late(id, data.len()) {
                // Late bytes for a stream that ended still used session credit.
                Some(true) => {
                    if self.recv.is_some() && self.receive(id, data.len()).is_ok() {
                        self.release(data.len() as u64, now);
                    }
                }
                Some(false) => {
                    let msg = "data for a closed stream, past what could have been in flight";
                    self.send_error(ErrorCode::StreamError, msg, Some(id));
                    self.violation();
                }
                None => self.unknown_stream(id),
            }
            return;
        };
        let entry = self.streams.get_mut(&*id).expect("looked up just above");
        let serial = entry.serial;
        if entry.header.is_none() {
            // The address header costs no credit; everything after it does.
            if let Err(violation) = self.receive(&id, data.len()) {
                self.flow_violation(&id, violation);
                return;
            }
            self.actions.push_back(Action::Forward { id, serial, data });
            return;
        }
        let Some(header) = entry.header.as_mut() else {
            unreachable!("checked just above");
        };
        // The header may arrive split over frames. Until it is complete,
        // `header` holds less than MAX_HEADER_LEN bytes plus one frame.
        let parsed = if header.is_empty() {
            // Common case: the whole header is in the first frame; no copy.
            match TargetAddr::decode(&data) {
                Ok(Some((target, used))) => {
                    let mut rest = data;
                    rest.drain(..used);
                    Ok(Some((target, rest)))
                }
                Ok(None) => {
                    *header = data;
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        } else {
            header.extend_from_slice(&data);
            match TargetAddr::decode(header) {
                Ok(Some((target, used))) => {
                    let mut rest = std::mem::take(header);
                    rest.drain(..used);
                    Ok(Some((target, rest)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        };
        match parsed {
            Ok(Some((target, initial))) => {
                entry.header = None;
                if let Err(violation) = self.receive(&id, initial.len()) {
                    self.flow_violation(&id, violation);
                    return;
                }
                self.actions.push_back(Action::Dial {
                    id,
                    serial,
                    target,
                    initial,
                });
            }
            Ok(None) => debug_assert!(header_len_ok(entry)),
            Err(e) => {
                let msg = format!("malformed address header: {e}");
                let reason = Some(CloseReason::BadStream);
                self.send_error_with(ErrorCode::BadStream, &msg, Some(&id), reason);
                self.end_stream(&id, CloseReason::BadStream, None);
                self.violation();
            }
        }
    }

    fn handle_close(&mut self, id: &str) {
        if let Some((id, entry)) = self.streams.remove_entry(id) {
            self.forget(&entry);
            self.recent.insert(id.clone());
            self.actions.push_back(Action::Finish { id });
        } else {
            self.unknown_stream(id);
        }
    }

    fn handle_shutdown(&mut self, id: &str) {
        match self.streams.get_key_value(id) {
            Some((id, _)) => {
                let id = id.clone();
                self.actions.push_back(Action::ShutdownWrite { id });
            }
            None => self.unknown_stream(id),
        }
    }

    fn unknown_stream(&mut self, id: &str) {
        // Contract: "Frames that arrive for a stream already closed are dropped quietly."
        if self.recent.contains(id) || !self.check_id(id) {
            return;
        }
        self.send_error(ErrorCode::StreamError, "unknown stream", Some(id));
        self.violation();
    }

    /// Ends an open stream from the gateway's side: abort, optional error, close.
    fn end_stream(&mut self, id: &str, reason: CloseReason, error: Option<&str>) {
        let Some((id, entry)) = self.streams.remove_entry(id) else {
            return;
        };
        self.forget(&entry);
        self.recent.insert(id.clone());
        self.actions.push_back(Action::Abort { id: id.clone() });
        if let Some(msg) = error {
            self.send_error_with(ErrorCode::StreamError, msg, Some(&id), Some(reason));
        }
        self.send_close(&id, reason);
    }

    fn send_close(&mut self, id: &str, reason: CloseReason) {
        self.actions.push_back(Action::Send(Frame::StreamClose {
            stream_id: Cow::Owned(id.to_owned()),
            reason: Some(Cow::Borrowed(reason.as_str())),
        }));
    }

    fn send_error(&mut self, code: ErrorCode, message: &str, stream_id: Option<&str>) {
        self.send_error_with(code, message, stream_id, None);
    }

    /// An error frame; `reason` repeats the `stream_close` reason that follows.
    fn send_error_with(
        &mut self,
        code: ErrorCode,
        message: &str,
        stream_id: Option<&str>,
        reason: Option<CloseReason>,
    ) {
        self.actions.push_back(Action::Send(Frame::Error {
            code,
            message: Cow::Owned(message.to_owned()),
            stream_id: stream_id.map(|s| Cow::Owned(s.to_owned())),
            reason: reason.map(|r| Cow::Borrowed(r.as_str())),
        }));
    }

    fn violation(&mut self) {
        self.violations += 1;
        if self.violations > self.params.max_violations {
            self.close(close_code::POLICY, "too many protocol violations");
        }
    }

    fn close(&mut self, code: u16, reason: &'static str) {
        if self.closed {
            return;
        }
        self.abort_all();
        self.closed = true;
        self.actions.push_back(Action::Close { code, reason });
    }
}

fn header_len_ok(entry: &Entry) -> bool {
    entry
        .header
        .as_ref()
        .is_some_and(|h| h.len() < MAX_HEADER_LEN)
}

mod credit;
mod handshake;
mod pings;
pub use handshake::{Handshake, HandshakeReject, Hello, check_hello};
use pings::PingBudget;
pub use pings::PingLimit;

#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod tests;
