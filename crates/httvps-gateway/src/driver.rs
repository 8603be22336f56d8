//! The tokio side of a session: handshake, reader loop, writer task, streams.
//!
//! Task layout of one session:
//!
//! ```text
//!   client ──ws──► reader loop (this module) ──► Session (sans-IO) ──► actions
//!                     │  Forward: the stream's inbox (inbox.rs)
//!                     ▼
//!                 stream task ×N (stream.rs) ──► upstream (direct TCP or Shadowsocks)
//!                     │  stream_data, built in the task, within the client's credit
//!                     ▼
//!   client ◄──ws── writer task ◄── outbox (outbox.rs): control first, streams in turn
//! ```
//!
//! Every queue is bounded, and the reader never waits for the writer. With
//! `flow_control` it never waits for a stream either: an inbox holds at most
//! the window the session granted, grants follow what the task wrote
//! upstream ([`Written`]), and a stream task reads its upstream only as far
//! as the client's credit goes, so a slow upstream or a paused client reader
//! stalls only its own stream. Without the extension the reader waits at
//! most `stall` for room in one stream's inbox, then ends that stream, so a
//! slow upstream delays the others by at most that bound. A slow client
//! fills the stream lanes of the outbox, the tasks wait on them and stop
//! reading their upstreams: memory stays bounded and TCP pushes back on the
//! targets. A writer that makes no progress for `write` timeout ends the
//! session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use proto_httvps::binary::{MAX_BINARY_STREAM_ID_LEN, max_binary_payload_len};
use proto_httvps::flow::{INITIAL_SESSION_WINDOW, INITIAL_STREAM_WINDOW};
use proto_httvps::{ErrorCode, Frame, MAX_FRAME_LEN, encode, max_payload_len};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, info, warn};

use server_kit::admission::Ticket;

use crate::Shared;
use crate::auth::AuthError;
use crate::inbox::{Credit, Inbox, StreamCredit, Written};
use crate::metrics::{self as m, StreamMetrics};
use crate::outbox::Outbox;
use crate::session::{Action, Handshake, Session, SessionParams, StreamId, close_code};
use crate::stream::{StreamCtx, StreamEvent, stream_task};
use crate::upstream::{self, UpstreamMode};
use crate::writer::{close, write_loop};

/// Most messages the writer feeds before one flush.
pub(crate) const WRITE_BATCH: usize = 64;

/// The round trip the receive windows assume when deciding to grow: the
/// gateway does not measure it, and a window that grows while its reader
/// keeps up within twice this time holds no data for long either way.
const ASSUMED_RTT: Duration = Duration::from_millis(100);

/// The driver's half of an open stream.
struct StreamHandle {
    inbox: Arc<Inbox>,
    credit: Option<Arc<StreamCredit>>,
    task: JoinHandle<()>,
}

/// What the reader got from the WebSocket.
enum Inbound {
    Text(tungstenite::Utf8Bytes),
    Binary(tungstenite::Bytes),
    /// A ping (tungstenite queues the pong itself).
    Ping,
    Pong,
    Oversized,
    /// The peer broke the WebSocket framing (RFC 6455 §7.4.1: close 1002).
    Broken,
    Closed,
}

async fn next_inbound<S>(reader: &mut SplitStream<WebSocketStream<S>>) -> Inbound
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match reader.next().await {
        Some(Ok(Message::Text(t))) => Inbound::Text(t),
        Some(Ok(Message::Binary(b))) => Inbound::Binary(b),
        Some(Ok(Message::Ping(_))) => Inbound::Ping,
        // Raw frames are never read, only written.
        Some(Ok(Message::Pong(_) | Message::Frame(_))) => Inbound::Pong,
        Some(Ok(Message::Close(_))) | None => Inbound::Closed,
        Some(Err(tungstenite::Error::Capacity(_))) => Inbound::Oversized,
        Some(Err(tungstenite::Error::Protocol(e))) => {
            debug!(error = %e, "websocket protocol error");
            Inbound::Broken
        }
        Some(Err(e)) => {
            // Includes a full write buffer: the client stopped reading.
            debug!(error = %e, "websocket read failed");
            Inbound::Closed
        }
    }
}

/// How a session ends after the client broke the framing: a Close frame
/// (not a bare TCP close), then raw draining, since the parser is out of step.
fn broken() -> Ending {
    Ending::Close {
        code: close_code::PROTOCOL,
        reason: "websocket protocol error",
        raw_drain: true,
    }
}

/// How a session ends.
pub(crate) enum Ending {
    /// Send a Close frame with this code, then wait for the peer's.
    Close {
        code: u16,
        reason: &'static str,
        /// The inbound stream is unusable (oversized message): drain raw bytes.
        raw_drain: bool,
    },
    /// The peer closed or the connection failed: nothing more to say.
    Gone,
}

pub(crate) type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

pub(crate) struct Conn<S> {
    pub(crate) shared: Arc<Shared>,
    peer: SocketAddr,
    pub(crate) out: Arc<Outbox>,
    pub(crate) reader: SplitStream<WebSocketStream<S>>,
    pub(crate) writer: JoinHandle<Option<Sink<S>>>,
    /// The connection's place: pending until the token is valid, then a session's.
    ticket: Ticket,
}

/// Runs one WebSocket session from `hello` to close.
pub async fn run_session<S>(
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    ticket: Ticket,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, reader) = ws.split();
    let limits = &shared.config.limits;
    // Each stream may queue its share of `out_queue`, and at least 4
    // messages (one initial window of 64 KiB reads) so a lone stream keeps
    // the writer busy. The loop's own bound is set once `max_streams` is
    // known (`loop_bound`).
    let lane = (limits.out_queue / limits.max_streams.max(1) as usize).max(4);
    let out = Arc::new(Outbox::new(
        lane,
        loop_bound(limits.max_streams, limits.out_queue),
    ));
    let writer = tokio::spawn(write_loop(sink, out.clone(), shared.config.timeouts.write));
    let mut conn = Conn {
        shared,
        peer,
        out,
        reader,
        writer,
        ticket,
    };
    let ending = match handshake(&mut conn).await {
        Ok((grant, mode, params)) => {
            let mut streams = Streams::new(&conn, mode, &params);
            let ending = streams
                .run(&mut conn, grant.session_id.clone(), params)
                .await;
            streams.stop_all().await;
            ending
        }
        Err(ending) => ending,
    };
    close(conn, ending).await;
}

fn error_frame(code: ErrorCode, message: String) -> Frame<'static> {
    Frame::Error {
        code,
        message: message.into(),
        stream_id: None,
        reason: None,
    }
}

/// What the session loop may queue before the client counts as not reading:
/// at most an error and a close per stream, plus what it answers to what it
/// reads (pongs are coalesced; grants and violations are bounded).
fn loop_bound(max_streams: u32, out_queue: usize) -> usize {
    max_streams as usize * 2 + out_queue + 64
}

/// The stream a gateway frame belongs behind, if any: a stream's
/// `stream_close`, `stream_ready` or `error` follows that stream's data.
fn frame_stream<'f>(frame: &'f Frame<'_>) -> Option<&'f str> {
    match frame {
        Frame::StreamClose { stream_id, .. } | Frame::StreamReady { stream_id } => Some(stream_id),
        Frame::Error {
            stream_id: Some(stream_id),
            ..
        } => Some(stream_id),
        _ => None,
    }
}

impl<S> Conn<S> {
    /// Queues a frame for the client; false when the writer is gone.
    fn send_frame(&self, frame: &Frame<'_>) -> bool {
        if let Frame::Error { code, .. } = frame {
            m::error_sent(code.as_str());
        }
        let mut text = String::new();
        encode(frame, &mut text);
        self.out.control(Message::text(text)).is_ok()
    }
}

/// Reads `hello`, validates the token, sends `ready`.
async fn handshake<S>(
    conn: &mut Conn<S>,
) -> Result<(crate::auth::Grant, UpstreamMode, SessionParams), Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shared = conn.shared.clone();
    let cfg = &shared.config;
    let mut machine = Handshake::new(
        Instant::now().into_std(),
        cfg.timeouts.hello,
        cfg.limits.max_frame_len,
        cfg.limits.pings,
    );
    let deadline = Instant::from_std(machine.poll_timeout());
    let evicted = conn.ticket.eviction();
    let first = loop {
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => return Err(going_away()),
            _ = evicted.cancelled() => {
                m::handshake("evicted");
                return Err(busy());
            }
            r = tokio::time::timeout_at(deadline, next_inbound(&mut conn.reader)) => r,
        };
        match next {
            Ok(Inbound::Ping | Inbound::Pong) => {
                if let Some(rej) = machine.handle_control() {
                    return Err(
                        reject(conn, "bad_hello", rej.code, rej.message, rej.close_code).await,
                    );
                }
            }
            Ok(Inbound::Broken) => {
                m::handshake("bad_hello");
                return Err(broken());
            }
            Ok(inbound) => break inbound,
            Err(_) => {
                if let Some(rej) = machine.handle_timeout(Instant::now().into_std()) {
                    return Err(
                        reject(conn, "timeout", rej.code, rej.message, rej.close_code).await,
                    );
                }
            }
        }
    };
    let text = match first {
        Inbound::Text(t) => t,
        Inbound::Binary(_) => {
            let rej = machine.handle_binary();
            return Err(reject(conn, "bad_hello", rej.code, rej.message, rej.close_code).await);
        }
        Inbound::Oversized => {
            m::handshake("bad_hello");
            let rej = machine.handle_oversized();
            conn.send_frame(&error_frame(rej.code, rej.message));
            return Err(Ending::Close {
                code: rej.close_code,
                reason: "message too big",
                raw_drain: true,
            });
        }
        Inbound::Closed | Inbound::Ping | Inbound::Pong | Inbound::Broken => {
            return Err(Ending::Gone);
        }
    };
    let mut hello = match machine.handle_text(&text) {
        Ok(h) => h,
        Err(rej) => {
            let label = if rej.code == ErrorCode::BadVersion {
                "bad_version"
            } else {
                "bad_hello"
            };
            return Err(reject(conn, label, rej.code, rej.message, rej.close_code).await);
        }
    };
    drop(text);
    hello.binary_data &= cfg.binary_data;
    hello.flow_control &= cfg.flow_control;
    let validated = tokio::select! {
        _ = shared.shutdown.cancelled() => return Err(going_away()),
        _ = evicted.cancelled() => {
            m::handshake("evicted");
            return Err(busy());
        }
        r = shared.auth.validate(&hello.token) => r,
    };
    let grant = match validated {
        Ok(g) => g,
        Err(AuthError::Rejected { status }) => {
            info!(peer = %conn.peer, ?status, client = %hello.client, "session refused: auth_failed");
            let msg = "session token is not valid".to_owned();
            return Err(reject(
                conn,
                "auth_failed",
                ErrorCode::AuthFailed,
                msg,
                close_code::POLICY,
            )
            .await);
        }
        Err(AuthError::Unavailable(why)) => {
            warn!(peer = %conn.peer, reason = %why, "session refused: backend unavailable");
            let msg = format!("backend unavailable: {why}");
            return Err(reject(
                conn,
                "session_error",
                ErrorCode::SessionError,
                msg,
                close_code::TRY_AGAIN,
            )
            .await);
        }
    };
    // The token is good: the connection may now take a session's place.
    if conn.ticket.promote().is_err() {
        info!(peer = %conn.peer, session_id = %grant.session_id, "session refused: gateway full");
        let msg = "the gateway is full; try again later".to_owned();
        return Err(reject(
            conn,
            "full",
            ErrorCode::SessionError,
            msg,
            close_code::TRY_AGAIN,
        )
        .await);
    }
    let mode = match (&grant.outline, &shared.fixed_outline) {
        (Some(node), _) => match upstream::outline_config(node) {
            Ok(c) => UpstreamMode::outline(Arc::new(c), cfg.allow_private_targets),
            Err(why) => {
                warn!(peer = %conn.peer, session_id = %grant.session_id, reason = %why, "session refused: bad Outline node from backend");
                let msg = "session has an unusable Outline node".to_owned();
                return Err(reject(
                    conn,
                    "session_error",
                    ErrorCode::SessionError,
                    msg,
                    close_code::TRY_AGAIN,
                )
                .await);
            }
        },
        (None, Some(fixed)) => UpstreamMode::outline(fixed.clone(), cfg.allow_private_targets),
        (None, None) => UpstreamMode::Direct {
            allow_private: cfg.allow_private_targets,
        },
    };
    // The backend's limit wins when it gives one (0 is read as "not given").
    let max_streams = grant
        .max_streams
        .filter(|&n| n > 0)
        .unwrap_or(cfg.limits.max_streams);
    // Accepted in Outline mode too: outline-ss-server and shadowsocks-rust
    // carry a half-close to the target. (ss-libev drops a reply still on its
    // way after one; browsers and curl never half-close before the reply, and
    // without it every finished stream would hold its slot for the client's
    // linger.)
    let features = hello
        .accepted_features()
        .into_iter()
        .map(Into::into)
        .collect();
    conn.out
        .set_max_frames(loop_bound(max_streams, cfg.limits.out_queue));
    let ready = Frame::Ready {
        session_id: grant.session_id.clone().into(),
        max_streams,
        features,
    };
    if !conn.send_frame(&ready) {
        return Err(Ending::Gone);
    }
    m::handshake("ok");
    metrics::counter!(m::SESSIONS_TOTAL).increment(1);
    info!(
        peer = %conn.peer,
        session_id = %grant.session_id,
        device_id = grant.device_id.as_deref().unwrap_or(""),
        client = %hello.client,
        mode = mode.label(),
        max_streams,
        "session ready"
    );
    let params = SessionParams {
        max_streams,
        max_frame_len: cfg.limits.max_frame_len,
        max_violations: cfg.limits.max_violations,
        recently_closed: cfg.limits.recently_closed,
        max_stream_id_len: cfg.limits.max_stream_id_len,
        stream_ready: hello.stream_ready,
        binary_data: hello.binary_data,
        flow_control: hello.flow_control,
        windows: cfg.limits.windows,
        rtt: ASSUMED_RTT,
        idle_timeout: cfg.timeouts.idle,
        drain_timeout: cfg.timeouts.drain,
        pings: cfg.limits.pings,
    };
    Ok((grant, mode, params))
}

/// Counts a failed handshake, sends its error frame, and says how to close.
async fn reject<S>(
    conn: &Conn<S>,
    result: &'static str,
    code: ErrorCode,
    message: String,
    close: u16,
) -> Ending {
    m::handshake(result);
    conn.send_frame(&error_frame(code, message));
    Ending::Close {
        code: close,
        reason: result,
        raw_drain: false,
    }
}

/// A pending connection evicted for a newer one, or no session place left.
fn busy() -> Ending {
    Ending::Close {
        code: close_code::TRY_AGAIN,
        reason: "busy",
        raw_drain: false,
    }
}

fn going_away() -> Ending {
    Ending::Close {
        code: close_code::GOING_AWAY,
        reason: "gateway shutting down",
        raw_drain: false,
    }
}

/// Keeps `sessions_active` right however the session ends.
struct ActiveSession;

impl ActiveSession {
    fn new() -> Self {
        metrics::gauge!(m::SESSIONS_ACTIVE).increment(1.0);
        ActiveSession
    }
}

impl Drop for ActiveSession {
    fn drop(&mut self) {
        metrics::gauge!(m::SESSIONS_ACTIVE).decrement(1.0);
    }
}

/// The established part of a session: the stream table of the driver.
struct Streams {
    shared: Arc<Shared>,
    mode: UpstreamMode,
    /// The metric handles of this session's streams.
    metrics: Arc<StreamMetrics>,
    /// Announce each stream's upstream connection (`stream_ready`).
    stream_ready: bool,
    /// Send stream bytes as binary messages (`binary_data`).
    binary_data: bool,
    /// Credit windows both ways (`flow_control`).
    flow_control: bool,
    /// The client's grants for the whole session (`flow_control`).
    session_credit: Arc<Credit>,
    /// Bytes the tasks wrote upstream, to grant back (`flow_control`).
    written: Arc<Written>,
    out: Arc<Outbox>,
    handles: HashMap<StreamId, StreamHandle>,
    events_tx: mpsc::Sender<StreamEvent>,
    events_rx: mpsc::Receiver<StreamEvent>,
}

impl Streams {
    fn new<S>(conn: &Conn<S>, mode: UpstreamMode, params: &SessionParams) -> Self {
        let max_streams = params.max_streams;
        // Sized so sends practically never wait: a task sends at most one
        // event, and an open stream's slot is freed only when its event is
        // processed. (A stream the client already closed may still report
        // once; then a task waits for the session loop, which drains this.)
        let (events_tx, events_rx) = mpsc::channel(max_streams as usize + 1);
        Streams {
            shared: conn.shared.clone(),
            metrics: Arc::new(StreamMetrics::new(mode.label())),
            mode,
            stream_ready: params.stream_ready,
            binary_data: params.binary_data,
            flow_control: params.flow_control,
            session_credit: Arc::new(Credit::new(INITIAL_SESSION_WINDOW)),
            written: Arc::new(Written::default()),
            out: conn.out.clone(),
            handles: HashMap::new(),
            events_tx,
            events_rx,
        }
    }

    async fn run<S>(
        &mut self,
        conn: &mut Conn<S>,
        session_id: String,
        params: SessionParams,
    ) -> Ending
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let _active = ActiveSession::new();
        let span_peer = conn.peer;
        let now = || Instant::now().into_std();
        let mut session = Session::new(params, now());
        let mut raw_drain = false;
        // One timer for the machine's keepalive, idle and drain deadlines,
        // reset only when the deadline moves (quinn's `drive_timer`).
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<std::time::Instant> = None;
        let ending = loop {
            if let Some(ending) = self.execute(&mut session, raw_drain).await {
                break ending;
            }
            let deadline = session.poll_timeout();
            if deadline != armed {
                if let Some(at) = deadline {
                    timer.as_mut().reset(Instant::from_std(at));
                }
                armed = deadline;
            }
            tokio::select! {
                biased;
                _ = self.shared.shutdown.cancelled(), if !session.is_draining() => {
                    debug!(%session_id, open = session.open_streams(), "draining");
                    session.begin_drain(now());
                }
                _ = self.out.gone().cancelled() => {
                    // The client stopped reading (or the socket failed).
                    session.abort_all();
                    self.drain_aborts(&mut session).await;
                    break Ending::Gone;
                }
                Some(ev) = self.events_rx.recv() => {
                    debug!(%session_id, stream = %ev.id, reason = ev.end.reason.as_str(), "stream ended by upstream");
                    session.handle_stream_end(&ev.id, ev.serial, ev.end);
                }
                _ = self.written.reported() => {
                    let now = now();
                    for (id, serial, n) in self.written.take() {
                        session.handle_consumed(&id, serial, n, now);
                    }
                }
                msg = next_inbound(&mut conn.reader) => {
                    match msg {
                        Inbound::Text(t) => session.handle_text(now(), &t),
                        Inbound::Binary(b) => session.handle_binary_message(now(), &b),
                        Inbound::Ping => session.handle_ping(now()),
                        Inbound::Pong => session.handle_pong(now()),
                        Inbound::Oversized => {
                            raw_drain = true;
                            session.handle_oversized();
                        }
                        Inbound::Broken => {
                            session.abort_all();
                            self.drain_aborts(&mut session).await;
                            break broken();
                        }
                        Inbound::Closed => {
                            session.abort_all();
                            let _ = self.execute(&mut session, false).await;
                            break Ending::Gone;
                        }
                    }
                }
                _ = &mut timer, if armed.is_some() => {
                    // Fired: re-arm next round even if the deadline is unchanged.
                    armed = None;
                    session.handle_timeout(now());
                }
            }
        };
        if let Ending::Close {
            code: close_code::NORMAL,
            ..
        } = ending
        {
            info!(%session_id, peer = %span_peer, "session idle; closing");
        }
        // Whatever ended the loop, every stream ends with it (a no-op when
        // the machine already ended them).
        session.abort_all();
        self.drain_aborts(&mut session).await;
        info!(%session_id, peer = %span_peer, "session closed");
        ending
    }

    /// Carries out the machine's actions; returns how to end when it says so.
    async fn execute(&mut self, session: &mut Session, raw_drain: bool) -> Option<Ending> {
        while let Some(action) = session.poll_action() {
            match action {
                Action::Send(frame) => {
                    if self.send(&frame).is_err() {
                        session.abort_all();
                        self.drain_aborts(session).await;
                        return Some(Ending::Gone);
                    }
                }
                Action::Credit { id, increment } => match id {
                    None => self.session_credit.grant(increment),
                    Some(id) => {
                        if let Some(credit) = self.handles.get(&id).and_then(|h| h.credit.as_ref())
                        {
                            credit.stream.grant(increment);
                        }
                    }
                },
                Action::Open { id, target } => {
                    self.metrics.total.increment(1);
                    self.metrics.active.increment(1.0);
                    debug!(stream = %id, %target, "stream open");
                }
                Action::Dial {
                    id,
                    serial,
                    target,
                    initial,
                } => self.spawn_stream(id, serial, target, initial),
                Action::Forward { id, serial, data } => {
                    if let Some(waited) = self.forward(&id, data).await {
                        debug!(stream = %id, ?waited, "upstream stalled; ending stream");
                        session.handle_stall(&id, serial, waited.as_millis());
                    }
                }
                Action::Finish { id } => {
                    self.metrics.active.decrement(1.0);
                    if let Some(h) = self.handles.remove(&id) {
                        // The task writes what is queued, then shuts the
                        // upstream down. It gets the drain timeout for that,
                        // then it is cut.
                        h.inbox.finish();
                        let task = h.task.abort_handle();
                        let grace = self.shared.config.timeouts.drain;
                        tokio::spawn(async move {
                            tokio::time::sleep(grace).await;
                            task.abort();
                        });
                    }
                }
                Action::ShutdownWrite { id } => {
                    if let Some(h) = self.handles.get(&id) {
                        h.inbox.shutdown();
                    }
                }
                Action::Abort { id } => {
                    self.metrics.active.decrement(1.0);
                    if let Some(h) = self.handles.remove(&id) {
                        // Wait for the task to be gone so that none of its
                        // data frames can follow the stream_close queued next.
                        h.task.abort();
                        let _ = h.task.await;
                    }
                }
                Action::Close { code, reason } => {
                    self.drain_aborts(session).await;
                    return Some(Ending::Close {
                        code,
                        reason,
                        raw_drain,
                    });
                }
            }
        }
        None
    }

    /// Executes the pending aborts after the session decided to stop.
    async fn drain_aborts(&mut self, session: &mut Session) {
        while let Some(action) = session.poll_action() {
            match action {
                // Keeps the gauge even: every Open is matched by one end.
                Action::Open { .. } => {
                    self.metrics.total.increment(1);
                    self.metrics.active.increment(1.0);
                }
                Action::Abort { id } | Action::Finish { id } => {
                    self.metrics.active.decrement(1.0);
                    if let Some(h) = self.handles.remove(&id) {
                        h.task.abort();
                        let _ = h.task.await;
                    }
                }
                _ => {}
            }
        }
    }

    /// Stops any stream task still running (the session is over). The run
    /// loop already ended every stream through the machine, so this is only
    /// a safety net; gauges were settled there.
    async fn stop_all(&mut self) {
        debug_assert!(self.handles.is_empty());
        for (_, h) in self.handles.drain() {
            h.task.abort();
            let _ = h.task.await;
        }
    }

    /// Queues a frame for the client: control frames ahead of stream
    /// frames; a stream's frames behind its data.
    fn send(&self, frame: &Frame<'_>) -> Result<(), crate::outbox::Gone> {
        let stream = match frame {
            Frame::Pong => {
                self.out.pong();
                return Ok(());
            }
            Frame::Error { code, .. } => {
                m::error_sent(code.as_str());
                frame_stream(frame)
            }
            _ => frame_stream(frame),
        };
        let mut text = String::new();
        encode(frame, &mut text);
        let message = Message::text(text);
        match stream {
            Some(id) => self.out.stream_now(id, message),
            None => self.out.control(message),
        }
    }

    /// Queues client bytes for a stream; `Some(waited)` when it stalled.
    async fn forward(&mut self, id: &str, data: Vec<u8>) -> Option<Duration> {
        let h = self.handles.get(id)?;
        // With credit windows the inbox never holds more than was granted.
        if self.flow_control {
            h.inbox.push(data);
            return None;
        }
        let limits = &self.shared.config.limits;
        let (max_bytes, max_chunks) = (
            limits.stream_buffer_bytes.max(1),
            limits.stream_buffer_frames.max(1),
        );
        if h.inbox.has_room(max_bytes, max_chunks) {
            h.inbox.push(data);
            return None;
        }
        let stall = self.shared.config.timeouts.stall;
        let started = Instant::now();
        match tokio::time::timeout(stall, h.inbox.room(max_bytes, max_chunks)).await {
            Ok(()) => {
                // Dropped if the task ended meanwhile (its end event is on the way).
                h.inbox.push(data);
                None
            }
            Err(_) => Some(started.elapsed()),
        }
    }

    fn spawn_stream(
        &mut self,
        id: StreamId,
        serial: u64,
        target: proto_httvps::TargetAddr,
        initial: Vec<u8>,
    ) {
        let limits = &self.shared.config.limits;
        let inbox = Arc::new(Inbox::default());
        if !initial.is_empty() {
            inbox.push(initial);
        }
        let credit = self.flow_control.then(|| {
            Arc::new(StreamCredit {
                stream: Credit::new(INITIAL_STREAM_WINDOW),
                session: self.session_credit.clone(),
            })
        });
        // Never send a frame the client would refuse (contract: 256 KiB).
        let send_limit = limits.max_frame_len.min(MAX_FRAME_LEN);
        let binary = self.binary_data && id.len() <= MAX_BINARY_STREAM_ID_LEN;
        let max_payload = if binary {
            max_binary_payload_len(id.len(), send_limit)
        } else {
            max_payload_len(id.len(), send_limit)
        };
        let read_len = limits.read_buffer.min(max_payload).max(1);
        let ctx = StreamCtx {
            id: id.clone(),
            serial,
            target,
            mode: self.mode.clone(),
            announce_ready: self.stream_ready,
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
            out: self.out.clone(),
            inbox: inbox.clone(),
            credit: credit.clone(),
            written: self.flow_control.then(|| self.written.clone()),
            events: self.events_tx.clone(),
            read_len,
            binary,
        };
        let task = tokio::spawn(stream_task(ctx));
        self.handles.insert(
            id,
            StreamHandle {
                inbox,
                credit,
                task,
            },
        );
    }
}
