//! The tunnel registry: which tunnels exist, whose they are, which tunnel
//! address and public ports each holds, and the reconnect token that lets
//! its owner resume it (CONTRACTS.md §5 `register`, seed §6.2).
//!
//! Two implementations behind one object-safe trait, [`TunnelRegistry`]
//! (used as `Arc<dyn TunnelRegistry>`): [`MemoryRegistry`] for a single
//! relay, and [`RedisRegistry`] so that several relays behind a load
//! balancer share tunnel ids, addresses, ports and tokens.
//!
//! # Life of a tunnel
//!
//! ```text
//!  create ──► live ──(lease runs out)──► resumable ──(resume window ends)──► forgotten
//!              ▲  │ renew (heartbeat)       │ resume (token)
//!              │  └─────────────┐           │
//!              └────────────────┴───────────┘      release: forgotten at once
//! ```
//!
//! - **Live** while its lease runs ([`RegistryConfig::lease`], default
//!   120 s: three missed 30 s heartbeats plus grace). Each heartbeat
//!   ([`TunnelRegistry::renew`]) restarts it. A second `create` with the
//!   same owner and name is refused ([`RegistryError::Exists`],
//!   TUNNEL_EXISTS).
//! - **Resumable** for [`RegistryConfig::resume_window`] (default 10 min)
//!   after the lease runs out: address and ports stay reserved, and the
//!   owner can [`resume`](TunnelRegistry::resume) with the reconnect token.
//!   A `create` with the same name *replaces* it (frees its address and
//!   ports, kills its token): the owner has evidently given up on it.
//! - **Forgotten** after that, or on [`release`](TunnelRegistry::release).
//!
//! # Reconnect tokens
//!
//! 32 random bytes, base64url; stored only as their SHA-256 and compared in
//! constant time. Each successful resume *rotates* the token: the reply
//! carries a new one. The token just presented stays valid beside it until
//! the new one is used, so a client whose resume reply was lost in a
//! disconnect can retry with what it holds; every older token is dead. A
//! stolen token is thus good only until the owner's next resume.
//!
//! A resume with an unknown id, another owner's id or a wrong token fails
//! with the one error [`RegistryError::ResumeRejected`], so a prober learns
//! nothing about which tunnels exist.
//!
//! # Addresses and ports
//!
//! The tunnel network's first host address is the relay's own; clients get
//! the others. Each shared port gets one public port from the configured
//! range. Allocation walks round-robin from the last one handed out, so a
//! just-freed address or port is reused as late as possible (a stale peer
//! or connection is less likely to reach the new holder).

mod memory;
mod redis;

pub use self::memory::{Clock, MemoryRegistry, SystemClock};
pub use self::redis::{RedisOptions, RedisRegistry};

use std::fmt;
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Default lease: three missed 30 s heartbeats plus 30 s of grace.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Default time a tunnel stays resumable after its lease runs out.
pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(600);
/// Default cap on a tunnel's shared ports.
pub const DEFAULT_MAX_PORTS: usize = 16;
/// Default cap on a tunnel name, in bytes.
pub const DEFAULT_MAX_NAME_LEN: usize = 64;

/// A future returned by [`TunnelRegistry`] methods.
pub type RegistryFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, RegistryError>> + Send + 'a>>;

/// The tunnel registry. Boxed futures keep it object-safe, so the server
/// holds an `Arc<dyn TunnelRegistry>` chosen at start-up.
pub trait TunnelRegistry: Send + Sync + fmt::Debug {
    /// The configuration it allocates from.
    fn config(&self) -> &RegistryConfig;

    /// Registers tunnel `name` for `owner` (the token's `sub`) sharing
    /// `ports`, with the client's WireGuard public key (standard base64 of
    /// 32 bytes). Allocates an address and one public port per shared port,
    /// atomically, and returns the record with a fresh reconnect token.
    fn create<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        ports: &'a [u16],
        client_public_key: &'a str,
    ) -> RegistryFuture<'a, (TunnelRecord, ReconnectToken)>;

    /// Resumes `tunnel_id` for `owner` with its reconnect token: same
    /// address and forwards, a new lease, and a new token (see the module
    /// doc). A new client public key replaces the old one.
    fn resume<'a>(
        &'a self,
        owner: &'a str,
        tunnel_id: &'a str,
        token: &'a ReconnectToken,
        client_public_key: Option<&'a str>,
    ) -> RegistryFuture<'a, (TunnelRecord, ReconnectToken)>;

    /// Restarts the lease (a heartbeat); returns when it now runs out. A
    /// resumable tunnel becomes live again.
    fn renew<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, SystemTime>;

    /// Forgets the tunnel now (an explicit disconnect), freeing its address
    /// and ports. Returns whether it existed.
    fn release<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, bool>;

    /// The tunnel, if not forgotten.
    fn get<'a>(&'a self, tunnel_id: &'a str) -> RegistryFuture<'a, Option<TunnelRecord>>;

    /// Tunnels whose lease runs (the `active_tunnels` gauge).
    fn count_live(&self) -> RegistryFuture<'_, usize>;

    /// Drops what expired; returns how many tunnels (memory) or index
    /// entries (Redis, whose keys expire by themselves) it removed. Every
    /// operation expires lazily as well; call this on a timer to return
    /// memory while the registry is idle.
    fn sweep(&self) -> RegistryFuture<'_, usize>;
}

/// A registered tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRecord {
    /// Its id: a UUID v4, lowercase and hyphenated.
    pub tunnel_id: String,
    /// The `sub` of the token that created it.
    pub owner: String,
    /// The name the client gave it; unique per owner among live tunnels.
    pub name: String,
    /// The client's shared ports, in the order given.
    pub ports: Vec<u16>,
    /// The client's WireGuard public key (standard base64, 32 bytes).
    pub client_public_key: String,
    /// The client's tunnel address (`/32`).
    pub address: Ipv4Addr,
    /// One public port per shared port, in the same order.
    pub forwards: Vec<Forward>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When its lease runs out unless renewed.
    pub lease_expires_at: SystemTime,
}

impl TunnelRecord {
    /// Whether the lease runs at `now`.
    pub fn is_live_at(&self, now: SystemTime) -> bool {
        now < self.lease_expires_at
    }
}

/// A shared port and the public port that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Forward {
    /// The port on the client's machine.
    pub port: u16,
    /// The relay's public port for it.
    pub public_port: u16,
}

/// A reconnect token, as issued to or presented by a client. Never shown
/// by `Debug`; [`expose`](ReconnectToken::expose) it only to put it on the
/// wire.
#[derive(Clone, PartialEq, Eq)]
pub struct ReconnectToken(String);

impl fmt::Debug for ReconnectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReconnectToken(..)")
    }
}

impl ReconnectToken {
    /// A token as a client presented it.
    pub fn new(token: impl Into<String>) -> ReconnectToken {
        ReconnectToken(token.into())
    }

    /// The token's text, for the `register_response`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A fresh token and its hash.
    fn generate() -> Result<(ReconnectToken, TokenHash), RegistryError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| RegistryError::Random)?;
        let token = ReconnectToken(URL_SAFE_NO_PAD.encode(bytes));
        let hash = token.hash();
        Ok((token, hash))
    }

    fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// The SHA-256 of a reconnect token: all the registry keeps.
#[derive(Clone, Copy)]
struct TokenHash([u8; 32]);

impl TokenHash {
    /// Constant-time equality.
    fn matches(&self, other: &TokenHash) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }

    fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(hex: &str) -> Option<TokenHash> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(out))
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A live tunnel of this name exists for this owner (TUNNEL_EXISTS).
    #[error("a live tunnel named {name:?} already exists for this owner")]
    Exists {
        /// The name.
        name: String,
    },
    /// The request itself is unacceptable (INVALID_CONFIG).
    #[error("invalid tunnel request: {0}")]
    Invalid(#[from] RequestError),
    /// Every client address of the tunnel network is taken.
    #[error("no free address in the tunnel network")]
    AddressesExhausted,
    /// The public port range cannot give one port per shared port.
    #[error("not enough free public ports")]
    PortsExhausted,
    /// Unknown tunnel id, another owner's tunnel, or a wrong reconnect
    /// token: deliberately one error.
    #[error("resume refused")]
    ResumeRejected,
    /// No such tunnel (renew of a forgotten or never-seen id).
    #[error("unknown tunnel")]
    UnknownTunnel,
    /// The OS random source failed.
    #[error("the random source failed")]
    Random,
    /// The registry configuration is unusable (at start-up).
    #[error("invalid registry configuration")]
    Config(#[from] ConfigError),
    /// Redis failed or is unreachable.
    #[error("registry backend failed")]
    Backend(#[from] ::redis::RedisError),
    /// Redis holds a tunnel this version cannot read.
    #[error("stored tunnel {tunnel_id} is unreadable ({field})")]
    Corrupt {
        /// The tunnel.
        tunnel_id: String,
        /// The field that did not parse.
        field: &'static str,
    },
}

impl RegistryError {
    /// A stable short label for logs, metrics and `details.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::Exists { .. } => "tunnel_exists",
            RegistryError::Invalid(e) => e.reason(),
            RegistryError::AddressesExhausted => "addresses_exhausted",
            RegistryError::PortsExhausted => "ports_exhausted",
            RegistryError::ResumeRejected => "resume_rejected",
            RegistryError::UnknownTunnel => "unknown_tunnel",
            RegistryError::Random => "random_failed",
            RegistryError::Config(_) => "bad_config",
            RegistryError::Backend(_) => "backend_failed",
            RegistryError::Corrupt { .. } => "corrupt_record",
        }
    }
}

/// What is wrong with a `register` request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The name is empty.
    #[error("the tunnel name is empty")]
    EmptyName,
    /// The name is longer than [`RegistryConfig::max_name_len`].
    #[error("the tunnel name is {len} bytes long; at most {max}")]
    NameTooLong {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The name holds control characters (it ends up in logs).
    #[error("the tunnel name holds control characters")]
    BadName,
    /// No ports to share.
    #[error("no ports to share")]
    NoPorts,
    /// More ports than [`RegistryConfig::max_ports_per_tunnel`].
    #[error("{count} ports; at most {max} per tunnel")]
    TooManyPorts {
        /// How many were asked for.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// Port 0 cannot be shared.
    #[error("port 0 cannot be shared")]
    ZeroPort,
    /// A port is listed twice.
    #[error("port {port} is listed twice")]
    DuplicatePort {
        /// The port.
        port: u16,
    },
    /// The public key is not standard base64 of 32 bytes.
    #[error("the public key is not base64 of 32 bytes")]
    BadPublicKey,
}

impl RequestError {
    /// A stable short label.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::EmptyName => "empty_name",
            RequestError::NameTooLong { .. } => "name_too_long",
            RequestError::BadName => "bad_name",
            RequestError::NoPorts => "no_ports",
            RequestError::TooManyPorts { .. } => "too_many_ports",
            RequestError::ZeroPort => "zero_port",
            RequestError::DuplicatePort { .. } => "duplicate_port",
            RequestError::BadPublicKey => "bad_public_key",
        }
    }
}

/// The tunnel network, e.g. `10.0.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelNetwork {
    base: Ipv4Addr,
    prefix_len: u8,
}

impl TunnelNetwork {
    /// The widest network accepted: allocation walks the addresses, and a
    /// /16 (65,533 clients) bounds that walk.
    pub const MIN_PREFIX_LEN: u8 = 16;
    /// The narrowest: a /30 has one client address besides the relay's.
    pub const MAX_PREFIX_LEN: u8 = 30;

    /// `base/prefix_len`; `base` must have no host bits set.
    pub fn new(base: Ipv4Addr, prefix_len: u8) -> Result<TunnelNetwork, ConfigError> {
        if !(Self::MIN_PREFIX_LEN..=Self::MAX_PREFIX_LEN).contains(&prefix_len) {
            return Err(ConfigError::PrefixLength { prefix_len });
        }
        let host_mask = u32::MAX >> prefix_len;
        if u32::from(base) & host_mask != 0 {
            return Err(ConfigError::HostBitsSet {
                network: format!("{base}/{prefix_len}"),
            });
        }
        Ok(TunnelNetwork { base, prefix_len })
    }

    /// The network address.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The relay's own address: the first host address.
    pub fn relay_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// How many clients fit: every host address but the relay's (the
    /// network and broadcast addresses are not used).
    pub fn client_capacity(&self) -> u32 {
        (1u32 << (32 - self.prefix_len)) - 3
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = !(u32::MAX >> self.prefix_len);
        u32::from(ip) & mask == u32::from(self.base)
    }

    /// The first client address.
    fn first_client(&self) -> u32 {
        u32::from(self.base) + 2
    }

    /// The `index`th client address (`index < client_capacity()`).
    fn client_address(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first_client() + index)
    }
}

impl fmt::Display for TunnelNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix_len)
    }
}

impl FromStr for TunnelNetwork {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<TunnelNetwork, ConfigError> {
        let bad = || ConfigError::BadNetwork { text: s.to_owned() };
        let (base, len) = s.split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = base.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        TunnelNetwork::new(base, len)
    }
}

/// The public port range, inclusive: `40000-40999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// `first..=last`; port 0 is not a port.
    pub fn new(first: u16, last: u16) -> Result<PortRange, ConfigError> {
        if first == 0 || first > last {
            return Err(ConfigError::BadPortRange {
                text: format!("{first}-{last}"),
            });
        }
        Ok(PortRange { first, last })
    }

    /// The first port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// The last port.
    pub fn last(&self) -> u16 {
        self.last
    }

    /// How many ports.
    pub fn len(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    /// Never: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// The `index`th port (`index < len()`).
    fn nth(&self, index: u32) -> u16 {
        self.first + index as u16
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<PortRange, ConfigError> {
        let bad = || ConfigError::BadPortRange { text: s.to_owned() };
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let first = first.trim().parse().map_err(|_| bad())?;
        let last = last.trim().parse().map_err(|_| bad())?;
        PortRange::new(first, last)
    }
}

/// What a registry allocates from, and its time limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The tunnel network.
    pub network: TunnelNetwork,
    /// The public ports.
    pub public_ports: PortRange,
    /// The host clients' users connect to (`forwards[].public`).
    pub public_host: String,
    /// How long a tunnel stays live without a heartbeat.
    pub lease: Duration,
    /// How long it stays resumable after that.
    pub resume_window: Duration,
    /// Most shared ports per tunnel.
    pub max_ports_per_tunnel: usize,
    /// Longest tunnel name, in bytes.
    pub max_name_len: usize,
}

impl RegistryConfig {
    /// A configuration with the default limits.
    pub fn new(
        network: TunnelNetwork,
        public_ports: PortRange,
        public_host: impl Into<String>,
    ) -> RegistryConfig {
        RegistryConfig {
            network,
            public_ports,
            public_host: public_host.into(),
            lease: DEFAULT_LEASE,
            resume_window: DEFAULT_RESUME_WINDOW,
            max_ports_per_tunnel: DEFAULT_MAX_PORTS,
            max_name_len: DEFAULT_MAX_NAME_LEN,
        }
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.public_host.trim().is_empty() {
            return Err(ConfigError::EmptyPublicHost);
        }
        if self.lease.as_millis() == 0 {
            return Err(ConfigError::ZeroLease);
        }
        // Leases and windows are kept in milliseconds since the epoch.
        let year_ms = 365 * 24 * 3600 * 1000;
        if self.lease.as_millis() > year_ms || self.resume_window.as_millis() > year_ms {
            return Err(ConfigError::TooLong);
        }
        if self.max_ports_per_tunnel == 0 {
            return Err(ConfigError::ZeroMaxPorts);
        }
        if self.max_name_len == 0 {
            return Err(ConfigError::ZeroMaxNameLen);
        }
        Ok(())
    }

    /// `forwards[].public` for `public_port`: `host:port`, with an IPv6
    /// literal in brackets.
    pub fn public_address(&self, public_port: u16) -> String {
        let host = self.public_host.as_str();
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{public_port}")
        } else {
            format!("{host}:{public_port}")
        }
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis() as u64
    }

    fn window_ms(&self) -> u64 {
        self.resume_window.as_millis() as u64
    }

    /// Checks a `create` request.
    fn check_create(&self, name: &str, ports: &[u16], key: &str) -> Result<(), RequestError> {
        if name.is_empty() {
            return Err(RequestError::EmptyName);
        }
        if name.len() > self.max_name_len {
            return Err(RequestError::NameTooLong {
                len: name.len(),
                max: self.max_name_len,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(RequestError::BadName);
        }
        if ports.is_empty() {
            return Err(RequestError::NoPorts);
        }
        if ports.len() > self.max_ports_per_tunnel {
            return Err(RequestError::TooManyPorts {
                count: ports.len(),
                max: self.max_ports_per_tunnel,
            });
        }
        for (i, &port) in ports.iter().enumerate() {
            if port == 0 {
                return Err(RequestError::ZeroPort);
            }
            if ports[..i].contains(&port) {
                return Err(RequestError::DuplicatePort { port });
            }
        }
        check_public_key(key)
    }
}

/// A WireGuard public key: standard base64 of 32 bytes.
fn check_public_key(key: &str) -> Result<(), RequestError> {
    match STANDARD.decode(key) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(RequestError::BadPublicKey),
    }
}

/// Whether `id` is a tunnel id as we issue them (lowercase hyphenated
/// UUID). Ids come from clients and become Redis keys, so anything else is
/// refused before it is used.
fn is_tunnel_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

fn new_tunnel_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Why a registry configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not `a.b.c.d/len`.
    #[error("{text:?} is not an IPv4 network (a.b.c.d/len)")]
    BadNetwork {
        /// The text.
        text: String,
    },
    /// The prefix is outside /16../30.
    #[error("a /{prefix_len} tunnel network is not supported (use /16 to /30)")]
    PrefixLength {
        /// The prefix length.
        prefix_len: u8,
    },
    /// The network address has host bits set.
    #[error("{network} has host bits set")]
    HostBitsSet {
        /// The network as given.
        network: String,
    },
    /// Not `first-last` with `0 < first <= last`.
    #[error("{text:?} is not a port range (first-last, 1..=65535)")]
    BadPortRange {
        /// The text.
        text: String,
    },
    /// The public host is empty.
    #[error("the public host is empty")]
    EmptyPublicHost,
    /// The lease is zero.
    #[error("the lease must be longer than zero")]
    ZeroLease,
    /// The lease or resume window exceeds a year.
    #[error("the lease and resume window must each be under a year")]
    TooLong,
    /// `max_ports_per_tunnel` is zero.
    #[error("max ports per tunnel must be at least 1")]
    ZeroMaxPorts,
    /// `max_name_len` is zero.
    #[error("max name length must be at least 1")]
    ZeroMaxNameLen,
}

/// Milliseconds since the Unix epoch.
fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
