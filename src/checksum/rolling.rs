//! The rolling checksum (`sum1`, upstream `get_checksum1`).
//!
//! Layer: checksum (L1, pure compute). Uses nothing else in the crate.
//! Mirrors upstream checksum.c `get_checksum1` and the rolling update in
//! match.c `hash_search`. Bytes are taken as **signed** 8-bit values and
//! `CHAR_OFFSET` is 0, exactly as rsync does; the librsync variant (which
//! adds 31 per byte) does not interoperate.

/// Widens a byte to its signed value as a wrapping `u32`, as C's
/// `signed char` promotion does.
#[inline(always)]
fn sx(b: u8) -> u32 {
    // Two's complement reinterpretation is the point here.
    #[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
    let v = i32::from(b as i8) as u32;
    v
}

/// Lanes of the fast path of [`checksum1`]: byte `j` of every 16-byte
/// step goes to lane `j`.
const LANES: usize = 16;

/// Returns `(s1, s2)` of `data` (both modulo 2^32, signed bytes).
///
/// On x86_64 with AVX2 (detected at run time) the bulk goes through the
/// vector kernel in `simd.rs` and the tail (under 64 bytes) continues here
/// with the prefix-sum rule; elsewhere [`sums_scalar`] does it all.
#[inline]
fn sums(data: &[u8]) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= super::simd::STEP {
        if let Some((mut s1, mut s2, used)) = super::simd::sums_prefix(data) {
            for &b in data.get(used..).unwrap_or_default() {
                s1 = s1.wrapping_add(sx(b));
                s2 = s2.wrapping_add(s1);
            }
            return (s1, s2);
        }
    }
    sums_scalar(data)
}

/// Returns `(s1, s2)` of `data` (both modulo 2^32, signed bytes), in
/// portable code.
///
/// The fast path is the Adler-32 vectorisation: per lane, `v1 += x` and
/// `v2 += v1` each step, with no multiplication and no horizontal sum in
/// the loop. For `C` steps of 16 bytes, byte `(c, j)` has weight
/// `16·(C − c) − j` in `s2`, which is `16·Σv2 − Σ j·v1`. The tail continues
/// with the scalar prefix-sum rule. All arithmetic wraps, as in C.
#[inline]
fn sums_scalar(data: &[u8]) -> (u32, u32) {
    let mut v1 = [0u32; LANES];
    let mut v2 = [0u32; LANES];
    let mut chunks = data.chunks_exact(LANES);
    for chunk in &mut chunks {
        for ((a, b), &x) in v1.iter_mut().zip(v2.iter_mut()).zip(chunk) {
            *a = a.wrapping_add(sx(x));
            *b = b.wrapping_add(*a);
        }
    }
    let mut s1: u32 = 0;
    let mut s2: u32 = 0;
    for (j, (&a, &b)) in v1.iter().zip(v2.iter()).enumerate() {
        s1 = s1.wrapping_add(a);
        // j < 16.
        #[allow(clippy::cast_possible_truncation)]
        let w = j as u32;
        s2 = s2
            .wrapping_add(b.wrapping_mul(LANES as u32))
            .wrapping_sub(a.wrapping_mul(w));
    }
    for &b in chunks.remainder() {
        s1 = s1.wrapping_add(sx(b));
        s2 = s2.wrapping_add(s1);
    }
    (s1, s2)
}

#[inline(always)]
fn combine(s1: u32, s2: u32) -> u32 {
    (s1 & 0xffff) | (s2 << 16)
}

/// The rsync rolling checksum of a whole block (upstream `get_checksum1`):
/// `s1 = Σ x[i]`, `s2 = Σ (n − i)·x[i]` over signed bytes, result
/// `(s1 & 0xffff) | (s2 << 16)`.
///
/// ```
/// use ferrsync::checksum::checksum1;
/// assert_eq!(checksum1(b""), 0);
/// assert_eq!(checksum1(&[1, 2]), 3 | (4 << 16));
/// assert_eq!(checksum1(&[0xff]), 0xffff_ffff); // -1, not 255
/// ```
#[must_use]
pub fn checksum1(data: &[u8]) -> u32 {
    let (s1, s2) = sums(data);
    combine(s1, s2)
}

/// A rolling window over the data being matched (upstream keeps `s1`, `s2`
/// and `k` in match.c `hash_search`).
///
/// Start with [`Rolling::new`] on the first window, then slide it with
/// [`Rolling::roll`]; at the end of the data shrink it with
/// [`Rolling::roll_out`].
#[doc(alias = "checksum1")]
#[doc(alias = "get_checksum1")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    s1: u32,
    s2: u32,
    len: usize,
}

impl Rolling {
    /// The checksum state of `block`, the first window.
    #[must_use]
    pub fn new(block: &[u8]) -> Self {
        let (s1, s2) = sums(block);
        Rolling {
            s1,
            s2,
            len: block.len(),
        }
    }

    /// The current value, as [`checksum1`] of the window would give.
    #[must_use]
    pub fn value(&self) -> u32 {
        combine(self.s1, self.s2)
    }

    /// Slides the window one byte: `out` leaves at the front, `inn` enters
    /// at the end; the length stays the same.
    #[inline]
    pub fn roll(&mut self, out: u8, inn: u8) {
        let o = sx(out);
        self.s1 = self.s1.wrapping_sub(o).wrapping_add(sx(inn));
        self.s2 = self
            .s2
            .wrapping_sub(self.len_u32().wrapping_mul(o))
            .wrapping_add(self.s1);
    }

    /// Removes `out` from the front without adding a byte (the window
    /// shrinks at the end of the data). Does nothing on an empty window.
    #[inline]
    pub fn roll_out(&mut self, out: u8) {
        if self.len == 0 {
            return;
        }
        let o = sx(out);
        self.s1 = self.s1.wrapping_sub(o);
        self.s2 = self.s2.wrapping_sub(self.len_u32().wrapping_mul(o));
        self.len -= 1;
    }

    /// The window length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn len_u32(&self) -> u32 {
        // Only the value modulo 2^32 matters, as in C's unsigned arithmetic.
        #[allow(clippy::cast_possible_truncation)]
        let l = self.len as u32;
        l
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    /// Straight transcription of the definition, one byte per step.
    fn reference(data: &[u8]) -> u32 {
        let (mut s1, mut s2) = (0u32, 0u32);
        let n = data.len() as u32;
        for (i, &b) in data.iter().enumerate() {
            let x = i32::from(b as i8) as u32;
            s1 = s1.wrapping_add(x);
            s2 = s2.wrapping_add((n - i as u32).wrapping_mul(x));
        }
        (s1 & 0xffff) | (s2 << 16)
    }

    fn pseudo(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn table() {
        let rows: &[(&[u8], u32)] = &[
            (b"", 0),
            (b"\x01", 0x0001_0001),
            (b"\x01\x02", 0x0004_0003),
            (b"\xff", 0xffff_ffff),
            (b"\x80", 0xff80_ff80),
            (b"abc", reference(b"abc")),
        ];
        for &(data, want) in rows {
            assert_eq!(checksum1(data), want, "{data:?}");
        }
    }

    #[test]
    fn fast_path_matches_reference() {
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 700, 4099] {
            let d = pseudo(n, n as u32 + 7);
            assert_eq!(checksum1(&d), reference(&d), "n={n}");
        }
    }

    #[test]
    fn extreme_bytes_match_scalar() {
        // The most negative and positive signed bytes, long enough for the
        // sums to wrap: the vector kernel must neither saturate nor lose
        // the sign.
        for byte in [0x80u8, 0xff, 0x7f, 0x01, 0x00] {
            for n in [63, 64, 65, 127, 128, 129, 4096 + 17, (1 << 20) + 3] {
                let d = vec![byte; n];
                assert_eq!(sums(&d), sums_scalar(&d), "byte {byte:#x} n={n}");
                assert_eq!(checksum1(&d), reference(&d), "byte {byte:#x} n={n}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_path_is_taken_where_avx2_exists() {
        let d = pseudo(1000, 5);
        let got = crate::checksum::simd::sums_prefix(&d);
        assert_eq!(got.is_some(), std::is_x86_feature_detected!("avx2"));
        if let Some((_, _, used)) = got {
            assert_eq!(used, 960);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// The dispatched sums (vector kernel plus scalar tail) equal the
        /// portable ones and the definition, at any length and start
        /// offset (unaligned loads), with signed bytes throughout.
        #[test]
        fn dispatch_matches_scalar(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4200),
            start in 0usize..64,
            cut in 0usize..64,
        ) {
            let start = start.min(data.len());
            let end = data.len().saturating_sub(cut).max(start);
            let d = &data[start..end];
            proptest::prop_assert_eq!(sums(d), sums_scalar(d));
            proptest::prop_assert_eq!(checksum1(d), reference(d));
            if d.len() > 1 {
                let w = d.len() / 2;
                let mut r = Rolling::new(&d[..w]);
                r.roll(d[0], d[w]);
                proptest::prop_assert_eq!(r.value(), checksum1(&d[1..=w]));
            }
        }
    }

    #[test]
    fn rolling_matches_recompute() {
        let d = pseudo(3000, 99);
        let w = 257;
        let mut r = Rolling::new(&d[..w]);
        for i in 0..d.len() - w {
            assert_eq!(r.value(), checksum1(&d[i..i + w]), "offset {i}");
            r.roll(d[i], d[i + w]);
        }
        let start = d.len() - w;
        for i in start..d.len() {
            assert_eq!(r.value(), checksum1(&d[i..]), "tail offset {i}");
            assert_eq!(r.len(), d.len() - i);
            r.roll_out(d[i]);
        }
        assert!(r.is_empty());
        assert_eq!(r.value(), 0);
    }
}
