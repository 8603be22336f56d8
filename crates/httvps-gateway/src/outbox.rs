//! A session's messages on their way to the client's socket.
//!
//! One FIFO shared by every stream let a bulk download delay a `pong`, a
//! `window_update` or a stream's `stream_close` by a whole queue of data,
//! and let the busiest stream take most of the queue. The outbox keeps the
//! order of [`FairQueue`]: control messages first, then one message per
//! stream in turn, each stream's in order (its `stream_ready` before its
//! data, its `stream_close` after). Stream tasks wait for room in their own
//! lane only; the session loop never waits: what it queues answers what the
//! client sent and is bounded (pongs are coalesced; at most an error and a
//! close per stream), and a client that lets more than `max_frames` of the
//! loop's messages pile up is not reading, which ends the session.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use proto_httvps::fair::FairQueue;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// The writer is gone (failed, or the session ended): nothing more is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone;

struct State {
    /// Each message with whether the session loop queued it (those count
    /// against `max_frames`; the tasks' are bounded by their lanes).
    queue: FairQueue<(Message, bool)>,
    from_loop: usize,
    /// A `pong` is owed (one answers any number of pings read meanwhile).
    pong_due: bool,
    /// No more messages will be queued; the writer stops once drained.
    finished: bool,
    /// Sent after everything else (the Close).
    last: Option<Message>,
}

/// The send queue of one session, shared by its loop, its streams and the writer.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer.
    ready: Notify,
    /// Wakes stream tasks waiting for room in their lane.
    room: Notify,
    lane_frames: usize,
    max_frames: AtomicUsize,
    gone: CancellationToken,
}

impl Outbox {
    /// An outbox where each stream task may queue `lane_frames` messages,
    /// and the session loop `max_frames` before the client counts as gone.
    pub(crate) fn new(lane_frames: usize, max_frames: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                queue: FairQueue::new(),
                from_loop: 0,
                pong_due: false,
                finished: false,
                last: None,
            }),
            ready: Notify::new(),
            room: Notify::new(),
            lane_frames: lane_frames.max(1),
            max_frames: AtomicUsize::new(max_frames.max(1)),
            gone: CancellationToken::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the session loop's bound (once the session's `max_streams`
    /// is known).
    pub(crate) fn set_max_frames(&self, max_frames: usize) {
        self.max_frames.store(max_frames.max(1), Ordering::Relaxed);
    }

    /// Cancelled when the writer failed or stopped.
    pub(crate) fn gone(&self) -> &CancellationToken {
        &self.gone
    }

    /// Queues a control message (no stream bytes; it may overtake any).
    pub(crate) fn control(&self, message: Message) -> Result<(), Gone> {
        self.push(None, message)
    }

    /// Queues a stream's message from the session loop, which never waits
    /// (a `stream_close`, a stream's `error`).
    pub(crate) fn stream_now(&self, stream: &str, message: Message) -> Result<(), Gone> {
        self.push(Some(stream), message)
    }

    fn push(&self, stream: Option<&str>, message: Message) -> Result<(), Gone> {
        let mut state = self.state();
        if self.gone.is_cancelled() || state.finished {
            return Err(Gone);
        }
        let max = self.max_frames.load(Ordering::Relaxed);
        if state.from_loop >= max {
            drop(state);
            tracing::debug!(max, "client not reading: send queue full");
            self.fail();
            return Err(Gone);
        }
        state.from_loop += 1;
        match stream {
            None => state.queue.push_control((message, true)),
            Some(id) => state.queue.push_stream(id, (message, true)),
        }
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// Owes the client a `pong`.
    pub(crate) fn pong(&self) {
        self.state().pong_due = true;
        self.ready.notify_one();
    }

    /// Queues a stream task's message, waiting while its lane is full.
    pub(crate) async fn stream(&self, stream: &str, message: Message) -> Result<(), Gone> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.state();
                if self.gone.is_cancelled() || state.finished {
                    return Err(Gone);
                }
                if state.queue.stream_len(stream) < self.lane_frames {
                    state.queue.push_stream(stream, (message, false));
                    drop(state);
                    self.ready.notify_one();
                    return Ok(());
                }
            }
            tokio::select! {
                _ = &mut room => {}
                _ = self.gone.cancelled() => return Err(Gone),
            }
        }
    }

    /// Queues the last message (a Close), sent after everything queued, and
    /// accepts no more.
    pub(crate) fn finish_with(&self, last: Message) {
        let mut state = self.state();
        if !state.finished && !self.gone.is_cancelled() {
            state.last = Some(last);
        }
        state.finished = true;
        drop(state);
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Accepts no more messages; the writer stops once it sent what is queued.
    pub(crate) fn finish(&self) {
        self.state().finished = true;
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// The writer failed: nothing more will be sent.
    pub(crate) fn fail(&self) {
        self.gone.cancel();
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Takes up to `max` messages in sending order into `batch`, waiting
    /// for one; `false` once finished and drained (or failed).
    pub(crate) async fn next_batch(&self, batch: &mut Vec<Message>, max: usize) -> bool {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.state();
                if self.gone.is_cancelled() {
                    return false;
                }
                while batch.len() < max {
                    if state.queue.control_len() == 0 && std::mem::take(&mut state.pong_due) {
                        batch.push(Message::text(r#"{"type":"pong"}"#));
                        continue;
                    }
                    match state.queue.pop() {
                        Some((message, from_loop)) => {
                            state.from_loop -= usize::from(from_loop);
                            batch.push(message);
                        }
                        None => {
                            if !state.pong_due
                                && let Some(last) = state.last.take()
                            {
                                batch.push(last);
                            }
                            break;
                        }
                    }
                }
                if !batch.is_empty() {
                    drop(state);
                    self.room.notify_waiters();
                    return true;
                }
                if state.finished {
                    return false;
                }
            }
            ready.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Message) -> String {
        m.to_text().unwrap().to_owned()
    }

    #[tokio::test]
    async fn control_first_then_streams_in_turn_with_one_pong() {
        let out = Outbox::new(4, 64);
        for n in 0..3 {
            out.stream("a", Message::text(format!("a{n}")))
                .await
                .unwrap();
        }
        out.stream("b", Message::text("b0")).await.unwrap();
        out.pong();
        out.pong();
        out.control(Message::text("ctl")).unwrap();
        let mut batch = Vec::new();
        assert!(out.next_batch(&mut batch, 64).await);
        let got: Vec<String> = batch.iter().map(text).collect();
        assert_eq!(got, ["ctl", r#"{"type":"pong"}"#, "a0", "b0", "a1", "a2"]);
    }

    #[tokio::test]
    async fn a_full_lane_waits_without_holding_up_the_others() {
        let out = std::sync::Arc::new(Outbox::new(1, 64));
        out.stream("a", Message::text("a0")).await.unwrap();
        let waiting = tokio::spawn({
            let out = out.clone();
            async move { out.stream("a", Message::text("a1")).await }
        });
        // Another stream's lane has room.
        out.stream("b", Message::text("b0")).await.unwrap();
        assert!(!waiting.is_finished());
        let mut batch = Vec::new();
        assert!(out.next_batch(&mut batch, 64).await);
        assert_eq!(batch.len(), 2);
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_client_that_reads_nothing_ends_the_session() {
        let out = Outbox::new(1, 3);
        // The tasks' lanes do not count: they are bounded on their own.
        out.stream("t", Message::text("data")).await.unwrap();
        for _ in 0..3 {
            out.control(Message::text("x")).unwrap();
        }
        assert_eq!(out.control(Message::text("x")), Err(Gone));
        assert!(out.gone().is_cancelled());
        assert_eq!(out.stream("a", Message::text("a")).await, Err(Gone));
    }

    #[tokio::test]
    async fn finish_sends_what_is_queued_then_stops() {
        let out = Outbox::new(4, 64);
        out.stream_now("a", Message::text("close")).unwrap();
        out.finish_with(Message::text("bye"));
        assert_eq!(out.control(Message::text("late")), Err(Gone));
        let mut batch = Vec::new();
        assert!(out.next_batch(&mut batch, 64).await);
        let got: Vec<String> = batch.iter().map(text).collect();
        assert_eq!(got, ["close", "bye"]);
        batch.clear();
        assert!(!out.next_batch(&mut batch, 64).await);
    }
}
