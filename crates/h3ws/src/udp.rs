//! The UDP socket under quinn, sending batches the kernel accepts.
//!
//! quinn gives its socket up to ten datagrams of the path's MTU in one
//! transmit, sent with UDP segmentation offload (one `sendmsg`). Linux
//! refuses a segmented send whose total is over 64 KiB (`EMSGSIZE`), which
//! every batch is once MTU discovery finds a path carrying big datagrams:
//! on loopback (MTU 65,536) discovery climbed to 65,495 bytes, the batches
//! of ten (654,950 bytes) all failed, and quinn's black-hole detection,
//! seeing the losses, set the MTU back to 1,200 bytes, lower than it starts
//! (strace of the gateway during an HTTP/3 download). [`BatchLimited`]
//! sends such a transmit as several batches of at most [`MAX_BATCH`] bytes,
//! and keeps quinn's receive buffer small (see its `max_receive_segments`).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The most UDP payload one segmented send may carry: an IPv4 packet's
/// 65,535 bytes less its 20-byte header and the 8-byte UDP header (the
/// kernel builds the batch as one packet before it segments it; IPv6
/// allows 20 more, which this leaves unused).
pub const MAX_BATCH: usize = 65_507;

// One receive slot holds any datagram, coalesced or not, only if we accept
// the UDP maximum (see `max_receive_segments`).
const _: () = assert!(crate::quic::MAX_UDP_PAYLOAD as usize >= 65_527);

/// A socket whose transmits are cut into batches of at most [`MAX_BATCH`].
pub struct BatchLimited {
    inner: Arc<dyn AsyncUdpSocket>,
}

impl BatchLimited {
    /// Wraps `inner` (a runtime's socket).
    pub fn new(inner: Arc<dyn AsyncUdpSocket>) -> Arc<BatchLimited> {
        Arc::new(BatchLimited { inner })
    }
}

impl fmt::Debug for BatchLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchLimited")
            .field("inner", &self.inner)
            .finish()
    }
}

/// The pieces `transmit` is sent as: whole datagrams, each piece at most
/// [`MAX_BATCH`] bytes unless a single datagram is larger (then it goes
/// alone, and the kernel judges it).
fn batches<'a>(transmit: &Transmit<'a>) -> impl Iterator<Item = Transmit<'a>> {
    let contents = transmit.contents;
    let (segment, per_batch) = match transmit.segment_size {
        Some(segment) if segment > 0 && contents.len() > MAX_BATCH => {
            (segment, (MAX_BATCH / segment).max(1) * segment)
        }
        // One piece: the transmit as it is (nothing at all if it is empty).
        _ => (usize::MAX, contents.len().max(1)),
    };
    let (destination, ecn, src_ip, segment_size) = (
        transmit.destination,
        transmit.ecn,
        transmit.src_ip,
        transmit.segment_size,
    );
    contents.chunks(per_batch).map(move |piece| Transmit {
        destination,
        ecn,
        contents: piece,
        segment_size: if segment == usize::MAX {
            segment_size
        } else {
            (piece.len() > segment).then_some(segment)
        },
        src_ip,
    })
}

impl AsyncUdpSocket for BatchLimited {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // A batch refused for want of buffer space after earlier ones went
        // out fails the whole transmit, which quinn retries when the socket
        // is writable: the earlier datagrams then go twice, which QUIC
        // discards as duplicates, where dropping the rest would count as
        // losses (and shrink the congestion window).
        for piece in batches(transmit) {
            self.inner.try_send(&piece)?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    /// One: quinn sizes its receive buffer as the largest payload we accept
    /// times this times 32 datagrams per read. The kernel's coalesced
    /// receives (GRO) are single UDP datagrams to it, never over 65,527
    /// bytes (the UDP length field), which one [`MAX_UDP_PAYLOAD`]-sized
    /// slot holds; reporting the kernel's 64 segments made the buffer 128
    /// MiB, of which each read touched a 2 MiB huge page per slot (64 MiB
    /// resident and zeroed: 12 % of the client's CPU in the first download).
    ///
    /// [`MAX_UDP_PAYLOAD`]: crate::quic::MAX_UDP_PAYLOAD
    fn max_receive_segments(&self) -> usize {
        1
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transmit(contents: &[u8], segment_size: Option<usize>) -> Transmit<'_> {
        Transmit {
            destination: "127.0.0.1:9".parse().unwrap(),
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        }
    }

    fn shapes(t: &Transmit) -> Vec<(usize, Option<usize>)> {
        batches(t)
            .map(|p| (p.contents.len(), p.segment_size))
            .collect()
    }

    #[test]
    fn small_batches_and_single_datagrams_go_as_they_are() {
        let data = vec![0u8; 14_720];
        assert_eq!(shapes(&transmit(&data, Some(1472))), [(14_720, Some(1472))]);
        assert_eq!(shapes(&transmit(&data[..1200], None)), [(1200, None)]);
        assert_eq!(shapes(&transmit(&[], None)), [], "nothing to send");
        let probe = vec![0u8; 65_527];
        assert_eq!(
            shapes(&transmit(&probe, None)),
            [(65_527, None)],
            "one datagram is never cut"
        );
    }

    #[test]
    fn big_batches_are_cut_at_whole_datagrams_under_64_kib() {
        // Ten datagrams of 65,495 bytes: each goes on its own.
        let data = vec![0u8; 654_950];
        let got = shapes(&transmit(&data, Some(65_495)));
        assert_eq!(got, vec![(65_495, None); 10]);
        // 8,000-byte datagrams: eight per batch, the last batch shorter.
        let data = vec![0u8; 10 * 8000 + 1234];
        let got = shapes(&transmit(&data, Some(8000)));
        assert_eq!(got, [(64_000, Some(8000)), (17_234, Some(8000))]);
        // A last piece of one short datagram is sent without segmentation.
        let data = vec![0u8; 8 * 8100 + 1000];
        let got = shapes(&transmit(&data, Some(8100)));
        assert_eq!(got, [(64_800, Some(8100)), (1000, None)]);
        for (len, _) in got {
            assert!(len <= MAX_BATCH);
        }
    }
}
