//! The driver around `proto_ht::server::Server`: one lock, and the
//! dispatch of every action to a connection's writer, a target's task, the
//! resolver or the metrics.
//!
//! Every input takes the lock, calls the machine, drains its actions and
//! dispatches them before letting go, so the encrypted answers of a
//! connection reach its writer in keystream order. Dispatching never waits:
//! it sends on channels, adds read permits, cancels tokens and spawns tasks.
//! The channels to writers are unbounded; what bounds them is the machine
//! (answers follow queries, download packets are capped by windows, by
//! each stream's buffer and by the session's `max_session_buffer`, uploads
//! by `max_buffer` and `max_upload_ahead`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto_ht::server::{Action, ConnId, Event, Refusal, Server, TargetId};
use server_kit::dial::Dialer;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::{dns, metrics, target};

/// What a connection's writer sends next.
#[derive(Debug)]
pub enum Outgoing {
    /// One encrypted answer, as one chunk.
    Chunk(Vec<u8>),
    /// End the body and close.
    End,
}

/// What a target's task writes next, in order.
#[derive(Debug)]
pub enum WriteOp {
    /// Bytes (TCP) or one datagram (UDP).
    Data(Vec<u8>),
    /// Shut down the write side (TCP half-close).
    Shutdown,
}

/// The driver's side of one target.
struct TargetHandle {
    /// One permit per read the machine granted.
    grants: Arc<Semaphore>,
    writes: mpsc::UnboundedSender<WriteOp>,
    cancel: CancellationToken,
}

/// How targets are reached.
pub struct DialSettings {
    /// Resolver and Happy Eyeballs.
    pub dialer: Dialer,
    /// Skip the target policy.
    pub allow_private: bool,
    /// A dial's budget, resolution included.
    pub timeout: Duration,
    /// Largest read of a target.
    pub read_size: usize,
}

struct Inner {
    machine: Server,
    conns: HashMap<ConnId, mpsc::UnboundedSender<Outgoing>>,
    targets: HashMap<TargetId, TargetHandle>,
    armed: Option<Instant>,
    /// Set by [`Core::shutdown`]: later connections are refused, so none
    /// outlives the shutdown.
    closing: bool,
}

/// The machine and its routing tables, shared by every task of a server.
pub struct Core {
    inner: Mutex<Inner>,
    /// Woken when the machine's next deadline moves earlier.
    timer: Notify,
    pub(crate) dial: DialSettings,
}

impl Core {
    pub fn new(machine: Server, dial: DialSettings) -> Arc<Core> {
        Arc::new(Core {
            inner: Mutex::new(Inner {
                machine,
                conns: HashMap::new(),
                targets: HashMap::new(),
                armed: None,
                closing: false,
            }),
            timer: Notify::new(),
            dial,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the tables as they were
        // between two inputs; serving on is better than failing every task.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds one input to the machine and carries out what it asks.
    pub fn with<T>(self: &Arc<Self>, input: impl FnOnce(&mut Server) -> T) -> T {
        let mut inner = self.lock();
        let out = input(&mut inner.machine);
        let events = self.dispatch(&mut inner);
        drop(inner);
        record(events);
        out
    }

    /// The first chunk of a connection: on success the connection's writer
    /// is registered before the answer to that chunk is dispatched.
    pub fn accept(
        self: &Arc<Self>,
        phpsessid: Option<&str>,
        chunk: &mut [u8],
        writer: mpsc::UnboundedSender<Outgoing>,
    ) -> Result<ConnId, Refusal> {
        let mut inner = self.lock();
        if inner.closing {
            return Err(Refusal::Busy);
        }
        let r = inner
            .machine
            .handle_first_chunk(Instant::now(), phpsessid, chunk);
        if let Ok(conn) = r {
            inner.conns.insert(conn, writer);
        }
        let events = self.dispatch(&mut inner);
        drop(inner);
        record(events);
        r
    }

    /// Ends every tunnel connection and target, and refuses new ones.
    pub fn shutdown(self: &Arc<Self>) {
        let mut inner = self.lock();
        inner.closing = true;
        inner.machine.shutdown();
        let events = self.dispatch(&mut inner);
        drop(inner);
        record(events);
    }

    /// The connection is gone, whoever ended it.
    pub fn closed(self: &Arc<Self>, conn: ConnId) {
        let mut inner = self.lock();
        inner.conns.remove(&conn);
        inner.machine.handle_connection_closed(Instant::now(), conn);
        let events = self.dispatch(&mut inner);
        drop(inner);
        record(events);
    }

    /// The machine's next deadline, and a future that fires when it moves.
    pub fn deadline(&self) -> Option<Instant> {
        self.lock().armed
    }

    pub async fn deadline_moved(&self) {
        self.timer.notified().await;
    }

    /// Carries out the machine's actions; returns its events, which the
    /// caller records after releasing the lock (metric lookups hash their
    /// labels: no need to make every other task wait for that).
    fn dispatch(self: &Arc<Self>, inner: &mut Inner) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(action) = inner.machine.poll_action() {
            match action {
                Action::Send { conn, chunk } => {
                    if let Some(tx) = inner.conns.get(&conn) {
                        let _ = tx.send(Outgoing::Chunk(chunk));
                    }
                }
                Action::EndConnection { conn, reason } => {
                    debug!(conn = conn.0, reason = reason.as_str(), "ending connection");
                    if let Some(tx) = inner.conns.get(&conn) {
                        let _ = tx.send(Outgoing::End);
                    }
                }
                Action::Dial {
                    target,
                    host,
                    port,
                    proto,
                } => {
                    let grants = Arc::new(Semaphore::new(0));
                    let (writes, rx) = mpsc::unbounded_channel();
                    let cancel = CancellationToken::new();
                    inner.targets.insert(
                        target,
                        TargetHandle {
                            grants: grants.clone(),
                            writes,
                            cancel: cancel.clone(),
                        },
                    );
                    let spec = target::Spec {
                        id: target,
                        host,
                        port,
                        proto,
                    };
                    tokio::spawn(target::run(self.clone(), spec, grants, rx, cancel));
                }
                Action::Read { target } => {
                    if let Some(t) = inner.targets.get(&target) {
                        t.grants.add_permits(1);
                    }
                }
                Action::Write { target, data } => {
                    if let Some(t) = inner.targets.get(&target) {
                        let _ = t.writes.send(WriteOp::Data(data));
                    }
                }
                Action::ShutdownWrite { target } => {
                    if let Some(t) = inner.targets.get(&target) {
                        let _ = t.writes.send(WriteOp::Shutdown);
                    }
                }
                Action::CloseTarget { target } => {
                    if let Some(t) = inner.targets.remove(&target) {
                        t.cancel.cancel();
                    }
                }
                Action::Resolve { lookup, host, kind } => {
                    tokio::spawn(dns::run(self.clone(), lookup, host, kind));
                }
                Action::Event(event) => events.push(event),
            }
        }
        let next = inner.machine.poll_timeout();
        if next != inner.armed {
            inner.armed = next;
            self.timer.notify_one();
        }
        events
    }
}

fn record(events: Vec<Event>) {
    for event in &events {
        metrics::record(event);
    }
}

/// Runs the machine's timer until `stop`: reclaims idle sessions when due.
pub async fn drive_timer(core: Arc<Core>, stop: CancellationToken) {
    loop {
        let deadline = core.deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = core.deadline_moved() => {}
            _ = sleep => core.with(|m| m.handle_timeout(Instant::now())),
        }
    }
}
