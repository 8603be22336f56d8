//! The client side of a session as a sans-IO state machine.
//!
//! [`Client`] owns every rule the client must keep: the `hello` → `ready`
//! handshake and its deadline, extension negotiation, the stream-id rules
//! ([`ClientStreams`]), keepalive pings and "dead after silence", answering
//! the gateway's pings, and how each `stream_close`, stream-scoped `error`,
//! session `error` or unreadable frame ends a stream or the session. It opens
//! no socket and never reads the clock; a driver feeds it and carries out
//! what it asks, in the manner of `quinn-proto`'s `Connection`:
//!
//! ```text
//!   driver                               Client
//!   ──────                               ──────
//!   WebSocket text/binary/close ──► handle_text / handle_binary / handle_close
//!   app: open, write, shutdown  ──► open_stream / send_data / shutdown_stream
//!   timer fired                 ──► handle_timeout(now)
//!   WebSocket writer            ◄── poll_transmit   (frames, in order)
//!   streams and the app         ◄── poll_event      (ready, stream ended, closed)
//!   timer                       ◄── poll_timeout    (re-arm when it changes)
//! ```
//!
//! After every input the driver drains [`Client::poll_transmit`] and
//! [`Client::poll_event`], then re-arms its timer from
//! [`Client::poll_timeout`].
//!
//! Stream bytes from the gateway are not queued as events: `handle_text` and
//! `handle_binary` hand them straight back as [`StreamData`], and for a
//! binary message only as an offset into the message the driver already
//! holds. That keeps the hot path free of a copy (the driver slices its own
//! shared buffer) at the cost of one more return value to look at.
//!
//! Frames leave in the order of a [`FairQueue`]: control frames (`hello`,
//! `stream_open`, pings, pongs, `window_update`s) before any stream's
//! frames, and the streams' frames round-robin, each stream's in order, so
//! its `stream_close` follows its last data.
//!
//! Memory is bounded without the driver ever having to stop reading:
//! data frames queued by [`Client::send_data`] stop at
//! [`Config::send_queue_frames`] for the session and
//! [`Config::stream_queue_frames`] per stream (the call returns
//! [`CommandError::Blocked`] and the driver waits for its writer); the
//! answers to what is read are coalesced (one `pong` however many pings
//! arrived, one pending `window_update` per window); the rest answers a
//! bounded cause (one `stream_open` + header and one `stream_close` per
//! stream, one keepalive `ping` per interval).
//!
//! With the `flow_control` extension (see [`crate::flow`]) the machine also
//! keeps the credit windows: [`Client::reserve_data`] sends no more than the
//! gateway granted, received bytes are checked against what this side
//! granted, and [`Client::consumed`] grants more as the application reads.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::TargetAddr;
use crate::binary::{MAX_BINARY_STREAM_ID_LEN, decode_binary_limited, encode_binary_stream_data};
use crate::error::{DecodeError, ErrorCode};
use crate::fair::FairQueue;
use crate::frame::{
    Frame, PROTOCOL_VERSION, SessionToken, decode_limited, encode_stream_data, encode_to_string,
};
use crate::streams::ClientStreams;
use credit::Flow;

mod config;
mod credit;
mod event;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod tests;

pub use config::{Config, Features, SessionInfo};
pub use event::{
    CloseReason, CommandError, Event, Payload, ProtocolError, StreamData, StreamEnd, Transmit,
};

enum State {
    AwaitingReady { deadline: Instant },
    Established(Established),
    Closed(CloseReason),
}

struct Established {
    info: SessionInfo,
    rules: ClientStreams,
    /// The last session-level `error`: it names the close if the connection
    /// ends next.
    pending_error: Option<(ErrorCode, String)>,
    /// The credit windows, when `flow_control` was agreed (boxed: most of
    /// the session's state, absent without the extension).
    flow: Option<Box<Flow>>,
}

impl Established {
    fn new(info: SessionInfo, config: &Config) -> Established {
        Established {
            rules: ClientStreams::new(info.max_streams),
            flow: info
                .features
                .flow_control
                .then(|| Box::new(Flow::new(config))),
            info,
            pending_error: None,
        }
    }
}

/// Room for one data frame, from [`Client::reserve_data`]: how many bytes of
/// the write it carries and how it is spelled.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reserved slot holds a place in the send queue until it is queued"]
pub struct DataSlot {
    len: usize,
    binary: bool,
}

impl DataSlot {
    /// How many bytes of the write the frame carries (0 for an empty write,
    /// which queues nothing).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the write was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Encodes the frame for the first [`DataSlot::len`] bytes of `data` on
    /// `stream_id`: a binary message with `binary_data`, the contract's JSON
    /// otherwise (and for ids too long for the binary form).
    pub fn encode(&self, stream_id: &str, data: &[u8]) -> Transmit {
        let data = &data[..self.len.min(data.len())];
        if self.binary {
            let mut message = Vec::new();
            encode_binary_stream_data(stream_id, data, &mut message);
            Transmit::Binary(message)
        } else {
            let mut text = String::new();
            encode_stream_data(stream_id, data, &mut text);
            Transmit::Text(text)
        }
    }
}

/// One client session's protocol state (see the module doc).
pub struct Client {
    config: Config,
    state: State,
    /// Frames for the gateway; the flag marks data frames, which count
    /// against [`Config::send_queue_frames`].
    transmits: FairQueue<(Transmit, bool)>,
    queued_data: usize,
    /// A `pong` is owed (several pings read before the writer ran need one).
    pong_due: bool,
    /// Credit to grant, per stream (`None`: the session's), merged until
    /// the writer takes it.
    updates: Vec<(Option<String>, u64)>,
    /// When the keepalive ping now in flight was queued.
    ping_sent: Option<Instant>,
    /// Smoothed round-trip time, from keepalive pings.
    srtt: Duration,
    /// Bounded: each event answers one input (one per frame read, one per
    /// stream end, one close).
    events: VecDeque<Event>,
    last_rx: Instant,
    next_ping: Instant,
    /// A probe in flight: when it was sent and how long the gateway has to
    /// answer it (see [`Client::probe`]).
    probe: Option<(Instant, Duration)>,
    /// Pongs received: the probe is answered by a pong that comes after
    /// its ping went out (other bytes still arriving from before the path
    /// broke are no answer). A gateway answers every ping it read with one
    /// pong, so only a pong already in flight when the probe started can
    /// be taken for the answer; the keepalive then still notices.
    pongs_received: u64,
    /// The pongs received when the unanswered probe's ping went out.
    pongs_at_probe: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::AwaitingReady { .. } => "awaiting_ready",
            State::Established(_) => "established",
            State::Closed(_) => "closed",
        };
        f.debug_struct("Client")
            .field("state", &state)
            .field("queued", &self.queued_transmits())
            .finish()
    }
}

impl Client {
    /// Starts a session: queues `hello` with `token` and waits for `ready`
    /// until `now + handshake_timeout`.
    pub fn new(config: Config, token: &str, now: Instant) -> Client {
        let hello = Frame::Hello {
            session_token: SessionToken(token.into()),
            version: PROTOCOL_VERSION.into(),
            client: config.client_name.as_str().into(),
            features: config.offer.names().into_iter().map(Into::into).collect(),
        };
        let hello = encode_to_string(&hello);
        let deadline = now + config.handshake_timeout;
        let mut client = Client::with_state(config, State::AwaitingReady { deadline }, now);
        client.queue_control(hello);
        client
    }

    /// A session whose handshake a driver already completed on its own
    /// (for drivers that dial and handshake in one step). `info.features`
    /// must already be the agreed set.
    pub fn established(config: Config, info: SessionInfo, now: Instant) -> Client {
        let state = State::Established(Established::new(info, &config));
        Client::with_state(config, state, now)
    }

    fn with_state(config: Config, state: State, now: Instant) -> Client {
        let next_ping = now + config.keepalive_interval;
        let srtt = config.initial_rtt;
        Client {
            config,
            state,
            transmits: FairQueue::new(),
            queued_data: 0,
            pong_due: false,
            updates: Vec::new(),
            ping_sent: None,
            probe: None,
            pongs_received: 0,
            pongs_at_probe: 0,
            srtt,
            events: VecDeque::new(),
            last_rx: now,
            next_ping,
        }
    }

    // ---- getters ----

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What `ready` granted, once it arrived.
    pub fn session_info(&self) -> Option<&SessionInfo> {
        match &self.state {
            State::Established(e) => Some(&e.info),
            _ => None,
        }
    }

    /// Whether `ready` arrived and the session is not over.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Streams open now (0 before `ready`).
    pub fn open_streams(&self) -> usize {
        match &self.state {
            State::Established(e) => e.rules.open_count(),
            _ => 0,
        }
    }

    /// Whether `stream_id` is open.
    pub fn is_open(&self, stream_id: &str) -> bool {
        match &self.state {
            State::Established(e) => e.rules.is_open(stream_id),
            _ => false,
        }
    }

    /// Frames waiting for [`Client::poll_transmit`].
    pub fn queued_transmits(&self) -> usize {
        self.transmits.len() + usize::from(self.pong_due) + self.updates.len()
    }

    /// Bytes received on `stream_id` that the application has not consumed
    /// (`flow_control`); `None` without the extension or for a closed stream.
    pub fn stream_buffered(&self, stream_id: &str) -> Option<u64> {
        let State::Established(Established { flow: Some(f), .. }) = &self.state else {
            return None;
        };
        f.streams.get(stream_id).map(|s| s.recv.buffered())
    }

    // ---- outputs ----

    /// The next message to send: control frames, owed pongs and window
    /// updates first, then the streams' frames in turn.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.control_len() == 0 {
            if std::mem::take(&mut self.pong_due) {
                return Some(Transmit::Text(encode_to_string(&Frame::Pong)));
            }
            if let Some((stream_id, increment)) = self.updates.pop() {
                let update = Frame::WindowUpdate {
                    stream_id: stream_id.map(Cow::Owned),
                    increment,
                };
                return Some(Transmit::Text(encode_to_string(&update)));
            }
        }
        let (transmit, data) = self.transmits.pop()?;
        if data {
            self.queued_data -= 1;
        }
        Some(transmit)
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::AwaitingReady { deadline } => Some(*deadline),
            State::Established(_) => Some(self.next_ping.min(self.dead_at())),
            State::Closed(_) => None,
        }
    }

    fn dead_at(&self) -> Instant {
        let silent = self.last_rx + self.config.dead_after;
        match self.unanswered_probe() {
            Some((sent, deadline)) => silent.min(sent + deadline),
            None => silent,
        }
    }

    /// The probe still waiting for the pong to its ping.
    fn unanswered_probe(&self) -> Option<(Instant, Duration)> {
        self.probe
            .filter(|_| self.pongs_received == self.pongs_at_probe)
    }

    /// Checks the gateway now, because the path to it may have changed
    /// (a new default route or address, a wake-up from sleep): a ping goes
    /// out at once and, unless its pong arrives within `deadline`, the
    /// session closes with [`CloseReason::KeepaliveTimeout`] of `deadline`
    /// instead of after the whole `dead_after`. Does nothing before the
    /// session is established or after it closed.
    pub fn probe(&mut self, now: Instant, deadline: Duration) {
        if !matches!(self.state, State::Established(_)) {
            return;
        }
        // A second probe before the first is answered keeps the first one's
        // start and the earlier end, and waits for its own ping's pong.
        self.probe = Some(match self.unanswered_probe() {
            Some((sent, earlier)) => (sent, earlier.min(now + deadline - sent)),
            None => (now, deadline),
        });
        self.pongs_at_probe = self.pongs_received;
        self.send_ping(now);
    }

    // ---- inputs ----

    /// The timer fired (early or late calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.state {
            State::AwaitingReady { deadline } if now >= *deadline => {
                let waited = self.config.handshake_timeout;
                self.close(CloseReason::HandshakeTimeout(waited));
            }
            State::Established(_) => {
                if now >= self.dead_at() {
                    let waited = match self.unanswered_probe() {
                        Some((sent, deadline)) if sent + deadline <= now => deadline,
                        _ => self.config.dead_after,
                    };
                    self.close(CloseReason::KeepaliveTimeout(waited));
                } else if now >= self.next_ping {
                    self.send_ping(now);
                    // Like a ticker that delays missed ticks: a late timer
                    // does not cause a burst of pings.
                    self.next_ping = now + self.config.keepalive_interval;
                }
            }
            _ => {}
        }
    }

    /// A WebSocket text message from the gateway. Returns the stream bytes it
    /// carried, if it was a `stream_data` for an open stream.
    pub fn handle_text<'a>(&mut self, now: Instant, text: &'a str) -> Option<StreamData<'a>> {
        if matches!(self.state, State::Closed(_)) {
            return None;
        }
        self.handle_decoded(now, decode_limited(text, self.config.max_frame_len))
    }

    /// A text message the driver already read with
    /// [`decode_limited`](crate::decode_limited) and [`Config::max_frame_len`]:
    /// the same as [`Client::handle_text`], for a driver that decodes (the
    /// costly part of a `stream_data`) before it takes the lock around the
    /// machine.
    pub fn handle_decoded<'a>(
        &mut self,
        now: Instant,
        decoded: Result<Frame<'a>, DecodeError>,
    ) -> Option<StreamData<'a>> {
        if matches!(self.state, State::Closed(_)) {
            return None;
        }
        self.last_rx = now;
        match decoded {
            Ok(frame) => self.handle_frame(now, frame),
            Err(e) => {
                self.handle_decode_error(e);
                None
            }
        }
    }

    /// A WebSocket binary message: a `stream_data` when `binary_data` was
    /// agreed, a protocol error otherwise. A [`Payload::InMessage`] result
    /// points into `message`.
    pub fn handle_binary<'a>(&mut self, now: Instant, message: &'a [u8]) -> Option<StreamData<'a>> {
        self.last_rx = now;
        let binary_data = match &self.state {
            State::Closed(_) => return None,
            State::AwaitingReady { .. } => {
                self.close(CloseReason::HandshakeFailed(
                    ProtocolError::UnexpectedBinary,
                ));
                return None;
            }
            State::Established(e) => e.info.features.binary_data,
        };
        if !binary_data {
            self.events
                .push_back(Event::Ignored(ProtocolError::UnexpectedBinary));
            return None;
        }
        match decode_binary_limited(message, self.config.max_frame_len) {
            Ok(read) => {
                let len = message.len() - read.payload_at;
                self.accept_data(now, read.stream_id, len)
                    .then_some(StreamData {
                        stream_id: Cow::Borrowed(read.stream_id),
                        payload: Payload::InMessage(read.payload_at),
                    })
            }
            Err(e) => {
                self.handle_decode_error(e);
                None
            }
        }
    }

    /// A WebSocket ping or pong: not a frame, but proof the gateway lives.
    pub fn handle_control(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// The gateway closed the WebSocket; `code` is `None` when the close
    /// frame carried none.
    pub fn handle_close(&mut self, code: Option<u16>, reason: &str) {
        let gateway = CloseReason::Gateway {
            code: code.unwrap_or(1005),
            reason: reason.to_owned(),
        };
        let reason = self.pending_error().unwrap_or(gateway);
        self.close(reason);
    }

    /// The connection failed or ended without a close frame.
    pub fn handle_transport_error(&mut self, error: &str) {
        let reason = self
            .pending_error()
            .unwrap_or_else(|| CloseReason::Transport(error.to_owned()));
        self.close(reason);
    }

    fn pending_error(&mut self) -> Option<CloseReason> {
        match &mut self.state {
            State::Established(e) => e
                .pending_error
                .take()
                .map(|(code, message)| CloseReason::SessionError { code, message }),
            _ => None,
        }
    }

    fn handle_frame<'a>(&mut self, now: Instant, frame: Frame<'a>) -> Option<StreamData<'a>> {
        let established = match &mut self.state {
            State::Closed(_) => return None,
            State::AwaitingReady { .. } => {
                self.handle_handshake_frame(frame);
                return None;
            }
            State::Established(e) => e,
        };
        match frame {
            Frame::StreamData { stream_id, data } => {
                return self
                    .accept_data(now, &stream_id, data.len())
                    .then_some(StreamData {
                        stream_id,
                        payload: Payload::Decoded(data),
                    });
            }
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => {
                let Some(flow) = &mut established.flow else {
                    self.events
                        .push_back(Event::Ignored(ProtocolError::UnexpectedFrame(
                            "window_update",
                        )));
                    return None;
                };
                let unblocked = match stream_id {
                    None => flow.send.grant(increment),
                    // An update for a stream that ended is late: dropped.
                    Some(id) => flow
                        .streams
                        .get_mut(id.as_ref())
                        .is_some_and(|s| s.send.grant(increment)),
                };
                if unblocked {
                    self.events.push_back(Event::Writable);
                }
            }
            Frame::StreamClose { stream_id, reason } => {
                let end = StreamEnd::Closed {
                    reason: reason.map(Cow::into_owned),
                };
                self.end_stream(&stream_id, end);
            }
            Frame::Error {
                code,
                message,
                stream_id: Some(stream_id),
                reason,
            } => {
                let end = StreamEnd::Error {
                    code,
                    message: message.into_owned(),
                    reason: reason.map(Cow::into_owned),
                };
                self.end_stream(&stream_id, end);
            }
            Frame::Error {
                code,
                message,
                stream_id: None,
                ..
            } => {
                let message = message.into_owned();
                established.pending_error = Some((code.clone(), message.clone()));
                self.events.push_back(Event::GatewayError { code, message });
            }
            Frame::StreamReady { stream_id } => {
                if established.rules.is_open(&stream_id) {
                    self.events.push_back(Event::StreamReady {
                        stream_id: stream_id.into_owned(),
                    });
                }
            }
            Frame::Ping => self.pong_due = true,
            Frame::Pong => {
                self.pongs_received += 1;
                if let Some(sent) = self.ping_sent.take() {
                    let sample = now.saturating_duration_since(sent);
                    // RFC 6298's smoothing: one sample moves it by an eighth.
                    self.srtt = (self.srtt * 7 + sample) / 8;
                }
            }
            other @ (Frame::Hello { .. }
            | Frame::Ready { .. }
            | Frame::StreamOpen { .. }
            | Frame::StreamShutdown { .. }) => {
                self.events
                    .push_back(Event::Ignored(ProtocolError::UnexpectedFrame(other.kind())));
            }
        }
        None
    }

    fn handle_handshake_frame(&mut self, frame: Frame<'_>) {
        match frame {
            Frame::Ready {
                session_id,
                max_streams,
                features,
            } => {
                let accepted = Features::from_names(features.iter().map(|f| f.as_ref()));
                let info = SessionInfo {
                    session_id: session_id.into_owned(),
                    max_streams,
                    features: self.config.offer.intersect(accepted),
                };
                let flow_control = info.features.flow_control;
                self.state = State::Established(Established::new(info.clone(), &self.config));
                self.events.push_back(Event::Connected(info));
                // Keepalive starts with the session; `last_rx` is this message.
                self.next_ping = self.last_rx + self.config.keepalive_interval;
                if flow_control {
                    // One ping now measures the round trip the windows grow by.
                    self.send_ping(self.last_rx);
                }
            }
            Frame::Error { code, message, .. } => self.close(CloseReason::Refused {
                code,
                message: message.into_owned(),
            }),
            // The gateway may ping while the backend validates the token.
            Frame::Ping => self.pong_due = true,
            other => self.close(CloseReason::HandshakeFailed(
                ProtocolError::UnexpectedFrame(other.kind()),
            )),
        }
    }

    fn handle_decode_error(&mut self, e: DecodeError) {
        if matches!(self.state, State::AwaitingReady { .. }) {
            self.close(CloseReason::HandshakeFailed(e.into()));
            return;
        }
        if let DecodeError::TooLarge { .. } = e {
            // Contract: a receiver rejects bigger frames; the session cannot
            // trust the peer's framing after one.
            self.close(CloseReason::Protocol(e.into()));
            return;
        }
        match e.stream_id().map(str::to_owned) {
            Some(id) if self.is_open(&id) => {
                self.end_stream(&id, StreamEnd::Malformed(e.to_string()));
                // The gateway still thinks the stream is open: tell it.
                self.queue_close(&id, Some("bad_stream"));
            }
            _ => self.events.push_back(Event::Ignored(e.into())),
        }
    }

    fn end_stream(&mut self, id: &str, end: StreamEnd) {
        if let State::Established(e) = &mut self.state
            && e.rules.close(id)
        {
            self.forget_flow(id);
            self.events.push_back(Event::StreamClosed {
                stream_id: id.to_owned(),
                end,
            });
        }
    }

    // ---- application commands ----

    fn established_mut(&mut self) -> Result<&mut Established, CommandError> {
        match &mut self.state {
            State::Established(e) => Ok(e),
            State::AwaitingReady { .. } => Err(CommandError::NotReady),
            State::Closed(reason) => Err(CommandError::Closed(reason.clone())),
        }
    }

    /// Opens a stream to `target` with `id` (the next `sN` when `None`) and
    /// queues `stream_open` and the address header right away, so protocols
    /// where the server speaks first work. Past `max_streams`: `stream_limit`,
    /// nothing queued.
    pub fn open_stream(
        &mut self,
        id: Option<&str>,
        target: &TargetAddr,
    ) -> Result<String, CommandError> {
        let id = self.established_mut()?.rules.open(id)?;
        let open = Frame::StreamOpen {
            stream_id: id.as_str().into(),
            target: target.to_string().into(),
        };
        let mut header = Vec::with_capacity(target.header_len());
        target.encode(&mut header);
        let mut header_text = String::new();
        encode_stream_data(&id, &header, &mut header_text);
        if let State::Established(Established { flow: Some(f), .. }) = &mut self.state {
            f.open(&id, &self.config);
        }
        // The open overtakes data (control); the header, the stream's first
        // frame, takes its lane (the address header costs no credit).
        self.queue_control(encode_to_string(&open));
        self.transmits
            .push_stream(&id, (Transmit::Text(header_text), false));
        Ok(id)
    }

    /// Queues one data frame with the first bytes of `data` (at most one
    /// chunk, see [`Config::chunk_for`]); returns how many it took. Empty
    /// data queues nothing.
    pub fn send_data(&mut self, stream_id: &str, data: &[u8]) -> Result<usize, CommandError> {
        let slot = self.reserve_data(stream_id, data.len())?;
        let n = slot.len();
        let transmit = slot.encode(stream_id, data);
        self.queue_data(stream_id, slot, transmit);
        Ok(n)
    }

    /// The first half of [`Client::send_data`]: checks the stream and takes
    /// one place in the send queue for a frame carrying the first
    /// [`DataSlot::len`] of `len` bytes. The caller encodes with
    /// [`DataSlot::encode`] (which needs no machine, so a driver can do it
    /// outside its lock) and must hand the result to [`Client::queue_data`]:
    /// the slot holds its place until then.
    pub fn reserve_data(&mut self, stream_id: &str, len: usize) -> Result<DataSlot, CommandError> {
        let queue_full = self.queued_data >= self.config.send_queue_frames.max(1)
            || self.transmits.stream_len(stream_id) >= self.config.stream_queue_frames.max(1);
        let chunk = self.config.chunk_for(stream_id.len());
        let established = self.established_mut()?;
        established.rules.check_open(stream_id)?;
        let binary =
            established.info.features.binary_data && stream_id.len() <= MAX_BINARY_STREAM_ID_LEN;
        if len == 0 {
            return Ok(DataSlot { len: 0, binary });
        }
        if queue_full {
            return Err(CommandError::Blocked);
        }
        let mut len = len.min(chunk);
        if let Some(flow) = &mut established.flow {
            let stream = flow
                .streams
                .get_mut(stream_id)
                .expect("open streams have windows");
            len = flow.send.allow(stream.send.allow(len));
            if len == 0 {
                // Woken by `Event::Writable` when the gateway grants more.
                return Err(CommandError::Blocked);
            }
            stream.send.spend(len);
            flow.send.spend(len);
        }
        self.queued_data += 1;
        Ok(DataSlot { len, binary })
    }

    /// The second half of [`Client::send_data`]: queues the frame encoded
    /// for `slot`. When the stream or the session ended in between, the
    /// frame is dropped (as the gateway would drop it) and the place freed.
    pub fn queue_data(&mut self, stream_id: &str, slot: DataSlot, transmit: Transmit) {
        if slot.len == 0 {
            return;
        }
        if self.is_open(stream_id) {
            self.transmits.push_stream(stream_id, (transmit, true));
        } else {
            self.queued_data -= 1;
            // Never sent: the session's credit comes back (the stream's
            // went with it).
            if let State::Established(Established { flow: Some(f), .. }) = &mut self.state {
                f.send.refund(slot.len);
            }
        }
    }

    /// The application finished writing on a stream. Returns `true` when
    /// `stream_shutdown` was queued (`half_close` agreed), `false` when the
    /// gateway cannot half-close and the caller must decide when to close.
    pub fn shutdown_stream(&mut self, stream_id: &str) -> Result<bool, CommandError> {
        let established = self.established_mut()?;
        established.rules.check_open(stream_id)?;
        if !established.info.features.half_close {
            return Ok(false);
        }
        let shutdown = encode_to_string(&Frame::StreamShutdown {
            stream_id: stream_id.into(),
        });
        self.transmits
            .push_stream(stream_id, (Transmit::Text(shutdown), false));
        Ok(true)
    }

    /// Ends a stream from this side (dropped, closed, or its reader too slow)
    /// and queues `stream_close` with `reason`. Returns whether it was open;
    /// a stream the gateway already ended needs no frame.
    pub fn close_stream(&mut self, stream_id: &str, reason: Option<&str>) -> bool {
        let Ok(established) = self.established_mut() else {
            return false;
        };
        if !established.rules.close(stream_id) {
            return false;
        }
        self.forget_flow(stream_id);
        self.queue_close(stream_id, reason);
        true
    }

    /// Ends the session from this side. Queued frames stay queued so a
    /// driver may still flush them before closing the WebSocket.
    pub fn close_session(&mut self) {
        self.close(CloseReason::Local);
    }

    fn close(&mut self, reason: CloseReason) {
        if matches!(self.state, State::Closed(_)) {
            return;
        }
        self.state = State::Closed(reason.clone());
        self.events.push_back(Event::SessionClosed(reason));
    }

    fn queue_control(&mut self, text: String) {
        self.transmits.push_control((Transmit::Text(text), false));
    }

    /// Queues `stream_close` behind the stream's queued frames (what the
    /// application wrote before it closed still arrives) and ahead of any
    /// later `stream_open`: the slot it frees may be taken at once, and the
    /// gateway must never see more than `max_streams` open.
    fn queue_close(&mut self, stream_id: &str, reason: Option<&str>) {
        let close = encode_to_string(&Frame::StreamClose {
            stream_id: stream_id.into(),
            reason: reason.map(Into::into),
        });
        self.transmits.promote(stream_id);
        self.queue_control(close);
    }

    fn send_ping(&mut self, now: Instant) {
        self.queue_control(encode_to_string(&Frame::Ping));
        self.ping_sent = Some(now);
    }
}
