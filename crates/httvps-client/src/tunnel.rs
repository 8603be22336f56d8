//! The multiplexed session: a thin tokio driver around the sans-IO
//! [`proto_httvps::client::Client`], serving many [`Stream`]s at once.
//!
//! The machine decides everything the protocol says (which frames to send,
//! when to ping, when the gateway is dead, how a stream or the session
//! ended); the tasks here only move bytes and time in and out of it, under
//! one mutex, like quinn's `ConnectionRef`:
//!
//! - the **writer** owns the WebSocket sink; woken when the machine has
//!   frames, it drains up to [`MAX_BATCH`] of them from `poll_transmit`
//!   (control frames first, then the streams' frames in turn), feeds them
//!   and flushes once, so bulk transfers become few large writes;
//! - the **reader** owns the WebSocket source and the timer; it feeds every
//!   message to the machine, applies the machine's events to the streams,
//!   hands each stream's bytes to that stream's channel, and re-arms the
//!   timer from `poll_timeout` only when the deadline moves (quinn's
//!   `drive_timer`). It never waits for the writer: what the machine answers
//!   to a read is coalesced and bounded. With `flow_control` it never waits
//!   for a stream either: the channel holds at most the window the stream
//!   granted, and the stream grants more (through the machine) as its
//!   application reads, so a paused reader stalls only its own stream.
//!   Without the extension the channel holds `stream_buffer_frames`, and a
//!   stream whose reader lags more than `stall_timeout` is ended rather
//!   than allowed to stall the others for longer;
//! - a [`Stream`]'s writes go straight into the machine (`send_data`), which
//!   holds at most `write_queue_frames` data frames, `stream_queue_frames`
//!   per stream, and (with `flow_control`) no more than the gateway's
//!   credit; past that the write waits for the writer or a grant.
//!
//! Stream slots are counted by a FIFO semaphore of `max_streams` permits, so
//! [`Tunnel::open_wait`] queues fairly. A slot is freed as soon as the stream
//! ends on either side: when the gateway's `stream_close` arrives (even if
//! the application still reads what came before it), or when the stream is
//! dropped: under the session's lock, its `stream_close` is queued (ahead of
//! any later `stream_open`) before its slot is freed, so the gateway never
//! sees more than `max_streams` open streams. When a new stream must wait, the
//! longest-idle stream is closed for it (`ClientConfig::evict_idle_after`),
//! so idle keep-alive connections cannot starve new ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use proto_httvps::client::{self, Client, CommandError, Event, Features, Payload, SessionInfo};
use proto_httvps::{ErrorCode, StreamRuleError, TargetAddr, decode_limited};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::{ClientConfig, Transport};
use crate::connect::{WsStream, connect, machine_config, now, to_message};
use crate::error::{ClientError, StreamEnd};
use crate::stream::{BytesTx, EndCell, Stream, bytes_channel};
use net::Secret;

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

impl CloseReason {
    /// The driver's view of the machine's reason. Handshake reasons cannot
    /// occur here (the driver starts once `ready` arrived) and protocol breaks are
    /// reported as a failed connection, so the public enum stays as it was.
    fn from_machine(reason: client::CloseReason) -> CloseReason {
        match reason {
            client::CloseReason::Gateway { code, reason } => CloseReason::Gateway { code, reason },
            client::CloseReason::SessionError { code, message }
            | client::CloseReason::Refused { code, message } => {
                CloseReason::SessionError { code, message }
            }
            client::CloseReason::KeepaliveTimeout(d) => CloseReason::KeepaliveTimeout(d),
            client::CloseReason::Transport(e) => CloseReason::Transport(e),
            client::CloseReason::Local => CloseReason::Local,
            other => CloseReason::Transport(other.to_string()),
        }
    }
}

/// A stream's entry in the driver: where its bytes go, how it ended, and
/// its share of `max_streams`, freed when the entry goes.
struct Slot {
    tx: BytesTx,
    end: Arc<EndCell>,
    _permit: OwnedSemaphorePermit,
    /// When a byte last went either way.
    last_active: Instant,
    /// Whether that byte came from the gateway (a reply, not a request
    /// that may still wait for one).
    last_from_gateway: bool,
}

/// Everything behind the session's one lock.
pub(crate) struct Conn {
    /// The protocol state.
    pub(crate) machine: Client,
    slots: HashMap<String, Slot>,
    closed: Option<CloseReason>,
    /// Stream writes waiting for room in the machine's send queue. Bounded:
    /// one entry per blocked write, emptied by every batch the writer takes.
    blocked: Vec<Waker>,
}

impl Conn {
    /// Parks a write until the writer makes room.
    pub(crate) fn park_writer(&mut self, waker: &Waker) {
        if !self.blocked.iter().any(|w| w.will_wake(waker)) {
            self.blocked.push(waker.clone());
        }
    }

    /// Records bytes the application wrote on a stream (it is not idle).
    pub(crate) fn touch(&mut self, id: &str) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.last_active = Instant::now();
            slot.last_from_gateway = false;
        }
    }

    /// Closes the stream idle longest (at least `min_idle`, nothing unread)
    /// to free its slot for a new one; its reader sees EOF.
    fn evict_idle(&mut self, min_idle: Duration) -> Option<String> {
        let now = Instant::now();

        let id = self
            .slots
            .iter()
            .filter(|(id, slot)| {
                let idle = now.duration_since(slot.last_active);
                let long_enough = if slot.last_from_gateway {
                    min_idle
                } else {
                    min_idle * 20
                };
                idle >= long_enough
                    && !slot.tx.has_unread()
                    && self.machine.stream_buffered(id).unwrap_or(0) == 0
            })
            .min_by_key(|(_, slot)| slot.last_active)
            .map(|(id, _)| id.clone())?;
        self.machine.close_stream(&id, Some("evicted_idle"));
        let slot = self.slots.remove(&id)?;
        slot.end.set(StreamEnd::Evicted);
        Some(id)
    }

    fn wake_blocked(&mut self) {
        for waker in self.blocked.drain(..) {
            waker.wake();
        }
    }

    /// Applies the machine's events to the streams; returns the session's
    /// end when the machine declared one.
    fn apply_events(&mut self, session_id: &str) -> Option<CloseReason> {
        let mut closed = None;
        while let Some(event) = self.machine.poll_event() {
            match event {
                Event::Writable => self.wake_blocked(),
                Event::StreamReady { stream_id } => {
                    if let Some(slot) = self.slots.get(&stream_id) {
                        slot.end.set_ready();
                    }
                }
                Event::StreamClosed { stream_id, end } => {
                    if let Some(slot) = self.slots.remove(&stream_id) {
                        slot.end.set(StreamEnd::Gateway(end));
                    }
                }
                Event::GatewayError { code, message } => {
                    warn!(session = %session_id, %code, %message, "gateway reported a session error");
                }
                Event::Ignored(error) => {
                    warn!(session = %session_id, %error, "unreadable or unexpected message from the gateway; ignored");
                }
                Event::SessionClosed(reason) => closed = Some(CloseReason::from_machine(reason)),
                other => debug!(session = %session_id, ?other, "event"),
            }
        }
        closed
    }
}

/// State shared by the tunnel handles, its streams and the driver tasks.
pub(crate) struct Shared {
    pub(crate) session_id: String,
    max_streams: u32,
    /// Whether the gateway announces `stream_ready` (negotiated in hello/ready).
    pub(crate) stream_ready: bool,
    /// Whether stream bytes may travel as binary messages (negotiated).
    pub(crate) binary_data: bool,
    /// Whether streams have credit windows (negotiated `flow_control`).
    pub(crate) flow_control: bool,
    /// Whether this side sends unmasked frames (negotiated in the upgrade).
    unmasked: bool,
    /// What carries the WebSocket (`H1` or `H3`).
    carrier: Transport,
    /// Over HTTP/3, the QUIC endpoint, to move to a new UDP socket.
    quic: Option<quinn::Endpoint>,
    pub(crate) config: ClientConfig,
    conn: Mutex<Conn>,
    /// Wakes the writer: the machine has frames to send. `notify_one` keeps a
    /// permit when the writer is busy, so no wake-up is lost.
    pub(crate) writer: Notify,
    /// Wakes the reader to re-arm its timer (a probe moved the deadline).
    timer_moved: Notify,
    permits: Arc<Semaphore>,
    /// Idle streams closed to free a slot for a waiting open.
    evictions: AtomicU64,
    state: watch::Sender<TunnelState>,
    cancel: CancellationToken,
}

impl Shared {
    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Conn> {
        // A panic while holding this lock cannot leave the state half-updated
        // in a way that matters more than losing the session; keep going.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the session once: records why, wakes every stream, stops the tasks.
    fn finish(&self, reason: CloseReason) {
        let slots = {
            let mut conn = self.conn();
            if conn.closed.is_some() {
                return;
            }
            conn.closed = Some(reason.clone());
            conn.machine.close_session();
            conn.wake_blocked();
            std::mem::take(&mut conn.slots)
        };
        for (_, slot) in slots {
            slot.end.set(StreamEnd::SessionLost(reason.to_string()));
        }
        self.permits.close();
        self.state.send_replace(TunnelState::Closed(reason));
        self.cancel.cancel();
    }

    /// A dropped stream hands its slot back: its `stream_close` is queued
    /// (unless the stream already ended), and only then is the slot freed,
    /// so a new stream's `stream_open` can never overtake it and the gateway
    /// never sees more than `max_streams` open streams.
    ///
    /// Done right here under the lock rather than by the reader task (as
    /// before, through a channel): that woke the reader once per stream for
    /// what is a few map operations, and usually for nothing at all, since
    /// most streams end with the gateway's `stream_close`. (With the
    /// optimistic client no longer asking for `stream_ready`, this took a
    /// new stream from 10.7 to 6.9 thread wake-ups in the client, sequential
    /// 1 KiB fetches on loopback.)
    pub(crate) fn close_local(&self, id: &str, reason: Option<&str>) {
        let mut conn = self.conn();
        let queued = conn.machine.close_stream(id, reason);
        let slot = conn.slots.remove(id);
        drop(conn);
        // The slot's permit and channel go outside the lock.
        drop(slot);
        if queued {
            self.writer.notify_one();
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
        let offer = Features {
            binary_data: config.binary_data,
            flow_control: config.flow_control,
            // An optimistic client never waits for `stream_ready`; asking
            // for it anyway cost every new stream one more message: one more
            // TLS write and writer wake-up at the gateway, one more read and
            // decode here.
            stream_ready: !config.optimistic_open,
            ..Features::ALL
        };
        let (ws, machine, unmasked) =
            connect(&config, token, machine_config(&config, offer)).await?;
        Ok(Tunnel::start(config, ws, machine, unmasked))
    }

    /// Starts the driver tasks over a machine that reached `ready`.
    fn start(config: ClientConfig, ws: WsStream, machine: Client, unmasked: bool) -> Tunnel {
        let info = machine
            .session_info()
            .cloned()
            .expect("the handshake ends only once ready arrived");
        let SessionInfo {
            session_id,
            max_streams,
            features,
        } = info;
        let Features {
            stream_ready,
            binary_data,
            flow_control,
            ..
        } = features;
        let (state, _) = watch::channel(TunnelState::Active);
        let carrier = ws.get_ref().transport();
        let quic = ws.get_ref().quic_endpoint();
        let shared = Arc::new(Shared {
            session_id,
            max_streams,
            stream_ready,
            binary_data,
            flow_control,
            unmasked,
            carrier,
            quic,
            conn: Mutex::new(Conn {
                machine,
                slots: HashMap::new(),
                closed: None,
                blocked: Vec::new(),
            }),
            writer: Notify::new(),
            timer_moved: Notify::new(),
            permits: Arc::new(Semaphore::new(max_streams as usize)),
            evictions: AtomicU64::new(0),
            state,
            cancel: CancellationToken::new(),
            config,
        });
        let (sink, source) = ws.split();
        tokio::spawn(drive_writer(shared.clone(), sink));
        tokio::spawn(drive_reader(shared.clone(), source));
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
        self.shared().max_streams
    }

    /// Whether stream bytes travel as raw binary messages: the client offered
    /// the `binary_data` extension ([`ClientConfig::binary_data`]) and the
    /// gateway accepted it. Otherwise they are base64 in JSON, as the contract says.
    pub fn binary_data(&self) -> bool {
        self.shared().binary_data
    }

    /// Whether each stream has its own credit window both ways: the client
    /// offered `flow_control` ([`ClientConfig::flow_control`]) and the
    /// gateway accepted it.
    pub fn flow_control(&self) -> bool {
        self.shared().flow_control
    }

    /// Whether this side sends its WebSocket frames unmasked: the client
    /// offered it ([`ClientConfig::unmasked_frames`]) and the gateway agreed
    /// in the upgrade.
    pub fn unmasked_frames(&self) -> bool {
        self.shared().unmasked
    }

    /// What carries this session: HTTP/1.1 or HTTP/3 (with
    /// [`Transport::Auto`], the one that connected).
    pub fn transport(&self) -> Transport {
        self.shared().carrier
    }

    /// Moves an HTTP/3 session to a fresh UDP socket, as after a change of
    /// network: QUIC migrates the connection and the session goes on
    /// (RFC 9000 §9). Returns the new local address. Over HTTP/1.1 there is
    /// nothing to move: an error.
    pub fn rebind(&self) -> std::io::Result<std::net::SocketAddr> {
        let Some(endpoint) = &self.shared().quic else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "only an HTTP/3 session can move to a new socket",
            ));
        };
        let any = h3ws::quic::unspecified_for(endpoint.local_addr()?);
        h3ws::quic::rebind(endpoint, any)
    }

    /// Idle streams closed so far to free a slot for a waiting one.
    pub fn evictions(&self) -> u64 {
        self.shared().evictions.load(Ordering::Relaxed)
    }

    /// Whether a stream could open now without waiting.
    pub fn has_free_slot(&self) -> bool {
        self.shared().permits.available_permits() > 0
    }

    /// Streams currently open.
    pub fn open_streams(&self) -> usize {
        self.shared().conn().machine.open_streams()
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

    /// Checks the gateway now, because the path to it may have changed: a
    /// ping goes out at once and the session ends unless anything arrives
    /// within `deadline` (see `proto_httvps::client::Client::probe`).
    pub fn probe(&self, deadline: Duration) {
        let shared = self.shared();
        shared.conn().machine.probe(now(), deadline);
        shared.writer.notify_one();
        shared.timer_moved.notify_one();
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
        self.open_with(target, permit)
    }

    /// Opens a stream, waiting up to `wait` (first come, first served) for a
    /// free slot when all are busy. While it waits, the longest-idle stream
    /// is closed to free a slot ([`ClientConfig::evict_idle_after`]),
    /// checked again as streams go idle.
    pub async fn open_wait(
        &self,
        target: TargetAddr,
        wait: Duration,
    ) -> Result<Stream, ClientError> {
        let shared = self.shared();
        let permit = match shared.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(tokio::sync::TryAcquireError::NoPermits) => self.wait_for_slot(wait).await?,
        };
        self.open_with(target, permit)
    }

    async fn wait_for_slot(&self, wait: Duration) -> Result<OwnedSemaphorePermit, ClientError> {
        let shared = self.shared();
        let deadline = Instant::now() + wait;
        let acquire = shared.permits.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            let evicted = shared
                .config
                .evict_idle_after
                .and_then(|min_idle| shared.conn().evict_idle(min_idle));
            if let Some(id) = &evicted {
                debug!(session = %shared.session_id, stream = %id, "closed an idle stream for a waiting one");
                shared.evictions.fetch_add(1, Ordering::Relaxed);
                shared.writer.notify_one();
            }
            // Streams that are busy now may go idle while this one waits; and
            // the slot just freed goes to the first waiter in line, which may
            // be another one: then this one frees the next.
            let recheck = match shared.config.evict_idle_after {
                Some(min_idle) => Instant::now() + min_idle / 2,
                None => deadline,
            };
            tokio::select! {
                biased;
                acquired = &mut acquire => {
                    return acquired.map_err(|_| self.closed_error());
                }
                _ = tokio::time::sleep_until(recheck.min(deadline)) => {
                    if Instant::now() >= deadline {
                        return Err(ClientError::StreamLimitTimeout(wait));
                    }
                }
            }
        }
    }

    fn closed_error(&self) -> ClientError {
        let why = self
            .shared()
            .conn()
            .closed
            .clone()
            .unwrap_or(CloseReason::Local);
        ClientError::SessionClosed(why.to_string())
    }

    fn open_with(
        &self,
        target: TargetAddr,
        permit: OwnedSemaphorePermit,
    ) -> Result<Stream, ClientError> {
        let shared = self.shared();
        let (id, rx, end) = {
            let mut conn = shared.conn();
            if let Some(why) = &conn.closed {
                return Err(ClientError::SessionClosed(why.to_string()));
            }
            // Queues stream_open and the address header together, so the
            // writer sends them in one TLS write and the gateway reads them
            // in one go: a new stream costs one wake-up on each side.
            let id = match conn.machine.open_stream(None, &target) {
                Ok(id) => id,
                Err(CommandError::Stream(e)) => return Err(e.into()),
                Err(e) => return Err(ClientError::SessionClosed(e.to_string())),
            };
            let (tx, rx) = bytes_channel(shared.flow_control, &shared.config);
            let end = Arc::new(EndCell::default());
            conn.slots.insert(
                id.clone(),
                Slot {
                    tx,
                    end: end.clone(),
                    _permit: permit,
                    last_active: Instant::now(),
                    last_from_gateway: false,
                },
            );
            (id, rx, end)
        };
        shared.writer.notify_one();
        // From here dropping the stream sends stream_close and frees the
        // slot, in order (unless the gateway closed it first).
        Ok(Stream::new(id, target, self.guard.clone(), rx, end))
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

async fn drive_writer(shared: Arc<Shared>, mut sink: SplitSink<WsStream, Message>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let result: Result<(), tokio_tungstenite::tungstenite::Error> = async {
        loop {
            {
                let mut conn = shared.conn();
                while batch.len() < MAX_BATCH {
                    match conn.machine.poll_transmit() {
                        Some(t) => batch.push(t),
                        None => break,
                    }
                }
                if !batch.is_empty() {
                    conn.wake_blocked();
                }
            }
            if batch.is_empty() {
                // What was queued before the end is flushed first.
                tokio::select! {
                    biased;
                    _ = shared.writer.notified() => continue,
                    _ = shared.cancel.cancelled() => return Ok(()),
                }
            }
            for transmit in batch.drain(..) {
                sink.feed(to_message(transmit)).await?;
            }
            sink.flush().await?;
            // No stale waker left for the reader's messages to wake (the
            // gateway went 12.5 → 6.9 context switches per new stream).
            net::sink::disarm_flush_waker(&mut sink);
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

/// Stream bytes the reader must hand on after releasing the lock.
struct Delivery {
    id: String,
    tx: BytesTx,
    data: Bytes,
}

async fn drive_reader(shared: Arc<Shared>, mut source: SplitStream<WsStream>) {
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<std::time::Instant> = None;
    loop {
        let deadline = shared.conn().machine.poll_timeout();
        // Reset only when the deadline moved (quinn's `drive_timer`).
        if deadline != armed {
            if let Some(at) = deadline {
                timer.as_mut().reset(Instant::from_std(at));
            }
            armed = deadline;
        }
        let mut delivery = None;
        let ended = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return,
            // The loop's top re-reads the machine's deadline.
            _ = shared.timer_moved.notified() => None,
            message = source.next() => {
                let now = now();
                // A text frame is decoded (base64, for data) before the lock
                // is taken, so streams writing meanwhile are not held up.
                let decoded = match &message {
                    Some(Ok(Message::Text(text))) => {
                        Some(decode_limited(text, shared.config.max_frame_len))
                    }
                    _ => None,
                };
                let mut conn = shared.conn();
                match (&message, decoded) {
                    (_, Some(decoded)) => {
                        if let Some(data) = conn.machine.handle_decoded(now, decoded) {
                            let bytes = match data.payload {
                                Payload::Decoded(bytes) => Bytes::from(bytes),
                                // Never produced for text: only binary
                                // messages carry bytes in place.
                                Payload::InMessage(_) => Bytes::new(),
                            };
                            delivery = to_slot(&mut conn, &data.stream_id, bytes);
                        }
                    }
                    (Some(Ok(Message::Binary(message))), None) => {
                        if let Some(data) = conn.machine.handle_binary(now, message) {
                            // The payload is a slice of the message: no copy.
                            let bytes = match data.payload {
                                Payload::InMessage(at) => message.slice(at..),
                                Payload::Decoded(bytes) => Bytes::from(bytes),
                            };
                            delivery = to_slot(&mut conn, &data.stream_id, bytes);
                        }
                    }
                    (Some(Ok(Message::Close(frame))), None) => match frame {
                        Some(f) => conn.machine.handle_close(Some(f.code.into()), &f.reason),
                        None => conn.machine.handle_close(None, ""),
                    },
                    (Some(Ok(_)), None) => conn.machine.handle_control(now),
                    (Some(Err(e)), None) => conn.machine.handle_transport_error(&e.to_string()),
                    (None, None) => conn.machine.handle_transport_error("connection ended"),
                }
                conn.apply_events(&shared.session_id)
            }
            _ = &mut timer, if armed.is_some() => {
                // Fired: re-arm next round even if the deadline is unchanged.
                armed = None;
                let mut conn = shared.conn();
                conn.machine.handle_timeout(now());
                conn.apply_events(&shared.session_id)
            }
        };
        if shared.conn().machine.queued_transmits() > 0 {
            shared.writer.notify_one();
        }
        if let Some(reason) = ended {
            shared.finish(reason);
            return;
        }
        if let Some(delivery) = delivery {
            deliver(&shared, delivery).await;
        }
    }
}

/// Where bytes for `id` go, if the stream still has a reader.
fn to_slot(conn: &mut Conn, id: &str, data: Bytes) -> Option<Delivery> {
    // Closed streams may still receive frames in flight: dropped quietly.
    let slot = conn.slots.get_mut(id)?;
    slot.last_active = Instant::now();
    slot.last_from_gateway = true;
    Some(Delivery {
        id: id.to_owned(),
        tx: slot.tx.clone(),
        data,
    })
}

/// Hands bytes to a stream: at once with `flow_control` (the window bounds
/// the channel), else waiting at most `stall_timeout` for its reader.
async fn deliver(shared: &Shared, delivery: Delivery) {
    let Delivery { id, tx, data } = delivery;
    let tx = match tx {
        BytesTx::Credited(tx) => {
            // A stream gone meanwhile: its bytes are dropped (the machine
            // already gave their credit back).
            let _ = tx.send(data);
            return;
        }
        BytesTx::Bounded(tx) => tx,
    };
    let data = match tx.try_send(data) {
        Ok(()) => return,
        Err(mpsc::error::TrySendError::Closed(_)) => return,
        Err(mpsc::error::TrySendError::Full(data)) => data,
    };
    if tokio::time::timeout(shared.config.stall_timeout, tx.send(data))
        .await
        .is_ok()
    {
        return;
    }
    warn!(session = %shared.session_id, stream = %id, "stream reader too slow; ending the stream");
    let mut conn = shared.conn();
    if let Some(slot) = conn.slots.remove(&id) {
        slot.end.set(StreamEnd::Local(format!(
            "the reader took longer than {:?} to accept data",
            shared.config.stall_timeout
        )));
    }
    if conn.machine.close_stream(&id, Some("slow_reader")) {
        shared.writer.notify_one();
    }
}
