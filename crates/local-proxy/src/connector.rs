//! The seam between the proxy front-end and whatever carries the bytes.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use proto_httvps::TargetAddr;
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
