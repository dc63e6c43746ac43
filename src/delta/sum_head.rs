//! The sum header: block count, block length, strong-sum length and
//! remainder, and how rsync sizes them.
//!
//! Layer: delta (L2). Uses `wire` for integers and limits.
//! Mirrors upstream generator.c `sum_sizes_sqroot` and io.c
//! `read_sum_head` / `write_sum_head`.

use crate::wire::{DecodeError, Decoded, Limits, ReadError, Reader, encode_i32};

/// Smallest block length rsync picks on its own (`BLOCK_SIZE`).
pub const BLOCK_SIZE: i32 = 700;
/// Largest block length from protocol 30 on (`MAX_BLOCK_SIZE`).
pub const MAX_BLOCK_SIZE: i32 = 1 << 17;
/// Largest block length before protocol 30 (`OLD_MAX_BLOCK_SIZE`).
pub const OLD_MAX_BLOCK_SIZE: i32 = 1 << 29;
/// Strong-sum bytes sent per block in a first attempt (`csum_length`).
pub const SHORT_SUM_LENGTH: i32 = 2;
/// Strong-sum bytes sent in a redo, at most (`SUM_LENGTH`).
pub const SUM_LENGTH: i32 = 16;
/// Bias of the strong-sum length formula (`BLOCKSUM_BIAS`).
const BLOCKSUM_BIAS: i32 = 10;

/// Largest block length a peer of `protocol` may announce.
#[must_use]
pub fn max_block_size(protocol: u8) -> i32 {
    if protocol >= 30 {
        MAX_BLOCK_SIZE
    } else {
        OLD_MAX_BLOCK_SIZE
    }
}

/// How a basis file is cut into blocks (upstream `struct sum_struct`
/// without the sums).
///
/// ```
/// use ferrsync::delta::SumHead;
/// use ferrsync::wire::{Decoded, Limits};
/// let h = SumHead::for_file(6000, 32, 16, None, false);
/// assert_eq!((h.count, h.blength, h.s2length, h.remainder), (9, 700, 2, 400));
/// let mut buf = Vec::new();
/// h.encode(&mut buf, 32);
/// assert_eq!(SumHead::decode(&buf, 32, 16, &Limits::default()),
///            Ok(Decoded::Done { value: h, used: 16 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SumHead {
    /// Number of blocks.
    pub count: i32,
    /// Length of every block but possibly the last.
    pub blength: i32,
    /// Strong-sum bytes sent per block.
    pub s2length: i32,
    /// Length of the last block when shorter than `blength`, else 0.
    pub remainder: i32,
}

impl SumHead {
    /// The all-zero header: no basis, the whole file comes as literal data.
    #[must_use]
    pub fn empty() -> SumHead {
        SumHead::default()
    }

    /// Sizes the blocks of a basis of `len` bytes as rsync's generator
    /// does (`sum_sizes_sqroot`). `digest_len` is the transfer checksum's
    /// digest length, `block_size` a `--block-size` choice, `redo` selects
    /// the long strong sums of a second attempt.
    ///
    /// When the count would not fit an int32 (beyond about 256 TiB at
    /// protocol 30+) the count is -1, as upstream, and the file cannot be
    /// sent as a delta.
    #[must_use]
    pub fn for_file(
        len: u64,
        protocol: u8,
        digest_len: usize,
        block_size: Option<u32>,
        redo: bool,
    ) -> SumHead {
        let len_i = i64::try_from(len).unwrap_or(i64::MAX);
        let blength: i32 = match block_size {
            Some(n) => i32::try_from(n).unwrap_or(i32::MAX).max(1),
            None if len_i <= i64::from(BLOCK_SIZE) * i64::from(BLOCK_SIZE) => BLOCK_SIZE,
            None => sqrt_block(len_i, max_block_size(protocol)),
        };
        let csum_length = if redo { SUM_LENGTH } else { SHORT_SUM_LENGTH };
        let max2 = SUM_LENGTH.min(i32::try_from(digest_len).unwrap_or(SUM_LENGTH));
        let s2length = if protocol < 27 {
            csum_length
        } else if redo {
            max2
        } else {
            let mut b = BLOCKSUM_BIAS;
            let mut l = len_i;
            loop {
                l >>= 1;
                if l == 0 {
                    break;
                }
                b += 2;
            }
            let mut c = blength;
            loop {
                c >>= 1;
                if c == 0 || b == 0 {
                    break;
                }
                b -= 1;
            }
            // C division truncates toward zero, as Rust's does.
            ((b + 1 - 32 + 7) / 8).max(csum_length).min(max2)
        };
        let bl = i64::from(blength);
        let remainder = len_i % bl;
        let count = len_i / bl + i64::from(remainder != 0);
        SumHead {
            count: i32::try_from(count).unwrap_or(-1),
            blength,
            s2length,
            // remainder < blength, an i32.
            remainder: i32::try_from(remainder).unwrap_or(0),
        }
    }

    /// Appends the header (`write_sum_head`); `s2length` only from
    /// protocol 27.
    pub fn encode(&self, out: &mut Vec<u8>, protocol: u8) {
        encode_i32(out, self.count);
        encode_i32(out, self.blength);
        if protocol >= 27 {
            encode_i32(out, self.s2length);
        }
        encode_i32(out, self.remainder);
    }

    /// Reads and checks a header (`read_sum_head`). Before protocol 27 the
    /// strong-sum length is not sent and is taken as 2.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] for a negative count, a block length above
    /// [`max_block_size`] or zero with blocks, a strong-sum length above
    /// `digest_len`, or a remainder outside `0..=blength`;
    /// [`DecodeError::TooLong`] for more blocks than `limits.max_sum_count`.
    pub fn decode(
        buf: &[u8],
        protocol: u8,
        digest_len: usize,
        limits: &Limits,
    ) -> Result<Decoded<SumHead>, DecodeError> {
        let mut r = Reader::new(buf);
        let head = match read_fields(&mut r, protocol) {
            Ok(h) => h,
            Err(e) => return e.into_decoded(),
        };
        head.validate(protocol, digest_len, limits)?;
        Ok(Decoded::Done {
            value: head,
            used: r.used(),
        })
    }

    /// Checks the rules of [`SumHead::decode`] on a header.
    ///
    /// # Errors
    /// As [`SumHead::decode`].
    pub fn validate(
        &self,
        protocol: u8,
        digest_len: usize,
        limits: &Limits,
    ) -> Result<(), DecodeError> {
        let invalid = |what, value: i32| {
            Err(DecodeError::Invalid {
                what,
                value: i64::from(value),
            })
        };
        if self.count < 0 {
            return invalid("sum count", self.count);
        }
        crate::wire::check_len(
            "sum count",
            u64::from(self.count.unsigned_abs()),
            limits.max_sum_count,
        )?;
        if self.blength < 0
            || self.blength > max_block_size(protocol)
            || (self.count > 0 && self.blength == 0)
        {
            return invalid("block length", self.blength);
        }
        if self.s2length < 0 || usize::try_from(self.s2length).map_or(true, |s| s > digest_len) {
            return invalid("strong-sum length", self.s2length);
        }
        if self.remainder < 0 || self.remainder > self.blength {
            return invalid("sum remainder", self.remainder);
        }
        Ok(())
    }

    /// Length of block `i`; `None` when `i >= count`.
    #[must_use]
    pub fn block_len(&self, i: u32) -> Option<usize> {
        let count = u32::try_from(self.count).ok()?;
        if i >= count {
            return None;
        }
        let len = if i + 1 == count && self.remainder != 0 {
            self.remainder
        } else {
            self.blength
        };
        usize::try_from(len).ok()
    }

    /// Offset of block `i` in the basis; `None` when `i >= count`.
    #[must_use]
    pub fn block_offset(&self, i: u32) -> Option<u64> {
        self.block_len(i)?;
        Some(u64::from(i) * u64::try_from(self.blength).ok()?)
    }

    /// Length of the basis the header describes.
    #[must_use]
    pub fn basis_len(&self) -> u64 {
        let Some(last) = self
            .count
            .checked_sub(1)
            .and_then(|l| u32::try_from(l).ok())
        else {
            return 0;
        };
        let off = self.block_offset(last).unwrap_or(0);
        off + self.block_len(last).map_or(0, |l| l as u64)
    }
}

/// Largest multiple of 8 whose square is at most `len`, within
/// `[BLOCK_SIZE, max]`; `len` is above `BLOCK_SIZE²`.
fn sqrt_block(len: i64, max: i32) -> i32 {
    let mut c: i64 = 1;
    let mut l = len;
    loop {
        l >>= 2;
        if l == 0 {
            break;
        }
        c <<= 1;
    }
    if c >= i64::from(max) {
        return max;
    }
    let mut blength: i64 = 0;
    while c >= 8 {
        blength |= c;
        if len < blength * blength {
            blength &= !c;
        }
        c >>= 1;
    }
    i32::try_from(blength.max(i64::from(BLOCK_SIZE))).unwrap_or(max)
}

fn read_fields(r: &mut Reader<'_>, protocol: u8) -> Result<SumHead, ReadError> {
    let count = r.i32()?;
    let blength = r.i32()?;
    let s2length = if protocol >= 27 {
        r.i32()?
    } else {
        SHORT_SUM_LENGTH
    };
    let remainder = r.i32()?;
    Ok(SumHead {
        count,
        blength,
        s2length,
        remainder,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn reference_table() {
        // (len, protocol, count, remainder, blength, s2length): section 3.4.
        let rows: &[(u64, u8, i32, i32, i32, i32)] = &[
            (1_000, 31, 2, 300, 700, 2),
            (6_000, 31, 9, 400, 700, 2),
            (490_000, 31, 700, 0, 700, 2),
            (490_001, 31, 701, 1, 700, 2),
            (1_000_000, 31, 1_000, 0, 1_000, 2),
            (10_000_000, 31, 3_165, 1_760, 3_160, 2),
            (50_000_000, 31, 7_079, 1_008, 7_064, 3),
            (GIB, 31, 32_768, 0, 32_768, 3),
            (10 * GIB, 31, 103_628, 3_008, 103_616, 4),
            (16 * GIB, 31, 131_072, 0, 131_072, 4),
            (100 * GIB, 30, 819_200, 0, 131_072, 5),
            (100 * GIB, 29, 327_680, 0, 327_680, 5),
        ];
        for &(len, p, count, remainder, blength, s2length) in rows {
            for proto in [p, if p >= 30 { 32 } else { 27 }] {
                if len < 16 * GIB || (p >= 30) == (proto >= 30) {
                    let want = SumHead {
                        count,
                        blength,
                        s2length,
                        remainder,
                    };
                    assert_eq!(
                        SumHead::for_file(len, proto, 16, None, false),
                        want,
                        "len {len} proto {proto}"
                    );
                }
            }
        }
    }

    #[test]
    fn sizing_options() {
        let h = SumHead::for_file(10_000, 31, 16, Some(64), false);
        assert_eq!((h.count, h.blength, h.remainder), (157, 64, 16));
        assert_eq!(SumHead::for_file(6_000, 31, 16, None, true).s2length, 16);
        assert_eq!(SumHead::for_file(6_000, 31, 8, None, true).s2length, 8);
        assert_eq!(SumHead::for_file(6_000, 26, 16, None, false).s2length, 2);
        assert_eq!(SumHead::for_file(0, 31, 16, None, false).count, 0);
    }

    #[test]
    fn decode_rules() {
        let lim = Limits::default();
        let ok = |h: SumHead, p: u8| {
            let mut b = Vec::new();
            h.encode(&mut b, p);
            SumHead::decode(&b, p, 16, &lim)
        };
        let rows: &[(SumHead, u8, bool)] = &[
            (
                SumHead {
                    count: 9,
                    blength: 700,
                    s2length: 2,
                    remainder: 400,
                },
                32,
                true,
            ),
            (SumHead::empty(), 32, true),
            (
                SumHead {
                    count: -1,
                    blength: 700,
                    s2length: 2,
                    remainder: 0,
                },
                32,
                false,
            ),
            (
                SumHead {
                    count: 1,
                    blength: 0,
                    s2length: 2,
                    remainder: 0,
                },
                32,
                false,
            ),
            (
                SumHead {
                    count: 1,
                    blength: MAX_BLOCK_SIZE + 1,
                    s2length: 2,
                    remainder: 0,
                },
                30,
                false,
            ),
            (
                SumHead {
                    count: 1,
                    blength: MAX_BLOCK_SIZE + 1,
                    s2length: 2,
                    remainder: 0,
                },
                29,
                true,
            ),
            (
                SumHead {
                    count: 1,
                    blength: 700,
                    s2length: 17,
                    remainder: 0,
                },
                32,
                false,
            ),
            (
                SumHead {
                    count: 1,
                    blength: 700,
                    s2length: -1,
                    remainder: 0,
                },
                32,
                false,
            ),
            (
                SumHead {
                    count: 1,
                    blength: 700,
                    s2length: 2,
                    remainder: 701,
                },
                32,
                false,
            ),
            (
                SumHead {
                    count: 1,
                    blength: 700,
                    s2length: 2,
                    remainder: -3,
                },
                32,
                false,
            ),
        ];
        for &(h, p, good) in rows {
            let r = ok(h, p);
            assert_eq!(r.is_ok(), good, "{h:?} p{p}: {r:?}");
            if good {
                assert_eq!(r, Ok(Decoded::Done { value: h, used: 16 }));
            }
        }
        let small = Limits {
            max_sum_count: 8,
            ..lim
        };
        let mut b = Vec::new();
        SumHead {
            count: 9,
            blength: 700,
            s2length: 2,
            remainder: 400,
        }
        .encode(&mut b, 32);
        assert!(matches!(
            SumHead::decode(&b, 32, 16, &small),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(matches!(
            SumHead::decode(&b[..5], 32, 16, &lim),
            Ok(Decoded::NeedMore(_))
        ));
        let mut old = Vec::new();
        SumHead {
            count: 2,
            blength: 700,
            s2length: 2,
            remainder: 0,
        }
        .encode(&mut old, 26);
        assert_eq!(old.len(), 12);
        assert!(matches!(
            SumHead::decode(&old, 26, 16, &lim),
            Ok(Decoded::Done { used: 12, .. })
        ));
    }

    #[test]
    fn block_geometry() {
        let h = SumHead {
            count: 3,
            blength: 10,
            s2length: 2,
            remainder: 4,
        };
        assert_eq!(
            (h.block_len(0), h.block_len(2), h.block_len(3)),
            (Some(10), Some(4), None)
        );
        assert_eq!((h.block_offset(2), h.block_offset(3)), (Some(20), None));
        assert_eq!(h.basis_len(), 24);
        assert_eq!(SumHead::empty().basis_len(), 0);
    }
}
