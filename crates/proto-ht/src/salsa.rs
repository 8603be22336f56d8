//! The Salsa20/20 keystream, computed eight blocks at a time in SIMD lanes.
//!
//! Why not the `salsa20` crate: it computes one 64-byte block at a time in
//! scalar code, and the benchmark's profile (bench/README.md, issue 12)
//! showed it taking 46 % of the HT client's CPU and 40 % of the server's.
//! Eight blocks side by side in `wide`'s `u32x8` (SSE2 on every x86-64, NEON
//! on aarch64, scalar elsewhere) measured 2.2× the crate's speed on this
//! machine; on x86-64 with AVX2 (checked at run time) the same rounds run
//! in one 256-bit register per word, with AVX-512VL's one-op rotate where
//! the CPU has it ([`avx2`]). The crate stays as the
//! reference: the tests compare every byte against it for random keys,
//! nonces, positions and splits, on both paths.

use wide::u32x8;

/// Blocks computed at once.
const LANES: usize = 8;
/// Keystream bytes per refill.
const BATCH: usize = 64 * LANES;

/// One Salsa20/20 keystream (a key, an 8-byte nonce and a 64-bit block
/// counter from 0), applied to data in order.
#[derive(Clone)]
pub struct Keystream {
    /// The input block: constants, key, nonce, and the next batch's counter
    /// in words 8 and 9.
    input: [u32; 16],
    /// Keystream not used yet: `buf[pos..]`.
    buf: [u8; BATCH],
    pos: usize,
    /// The vector path this CPU runs (detected once per keystream).
    path: avx2::Path,
}

impl Keystream {
    /// The keystream of `key` and `nonce` from block 0.
    pub fn new(key: &[u8; 32], nonce: &[u8; 8]) -> Keystream {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut input = [0u32; 16];
        // "expand 32-byte k"
        input[0] = 0x6170_7865;
        input[5] = 0x3320_646e;
        input[10] = 0x7962_2d32;
        input[15] = 0x6b20_6574;
        for i in 0..4 {
            input[1 + i] = word(&key[4 * i..]);
            input[11 + i] = word(&key[16 + 4 * i..]);
        }
        input[6] = word(&nonce[0..]);
        input[7] = word(&nonce[4..]);
        Keystream {
            input,
            buf: [0; BATCH],
            pos: BATCH,
            path: avx2::detect(),
        }
    }

    /// XORs the next `data.len()` keystream bytes into `data`.
    pub fn apply(&mut self, mut data: &mut [u8]) {
        while !data.is_empty() {
            if self.pos == BATCH {
                self.refill();
            }
            let n = (BATCH - self.pos).min(data.len());
            let (head, rest) = data.split_at_mut(n);
            for (d, k) in head.iter_mut().zip(&self.buf[self.pos..self.pos + n]) {
                *d ^= k;
            }
            self.pos += n;
            data = rest;
        }
    }

    /// Computes the next `LANES` blocks into `buf`.
    fn refill(&mut self) {
        let counter = u64::from(self.input[8]) | (u64::from(self.input[9]) << 32);
        match self.path {
            avx2::Path::Portable => self.refill_portable(counter),
            path => avx2::refill(path, &self.input, counter, &mut self.buf),
        }
        let next = counter.wrapping_add(LANES as u64);
        self.input[8] = next as u32;
        self.input[9] = (next >> 32) as u32;
        self.pos = 0;
    }

    /// [`Keystream::refill`] with `wide`'s portable lanes.
    fn refill_portable(&mut self, counter: u64) {
        let mut start = [[0u32; LANES]; 16];
        for (word, lanes) in start.iter_mut().enumerate() {
            *lanes = [self.input[word]; LANES];
        }
        let blocks: [u64; LANES] = std::array::from_fn(|lane| counter.wrapping_add(lane as u64));
        start[8] = blocks.map(|block| block as u32);
        start[9] = blocks.map(|block| (block >> 32) as u32);
        let mut x: [u32x8; 16] = start.map(u32x8::new);
        for _ in 0..10 {
            // Column round, then row round (Salsa20 spec §4–§6).
            quarter(&mut x, 0, 4, 8, 12);
            quarter(&mut x, 5, 9, 13, 1);
            quarter(&mut x, 10, 14, 2, 6);
            quarter(&mut x, 15, 3, 7, 11);
            quarter(&mut x, 0, 1, 2, 3);
            quarter(&mut x, 5, 6, 7, 4);
            quarter(&mut x, 10, 11, 8, 9);
            quarter(&mut x, 15, 12, 13, 14);
        }
        for (word, (mixed, initial)) in x.iter().zip(start.map(u32x8::new)).enumerate() {
            let out = (*mixed + initial).to_array();
            for (lane, value) in out.iter().enumerate() {
                let at = 64 * lane + 4 * word;
                self.buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
    }

    /// A keystream starting at block `block` (for tests of the counter's
    /// carry into its high word).
    #[cfg(test)]
    fn at_block(key: &[u8; 32], nonce: &[u8; 8], block: u64, path: avx2::Path) -> Keystream {
        let mut stream = Keystream::new(key, nonce);
        // A path this CPU lacks falls back to the best one it has.
        let best = avx2::detect();
        stream.path = match (path, best) {
            (avx2::Path::Avx512Vl, avx2::Path::Avx2) => avx2::Path::Avx2,
            (avx2::Path::Portable, _) | (_, avx2::Path::Portable) => avx2::Path::Portable,
            (wanted, _) => wanted,
        };
        stream.input[8] = block as u32;
        stream.input[9] = (block >> 32) as u32;
        stream
    }
}

/// One Salsa20 quarter-round on words `a`, `b`, `c`, `d` of every lane.
#[inline(always)]
fn quarter(x: &mut [u32x8; 16], a: usize, b: usize, c: usize, d: usize) {
    x[b] ^= rotl::<7>(x[a] + x[d]);
    x[c] ^= rotl::<9>(x[b] + x[a]);
    x[d] ^= rotl::<13>(x[c] + x[b]);
    x[a] ^= rotl::<18>(x[d] + x[c]);
}

#[inline(always)]
fn rotl<const N: u32>(v: u32x8) -> u32x8 {
    (v << N) | (v >> (32 - N))
}

/// The rounds in AVX2 registers: one `__m256i` per state word holds that
/// word of all eight blocks. Where AVX-512VL is there too, its one-op
/// rotate (`vprold`) replaces the two shifts and the OR (the same 256-bit
/// registers, so no wide-vector clock penalty on CPUs that have one).
mod avx2 {
    use super::{BATCH, LANES};

    /// Which vector path this CPU runs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Path {
        /// `wide`'s portable lanes.
        Portable,
        /// AVX2.
        Avx2,
        /// AVX2 with AVX-512VL's rotate.
        Avx512Vl,
    }

    /// The best path for this CPU.
    pub(super) fn detect() -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Path::Avx512Vl;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Path::Avx2;
            }
        }
        Path::Portable
    }

    /// Eight blocks from `counter` into `buf` on a vector `path` that
    /// [`detect`] found (not [`Path::Portable`]).
    pub(super) fn refill(path: Path, input: &[u32; 16], counter: u64, buf: &mut [u8; BATCH]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` found the features each function needs.
        unsafe {
            match path {
                Path::Avx512Vl => rounds_avx512vl(input, counter, buf),
                _ => rounds_avx2(input, counter, buf),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (path, input, counter, buf);
            unreachable!("vector paths are only detected on x86-64")
        }
    }

    #[cfg(target_arch = "x86_64")]
    macro_rules! rotl_shifts {
        ($v:expr, $n:literal) => {
            _mm256_or_si256(
                _mm256_slli_epi32::<$n>($v),
                _mm256_srli_epi32::<{ 32 - $n }>($v),
            )
        };
    }

    #[cfg(target_arch = "x86_64")]
    macro_rules! rotl_vprold {
        ($v:expr, $n:literal) => {
            _mm256_rol_epi32::<$n>($v)
        };
    }

    /// One `rounds_*` function per rotate flavour, with the same body.
    #[cfg(target_arch = "x86_64")]
    macro_rules! rounds {
        ($name:ident, $features:literal, $rotl:ident) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(input: &[u32; 16], counter: u64, buf: &mut [u8; BATCH]) {
                use std::arch::x86_64::*;

                macro_rules! quarter {
                    ($x:ident, $a:literal, $b:literal, $c:literal, $d:literal) => {
                        $x[$b] =
                            _mm256_xor_si256($x[$b], $rotl!(_mm256_add_epi32($x[$a], $x[$d]), 7));
                        $x[$c] =
                            _mm256_xor_si256($x[$c], $rotl!(_mm256_add_epi32($x[$b], $x[$a]), 9));
                        $x[$d] =
                            _mm256_xor_si256($x[$d], $rotl!(_mm256_add_epi32($x[$c], $x[$b]), 13));
                        $x[$a] =
                            _mm256_xor_si256($x[$a], $rotl!(_mm256_add_epi32($x[$d], $x[$c]), 18));
                    };
                }

                let mut start = [_mm256_setzero_si256(); 16];
                for (word, lanes) in start.iter_mut().enumerate() {
                    *lanes = _mm256_set1_epi32(input[word] as i32);
                }
                let blocks: [u64; LANES] =
                    std::array::from_fn(|lane| counter.wrapping_add(lane as u64));
                let low = blocks.map(|b| b as u32 as i32);
                let high = blocks.map(|b| (b >> 32) as u32 as i32);
                start[8] = _mm256_setr_epi32(
                    low[0], low[1], low[2], low[3], low[4], low[5], low[6], low[7],
                );
                start[9] = _mm256_setr_epi32(
                    high[0], high[1], high[2], high[3], high[4], high[5], high[6], high[7],
                );
                let mut x = start;
                for _ in 0..10 {
                    quarter!(x, 0, 4, 8, 12);
                    quarter!(x, 5, 9, 13, 1);
                    quarter!(x, 10, 14, 2, 6);
                    quarter!(x, 15, 3, 7, 11);
                    quarter!(x, 0, 1, 2, 3);
                    quarter!(x, 5, 6, 7, 4);
                    quarter!(x, 10, 11, 8, 9);
                    quarter!(x, 15, 12, 13, 14);
                }
                for word in 0..16 {
                    let mut out = [0u32; LANES];
                    // SAFETY: `out` is 32 bytes, what an unaligned store writes.
                    unsafe {
                        _mm256_storeu_si256(
                            out.as_mut_ptr().cast(),
                            _mm256_add_epi32(x[word], start[word]),
                        )
                    };
                    for (lane, value) in out.iter().enumerate() {
                        let at = 64 * lane + 4 * word;
                        buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
                    }
                }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    rounds!(rounds_avx2, "avx2", rotl_shifts);
    #[cfg(target_arch = "x86_64")]
    rounds!(rounds_avx512vl, "avx2,avx512f,avx512vl", rotl_vprold);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

    /// Every path, each checked where the CPU has it (else its fallback).
    const PATHS: [avx2::Path; 3] = [avx2::Path::Portable, avx2::Path::Avx2, avx2::Path::Avx512Vl];

    fn reference(key: &[u8; 32], nonce: &[u8; 8], skip: u64, len: usize) -> Vec<u8> {
        let mut cipher = salsa20::Salsa20::new(key.into(), nonce.into());
        cipher.seek(skip);
        let mut out = vec![0u8; len];
        cipher.apply_keystream(&mut out);
        out
    }

    #[test]
    fn matches_the_specification_vector() {
        // Salsa20 spec / eSTREAM set 1, vector 0: key 80 00…, nonce 0.
        let mut key = [0u8; 32];
        key[0] = 0x80;
        let mut out = [0u8; 64];
        Keystream::new(&key, &[0; 8]).apply(&mut out);
        assert_eq!(out[..8], [0xe3, 0xbe, 0x8f, 0xdd, 0x8b, 0xec, 0xa2, 0xe3]);
        assert_eq!(out.to_vec(), reference(&key, &[0; 8], 0, 64));
    }

    #[test]
    fn the_counter_carries_into_its_high_word() {
        let (key, nonce) = ([7u8; 32], [9u8; 8]);
        let first = (1u64 << 32) - 3;
        for path in PATHS {
            let mut out = vec![0u8; 64 * 20];
            Keystream::at_block(&key, &nonce, first, path).apply(&mut out);
            assert_eq!(
                out,
                reference(&key, &nonce, first * 64, out.len()),
                "{path:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn equals_the_reference_crate_across_any_splits(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 8]>(),
            len in 0usize..5000,
            cuts in proptest::collection::vec(0usize..5000, 0..8),
            path in proptest::sample::select(PATHS.to_vec()),
        ) {
            let mut ours = vec![0u8; len];
            let mut stream = Keystream::at_block(&key, &nonce, 0, path);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= len).collect();
            cuts.sort_unstable();
            let mut from = 0;
            for cut in cuts.into_iter().chain([len]) {
                stream.apply(&mut ours[from..cut]);
                from = cut;
            }
            prop_assert_eq!(ours, reference(&key, &nonce, 0, len));
        }
    }
}
