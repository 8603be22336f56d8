//! How much a relay asks for in its next read: little at first, doubling
//! while reads come back full, up to the configured maximum.
//!
//! A relay that reserves its full read size (64 KiB) for every connection
//! pays it in memory for every idle keep-alive connection a browser holds.
//! With 1,000 open connections each fetching 1 KiB, the client held
//! 165–170 KiB per connection with fixed 64 KiB reads and 49–55 KiB with
//! reads starting at 8 KiB (bench/README.md, "Memory per stream"); bulk
//! transfers reach full-size reads after three full ones, so their reads
//! stay as large as before (hyper's adaptive read buffer does the same).

/// What the first read asks for (the maximum if smaller).
pub const FIRST_READ: usize = 8 * 1024;

/// The size of a relay's next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSize {
    next: usize,
    max: usize,
}

impl ReadSize {
    /// Reads of at most `max` bytes (at least 1), starting at [`FIRST_READ`].
    pub fn up_to(max: usize) -> ReadSize {
        let max = max.max(1);
        ReadSize {
            next: max.min(FIRST_READ),
            max,
        }
    }

    /// Bytes the next read asks for.
    pub fn next(self) -> usize {
        self.next
    }

    /// Records that a read asking for `asked` bytes returned `got`: a full
    /// read doubles the next one, up to the maximum.
    pub fn record(&mut self, asked: usize, got: usize) {
        if got >= asked && asked >= self.next {
            self.next = self.next.saturating_mul(2).min(self.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_reads_double_the_next_up_to_the_maximum() {
        let mut size = ReadSize::up_to(64 * 1024);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let asked = size.next();
            seen.push(asked);
            size.record(asked, asked);
        }
        assert_eq!(seen, [8192, 16384, 32768, 65536, 65536, 65536]);
    }

    #[test]
    fn short_reads_and_smaller_asks_keep_the_size() {
        let mut size = ReadSize::up_to(64 * 1024);
        size.record(8192, 1024);
        assert_eq!(size.next(), 8192);
        // A read cut short by the caller (less room than `next`) that filled
        // what it asked for says nothing about the peer's pace.
        size.record(100, 100);
        assert_eq!(size.next(), 8192);
        size.record(0, 0);
        assert_eq!(size.next(), 8192);
    }

    #[test]
    fn a_maximum_below_the_first_read_is_kept() {
        let mut size = ReadSize::up_to(1000);
        assert_eq!(size.next(), 1000);
        size.record(1000, 1000);
        assert_eq!(size.next(), 1000);
        assert_eq!(ReadSize::up_to(0).next(), 1);
    }
}
