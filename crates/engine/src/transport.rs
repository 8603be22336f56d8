//! The engine's view of a tunnel, so that transports other than HTTVPS (HT
//! over chunked HTTP, HTTVPS over HTTP/3) can plug in without the proxy
//! front-end or the UI changing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use local_proxy::{BoxStream, ConnectError};
use proto_httvps::TargetAddr;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A way to reach the far side. `connect` makes one session; the session
/// manager calls it again after a loss.
pub trait Transport: Send + Sync + 'static {
    /// The server, for the UI (`wss://gw.example/ws`).
    fn server(&self) -> String;
    /// Makes a new session (fetching fresh credentials if needed).
    fn connect(&self) -> BoxFuture<'_, Result<Arc<dyn TunnelSession>, TransportError>>;
}

/// One live session of a transport.
pub trait TunnelSession: Send + Sync + 'static {
    /// The server's id for the session.
    fn session_id(&self) -> String;
    /// How many streams may be open at once.
    fn max_streams(&self) -> u32;
    /// Opens a stream to `target`, waiting up to `slot_wait` for a free slot.
    fn open(
        &self,
        target: TargetAddr,
        slot_wait: Duration,
    ) -> BoxFuture<'_, Result<OpenedStream, ConnectError>>;
    /// Resolves when the session ends, with the reason for people.
    fn closed(&self) -> BoxFuture<'_, String>;
    /// Ends the session.
    fn close(&self);
}

/// A stream the transport opened.
pub struct OpenedStream {
    /// The bytes.
    pub stream: BoxStream,
    /// The transport's id for it (`s1`, …).
    pub stream_id: String,
}

/// A session could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// Stable code (`auth_failed`, `handshake_failed`, `control_plane_error`, …).
    pub code: String,
    /// What happened, for people.
    pub message: String,
    /// Whether retrying cannot help (refused credentials, bad configuration).
    pub fatal: bool,
}
