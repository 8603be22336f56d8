//! The multiplexed session: a driver task owns the WebSocket and serves many
//! [`Stream`]s at once.
//!
//! Tasks and queues (all bounded):
//! - the **writer** owns the WebSocket sink; streams and the reader queue text
//!   messages into one channel of `write_queue_frames`; it feeds what is queued
//!   and flushes once, so bulk transfers become few large writes;
//! - the **reader** owns the WebSocket source; it hands each stream's bytes to
//!   that stream's channel of `stream_buffer_frames`, answers pings, sends
//!   keepalive pings and declares the session dead after `dead_after` of
//!   silence. A stream whose reader lags more than `stall_timeout` is ended
//!   rather than allowed to stall the others for longer.
//!
//! Stream slots are counted by a FIFO semaphore of `max_streams` permits, so
//! [`Tunnel::open_wait`] queues fairly. A dropped stream hands its permit back
//! through the reader, which queues the `stream_close` before freeing the slot:
//! the gateway never sees more than `max_streams` open streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use proto_httvps::{
    ClientStreams, ErrorCode, FEATURE_BINARY_DATA, FEATURE_HALF_CLOSE, FEATURE_STREAM_READY, Frame,
    StreamRuleError, TargetAddr, decode_binary_limited, decode_limited,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::ClientConfig;
use crate::connect::{Connected, WsStream, connect};
use crate::error::{ClientError, StreamEnd};
use crate::secret::Secret;
use crate::stream::{EndCell, Stream};

/// Whether the session is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelState {
    /// `ready` was received and the connection is alive.
    Active,
    /// The session ended; no new streams can be opened.
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The gateway closed the WebSocket (1001 = going away, e.g. shutdown).
    Gateway {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// The gateway sent a session-level `error` and then ended the connection.
    SessionError {
        /// The contract code.
        code: ErrorCode,
        /// The gateway's message.
        message: String,
    },
    /// Nothing arrived for longer than `dead_after`.
    KeepaliveTimeout(Duration),
    /// The connection failed.
    Transport(String),
    /// [`Tunnel::close`] was called, or every handle was dropped.
    Local,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Gateway { code, reason } if reason.is_empty() => {
                write!(f, "gateway closed the session (code {code})")
            }
            CloseReason::Gateway { code, reason } => {
                write!(f, "gateway closed the session (code {code}: {reason})")
            }
            CloseReason::SessionError { code, message } => write!(f, "{code}: {message}"),
            CloseReason::KeepaliveTimeout(d) => write!(f, "no answer from the gateway for {d:?}"),
            CloseReason::Transport(e) => write!(f, "connection failed: {e}"),
            CloseReason::Local => write!(f, "closed locally"),
        }
    }
}

/// A stream's entry in the registry: where its bytes go and how it ended.
struct Slot {
    tx: mpsc::Sender<Bytes>,
    end: Arc<EndCell>,
}

struct Registry {
    rules: ClientStreams,
    slots: HashMap<String, Slot>,
    closed: Option<CloseReason>,
}

/// A stream handing its slot back (sent on drop).
pub(crate) struct LocalClose {
    pub id: String,
    pub reason: Option<String>,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// State shared by the tunnel handles, its streams and the driver tasks.
pub(crate) struct Shared {
    pub(crate) session_id: String,
    /// Whether the gateway announces `stream_ready` (negotiated in hello/ready).
    pub(crate) stream_ready: bool,
    /// Whether the gateway understands `stream_shutdown` (negotiated).
    pub(crate) half_close: bool,
    /// Whether stream bytes may travel as binary messages (negotiated).
    pub(crate) binary_data: bool,
    pub(crate) config: ClientConfig,
    registry: Mutex<Registry>,
    pub(crate) out_tx: mpsc::Sender<Message>,
    /// Unbounded on purpose: `Drop` cannot wait. Bounded in practice by the
    /// number of streams, since each stream sends exactly one message.
    pub(crate) close_tx: mpsc::UnboundedSender<LocalClose>,
    permits: Arc<Semaphore>,
    state: watch::Sender<TunnelState>,
    cancel: CancellationToken,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding this lock cannot leave the map half-updated in
        // a way that matters more than losing the session; keep going.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the session once: records why, wakes every stream, stops the tasks.
    fn finish(&self, reason: CloseReason) {
        let slots = {
            let mut reg = self.registry();
            if reg.closed.is_some() {
                return;
            }
            reg.closed = Some(reason.clone());
            std::mem::take(&mut reg.slots)
        };
        for (_, slot) in slots {
            slot.end.set(StreamEnd::SessionLost(reason.to_string()));
        }
        self.permits.close();
        self.state.send_replace(TunnelState::Closed(reason));
        self.cancel.cancel();
    }

    /// Ends one stream from this side of the gateway's frames.
    fn end_stream(&self, id: &str, end: StreamEnd) {
        let slot = {
            let mut reg = self.registry();
            reg.rules.close(id);
            reg.slots.remove(id)
        };
        if let Some(slot) = slot {
            slot.end.set(end);
        }
    }
}

/// Keeps the session alive while any tunnel handle or stream exists.
pub(crate) struct Guard(pub(crate) Arc<Shared>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.finish(CloseReason::Local);
    }
}

/// A connected, multiplexed session. Cheap to clone; the session ends when
/// the last clone and the last stream are dropped, or on [`Tunnel::close`].
#[derive(Clone)]
pub struct Tunnel {
    guard: Arc<Guard>,
}

impl Tunnel {
    /// Connects with a session token and starts the driver.
    pub async fn connect(config: ClientConfig, token: &Secret) -> Result<Tunnel, ClientError> {
        let mut features = vec![FEATURE_STREAM_READY, FEATURE_HALF_CLOSE];
        if config.binary_data {
            features.push(FEATURE_BINARY_DATA);
        }
        let connected = connect(&config, token, &features).await?;
        Ok(Tunnel::start(config, connected))
    }

    fn start(config: ClientConfig, connected: Connected) -> Tunnel {
        let Connected {
            ws,
            session_id,
            max_streams,
            stream_ready,
            half_close,
            binary_data,
        } = connected;
        // At least 2: a new stream queues its two frames at once.
        let (out_tx, out_rx) = mpsc::channel(config.write_queue_frames.max(2));
        let (close_tx, close_rx) = mpsc::unbounded_channel();
        let (state, _) = watch::channel(TunnelState::Active);
        let shared = Arc::new(Shared {
            session_id,
            stream_ready,
            half_close,
            binary_data,
            registry: Mutex::new(Registry {
                rules: ClientStreams::new(max_streams),
                slots: HashMap::new(),
                closed: None,
            }),
            out_tx,
            close_tx,
            permits: Arc::new(Semaphore::new(max_streams as usize)),
            state,
            cancel: CancellationToken::new(),
            config,
        });
        let (sink, source) = ws.split();
        tokio::spawn(drive_writer(shared.clone(), sink, out_rx));
        tokio::spawn(drive_reader(shared.clone(), source, close_rx));
        Tunnel {
            guard: Arc::new(Guard(shared)),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.guard.0
    }

    /// The id the gateway gave this session.
    pub fn session_id(&self) -> &str {
        &self.shared().session_id
    }

    /// How many streams may be open at once.
    pub fn max_streams(&self) -> u32 {
        self.shared().registry().rules.max_streams()
    }

    /// Whether stream bytes travel as raw binary messages: the client offered
    /// the `binary_data` extension ([`ClientConfig::binary_data`]) and the
    /// gateway accepted it. Otherwise they are base64 in JSON, as the contract says.
    pub fn binary_data(&self) -> bool {
        self.shared().binary_data
    }

    /// Streams currently open.
    pub fn open_streams(&self) -> usize {
        self.shared().registry().rules.open_count()
    }

    /// Watches the session state (for UIs and reconnect logic).
    pub fn state(&self) -> watch::Receiver<TunnelState> {
        self.shared().state.subscribe()
    }

    /// Whether the session is still active.
    pub fn is_active(&self) -> bool {
        matches!(*self.shared().state.borrow(), TunnelState::Active)
    }

    /// Waits until the session ends and says why.
    pub async fn closed(&self) -> CloseReason {
        let mut state = self.state();
        loop {
            if let TunnelState::Closed(reason) = &*state.borrow_and_update() {
                return reason.clone();
            }
            if state.changed().await.is_err() {
                return CloseReason::Local;
            }
        }
    }

    /// Ends the session: streams see `SessionLost`, the gateway a close frame.
    pub fn close(&self) {
        self.shared().finish(CloseReason::Local);
    }

    /// Opens a stream to `target`; fails at once with `stream_limit` when all
    /// `max_streams` slots are busy.
    pub async fn open(&self, target: TargetAddr) -> Result<Stream, ClientError> {
        let permit = match self.shared().permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let max = self.max_streams();
                return Err(StreamRuleError::StreamLimit { max }.into());
            }
            Err(tokio::sync::TryAcquireError::Closed) => return Err(self.closed_error()),
        };
        self.open_with(target, permit).await
    }

    /// Opens a stream, waiting up to `wait` (first come, first served) for a
    /// free slot when all are busy.
    pub async fn open_wait(
        &self,
        target: TargetAddr,
        wait: Duration,
    ) -> Result<Stream, ClientError> {
        let acquire = self.shared().permits.clone().acquire_owned();
        let permit = match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(self.closed_error()),
            Err(_) => return Err(ClientError::StreamLimitTimeout(wait)),
        };
        self.open_with(target, permit).await
    }

    fn closed_error(&self) -> ClientError {
        let why = self
            .shared()
            .registry()
            .closed
            .clone()
            .unwrap_or(CloseReason::Local);
        ClientError::SessionClosed(why.to_string())
    }

    async fn open_with(
        &self,
        target: TargetAddr,
        permit: OwnedSemaphorePermit,
    ) -> Result<Stream, ClientError> {
        let shared = self.shared();
        let (id, rx, end) = {
            let mut reg = shared.registry();
            if let Some(why) = &reg.closed {
                return Err(ClientError::SessionClosed(why.to_string()));
            }
            let id = reg.rules.open(None)?;
            let (tx, rx) = mpsc::channel(shared.config.stream_buffer_frames.max(1));
            let end = Arc::new(EndCell::default());
            reg.slots.insert(
                id.clone(),
                Slot {
                    tx,
                    end: end.clone(),
                },
            );
            (id, rx, end)
        };
        // From here the stream owns its slot: dropping it (also on error below)
        // sends stream_close and frees the slot in order.
        let stream = Stream::new(
            id.clone(),
            target.clone(),
            self.guard.clone(),
            rx,
            end,
            permit,
        );
        let open = Frame::StreamOpen {
            stream_id: id.as_str().into(),
            target: target.to_string().into(),
        };
        let mut header = Vec::with_capacity(target.header_len());
        target.encode(&mut header);
        let mut header_text = String::new();
        proto_httvps::encode_stream_data(&id, &header, &mut header_text);
        // Both queued at once, so the writer sends them in one TLS write and
        // the gateway reads them in one go: a new stream costs one wake-up
        // on each side, not two.
        let Ok(mut permits) = shared.out_tx.reserve_many(2).await else {
            return Err(self.closed_error());
        };
        for text in [proto_httvps::frame::encode_to_string(&open), header_text] {
            if let Some(permit) = permits.next() {
                permit.send(Message::Text(Utf8Bytes::from(text)));
            }
        }
        Ok(stream)
    }
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("session_id", &self.session_id())
            .finish()
    }
}

/// Most messages fed before one flush: bounds the latency a bulk sender adds.
const MAX_BATCH: usize = 64;

async fn drive_writer(
    shared: Arc<Shared>,
    mut sink: SplitSink<WsStream, Message>,
    mut rx: mpsc::Receiver<Message>,
) {
    let result: Result<(), tokio_tungstenite::tungstenite::Error> = async {
        loop {
            let first = tokio::select! {
                biased;
                m = rx.recv() => match m { Some(m) => m, None => return Ok(()) },
                _ = shared.cancel.cancelled() => return Ok(()),
            };
            sink.feed(first).await?;
            for _ in 1..MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => sink.feed(m).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await?;
        }
    }
    .await;
    match result {
        Err(e) => shared.finish(CloseReason::Transport(e.to_string())),
        Ok(()) => {
            // Say goodbye properly; a dead peer must not hold us up.
            let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
        }
    }
}

async fn drive_reader(
    shared: Arc<Shared>,
    mut source: SplitStream<WsStream>,
    mut close_rx: mpsc::UnboundedReceiver<LocalClose>,
) {
    let keepalive = shared.config.keepalive;
    let mut ping = tokio::time::interval(keepalive.interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_rx = tokio::time::Instant::now();
    let mut session_error: Option<(ErrorCode, String)> = None;

    let reason = loop {
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break CloseReason::Local,
            Some(close) = close_rx.recv() => handle_local_close(&shared, close).await,
            message = source.next() => {
                last_rx = tokio::time::Instant::now();
                let message = match message {
                    None => break ended(session_error.take(), "connection ended".into()),
                    Some(Err(e)) => break ended(session_error.take(), e.to_string()),
                    Some(Ok(m)) => m,
                };
                match message {
                    Message::Text(text) => handle_text(&shared, &text, &mut session_error).await,
                    Message::Close(frame) => {
                        break match (session_error.take(), frame) {
                            (Some((code, message)), _) => CloseReason::SessionError { code, message },
                            (None, Some(f)) => CloseReason::Gateway { code: f.code.into(), reason: f.reason.to_string() },
                            (None, None) => CloseReason::Gateway { code: 1005, reason: String::new() },
                        };
                    }
                    Message::Binary(bytes) if shared.binary_data => handle_binary(&shared, bytes).await,
                    Message::Binary(_) => warn!(session = %shared.session_id, "gateway sent a binary message; ignored"),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            _ = ping.tick() => {
                if last_rx.elapsed() >= keepalive.dead_after {
                    break CloseReason::KeepaliveTimeout(keepalive.dead_after);
                }
                // A full queue means data is flowing; the ping can wait a round.
                let _ = shared.out_tx.try_send(Message::Text(Utf8Bytes::from_static(r#"{"type":"ping"}"#)));
            }
        }
    };
    shared.finish(reason);
}

fn ended(session_error: Option<(ErrorCode, String)>, why: String) -> CloseReason {
    match session_error {
        Some((code, message)) => CloseReason::SessionError { code, message },
        None => CloseReason::Transport(why),
    }
}

async fn handle_local_close(shared: &Shared, close: LocalClose) {
    let was_open = {
        let mut reg = shared.registry();
        reg.slots.remove(&close.id);
        reg.rules.close(&close.id)
    };
    if was_open {
        let frame = Frame::StreamClose {
            stream_id: close.id.as_str().into(),
            reason: close.reason.map(Into::into),
        };
        let text = proto_httvps::frame::encode_to_string(&frame);
        let _ = shared
            .out_tx
            .send(Message::Text(Utf8Bytes::from(text)))
            .await;
    }
    // Only now, with the stream_close queued, may a new stream take the slot.
    drop(close.permit);
}

async fn handle_text(shared: &Shared, text: &str, session_error: &mut Option<(ErrorCode, String)>) {
    let frame = match decode_limited(text, shared.config.max_frame_len) {
        Ok(frame) => frame,
        Err(e) => {
            warn!(session = %shared.session_id, error = %e, "unreadable frame from the gateway");
            if let Some(id) = e.stream_id() {
                shared.end_stream(
                    id,
                    StreamEnd::Local(format!("unreadable frame from the gateway: {e}")),
                );
            }
            return;
        }
    };
    match frame {
        Frame::StreamData { stream_id, data } => {
            deliver(shared, &stream_id, Bytes::from(data)).await
        }
        Frame::StreamClose { stream_id, reason } => {
            shared.end_stream(
                &stream_id,
                StreamEnd::Closed {
                    reason: reason.map(|r| r.into_owned()),
                },
            );
        }
        Frame::Error {
            code,
            message,
            stream_id: Some(id),
            reason,
        } => {
            shared.end_stream(
                &id,
                StreamEnd::Error {
                    code,
                    message: message.into_owned(),
                    reason: reason.map(|r| r.into_owned()),
                },
            );
        }
        Frame::Error {
            code,
            message,
            stream_id: None,
            ..
        } => {
            warn!(session = %shared.session_id, %code, %message, "gateway reported a session error");
            *session_error = Some((code, message.into_owned()));
        }
        Frame::Ping => {
            let _ = shared
                .out_tx
                .send(Message::Text(Utf8Bytes::from_static(r#"{"type":"pong"}"#)))
                .await;
        }
        Frame::Pong => {}
        Frame::StreamReady { stream_id } => {
            if let Some(slot) = shared.registry().slots.get(stream_id.as_ref()) {
                slot.end.set_ready();
            }
        }
        other => {
            debug!(session = %shared.session_id, kind = other.kind(), "unexpected frame from the gateway; ignored")
        }
    }
}

/// A binary `stream_data` (the `binary_data` extension): its payload goes to
/// the stream as a slice of the message, without a copy.
async fn handle_binary(shared: &Shared, message: Bytes) {
    match decode_binary_limited(&message, shared.config.max_frame_len) {
        Ok(read) => {
            let payload = message.slice(read.payload_at..);
            deliver(shared, read.stream_id, payload).await
        }
        Err(e) => {
            warn!(session = %shared.session_id, error = %e, "unreadable binary message from the gateway")
        }
    }
}

/// Hands bytes to a stream, waiting at most `stall_timeout` for its reader.
async fn deliver(shared: &Shared, id: &str, data: Bytes) {
    let tx = match shared.registry().slots.get(id) {
        Some(slot) => slot.tx.clone(),
        // Closed streams may still receive frames in flight: dropped quietly.
        None => return,
    };
    let data = match tx.try_send(data) {
        Ok(()) => return,
        Err(mpsc::error::TrySendError::Closed(_)) => return,
        Err(mpsc::error::TrySendError::Full(data)) => data,
    };
    match tokio::time::timeout(shared.config.stall_timeout, tx.send(data)).await {
        Ok(_) => {}
        Err(_) => {
            warn!(session = %shared.session_id, stream = id, "stream reader too slow; ending the stream");
            let was_open = {
                let mut reg = shared.registry();
                if let Some(slot) = reg.slots.remove(id) {
                    slot.end.set(StreamEnd::Local(format!(
                        "the reader took longer than {:?} to accept data",
                        shared.config.stall_timeout
                    )));
                }
                reg.rules.close(id)
            };
            if was_open {
                let frame = Frame::StreamClose {
                    stream_id: id.into(),
                    reason: Some("slow_reader".into()),
                };
                let text = proto_httvps::frame::encode_to_string(&frame);
                let _ = shared
                    .out_tx
                    .send(Message::Text(Utf8Bytes::from(text)))
                    .await;
            }
        }
    }
}
