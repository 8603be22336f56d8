//! The crate's one error type. Stream I/O reports `std::io::Error` (tokio's
//! traits demand it); [`Error`] converts into it with a fitting kind.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

/// What went wrong, split as STYLE.md asks: caller misuse, limits, the peer's
/// answer, and local I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key was not standard base64 of exactly 32 bytes.
    #[error("invalid WireGuard key (expected standard base64 of 32 bytes)")]
    InvalidKey,
    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// `add_peer` with a key that is already configured (remove it first).
    #[error("peer {0} is already configured")]
    PeerExists(String),
    /// The peer named by a call is not configured (or was removed).
    #[error("unknown peer")]
    UnknownPeer,
    /// `max_peers` peers are already configured.
    #[error("too many peers (limit {0})")]
    TooManyPeers(usize),
    /// No peer's allowed IPs contain this destination.
    #[error("no peer routes to {0}")]
    NoRoute(Ipv4Addr),
    /// Another listener already owns this tunnel port.
    #[error("tunnel port {0} is already listened on")]
    PortInUse(u16),
    /// Port 0 was given to `listen` (tunnel ports are chosen by the caller).
    #[error("port 0 cannot be listened on")]
    InvalidPort,
    /// `max_connections` TCP sockets are already open.
    #[error("too many connections (limit {0})")]
    TooManyConnections(usize),
    /// Every ephemeral port is taken by an outgoing connection.
    #[error("no free local port for an outgoing connection")]
    NoFreePort,
    /// The remote end answered the SYN with a reset: nobody listens there.
    #[error("connection to {0} refused")]
    ConnectionRefused(SocketAddrV4),
    /// No answer within the configured connect timeout.
    #[error("connection to {0} timed out")]
    ConnectTimeout(SocketAddrV4),
    /// The node's driver has stopped (shutdown, or the last handle dropped).
    #[error("WireGuard node is shut down")]
    NodeClosed,
    /// Local I/O failed (setting up the UDP socket).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::ConnectionRefused(_) => io::ErrorKind::ConnectionRefused,
            Error::ConnectTimeout(_) => io::ErrorKind::TimedOut,
            Error::NodeClosed => io::ErrorKind::NotConnected,
            Error::PortInUse(_) => io::ErrorKind::AddrInUse,
            Error::NoRoute(_) => io::ErrorKind::HostUnreachable,
            Error::NoFreePort => io::ErrorKind::AddrNotAvailable,
            Error::InvalidKey | Error::InvalidConfig(_) | Error::InvalidPort => {
                io::ErrorKind::InvalidInput
            }
            Error::Io(e) => e.kind(),
            _ => io::ErrorKind::Other,
        };
        match error {
            Error::Io(e) => e,
            other => io::Error::new(kind, other),
        }
    }
}

/// Crate result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
