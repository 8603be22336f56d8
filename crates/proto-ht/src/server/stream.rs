//! One stream of a session: its target, its packets each way, and the
//! batches (at most one per direction) currently serving it.

use crate::packets::{DatagramQueue, DownloadBatch, DownloadBuffer, UploadState};
use crate::query::Proto;

use super::{ConnId, Limits, TargetId};

/// The open download batch of a stream: where it lives and its progress.
#[derive(Debug)]
pub(crate) struct OpenDownload {
    pub conn: ConnId,
    pub q: String,
    pub batch: DownloadBatch,
}

/// The open upload batch of a stream.
#[derive(Debug)]
pub(crate) struct OpenUpload {
    pub conn: ConnId,
    pub q: String,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub target: TargetId,
    pub proto: Proto,
    pub download: DownloadBuffer,
    /// UDP only: datagrams waiting for room in `download`.
    pub datagrams: Option<DatagramQueue>,
    pub upload: UploadState,
    /// A read of the target is granted and not reported yet.
    pub reading: bool,
    /// Bytes a granted read holds against the session's room until it is
    /// reported: a whole read for TCP; nothing for UDP, whose reads are
    /// never refused (its datagrams are trimmed instead).
    pub read_reserve: usize,
    /// No more bytes go to the target: the client half-closed (TCP), or a
    /// write failed.
    pub write_done: bool,
    pub down: Option<OpenDownload>,
    pub up: Option<OpenUpload>,
}

impl Stream {
    pub fn new(target: TargetId, proto: Proto, limits: &Limits) -> Stream {
        Stream {
            target,
            proto,
            download: DownloadBuffer::new(limits.download_packets()),
            datagrams: (proto == Proto::Udp).then(|| DatagramQueue::new(limits.max_datagrams)),
            upload: UploadState::new(limits.max_buffer),
            reading: false,
            read_reserve: if proto == Proto::Tcp {
                limits.read_size
            } else {
                0
            },
            write_done: false,
            down: None,
            up: None,
        }
    }

    /// Whether the driver may read the target once more now. A TCP stream
    /// reads while its download buffer has room (the backpressure that
    /// bounds it); a UDP stream always reads, its queue dropping the oldest.
    pub fn may_read(&self) -> bool {
        !self.reading
            && !self.download.is_closed()
            && (self.proto == Proto::Udp || self.download.has_room())
    }

    /// Download bytes this stream keeps (packets and waiting datagrams):
    /// what it counts against its session's `max_session_buffer`.
    pub fn kept_bytes(&self) -> usize {
        let reserved = if self.reading { self.read_reserve } else { 0 };
        self.download.kept_bytes() + self.datagrams.as_ref().map_or(0, |q| q.bytes()) + reserved
    }

    /// Moves waiting datagrams into the download buffer while it has room.
    pub fn refill(&mut self) {
        if let Some(queue) = &mut self.datagrams {
            while self.download.has_room() {
                match queue.pop() {
                    Some(d) => {
                        self.download.push(d);
                    }
                    None => break,
                }
            }
        }
    }
}
