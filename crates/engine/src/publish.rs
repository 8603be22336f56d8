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

use std::sync::Arc;

use local_proxy::BoxStream;
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::table::{Counted, StreamTable};
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
}
