//! Admission in stages: who may hold a connection, and for how long.
//!
//! An internet-facing server meets two kinds of peers: clients that will
//! prove who they are, and everyone else (probers, scanners, floods). If both
//! draw on one pool of places, the second kind takes them all: a few hundred
//! tokenless upgrades per second kept every real client of the gateway on
//! 503, and 4,200 idle TCP connections made one wait 8.6 s. So a connection
//! passes two stages:
//!
//! 1. **Pending** — from accept until it proves itself (the gateway: a
//!    `hello` with a valid token; the HT server: a chunk that decrypts).
//!    TLS handshakes, decoy-site visitors and upgrades waiting for `hello`
//!    live here. The stage holds at most `max_pending`; when it is full the
//!    pending connection that *progressed least recently* is evicted to
//!    make room for the newest. Each connection reports its [`Progress`]
//!    (it spoke, its TLS finished, its request claimed the tunnel), and each
//!    step counts as fresh as a new arrival. So a flood of idle connections
//!    cannot lock anyone out: a real client only has to take its next step
//!    before `max_pending` newer connections arrive, and an idle peer goes
//!    first however recently it stalled. The steps are few and one-way, so
//!    no peer stays fresh by talking; each stage also has its own deadline,
//!    which no traffic extends. Two simpler orders failed the hostile-client
//!    test: oldest first (in a burst of 2,000 connects, a client accepted
//!    amid it became the oldest within 100 ms and lost its place before its
//!    hello), and least progress first (a connection just accepted, not yet
//!    read, was the first to go). This is the "drop the oldest
//!    unauthenticated" rule of OpenSSH's `MaxStartups` without its
//!    randomness, since a predictable order is what makes a quick handshake
//!    safe.
//! 2. **Admitted** — after proof, up to `max_admitted` (sessions). Admitted
//!    connections are never evicted, so unauthenticated peers can never take
//!    their places.
//!
//! Across both stages each source address holds at most `max_per_source`
//! connections (IPv4 by address, IPv6 by its /64, the block one subscriber
//! usually gets), so one host cannot fill the pending stage on its own.
//!
//! The bookkeeping is a plain type behind a mutex held for a map update; no
//! I/O happens under it. Metrics, under the server's prefix:
//! `{prefix}_connections_pending` and `{prefix}_connections_admitted`
//! (gauges), `{prefix}_connections_evicted_total`,
//! `{prefix}_connections_spared_total` and
//! `{prefix}_connections_refused_total{reason="per_source"|"full"}`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// The bounds of each stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections not yet proven (handshakes, decoy visitors, upgrades
    /// waiting for their first message). When full, the oldest is evicted.
    pub max_pending: usize,
    /// Proven connections (sessions). When full, a connection that proves
    /// itself is refused (the gateway answers `503`-like `session_error`).
    pub max_admitted: usize,
    /// Connections from one source (IPv4 address, IPv6 /64), both stages.
    pub max_per_source: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Its source already holds `max_per_source` connections.
    #[error("too many connections from this address")]
    PerSource,
    /// The admitted stage is full.
    #[error("the server is full")]
    Full,
}

impl Refusal {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerSource => "per_source",
            Refusal::Full => "full",
        }
    }
}

/// Whom a per-source count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => Source::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// How far a pending connection has come; each step moves it to the back
/// of the eviction order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    /// Accepted; nothing received yet.
    Accepted,
    /// Its first bytes arrived.
    Spoke,
    /// Its TLS handshake finished.
    Secured,
    /// A request claimed the tunnel (an upgrade, an HT opening); it is
    /// waiting for, or proving, its credentials.
    Claimed,
}

/// How many connections one arrival may spare (see the module doc) before
/// it evicts regardless: keeps the time under the lock bounded when a whole
/// burst spoke at once.
const MAX_SPARED_PER_ARRIVAL: usize = 32;

/// A pending connection's place.
struct Pending {
    /// Its position in the eviction order: the sequence number of its last
    /// step.
    order: u64,
    progress: Progress,
    evict: CancellationToken,
    /// Its socket, to ask the kernel whether its first bytes are waiting.
    /// Only a number: the connection owns the socket and may close it
    /// before its ticket is dropped; then the question goes to a closed
    /// (or reused) descriptor, which at worst spares one connection once.
    socket: Option<RawFd>,
}

impl Pending {
    /// Whether the connection spoke although the server has not read it.
    fn spoke_unread(&self) -> bool {
        if let (Progress::Accepted, Some(fd)) = (self.progress, self.socket) {
            let mut unread: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int through a pointer to a live
            // local; a stale descriptor makes the call fail (EBADF) or
            // answer for another file, never touch memory of ours.
            let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) };
            return r == 0 && unread > 0;
        }
        false
    }
}

#[derive(Default)]
struct State {
    per_source: HashMap<Source, usize>,
    /// Pending connections by ticket id.
    pending: HashMap<u64, Pending>,
    /// Ticket ids of the pending connections by the sequence number of
    /// their last step (arrival or progress): the first goes first.
    order: BTreeMap<u64, u64>,
    admitted: usize,
    next_seq: u64,
    next_id: u64,
    evicted_total: u64,
    spared_total: u64,
}

impl State {
    /// Records a step of pending connection `id`: it goes to the back.
    fn step(&mut self, id: u64, to: Progress) {
        let Some(entry) = self.pending.get_mut(&id) else {
            return;
        };
        if to <= entry.progress {
            return;
        }
        entry.progress = to;
        self.order.remove(&entry.order);
        entry.order = self.next_seq;
        self.next_seq += 1;
        self.order.insert(entry.order, id);
    }

    /// Removes pending connection `id`.
    fn forget(&mut self, id: u64) -> Option<Pending> {
        let entry = self.pending.remove(&id)?;
        self.order.remove(&entry.order);
        Some(entry)
    }
}

/// The stages of one server. Shared by its accept loop and its connections.
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<State>,
    names: Names,
}

/// The metric names of one server.
struct Names {
    pending: String,
    admitted: String,
    evicted: String,
    spared: String,
    refused: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        Names {
            pending: format!("{prefix}_connections_pending"),
            admitted: format!("{prefix}_connections_admitted"),
            evicted: format!("{prefix}_connections_evicted_total"),
            spared: format!("{prefix}_connections_spared_total"),
            refused: format!("{prefix}_connections_refused_total"),
        }
    }

    fn record(&self, state: &State) {
        metrics::gauge!(self.pending.clone()).set(state.pending.len() as f64);
        metrics::gauge!(self.admitted.clone()).set(state.admitted as f64);
    }

    fn refused(&self, why: Refusal) {
        metrics::counter!(self.refused.clone(), "reason" => why.label()).increment(1);
    }
}

/// Counts of each stage, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    /// Connections in the pending stage.
    pub pending: usize,
    /// Connections in the admitted stage.
    pub admitted: usize,
    /// Pending connections evicted so far.
    pub evicted_total: u64,
    /// Pending connections spared once because their first bytes were
    /// waiting unread.
    pub spared_total: u64,
}

impl Admission {
    /// Stages with these bounds (each at least 1); metrics are named
    /// `{metric_prefix}_connections_…`.
    pub fn new(limits: AdmissionLimits, metric_prefix: &str) -> Arc<Admission> {
        Arc::new(Admission {
            limits: AdmissionLimits {
                max_pending: limits.max_pending.max(1),
                max_admitted: limits.max_admitted.max(1),
                max_per_source: limits.max_per_source.max(1),
            },
            state: Mutex::new(State::default()),
            names: Names::new(metric_prefix),
        })
    }

    /// The bounds in force.
    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that could panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets a new connection from `peer` into the pending stage, evicting
    /// the one that progressed least recently when the stage is full.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refusal> {
        self.admit_with(peer, None)
    }

    /// As [`admit`](Self::admit), for a connection on `socket`: it is not
    /// evicted before the server read it if its first bytes are already
    /// waiting (see the module doc).
    pub fn admit_socket(
        self: &Arc<Self>,
        peer: IpAddr,
        socket: &impl AsRawFd,
    ) -> Result<Ticket, Refusal> {
        self.admit_with(peer, Some(socket.as_raw_fd()))
    }

    fn admit_with(
        self: &Arc<Self>,
        peer: IpAddr,
        socket: Option<RawFd>,
    ) -> Result<Ticket, Refusal> {
        let source = Source::of(peer);
        let mut guard = self.lock();
        let state = &mut *guard;
        let count = state.per_source.entry(source).or_insert(0);
        if *count >= self.limits.max_per_source {
            self.names.refused(Refusal::PerSource);
            return Err(Refusal::PerSource);
        }
        *count += 1;
        let mut spared = 0;
        while state.pending.len() >= self.limits.max_pending {
            let Some((_, id)) = state.order.pop_first() else {
                break;
            };
            let Some(entry) = state.pending.get_mut(&id) else {
                continue;
            };
            if spared < MAX_SPARED_PER_ARRIVAL && entry.spoke_unread() {
                // Its step happened; the server had not seen it yet.
                entry.progress = Progress::Spoke;
                entry.order = state.next_seq;
                state.next_seq += 1;
                state.order.insert(entry.order, id);
                state.spared_total += 1;
                metrics::counter!(self.names.spared.clone()).increment(1);
                spared += 1;
                continue;
            }
            if let Some(entry) = state.pending.remove(&id) {
                entry.evict.cancel();
            }
            state.evicted_total += 1;
            metrics::counter!(self.names.evicted.clone()).increment(1);
        }
        let id = state.next_id;
        state.next_id += 1;
        let order = state.next_seq;
        state.next_seq += 1;
        let evict = CancellationToken::new();
        state.pending.insert(
            id,
            Pending {
                order,
                progress: Progress::Accepted,
                evict: evict.clone(),
                socket,
            },
        );
        state.order.insert(order, id);
        self.names.record(state);
        Ok(Ticket {
            admission: self.clone(),
            source,
            id,
            admitted: false,
            evict,
        })
    }

    /// How many connections each stage holds now.
    pub fn occupancy(&self) -> Occupancy {
        let state = self.lock();
        Occupancy {
            pending: state.pending.len(),
            admitted: state.admitted,
            evicted_total: state.evicted_total,
            spared_total: state.spared_total,
        }
    }
}

/// One connection's place. Dropping it frees the place.
pub struct Ticket {
    admission: Arc<Admission>,
    source: Source,
    /// Its id in the pending stage.
    id: u64,
    admitted: bool,
    evict: CancellationToken,
}

impl Ticket {
    /// Records that the pending connection got this far, which moves it
    /// to the back of the eviction order. Repeating a step or going back, or
    /// calling it after eviction or promotion, does nothing.
    pub fn progressed(&mut self, to: Progress) {
        if self.admitted {
            return;
        }
        self.admission.lock().step(self.id, to);
    }

    /// Cancelled when this pending connection is evicted to make room for a
    /// newer one: its owner should close it. Never cancelled once admitted.
    pub fn eviction(&self) -> CancellationToken {
        self.evict.clone()
    }

    /// Whether the connection passed into the admitted stage.
    pub fn is_admitted(&self) -> bool {
        self.admitted
    }

    /// Moves the connection into the admitted stage, once it proved itself.
    /// Fails when that stage is full, or when the connection was evicted
    /// meanwhile (then the caller closes it like any evicted one). Calling
    /// it again after success does nothing.
    pub fn promote(&mut self) -> Result<(), Refusal> {
        if self.admitted {
            return Ok(());
        }
        let mut state = self.admission.lock();
        if self.evict.is_cancelled() || state.admitted >= self.admission.limits.max_admitted {
            self.admission.names.refused(Refusal::Full);
            return Err(Refusal::Full);
        }
        state.forget(self.id);
        state.admitted += 1;
        self.admitted = true;
        self.admission.names.record(&state);
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        if self.admitted {
            state.admitted -= 1;
        } else {
            state.forget(self.id);
        }
        if let Some(count) = state.per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                state.per_source.remove(&self.source);
            }
        }
        self.admission.names.record(&state);
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.id)
            .field("admitted", &self.admitted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pending: usize, admitted: usize, per_source: usize) -> Arc<Admission> {
        let limits = AdmissionLimits {
            max_pending: pending,
            max_admitted: admitted,
            max_per_source: per_source,
        };
        Admission::new(limits, "test")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_full_pending_stage_evicts_its_oldest() {
        let a = limits(2, 10, 10);
        let first = a.admit(ip("10.0.0.1")).unwrap();
        let second = a.admit(ip("10.0.0.2")).unwrap();
        let third = a.admit(ip("10.0.0.3")).unwrap();
        assert!(first.eviction().is_cancelled(), "the oldest makes room");
        assert!(!second.eviction().is_cancelled());
        assert!(!third.eviction().is_cancelled());
        assert_eq!(a.occupancy().pending, 2);
        assert_eq!(a.occupancy().evicted_total, 1);
        drop(first);
        assert_eq!(
            a.occupancy().pending,
            2,
            "an evicted ticket holds no pending place"
        );
    }

    #[test]
    fn admitted_connections_are_never_evicted_and_free_their_pending_place() {
        let a = limits(1, 1, 10);
        let mut client = a.admit(ip("10.0.0.1")).unwrap();
        client.promote().unwrap();
        assert!(client.is_admitted());
        let hostile: Vec<_> = (0..5).map(|_| a.admit(ip("10.0.0.2"))).collect();
        assert!(!client.eviction().is_cancelled());
        assert_eq!(
            a.occupancy(),
            Occupancy {
                pending: 1,
                admitted: 1,
                evicted_total: 4,
                spared_total: 0,
            }
        );
        // The admitted stage is full: a second proven connection is refused.
        let mut late = hostile.into_iter().last().unwrap().unwrap();
        assert_eq!(late.promote(), Err(Refusal::Full));
        drop(client);
        late.promote().unwrap();
        assert_eq!(a.occupancy().admitted, 1);
        drop(late);
        assert_eq!(a.occupancy().admitted, 0);
    }

    #[test]
    fn each_step_moves_a_connection_behind_stalled_ones() {
        let a = limits(3, 10, 10);
        let mut client = a.admit(ip("10.0.0.1")).unwrap();
        let stalled = [a.admit(ip("10.0.1.1")), a.admit(ip("10.0.1.2"))];
        client.progressed(Progress::Spoke);
        let fresh = a.admit(ip("10.0.1.3")).unwrap();
        assert!(!client.eviction().is_cancelled(), "its step came later");
        assert!(stalled[0].as_ref().unwrap().eviction().is_cancelled());
        client.progressed(Progress::Secured);
        client.progressed(Progress::Spoke); // never backwards
        client.progressed(Progress::Secured); // nor twice for one step
        let _newer = a.admit(ip("10.0.1.4")).unwrap();
        assert!(stalled[1].as_ref().unwrap().eviction().is_cancelled());
        assert!(
            !fresh.eviction().is_cancelled(),
            "a connection just accepted is not the first to go"
        );
        let _newest = a.admit(ip("10.0.1.5")).unwrap();
        assert!(fresh.eviction().is_cancelled(), "it never spoke");
        assert!(!client.eviction().is_cancelled());
        // Out of steps, the client ages like anyone else.
        let _later = a.admit(ip("10.0.1.6")).unwrap();
        assert!(client.eviction().is_cancelled());
        client.progressed(Progress::Claimed);
        assert_eq!(a.occupancy().pending, 3, "an evicted ticket stays out");
    }

    #[test]
    fn a_connection_whose_first_bytes_wait_unread_is_spared_once() {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut talker = std::net::TcpStream::connect(addr).unwrap();
        let (talked, _) = listener.accept().unwrap();
        let _silent_client = std::net::TcpStream::connect(addr).unwrap();
        let (silent, _) = listener.accept().unwrap();
        talker.write_all(b"hello").unwrap();
        // The byte is in the kernel's queue before the stage asks.
        let mut peek = [0u8; 1];
        assert_eq!(talked.peek(&mut peek).unwrap(), 1);

        let a = limits(2, 10, 10);
        let spoke = a.admit_socket(ip("10.0.0.1"), &talked).unwrap();
        let quiet = a.admit_socket(ip("10.0.0.2"), &silent).unwrap();
        let _third = a.admit(ip("10.0.0.3")).unwrap();
        assert!(
            !spoke.eviction().is_cancelled(),
            "its bytes wait: the server is behind, not the client"
        );
        assert!(quiet.eviction().is_cancelled(), "the next in line went");
        assert_eq!(a.occupancy().spared_total, 1);
        // Spared once, its step dated when the stage asked (before the
        // third arrived): its bytes still unread, it goes next.
        let _fourth = a.admit(ip("10.0.0.4")).unwrap();
        assert!(spoke.eviction().is_cancelled());
        assert_eq!(a.occupancy().spared_total, 1);
        assert_eq!(a.occupancy().pending, 2);
    }

    #[test]
    fn an_evicted_connection_cannot_be_promoted() {
        let a = limits(1, 10, 10);
        let mut old = a.admit(ip("10.0.0.1")).unwrap();
        let _new = a.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(old.promote(), Err(Refusal::Full));
    }

    #[test]
    fn one_source_is_bounded_and_ipv6_counts_by_64() {
        let a = limits(100, 100, 2);
        let v4 = [a.admit(ip("192.0.2.1")), a.admit(ip("192.0.2.1"))];
        assert!(v4.iter().all(Result::is_ok));
        assert_eq!(a.admit(ip("192.0.2.1")).unwrap_err(), Refusal::PerSource);
        assert!(
            a.admit(ip("192.0.2.2")).is_ok(),
            "another address is not affected"
        );
        // The mapped form is the same source.
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.1")).unwrap_err(),
            Refusal::PerSource
        );
        let _a1 = a.admit(ip("2001:db8:1:2::1")).unwrap();
        let _a2 = a.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2::77")).unwrap_err(),
            Refusal::PerSource,
            "one /64 is one source"
        );
        assert!(a.admit(ip("2001:db8:1:3::1")).is_ok());
        drop(v4);
        assert!(a.admit(ip("192.0.2.1")).is_ok(), "places come back on drop");
    }
}
