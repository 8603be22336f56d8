//! Direct dialing under the target policy: the one path every server takes
//! from a client-named target to a socket.
//!
//! A name is resolved on the server (hickory, [`Dialer::resolve`]), then
//! *every* resolved address is checked under [`net::TargetPolicy`] before
//! any is dialed, so a name resolving to both a public and a private address
//! cannot reach the private one. A "name" that is really an IPv4 address in
//! a spelling resolvers accept (`2130706433`, `0x7f.1`) is judged as that
//! address ([`as_literal`]). TCP then races the addresses (RFC 8305,
//! [`crate::dial`]); UDP connects one socket to the first address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use net::TargetAddr;
use net::policy::Refused;
use tokio::net::{TcpStream, UdpSocket};

use crate::dial::{self, Dialer};

/// Why a direct dial failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The target (or one of its addresses) is refused by the policy.
    #[error("target {0}")]
    NotAllowed(#[from] Refused),
    /// Port 0 names no service.
    #[error("target {0} has port 0")]
    PortZero(String),
    /// The name could not be resolved.
    #[error("cannot resolve {name}: {source}")]
    Resolve {
        /// The name.
        name: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The name resolved to no address.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// Every connection attempt failed (refused, unreachable, timed out).
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The target.
        target: String,
        /// The most telling attempt's error.
        #[source]
        source: io::Error,
    },
    /// The whole dial, resolution included, took longer than allowed.
    #[error("connecting to {target} timed out after {after:?}")]
    TimedOut {
        /// The target.
        target: String,
        /// The budget.
        after: Duration,
    },
}

impl DialError {
    /// The I/O error kind of a failed connection, when there is one (for
    /// sorting failures into "refused", "unreachable", "timeout").
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            DialError::Connect { source, .. } => Some(source.kind()),
            DialError::TimedOut { .. } => Some(io::ErrorKind::TimedOut),
            _ => None,
        }
    }
}

/// A "name" that is really an IPv4 address in a spelling resolvers accept
/// becomes that address, so the policy judges it here rather than letting a
/// resolver turn it into a loopback or private address behind our back.
pub fn as_literal(target: &TargetAddr) -> TargetAddr {
    match target {
        TargetAddr::Domain(name, port) => match net::policy::parse_ipv4_lenient(name) {
            Some(ip) => TargetAddr::Ip(SocketAddr::new(IpAddr::V4(ip), *port)),
            None => target.clone(),
        },
        TargetAddr::Ip(_) => target.clone(),
    }
}

/// Checks `addrs` of `target` under the policy (`allow_private` skips it).
pub fn check_policy(
    target: &TargetAddr,
    allow_private: bool,
    addrs: impl IntoIterator<Item = IpAddr>,
) -> Result<(), DialError> {
    net::TargetPolicy { allow_private }
        .check(target, addrs)
        .map_err(DialError::from)
}

/// Resolves `target` (an IP literal stays itself) and checks every address
/// under the policy; the addresses come back in the resolver's order.
pub async fn resolve_checked(
    dialer: &Dialer,
    target: &TargetAddr,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, DialError> {
    let target = &as_literal(target);
    if target.port() == 0 {
        return Err(DialError::PortZero(target.to_string()));
    }
    let addrs: Vec<SocketAddr> = match target {
        TargetAddr::Ip(sa) => vec![*sa],
        TargetAddr::Domain(name, port) => {
            dialer
                .resolve(name, *port)
                .await
                .map_err(|source| DialError::Resolve {
                    name: name.clone(),
                    source,
                })?
        }
    };
    if addrs.is_empty() {
        return Err(DialError::NoAddress(target.to_string()));
    }
    // Every address is checked before any is dialed.
    check_policy(target, allow_private, addrs.iter().map(|sa| sa.ip()))?;
    Ok(addrs)
}

/// Resolves and checks `target`, then races TCP connections to its
/// addresses (RFC 8305), all within `budget`; the winner has Nagle off.
pub async fn connect_tcp(
    dialer: &Dialer,
    target: &TargetAddr,
    allow_private: bool,
    budget: Duration,
) -> Result<TcpStream, DialError> {
    let started = Instant::now();
    let timed_out = || DialError::TimedOut {
        target: target.to_string(),
        after: budget,
    };
    let addrs = tokio::time::timeout(budget, resolve_checked(dialer, target, allow_private))
        .await
        .map_err(|_| timed_out())??;
    let addrs = dial::interleave(addrs);
    let left = budget.saturating_sub(started.elapsed());
    dial::connect_tcp(&addrs, dialer.options(), left)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::TimedOut => timed_out(),
            _ => DialError::Connect {
                target: target.to_string(),
                source,
            },
        })
}

/// Resolves and checks `target`, then binds a UDP socket of the first
/// address's family and connects it there (so only that peer's datagrams
/// are received), all within `budget`.
pub async fn connect_udp(
    dialer: &Dialer,
    target: &TargetAddr,
    allow_private: bool,
    budget: Duration,
) -> Result<UdpSocket, DialError> {
    let attempt = async {
        let addrs = resolve_checked(dialer, target, allow_private).await?;
        let peer = addrs[0];
        let local: SocketAddr = match peer {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let connect_error = |source| DialError::Connect {
            target: target.to_string(),
            source,
        };
        let socket = UdpSocket::bind(local).await.map_err(connect_error)?;
        socket.connect(peer).await.map_err(connect_error)?;
        Ok(socket)
    };
    tokio::time::timeout(budget, attempt)
        .await
        .map_err(|_| DialError::TimedOut {
            target: target.to_string(),
            after: budget,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        let dialer = Dialer::default();
        let loopback = TargetAddr::Ip("127.0.0.1:9".parse().unwrap());
        assert!(matches!(
            resolve_checked(&dialer, &loopback, false).await,
            Err(DialError::NotAllowed(_))
        ));
        assert!(resolve_checked(&dialer, &loopback, true).await.is_ok());
        // A number resolvers read as 127.0.0.1 is judged as that address.
        let sneaky = TargetAddr::Domain("2130706433".into(), 80);
        assert!(matches!(
            resolve_checked(&dialer, &sneaky, false).await,
            Err(DialError::NotAllowed(_))
        ));
        let names_loopback = TargetAddr::Domain("localhost".into(), 80);
        assert!(matches!(
            resolve_checked(&dialer, &names_loopback, false).await,
            Err(DialError::NotAllowed(_))
        ));
        let port_zero = TargetAddr::Ip("8.8.8.8:0".parse().unwrap());
        assert!(matches!(
            resolve_checked(&dialer, &port_zero, false).await,
            Err(DialError::PortZero(_))
        ));
    }

    #[tokio::test]
    async fn tcp_and_udp_connect_to_loopback_when_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = TargetAddr::Ip(addr);
        let dialer = Dialer::default();
        let budget = Duration::from_secs(5);
        let (tcp, accepted) = tokio::join!(
            connect_tcp(&dialer, &target, true, budget),
            listener.accept()
        );
        assert_eq!(tcp.unwrap().peer_addr().unwrap(), addr);
        accepted.unwrap();
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_target = TargetAddr::Ip(echo.local_addr().unwrap());
        let udp = connect_udp(&dialer, &udp_target, true, budget)
            .await
            .unwrap();
        udp.send(b"ping").await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = echo.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from.port(), udp.local_addr().unwrap().port());
    }
}
