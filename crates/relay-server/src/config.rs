//! What a relay runs with: its listeners, keys, tunnel network and public
//! ports, the registry, and every bound (each has a flag in `relay-server
//! --help`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use proto_relay::ServerConfig as SessionConfig;
use server_kit::tls::TlsSource;
use wg_userspace::PrivateKey;

use crate::jwt::TokenVerifier;
use crate::limits::LimitsConfig;
use crate::registry::RegistryConfig;

/// Where the tunnel registry lives.
#[derive(Debug, Clone)]
pub enum RegistryBackend {
    /// In this process: lost on restart, not shared.
    Memory,
    /// A Redis server (`redis://…`), shared by every relay that names it.
    Redis(String),
    /// A registry the embedding program made (the demo, tests that restart
    /// a relay in-process).
    Shared(std::sync::Arc<dyn crate::registry::TunnelRegistry>),
}

/// The relay's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Control connections at once.
    pub max_control_connections: usize,
    /// Control connections still in TLS or before their sign-in.
    pub max_pending: usize,
    /// Control connections from one address (IPv6: one /64).
    pub max_per_source: usize,
    /// From accepting a control connection to the end of its TLS handshake.
    pub handshake_timeout: Duration,
    /// Connections through one public forward at once; more are refused.
    pub max_forward_connections: usize,
    /// How long a forward waits for the client's side to accept over
    /// WireGuard.
    pub forward_connect_timeout: Duration,
    /// After a tunnel's control connection ends, how long its WireGuard peer
    /// and forwards are kept for the client to resume (connections through
    /// them go on meanwhile).
    pub detach_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control_connections: 4096,
            max_pending: 512,
            max_per_source: 16,
            handshake_timeout: Duration::from_secs(10),
            max_forward_connections: 256,
            forward_connect_timeout: Duration::from_secs(10),
            detach_grace: crate::registry::DEFAULT_LEASE,
        }
    }
}

/// Everything a relay needs to start.
#[derive(Debug)]
pub struct Config {
    /// The control channel's TLS listener.
    pub listen: SocketAddr,
    /// Its certificate and key.
    pub tls: TlsSource,
    /// The WireGuard UDP endpoint.
    pub wg_listen: SocketAddr,
    /// The relay's WireGuard key; a fresh one per start when absent (clients
    /// learn the new key when they resume).
    pub wg_key: Option<PrivateKey>,
    /// The WireGuard endpoint told to clients (`host:port`); by default the
    /// public host and the bound UDP port.
    pub wg_endpoint: Option<String>,
    /// The address public forwards listen on.
    pub forward_bind: IpAddr,
    /// The tunnel network, public ports, public host, lease and resume window.
    pub registry: RegistryConfig,
    /// Where the registry lives.
    pub backend: RegistryBackend,
    /// Checks the clients' JWTs.
    pub verifier: TokenVerifier,
    /// Sign-in and creation rate limits.
    pub rate_limits: LimitsConfig,
    /// The control session's rules (line cap, deadlines, heartbeat interval).
    pub session: SessionConfig,
    /// The bounds.
    pub limits: Limits,
    /// Serve Prometheus metrics here.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// A configuration with default limits, an in-memory registry and
    /// forwards on every address.
    pub fn new(
        listen: SocketAddr,
        tls: TlsSource,
        wg_listen: SocketAddr,
        registry: RegistryConfig,
        verifier: TokenVerifier,
    ) -> Config {
        Config {
            listen,
            tls,
            wg_listen,
            wg_key: None,
            wg_endpoint: None,
            forward_bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            registry,
            backend: RegistryBackend::Memory,
            verifier,
            rate_limits: LimitsConfig::default(),
            session: SessionConfig::default(),
            limits: Limits::default(),
            metrics_listen: None,
        }
    }
}
