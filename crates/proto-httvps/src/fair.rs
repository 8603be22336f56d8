//! The order in which a session's frames leave: control first, then the
//! streams' frames round-robin.
//!
//! One FIFO for everything lets a bulk download delay a `pong`, a
//! `window_update` or a new stream's `stream_open` by a whole queue of data
//! frames, and lets one busy stream fill the queue ahead of all others. Here
//! control frames (which carry no stream bytes and may overtake any) always
//! go first, and each stream has its own FIFO, served one frame per turn.
//! A stream's own frames never overtake each other, so its `stream_close`
//! still follows its last data.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A send queue with one control lane and one lane per stream.
#[derive(Debug)]
pub struct FairQueue<T> {
    control: VecDeque<T>,
    lanes: HashMap<Arc<str>, VecDeque<T>>,
    /// Streams with queued frames, in serving order; each at most once.
    ring: VecDeque<Arc<str>>,
    stream_frames: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue {
            control: VecDeque::new(),
            lanes: HashMap::new(),
            ring: VecDeque::new(),
            stream_frames: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a frame that may overtake every stream frame.
    pub fn push_control(&mut self, item: T) {
        self.control.push_back(item);
    }

    /// Queues a frame behind `stream`'s earlier frames.
    pub fn push_stream(&mut self, stream: &str, item: T) {
        if let Some(lane) = self.lanes.get_mut(stream) {
            lane.push_back(item);
        } else {
            let id: Arc<str> = Arc::from(stream);
            self.ring.push_back(id.clone());
            self.lanes.insert(id, VecDeque::from([item]));
        }
        self.stream_frames += 1;
    }

    /// The next frame: control first, then the next stream in turn.
    pub fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.control.pop_front() {
            return Some(item);
        }
        let id = self.ring.pop_front()?;
        let lane = self
            .lanes
            .get_mut(&id)
            .expect("every ring entry has a lane");
        let item = lane.pop_front().expect("lanes in the ring are not empty");
        if lane.is_empty() {
            self.lanes.remove(&id);
        } else {
            self.ring.push_back(id);
        }
        self.stream_frames -= 1;
        Some(item)
    }

    /// Frames queued for `stream`.
    pub fn stream_len(&self, stream: &str) -> usize {
        self.lanes.get(stream).map_or(0, VecDeque::len)
    }

    /// Frames queued on all stream lanes.
    pub fn stream_frames(&self) -> usize {
        self.stream_frames
    }

    /// Control frames queued.
    pub fn control_len(&self) -> usize {
        self.control.len()
    }

    /// Every frame queued.
    pub fn len(&self) -> usize {
        self.control.len() + self.stream_frames
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves what is queued for `stream` to the end of the control lane, in
    /// order: a frame queued as control next then follows the stream's last
    /// one, and precedes any frame queued later. (A client's `stream_close`
    /// must reach the gateway before a later `stream_open` takes its slot.)
    pub fn promote(&mut self, stream: &str) {
        let Some(lane) = self.lanes.remove(stream) else {
            return;
        };
        self.ring.retain(|id| &**id != stream);
        self.stream_frames -= lane.len();
        self.control.extend(lane);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut FairQueue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn control_overtakes_queued_data() {
        let mut q = FairQueue::new();
        q.push_stream("s1", "d1");
        q.push_stream("s1", "d2");
        q.push_control("pong");
        assert_eq!(drain(&mut q), ["pong", "d1", "d2"]);
        assert!(q.is_empty());
    }

    #[test]
    fn streams_take_turns_and_keep_their_own_order() {
        let mut q = FairQueue::new();
        for item in ["a1", "a2", "a3", "a4"] {
            q.push_stream("a", item);
        }
        q.push_stream("b", "b1");
        q.push_stream("b", "b-close");
        q.push_stream("c", "c1");
        assert_eq!(q.len(), 7);
        assert_eq!(q.stream_len("a"), 4);
        assert_eq!(
            drain(&mut q),
            ["a1", "b1", "c1", "a2", "b-close", "a3", "a4"]
        );
        assert_eq!(q.stream_frames(), 0);
    }

    #[test]
    fn a_promoted_stream_goes_ahead_in_order() {
        let mut q = FairQueue::new();
        q.push_stream("a", "a1");
        q.push_stream("b", "b1");
        q.push_stream("a", "a2");
        q.promote("a");
        q.push_control("a-close");
        q.push_control("c-open");
        assert_eq!(q.stream_frames(), 1);
        assert_eq!(drain(&mut q), ["a1", "a2", "a-close", "c-open", "b1"]);
    }
}
