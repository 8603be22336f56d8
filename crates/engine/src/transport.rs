//! The engine's view of a tunnel, so that every outbound protocol (HTTVPS
//! over WebSocket or HTTP/3, HT over chunked HTTP) plugs in without the proxy
//! front-end or the UI changing.
//!
//! The interface is small on purpose (like sing-box's outbound or h3's QUIC
//! traits): a [`Transport`] makes [`TunnelSession`]s, a session opens streams,
//! and optional abilities are asked for, never matched on by protocol:
//! [`TunnelSession::datagrams`] (UDP, for SOCKS5 `UDP ASSOCIATE`) and
//! [`TunnelSession::resolver`] (DNS through the tunnel).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;

use local_proxy::{BoxDatagrams, BoxStream, ConnectError};
use net::{ErrorCode, TargetAddr};

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
    /// The path to the server may have changed (a new default route or
    /// address, a wake-up from sleep): checks the session now, ending it
    /// (so [`TunnelSession::closed`] resolves) unless the server answers
    /// within `deadline`. Returns whether the protocol can check on demand;
    /// one that cannot (the default) is left to its own keepalive.
    fn probe(&self, deadline: Duration) -> bool {
        let _ = deadline;
        false
    }
    /// The session's datagram ability, when its protocol carries UDP.
    /// `None` (the default) makes SOCKS5 `UDP ASSOCIATE` fail with a clear
    /// "command not supported".
    fn datagrams(&self) -> Option<&dyn DatagramSession> {
        None
    }
    /// The session's remote resolver, when its protocol can ask the far side
    /// to resolve names (so that no DNS query leaves this machine in clear).
    fn resolver(&self) -> Option<&dyn Resolver> {
        None
    }
    /// How stream slots fared: connections to the server (a pool may hold
    /// several), opens that had to wait for a slot, idle streams closed to
    /// free one. The default is one connection, never counted.
    fn slot_stats(&self) -> SlotStats {
        SlotStats {
            connections: 1,
            ..SlotStats::default()
        }
    }
}

/// Stream slot figures of a session, for the live table and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// Connections to the server the session uses now.
    pub connections: u32,
    /// Opens that found every slot busy.
    pub slot_waits: u64,
    /// Idle streams closed to free a slot for a waiting one.
    pub evictions: u64,
}

/// UDP through a tunnel session.
pub trait DatagramSession: Send + Sync {
    /// Opens one association: datagrams to any target, replies from any.
    fn associate(&self) -> BoxFuture<'_, Result<BoxDatagrams, ConnectError>>;
}

/// DNS through a tunnel session.
pub trait Resolver: Send + Sync {
    /// The records answering `question`, as the far side's resolver gives
    /// them and in its order: addresses for `A`/`AAAA`, names for `PTR`. An
    /// empty list means the name exists without a record of that type; a
    /// name that does not exist, or a resolver failure, is an error of kind
    /// [`local_proxy::ConnectErrorKind::Unreachable`].
    fn lookup(&self, question: DnsQuestion) -> BoxFuture<'_, Result<Vec<DnsRecord>, ConnectError>>;
}

/// A question for a [`Resolver`]: the record types a tunnel can carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DnsQuestion {
    /// IPv4 addresses of a name.
    A(String),
    /// IPv6 addresses of a name.
    Aaaa(String),
    /// The names of an address (reverse lookup).
    Ptr(IpAddr),
}

/// One record of a [`Resolver`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DnsRecord {
    /// An address (`A` or `AAAA`).
    Addr(IpAddr),
    /// A name (`PTR`), without the trailing dot.
    Name(String),
}

/// A stream the transport opened.
pub struct OpenedStream {
    /// The bytes.
    pub stream: BoxStream,
    /// The transport's id for it (`s1`, …).
    pub stream_id: String,
}

/// A session could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// Stable code (`auth_failed`, `handshake_failed`, …); fatal codes stop
    /// the reconnect loop.
    pub code: ErrorCode,
    /// What happened, for people.
    pub message: String,
}

impl TransportError {
    /// An error with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> TransportError {
        TransportError {
            code,
            message: message.into(),
        }
    }

    /// Whether retrying cannot help (refused credentials, bad configuration).
    pub fn is_fatal(&self) -> bool {
        self.code.is_fatal()
    }
}
