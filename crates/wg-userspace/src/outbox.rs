//! Datagrams waiting to be sent: encrypted while the peer table is locked,
//! sent after it is released (a send may have to wait for the socket, and no
//! lock may be held across an `.await`).

use std::net::SocketAddr;

/// Encrypted datagrams in one reused buffer, so the hot path allocates nothing.
pub(crate) struct Outbox {
    buf: Vec<u8>,
    /// End of the used part of `buf`; the rest is scratch, already allocated.
    used: usize,
    /// (start, length, destination) of each datagram.
    items: Vec<(usize, usize, SocketAddr)>,
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            buf: vec![0; capacity],
            used: 0,
            items: Vec::new(),
        }
    }

    /// A writable region of at least `len` bytes after the used part; grows
    /// the buffer when a batch is larger than expected.
    pub(crate) fn reserve(&mut self, len: usize) -> &mut [u8] {
        let end = self.used + len;
        if end > self.buf.len() {
            self.buf.resize(end.max(self.buf.len() * 2), 0);
        }
        &mut self.buf[self.used..end]
    }

    /// Records `len` bytes just written at the start of [`Outbox::reserve`]'s region.
    pub(crate) fn commit(&mut self, len: usize, to: SocketAddr) {
        self.items.push((self.used, len, to));
        self.used += len;
    }

    /// Copies a datagram in (handshake messages, cookies).
    pub(crate) fn push(&mut self, datagram: &[u8], to: SocketAddr) {
        self.reserve(datagram.len()).copy_from_slice(datagram);
        self.commit(datagram.len(), to);
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The `i`-th datagram and its destination.
    pub(crate) fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let (start, len, to) = self.items[i];
        (&self.buf[start..start + len], to)
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_datagrams_apart_and_grows() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut out = Outbox::new(8);
        out.push(b"hello", to);
        let region = out.reserve(20);
        region[..3].copy_from_slice(b"abc");
        out.commit(3, to);
        out.push(&[7u8; 100], to);
        assert_eq!(out.len(), 3);
        assert_eq!(out.get(0).0, b"hello");
        assert_eq!(out.get(1).0, b"abc");
        assert_eq!(out.get(2).0, &[7u8; 100][..]);
        out.clear();
        assert_eq!(out.len(), 0);
    }
}
