//! Node and peer settings. Every limit the node enforces lives here, with a
//! default that suits the Relay (a few hundred tunnels, full-speed streams).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;
use crate::keys::{PrivateKey, PublicKey};

/// Smallest MTU accepted: IPv4's minimum datagram size (RFC 791).
const MIN_MTU: usize = 576;
/// Largest MTU accepted: an encapsulated packet (MTU + 32) must fit one UDP
/// datagram, and no real path carries more than jumbo frames.
const MAX_MTU: usize = 9000;
/// smoltcp cannot scale a window past 1 GiB (RFC 7323's shift limit of 14).
const MAX_BUFFER: usize = 1 << 30;
/// Peer indexes are 24 bits wide (boringtun keeps the low 8 for sessions).
const MAX_PEER_INDEXES: usize = 1 << 24;

/// The congestion controller of each TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CongestionControl {
    /// Send as much as the peer's window allows: fastest on loopback, harsh on
    /// real paths with small queues.
    None,
    /// RFC 5681 Reno.
    Reno,
    /// RFC 9438 CUBIC, Linux's default: the right choice across the Internet.
    #[default]
    Cubic,
}

/// Settings of one node (one UDP socket, one tunnel address).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's static key.
    pub private_key: PrivateKey,
    /// This node's address inside the tunnel (a /32 of the tunnel network).
    pub address: Ipv4Addr,
    /// Largest inner IP packet; 1420 leaves room for WireGuard's 32 bytes of
    /// overhead plus IPv6+UDP headers inside a 1500-byte path.
    pub mtu: usize,
    /// Most peers at once.
    pub max_peers: usize,
    /// Most TCP sockets at once: streams, pending accepts, listening spares
    /// and connections still closing.
    pub max_connections: usize,
    /// Per-connection receive buffer: the largest TCP window this node
    /// advertises (window scaling is negotiated for anything over 64 KiB).
    pub rx_buffer: usize,
    /// Per-connection send buffer: unacknowledged plus unsent bytes.
    pub tx_buffer: usize,
    /// How long `connect` waits for the SYN-ACK (including the WireGuard
    /// handshake when no session exists yet).
    pub connect_timeout: Duration,
    /// Established connections a listener holds for `accept`; later ones
    /// are reset until the application catches up.
    pub accept_backlog: usize,
    /// Listening sockets kept ready per listener between bursts (smoltcp has
    /// no backlog: each pending SYN needs a socket of its own).
    pub listen_spares: usize,
    /// How long a dropped stream may keep delivering its queued bytes and
    /// closing before it is reset (inactivity, not total time).
    pub linger: Duration,
    /// Congestion controller of each connection.
    pub congestion_control: CongestionControl,
    /// Requested kernel buffer of the UDP socket, both directions (`None`
    /// keeps the system default; Linux caps it at `net.core.[rw]mem_max`).
    pub udp_buffer: Option<usize>,
    /// Datagrams received (and decrypted) per batch before the TCP stack
    /// runs; also the most IP packets sent per stack poll.
    pub batch_size: usize,
    /// Interval of WireGuard's timers (handshake retries, keepalives, rekey).
    pub timer_interval: Duration,
    /// Handshake initiations per second the node answers before it demands
    /// cookies (WireGuard's DoS defence; boringtun's device uses 100).
    pub handshake_rate_limit: u64,
}

impl NodeConfig {
    /// Defaults for a node with this key and tunnel address.
    pub fn new(private_key: PrivateKey, address: Ipv4Addr) -> NodeConfig {
        NodeConfig {
            private_key,
            address,
            mtu: 1420,
            max_peers: 4096,
            max_connections: 1024,
            // 1 MiB windows keep a single stream at full speed up to
            // ~80 MiB/s per 100 ms of RTT; memory is only touched when used
            // (calloc'd pages).
            rx_buffer: 1 << 20,
            tx_buffer: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            accept_backlog: 128,
            listen_spares: 4,
            linger: Duration::from_secs(30),
            congestion_control: CongestionControl::default(),
            udp_buffer: Some(4 << 20),
            batch_size: 128,
            timer_interval: Duration::from_millis(250),
            handshake_rate_limit: 100,
        }
    }

    /// Checks every range; `Node::start` calls it.
    pub fn validate(&self) -> Result<(), Error> {
        let check = |ok: bool, what: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidConfig(what))
            }
        };
        check(
            (MIN_MTU..=MAX_MTU).contains(&self.mtu),
            "mtu must be within 576..=9000",
        )?;
        check(
            self.max_peers > 0 && self.max_peers < MAX_PEER_INDEXES / 2,
            "max_peers must be within 1..8388608",
        )?;
        check(self.max_connections > 0, "max_connections must be positive")?;
        check(
            (2 * self.mtu..=MAX_BUFFER).contains(&self.rx_buffer),
            "rx_buffer must be within 2*mtu..=1 GiB",
        )?;
        check(
            (2 * self.mtu..=MAX_BUFFER).contains(&self.tx_buffer),
            "tx_buffer must be within 2*mtu..=1 GiB",
        )?;
        check(
            !self.connect_timeout.is_zero(),
            "connect_timeout must be positive",
        )?;
        check(self.accept_backlog > 0, "accept_backlog must be positive")?;
        check(self.listen_spares > 0, "listen_spares must be positive")?;
        check(!self.linger.is_zero(), "linger must be positive")?;
        check(
            (1..=4096).contains(&self.batch_size),
            "batch_size must be within 1..=4096",
        )?;
        check(
            (Duration::from_millis(10)..=Duration::from_secs(1)).contains(&self.timer_interval),
            "timer_interval must be within 10 ms..=1 s",
        )?;
        check(
            self.handshake_rate_limit > 0,
            "handshake_rate_limit must be positive",
        )?;
        check(
            !self.address.is_unspecified()
                && !self.address.is_broadcast()
                && !self.address.is_multicast(),
            "address must be a unicast address",
        )
    }
}

/// An IPv4 network a peer may send from and is routed to, e.g. `10.0.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedIp {
    addr: Ipv4Addr,
    prefix: u8,
}

impl AllowedIp {
    /// The network `addr/prefix`; host bits are cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<AllowedIp, Error> {
        if prefix > 32 {
            return Err(Error::InvalidConfig("prefix length must be at most 32"));
        }
        let mask = Self::mask(prefix);
        Ok(AllowedIp {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    /// A single host (`/32`).
    pub fn host(addr: Ipv4Addr) -> AllowedIp {
        AllowedIp { addr, prefix: 32 }
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }
}

impl fmt::Display for AllowedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for AllowedIp {
    type Err = Error;

    /// `10.0.0.0/24`, or a bare address meaning `/32`.
    fn from_str(s: &str) -> Result<AllowedIp, Error> {
        let bad = || Error::InvalidConfig("allowed IP must look like 10.0.0.0/24");
        match s.trim().split_once('/') {
            Some((addr, prefix)) => AllowedIp::new(
                addr.parse().map_err(|_| bad())?,
                prefix.parse().map_err(|_| bad())?,
            ),
            None => Ok(AllowedIp::host(s.trim().parse().map_err(|_| bad())?)),
        }
    }
}

/// One peer: who it is, where it is (if known), and which addresses it owns.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// Where to send the first handshake; `None` waits for the peer to
    /// initiate. Updated from every authenticated packet (roaming).
    pub endpoint: Option<SocketAddr>,
    /// Inner source addresses accepted from the peer, and destinations
    /// routed to it.
    pub allowed_ips: Vec<AllowedIp>,
    /// Send a keepalive after this many idle seconds (keeps NAT mappings).
    pub persistent_keepalive: Option<u16>,
}

impl PeerConfig {
    /// A peer with no endpoint, no keepalive, and these allowed IPs.
    pub fn new(public_key: PublicKey, allowed_ips: Vec<AllowedIp>) -> PeerConfig {
        PeerConfig {
            public_key,
            endpoint: None,
            allowed_ips,
            persistent_keepalive: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_ip_contains() {
        let net: AllowedIp = "10.77.0.9/24".parse().unwrap();
        assert_eq!(net.to_string(), "10.77.0.0/24");
        assert!(net.contains(Ipv4Addr::new(10, 77, 0, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 77, 1, 1)));
        let all: AllowedIp = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        let host: AllowedIp = "10.1.2.3".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(!host.contains(Ipv4Addr::new(10, 1, 2, 4)));
        assert!("10.0.0.0/33".parse::<AllowedIp>().is_err());
        assert!("ten/8".parse::<AllowedIp>().is_err());
    }

    #[test]
    fn validate_ranges() {
        let base = NodeConfig::new(PrivateKey::generate(), Ipv4Addr::new(10, 0, 0, 1));
        base.validate().unwrap();
        let mut c = base.clone();
        c.mtu = 100;
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.rx_buffer = 2 << 30;
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.max_connections = 0;
        assert!(c.validate().is_err());
        let mut c = base;
        c.address = Ipv4Addr::UNSPECIFIED;
        assert!(c.validate().is_err());
    }
}
