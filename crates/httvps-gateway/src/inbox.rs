//! Client bytes on their way to one stream's upstream, and the credit for
//! the upstream's bytes on their way back.
//!
//! The session loop pushes into a stream's [`Inbox`] and never waits when
//! `flow_control` was agreed: the client cannot send more than the window
//! the session granted, so the inbox holds at most that many bytes. Small
//! frames are merged into the chunk before them, so a client sending tiny
//! frames costs bytes, not per-frame allocations. Without the extension the
//! loop waits for room (`stream_buffer_bytes` / `stream_buffer_frames`) up
//! to the stall bound, as the contract leaves it.
//!
//! [`Credit`] is the other direction: what the client granted. A stream
//! task takes credit for what it read from its upstream, from its own window
//! and then the session's, before it sends it, so it never sends more than
//! granted, and a stream whose reader paused stops reading its upstream (TCP
//! pushes back on the target) while the others go on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use proto_httvps::flow::SendWindow;
use tokio::sync::Notify;

use crate::session::StreamId;

/// Chunks smaller than this take the next frame's bytes in.
const MERGE_BELOW: usize = 16 * 1024;
/// A merged chunk grows to at most this.
const MERGE_UP_TO: usize = 64 * 1024;

/// What an upstream writer gets next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Bytes to write.
    Data(Vec<u8>),
    /// The client finished writing (`stream_shutdown`): shut the write side.
    Shutdown,
    /// The client closed the stream: everything it sent was handed out.
    Finished,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    shutdown: bool,
    finished: bool,
    /// The stream task ended: pushes are dropped.
    closed: bool,
}

/// One stream's queue toward its upstream.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    changed: Notify,
}

impl Inbox {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues client bytes; `false` when the stream task is gone.
    pub(crate) fn push(&self, data: Vec<u8>) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        state.bytes += data.len();
        match state.chunks.back_mut() {
            Some(last) if last.len() < MERGE_BELOW && last.len() + data.len() <= MERGE_UP_TO => {
                last.extend_from_slice(&data);
            }
            _ => state.chunks.push_back(data),
        }
        drop(state);
        self.changed.notify_waiters();
        true
    }

    /// Whether `bytes` more fit under `max_bytes` and `max_chunks` (the
    /// contract's bound, without `flow_control`).
    pub(crate) fn has_room(&self, max_bytes: usize, max_chunks: usize) -> bool {
        let state = self.state();
        state.closed || (state.bytes < max_bytes && state.chunks.len() < max_chunks)
    }

    /// Waits until [`Inbox::has_room`].
    pub(crate) async fn room(&self, max_bytes: usize, max_chunks: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.has_room(max_bytes, max_chunks) {
                return;
            }
            changed.await;
        }
    }

    /// The client finished writing: after the queued bytes, [`Next::Shutdown`].
    pub(crate) fn shutdown(&self) {
        self.state().shutdown = true;
        self.changed.notify_waiters();
    }

    /// The client closed the stream: after the queued bytes, [`Next::Finished`].
    pub(crate) fn finish(&self) {
        self.state().finished = true;
        self.changed.notify_waiters();
    }

    /// The stream task ended: later pushes are dropped, waiters released.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.chunks.clear();
        state.bytes = 0;
        drop(state);
        self.changed.notify_waiters();
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.state().chunks.is_empty()
    }

    /// The next thing for the upstream, waiting for one.
    pub(crate) async fn next(&self) -> Next {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(chunk) = state.chunks.pop_front() {
                    state.bytes -= chunk.len();
                    drop(state);
                    // Wakes a session loop waiting for room.
                    self.changed.notify_waiters();
                    return Next::Data(chunk);
                }
                if state.finished {
                    return Next::Finished;
                }
                if state.shutdown {
                    return Next::Shutdown;
                }
            }
            changed.await;
        }
    }
}

/// Credit the client granted for one window (a stream's or the session's).
pub(crate) struct Credit {
    window: Mutex<SendWindow>,
    granted: Notify,
}

impl Credit {
    pub(crate) fn new(initial: u64) -> Credit {
        Credit {
            window: Mutex::new(SendWindow::new(initial)),
            granted: Notify::new(),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, SendWindow> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the client's grant.
    pub(crate) fn grant(&self, increment: u64) {
        self.window().grant(increment);
        self.granted.notify_waiters();
    }

    /// Gives back credit taken and not used.
    pub(crate) fn refund(&self, n: usize) {
        if n > 0 {
            self.grant(n as u64);
        }
    }

    /// Takes up to `want` bytes of credit, waiting while there is none.
    pub(crate) async fn take(&self, want: usize) -> usize {
        loop {
            let granted = self.granted.notified();
            tokio::pin!(granted);
            granted.as_mut().enable();
            {
                let mut window = self.window();
                let n = window.allow(want);
                if n > 0 {
                    window.spend(n);
                    return n;
                }
            }
            granted.await;
        }
    }
}

/// A stream's credit: its own window, then the session's.
pub(crate) struct StreamCredit {
    pub(crate) stream: Credit,
    pub(crate) session: Arc<Credit>,
}

impl StreamCredit {
    /// Takes up to `want` bytes from both windows, waiting for each.
    pub(crate) async fn take(&self, want: usize) -> usize {
        let own = self.stream.take(want).await;
        let both = self.session.take(own).await;
        self.stream.refund(own - both);
        both
    }
}

/// Bytes the stream tasks wrote upstream, merged per stream until the
/// session loop turns them into grants (`flow_control`).
#[derive(Default)]
pub(crate) struct Written {
    streams: Mutex<HashMap<StreamId, (u64, usize)>>,
    reported: Notify,
}

impl Written {
    /// A stream task wrote `n` bytes of stream `id` (of `serial`).
    pub(crate) fn report(&self, id: &StreamId, serial: u64, n: usize) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let entry = streams.entry(id.clone()).or_insert((serial, 0));
        if entry.0 != serial {
            *entry = (serial, 0);
        }
        entry.1 += n;
        drop(streams);
        self.reported.notify_one();
    }

    /// Waits for a report.
    pub(crate) async fn reported(&self) {
        self.reported.notified().await;
    }

    /// Everything reported since the last call: (id, serial, bytes).
    pub(crate) fn take(&self) -> Vec<(StreamId, u64, usize)> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams
            .drain()
            .map(|(id, (serial, n))| (id, serial, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_frames_merge_and_order_holds() {
        let inbox = Inbox::default();
        assert!(inbox.push(b"ab".to_vec()));
        assert!(inbox.push(b"cd".to_vec()));
        assert!(inbox.push(vec![1; MERGE_UP_TO]));
        inbox.shutdown();
        assert_eq!(inbox.next().await, Next::Data(b"abcd".to_vec()));
        assert_eq!(inbox.next().await, Next::Data(vec![1; MERGE_UP_TO]));
        assert_eq!(inbox.next().await, Next::Shutdown);
        inbox.finish();
        assert_eq!(inbox.next().await, Next::Finished);
        inbox.close();
        assert!(!inbox.push(b"late".to_vec()));
    }

    #[tokio::test]
    async fn room_waits_for_the_upstream() {
        let inbox = Arc::new(Inbox::default());
        inbox.push(vec![0; 100]);
        assert!(!inbox.has_room(100, 8));
        let waiter = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.room(100, 8).await }
        });
        assert_eq!(inbox.next().await, Next::Data(vec![0; 100]));
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn credit_is_taken_from_both_windows() {
        let session = Arc::new(Credit::new(10));
        let a = StreamCredit {
            stream: Credit::new(100),
            session: session.clone(),
        };
        assert_eq!(a.take(64).await, 10, "the session window limits");
        let waiting = tokio::spawn(async move { a.take(64).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no session credit left");
        session.grant(5);
        assert_eq!(waiting.await.unwrap(), 5);
    }
}
