//! The seam between the proxy front-end and whatever carries the bytes:
//! streams for SOCKS5 `CONNECT` and HTTP, datagrams for SOCKS5
//! `UDP ASSOCIATE` where the active transport carries them.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use net::{Datagram, TargetAddr};
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a target: what a [`Connector`] hands back.
pub trait ProxyStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ProxyStream for T {}

/// A boxed [`ProxyStream`].
pub type BoxStream = Box<dyn ProxyStream>;

/// Which proxy protocol the client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// SOCKS5 `CONNECT`.
    Socks5,
    /// HTTP `CONNECT host:port` (a raw tunnel, usually for TLS).
    HttpConnect,
    /// A plain `http://` request in absolute form, forwarded by the proxy.
    HttpForward,
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyProtocol::Socks5 => "socks5",
            ProxyProtocol::HttpConnect => "http-connect",
            ProxyProtocol::HttpForward => "http-forward",
        })
    }
}

/// What the proxy asks a [`Connector`] for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Where the client wants to go. Domain names are never resolved here.
    pub target: TargetAddr,
    /// The client's address, for logs and policy.
    pub client: SocketAddr,
    /// How the client asked.
    pub protocol: ProxyProtocol,
}

/// Why a connection to a target could not be made; drives the SOCKS reply
/// code and the HTTP status the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// The target actively refused the connection.
    Refused,
    /// No route to the target host or network, or its name does not resolve.
    Unreachable,
    /// Policy forbids this target.
    NotAllowed,
    /// Connecting to the target took too long.
    TimedOut,
    /// No tunnel slot became free in time.
    Busy,
    /// The tunnel is down or reconnecting.
    Unavailable,
    /// The active transport cannot carry this (UDP over a stream-only tunnel).
    Unsupported,
    /// Anything else.
    Other,
}

impl fmt::Display for ConnectErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectErrorKind::Refused => "connection refused",
            ConnectErrorKind::Unreachable => "target unreachable",
            ConnectErrorKind::NotAllowed => "not allowed",
            ConnectErrorKind::TimedOut => "timed out",
            ConnectErrorKind::Busy => "no tunnel slot available",
            ConnectErrorKind::Unavailable => "tunnel unavailable",
            ConnectErrorKind::Unsupported => "not supported by this tunnel",
            ConnectErrorKind::Other => "connect failed",
        })
    }
}

/// A failed [`Connector::connect`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ConnectError {
    /// The class of failure, which picks the reply code.
    pub kind: ConnectErrorKind,
    /// Details for logs and for the text of HTTP error responses. Must not
    /// hold secrets: clients see it.
    pub message: String,
}

impl ConnectError {
    /// Builds an error of `kind`.
    pub fn new(kind: ConnectErrorKind, message: impl Into<String>) -> Self {
        ConnectError {
            kind,
            message: message.into(),
        }
    }
}

impl From<io::Error> for ConnectError {
    /// Classifies an error from dialing a socket.
    fn from(err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::ConnectionRefused => ConnectErrorKind::Refused,
            io::ErrorKind::TimedOut => ConnectErrorKind::TimedOut,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectErrorKind::Unreachable
            }
            io::ErrorKind::PermissionDenied => ConnectErrorKind::NotAllowed,
            _ => ConnectErrorKind::Other,
        };
        ConnectError::new(kind, err.to_string())
    }
}

/// The future a [`Connector`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<BoxStream, ConnectError>> + Send>>;

/// A boxed, sendable future borrowing from its owner.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the proxy asks a [`Connector`] for on SOCKS5 `UDP ASSOCIATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociateRequest {
    /// The client's TCP control connection address, for logs and policy.
    pub client: SocketAddr,
}

/// The far side of one UDP association: datagrams to any target go out
/// through `send`, and replies from any target come back through `recv`.
///
/// Both take `&self` so one driver task can wait on the client's socket and
/// on `recv` at once; implementations keep their receiver behind a lock.
pub trait DatagramChannel: Send + Sync + 'static {
    /// Sends one datagram towards `datagram.target`. Backpressure: this waits
    /// while the transport's queue is full; an error ends the association.
    fn send(&self, datagram: Datagram) -> BoxFuture<'_, Result<(), ConnectError>>;
    /// The next datagram from any target (its `target` is the sender);
    /// `None` once the association is over.
    fn recv(&self) -> BoxFuture<'_, Option<Datagram>>;
}

/// A boxed [`DatagramChannel`].
pub type BoxDatagrams = Box<dyn DatagramChannel>;

/// The future [`Connector::associate`] returns.
pub type AssociateFuture = Pin<Box<dyn Future<Output = Result<BoxDatagrams, ConnectError>> + Send>>;

/// Opens byte streams to targets; the engine implements it over the tunnel.
///
/// The proxy does not put a deadline on `connect`: the connector owns its
/// timeouts and reports them as [`ConnectErrorKind::TimedOut`] or
/// [`ConnectErrorKind::Busy`].
///
/// Any `Fn(ConnectRequest) -> impl Future<Output = Result<BoxStream, ConnectError>>`
/// closure is a connector too.
pub trait Connector: Send + Sync + 'static {
    /// Opens a stream to `request.target`.
    fn connect(
        &self,
        request: ConnectRequest,
    ) -> Pin<Box<dyn Future<Output = Result<BoxStream, ConnectError>> + Send + 'static>>;

    /// Opens a UDP association (SOCKS5 `UDP ASSOCIATE`). The default refuses
    /// with [`ConnectErrorKind::Unsupported`], which the client sees as
    /// SOCKS reply 0x07 "command not supported": a stream-only transport
    /// (HTTVPS) says so clearly instead of pretending.
    fn associate(&self, request: AssociateRequest) -> AssociateFuture {
        let _ = request;
        Box::pin(async {
            Err(ConnectError::new(
                ConnectErrorKind::Unsupported,
                "the active tunnel carries no UDP",
            ))
        })
    }
}

impl<F, Fut> Connector for F
where
    F: Fn(ConnectRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BoxStream, ConnectError>> + Send + 'static,
{
    fn connect(&self, request: ConnectRequest) -> ConnectFuture {
        Box::pin(self(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_kinds() {
        let e = ConnectError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(e.kind, ConnectErrorKind::Refused);
        let e = ConnectError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(e.kind, ConnectErrorKind::TimedOut);
        let e = ConnectError::from(io::Error::from(io::ErrorKind::HostUnreachable));
        assert_eq!(e.kind, ConnectErrorKind::Unreachable);
        let e = ConnectError::from(io::Error::other("x"));
        assert_eq!(e.kind, ConnectErrorKind::Other);
    }

    #[test]
    fn display_has_kind_and_message() {
        let e = ConnectError::new(ConnectErrorKind::Busy, "all 8 slots in use");
        assert_eq!(
            e.to_string(),
            "no tunnel slot available: all 8 slots in use"
        );
    }
}
