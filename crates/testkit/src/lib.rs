//! Real peers that the project's integration tests start themselves.
//!
//! Every peer binds 127.0.0.1 (port 0, or a free port found first for external
//! programs), and is stopped when dropped: tests never rely on a running service.

#![warn(missing_docs)]

pub mod backend;
pub mod certs;
pub mod dns;
pub mod gateway;
pub mod h3peer;
pub mod hostile;
pub mod ht;
pub mod nginx;
pub mod process;
pub mod redis;
pub mod relay;
pub mod servers;
pub mod shadowsocks;
pub mod socks;
pub mod wireguard;

pub use backend::{Grant, OutlineNode, TestBackend, TestBackendBuilder};
pub use certs::{TestCert, install_crypto_provider};
pub use dns::dig;
pub use gateway::TestGateway;
pub use ht::TestHtServer;
pub use process::{GatewayProcess, wait_for_port};
pub use relay::{CuttingRelay, FreezingRelay};
pub use servers::{
    BYTES_SEED, EchoServer, HangingTarget, HttpServer, ServerFirst, TcpBlackhole, UdpEchoServer,
    bytes_sha256, closed_port, free_port, port_range_below_ephemeral, pseudo_random_bytes,
    sha256_hex,
};
pub use shadowsocks::{InProcessSsServer, SsEndpoint, SsServer};
pub use socks::{Socks5Udp, closes_without_data, socks5_connect, socks5_udp_associate};

#[cfg(test)]
mod test_http;

/// Whether the tests run as root (network namespaces, links and nginx's
/// `user` need it; tests that need root skip themselves otherwise).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
