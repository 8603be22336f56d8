//! The smoltcp device: two packet queues between the TCP/IP stack and the
//! driver, which fills one with decrypted packets and drains the other to
//! encrypt. Packet buffers circulate through a free list instead of being
//! allocated per packet.

use std::cell::RefCell;
use std::collections::VecDeque;

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Spare buffers kept beyond this are freed (bounds idle memory).
const MAX_FREE_BUFFERS: usize = 1024;

/// Outgoing packets and the free list, shared by the device's tokens.
struct TxSide {
    queue: Vec<Vec<u8>>,
    free: Vec<Vec<u8>>,
}

/// An IP-medium device over in-memory queues.
pub(crate) struct Device {
    rx: VecDeque<Vec<u8>>,
    /// `RefCell` because smoltcp hands out a receive token and a transmit
    /// token at once, both borrowing the device; one thread owns it (under
    /// the stack's lock), so the cell is never contended.
    tx: RefCell<TxSide>,
    mtu: usize,
    /// Most packets queued for sending before `transmit` refuses, so one poll
    /// emits a bounded batch.
    tx_limit: usize,
    /// Set when `transmit` refused: the stack has more to send right away.
    pub(crate) tx_exhausted: bool,
}

impl Device {
    pub(crate) fn new(mtu: usize, tx_limit: usize) -> Device {
        Device {
            rx: VecDeque::new(),
            tx: RefCell::new(TxSide {
                queue: Vec::new(),
                free: Vec::new(),
            }),
            mtu,
            tx_limit,
            tx_exhausted: false,
        }
    }

    /// Queues a received IP packet for the stack.
    pub(crate) fn push_rx(&mut self, packet: Vec<u8>) {
        self.rx.push_back(packet);
    }

    /// Moves the packets the stack emitted into `into` (its old contents
    /// become free buffers).
    pub(crate) fn take_tx(&mut self, into: &mut Vec<Vec<u8>>) {
        let side = self.tx.get_mut();
        for buf in into.drain(..) {
            if side.free.len() < MAX_FREE_BUFFERS {
                side.free.push(buf);
            }
        }
        std::mem::swap(&mut side.queue, into);
    }

    /// A buffer from the free list, if one is spare.
    pub(crate) fn spare_buffer(&mut self) -> Option<Vec<u8>> {
        self.tx.get_mut().free.pop()
    }
}

pub(crate) struct RxToken<'a> {
    packet: Vec<u8>,
    tx: &'a RefCell<TxSide>,
}

pub(crate) struct TxToken<'a> {
    tx: &'a RefCell<TxSide>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let result = f(&self.packet);
        let mut side = self.tx.borrow_mut();
        if side.free.len() < MAX_FREE_BUFFERS {
            side.free.push(self.packet);
        }
        result
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut side = self.tx.borrow_mut();
        let mut buf = side.free.pop().unwrap_or_default();
        buf.clear();
        buf.resize(len, 0);
        let result = f(&mut buf);
        side.queue.push(buf);
        result
    }
}

impl phy::Device for Device {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // A reply to a received packet is always accepted: it is bounded by
        // the packets received in one batch.
        let packet = self.rx.pop_front()?;
        Some((
            RxToken {
                packet,
                tx: &self.tx,
            },
            TxToken { tx: &self.tx },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        if self.tx.get_mut().queue.len() >= self.tx_limit {
            self.tx_exhausted = true;
            return None;
        }
        Some(TxToken { tx: &self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = Some(self.tx_limit);
        // Received packets were authenticated end to end by WireGuard's AEAD
        // (ChaCha20-Poly1305 over the whole inner packet), which catches any
        // corruption a checksum could; verifying them again would only cost
        // time. Outgoing checksums are computed: the peer's kernel checks them.
        let mut checksum = ChecksumCapabilities::default();
        checksum.ipv4 = Checksum::Tx;
        checksum.tcp = Checksum::Tx;
        checksum.udp = Checksum::Tx;
        checksum.icmpv4 = Checksum::Tx;
        caps.checksum = checksum;
        caps
    }
}
