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

/// The sums of one block.
#[inline]
fn block_sum(cfg: &ChecksumConfig, s2: usize, block: &[u8]) -> BlockSum {
    BlockSum {
        sum1: checksum1(block),
        sum2: cfg.block_sum(block).truncated(s2),
    }
}

/// Whether a second thread can run at the same time (asked once).
fn has_two_cores() -> bool {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2))
}

/// Computes a [`Signature`] from basis data fed in pieces of any size, so
/// files larger than memory stream through.
///
/// Make it with the header the basis was sized with
/// ([`SumHead::for_file`]), [`feed`](Self::feed) the basis in order, then
/// [`finish`](Self::finish).
///
/// A piece that holds at least [`PARALLEL_MIN`](Self::PARALLEL_MIN) bytes
/// of whole blocks is summed on two threads (its first and second half of
/// blocks at once); the result is the same as in one thread. Feeding
/// pieces of [`PARALLEL_FEED`](Self::PARALLEL_FEED) bytes lets large
/// bases use both; smaller pieces are summed on the caller's thread.
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
    /// Whole blocks in one [`feed`](Self::feed) call, in bytes, from which
    /// a second thread sums half of them.
    pub const PARALLEL_MIN: usize = 4 << 20;

    /// The piece size to feed large bases in so that both halves of most
    /// pieces are summed at once (twice [`PARALLEL_MIN`](Self::PARALLEL_MIN),
    /// so a block left over between pieces does not drop a piece below it).
    pub const PARALLEL_FEED: usize = 8 << 20;

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
        self.blocks.push(block_sum(&self.cfg, self.s2, block));
        self.last_len = block.len();
    }

    /// Sums the full-length blocks at the start of `data` (nothing is
    /// pending) on two threads, and returns the rest; `None` (nothing
    /// done) when they are fewer than [`Self::PARALLEL_MIN`] bytes or
    /// there is one core. The last block of the basis, which may be short,
    /// is left to [`push`](Self::push).
    fn feed_parallel<'a>(&mut self, data: &'a [u8]) -> Option<&'a [u8]> {
        let bl = usize::try_from(self.head.blength).ok().filter(|&b| b > 0)?;
        let count = usize::try_from(self.head.count).ok()?;
        let mut n = count.saturating_sub(self.blocks.len()).min(data.len() / bl);
        if n > 0 && self.blocks.len() + n == count && self.head.remainder != 0 {
            n -= 1;
        }
        let span = n.checked_mul(bl)?;
        if n < 2 || span < Self::PARALLEL_MIN || !has_two_cores() {
            return None;
        }
        let (blocks, rest) = data.split_at_checked(span)?;
        let (first, second) = blocks.split_at_checked((n / 2) * bl)?;
        let (cfg, s2) = (self.cfg, self.s2);
        let sum_all = move |part: &[u8]| -> Vec<BlockSum> {
            part.chunks_exact(bl)
                .map(|b| block_sum(&cfg, s2, b))
                .collect()
        };
        let out = &mut self.blocks;
        out.reserve(n);
        std::thread::scope(|scope| {
            // A thread that cannot be started (or that failed) leaves its
            // half to this one: the result is the same, only slower.
            let other = std::thread::Builder::new()
                .name("ferrsync-sums".into())
                .spawn_scoped(scope, move || sum_all(second));
            out.extend(first.chunks_exact(bl).map(|b| block_sum(&cfg, s2, b)));
            match other.ok().map(std::thread::ScopedJoinHandle::join) {
                Some(Ok(v)) => out.extend(v),
                _ => out.extend(sum_all(second)),
            }
        });
        self.last_len = bl;
        Some(rest)
    }

    /// Hashes the next piece of the basis. Data past the length the
    /// header describes is ignored.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let Some(want) = self.next_len() else { return };
            if self.pending.is_empty() && data.len() >= want {
                if data.len() >= Self::PARALLEL_MIN {
                    if let Some(rest) = self.feed_parallel(data) {
                        data = rest;
                        continue;
                    }
                }
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

    /// Pieces big enough for two threads give the same signature as small
    /// pieces on one, block for block and in order, whether the last block
    /// is short or not, and also when the basis is shorter or longer than
    /// the header says.
    #[test]
    fn two_threads_equal_one() {
        let big = SignatureBuilder::PARALLEL_FEED;
        for (len, bl, kind) in [
            (2 * big + 12_345, 1000, StrongKind::Xxh128),
            (3 * big, 16_384, StrongKind::Md5),
            (SignatureBuilder::PARALLEL_MIN + 4096, 8, StrongKind::Xxh3),
        ] {
            let d = data(len);
            let cfg = ChecksumConfig::for_session(kind, 0x55aa, 31, true, true);
            let head = SumHead::for_file(len as u64, 31, 16, Some(bl), false);
            // The two-thread path is the one taken here.
            let mut probe = SignatureBuilder::new(head, cfg);
            assert_eq!(probe.feed_parallel(&d).is_some(), has_two_cores());
            let mut one = SignatureBuilder::new(head, cfg);
            for c in d.chunks(SignatureBuilder::PARALLEL_MIN / 2) {
                one.feed(c);
            }
            let one = one.finish();
            assert_eq!(one.blocks.len(), len.div_ceil(bl as usize));
            let by_block: Vec<BlockSum> = d
                .chunks(bl as usize)
                .map(|b| block_sum(&cfg, head.s2length as usize, b))
                .collect();
            assert_eq!(one.blocks, by_block, "len {len}");
            for step in [big, big + 1, len] {
                let mut two = SignatureBuilder::new(head, cfg);
                for c in d.chunks(step) {
                    two.feed(c);
                }
                assert_eq!(two.finish(), one, "len {len} step {step}");
            }
            // Basis shorter and longer than announced.
            let cut = len - len / 3;
            let mut short = SignatureBuilder::new(head, cfg);
            short.feed(&d[..cut]);
            let mut short1 = SignatureBuilder::new(head, cfg);
            for c in d[..cut].chunks(1 << 20) {
                short1.feed(c);
            }
            assert_eq!(short.finish(), short1.finish(), "len {len} cut");
            let mut long = SignatureBuilder::new(head, cfg);
            long.feed(&d);
            long.feed(&d);
            assert_eq!(long.finish(), one, "len {len} long");
        }
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
