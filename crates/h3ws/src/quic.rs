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

/// Cubic with room in the initial window, on top of quinn's default, for
/// MTU discovery at the largest size we accept: one probe in flight, and
/// one datagram of the size it found (quinn sends only while a full-size
/// datagram fits in the window). quinn sends its first probe right after
/// the handshake and counts it in flight: with the default window a 33 KB
/// probe held back the tunnel's `hello` and the first request a round
/// trip each (cold connect through the bench's 25 ms link: h3 went from
/// 0.68× to 1.04× of h1; room for the probe alone still left the first
/// request waiting, 1.03×). Where the path carries only 1,500-byte packets
/// the probes are lost and the window grows no faster than the
/// acknowledgements allow.
fn congestion() -> quinn::congestion::CubicConfig {
    let mut cubic = quinn::congestion::CubicConfig::default();
    cubic.initial_window(INITIAL_WINDOW + 2 * u64::from(MAX_UDP_PAYLOAD));
    cubic
}

fn transport(timing: Timing, max_bidi_streams: u32) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(timing.idle_timeout.try_into().ok());
    t.keep_alive_interval(Some(timing.keep_alive));
    t.max_concurrent_bidi_streams(max_bidi_streams.into());
    // Control and the two QPACK streams, and room for grease.
    t.max_concurrent_uni_streams(8u32.into());
    // Windows large enough for a single stream at full speed on a fast
    // link (quinn's defaults assume 100 Mbit/s at 100 ms).
    // Discovery may go past quinn's 1452-byte default on paths that carry
    // more (quinn: any bound is safe, a higher one only makes discovery take
    // longer), up to what the peer accepts (`MAX_UDP_PAYLOAD`, ours).
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    t.stream_receive_window((8u32 << 20).into());
    t.receive_window((32u32 << 20).into());
    t.send_window(32 << 20);
    t.congestion_controller_factory(Arc::new(congestion()));
    Arc::new(t)
}

/// A server endpoint on `addr` with `tls` (its ALPN set to `h3` here).
pub fn server_endpoint(
    addr: std::net::SocketAddr,
    mut tls: rustls::ServerConfig,
    timing: Timing,
    max_bidi_streams: u32,
) -> Result<quinn::Endpoint, QuicError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(timing, max_bidi_streams));
    endpoint(addr, Some(config))
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

/// A client configuration from `tls` (its ALPN set to `h3` here).
pub fn client_config(
    mut tls: rustls::ClientConfig,
    timing: Timing,
) -> Result<quinn::ClientConfig, QuicError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(timing, 0));
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
