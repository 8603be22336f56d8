//! How much of a request head nginx holds at once, and so where its size
//! limits fall. Observed (and checked against nginx with hundreds of random
//! heads):
//!
//! - a head is first read into 1 KiB; a pipelined head starts where the
//!   previous request ended, in whatever room its buffer has left;
//! - when that room fills before the head ends, the line being read (the
//!   request line, or one header line) moves to a fresh 8 KiB room, and the
//!   lines after it follow it there;
//! - a request line that fills a whole 8 KiB room is answered 414, a header
//!   line that does is answered 400 "Request Header Or Cookie Too Large";
//!   so is a head that needs a fifth 8 KiB room (a pipelined head that
//!   starts in an 8 KiB room has used one already);
//! - blank lines before a request line are dropped as they come, however
//!   many.
//!
//! [`Window`] keeps that account over the connection's buffer: bytes past
//! its end are ones nginx would not have read yet.

/// The first room of a head (`client_header_buffer_size`).
pub(super) const SMALL: usize = 1024;
/// The room a long line moves to (`large_client_header_buffers`).
pub(super) const LARGE: usize = 8192;
/// How many large rooms one head may use.
const LARGE_ROOMS: usize = 4;

/// The room a head is being read into, as offsets in the connection's
/// buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    /// Where the room ends.
    pub end: usize,
    /// Its size: [`SMALL`] or [`LARGE`].
    size: usize,
    /// Large rooms this head has used.
    large: usize,
}

/// The room is full and the line being read cannot move on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request line or header line too long")]
pub(super) struct Overflow;

impl Window {
    /// A fresh small room starting at `start`.
    pub fn fresh(start: usize) -> Window {
        Window {
            end: start + SMALL,
            size: SMALL,
            large: 0,
        }
    }

    /// The room for a head that follows one which ended at `start`, when
    /// bytes after `start` are already in the room: it goes on in it.
    /// Otherwise the next head gets a fresh room.
    pub fn next(self, start: usize, pipelined: bool) -> Window {
        if !pipelined || start >= self.end {
            return Window::fresh(start);
        }
        Window {
            end: self.end,
            size: self.size,
            large: usize::from(self.size == LARGE),
        }
    }

    /// The room filled with blank lines only: they are dropped and it is
    /// reused from `at`.
    pub fn reuse(&mut self, at: usize) {
        self.end = at + self.size;
    }

    /// The room filled while the line starting at `line` was incomplete:
    /// the line moves to a fresh large room, if it may.
    pub fn grow(&mut self, line: usize) -> Result<(), Overflow> {
        if self.end - line >= LARGE || self.large == LARGE_ROOMS {
            return Err(Overflow);
        }
        self.large += 1;
        self.size = LARGE;
        self.end = line + LARGE;
        Ok(())
    }

    /// The window moved: `by` bytes were dropped from the buffer's front.
    pub fn shift(&mut self, by: usize) {
        self.end -= by;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_move_to_large_rooms_until_the_fourth() {
        let mut w = Window::fresh(0);
        assert_eq!(w.end, SMALL);
        // A request line still going at 1 KiB moves with its 1000 bytes.
        w.grow(24).unwrap();
        assert_eq!(w.end, 24 + LARGE);
        // A line that fills a whole large room does not.
        let mut full = w;
        assert_eq!(full.grow(24), Err(Overflow));
        for line in [8000, 16000, 24000] {
            w.grow(line).unwrap();
        }
        assert_eq!(w.grow(32000), Err(Overflow), "a fifth room");
    }

    #[test]
    fn pipelined_heads_go_on_in_the_room() {
        let mut w = Window::fresh(0);
        w.grow(500).unwrap();
        let next = w.next(6000, true);
        assert_eq!(next.end, w.end);
        assert_eq!(next.large, 1);
        assert_eq!(w.next(6000, false), Window::fresh(6000));
        assert_eq!(Window::fresh(0).next(100, true).large, 0);
    }
}
