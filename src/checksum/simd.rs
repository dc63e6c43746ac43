//! The AVX2 kernel of `checksum1`, and its runtime dispatch.
//!
//! Layer: checksum (L1, pure compute). The crate's one use of `unsafe` for
//! checksums lives here: unaligned 32-byte loads, and the call of the
//! `avx2` function after the CPU was seen to have AVX2. Everything else is
//! safe code; the result is bit-identical to the scalar `sums` in
//! `rolling.rs` (a proptest there compares them).
//!
//! The idea is upstream's SIMD `get_checksum1` (and Adler-32's): for a
//! 64-byte step starting with sums `(s1, s2)`,
//! `s2' = s2 + 64·s1 + Σ (64 − i)·x[i]` and `s1' = s1 + Σ x[i]`.
//! `maddubs` multiplies the unsigned weights by the **signed** data bytes
//! and adds neighbouring pairs into 16-bit lanes; `madd` by ones widens
//! pairs of those into 32-bit lanes. Lanes add with wrapping, so the lane
//! totals are exact modulo 2^32, as C's unsigned sums are.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256i, _mm_add_epi32, _mm_cvtsi128_si32, _mm_shuffle_epi32, _mm256_add_epi16,
    _mm256_add_epi32, _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_loadu_si256,
    _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_set1_epi8, _mm256_set1_epi16, _mm256_setr_epi8,
    _mm256_setzero_si256, _mm256_slli_epi32,
};

/// Bytes per step of the vector loop.
pub(super) const STEP: usize = 64;

/// `Some((s1, s2, used))` over the first `used` bytes of `data` (a multiple
/// of [`STEP`]) when this CPU has AVX2, else `None`. The caller finishes
/// the remaining bytes with the scalar prefix rule.
#[inline]
pub(super) fn sums_prefix(data: &[u8]) -> Option<(u32, u32, usize)> {
    if !std::is_x86_feature_detected!("avx2") {
        return None;
    }
    // SAFETY: `sums_avx2` requires only the `avx2` target feature, and the
    // check just above saw that this CPU has it (the standard library
    // caches the CPUID answer). It takes a plain slice and touches no
    // memory outside it.
    Some(unsafe { sums_avx2(data) })
}

/// Sum of the eight 32-bit lanes, wrapping.
#[target_feature(enable = "avx2")]
fn hsum(v: __m256i) -> u32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    // The bit pattern is the unsigned lane total.
    #[allow(clippy::cast_sign_loss)]
    let r = _mm_cvtsi128_si32(s) as u32;
    r
}

#[target_feature(enable = "avx2")]
fn sums_avx2(data: &[u8]) -> (u32, u32, usize) {
    // Weights 64..=33 for the first 32 bytes of a step, 32..=1 for the
    // second; as unsigned bytes for `maddubs`.
    #[allow(clippy::cast_possible_wrap)]
    let w_hi = _mm256_setr_epi8(
        64, 63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42,
        41, 40, 39, 38, 37, 36, 35, 34, 33,
    );
    let w_lo = _mm256_setr_epi8(
        32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10,
        9, 8, 7, 6, 5, 4, 3, 2, 1,
    );
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    // v1: lanes of s1; vp: lanes of the s1 values before each step (times
    // 64 at the end); v2: lanes of the in-step weighted sums.
    let mut v1 = _mm256_setzero_si256();
    let mut vp = _mm256_setzero_si256();
    let mut v2 = _mm256_setzero_si256();
    let mut steps = data.chunks_exact(STEP);
    for step in &mut steps {
        let (a, b) = step.split_at(STEP / 2);
        // SAFETY: `a` and `b` are 32 bytes each (halves of an exact
        // 64-byte chunk), and `loadu` has no alignment requirement.
        let (xa, xb) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(b.as_ptr().cast::<__m256i>()),
            )
        };
        vp = _mm256_add_epi32(vp, v1);
        // Pair sums of signed bytes: |.| <= 256 each, no saturation.
        let t = _mm256_add_epi16(
            _mm256_maddubs_epi16(ones8, xa),
            _mm256_maddubs_epi16(ones8, xb),
        );
        v1 = _mm256_add_epi32(v1, _mm256_madd_epi16(t, ones16));
        // Weighted pair sums: within [-24320, 24193], no saturation.
        let u = _mm256_add_epi16(
            _mm256_maddubs_epi16(w_hi, xa),
            _mm256_maddubs_epi16(w_lo, xb),
        );
        v2 = _mm256_add_epi32(v2, _mm256_madd_epi16(u, ones16));
    }
    let used = data.len() - steps.remainder().len();
    let s1 = hsum(v1);
    let s2 = hsum(_mm256_add_epi32(_mm256_slli_epi32::<6>(vp), v2));
    (s1, s2, used)
}
