//! Hostile clients for resilience tests (issue 17): many connections that
//! never prove who they are, or that abuse the protocol, against a server on
//! the loopback interface.
//!
//! Each attack opens up to [`MAX_CONNECTIONS`] connections, each bound to a
//! chosen source address in 127.0.0.0/8 before it connects ([`Sources`]), so
//! a test can pile every attacker on one address (to exercise a per-source
//! limit) or spread them over many (to stay under it). Everything is bounded:
//! a connection is held at most [`MAX_HOLD`], each step of its setup at most
//! [`STEP_TIMEOUT`], and dropping a [`Running`] attack closes every socket
//! at once. Only loopback is ever dialled: [`Target::new`] and [`Sources`]
//! refuse anything outside 127.0.0.0/8.
//!
//! The kinds ([`Kind`]): idle TCP, idle TLS, tokenless WebSocket upgrades,
//! a hello dribbled byte by byte, and ping floods that never read (before
//! and after the hello); [`churn`] opens and drops upgrades in a loop; and
//! [`probe`] sends one malformed message (oversized, fragmented, bad opcode)
//! and reports how the server answered; [`flood_probe`] is one ping flood
//! that reads on the side, to see when the server closes it and how long it
//! takes the flood after that. For attacks of a test's own making,
//! [`Target::connect_tls`], [`Target::connect_ws`] and
//! [`Target::connect_session`] hand out a connection at each stage, and
//! [`client_frame`] and [`read_frame`] write and read frames. WebSocket
//! frames are written by hand (masked, as a client must), so that they can
//! also be wrong. [`http_get_text`] and [`metric`] read a Prometheus
//! endpoint, to tell why an attack failed.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Most connections one attack opens.
pub const MAX_CONNECTIONS: usize = 4096;
/// Longest an attack's connection is held open.
pub const MAX_HOLD: Duration = Duration::from_secs(120);
/// Longest any one step of a connection's setup (TCP connect, TLS, the
/// upgrade's answer, `ready`) may take before the connection counts as failed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections being set up at once, unless [`Attack::ramp`] says otherwise.
pub const DEFAULT_RAMP: usize = 128;
/// Longest server frame a hostile client reads (it only looks at control
/// frames and short `error`/`ready` messages).
const MAX_READ_FRAME: usize = 1 << 20;
/// How often waits re-check their condition.
const POLL: Duration = Duration::from_millis(10);
/// Ping frames written per `write_all` in a flood.
const FLOOD_BATCH: usize = 64;

/// Raises this process's soft limit of open files to its hard limit (a
/// child inherits it), so that thousands of sockets fit. Returns the limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

fn ensure_loopback(ip: IpAddr) -> anyhow::Result<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Ok(v4),
        other => bail!("hostile clients only use 127.0.0.0/8, not {other}"),
    }
}

/// The server under attack: a loopback address, and the certificate to trust.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    tls: TlsConnector,
    server_name: ServerName<'static>,
    ws_path: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("ws_path", &self.ws_path)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A server at `addr` (in 127.0.0.0/8) whose certificate, valid for
    /// `localhost`, is signed by (or is) the PEM certificate at `ca`.
    /// WebSocket upgrades go to `/ws`. Every TLS handshake is a full one
    /// (no resumption), the dearest kind for the server.
    pub fn new(addr: SocketAddr, ca: &Path) -> anyhow::Result<Target> {
        ensure_loopback(addr.ip())?;
        crate::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading {}", ca.display()))?
        {
            roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
        }
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Target {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from("localhost")?,
            ws_path: "/ws".to_owned(),
        })
    }

    /// Upgrades go to `path` instead of `/ws`.
    pub fn with_ws_path(mut self, path: &str) -> Target {
        self.ws_path = path.to_owned();
        self
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A TLS connection from `source` (in 127.0.0.0/8), nothing sent yet:
    /// for attacks of the test's own making.
    pub async fn connect_tls(&self, source: Ipv4Addr) -> anyhow::Result<TlsStream<TcpStream>> {
        ensure_loopback(source.into())?;
        self.tls(source)
            .await
            .map_err(|Failure(why)| anyhow::anyhow!(why))
    }

    /// A connection from `source` upgraded to WebSocket, no hello sent.
    pub async fn connect_ws(&self, source: Ipv4Addr) -> anyhow::Result<TlsStream<TcpStream>> {
        ensure_loopback(source.into())?;
        self.upgraded(source)
            .await
            .map_err(|Failure(why)| anyhow::anyhow!(why))
    }

    /// A connection from `source` whose hello with `token` was answered `ready`.
    pub async fn connect_session(
        &self,
        source: Ipv4Addr,
        token: &str,
    ) -> anyhow::Result<TlsStream<TcpStream>> {
        ensure_loopback(source.into())?;
        self.ready(source, token)
            .await
            .map_err(|Failure(why)| anyhow::anyhow!(why))
    }

    async fn tcp(&self, source: Ipv4Addr) -> io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        socket.set_nodelay(true)?;
        socket.connect(self.addr).await
    }

    async fn tls(&self, source: Ipv4Addr) -> Result<TlsStream<TcpStream>, Failure> {
        let tcp = step("connect", self.tcp(source)).await?;
        step("tls", self.tls.connect(self.server_name.clone(), tcp)).await
    }

    /// TLS, then a valid WebSocket upgrade answered `101`.
    async fn upgraded(&self, source: Ipv4Addr) -> Result<TlsStream<TcpStream>, Failure> {
        let mut tls = self.tls(source).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            path = self.ws_path,
            port = self.addr.port()
        );
        step("upgrade", tls.write_all(request.as_bytes())).await?;
        let head = step("upgrade", read_head(&mut tls)).await?;
        let status = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
        if status != "101" {
            return Err(Failure(format!("upgrade answered {status}")));
        }
        Ok(tls)
    }

    /// An upgraded connection that sent `hello` with `token` and got `ready`.
    async fn ready(&self, source: Ipv4Addr, token: &str) -> Result<TlsStream<TcpStream>, Failure> {
        let mut ws = self.upgraded(source).await?;
        step(
            "hello",
            ws.write_all(&client_frame(true, OP_TEXT, &hello(token))),
        )
        .await?;
        match step("ready", read_frame(&mut ws)).await? {
            ServerFrame::Text(t) if t.contains("\"ready\"") => Ok(ws),
            ServerFrame::Text(t) => Err(Failure(format!("hello answered {t}"))),
            other => Err(Failure(format!("hello answered {other:?}"))),
        }
    }
}

/// Reads an HTTP response head, byte by byte so that nothing after it is lost.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<String> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head too long",
            ));
        }
        if s.read(&mut byte).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Why a connection did not reach its attack's stage, in a few words.
#[derive(Debug)]
struct Failure(String);

fn io_label(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "reset".to_owned(),
        io::ErrorKind::UnexpectedEof => "eof".to_owned(),
        io::ErrorKind::BrokenPipe => "broken pipe".to_owned(),
        io::ErrorKind::ConnectionRefused => "refused".to_owned(),
        io::ErrorKind::ConnectionAborted => "aborted".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => format!("{e}"),
    }
}

/// One setup step, bounded by [`STEP_TIMEOUT`]; failures are labelled `what: why`.
async fn step<T>(what: &str, fut: impl Future<Output = io::Result<T>>) -> Result<T, Failure> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure(format!("{what}: {}", io_label(&e)))),
        Err(_) => Err(Failure(format!("{what}: timed out"))),
    }
}

/// The source addresses an attack's connections are bound to, in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(Vec<Ipv4Addr>);

impl Sources {
    /// Every connection from `127.0.0.{last}`.
    pub fn one(last: u8) -> Sources {
        Sources::spread(last..=last)
    }

    /// Connections spread over `127.0.0.{first}` to `127.0.0.{last}`, in turn.
    /// Panics on an empty range or one that includes .0 or .255.
    pub fn spread(range: RangeInclusive<u8>) -> Sources {
        assert!(
            !range.is_empty() && *range.start() > 0 && *range.end() < 255,
            "a range of host addresses in 127.0.0.1..=127.0.0.254, not {range:?}"
        );
        Sources(range.map(|i| Ipv4Addr::new(127, 0, 0, i)).collect())
    }

    /// Any loopback addresses (each in 127.0.0.0/8).
    pub fn list(addrs: &[Ipv4Addr]) -> anyhow::Result<Sources> {
        ensure!(!addrs.is_empty(), "no source address");
        for a in addrs {
            ensure_loopback((*a).into())?;
        }
        Ok(Sources(addrs.to_vec()))
    }

    /// The source of the `i`-th connection.
    pub fn pick(&self, i: usize) -> Ipv4Addr {
        self.0[i % self.0.len()]
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (a `Sources` has at least one address).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for Sources {
    /// 127.0.0.2 to 127.0.0.100: 99 sources, none of them 127.0.0.1 (where
    /// real clients come from).
    fn default() -> Sources {
        Sources::spread(2..=100)
    }
}

/// How a flood's pings are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingStyle {
    /// WebSocket ping frames (with a 125-byte payload, the most allowed).
    WebSocket,
    /// The protocol's JSON `{"type":"ping"}` text messages.
    Json,
}

impl PingStyle {
    /// One ping's frame, as a client sends it.
    pub fn frame(self) -> Vec<u8> {
        match self {
            PingStyle::WebSocket => client_frame(true, OP_PING, &[0x5a; 125]),
            PingStyle::Json => client_frame(true, OP_TEXT, br#"{"type":"ping"}"#),
        }
    }
}

/// What each connection of an attack does once it is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// TCP connect, then nothing.
    IdleTcp,
    /// TLS handshake, then no request.
    IdleTls,
    /// A valid WebSocket upgrade, then no hello. Reads, to see how it ends.
    TokenlessUpgrade,
    /// An upgrade, then a hello (with `token`) written one byte at a time,
    /// `pause` between bytes. Reads, to see how it ends.
    SlowHello {
        /// The hello's token (a valid one shows the deadline still applies).
        token: String,
        /// Time between two bytes.
        pause: Duration,
    },
    /// An upgrade (and with `token`, a hello answered `ready`), then pings
    /// written as fast as the socket takes them, and never a read.
    PingFlood {
        /// `None`: before any hello; `Some`: after a valid one.
        token: Option<String>,
        /// WebSocket or JSON pings.
        style: PingStyle,
    },
}

impl Kind {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Kind::IdleTcp => "idle TCP".to_owned(),
            Kind::IdleTls => "idle TLS".to_owned(),
            Kind::TokenlessUpgrade => "tokenless upgrade".to_owned(),
            Kind::SlowHello { pause, .. } => format!("slow hello ({pause:?}/byte)"),
            Kind::PingFlood { token, style } => format!(
                "{style:?} ping flood {}",
                if token.is_some() {
                    "after hello"
                } else {
                    "before hello"
                }
            ),
        }
    }
}

/// An attack not yet started: `count` connections of one [`Kind`].
#[derive(Debug, Clone)]
pub struct Attack {
    kind: Kind,
    count: usize,
    sources: Sources,
    ramp: usize,
    hold: Duration,
}

impl Attack {
    /// `count` connections of `kind` from [`Sources::default`], set up
    /// [`DEFAULT_RAMP`] at a time, each held until the server closes it,
    /// the attack is stopped, or 60 s passed.
    pub fn new(kind: Kind, count: usize) -> Attack {
        Attack {
            kind,
            count,
            sources: Sources::default(),
            ramp: DEFAULT_RAMP,
            hold: Duration::from_secs(60),
        }
    }

    /// The connections come from `sources`, in turn.
    pub fn from(mut self, sources: Sources) -> Attack {
        self.sources = sources;
        self
    }

    /// At most `n` connections are being set up at once.
    pub fn ramp(mut self, n: usize) -> Attack {
        self.ramp = n.max(1);
        self
    }

    /// Each connection is closed after `hold` (at most [`MAX_HOLD`]).
    pub fn hold(mut self, hold: Duration) -> Attack {
        self.hold = hold;
        self
    }

    /// Starts the attack on the current tokio runtime and returns at once.
    pub fn launch(self, target: &Target) -> anyhow::Result<Running> {
        ensure!(
            (1..=MAX_CONNECTIONS).contains(&self.count),
            "an attack opens 1 to {MAX_CONNECTIONS} connections, not {}",
            self.count
        );
        ensure!(
            self.hold <= MAX_HOLD,
            "connections are held at most {MAX_HOLD:?}"
        );
        let stats = Arc::new(Stats::default());
        let ramp = Arc::new(Semaphore::new(self.ramp));
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        let end = started + self.hold;
        for i in 0..self.count {
            let conn = Conn {
                kind: self.kind.clone(),
                target: target.clone(),
                source: self.sources.pick(i),
                stats: stats.clone(),
                ramp: ramp.clone(),
                end,
            };
            tasks.spawn(conn.run());
        }
        Ok(Running {
            name: self.kind.name(),
            count: self.count,
            sources: self.sources.len(),
            stats,
            tasks,
            started,
        })
    }
}

/// What one connection of an attack does.
struct Conn {
    kind: Kind,
    target: Target,
    source: Ipv4Addr,
    stats: Arc<Stats>,
    ramp: Arc<Semaphore>,
    end: Instant,
}

/// Counts a connection as open until dropped (also when its task is aborted).
struct OpenGuard(Arc<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An upgraded connection of an attack, ready for its stage.
enum Stage {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    async fn run(self) {
        let stats = self.stats.clone();
        let Ok(permit) = self.ramp.clone().acquire_owned().await else {
            return;
        };
        let setup = self.setup().await;
        drop(permit);
        let stage = match setup {
            Ok(stage) => stage,
            Err(Failure(why)) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                stats.settled.fetch_add(1, Ordering::Relaxed);
                stats.ending(format!("setup failed: {why}"));
                return;
            }
        };
        stats.established.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.settled.fetch_add(1, Ordering::Relaxed);
        let _open = OpenGuard(stats.clone());
        let since = Instant::now();
        let left = self.end.saturating_duration_since(since);
        match tokio::time::timeout(left, self.hold(stage)).await {
            Ok(how) => {
                stats.ended_by_peer.fetch_add(1, Ordering::Relaxed);
                stats.closed_after(since.elapsed());
                stats.ending(how);
            }
            Err(_) => stats.ending("held to the end".to_owned()),
        }
    }

    async fn setup(&self) -> Result<Stage, Failure> {
        let t = &self.target;
        Ok(match &self.kind {
            Kind::IdleTcp => Stage::Tcp(step("connect", t.tcp(self.source)).await?),
            Kind::IdleTls => Stage::Tls(Box::new(t.tls(self.source).await?)),
            Kind::TokenlessUpgrade | Kind::SlowHello { .. } => {
                Stage::Tls(Box::new(t.upgraded(self.source).await?))
            }
            Kind::PingFlood { token: None, .. } => {
                Stage::Tls(Box::new(t.upgraded(self.source).await?))
            }
            Kind::PingFlood {
                token: Some(token), ..
            } => Stage::Tls(Box::new(t.ready(self.source, token).await?)),
        })
    }

    /// Runs the connection's stage until the server ends it; returns how.
    async fn hold(&self, stage: Stage) -> String {
        match (stage, &self.kind) {
            (Stage::Tcp(mut tcp), _) => until_closed(&mut tcp).await,
            (Stage::Tls(mut tls), Kind::IdleTls) => until_closed(&mut *tls).await,
            (Stage::Tls(mut tls), Kind::TokenlessUpgrade) => until_close_frame(&mut *tls).await,
            (Stage::Tls(tls), Kind::SlowHello { token, pause }) => {
                let (mut reader, mut writer) = tokio::io::split(*tls);
                let bytes = client_frame(true, OP_TEXT, &hello(token));
                let pause = *pause;
                let dribble = async move {
                    for b in bytes {
                        if writer.write_all(&[b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(pause).await;
                    }
                    // All sent: keep the writer (and so the socket) alive.
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    how = until_close_frame(&mut reader) => how,
                    () = dribble => unreachable!("the dribble never ends"),
                }
            }
            (Stage::Tls(mut tls), Kind::PingFlood { style, .. }) => {
                flood(&mut tls, *style, &self.stats).await
            }
            (Stage::Tls(mut tls), Kind::IdleTcp) => until_closed(&mut *tls).await,
        }
    }
}

/// Reads (and discards) until the peer closes; returns how it closed.
async fn until_closed<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return "closed by peer".to_owned(),
            Ok(_) => {}
            Err(e) => return format!("closed by peer ({})", io_label(&e)),
        }
    }
}

/// Reads WebSocket frames until a Close or the end; returns which.
async fn until_close_frame<S: AsyncRead + Unpin>(s: &mut S) -> String {
    loop {
        match read_frame(s).await {
            Ok(ServerFrame::Close { code, .. }) => return close_label(code),
            Ok(ServerFrame::Text(t)) if t.contains("\"ready\"") => return "ready".to_owned(),
            Ok(_) => {}
            Err(e) => return format!("ended without Close ({})", io_label(&e)),
        }
    }
}

fn close_label(code: Option<u16>) -> String {
    match code {
        Some(code) => format!("Close {code}"),
        None => "Close (no code)".to_owned(),
    }
}

/// Writes pings as fast as the socket takes them, never reading, until a
/// write fails; returns how it failed.
async fn flood<S: AsyncWrite + Unpin>(s: &mut S, style: PingStyle, stats: &Stats) -> String {
    let batch = style.frame().repeat(FLOOD_BATCH);
    loop {
        if let Err(e) = s.write_all(&batch).await {
            return format!("write failed ({})", io_label(&e));
        }
        stats
            .pings_sent
            .fetch_add(FLOOD_BATCH as u64, Ordering::Relaxed);
        // Let the runtime's other tasks (and other floods) run between batches.
        tokio::task::yield_now().await;
    }
}

/// The counters of one attack.
#[derive(Default)]
struct Stats {
    settled: AtomicUsize,
    established: AtomicUsize,
    failed: AtomicUsize,
    open: AtomicUsize,
    ended_by_peer: AtomicUsize,
    pings_sent: AtomicU64,
    endings: Mutex<BTreeMap<String, usize>>,
    closed_after: Mutex<Vec<Duration>>,
}

impl Stats {
    fn ending(&self, how: String) {
        *self
            .endings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(how)
            .or_default() += 1;
    }

    fn closed_after(&self, d: Duration) {
        self.closed_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d);
    }
}

/// An attack under way. Dropping it closes every connection at once.
pub struct Running {
    name: String,
    count: usize,
    sources: usize,
    stats: Arc<Stats>,
    tasks: JoinSet<()>,
    started: Instant,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("snapshot", &self.snapshot())
            .finish_non_exhaustive()
    }
}

/// The state of an attack at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The attack's kind, in words.
    pub name: String,
    /// Connections it opens.
    pub count: usize,
    /// Source addresses they come from.
    pub sources: usize,
    /// Connections whose setup is over, well or not.
    pub settled: usize,
    /// Connections that reached their stage (TCP connected, TLS done,
    /// upgraded, or `ready`, by kind).
    pub established: usize,
    /// Connections whose setup failed (closed, reset, refused, `503`…).
    pub failed: usize,
    /// Established connections still open.
    pub open: usize,
    /// Established connections the server closed.
    pub ended_by_peer: usize,
    /// Pings written by floods.
    pub pings_sent: u64,
    /// How connections ended (or failed), by kind of ending.
    pub endings: BTreeMap<String, usize>,
    /// Of connections the server closed: the shortest, median and longest
    /// time from setup to close.
    pub closed_after: Option<[Duration; 3]>,
    /// Since the attack started.
    pub elapsed: Duration,
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ×{} from {} source(s), after {:.2?}: settled {}, established {}, failed {}, \
             open {}, closed by server {}",
            self.name,
            self.count,
            self.sources,
            self.elapsed,
            self.settled,
            self.established,
            self.failed,
            self.open,
            self.ended_by_peer
        )?;
        if self.pings_sent > 0 {
            write!(f, ", pings sent {}", self.pings_sent)?;
        }
        if let Some([min, median, max]) = self.closed_after {
            write!(
                f,
                ", closed after {min:.2?}/{median:.2?}/{max:.2?} (min/median/max)"
            )?;
        }
        write!(f, "; endings {:?}", self.endings)
    }
}

impl Running {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let s = &self.stats;
        let mut closed = s
            .closed_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        closed.sort();
        let closed_after = (!closed.is_empty()).then(|| {
            [
                closed[0],
                closed[closed.len() / 2],
                closed[closed.len() - 1],
            ]
        });
        Snapshot {
            name: self.name.clone(),
            count: self.count,
            sources: self.sources,
            settled: s.settled.load(Ordering::Relaxed),
            established: s.established.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            open: s.open.load(Ordering::Relaxed),
            ended_by_peer: s.ended_by_peer.load(Ordering::Relaxed),
            pings_sent: s.pings_sent.load(Ordering::Relaxed),
            endings: s.endings.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            closed_after,
            elapsed: self.started.elapsed(),
        }
    }

    /// Waits until `done` holds for a snapshot (checked every 10 ms), at
    /// most `timeout`; the error shows the last snapshot.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Snapshot) -> bool,
    ) -> anyhow::Result<Snapshot> {
        let deadline = Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            if done(&snap) {
                return Ok(snap);
            }
            if Instant::now() >= deadline {
                bail!("{what}: not within {timeout:?}; {snap}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every connection's setup is over.
    pub async fn settled(&self, timeout: Duration) -> anyhow::Result<Snapshot> {
        self.wait_for("every connection set up", timeout, |s| s.settled >= s.count)
            .await
    }

    /// Waits until no connection is left open (the server closed them all,
    /// or their setup failed).
    pub async fn all_closed(&self, timeout: Duration) -> anyhow::Result<Snapshot> {
        self.wait_for("every connection closed", timeout, |s| {
            s.settled >= s.count && s.open == 0
        })
        .await
    }

    /// Closes every connection now and returns the last counters.
    pub async fn stop(mut self) -> Snapshot {
        let snap = self.snapshot();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        snap
    }
}

/// What [`churn`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnReport {
    /// Upgrades answered `101` (each then dropped at once).
    pub upgrades: usize,
    /// Attempts that failed, by how.
    pub failures: BTreeMap<String, usize>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl fmt::Display for ChurnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.upgrades as f64 / self.elapsed.as_secs_f64().max(1e-3);
        write!(
            f,
            "upgrade churn: {} upgrades in {:.2?} ({rate:.0}/s); failures {:?}",
            self.upgrades, self.elapsed, self.failures
        )
    }
}

/// Opens tokenless upgrades and drops each as soon as it is answered `101`,
/// from `workers` loops at once (at most 256) over `sources`, for `duration`
/// (at most [`MAX_HOLD`]).
pub async fn churn(
    target: &Target,
    sources: &Sources,
    workers: usize,
    duration: Duration,
) -> ChurnReport {
    let duration = duration.min(MAX_HOLD);
    let started = Instant::now();
    let end = started + duration;
    let upgrades = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let mut loops = JoinSet::new();
    for w in 0..workers.clamp(1, 256) {
        let (target, source) = (target.clone(), sources.pick(w));
        let (upgrades, failures) = (upgrades.clone(), failures.clone());
        loops.spawn(async move {
            while Instant::now() < end {
                let left = end.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, target.upgraded(source)).await {
                    Ok(Ok(ws)) => {
                        drop(ws);
                        upgrades.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(Failure(why))) => {
                        *failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(why)
                            .or_default() += 1;
                    }
                    Err(_) => break,
                }
            }
        });
    }
    while loops.join_next().await.is_some() {}
    let failures = failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
    ChurnReport {
        upgrades: upgrades.load(Ordering::Relaxed),
        failures,
        elapsed: started.elapsed(),
    }
}

/// One malformed message for [`probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// One text frame of `len` bytes (over the server's message limit).
    Oversized {
        /// Payload bytes.
        len: usize,
    },
    /// One text message of `total` bytes in frames of `fragment` bytes (a
    /// first frame, then continuation frames).
    Fragmented {
        /// Payload bytes of the whole message.
        total: usize,
        /// Payload bytes per frame.
        fragment: usize,
    },
    /// The hello itself (with the probe's token) in frames of `fragment`
    /// bytes: a legitimate message the server must put back together.
    FragmentedHello {
        /// Payload bytes per frame.
        fragment: usize,
    },
    /// A frame with this opcode (3–7 and 11–15 are reserved).
    BadOpcode {
        /// The 4-bit opcode.
        opcode: u8,
    },
    /// A continuation frame with no message to continue.
    OrphanContinuation,
}

/// How the server answered a [`probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Text messages received after the probe was sent (`error`, `ready`…).
    pub texts: Vec<String>,
    /// The Close frame's code, if one arrived (`Some(None)`: without a code).
    pub close: Option<Option<u16>>,
    /// How the connection ended: `Close N`, `ended without Close (…)`, or
    /// `no Close within …` when the server kept it open.
    pub ended: String,
    /// From sending the message to the end.
    pub elapsed: Duration,
}

impl ProbeOutcome {
    /// The Close code, when a Close with a code arrived.
    pub fn close_code(&self) -> Option<u16> {
        self.close.flatten()
    }
}

/// Sends one malformed message from `source` and reads what comes back
/// (while writing: a server that stops reading cannot deadlock the probe)
/// until a Close, the end of the connection, or `wait`. With `token` the
/// message follows a hello answered `ready` (except [`Malformed::FragmentedHello`],
/// which is the hello).
pub async fn probe(
    target: &Target,
    source: Ipv4Addr,
    token: Option<&str>,
    malformed: Malformed,
    wait: Duration,
) -> anyhow::Result<ProbeOutcome> {
    ensure_loopback(source.into())?;
    // Built first: the hello's deadline runs from the upgrade on.
    let bytes = match malformed {
        Malformed::Oversized { len } => client_frame(true, OP_TEXT, &vec![b'a'; len]),
        Malformed::Fragmented { total, fragment } => fragmented(&vec![b'a'; total], fragment),
        Malformed::FragmentedHello { fragment } => {
            let token = token.context("a fragmented hello needs a token")?;
            fragmented(&hello(token), fragment)
        }
        Malformed::BadOpcode { opcode } => client_frame(true, opcode & 0x0f, b"hostile"),
        Malformed::OrphanContinuation => client_frame(true, OP_CONTINUATION, b"orphan"),
    };
    let ws = match (token, malformed) {
        (Some(token), m) if !matches!(m, Malformed::FragmentedHello { .. }) => {
            target.ready(source, token).await
        }
        _ => target.upgraded(source).await,
    }
    .map_err(|Failure(why)| anyhow::anyhow!("probe setup failed: {why}"))?;
    let (mut reader, mut writer) = tokio::io::split(ws);
    let started = Instant::now();
    let write = async move {
        // The server may close (or stop reading) before it read everything:
        // that is its answer.
        let _ = tokio::time::timeout(wait, async {
            let _ = writer.write_all(&bytes).await;
            let _ = writer.flush().await;
        })
        .await;
        writer
    };
    let read = async {
        let mut texts = Vec::new();
        let ended = tokio::time::timeout(wait, async {
            loop {
                match read_frame(&mut reader).await {
                    Ok(ServerFrame::Text(t)) => texts.push(t),
                    Ok(ServerFrame::Close { code, .. }) => {
                        return (Some(code), close_label(code));
                    }
                    Ok(_) => {}
                    Err(e) => return (None, format!("ended without Close ({})", io_label(&e))),
                }
            }
        })
        .await;
        let (close, ended) = ended.unwrap_or((None, format!("no Close within {wait:?}")));
        (texts, close, ended)
    };
    let (_writer, (texts, close, ended)) = tokio::join!(write, read);
    Ok(ProbeOutcome {
        texts,
        close,
        ended,
        elapsed: started.elapsed(),
    })
}

/// What [`flood_probe`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodOutcome {
    /// Text messages received (the `error` that explains the Close).
    pub texts: Vec<String>,
    /// The Close frame's code and reason, if one arrived.
    pub close: Option<(Option<u16>, String)>,
    /// From the first ping to the Close frame's arrival.
    pub close_after: Duration,
    /// Pings written by the time the Close arrived.
    pub pings_before_close: u64,
    /// From the Close frame's arrival until the server stopped taking the
    /// flood (a write failed): how long it kept reading after it said Close.
    pub read_after_close: Duration,
    /// Pings it took (written without error) after its Close arrived.
    pub pings_after_close: u64,
}

/// One ping flood like [`Kind::PingFlood`]'s, from `source` (after a hello
/// with `token`, if given), but read on the side, to see when the Close
/// arrives and how long after it the server still takes the flood. Gives
/// up after `wait`.
pub async fn flood_probe(
    target: &Target,
    source: Ipv4Addr,
    token: Option<&str>,
    style: PingStyle,
    wait: Duration,
) -> anyhow::Result<FloodOutcome> {
    let ws = match token {
        Some(token) => target.connect_session(source, token).await?,
        None => target.connect_ws(source).await?,
    };
    let (mut reader, mut writer) = tokio::io::split(ws);
    let stats = Stats::default();
    let started = Instant::now();
    let closed = Mutex::new(None::<(Duration, u64)>);
    let read = async {
        let mut texts = Vec::new();
        loop {
            match read_frame(&mut reader).await {
                Ok(ServerFrame::Text(t)) => texts.push(t),
                Ok(ServerFrame::Close { code, reason }) => {
                    let sent = stats.pings_sent.load(Ordering::Relaxed);
                    *closed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((started.elapsed(), sent));
                    return (texts, Some((code, reason)));
                }
                Ok(ServerFrame::Other(_)) => {}
                Err(_) => return (texts, None),
            }
        }
    };
    let flooded = async {
        flood(&mut writer, style, &stats).await;
        (started.elapsed(), stats.pings_sent.load(Ordering::Relaxed))
    };
    let ((texts, close), (ended, sent)) =
        tokio::time::timeout(wait, async { tokio::join!(read, flooded) })
            .await
            .with_context(|| format!("the flood was neither closed nor refused within {wait:?}"))?;
    let (close_after, pings_before_close) = closed
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or((ended, sent));
    Ok(FloodOutcome {
        texts,
        close,
        close_after,
        pings_before_close,
        read_after_close: ended.saturating_sub(close_after),
        pings_after_close: sent.saturating_sub(pings_before_close),
    })
}

/// A hello with `token`, as JSON.
fn hello(token: &str) -> Vec<u8> {
    serde_json::json!({
        "type": "hello",
        "session_token": token,
        "version": "1",
        "client": "hostile",
    })
    .to_string()
    .into_bytes()
}

/// Continuation frames' opcode.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frames' opcode.
pub const OP_TEXT: u8 = 0x1;
/// Close frames' opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frames' opcode.
pub const OP_PING: u8 = 0x9;

/// One client frame (masked, as RFC 6455 requires of clients) with any
/// opcode, valid or not.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&KEY);
    let start = out.len();
    out.extend_from_slice(payload);
    // Eight bytes at a time: this crate is built without optimisation.
    let key = u64::from_ne_bytes([KEY, KEY].concat().try_into().expect("8 bytes"));
    let mut words = out[start..].chunks_exact_mut(8);
    for word in &mut words {
        let masked = u64::from_ne_bytes((&*word).try_into().expect("8 bytes")) ^ key;
        word.copy_from_slice(&masked.to_ne_bytes());
    }
    for (b, k) in words.into_remainder().iter_mut().zip(KEY.iter().cycle()) {
        *b ^= k;
    }
    out
}

/// A text message split into frames of `fragment` payload bytes.
fn fragmented(payload: &[u8], fragment: usize) -> Vec<u8> {
    let parts: Vec<&[u8]> = payload.chunks(fragment.max(1)).collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 { OP_TEXT } else { OP_CONTINUATION };
        out.extend(client_frame(i + 1 == parts.len(), opcode, part));
    }
    out
}

/// A frame from the server, as far as a hostile client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// A text frame.
    Text(String),
    /// A Close frame.
    Close {
        /// Its code, if it has one.
        code: Option<u16>,
        /// Its reason (empty if none).
        reason: String,
    },
    /// Any other frame, by opcode (its payload dropped).
    Other(u8),
}

/// Reads one server frame (of at most 1 MiB).
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<ServerFrame> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    let opcode = head[0] & 0x0f;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut key = None;
    if head[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        s.read_exact(&mut k).await?;
        key = Some(k);
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_READ_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "server frame too long"))?;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    if let Some(k) = key {
        payload
            .iter_mut()
            .zip(k.iter().cycle())
            .for_each(|(b, k)| *b ^= k);
    }
    Ok(match opcode {
        OP_TEXT => ServerFrame::Text(String::from_utf8_lossy(&payload).into_owned()),
        OP_CLOSE => ServerFrame::Close {
            code: (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            reason: String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned(),
        },
        other => ServerFrame::Other(other),
    })
}

/// `GET path` over plain HTTP/1.0 from a loopback address (a metrics
/// endpoint); returns the body.
pub async fn http_get_text(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    ensure_loopback(addr.ip())?;
    let fetch = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        io::Result::Ok(raw)
    };
    let raw = tokio::time::timeout(STEP_TIMEOUT, fetch)
        .await
        .context("metrics request timed out")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no response head")?;
    ensure!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    Ok(body.to_owned())
}

/// The sum of the Prometheus samples named `name` whose labels contain
/// `labels` (e.g. `reason="per_source"`, or `""` for any); 0 when absent.
pub fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match key.split_once('{') {
                Some((m, rest)) => (m, rest),
                None => (key, ""),
            };
            (metric == name && rest.contains(labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_masked_and_sized() {
        let text = b"abcdefghijklmnopqrstu";
        let f = client_frame(true, OP_TEXT, text);
        assert_eq!(f[0], 0x81);
        assert_eq!(f[1], 0x80 | text.len() as u8);
        let unmasked: Vec<u8> = f[6..]
            .iter()
            .zip(f[2..6].iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect();
        assert_eq!(unmasked, text);
        let big = client_frame(false, OP_CONTINUATION, &[0; 70_000]);
        assert_eq!((big[0], big[1]), (0x00, 0xff));
        assert_eq!(&big[2..10], &70_000u64.to_be_bytes());
        let mid = client_frame(true, 0x3, &[0; 300]);
        assert_eq!((mid[0], mid[1], mid[2], mid[3]), (0x83, 0xfe, 0x01, 0x2c));
    }

    #[tokio::test]
    async fn reads_server_frames() {
        let mut wire: &[u8] = &[0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xea, 0x89, 0x00];
        assert_eq!(
            read_frame(&mut wire).await.unwrap(),
            ServerFrame::Text("hi".into())
        );
        assert_eq!(
            read_frame(&mut wire).await.unwrap(),
            ServerFrame::Close {
                code: Some(1002),
                reason: String::new()
            }
        );
        assert_eq!(
            read_frame(&mut wire).await.unwrap(),
            ServerFrame::Other(OP_PING)
        );
        assert!(read_frame(&mut wire).await.is_err());
    }

    #[test]
    fn fragments_start_with_text_and_end_with_fin() {
        let bytes = fragmented(b"abcde", 2);
        // Three frames of 2 + 2 + 1 payload bytes, each with a 6-byte head.
        assert_eq!(bytes.len(), 3 * 6 + 5);
        assert_eq!(bytes[0], OP_TEXT);
        assert_eq!(bytes[8], OP_CONTINUATION);
        assert_eq!(bytes[16], 0x80 | OP_CONTINUATION);
    }

    #[test]
    fn sources_stay_on_loopback() {
        let s = Sources::spread(2..=4);
        assert_eq!(s.pick(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(s.pick(4), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(Sources::one(7).len(), 1);
        assert!(Sources::list(&[Ipv4Addr::new(10, 0, 0, 1)]).is_err());
        assert!(Target::new("192.0.2.1:443".parse().unwrap(), Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn metric_sums_matching_samples() {
        let text = "# TYPE x counter\nx_total{reason=\"a\"} 3\nx_total{reason=\"b\"} 4\ny 1.5\n";
        assert_eq!(metric(text, "x_total", "reason=\"a\""), 3.0);
        assert_eq!(metric(text, "x_total", ""), 7.0);
        assert_eq!(metric(text, "y", ""), 1.5);
        assert_eq!(metric(text, "z", ""), 0.0);
    }

    #[tokio::test]
    async fn idle_tcp_attack_counts_connections_and_closes_on_stop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accept and hold every connection; close the third one.
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            let mut peers = Vec::new();
            while held.len() < 3 {
                let (tcp, peer) = listener.accept().await.unwrap();
                peers.push(peer.ip());
                held.push(tcp);
            }
            held.pop();
            (held, peers)
        });
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = crate::TestCert::generate(&["localhost"]).write_to(dir.path());
        let target = Target::new(addr, &cert).unwrap();
        let attack = Attack::new(Kind::IdleTcp, 3)
            .from(Sources::one(9))
            .launch(&target)
            .unwrap();
        let (_held, peers) = server.await.unwrap();
        assert!(peers.iter().all(|p| *p == Ipv4Addr::new(127, 0, 0, 9)));
        let snap = attack
            .wait_for("one closed", Duration::from_secs(5), |s| {
                s.ended_by_peer == 1
            })
            .await
            .unwrap();
        assert_eq!((snap.established, snap.open), (3, 2));
        let last = attack.stop().await;
        assert_eq!(last.endings.get("closed by peer"), Some(&1), "{last}");
        assert!(
            Attack::new(Kind::IdleTcp, MAX_CONNECTIONS + 1)
                .launch(&target)
                .is_err()
        );
    }
}
