//! Block signatures: the rolling and strong sum of every basis block.
//!
//! Layer: delta (L2). Uses `checksum` for the sums and `wire` for the
//! block codec. Mirrors upstream generator.c `generate_and_send_sums` and
//! sender.c `receive_sums`.

use super::sum_head::SumHead;
use crate::checksum::{ChecksumConfig, StrongSum, checksum1};
use crate::wire::{DecodeError, Decoded, encode_i32};

/// The sums of one basis block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSum {
    /// Rolling checksum ([`checksum1`]).
    pub sum1: u32,
    /// Strong checksum, truncated to the header's `s2length`.
    pub sum2: StrongSum,
}

/// A sum header and the sums of its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Block geometry.
    pub head: SumHead,
    /// One entry per block, in basis order.
    pub blocks: Vec<BlockSum>,
}

impl Signature {
    /// Appends the block sums as the generator sends them: int32 `sum1`,
    /// then `s2length` bytes of `sum2` per block (the header is encoded
    /// separately with [`SumHead::encode`]).
    ///
    /// ```
    /// use ferrsync::checksum::{ChecksumConfig, StrongKind};
    /// use ferrsync::delta::{Signature, SignatureBuilder, SumHead};
    /// use ferrsync::wire::Decoded;
    /// let head = SumHead::for_file(1000, 32, 16, None, false);
    /// let mut b = SignatureBuilder::new(head, ChecksumConfig::for_session(StrongKind::Md5, 7, 32, true, true));
    /// b.feed(&[5u8; 1000]);
    /// let sig = b.finish();
    /// let mut wire = Vec::new();
    /// sig.encode_blocks(&mut wire);
    /// assert_eq!(wire.len(), 2 * (4 + 2));
    /// let Ok(Decoded::Done { value, used: 12 }) = Signature::decode_blocks(&wire, &sig.head) else { panic!() };
    /// assert_eq!(value, sig.blocks);
    /// ```
    pub fn encode_blocks(&self, out: &mut Vec<u8>) {
        let s2 = usize::try_from(self.head.s2length).unwrap_or(0);
        out.reserve(self.blocks.len() * (4 + s2));
        for b in &self.blocks {
            // The bit pattern of sum1 goes on the wire as an int32.
            #[allow(clippy::cast_possible_wrap)]
            encode_i32(out, b.sum1 as i32);
            let bytes = b.sum2.as_bytes();
            out.extend_from_slice(bytes.get(..s2).unwrap_or(bytes));
            // A strong sum shorter than s2length (impossible from a valid
            // config) is padded so the stream stays aligned.
            out.extend(std::iter::repeat_n(0u8, s2.saturating_sub(bytes.len())));
        }
    }

    /// Reads all `head.count` block sums at once (`receive_sums`). `head`
    /// must already be validated ([`SumHead::decode`] does it).
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] when the header has a negative count or a
    /// strong-sum length over 20 bytes.
    pub fn decode_blocks(
        buf: &[u8],
        head: &SumHead,
    ) -> Result<Decoded<Vec<BlockSum>>, DecodeError> {
        let count = usize::try_from(head.count).map_err(|_| DecodeError::Invalid {
            what: "sum count",
            value: i64::from(head.count),
        })?;
        let s2 = usize::try_from(head.s2length)
            .ok()
            .filter(|&s| s <= StrongSum::MAX_LEN)
            .ok_or(DecodeError::Invalid {
                what: "strong-sum length",
                value: i64::from(head.s2length),
            })?;
        let each = 4 + s2;
        let need = count.checked_mul(each).ok_or(DecodeError::Invalid {
            what: "sum count",
            value: i64::from(head.count),
        })?;
        if buf.len() < need {
            return Ok(Decoded::NeedMore(need - buf.len()));
        }
        let mut blocks = Vec::with_capacity(count);
        for rec in buf.chunks_exact(each).take(count) {
            let (s1, s2b) = rec.split_at(4);
            let sum1 = u32::from_le_bytes([
                s1.first().copied().unwrap_or(0),
                s1.get(1).copied().unwrap_or(0),
                s1.get(2).copied().unwrap_or(0),
                s1.get(3).copied().unwrap_or(0),
            ]);
            let sum2 =
                StrongSum::from_slice(s2b).ok_or(DecodeError::Protocol("strong sum too long"))?;
            blocks.push(BlockSum { sum1, sum2 });
        }
        Ok(Decoded::Done {
            value: blocks,
            used: need,
        })
    }
}

/// Computes a [`Signature`] from basis data fed in pieces of any size, so
/// files larger than memory stream through.
///
/// Make it with the header the basis was sized with
/// ([`SumHead::for_file`]), [`feed`](Self::feed) the basis in order, then
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct SignatureBuilder {
    head: SumHead,
    cfg: ChecksumConfig,
    s2: usize,
    pending: Vec<u8>,
    last_len: usize,
    blocks: Vec<BlockSum>,
}

impl SignatureBuilder {
    /// Starts a signature of a basis described by `head`.
    #[must_use]
    pub fn new(head: SumHead, cfg: ChecksumConfig) -> Self {
        let cap = usize::try_from(head.count).unwrap_or(0).min(1 << 20);
        SignatureBuilder {
            head,
            cfg,
            s2: usize::try_from(head.s2length).unwrap_or(0),
            pending: Vec::new(),
            last_len: 0,
            blocks: Vec::with_capacity(cap),
        }
    }

    fn next_len(&self) -> Option<usize> {
        self.head.block_len(u32::try_from(self.blocks.len()).ok()?)
    }

    fn push(&mut self, block: &[u8]) {
        let sum1 = checksum1(block);
        let sum2 = self.cfg.block_sum(block).truncated(self.s2);
        self.blocks.push(BlockSum { sum1, sum2 });
        self.last_len = block.len();
    }

    /// Hashes the next piece of the basis. Data past the length the
    /// header describes is ignored.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let Some(want) = self.next_len() else { return };
            if self.pending.is_empty() && data.len() >= want {
                let (block, rest) = data.split_at(want);
                self.push(block);
                data = rest;
                continue;
            }
            let take = (want - self.pending.len()).min(data.len());
            let (part, rest) = data.split_at(take);
            self.pending.extend_from_slice(part);
            data = rest;
            if self.pending.len() == want {
                let block = std::mem::take(&mut self.pending);
                self.push(&block);
                self.pending = block;
                self.pending.clear();
            }
        }
    }

    /// The signature. If the basis turned out shorter than the header
    /// said, the header is corrected to the blocks actually seen.
    #[must_use]
    pub fn finish(mut self) -> Signature {
        let mut head = self.head;
        if !self.pending.is_empty() {
            let block = std::mem::take(&mut self.pending);
            self.push(&block);
        }
        if usize::try_from(head.count).ok() != Some(self.blocks.len()) {
            head.count = i32::try_from(self.blocks.len()).unwrap_or(i32::MAX);
            let last = i32::try_from(self.last_len).unwrap_or(0);
            head.remainder = if self.blocks.is_empty() || last == head.blength {
                0
            } else {
                last
            };
        }
        Signature {
            head,
            blocks: self.blocks,
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::checksum::StrongKind;

    fn cfg() -> ChecksumConfig {
        ChecksumConfig::for_session(StrongKind::Md5, 0x1234, 31, true, true)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 13) as u8).collect()
    }

    #[test]
    fn piecewise_equals_whole() {
        let d = data(5000);
        let head = SumHead::for_file(5000, 31, 16, Some(64), false);
        let mut whole = SignatureBuilder::new(head, cfg());
        whole.feed(&d);
        let whole = whole.finish();
        assert_eq!(whole.blocks.len(), 79);
        for step in [1, 3, 63, 64, 65, 1000] {
            let mut b = SignatureBuilder::new(head, cfg());
            for c in d.chunks(step) {
                b.feed(c);
            }
            assert_eq!(b.finish(), whole, "step {step}");
        }
        assert_eq!(whole.blocks[0].sum1, checksum1(&d[..64]));
        assert_eq!(whole.blocks[78].sum1, checksum1(&d[4992..]));
        assert_eq!(
            whole.blocks[1].sum2,
            cfg().block_sum(&d[64..128]).truncated(2)
        );
    }

    #[test]
    fn short_and_long_basis() {
        let d = data(1000);
        let head = SumHead::for_file(1000, 31, 16, Some(100), false);
        let mut b = SignatureBuilder::new(head, cfg());
        b.feed(&d[..250]);
        let sig = b.finish();
        assert_eq!(
            (sig.head.count, sig.head.remainder, sig.blocks.len()),
            (3, 50, 3)
        );
        let mut b = SignatureBuilder::new(head, cfg());
        b.feed(&d[..300]);
        let sig = b.finish();
        assert_eq!((sig.head.count, sig.head.remainder), (3, 0));
        let mut b = SignatureBuilder::new(head, cfg());
        b.feed(&d);
        b.feed(&d);
        assert_eq!(b.finish().head, head);
    }

    #[test]
    fn blocks_round_trip_and_need_more() {
        let d = data(3000);
        let head = SumHead::for_file(3000, 31, 16, None, true);
        let mut b = SignatureBuilder::new(head, cfg());
        b.feed(&d);
        let sig = b.finish();
        let mut w = Vec::new();
        sig.encode_blocks(&mut w);
        assert_eq!(w.len(), 5 * 20);
        assert_eq!(
            Signature::decode_blocks(&w, &head),
            Ok(Decoded::Done {
                value: sig.blocks.clone(),
                used: 100
            })
        );
        assert_eq!(
            Signature::decode_blocks(&w[..99], &head),
            Ok(Decoded::NeedMore(1))
        );
        let bad = SumHead {
            s2length: 21,
            ..head
        };
        assert!(Signature::decode_blocks(&w, &bad).is_err());
    }
}
