//! The driver task: the only code that touches the UDP socket's receive side
//! and polls the TCP/IP stack. One round:
//!
//! 1. drain the UDP socket (up to a batch) and decrypt, peer table locked;
//! 2. run WireGuard's timers when due;
//! 3. feed the decrypted packets to smoltcp and poll it, stack locked;
//! 4. encrypt what smoltcp emitted, peer table locked;
//! 5. send every datagram with no lock held (a full socket is awaited).
//!
//! Then it waits for the first of: a readable socket, a poke from a stream,
//! smoltcp's next deadline, WireGuard's next timer tick, or shutdown. A
//! round that hit a batch limit runs again at once (after yielding), so a
//! busy node never sleeps and an idle one never spins.

use std::cmp::min;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::NodeConfig;
use crate::node::Shared;
use crate::outbox::Outbox;
use crate::peers::{DATA_OVERHEAD, Verdict};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// What the driver needs from [`NodeConfig`].
pub(crate) struct Settings {
    batch: usize,
    mtu: usize,
    timer_interval: Duration,
}

impl From<&NodeConfig> for Settings {
    fn from(config: &NodeConfig) -> Settings {
        Settings {
            batch: config.batch_size,
            mtu: config.mtu,
            timer_interval: config.timer_interval,
        }
    }
}

struct Driver {
    shared: Arc<Shared>,
    settings: Settings,
    /// Received datagram.
    recv_buf: Vec<u8>,
    /// boringtun's output: a decrypted packet is as long as its datagram.
    scratch: Vec<u8>,
    /// Datagrams to send this round.
    out: Outbox,
    /// Decrypted IP packets for the stack.
    inbound: Vec<Vec<u8>>,
    /// Empty packet buffers for `inbound`, refilled from the device.
    spare: Vec<Vec<u8>>,
    /// IP packets the stack emitted (their buffers go back next round).
    outgoing: Vec<Vec<u8>>,
    next_timers: Instant,
}

/// Runs until `stop` says so or its sender (the last `Node`) is gone.
pub(crate) async fn run(shared: Arc<Shared>, stop: watch::Receiver<bool>, settings: Settings) {
    let batch = settings.batch;
    let mut driver = Driver {
        shared,
        recv_buf: vec![0; MAX_DATAGRAM],
        scratch: vec![0; MAX_DATAGRAM + DATA_OVERHEAD],
        out: Outbox::new(batch * (settings.mtu + 2 * DATA_OVERHEAD)),
        inbound: Vec::with_capacity(batch),
        spare: Vec::with_capacity(batch),
        outgoing: Vec::with_capacity(batch),
        next_timers: Instant::now() + settings.timer_interval,
        settings,
    };
    driver.run(stop).await;
    driver.finish().await;
}

impl Driver {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) {
        let sleep = tokio::time::sleep_until(self.next_timers);
        tokio::pin!(sleep);
        let mut busy = false;
        loop {
            if busy {
                // Let streams (and, on a current-thread runtime, everything
                // else) run between back-to-back rounds.
                tokio::task::yield_now().await;
                match stop.has_changed() {
                    Err(_) => return,
                    Ok(_) if *stop.borrow() => return,
                    Ok(_) => {}
                }
            } else {
                tokio::select! {
                    biased;
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            return;
                        }
                    }
                    ready = self.shared.udp.readable() => {
                        if let Err(e) = ready {
                            tracing::error!(error = %e, "WireGuard UDP socket failed");
                            return;
                        }
                    }
                    _ = self.shared.driver_woken() => {}
                    _ = &mut sleep => {}
                }
            }
            let now = Instant::now();
            let timers_due = now >= self.next_timers;
            if timers_due {
                self.next_timers = now + self.settings.timer_interval;
            }
            let received_full_batch = self.receive(timers_due);
            let (stack_has_more, delay) = self.poll_stack();
            self.encrypt();
            self.send(true).await;
            busy = received_full_batch || stack_has_more;
            let deadline = match delay {
                Some(delay) => min(self.next_timers, now + delay),
                None => self.next_timers,
            };
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
        }
    }

    /// Drains up to a batch of datagrams; true if the batch filled up (more
    /// may be waiting).
    fn receive(&mut self, timers_due: bool) -> bool {
        let shared = self.shared.clone();
        let mut peers = shared.lock_peers();
        peers.take_initiations(&mut self.out);
        if timers_due {
            peers.update_timers(&mut self.scratch, &mut self.out);
        }
        let mut received = 0u64;
        let mut unknown = 0u64;
        let mut invalid = 0u64;
        let mut full = true;
        for _ in 0..self.settings.batch {
            let (len, src) = match shared.udp.try_recv_from(&mut self.recv_buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    full = false;
                    break;
                }
                Err(e) => {
                    // E.g. an ICMP error reported on the socket: nothing to
                    // read, but the socket is fine.
                    tracing::trace!(error = %e, "UDP receive error");
                    continue;
                }
            };
            received += 1;
            let spare = &mut self.spare;
            let inbound = &mut self.inbound;
            let verdict = peers.handle_datagram(
                src,
                &self.recv_buf[..len],
                &mut self.scratch,
                &mut self.out,
                &mut |packet| {
                    let mut buf = spare.pop().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(packet);
                    inbound.push(buf);
                },
            );
            match verdict {
                Verdict::UnknownPeer => unknown += 1,
                Verdict::Invalid => invalid += 1,
                Verdict::Accepted | Verdict::Cookie => {}
            }
        }
        drop(peers);
        let counters = &shared.counters;
        counters.rx_datagrams.fetch_add(received, Ordering::Relaxed);
        if unknown + invalid > 0 {
            counters
                .dropped_unknown_peer
                .fetch_add(unknown, Ordering::Relaxed);
            counters
                .dropped_invalid
                .fetch_add(invalid, Ordering::Relaxed);
            shared.drops.send_modify(|n| *n += unknown + invalid);
        }
        full
    }

    /// Feeds received packets to smoltcp and polls it. Returns whether it
    /// has more to send right away, and when it next needs a poll.
    fn poll_stack(&mut self) -> (bool, Option<Duration>) {
        let shared = self.shared.clone();
        let mut stack = shared.lock_stack();
        stack.prepare_listeners(&self.inbound);
        let stack = &mut *stack;
        for packet in self.inbound.drain(..) {
            let device = &mut stack.device;
            stack
                .ack_rescue
                .extra_acks(&packet, |ack| device.push_rx(ack));
            device.push_rx(packet);
        }
        let now = stack.now();
        stack.device.tx_exhausted = false;
        stack.iface.poll(now, &mut stack.device, &mut stack.sockets);
        stack.device.take_tx(&mut self.outgoing);
        for packet in &self.outgoing {
            stack.ack_rescue.observe_outgoing(packet);
        }
        stack.maintain();
        while self.spare.len() < self.settings.batch {
            match stack.device.spare_buffer() {
                Some(buf) => self.spare.push(buf),
                None => break,
            }
        }
        let delay = stack
            .iface
            .poll_delay(now, &stack.sockets)
            .map(|d| Duration::from_micros(d.total_micros()));
        (stack.device.tx_exhausted, delay)
    }

    /// Encrypts the stack's packets for their peers.
    fn encrypt(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let mut peers = self.shared.lock_peers();
        for packet in &self.outgoing {
            // Unroutable packets are dropped, as a router without a route
            // would; TCP's retransmission timers give up on their own.
            peers.encapsulate(packet, &mut self.out);
        }
    }

    /// Sends the round's datagrams. With `wait`, a full socket buffer is
    /// awaited (backpressure reaches smoltcp through the next round);
    /// without, what does not fit is dropped.
    async fn send(&mut self, wait: bool) {
        let udp = &self.shared.udp;
        let mut sent = 0u64;
        for i in 0..self.out.len() {
            let (datagram, to) = self.out.get(i);
            loop {
                match udp.try_send_to(datagram, to) {
                    Ok(_) => {
                        sent += 1;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && wait => {
                        if udp.writable().await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::trace!(error = %e, %to, "UDP send failed");
                        break;
                    }
                }
            }
        }
        self.out.clear();
        self.shared
            .counters
            .tx_datagrams
            .fetch_add(sent, Ordering::Relaxed);
    }

    /// After the loop: fails every socket and sends their resets.
    async fn finish(&mut self) {
        {
            let shared = self.shared.clone();
            let mut stack = shared.lock_stack();
            stack.shutdown();
            let now = stack.now();
            let stack = &mut *stack;
            stack.iface.poll(now, &mut stack.device, &mut stack.sockets);
            stack.device.take_tx(&mut self.outgoing);
        }
        self.encrypt();
        self.send(false).await;
    }
}
