//! The Salsa20/20 keystream, computed eight blocks at a time in SIMD lanes.
//!
//! Why not the `salsa20` crate: it computes one 64-byte block at a time in
//! scalar code, and the benchmark's profile (bench/README.md, issue 12)
//! showed it taking 46 % of the HT client's CPU and 40 % of the server's.
//! Eight blocks side by side in `wide`'s `u32x8` (SSE2 on every x86-64, NEON
//! on aarch64, scalar elsewhere) measured 2.2× the crate's speed on this
//! machine; on x86-64 with AVX2 (checked at run time) the same rounds run
//! in one 256-bit register per word, with AVX-512VL's one-op rotate where
//! the CPU has it ([`avx2`]); there, whole runs of sixteen blocks go through
//! 512-bit registers. On the vector paths the keystream is XORed into the
//! data in registers (transposed from word order to block order with
//! unpacks), not stored and read back. The crate stays as the
//! reference: the tests compare every byte against it for random keys,
//! nonces, positions and splits, on both paths.

use wide::u32x8;

/// Salsa20's twenty rounds: ten double rounds, each a column round then a
/// row round (Salsa20 spec §4–§6). One schedule for every lane width:
/// `$quarter!(x, a, b, c, d)` is the quarter-round of that width.
macro_rules! twenty_rounds {
    ($quarter:ident, $x:ident) => {
        for _ in 0..10 {
            $quarter!($x, 0, 4, 8, 12);
            $quarter!($x, 5, 9, 13, 1);
            $quarter!($x, 10, 14, 2, 6);
            $quarter!($x, 15, 3, 7, 11);
            $quarter!($x, 0, 1, 2, 3);
            $quarter!($x, 5, 6, 7, 4);
            $quarter!($x, 10, 11, 8, 9);
            $quarter!($x, 15, 12, 13, 14);
        }
    };
}

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
    pub fn apply(&mut self, data: &mut [u8]) {
        let (len, at) = (data.len(), data.as_mut_ptr());
        // SAFETY: source and destination are the same `len` bytes.
        unsafe { self.xor_raw(at, at, len) }
    }

    /// Appends `src` XORed with the next `src.len()` keystream bytes to
    /// `out`: a copy and the cipher in one pass over the bytes (the server
    /// keeps its download packets in plaintext and encrypts a copy).
    pub fn apply_extend(&mut self, src: &[u8], out: &mut Vec<u8>) {
        out.reserve(src.len());
        let len = out.len();
        // SAFETY: `reserve` made room for `src.len()` bytes after `len`,
        // which do not overlap `src` (a borrow of something else); every one
        // of them is written before `set_len` counts it.
        unsafe {
            self.xor_raw(src.as_ptr(), out.as_mut_ptr().add(len), src.len());
            out.set_len(len + src.len());
        }
    }

    /// Writes `src[i] ^ keystream[i]` to `dst[i]` for `len` bytes.
    ///
    /// # Safety
    ///
    /// `src` is readable and `dst` writable for `len` bytes, and they are
    /// either the same bytes or do not overlap.
    unsafe fn xor_raw(&mut self, mut src: *const u8, mut dst: *mut u8, mut len: usize) {
        while len > 0 {
            if self.pos == BATCH {
                // Whole batches on a vector path: the keystream is XORed
                // into the data in registers, never stored in `buf` and
                // read back (that store, word by word, and the separate XOR
                // loop were a sixth of the cipher's time in the profile),
                // sixteen blocks at a time where AVX-512 is there.
                let whole = len - len % BATCH;
                if whole > 0 && self.path != avx2::Path::Portable {
                    let mut done = 0;
                    while self.path == avx2::Path::Avx512Vl && whole - done >= 2 * BATCH {
                        let counter = self.counter();
                        // SAFETY: `done + 2 * BATCH <= whole <= len`.
                        unsafe { avx2::xor16(&self.input, counter, src.add(done), dst.add(done)) };
                        self.set_counter(counter.wrapping_add(2 * LANES as u64));
                        done += 2 * BATCH;
                    }
                    while done < whole {
                        let counter = self.counter();
                        // SAFETY: `done + BATCH <= whole <= len`.
                        unsafe {
                            avx2::xor(
                                self.path,
                                &self.input,
                                counter,
                                src.add(done),
                                dst.add(done),
                            )
                        };
                        self.set_counter(counter.wrapping_add(LANES as u64));
                        done += BATCH;
                    }
                    // SAFETY: `whole <= len`.
                    unsafe {
                        src = src.add(whole);
                        dst = dst.add(whole);
                    }
                    len -= whole;
                    continue;
                }
                self.refill();
            }
            let n = (BATCH - self.pos).min(len);
            for (i, k) in self.buf[self.pos..self.pos + n].iter().enumerate() {
                // SAFETY: `i < n <= len`.
                unsafe { *dst.add(i) = *src.add(i) ^ k };
            }
            self.pos += n;
            // SAFETY: `n <= len`.
            unsafe {
                src = src.add(n);
                dst = dst.add(n);
            }
            len -= n;
        }
    }

    /// Computes the next `LANES` blocks into `buf`.
    fn refill(&mut self) {
        let counter = self.counter();
        match self.path {
            avx2::Path::Portable => self.refill_portable(counter),
            path => {
                // The keystream itself is what XOR leaves in zeroes.
                self.buf = [0; BATCH];
                let at = self.buf.as_mut_ptr();
                // SAFETY: in place, `BATCH` bytes.
                unsafe { avx2::xor(path, &self.input, counter, at, at) };
            }
        }
        self.set_counter(counter.wrapping_add(LANES as u64));
        self.pos = 0;
    }

    /// The next batch's first block.
    fn counter(&self) -> u64 {
        u64::from(self.input[8]) | (u64::from(self.input[9]) << 32)
    }

    fn set_counter(&mut self, block: u64) {
        self.input[8] = block as u32;
        self.input[9] = (block >> 32) as u32;
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
        macro_rules! portable_quarter {
            ($x:ident, $a:literal, $b:literal, $c:literal, $d:literal) => {
                quarter(&mut $x, $a, $b, $c, $d)
            };
        }
        twenty_rounds!(portable_quarter, x);
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

/// The low and high words of the block counters `counter..counter + N`
/// (words 8 and 9 of each lane's input), as the vector paths load them.
#[inline(always)]
fn counters<const N: usize>(counter: u64) -> ([i32; N], [i32; N]) {
    let (mut low, mut high) = ([0; N], [0; N]);
    for lane in 0..N {
        let block = counter.wrapping_add(lane as u64);
        low[lane] = block as u32 as i32;
        high[lane] = (block >> 32) as u32 as i32;
    }
    (low, high)
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
        /// AVX2 with AVX-512VL's rotate, and sixteen blocks at once in
        /// AVX-512F registers.
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

    /// Writes `BATCH` bytes from `src` XORed with eight blocks of keystream
    /// from `counter` to `dst`, on a vector `path` that [`detect`] found
    /// (not [`Path::Portable`]).
    ///
    /// # Safety
    ///
    /// As [`super::Keystream::xor_raw`], for `BATCH` bytes.
    pub(super) unsafe fn xor(
        path: Path,
        input: &[u32; 16],
        counter: u64,
        src: *const u8,
        dst: *mut u8,
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` found the features each function needs; the
        // caller vouches for the pointers.
        unsafe {
            match path {
                Path::Avx512Vl => rounds_avx512vl(input, counter, src, dst),
                _ => rounds_avx2(input, counter, src, dst),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (path, input, counter, src, dst);
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
            unsafe fn $name(input: &[u32; 16], counter: u64, src: *const u8, dst: *mut u8) {
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
                let (low, high) = super::counters::<LANES>(counter);
                start[8] = _mm256_setr_epi32(
                    low[0], low[1], low[2], low[3], low[4], low[5], low[6], low[7],
                );
                start[9] = _mm256_setr_epi32(
                    high[0], high[1], high[2], high[3], high[4], high[5], high[6], high[7],
                );
                let mut x = start;
                twenty_rounds!(quarter, x);
                for word in 0..16 {
                    x[word] = _mm256_add_epi32(x[word], start[word]);
                }
                // SAFETY: the caller's pointers, for `BATCH` bytes.
                unsafe { xor_transposed(&x, src, dst) };
            }
        };
    }

    /// Writes `BATCH` bytes from `src` XORed with eight blocks held word by
    /// word (`x[w]`: word `w` of each block, one block per 32-bit lane) to
    /// `dst`, block by block.
    ///
    /// # Safety
    ///
    /// As [`super::Keystream::xor_raw`], for `BATCH` bytes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn xor_transposed(x: &[std::arch::x86_64::__m256i; 16], src: *const u8, dst: *mut u8) {
        use std::arch::x86_64::*;
        // Transpose: `x[w]` holds word `w` of the eight blocks; each
        // block's 64 bytes are words 0..8 then 8..16 of its lane.
        for half in 0..2 {
            let w = &x[8 * half..8 * half + 8];
            let t0 = _mm256_unpacklo_epi32(w[0], w[1]);
            let t1 = _mm256_unpackhi_epi32(w[0], w[1]);
            let t2 = _mm256_unpacklo_epi32(w[2], w[3]);
            let t3 = _mm256_unpackhi_epi32(w[2], w[3]);
            let t4 = _mm256_unpacklo_epi32(w[4], w[5]);
            let t5 = _mm256_unpackhi_epi32(w[4], w[5]);
            let t6 = _mm256_unpacklo_epi32(w[6], w[7]);
            let t7 = _mm256_unpackhi_epi32(w[6], w[7]);
            // Words 0..4 (u0..u3) and 4..8 (u4..u7) of lanes
            // (0, 4), (1, 5), (2, 6), (3, 7) in their 128-bit halves.
            let u = [
                _mm256_unpacklo_epi64(t0, t2),
                _mm256_unpackhi_epi64(t0, t2),
                _mm256_unpacklo_epi64(t1, t3),
                _mm256_unpackhi_epi64(t1, t3),
            ];
            let v = [
                _mm256_unpacklo_epi64(t4, t6),
                _mm256_unpackhi_epi64(t4, t6),
                _mm256_unpacklo_epi64(t5, t7),
                _mm256_unpackhi_epi64(t5, t7),
            ];
            for lane in 0..4 {
                let low = _mm256_permute2x128_si256::<0x20>(u[lane], v[lane]);
                let high = _mm256_permute2x128_si256::<0x31>(u[lane], v[lane]);
                for (block, keys) in [(lane, low), (lane + 4, high)] {
                    let at = 64 * block + 32 * half;
                    // SAFETY: `at + 32 <= BATCH`: 32 bytes of the caller's,
                    // what an unaligned load and store touch.
                    unsafe {
                        let data = _mm256_loadu_si256(src.add(at).cast());
                        _mm256_storeu_si256(dst.add(at).cast(), _mm256_xor_si256(data, keys));
                    }
                }
            }
        }
    }

    /// Sixteen blocks in AVX-512 registers (one `__m512i` per state word),
    /// XORed into `buf` as two halves of eight. In a micro-benchmark of
    /// 64 KiB applies on this machine's Xeon: 5.2 GB/s, against 4.0 GB/s
    /// for eight blocks in 256-bit registers (and 3.0 GB/s before the
    /// keystream was XORed in registers). On CPUs that split 512-bit
    /// operations in two (AMD Zen 4) it should run as the 256-bit path.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    unsafe fn rounds_avx512(input: &[u32; 16], counter: u64, src: *const u8, dst: *mut u8) {
        use std::arch::x86_64::*;

        macro_rules! quarter {
            ($x:ident, $a:literal, $b:literal, $c:literal, $d:literal) => {
                $x[$b] = _mm512_xor_si512(
                    $x[$b],
                    _mm512_rol_epi32::<7>(_mm512_add_epi32($x[$a], $x[$d])),
                );
                $x[$c] = _mm512_xor_si512(
                    $x[$c],
                    _mm512_rol_epi32::<9>(_mm512_add_epi32($x[$b], $x[$a])),
                );
                $x[$d] = _mm512_xor_si512(
                    $x[$d],
                    _mm512_rol_epi32::<13>(_mm512_add_epi32($x[$c], $x[$b])),
                );
                $x[$a] = _mm512_xor_si512(
                    $x[$a],
                    _mm512_rol_epi32::<18>(_mm512_add_epi32($x[$d], $x[$c])),
                );
            };
        }
        let mut start = [_mm512_setzero_si512(); 16];
        for (word, lanes) in start.iter_mut().enumerate() {
            *lanes = _mm512_set1_epi32(input[word] as i32);
        }
        let (low, high) = super::counters::<16>(counter);
        // SAFETY: 64-byte arrays, what unaligned 512-bit loads read.
        unsafe {
            start[8] = _mm512_loadu_si512(low.as_ptr().cast());
            start[9] = _mm512_loadu_si512(high.as_ptr().cast());
        }
        let mut x = start;
        twenty_rounds!(quarter, x);
        for word in 0..16 {
            x[word] = _mm512_add_epi32(x[word], start[word]);
        }
        // Loops, not `array::from_fn`: a closure does not inherit this
        // function's target features, and its intrinsics became calls (6 %
        // of the server's profile).
        let mut low = [_mm256_setzero_si256(); 16];
        let mut high = [_mm256_setzero_si256(); 16];
        for word in 0..16 {
            low[word] = _mm512_castsi512_si256(x[word]);
            high[word] = _mm512_extracti64x4_epi64::<1>(x[word]);
        }
        // SAFETY: the caller's pointers, for `2 * BATCH` bytes.
        unsafe {
            xor_transposed(&low, src, dst);
            xor_transposed(&high, src.add(BATCH), dst.add(BATCH));
        }
    }

    /// As [`xor`] for `2 * BATCH` bytes and sixteen blocks; only on
    /// [`Path::Avx512Vl`].
    ///
    /// # Safety
    ///
    /// As [`super::Keystream::xor_raw`], for `2 * BATCH` bytes; `detect`
    /// found [`Path::Avx512Vl`].
    pub(super) unsafe fn xor16(input: &[u32; 16], counter: u64, src: *const u8, dst: *mut u8) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as the caller vouches.
        unsafe {
            rounds_avx512(input, counter, src, dst)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (input, counter, src, dst);
            unreachable!("vector paths are only detected on x86-64")
        }
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
        fn apply_extend_equals_apply(
            key in any::<[u8; 32]>(),
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            cut in 0usize..5000,
            path in proptest::sample::select(PATHS.to_vec()),
        ) {
            let cut = cut.min(data.len());
            let mut in_place = data.clone();
            let mut a = Keystream::at_block(&key, &[1; 8], 0, path);
            a.apply(&mut in_place[..cut]);
            a.apply(&mut in_place[cut..]);
            let mut b = Keystream::at_block(&key, &[1; 8], 0, path);
            let mut out = b"head".to_vec();
            b.apply_extend(&data[..cut], &mut out);
            b.apply_extend(&data[cut..], &mut out);
            prop_assert_eq!(&out[..4], b"head");
            prop_assert_eq!(&out[4..], &in_place[..]);
        }

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
