//! Per-stream packet bookkeeping on the server's side: what a download batch
//! may send and what it must keep for a resume, and when an upload packet
//! may be acknowledged. Plain types; the server's session machine and its
//! driver build on them.
//!
//! Downloads: packets are numbered per stream from 0. The server keeps
//! every packet the client has not acknowledged (`.{q} {k}`: all below `k`
//! arrived), so a batch cut by a broken connection resumes on another one
//! from the last acknowledgement, with nothing lost or sent twice. A batch
//! with window `w` may have packets `k … k+w−1` in flight.
//!
//! Uploads: the server acknowledges each packet in order with the next id
//! it expects, and withholds acknowledgements while the bytes waiting for
//! the target exceed its bound: the client's window then stops it.
//!
//! UDP: datagrams from the target wait in a bounded [`DatagramQueue`] that
//! drops the oldest when full.

use std::collections::VecDeque;

/// An acknowledgement outside what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("acknowledgement {next} outside the packets sent ({base}..={end})")]
pub struct AckError {
    /// The acknowledgement.
    pub next: u64,
    /// The oldest packet kept.
    pub base: u64,
    /// The next packet to be read from the target.
    pub end: u64,
}

/// One stream's download packets, kept until acknowledged.
#[derive(Debug)]
pub struct DownloadBuffer {
    /// Id of the first packet in `packets`.
    base: u64,
    packets: VecDeque<Vec<u8>>,
    /// Bytes of `packets`.
    bytes: usize,
    max_packets: usize,
    closed: bool,
}

impl DownloadBuffer {
    /// A buffer keeping at most `max_packets` unacknowledged packets.
    pub fn new(max_packets: usize) -> DownloadBuffer {
        DownloadBuffer {
            base: 0,
            packets: VecDeque::new(),
            bytes: 0,
            max_packets: max_packets.max(1),
            closed: false,
        }
    }

    /// Whether another packet may be read from the target (the bound on
    /// what one stream keeps).
    pub fn has_room(&self) -> bool {
        !self.closed && self.packets.len() < self.max_packets
    }

    /// Keeps a packet read from the target; returns its id.
    pub fn push(&mut self, payload: Vec<u8>) -> u64 {
        debug_assert!(self.has_room());
        self.bytes += payload.len();
        self.packets.push_back(payload);
        self.end() - 1
    }

    /// The target closed: after the last packet, the batch answers `!`.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Whether the target closed (no packet will be added).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The id the next packet from the target will get.
    pub fn end(&self) -> u64 {
        self.base + self.packets.len() as u64
    }

    /// Drops the packets below `next`, which the client has.
    pub fn ack(&mut self, next: u64) -> Result<(), AckError> {
        if next < self.base || next > self.end() {
            return Err(AckError {
                next,
                base: self.base,
                end: self.end(),
            });
        }
        for _ in self.base..next {
            if let Some(packet) = self.packets.pop_front() {
                self.bytes -= packet.len();
            }
        }
        self.base = next;
        Ok(())
    }

    /// Bytes of the packets kept.
    pub fn kept_bytes(&self) -> usize {
        self.bytes
    }

    /// Packet `id`, if it is kept.
    pub fn get(&self, id: u64) -> Option<&[u8]> {
        let at = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.packets.get(at).map(Vec::as_slice)
    }
}

/// What a download batch sends next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// `.{q} {payload}` of this packet.
    Packet(u64),
    /// `!{q}`: the target closed and every packet was sent.
    Closed,
}

/// One open download batch (`d{q} {stream} {p} {w}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadBatch {
    acked: u64,
    next: u64,
    window: u64,
    closed_sent: bool,
}

impl DownloadBatch {
    /// A batch from packet `from` (which also acknowledges every packet
    /// below it) with `window` packets in flight, capped at `max_window`.
    pub fn start(
        buffer: &mut DownloadBuffer,
        from: u64,
        window: Option<u64>,
        max_window: u64,
    ) -> Result<DownloadBatch, AckError> {
        buffer.ack(from)?;
        Ok(DownloadBatch {
            acked: from,
            next: from,
            window: window.unwrap_or(1).clamp(1, max_window.max(1)),
            closed_sent: false,
        })
    }

    /// The client's `.{q} {k}`.
    pub fn ack(&mut self, buffer: &mut DownloadBuffer, next: u64) -> Result<(), AckError> {
        if next > self.next {
            return Err(AckError {
                next,
                base: self.acked,
                end: self.next,
            });
        }
        buffer.ack(next)?;
        self.acked = self.acked.max(next);
        Ok(())
    }

    /// What may be sent now, if anything; call until `None`.
    pub fn poll(&mut self, buffer: &DownloadBuffer) -> Option<Next> {
        if self.next < self.acked + self.window && self.next < buffer.end() {
            let id = self.next;
            self.next += 1;
            return Some(Next::Packet(id));
        }
        if buffer.closed && self.next == buffer.end() && !self.closed_sent {
            self.closed_sent = true;
            return Some(Next::Closed);
        }
        None
    }
}

/// One stream's upload position and the acknowledgements it owes.
#[derive(Debug)]
pub struct UploadState {
    expected: u64,
    waiting_bytes: usize,
    max_waiting: usize,
    /// Packets taken whose acknowledgement is withheld.
    owed: u64,
}

impl UploadState {
    /// An upload that withholds acknowledgements while more than
    /// `max_waiting` bytes wait for the target.
    pub fn new(max_waiting: usize) -> UploadState {
        UploadState {
            expected: 0,
            waiting_bytes: 0,
            max_waiting,
            owed: 0,
        }
    }

    /// The answer to `u{q} {stream}`: the next packet id expected.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// A `U` packet of `len` bytes arrived; returns the acknowledgement to
    /// send now (the next id expected), or `None` while the buffer is full.
    pub fn receive(&mut self, len: usize) -> Option<u64> {
        self.expected += 1;
        self.waiting_bytes += len;
        if self.waiting_bytes > self.max_waiting {
            self.owed += 1;
            return None;
        }
        Some(self.expected)
    }

    /// Packets taken whose acknowledgement is withheld: the server bounds
    /// this (a client that keeps sending past withheld acknowledgements
    /// ignores its window, and its bytes would pile up without limit).
    pub fn owed(&self) -> u64 {
        self.owed
    }

    /// A new `u` batch replaced the old one: acknowledgements still owed
    /// belonged to the old batch's query id and are never sent (the new
    /// batch's answer already names the next packet expected). The bytes
    /// still waiting keep counting, so the next packet is withheld as long
    /// as the target is behind.
    pub fn forget_owed(&mut self) {
        self.owed = 0;
    }

    /// `n` bytes were written to the target; returns the acknowledgements
    /// now due (each the next id at the time it was withheld, in order).
    pub fn written(&mut self, n: usize) -> Vec<u64> {
        self.waiting_bytes = self.waiting_bytes.saturating_sub(n);
        if self.waiting_bytes > self.max_waiting || self.owed == 0 {
            return Vec::new();
        }
        let first = self.expected - self.owed + 1;
        self.owed = 0;
        (first..=self.expected).collect()
    }
}

/// A UDP stream's datagrams from its target, waiting for download batches:
/// bounded, and when full the oldest is dropped (a datagram late is worth
/// less than a new one, and UDP promises nothing).
#[derive(Debug)]
pub struct DatagramQueue {
    queue: VecDeque<Vec<u8>>,
    /// Bytes of `queue`.
    bytes: usize,
    max_datagrams: usize,
    dropped: u64,
}

impl DatagramQueue {
    /// A queue of at most `max_datagrams`.
    pub fn new(max_datagrams: usize) -> DatagramQueue {
        DatagramQueue {
            queue: VecDeque::new(),
            bytes: 0,
            max_datagrams: max_datagrams.max(1),
            dropped: 0,
        }
    }

    /// Queues a datagram, dropping the oldest when full.
    pub fn push(&mut self, datagram: Vec<u8>) {
        if self.queue.len() == self.max_datagrams {
            self.drop_oldest();
        }
        self.bytes += datagram.len();
        self.queue.push_back(datagram);
    }

    /// Drops the oldest datagram (counted as dropped); false when empty.
    pub fn drop_oldest(&mut self) -> bool {
        match self.queue.pop_front() {
            Some(old) => {
                self.bytes -= old.len();
                self.dropped += 1;
                true
            }
            None => false,
        }
    }

    /// The oldest datagram, for the next download packet.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        let datagram = self.queue.pop_front()?;
        self.bytes -= datagram.len();
        Some(datagram)
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams dropped so far (for metrics).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: u8) -> DownloadBuffer {
        let mut b = DownloadBuffer::new(8);
        for i in 0..n {
            b.push(vec![i]);
        }
        b
    }

    fn drain(batch: &mut DownloadBatch, buffer: &DownloadBuffer) -> Vec<Next> {
        std::iter::from_fn(|| batch.poll(buffer)).collect()
    }

    #[test]
    fn a_window_bounds_what_is_in_flight() {
        let mut buffer = filled(5);
        let mut batch = DownloadBatch::start(&mut buffer, 0, Some(2), 64).unwrap();
        assert_eq!(
            drain(&mut batch, &buffer),
            [Next::Packet(0), Next::Packet(1)]
        );
        batch.ack(&mut buffer, 1).unwrap();
        assert_eq!(drain(&mut batch, &buffer), [Next::Packet(2)]);
        assert_eq!(buffer.get(0), None, "acknowledged packets are dropped");
        assert_eq!(buffer.get(1), Some(&[1u8][..]));
    }

    #[test]
    fn stop_and_wait_without_a_window_and_the_cap_applies() {
        let mut buffer = filled(3);
        let mut batch = DownloadBatch::start(&mut buffer, 0, None, 64).unwrap();
        assert_eq!(drain(&mut batch, &buffer), [Next::Packet(0)]);
        let mut buffer = filled(3);
        let mut capped = DownloadBatch::start(&mut buffer, 0, Some(100), 2).unwrap();
        assert_eq!(drain(&mut capped, &buffer).len(), 2);
    }

    #[test]
    fn a_cut_batch_resumes_from_the_last_acknowledgement() {
        let mut buffer = filled(4);
        let mut first = DownloadBatch::start(&mut buffer, 0, Some(4), 64).unwrap();
        assert_eq!(drain(&mut first, &buffer).len(), 4);
        first.ack(&mut buffer, 2).unwrap();
        // The connection breaks; packets 2 and 3 were sent but never
        // acknowledged. A new batch from 2 sends them again, in order.
        let mut second = DownloadBatch::start(&mut buffer, 2, Some(4), 64).unwrap();
        assert_eq!(
            drain(&mut second, &buffer),
            [Next::Packet(2), Next::Packet(3)]
        );
        // Resuming before what was acknowledged is impossible.
        assert!(DownloadBatch::start(&mut buffer, 1, None, 64).is_err());
        assert!(DownloadBatch::start(&mut buffer, 9, None, 64).is_err());
    }

    #[test]
    fn the_end_follows_the_last_packet_once() {
        let mut buffer = filled(1);
        buffer.close();
        assert!(!buffer.has_room());
        let mut batch = DownloadBatch::start(&mut buffer, 0, Some(4), 64).unwrap();
        assert_eq!(drain(&mut batch, &buffer), [Next::Packet(0), Next::Closed]);
        assert_eq!(drain(&mut batch, &buffer), []);
    }

    #[test]
    fn an_acknowledgement_beyond_what_was_sent_is_refused() {
        let mut buffer = filled(4);
        let mut batch = DownloadBatch::start(&mut buffer, 0, Some(2), 64).unwrap();
        drain(&mut batch, &buffer);
        assert!(batch.ack(&mut buffer, 3).is_err());
        assert!(batch.ack(&mut buffer, 2).is_ok());
    }

    #[test]
    fn the_buffer_bound_stops_reading_the_target() {
        let mut buffer = DownloadBuffer::new(2);
        buffer.push(vec![0]);
        buffer.push(vec![1]);
        assert!(!buffer.has_room());
        buffer.ack(1).unwrap();
        assert!(buffer.has_room());
        assert_eq!(buffer.push(vec![2]), 2);
    }

    #[test]
    fn a_full_datagram_queue_drops_the_oldest() {
        let mut q = DatagramQueue::new(2);
        for d in [b"a", b"b", b"c"] {
            q.push(d.to_vec());
        }
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().as_deref(), Some(&b"b"[..]));
        assert_eq!(q.pop().as_deref(), Some(&b"c"[..]));
        assert!(q.is_empty());
    }

    #[test]
    fn upload_acknowledgements_wait_while_the_target_is_behind() {
        let mut up = UploadState::new(10);
        assert_eq!(up.expected(), 0);
        assert_eq!(up.receive(6), Some(1));
        assert_eq!(up.receive(6), None, "12 bytes wait: acknowledgement held");
        assert_eq!(up.receive(1), None);
        assert_eq!(up.written(2), Vec::<u64>::new(), "still 11 bytes waiting");
        assert_eq!(
            up.written(6),
            vec![2, 3],
            "both held acknowledgements, in order"
        );
        assert_eq!(up.receive(1), Some(4));
    }
}
