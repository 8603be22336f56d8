//! The peer table: one boringtun `Tunn` per peer, cryptokey routing (which
//! peer a datagram belongs to, which peer an IP packet goes to), roaming, and
//! per-peer counters.
//!
//! Finding the peer of a datagram follows WireGuard's design: a handshake
//! initiation names its sender only inside its encrypted static key, so the
//! key is decrypted once (`parse_handshake_anon`, one X25519) and looked up;
//! every later message carries our receiver index, whose upper 24 bits are
//! the peer's slot (boringtun keeps the low 8 bits for its session ring).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519;
use tokio::sync::watch;

use crate::config::{AllowedIp, PeerConfig};
use crate::error::Error;
use crate::keys::{PrivateKey, PublicKey};
use crate::outbox::Outbox;

/// WireGuard's message type of a handshake response (the protocol paper, §5.4.3).
const MSG_HANDSHAKE_RESPONSE: u8 = 2;
/// Bytes boringtun needs in any output buffer: a handshake initiation.
pub(crate) const MIN_SCRATCH: usize = 148;
/// WireGuard's data message overhead: header (16) plus AEAD tag (16).
pub(crate) const DATA_OVERHEAD: usize = 32;
/// A peer's slot occupies the upper 24 bits of a receiver index.
const INDEX_MASK: u32 = (1 << 24) - 1;

/// Counters and state of one peer, as reported by `Node::peer_stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// UDP payload bytes received from the peer and authenticated.
    pub rx_bytes: u64,
    /// UDP payload bytes sent to the peer.
    pub tx_bytes: u64,
    /// When the latest handshake completed (`None`: never).
    pub last_handshake: Option<SystemTime>,
    /// Where the peer was last heard from (or configured).
    pub endpoint: Option<SocketAddr>,
}

/// What became of one received datagram (for the node's counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authenticated and handled.
    Accepted,
    /// A handshake from a key we do not know, or an index we never gave out.
    UnknownPeer,
    /// Malformed, failed authentication, replayed, or from outside the
    /// sender's allowed IPs.
    Invalid,
    /// Answered with a cookie (we are under handshake load).
    Cookie,
}

struct Peer {
    public_key: PublicKey,
    tunn: Tunn,
    endpoint: Option<SocketAddr>,
    allowed_ips: Vec<AllowedIp>,
    rx_bytes: u64,
    tx_bytes: u64,
    last_handshake: Option<SystemTime>,
    /// Completed handshakes so far; watchers wait for it to change.
    handshakes: watch::Sender<u64>,
    /// Our session index in the handshake response we last sent. As
    /// responder, the handshake is complete only when the initiator's first
    /// data message arrives on that session (WireGuard paper, §5.4.4).
    pending_session: Option<u32>,
}

impl Peer {
    fn accepts_source(&self, src: Ipv4Addr) -> bool {
        self.allowed_ips.iter().any(|net| net.contains(src))
    }

    fn handshake_completed(&mut self) {
        self.pending_session = None;
        self.last_handshake = Some(SystemTime::now());
        self.handshakes.send_modify(|n| *n += 1);
    }

    /// Sends what boringtun queued while no session existed.
    fn flush_queue(&mut self, scratch: &mut [u8], out: &mut Outbox) {
        let Some(endpoint) = self.endpoint else {
            return;
        };
        while let TunnResult::WriteToNetwork(datagram) = self.tunn.decapsulate(None, &[], scratch) {
            self.tx_bytes += datagram.len() as u64;
            out.push(datagram, endpoint);
        }
    }
}

/// All peers of a node, indexed by slot, key, and allowed IP.
pub(crate) struct PeerTable {
    secret: x25519::StaticSecret,
    public: x25519::PublicKey,
    /// Checks handshake MACs before the expensive decryption, and answers
    /// with cookies when handshakes arrive faster than the configured rate.
    limiter: RateLimiter,
    peers: HashMap<u32, Peer>,
    by_key: HashMap<PublicKey, u32>,
    /// /32 routes: the common case (one tunnel address per peer).
    hosts: HashMap<Ipv4Addr, u32>,
    /// Shorter prefixes, longest first.
    nets: Vec<(AllowedIp, u32)>,
    next_slot: u32,
    max_peers: usize,
    /// Handshake initiations of newly added peers, for the driver to send
    /// (only it can await the socket: tokio reports a fresh socket as not
    /// yet writable, so a send from `add_peer` itself could be lost).
    initiations: Outbox,
}

impl PeerTable {
    pub(crate) fn new(key: &PrivateKey, max_peers: usize, handshake_rate: u64) -> PeerTable {
        let secret = key.secret().clone();
        let public = x25519::PublicKey::from(&secret);
        PeerTable {
            limiter: RateLimiter::new(&public, handshake_rate),
            secret,
            public,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            hosts: HashMap::new(),
            nets: Vec::new(),
            next_slot: rand_core::RngCore::next_u32(&mut rand_core::OsRng) & INDEX_MASK,
            max_peers,
            initiations: Outbox::new(0),
        }
    }

    /// Adds a peer. With an endpoint, a handshake initiation is queued for
    /// the driver (WireGuard sends one at once when it knows where to).
    pub(crate) fn add(&mut self, config: PeerConfig) -> Result<(), Error> {
        if self.by_key.contains_key(&config.public_key) {
            return Err(Error::PeerExists(config.public_key.to_base64()));
        }
        if self.peers.len() >= self.max_peers {
            return Err(Error::TooManyPeers(self.max_peers));
        }
        let slot = self.free_slot();
        let mut tunn = Tunn::new(
            self.secret.clone(),
            config.public_key.x25519(),
            None,
            config.persistent_keepalive,
            slot,
            None,
        );
        let mut tx_bytes = 0;
        if let Some(endpoint) = config.endpoint {
            let mut buf = [0u8; MIN_SCRATCH];
            if let TunnResult::WriteToNetwork(packet) =
                tunn.format_handshake_initiation(&mut buf, false)
            {
                tx_bytes = packet.len() as u64;
                self.initiations.push(packet, endpoint);
            }
        }
        for net in &config.allowed_ips {
            self.claim(*net, slot);
        }
        self.by_key.insert(config.public_key, slot);
        self.peers.insert(
            slot,
            Peer {
                public_key: config.public_key,
                tunn,
                endpoint: config.endpoint,
                allowed_ips: config.allowed_ips,
                rx_bytes: 0,
                tx_bytes,
                last_handshake: None,
                handshakes: watch::Sender::new(0),
                pending_session: None,
            },
        );
        Ok(())
    }

    /// Moves queued handshake initiations to `out`.
    pub(crate) fn take_initiations(&mut self, out: &mut Outbox) {
        for i in 0..self.initiations.len() {
            let (datagram, to) = self.initiations.get(i);
            out.push(datagram, to);
        }
        self.initiations.clear();
    }

    /// Removes a peer and its routes; false if it was not configured.
    pub(crate) fn remove(&mut self, key: &PublicKey) -> bool {
        let Some(slot) = self.by_key.remove(key) else {
            return false;
        };
        self.peers.remove(&slot);
        self.hosts.retain(|_, owner| *owner != slot);
        self.nets.retain(|(_, owner)| *owner != slot);
        true
    }

    pub(crate) fn stats(&self, key: &PublicKey) -> Option<PeerStats> {
        let peer = &self.peers[self.by_key.get(key)?];
        Some(PeerStats {
            rx_bytes: peer.rx_bytes,
            tx_bytes: peer.tx_bytes,
            last_handshake: peer.last_handshake,
            endpoint: peer.endpoint,
        })
    }

    pub(crate) fn handshakes(&self, key: &PublicKey) -> Option<watch::Receiver<u64>> {
        let peer = &self.peers[self.by_key.get(key)?];
        Some(peer.handshakes.subscribe())
    }

    /// Whether some peer's allowed IPs contain `dst`.
    pub(crate) fn routes(&self, dst: Ipv4Addr) -> bool {
        self.route(dst).is_some()
    }

    /// Longest-prefix match over every peer's allowed IPs.
    fn route(&self, dst: Ipv4Addr) -> Option<u32> {
        if let Some(slot) = self.hosts.get(&dst) {
            return Some(*slot);
        }
        self.nets
            .iter()
            .find(|(net, _)| net.contains(dst))
            .map(|(_, slot)| *slot)
    }

    /// Gives `net` to `slot`; as in WireGuard, a network belongs to one peer
    /// and the latest claim wins.
    fn claim(&mut self, net: AllowedIp, slot: u32) {
        let previous = if net.prefix() == 32 {
            self.hosts.insert(net.addr(), slot)
        } else {
            let previous = self
                .nets
                .iter()
                .position(|(n, _)| *n == net)
                .map(|i| self.nets.remove(i).1);
            let at = self
                .nets
                .iter()
                .position(|(n, _)| n.prefix() < net.prefix())
                .unwrap_or(self.nets.len());
            self.nets.insert(at, (net, slot));
            previous
        };
        if let Some(old) = previous.filter(|old| *old != slot)
            && let Some(peer) = self.peers.get_mut(&old)
        {
            peer.allowed_ips.retain(|n| *n != net);
        }
    }

    fn free_slot(&mut self) -> u32 {
        // `add` checked `max_peers`, far below 2^24, so a free slot exists.
        loop {
            let slot = self.next_slot;
            self.next_slot = (self.next_slot + 1) & INDEX_MASK;
            if !self.peers.contains_key(&slot) {
                return slot;
            }
        }
    }

    /// Handles one received datagram: handshake replies go to `out`,
    /// decrypted IP packets to `deliver`.
    pub(crate) fn handle_datagram(
        &mut self,
        src: SocketAddr,
        datagram: &[u8],
        scratch: &mut [u8],
        out: &mut Outbox,
        deliver: &mut impl FnMut(&[u8]),
    ) -> Verdict {
        let Ok(packet) = Tunn::parse_incoming_packet(datagram) else {
            return Verdict::Invalid;
        };
        // Which session a data message arrived on (to spot the responder's
        // handshake completion).
        let mut data_session = None;
        let mut is_handshake_response = false;
        let slot = match &packet {
            Packet::HandshakeInit(init) => {
                // MAC check (and cookie under load) first: the static key's
                // decryption costs an X25519 and must not be free to trigger.
                match self
                    .limiter
                    .verify_packet(Some(src.ip()), datagram, scratch)
                {
                    Ok(_) => {}
                    Err(TunnResult::WriteToNetwork(cookie)) => {
                        out.push(cookie, src);
                        return Verdict::Cookie;
                    }
                    Err(_) => return Verdict::Invalid,
                }
                let Ok(half) = parse_handshake_anon(&self.secret, &self.public, init) else {
                    return Verdict::Invalid;
                };
                match self
                    .by_key
                    .get(&PublicKey::from_bytes(half.peer_static_public))
                {
                    Some(slot) => *slot,
                    None => return Verdict::UnknownPeer,
                }
            }
            Packet::HandshakeResponse(p) => {
                is_handshake_response = true;
                p.receiver_idx >> 8
            }
            Packet::PacketCookieReply(p) => p.receiver_idx >> 8,
            Packet::PacketData(p) => {
                data_session = Some(p.receiver_idx);
                p.receiver_idx >> 8
            }
        };
        let Some(peer) = self.peers.get_mut(&slot) else {
            return Verdict::UnknownPeer;
        };
        let authenticated = match peer.tunn.decapsulate(Some(src.ip()), datagram, scratch) {
            TunnResult::WriteToNetwork(reply) => {
                let is_response = reply.first() == Some(&MSG_HANDSHAKE_RESPONSE);
                if is_response && reply.len() >= 8 {
                    peer.pending_session =
                        Some(u32::from_le_bytes([reply[4], reply[5], reply[6], reply[7]]));
                }
                peer.tx_bytes += reply.len() as u64;
                out.push(reply, src);
                if is_handshake_response {
                    // We initiated; the response completes the handshake and
                    // boringtun answered with the confirming keepalive.
                    peer.handshake_completed();
                }
                // A cookie reply (boringtun's own limiter) proves nothing.
                is_response || is_handshake_response
            }
            TunnResult::WriteToTunnelV4(ip_packet, inner_src) => {
                if !peer.accepts_source(inner_src) {
                    // Cryptokey routing: a peer may only speak for its own
                    // allowed IPs (WireGuard paper, §2).
                    return Verdict::Invalid;
                }
                deliver(ip_packet);
                true
            }
            // The node speaks IPv4 only; an authenticated IPv6 packet is dropped.
            TunnResult::WriteToTunnelV6(..) => true,
            // Keepalive (data) or cookie reply (not proof of anything).
            TunnResult::Done => data_session.is_some(),
            TunnResult::Err(WireGuardError::DuplicateCounter | WireGuardError::InvalidCounter) => {
                // Replays and stale reorders: authentic once, but not now.
                return Verdict::Invalid;
            }
            TunnResult::Err(e) => {
                tracing::trace!(error = ?e, %src, "dropping datagram");
                return Verdict::Invalid;
            }
        };
        if authenticated {
            peer.rx_bytes += datagram.len() as u64;
            // Roaming: replies go wherever the peer last spoke from.
            peer.endpoint = Some(src);
            if data_session.is_some() && data_session == peer.pending_session {
                peer.handshake_completed();
            }
            peer.flush_queue(scratch, out);
        }
        Verdict::Accepted
    }

    /// Encrypts one outgoing IPv4 packet for the peer that owns its
    /// destination; false when no peer routes it (or none has an endpoint).
    pub(crate) fn encapsulate(&mut self, ip_packet: &[u8], out: &mut Outbox) -> bool {
        let Some(IpAddr::V4(dst)) = Tunn::dst_address(ip_packet) else {
            return false;
        };
        let Some(slot) = self.route(dst) else {
            return false;
        };
        let Some(peer) = self.peers.get_mut(&slot) else {
            return false;
        };
        let Some(endpoint) = peer.endpoint else {
            return false;
        };
        let region = out.reserve((ip_packet.len() + DATA_OVERHEAD).max(MIN_SCRATCH));
        match peer.tunn.encapsulate(ip_packet, region) {
            TunnResult::WriteToNetwork(datagram) => {
                let len = datagram.len();
                peer.tx_bytes += len as u64;
                out.commit(len, endpoint);
                true
            }
            // Queued until the handshake completes.
            TunnResult::Done => true,
            _ => false,
        }
    }

    /// Runs every peer's WireGuard timers: handshake retries, keepalives,
    /// rekeying, session expiry.
    pub(crate) fn update_timers(&mut self, scratch: &mut [u8], out: &mut Outbox) {
        self.limiter.reset_count();
        for peer in self.peers.values_mut() {
            match peer.tunn.update_timers(scratch) {
                TunnResult::WriteToNetwork(datagram) => {
                    if let Some(endpoint) = peer.endpoint {
                        peer.tx_bytes += datagram.len() as u64;
                        out.push(datagram, endpoint);
                    }
                }
                TunnResult::Err(WireGuardError::ConnectionExpired) | TunnResult::Done => {}
                other => tracing::trace!(peer = %peer.public_key, result = ?other, "timer"),
            }
        }
    }
}
