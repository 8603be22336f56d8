//! The userspace TCP/IP stack: smoltcp's interface and sockets, plus what
//! smoltcp leaves to its user — listen backlogs, ephemeral ports, and sockets
//! whose stream was dropped but which still have bytes to deliver.
//!
//! The stack sits behind one mutex shared by the driver (which feeds it
//! packets and polls it) and the streams (which copy bytes straight into and
//! out of the sockets' ring buffers: one copy each way, no channel between).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::task::Waker;
use std::time::Duration;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};

use crate::ack_rescue::AckRescue;
use crate::config::{CongestionControl, NodeConfig};
use crate::device::Device;
use crate::error::Error;

/// Ephemeral ports for outgoing connections (RFC 6335's dynamic range).
const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// IANA protocol number of TCP.
const IPPROTO_TCP: u8 = 6;

/// The settings the stack needs from [`NodeConfig`].
struct Limits {
    rx_buffer: usize,
    tx_buffer: usize,
    max_connections: usize,
    accept_backlog: usize,
    listen_spares: usize,
    linger: Duration,
    congestion: tcp::CongestionControl,
}

/// One `listen`ed port.
struct Listener {
    /// Sockets in LISTEN or SYN-RECEIVED: smoltcp has no backlog, so each
    /// concurrent handshake needs a socket of its own.
    pending: Vec<SocketHandle>,
    /// Established connections waiting for `accept`.
    ready: VecDeque<SocketHandle>,
    waker: Option<Waker>,
}

/// What `accept` found.
pub(crate) enum Accepted {
    Stream(SocketHandle, SocketAddrV4),
    /// The listener was removed or the node stopped.
    Gone,
}

pub(crate) struct Stack {
    pub(crate) iface: Interface,
    pub(crate) device: Device,
    pub(crate) sockets: SocketSet<'static>,
    pub(crate) ack_rescue: AckRescue,
    address: Ipv4Addr,
    limits: Limits,
    listeners: HashMap<u16, Listener>,
    /// Sockets whose stream is gone, finishing their close.
    orphans: Vec<SocketHandle>,
    /// Ephemeral port of each outgoing connection, freed with the socket.
    local_ports: HashMap<SocketHandle, u16>,
    used_ports: HashSet<u16>,
    next_port: u16,
    socket_count: usize,
    /// Set once the driver stopped; every operation then fails.
    pub(crate) closed: bool,
    /// smoltcp's clock starts here: monotonic, unlike its `Instant::now()`
    /// (wall-clock time, which can jump).
    epoch: std::time::Instant,
}

impl Stack {
    pub(crate) fn new(config: &NodeConfig) -> Stack {
        let mut device = Device::new(config.mtu, config.batch_size);
        let mut iface_config = Config::new(HardwareAddress::Ip);
        iface_config.random_seed = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        let epoch = std::time::Instant::now();
        let mut iface = Interface::new(iface_config, &mut device, clock(epoch));
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IpAddress::Ipv4(config.address), 32))
                .expect("a fresh interface has room for one address");
        });
        // Everything not local goes "via" ourselves: on an IP-medium device
        // there is no next hop to resolve; the peer table routes by the
        // destination address instead.
        iface
            .routes_mut()
            .add_default_ipv4_route(config.address)
            .expect("a fresh interface has room for one route");
        let congestion = match config.congestion_control {
            CongestionControl::None => tcp::CongestionControl::None,
            CongestionControl::Reno => tcp::CongestionControl::Reno,
            CongestionControl::Cubic => tcp::CongestionControl::Cubic,
        };
        let start = rand_core::RngCore::next_u32(&mut rand_core::OsRng);
        let span = u32::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        Stack {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            ack_rescue: AckRescue::new(2 * config.max_connections),
            address: config.address,
            limits: Limits {
                rx_buffer: config.rx_buffer,
                tx_buffer: config.tx_buffer,
                max_connections: config.max_connections,
                accept_backlog: config.accept_backlog,
                listen_spares: config.listen_spares,
                linger: config.linger,
                congestion,
            },
            listeners: HashMap::new(),
            orphans: Vec::new(),
            local_ports: HashMap::new(),
            used_ports: HashSet::new(),
            next_port: EPHEMERAL_PORTS.start() + (start % span) as u16,
            socket_count: 0,
            closed: false,
            epoch,
        }
    }

    /// The current time on smoltcp's clock.
    pub(crate) fn now(&self) -> Instant {
        clock(self.epoch)
    }

    pub(crate) fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    fn new_socket(&mut self) -> Result<SocketHandle, Error> {
        if self.socket_count >= self.limits.max_connections {
            return Err(Error::TooManyConnections(self.limits.max_connections));
        }
        // Zeroed vectors come from calloc: pages are only touched when a
        // window actually fills, so large buffers cost little when idle.
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; self.limits.rx_buffer]),
            tcp::SocketBuffer::new(vec![0; self.limits.tx_buffer]),
        );
        // Relayed streams are interactive too (SSH, RDP): send at once.
        socket.set_nagle_enabled(false);
        socket.set_congestion_control(self.limits.congestion);
        self.socket_count += 1;
        Ok(self.sockets.add(socket))
    }

    fn free_socket(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
        self.socket_count -= 1;
        if let Some(port) = self.local_ports.remove(&handle) {
            self.used_ports.remove(&port);
        }
    }

    /// Starts listening on `port` of the tunnel address.
    pub(crate) fn listen(&mut self, port: u16) -> Result<(), Error> {
        if self.closed {
            return Err(Error::NodeClosed);
        }
        if port == 0 {
            return Err(Error::InvalidPort);
        }
        if self.listeners.contains_key(&port) {
            return Err(Error::PortInUse(port));
        }
        let first = self.new_listening(port)?;
        self.listeners.insert(
            port,
            Listener {
                pending: vec![first],
                ready: VecDeque::new(),
                waker: None,
            },
        );
        self.top_up(port, self.limits.listen_spares);
        Ok(())
    }

    fn new_listening(&mut self, port: u16) -> Result<SocketHandle, Error> {
        let handle = self.new_socket()?;
        let endpoint = IpEndpoint::new(IpAddress::Ipv4(self.address), port);
        if self.socket(handle).listen(endpoint).is_err() {
            // Only possible for port 0, which `listen` refused.
            self.free_socket(handle);
            return Err(Error::InvalidPort);
        }
        Ok(handle)
    }

    /// Stops listening: queued and half-open connections are reset.
    pub(crate) fn unlisten(&mut self, port: u16) {
        let Some(listener) = self.listeners.remove(&port) else {
            return;
        };
        for handle in listener.pending.into_iter().chain(listener.ready) {
            if self.socket(handle).state() == tcp::State::Listen {
                self.free_socket(handle);
            } else {
                self.socket(handle).abort();
                self.orphans.push(handle);
            }
        }
    }

    /// Takes an established connection for `accept`, or registers `waker`.
    pub(crate) fn accept(&mut self, port: u16, waker: &Waker) -> Option<Accepted> {
        if self.closed {
            return Some(Accepted::Gone);
        }
        let Some(listener) = self.listeners.get_mut(&port) else {
            return Some(Accepted::Gone);
        };
        let Some(handle) = listener.ready.pop_front() else {
            listener.waker = Some(waker.clone());
            return None;
        };
        let remote = match self.socket(handle).remote_endpoint() {
            Some(IpEndpoint {
                addr: IpAddress::Ipv4(ip),
                port,
            }) => SocketAddrV4::new(ip, port),
            // Reset before it was accepted: hand it out anyway; the first
            // read reports the reset.
            _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        };
        Some(Accepted::Stream(handle, remote))
    }

    /// Opens an outgoing connection (SYN-SENT); the driver sends the SYN.
    pub(crate) fn connect(&mut self, remote: SocketAddrV4) -> Result<SocketHandle, Error> {
        if self.closed {
            return Err(Error::NodeClosed);
        }
        let port = self.ephemeral_port()?;
        let handle = self.new_socket()?;
        self.used_ports.insert(port);
        self.local_ports.insert(handle, port);
        let remote = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
        let local = IpEndpoint::new(IpAddress::Ipv4(self.address), port);
        let cx = self.iface.context();
        if self
            .sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(cx, remote, local)
            .is_err()
        {
            self.free_socket(handle);
            return Err(Error::InvalidPort);
        }
        Ok(handle)
    }

    fn ephemeral_port(&mut self) -> Result<u16, Error> {
        let span = usize::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port == *EPHEMERAL_PORTS.end() {
                *EPHEMERAL_PORTS.start()
            } else {
                port + 1
            };
            if !self.used_ports.contains(&port) {
                return Ok(port);
            }
        }
        Err(Error::NoFreePort)
    }

    /// A stream (or a connect that gave up) lets go of its socket. With
    /// unread data the connection is reset, as a kernel does on close();
    /// otherwise the queued bytes are still delivered and a FIN follows,
    /// bounded by `linger` of silence from the peer.
    pub(crate) fn release(&mut self, handle: SocketHandle, reset: bool) {
        let linger = self.limits.linger;
        let socket = self.socket(handle);
        if reset || socket.can_recv() {
            socket.abort();
        } else {
            socket.close();
            socket.set_timeout(Some(linger.into()));
        }
        self.orphans.push(handle);
    }

    /// Before a batch of received packets is processed: makes sure every
    /// SYN for a listened port finds a listening socket, within the backlog.
    pub(crate) fn prepare_listeners(&mut self, packets: &[Vec<u8>]) {
        if self.listeners.is_empty() {
            return;
        }
        let mut syns: HashMap<u16, usize> = HashMap::new();
        for packet in packets {
            if let Some(port) = syn_port(packet, self.address)
                && self.listeners.contains_key(&port)
            {
                *syns.entry(port).or_default() += 1;
            }
        }
        for (port, count) in syns {
            self.top_up(port, count.max(self.limits.listen_spares));
        }
    }

    /// Keeps `want` sockets in LISTEN on `port`, within the backlog and the
    /// connection limit.
    fn top_up(&mut self, port: u16, want: usize) {
        let Some(listener) = self.listeners.get(&port) else {
            return;
        };
        let listening = listener
            .pending
            .iter()
            .filter(|h| self.sockets.get::<tcp::Socket>(**h).state() == tcp::State::Listen)
            .count();
        let queued = listener.pending.len() - listening + listener.ready.len();
        let room = (self.limits.accept_backlog + self.limits.listen_spares)
            .saturating_sub(queued + listening);
        for _ in 0..want.saturating_sub(listening).min(room) {
            let Ok(handle) = self.new_listening(port) else {
                return;
            };
            if let Some(listener) = self.listeners.get_mut(&port) {
                listener.pending.push(handle);
            }
        }
    }

    /// After a poll: hands established connections to their listeners,
    /// replaces used listening sockets, and frees finished orphans.
    pub(crate) fn maintain(&mut self) {
        let ports: Vec<u16> = self.listeners.keys().copied().collect();
        for port in ports {
            let Some(listener) = self.listeners.get_mut(&port) else {
                continue;
            };
            let mut freed = Vec::new();
            let mut woke = false;
            listener.pending.retain(|handle| {
                let socket = self.sockets.get::<tcp::Socket>(*handle);
                match socket.state() {
                    tcp::State::Listen | tcp::State::SynReceived => true,
                    // A half-open connection that timed out.
                    tcp::State::Closed => {
                        freed.push(*handle);
                        false
                    }
                    _ => {
                        listener.ready.push_back(*handle);
                        woke = true;
                        false
                    }
                }
            });
            if woke && let Some(waker) = listener.waker.take() {
                waker.wake();
            }
            for handle in freed {
                self.free_socket(handle);
            }
            self.top_up(port, self.limits.listen_spares);
        }
        let mut finished = Vec::new();
        self.orphans.retain(|handle| {
            let socket = self.sockets.get::<tcp::Socket>(*handle);
            // A socket aborted by us stays CLOSED with its endpoint set until
            // its RST has been sent; only then may it go.
            let done = match socket.state() {
                tcp::State::Closed => socket.remote_endpoint().is_none(),
                tcp::State::TimeWait => true,
                _ => false,
            };
            if done {
                finished.push(*handle);
            }
            !done
        });
        for handle in finished {
            self.free_socket(handle);
        }
    }

    /// Stops everything: every socket is aborted, every waiter woken.
    pub(crate) fn shutdown(&mut self) {
        self.closed = true;
        for (_, socket) in self.sockets.iter_mut() {
            if let Some(socket) = <tcp::Socket as smoltcp::socket::AnySocket>::downcast_mut(socket)
            {
                // abort() wakes the socket's readers and writers.
                socket.abort();
            }
        }
        for (_, listener) in self.listeners.drain() {
            if let Some(waker) = listener.waker {
                waker.wake();
            }
        }
    }

    /// Open sockets (for tests and limits).
    pub(crate) fn socket_count(&self) -> usize {
        self.socket_count
    }
}

/// Time since `epoch` on smoltcp's clock, plus a second so that no real
/// moment is smoltcp's zero instant (some of its timers use zero as "unset").
fn clock(epoch: std::time::Instant) -> Instant {
    let micros = i64::try_from(epoch.elapsed().as_micros()).unwrap_or(i64::MAX);
    Instant::from_micros(micros.saturating_add(1_000_000))
}

/// The destination port of a TCP SYN (without ACK) to `local`, read from a
/// raw IPv4 packet: just enough parsing to size the listen backlog before
/// smoltcp sees the packet. Anything malformed is left to smoltcp.
fn syn_port(packet: &[u8], local: Ipv4Addr) -> Option<u16> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let first = *packet.first()?;
    if first >> 4 != 4 || packet.get(9) != Some(&IPPROTO_TCP) {
        return None;
    }
    if packet.get(16..20)? != local.octets() {
        return None;
    }
    let tcp = packet.get(usize::from(first & 0x0f) * 4..)?;
    if tcp.len() < 20 {
        return None;
    }
    let flags = tcp[13];
    if flags & (SYN | ACK) != SYN {
        return None;
    }
    Some(u16::from_be_bytes([tcp[2], tcp[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_packet(dst: Ipv4Addr, port: u16, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = IPPROTO_TCP;
        p[16..20].copy_from_slice(&dst.octets());
        p[22..24].copy_from_slice(&port.to_be_bytes());
        p[33] = flags;
        p
    }

    #[test]
    fn finds_syns_only() {
        let me = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(syn_port(&tcp_packet(me, 22, 0x02), me), Some(22));
        assert_eq!(syn_port(&tcp_packet(me, 22, 0x12), me), None, "SYN-ACK");
        assert_eq!(syn_port(&tcp_packet(me, 22, 0x10), me), None, "ACK");
        let other = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(syn_port(&tcp_packet(other, 22, 0x02), me), None);
        let full = tcp_packet(me, 22, 0x02);
        for len in 0..full.len() {
            assert_eq!(syn_port(&full[..len], me), None, "truncated at {len}");
        }
    }
}
