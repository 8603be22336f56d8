//! Inbound modes: this machine serves what arrives through a server, instead
//! of sending its apps' connections out. The HLHV cell publishes a local web
//! app through a queen; the Relay share lets colleagues reach local ports.
//!
//! A [`Publisher`] makes [`Publication`]s the way a
//! [`Transport`](crate::Transport) makes tunnel sessions, and the engine
//! supervises them with the same lifecycle (authenticating, active,
//! reconnecting with backoff, disconnected). Each inbound connection a
//! publication serves goes through [`Inbound::accept`], so it appears in the
//! same live table, with byte counts and a close reason, as outbound streams.
//! A publisher that serves HTTP requests rather than byte streams (the HLHV
//! cell) records each request with [`Inbound::request`] instead: one row per
//! request, closed with its status and duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use local_proxy::BoxStream;
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::table::{Counted, Counters, StreamTable};
use crate::transport::{BoxFuture, TransportError};

/// A way to publish something of this machine through a server.
pub trait Publisher: Send + Sync + 'static {
    /// The server, for the UI (`https://queen.example`).
    fn server(&self) -> String;
    /// Makes a new publication (fetching fresh credentials if needed); its
    /// inbound connections are recorded through `inbound`.
    fn connect(
        &self,
        inbound: Inbound,
    ) -> BoxFuture<'_, Result<Arc<dyn Publication>, TransportError>>;
}

/// One live publication.
pub trait Publication: Send + Sync + 'static {
    /// The server's id for it.
    fn session_id(&self) -> String;
    /// Where others reach what is published (URLs, `host:port`).
    fn endpoints(&self) -> Vec<String>;
    /// Resolves when the publication ends, with the reason for people.
    fn closed(&self) -> BoxFuture<'_, String>;
    /// Ends the publication.
    fn close(&self);
}

/// Records inbound connections in the engine's live table. Cheap to clone.
#[derive(Clone)]
pub struct Inbound {
    table: StreamTable,
    events: broadcast::Sender<EngineEvent>,
}

impl Inbound {
    pub(crate) fn new(table: StreamTable, events: broadcast::Sender<EngineEvent>) -> Inbound {
        Inbound { table, events }
    }

    /// Records a connection from `peer` to the local `service`, known to the
    /// server as `stream_id`; returns `stream` counted into its row (reads
    /// are what the peer sent, "up" what we answered), closed in the table
    /// when dropped.
    pub fn accept(
        &self,
        peer: &str,
        service: &str,
        stream_id: &str,
        stream: BoxStream,
    ) -> BoxStream {
        let (key, counters) = self
            .table
            .insert(service.to_owned(), peer.to_owned(), "inbound");
        if let Some(info) = self.table.opened(key, stream_id, 0) {
            let _ = self.events.send(EngineEvent::StreamOpened(info));
        }
        let (table, events) = (self.table.clone(), self.events.clone());
        Box::new(Counted::new(stream, counters).on_close(move |reason| {
            if let Some(info) = table.close(key, reason) {
                let _ = events.send(EngineEvent::StreamClosed(info));
            }
        }))
    }

    /// Records one HTTP request from `peer` (the public client's address),
    /// described as `request` (`GET /path`) and served over `connection`
    /// (the band, shown as the row's stream id). The row stays open while
    /// the request is served and is closed by [`InboundRequest::finish`]
    /// with the status and duration, or as `aborted` if dropped first.
    pub fn request(&self, peer: &str, request: &str, connection: &str) -> InboundRequest {
        let (key, counters) =
            self.table
                .insert(request.to_owned(), peer.to_owned(), REQUEST_PROTOCOL);
        if let Some(info) = self.table.opened(key, connection, 0) {
            let _ = self.events.send(EngineEvent::StreamOpened(info));
        }
        InboundRequest {
            inbound: self.clone(),
            key,
            counters,
            started: Instant::now(),
            done: false,
        }
    }
}

/// The protocol column of request rows.
pub const REQUEST_PROTOCOL: &str = "inbound_http";

/// One request's row in the live table, from [`Inbound::request`]. Bytes
/// are counted as for streams: "down" is what the peer sent (the request
/// body), "up" what we answered (the response body).
pub struct InboundRequest {
    inbound: Inbound,
    key: u64,
    counters: Arc<Counters>,
    started: Instant,
    done: bool,
}

impl InboundRequest {
    /// Counts request body bytes received from the peer.
    pub fn add_received(&self, n: usize) {
        self.counters.add_down(n);
    }

    /// Counts response body bytes sent to the peer.
    pub fn add_sent(&self, n: usize) {
        self.counters.add_up(n);
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Closes the row: its close reason is the status and the duration,
    /// `"200 in 12 ms"` (the table has no duration column, and the reason
    /// is what every front-end already shows for a closed row).
    pub fn finish(mut self, status: u16) {
        let ms = self.started.elapsed().as_millis();
        self.close(format!("{status} in {ms} ms"));
    }

    /// Closes the row with another reason (the band broke mid-response).
    pub fn fail(mut self, reason: &str) {
        self.close(reason.to_owned());
    }

    fn close(&mut self, reason: String) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(info) = self.inbound.table.close(self.key, reason) {
            let _ = self.inbound.events.send(EngineEvent::StreamClosed(info));
        }
    }
}

impl Drop for InboundRequest {
    fn drop(&mut self) {
        self.close("aborted".to_owned());
    }
}
