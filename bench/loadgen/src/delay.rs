//! A delay link: a relay that holds everything it carries for a fixed time
//! in each direction, like a network path with that one-way delay (this
//! kernel has no netem to do it).
//!
//! One port, two protocols: a TCP listener and a UDP socket bound to the
//! same address. Each TCP connection gets its own connection to the far
//! end; each UDP client address gets its own socket towards the far end.
//! Every chunk read from a TCP connection and every datagram, in either
//! direction, is passed on exactly `delay` after it arrived, in the order
//! it arrived, while the link goes on reading: the delay costs time, not
//! throughput, up to a bound on what may be held at once (per TCP
//! direction, then the reader waits and TCP pushes back; per UDP direction,
//! then datagrams are dropped and counted).
//!
//! A TCP connect through a relay completes at once, which would hide the
//! round trip of the handshake: on a real path `connect` returns one round
//! trip (`2 × delay`) after it was called, and whatever the client does
//! next happens that much later. The link charges it. The far end is
//! dialled `3 × delay` after the accept (SYN, SYN-ACK and ACK have
//! crossed), and until the link has passed the client its first byte from
//! the far end, the client is `2 × delay` behind where the link sees it:
//! its bytes are held `3 × delay` instead of `delay`. A client that sends
//! at once sees its first byte arrive `3 × delay` after its connect; one
//! that first works for a while (say, seeding a random generator) sees
//! that time added, as on a real path. Once it has heard from the far end
//! (or the link has passed it an end of input), every byte takes `delay`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};

/// Largest piece read from a TCP connection at once.
const TCP_CHUNK: usize = 64 * 1024;
/// Largest datagram (the IPv4 maximum payload is a little less).
const MAX_DATAGRAM: usize = 65_536;
/// Attempts at a TCP and UDP pair on the same free port (port 0).
const BIND_ATTEMPTS: usize = 64;
/// Receive and send buffer asked for each UDP socket (the kernel caps it
/// at net.core.rmem_max / wmem_max).
const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// Asks for large receive and send buffers on a UDP socket: with the
/// kernel's default (about 208 KiB) a burst of QUIC packets overflows the
/// receive buffer and is dropped before anyone reads it. Best effort.
pub fn enlarge_udp_buffers(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let size = UDP_SOCKET_BUFFER as libc::c_int;
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: setsockopt on a socket we own, with a pointer to an int
        // and its size, as the call expects.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// What the link does.
#[derive(Debug, Clone)]
pub struct DelayOptions {
    /// Where to listen, TCP and UDP (port 0 picks one free for both).
    pub listen: SocketAddr,
    /// Where to relay to, TCP and UDP.
    pub to: SocketAddr,
    /// One-way delay, added in each direction.
    pub delay: Duration,
    /// Most bytes held per TCP connection and direction; then the link
    /// stops reading that side until some are passed on.
    pub max_tcp_queued: usize,
    /// Most datagram bytes held per direction (all UDP clients together);
    /// a datagram that would go beyond is dropped and counted.
    pub max_udp_queued: usize,
    /// Most UDP client addresses relayed at once; datagrams from more are
    /// dropped and counted.
    pub max_udp_peers: usize,
    /// A UDP client silent (both ways) this long loses its socket.
    pub udp_idle: Duration,
}

impl DelayOptions {
    /// The bench's settings: 64 MiB per TCP direction, 16 MiB per UDP
    /// direction, 4096 UDP clients, 120 s UDP idle.
    pub fn new(listen: SocketAddr, to: SocketAddr, delay: Duration) -> DelayOptions {
        DelayOptions {
            listen,
            to,
            delay,
            max_tcp_queued: 64 << 20,
            max_udp_queued: 16 << 20,
            max_udp_peers: 4096,
            udp_idle: Duration::from_secs(120),
        }
    }
}

/// Counters of a running link.
#[derive(Debug, Default)]
pub struct DelayStats {
    tcp_connections: AtomicU64,
    tcp_connect_failures: AtomicU64,
    udp_forwarded: AtomicU64,
    udp_returned: AtomicU64,
    udp_dropped: AtomicU64,
}

/// A snapshot of [`DelayStats`], as printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DelayCounts {
    /// TCP connections accepted.
    pub tcp_connections: u64,
    /// Of those, how many could not reach the far end.
    pub tcp_connect_failures: u64,
    /// Datagrams passed on from clients to the far end.
    pub udp_forwarded: u64,
    /// Datagrams passed back from the far end to clients.
    pub udp_returned: u64,
    /// Datagrams dropped: queue full, too many clients, or a send failed.
    pub udp_dropped: u64,
}

impl DelayStats {
    /// The counters now.
    pub fn counts(&self) -> DelayCounts {
        DelayCounts {
            tcp_connections: self.tcp_connections.load(Ordering::Relaxed),
            tcp_connect_failures: self.tcp_connect_failures.load(Ordering::Relaxed),
            udp_forwarded: self.udp_forwarded.load(Ordering::Relaxed),
            udp_returned: self.udp_returned.load(Ordering::Relaxed),
            udp_dropped: self.udp_dropped.load(Ordering::Relaxed),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bound link, not yet relaying.
pub struct DelayLink {
    tcp: TcpListener,
    udp: UdpSocket,
    addr: SocketAddr,
    opts: DelayOptions,
    stats: Arc<DelayStats>,
}

impl DelayLink {
    /// Binds the TCP listener, then UDP on the same address. With port 0
    /// the port is the one TCP got; if UDP has it taken, both are tried
    /// again on another.
    pub async fn bind(opts: DelayOptions) -> io::Result<DelayLink> {
        if opts.delay > Duration::from_secs(3600) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a delay of more than an hour",
            ));
        }
        let attempts = if opts.listen.port() == 0 {
            BIND_ATTEMPTS
        } else {
            1
        };
        let mut last = None;
        for _ in 0..attempts {
            let tcp = TcpListener::bind(opts.listen).await?;
            let addr = tcp.local_addr()?;
            match std::net::UdpSocket::bind(addr) {
                Ok(udp) => {
                    enlarge_udp_buffers(&udp);
                    udp.set_nonblocking(true)?;
                    let udp = UdpSocket::from_std(udp)?;
                    return Ok(DelayLink {
                        tcp,
                        udp,
                        addr,
                        opts,
                        stats: Arc::default(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
    }

    /// The bound address (TCP and UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters, shared with the running link.
    pub fn stats(&self) -> Arc<DelayStats> {
        self.stats.clone()
    }

    /// Relays until the task is dropped; fails only if accepting or
    /// receiving on the listening sockets fails.
    pub async fn run(self) -> io::Result<()> {
        let DelayLink {
            tcp,
            udp,
            opts,
            stats,
            ..
        } = self;
        let opts = Arc::new(opts);
        let tcp_side = run_tcp(tcp, opts.clone(), stats.clone());
        let udp_side = run_udp(Arc::new(udp), opts, stats);
        tokio::try_join!(tcp_side, udp_side)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

async fn run_tcp(
    listener: TcpListener,
    opts: Arc<DelayOptions>,
    stats: Arc<DelayStats>,
) -> io::Result<()> {
    // Connections end with the link (a JoinSet aborts its tasks when dropped).
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or a connection reset before accept: keep
            // serving the others.
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        DelayStats::bump(&stats.tcp_connections);
        let (opts, stats) = (opts.clone(), stats.clone());
        connections.spawn(async move {
            let accepted = Instant::now();
            let _ = relay_tcp(client, accepted, &opts, &stats).await;
        });
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24) // ENFILE, EMFILE
}

async fn relay_tcp(
    client: TcpStream,
    accepted: Instant,
    opts: &DelayOptions,
    stats: &DelayStats,
) -> io::Result<()> {
    // The handshake's three crossings happen before the far end sees a
    // connection. What the client sends meanwhile is read (and timed) as
    // it arrives; until it has heard from the far end it is behind by the
    // round trip its connect would have taken.
    let open = accepted + 3 * opts.delay;
    let heard = Arc::new(AtomicBool::new(false));
    client.set_nodelay(true)?;
    let (client_r, client_w) = client.into_split();
    let behind = Some((2 * opts.delay, heard.clone()));
    let (read_client, from_client) = hold(client_r, opts.delay, behind, opts.max_tcp_queued);
    let rest = async {
        sleep_until(open).await;
        let upstream = match TcpStream::connect(opts.to).await {
            Ok(s) => s,
            Err(e) => {
                DelayStats::bump(&stats.tcp_connect_failures);
                return Err(e);
            }
        };
        upstream.set_nodelay(true)?;
        let (up_r, up_w) = upstream.into_split();
        let (read_up, from_up) = hold(up_r, opts.delay, None, opts.max_tcp_queued);
        // A failed write ends both directions; an end of input only its own.
        tokio::try_join!(
            pass_on(from_client, up_w, None),
            read_up,
            pass_on(from_up, client_w, Some(heard))
        )?;
        Ok(())
    };
    tokio::try_join!(read_client, rest)?;
    Ok(())
}

/// One held piece of a TCP direction: bytes, or the end of the input.
struct Held {
    due: Instant,
    bytes: Option<Bytes>,
    _room: Option<OwnedSemaphorePermit>,
}

/// Reads `from` into a queue, each chunk due `delay` after it was read, at
/// most `budget` bytes held at once (then it waits, and TCP pushes back).
/// With `behind = (extra, heard)`, chunks read while `heard` is false wait
/// `extra` more. Due times never go backwards, so the order is kept. The
/// end of `from`, or a read error, is queued as the end. Returns the
/// reading future and the queue's end for [`pass_on`].
fn hold<R>(
    mut from: R,
    delay: Duration,
    behind: Option<(Duration, Arc<AtomicBool>)>,
    budget: usize,
) -> (
    impl std::future::Future<Output = io::Result<()>>,
    mpsc::UnboundedReceiver<Held>,
)
where
    R: AsyncRead + Unpin,
{
    // Permits count bytes; a chunk never needs more than the whole budget.
    let budget = budget.clamp(TCP_CHUNK, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let room = Arc::new(Semaphore::new(budget));
    let (tx, rx) = mpsc::unbounded_channel::<Held>();
    let reader = async move {
        let mut buf = vec![0u8; TCP_CHUNK];
        let mut last_due = Instant::now();
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            let mut due = Instant::now() + delay;
            if let Some((extra, heard)) = &behind
                && !heard.load(Ordering::Acquire)
            {
                due += *extra;
            }
            let due = due.max(last_due);
            last_due = due;
            if n == 0 {
                let _ = tx.send(Held {
                    due,
                    bytes: None,
                    _room: None,
                });
                return Ok(());
            }
            let permit = room
                .clone()
                .acquire_many_owned(n as u32)
                .await
                .map_err(|_| io::Error::other("closed"))?;
            let held = Held {
                due,
                bytes: Some(Bytes::copy_from_slice(&buf[..n])),
                _room: Some(permit),
            };
            if tx.send(held).is_err() {
                return Ok(());
            }
        }
    };
    (reader, rx)
}

/// Writes what [`hold`] queued to `to`, each piece when it is due; the end
/// becomes a shutdown of `to`'s write side. `heard`, if given, is set once
/// the first piece (or the end) has been passed on.
async fn pass_on<W>(
    mut queue: mpsc::UnboundedReceiver<Held>,
    mut to: W,
    heard: Option<Arc<AtomicBool>>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while let Some(held) = queue.recv().await {
        sleep_until(held.due).await;
        match held.bytes {
            Some(bytes) => to.write_all(&bytes).await?,
            None => {
                let _ = to.shutdown().await;
                if let Some(heard) = &heard {
                    heard.store(true, Ordering::Release);
                }
                break;
            }
        }
        if let Some(heard) = &heard {
            heard.store(true, Ordering::Release);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

/// One datagram on its way.
struct Datagram {
    due: Instant,
    bytes: Bytes,
    /// Towards the far end: the client's socket; back: unused.
    via: Option<Arc<UdpSocket>>,
    /// Back: the client's address.
    to: SocketAddr,
    _room: OwnedSemaphorePermit,
}

/// A UDP client and its socket towards the far end.
struct Peer {
    socket: Arc<UdpSocket>,
    /// Milliseconds since the link started, of the last datagram either way.
    last_seen: AtomicU64,
}

type Peers = Arc<Mutex<HashMap<SocketAddr, Arc<Peer>>>>;

async fn run_udp(
    listen: Arc<UdpSocket>,
    opts: Arc<DelayOptions>,
    stats: Arc<DelayStats>,
) -> io::Result<()> {
    let epoch = Instant::now();
    let peers: Peers = Arc::default();
    let budget = opts
        .max_udp_queued
        .clamp(MAX_DATAGRAM, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let room_out = Arc::new(Semaphore::new(budget));
    let room_back = Arc::new(Semaphore::new(budget));
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Datagram>();
    let (back_tx, mut back_rx) = mpsc::unbounded_channel::<Datagram>();

    // The two senders: each direction is one queue in arrival order, and
    // every datagram waits the same delay, so due times only grow.
    let sender_stats = stats.clone();
    let out_sender = tokio::spawn(async move {
        while let Some(d) = out_rx.recv().await {
            sleep_until(d.due).await;
            let via = d.via.as_ref().expect("outgoing datagrams have a socket");
            match via.send(&d.bytes).await {
                Ok(_) => DelayStats::bump(&sender_stats.udp_forwarded),
                Err(_) => DelayStats::bump(&sender_stats.udp_dropped),
            }
        }
    });
    let back_socket = listen.clone();
    let sender_stats = stats.clone();
    let back_sender = tokio::spawn(async move {
        while let Some(d) = back_rx.recv().await {
            sleep_until(d.due).await;
            match back_socket.send_to(&d.bytes, d.to).await {
                Ok(_) => DelayStats::bump(&sender_stats.udp_returned),
                Err(_) => DelayStats::bump(&sender_stats.udp_dropped),
            }
        }
    });
    let _abort = AbortOnDrop(vec![out_sender, back_sender]);

    let mut returns = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while returns.try_join_next().is_some() {}
        let (n, from) = match listen.recv_from(&mut buf).await {
            Ok(got) => got,
            // ICMP errors from earlier sends surface here on some systems.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let peer = match peer_for(&peers, from, &opts, epoch) {
            Ok(Some((peer, fresh))) => {
                if fresh {
                    let back = PeerReturn {
                        peer: peer.clone(),
                        client: from,
                        peers: peers.clone(),
                        tx: back_tx.clone(),
                        room: room_back.clone(),
                        delay: opts.delay,
                        idle: opts.udp_idle,
                        epoch,
                        stats: stats.clone(),
                    };
                    returns.spawn(back.run());
                }
                peer
            }
            Ok(None) | Err(_) => {
                DelayStats::bump(&stats.udp_dropped);
                continue;
            }
        };
        peer.last_seen
            .store(millis_since(epoch, now), Ordering::Relaxed);
        let Ok(permit) = room_out.clone().try_acquire_many_owned(n as u32) else {
            DelayStats::bump(&stats.udp_dropped);
            continue;
        };
        let datagram = Datagram {
            due: now + opts.delay,
            bytes: Bytes::copy_from_slice(&buf[..n]),
            via: Some(peer.socket.clone()),
            to: from,
            _room: permit,
        };
        if out_tx.send(datagram).is_err() {
            return Err(io::Error::other("the UDP sender stopped"));
        }
    }
}

fn millis_since(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_millis() as u64
}

/// The peer of `client`, made if new (`true`); `None` when there are too
/// many already.
fn peer_for(
    peers: &Peers,
    client: SocketAddr,
    opts: &DelayOptions,
    epoch: Instant,
) -> io::Result<Option<(Arc<Peer>, bool)>> {
    let mut map = peers.lock().expect("peers lock");
    if let Some(peer) = map.get(&client) {
        return Ok(Some((peer.clone(), false)));
    }
    if map.len() >= opts.max_udp_peers {
        return Ok(None);
    }
    let local: SocketAddr = match opts.to.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(local)?;
    enlarge_udp_buffers(&socket);
    socket.connect(opts.to)?;
    socket.set_nonblocking(true)?;
    let socket = Arc::new(UdpSocket::from_std(socket)?);
    let peer = Arc::new(Peer {
        socket,
        last_seen: AtomicU64::new(millis_since(epoch, Instant::now())),
    });
    map.insert(client, peer.clone());
    Ok(Some((peer, true)))
}

/// Reads what the far end sends one client, until the client is idle.
struct PeerReturn {
    peer: Arc<Peer>,
    client: SocketAddr,
    peers: Peers,
    tx: mpsc::UnboundedSender<Datagram>,
    room: Arc<Semaphore>,
    delay: Duration,
    idle: Duration,
    epoch: Instant,
    stats: Arc<DelayStats>,
}

impl PeerReturn {
    async fn run(self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let idle_ms = self.idle.as_millis() as u64;
        loop {
            let last = self.peer.last_seen.load(Ordering::Relaxed);
            let deadline = self.epoch + Duration::from_millis(last) + self.idle;
            let got = tokio::select! {
                got = self.peer.socket.recv(&mut buf) => got,
                _ = sleep_until(deadline) => {
                    let now = millis_since(self.epoch, Instant::now());
                    if now.saturating_sub(self.peer.last_seen.load(Ordering::Relaxed)) >= idle_ms {
                        break;
                    }
                    continue;
                }
            };
            let n = match got {
                Ok(n) => n,
                // The far end's port was closed (ICMP): nothing to pass back.
                Err(_) => continue,
            };
            let now = Instant::now();
            self.peer
                .last_seen
                .store(millis_since(self.epoch, now), Ordering::Relaxed);
            let Ok(permit) = self.room.clone().try_acquire_many_owned(n as u32) else {
                DelayStats::bump(&self.stats.udp_dropped);
                continue;
            };
            let datagram = Datagram {
                due: now + self.delay,
                bytes: Bytes::copy_from_slice(&buf[..n]),
                via: None,
                to: self.client,
                _room: permit,
            };
            if self.tx.send(datagram).is_err() {
                break;
            }
        }
        let mut map = self.peers.lock().expect("peers lock");
        if map
            .get(&self.client)
            .is_some_and(|p| Arc::ptr_eq(p, &self.peer))
        {
            map.remove(&self.client);
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
