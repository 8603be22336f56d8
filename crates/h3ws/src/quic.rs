//! QUIC settings both sides share: ALPN `h3`, TLS 1.3 only (QUIC allows
//! nothing else), and the public proxy's idle timeout and keep-alive
//! (CONTRACTS.md §3: 60 s idle, 20 s keep-alive).

use std::sync::Arc;
use std::time::Duration;

/// The ALPN protocol of HTTP/3.
pub const ALPN: &[u8] = b"h3";

/// Idle timeout and keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub idle_timeout: Duration,
    pub keep_alive: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            idle_timeout: Duration::from_secs(60),
            keep_alive: Duration::from_secs(20),
        }
    }
}

/// Why an endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The TLS configuration cannot serve QUIC (no TLS 1.3 cipher suite).
    #[error("TLS configuration unusable for QUIC: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The largest UDP payload we accept, advertised to the peer
/// (`max_udp_payload_size`), so that MTU discovery can use what the path
/// carries: 65,536 bytes on loopback, 9,000 with jumbo frames. quinn's
/// default, 1,472, held HTTP/3 on loopback to 1,472-byte packets, each
/// encrypted, tracked and acknowledged on its own. The receive buffer
/// stays at 2 MiB ([`crate::udp::BatchLimited`]).
pub const MAX_UDP_PAYLOAD: u16 = 65_527;

/// quinn's initial congestion window: ten datagrams of QUIC's minimum size
/// (RFC 9002 §7.2), as quinn's default.
const INITIAL_WINDOW: u64 = 10 * 1200;

/// quinn's default bound for MTU discovery: a 1,500-byte Ethernet path.
const ETHERNET_PAYLOAD: u16 = 1452;

/// What the route toward one peer carries, so that each connection's MTU
/// discovery and initial window fit its path: 64 KB datagrams where the
/// route allows them (loopback, jumbo frames), quinn's defaults elsewhere.
/// Without the bound an internet connection would start with a window of
/// 143 KB instead of 12 KB, and send 64 KB probes that are always lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    max_udp_payload: u16,
}

impl Path {
    /// A path of unknown size: quinn's defaults (1,500-byte Ethernet).
    pub const ETHERNET: Path = Path {
        max_udp_payload: ETHERNET_PAYLOAD,
    };

    /// The route toward `peer` as the kernel knows it (`IP_MTU` of a
    /// connected UDP socket; nothing is sent); [`Path::ETHERNET`] when the
    /// kernel cannot tell.
    pub fn toward(peer: std::net::SocketAddr) -> Path {
        route_mtu(peer).map_or(Path::ETHERNET, |mtu| {
            Path::from_route_mtu(mtu, canonical(peer).is_ipv6())
        })
    }

    /// The path of a route with MTU `mtu` (the IP packet size): its UDP
    /// payload up to [`MAX_UDP_PAYLOAD`]; [`Path::ETHERNET`] for routes of
    /// 1,500 bytes or less, where the next hops are often smaller still.
    pub fn from_route_mtu(mtu: u32, ipv6: bool) -> Path {
        if mtu <= 1500 {
            return Path::ETHERNET;
        }
        // IP and UDP headers; IPv4's length field caps its payload too.
        let (header, cap) = if ipv6 { (48, 65_527) } else { (28, 65_507) };
        let payload = mtu.saturating_sub(header).min(cap);
        let max_udp_payload = u16::try_from(payload)
            .unwrap_or(u16::MAX)
            .min(MAX_UDP_PAYLOAD);
        Path { max_udp_payload }
    }

    /// The largest UDP payload the route carries.
    pub fn max_udp_payload(self) -> u16 {
        self.max_udp_payload
    }

    /// Whether MTU discovery may go past quinn's default bound.
    fn is_wide(self) -> bool {
        self.max_udp_payload > ETHERNET_PAYLOAD
    }

    /// Cubic as quinn's default, with room in the initial window on wide
    /// paths for MTU discovery at the route's size: one probe in flight,
    /// and one datagram of the size it found (quinn sends only while a
    /// full-size datagram fits in the window). quinn sends its first probe
    /// right after the handshake and counts it in flight: with the default
    /// window a 33 KB probe held back the tunnel's `hello` and the first
    /// request a round trip each (cold connect through the bench's 25 ms
    /// link: h3 went from 0.68× to 1.04× of h1; room for the probe alone
    /// still left the first request waiting, 1.03×).
    fn congestion(self) -> quinn::congestion::CubicConfig {
        let mut cubic = quinn::congestion::CubicConfig::default();
        if self.is_wide() {
            cubic.initial_window(INITIAL_WINDOW + 2 * u64::from(self.max_udp_payload));
        }
        cubic
    }
}

/// `peer` with an IPv4-mapped IPv6 address (a dual-stack server's view of
/// an IPv4 client) as the IPv4 address it is.
fn canonical(peer: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// The MTU of the kernel's route toward `peer`.
#[cfg(target_os = "linux")]
fn route_mtu(peer: std::net::SocketAddr) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let peer = canonical(peer);
    let socket = std::net::UdpSocket::bind(unspecified_for(peer)).ok()?;
    // Connecting a UDP socket only picks the route.
    socket.connect(peer).ok()?;
    let (level, name) = if peer.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the socket is open for the call, and `mtu` and `len` are
    // valid for writes of the sizes given (std and socket2 offer no
    // getter for this option).
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut mtu).cast(),
            &raw mut len,
        )
    };
    (rc == 0).then(|| u32::try_from(mtu).ok()).flatten()
}

#[cfg(not(target_os = "linux"))]
fn route_mtu(_peer: std::net::SocketAddr) -> Option<u32> {
    None
}

fn transport(timing: Timing, max_bidi_streams: u32, path: Path) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(timing.idle_timeout.try_into().ok());
    t.keep_alive_interval(Some(timing.keep_alive));
    t.max_concurrent_bidi_streams(max_bidi_streams.into());
    // Control and the two QPACK streams, and room for grease.
    t.max_concurrent_uni_streams(8u32.into());
    // Discovery goes as far as the route carries (quinn: any bound is
    // safe, a higher one only makes discovery take longer).
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(path.max_udp_payload);
    t.mtu_discovery_config(Some(mtu));
    // Windows large enough for a single stream at full speed on a fast
    // link (quinn's defaults assume 100 Mbit/s at 100 ms).
    t.stream_receive_window((8u32 << 20).into());
    t.receive_window((32u32 << 20).into());
    t.send_window(32 << 20);
    t.congestion_controller_factory(Arc::new(path.congestion()));
    Arc::new(t)
}

/// A server's QUIC configuration, made per connection for the path toward
/// its peer ([`Path::toward`]); see `server::accept_early`.
#[derive(Clone)]
pub struct ServerConfigs {
    base: quinn::ServerConfig,
    timing: Timing,
    max_bidi_streams: u32,
}

impl ServerConfigs {
    /// The configuration for a connection from `peer`.
    pub fn for_peer(&self, peer: std::net::SocketAddr) -> Arc<quinn::ServerConfig> {
        self.for_path(Path::toward(peer))
    }

    fn for_path(&self, path: Path) -> Arc<quinn::ServerConfig> {
        let mut config = self.base.clone();
        config.transport_config(transport(self.timing, self.max_bidi_streams, path));
        Arc::new(config)
    }
}

/// A server endpoint on `addr` with `tls` (its ALPN set to `h3` here), and
/// the configurations its connections are accepted with.
pub fn server_endpoint(
    addr: std::net::SocketAddr,
    mut tls: rustls::ServerConfig,
    timing: Timing,
    max_bidi_streams: u32,
) -> Result<(quinn::Endpoint, ServerConfigs), QuicError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| QuicError::Tls(e.to_string()))?;
    let configs = ServerConfigs {
        base: quinn::ServerConfig::with_crypto(Arc::new(crypto)),
        timing,
        max_bidi_streams,
    };
    // The endpoint's own configuration only lets it accept at all; each
    // connection is accepted with the one for its path.
    let fallback = Arc::unwrap_or_clone(configs.for_path(Path::ETHERNET));
    Ok((endpoint(addr, Some(fallback))?, configs))
}

/// Socket buffers asked for (the kernel caps them at `net.core.rmem_max`
/// and `wmem_max`). The default 208 KiB overflowed at full speed on
/// loopback: 130–190 datagrams dropped per 256 MiB (the bench's count of
/// the kernel's receive-buffer errors), each a loss that shrank QUIC's
/// congestion window.
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket on `addr` with [`SOCKET_BUFFER`]-sized buffers.
pub fn udp_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Both families on `[::]`, as the standard library's bind does not
        // promise but Linux does by default.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint, QuicError> {
    let bind = |source| QuicError::Bind { addr, source };
    endpoint_on(udp_socket(addr).map_err(bind)?, server).map_err(bind)
}

/// An endpoint on `socket` (bound by the caller, its buffers as it wants
/// them), with what every endpoint of ours needs: the datagram size we
/// accept ([`MAX_UDP_PAYLOAD`]) and sends cut to what the kernel takes
/// ([`crate::udp::BatchLimited`]). An endpoint made without them but with
/// [`client_config`]'s MTU discovery stalls against a server of ours: it
/// discovers 64 KB datagrams and every batch of them fails.
pub fn endpoint_on(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime = runtime()?;
    let socket = wrap_socket(&*runtime, socket)?;
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .expect("a UDP payload size within QUIC's bounds");
    quinn::Endpoint::new_with_abstract_socket(config, server, socket, runtime)
}

/// The tokio runtime quinn runs on (the caller's).
fn runtime() -> std::io::Result<Arc<dyn quinn::Runtime>> {
    quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime for QUIC"))
}

/// `socket` as quinn's I/O, its sends cut to what the kernel takes
/// ([`crate::udp::BatchLimited`]).
fn wrap_socket(
    runtime: &dyn quinn::Runtime,
    socket: std::net::UdpSocket,
) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
    Ok(crate::udp::BatchLimited::new(
        runtime.wrap_udp_socket(socket)?,
    ))
}

/// Moves `endpoint` to a fresh UDP socket on `addr` (connections migrate,
/// RFC 9000 §9); returns the new local address.
pub fn rebind(
    endpoint: &quinn::Endpoint,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::SocketAddr> {
    let runtime = runtime()?;
    let socket = udp_socket(addr)?;
    let bound = socket.local_addr()?;
    endpoint.rebind_abstract(wrap_socket(&*runtime, socket)?)?;
    Ok(bound)
}

/// A client configuration from `tls` (its ALPN set to `h3` here) for a
/// connection over `path` ([`Path::toward`] the server).
pub fn client_config(
    mut tls: rustls::ClientConfig,
    timing: Timing,
    path: Path,
) -> Result<quinn::ClientConfig, QuicError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(timing, 0, path));
    Ok(config)
}

/// A client endpoint on an ephemeral UDP port of the right family.
pub fn client_endpoint(peer: std::net::SocketAddr) -> Result<quinn::Endpoint, QuicError> {
    endpoint(unspecified_for(peer), None)
}

/// The any-address with port 0 of `peer`'s family.
pub fn unspecified_for(peer: std::net::SocketAddr) -> std::net::SocketAddr {
    if peer.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_of_ethernet_size_or_less_keep_quinns_defaults() {
        for (mtu, ipv6) in [
            (1500, false),
            (1500, true),
            (1280, true),
            (576, false),
            (0, false),
        ] {
            let path = Path::from_route_mtu(mtu, ipv6);
            assert_eq!(path, Path::ETHERNET, "{mtu} {ipv6}");
            assert!(!path.is_wide());
        }
    }

    #[test]
    fn larger_routes_carry_their_payload_within_the_udp_limits() {
        assert_eq!(Path::from_route_mtu(9000, false).max_udp_payload(), 8972);
        assert_eq!(Path::from_route_mtu(9000, true).max_udp_payload(), 8952);
        // Loopback: IPv4's 16-bit total length caps the payload at 65,507,
        // IPv6's payload length at 65,527.
        assert_eq!(
            Path::from_route_mtu(65_536, false).max_udp_payload(),
            65_507
        );
        assert_eq!(Path::from_route_mtu(65_536, true).max_udp_payload(), 65_488);
        assert_eq!(
            Path::from_route_mtu(u32::MAX, true).max_udp_payload(),
            MAX_UDP_PAYLOAD
        );
        assert!(Path::from_route_mtu(9000, false).is_wide());
    }

    #[test]
    fn only_wide_paths_get_room_for_discovery_in_the_initial_window() {
        // quinn's default window, as documented (ten 1,200-byte datagrams).
        let default = quinn::congestion::CubicConfig::default();
        let initial = |c: &quinn::congestion::CubicConfig| format!("{c:?}");
        assert_eq!(initial(&Path::ETHERNET.congestion()), initial(&default));
        let wide = Path::from_route_mtu(9000, false).congestion();
        let mut expected = quinn::congestion::CubicConfig::default();
        expected.initial_window(INITIAL_WINDOW + 2 * 8972);
        assert_eq!(initial(&wide), initial(&expected));
        assert_ne!(initial(&wide), initial(&default));
    }

    #[test]
    fn the_kernel_reports_loopback_as_a_wide_route() {
        let v4 = Path::toward("127.0.0.1:443".parse().unwrap());
        assert_eq!(v4.max_udp_payload(), 65_507);
        // A dual-stack server sees IPv4 clients as mapped addresses.
        let mapped = Path::toward("[::ffff:127.0.0.1]:443".parse().unwrap());
        assert_eq!(mapped, v4);
    }
}
