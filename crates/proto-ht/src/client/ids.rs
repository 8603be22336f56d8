//! Query ids: random, unique among the client's open queries.
//!
//! The generator is SplitMix64 from a seed the driver passes in (this crate
//! reads no entropy itself). Query ids only have to be unique among open
//! queries, not secret: the cipher, not the id, is what keeps queries
//! private.

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A seeded source of query ids.
#[derive(Debug, Clone)]
pub(crate) struct IdSource {
    state: u64,
    len: usize,
}

impl IdSource {
    pub(crate) fn new(seed: u64, len: usize) -> IdSource {
        IdSource { state: seed, len }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fresh id for which `taken` is false.
    pub(crate) fn fresh(&mut self, taken: impl Fn(&str) -> bool) -> String {
        loop {
            let id: String = (0..self.len)
                .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            if !taken(&id) {
                return id;
            }
        }
    }
}
