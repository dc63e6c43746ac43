//! The sender's block search: new data against a basis signature, as a
//! stream of literal runs and block references.
//!
//! Layer: delta (L2). Uses `checksum`. Mirrors upstream match.c
//! (`build_hash_table`, `hash_search`, `matched`, `match_sums`), including
//! its hash table, chain order, `want_i` preference and literal flushing,
//! so that the token stream equals rsync's for the same input. In-place
//! mode follows upstream except for its realignment of runs of zero bytes.

use super::signature::Signature;
use super::token::CHUNK_SIZE;
use crate::checksum::{ChecksumConfig, Rolling, StrongSum};

/// Table size below which rsync uses its 16-bit bucket function.
const TRADITIONAL_TABLESIZE: usize = 1 << 16;
/// Candidates with an equal rolling sum tried at one offset before giving up.
const MAX_CANDIDATES: u32 = 1024;
/// Input appended to the window buffer per step of [`Matcher::feed`].
const FEED_STEP: usize = 1 << 20;

/// One piece of the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// Bytes to send as they are.
    Literal(&'a [u8]),
    /// Copy this basis block.
    Block(u32),
}

/// What a [`Matcher`] has found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchStats {
    /// Bytes emitted as literal data.
    pub literal_bytes: u64,
    /// Bytes covered by block references.
    pub matched_bytes: u64,
    /// Block references emitted.
    pub matched_blocks: u64,
}

/// Streams new data against a [`Signature`] and emits [`Token`]s.
///
/// Make it with [`Matcher::new`], optionally [`set_inplace`](Self::set_inplace),
/// [`feed`](Self::feed) the new file in order (pieces of any size), then
/// call [`finish`](Self::finish) once. The tokens cover the data exactly, in
/// order; the caller adds the end token and the whole-file checksum.
///
/// ```
/// use ferrsync::checksum::{ChecksumConfig, StrongKind};
/// use ferrsync::delta::{Matcher, SignatureBuilder, SumHead, Token};
/// let cfg = ChecksumConfig::for_session(StrongKind::Xxh128, 1, 32, true, true);
/// let basis: Vec<u8> = (0..128u8).collect();
/// let mut b = SignatureBuilder::new(SumHead::for_file(128, 32, 16, Some(32), false), cfg);
/// b.feed(&basis);
/// let mut m = Matcher::new(&b.finish(), cfg);
/// let mut tokens = Vec::new();
/// let mut out = |t: Token<'_>| tokens.push(match t { Token::Literal(d) => Err(d.to_vec()), Token::Block(i) => Ok(i) });
/// m.feed(b"XY", &mut out);
/// m.feed(&basis[32..96], &mut out);
/// m.finish(&mut out);
/// assert_eq!(tokens, [Err(b"XY".to_vec()), Ok(1), Ok(2)]);
/// ```
#[derive(Debug)]
pub struct Matcher {
    cfg: ChecksumConfig,
    blength: usize,
    s2: usize,
    count: usize,
    last_len: usize,
    sum1: Vec<u32>,
    /// `s2` bytes per block, flattened.
    sum2: Vec<u8>,
    /// Chain head per bucket, -1 for none.
    table: Vec<i32>,
    /// Next block in the same bucket, -1 at the end.
    chain: Vec<i32>,
    inplace: bool,
    same_offset: Vec<bool>,
    aligned_offset: u64,
    aligned_i: usize,
    /// New-file bytes from `buf_start` on.
    buf: Vec<u8>,
    buf_start: u64,
    offset: u64,
    last_match: u64,
    rolling: Option<Rolling>,
    want_i: usize,
    stats: MatchStats,
    finished: bool,
}

impl Matcher {
    /// Builds the hash table of `sig` (upstream `build_hash_table`). `cfg`
    /// must be the session's checksum settings, as used for the signature.
    #[must_use]
    pub fn new(sig: &Signature, cfg: ChecksumConfig) -> Self {
        let head = sig.head;
        let count = usize::try_from(head.count)
            .unwrap_or(0)
            .min(sig.blocks.len());
        let blength = usize::try_from(head.blength).unwrap_or(0);
        let count = if blength == 0 { 0 } else { count };
        let s2 = usize::try_from(head.s2length)
            .unwrap_or(0)
            .min(StrongSum::MAX_LEN);
        let last_len = u32::try_from(count)
            .ok()
            .and_then(|c| c.checked_sub(1))
            .and_then(|l| head.block_len(l))
            .unwrap_or(blength);
        let tablesize = (count / 8 * 10 + 11).max(TRADITIONAL_TABLESIZE);
        let mut table = vec![-1i32; tablesize];
        let mut chain = vec![-1i32; count];
        let mut sum1 = Vec::with_capacity(count);
        let mut sum2 = Vec::with_capacity(count * s2);
        for (i, (b, next)) in sig.blocks.iter().zip(chain.iter_mut()).enumerate() {
            sum1.push(b.sum1);
            let bytes = b.sum2.as_bytes();
            sum2.extend_from_slice(bytes.get(..s2).unwrap_or(bytes));
            sum2.extend(std::iter::repeat_n(0u8, s2.saturating_sub(bytes.len())));
            if let Some(slot) = table.get_mut(bucket(b.sum1, tablesize)) {
                *next = *slot;
                *slot = i32::try_from(i).unwrap_or(-1);
            }
        }
        Matcher {
            cfg,
            blength,
            s2,
            count,
            last_len,
            sum1,
            sum2,
            table,
            chain,
            inplace: false,
            same_offset: vec![false; count],
            aligned_offset: 0,
            aligned_i: 0,
            buf: Vec::new(),
            buf_start: 0,
            offset: 0,
            last_match: 0,
            rolling: None,
            want_i: 0,
            stats: MatchStats::default(),
            finished: false,
        }
    }

    /// In-place mode, for a receiver that overwrites its basis while
    /// reading it (`--inplace`): never reference a block that starts
    /// before the current offset unless it was matched at exactly its own
    /// offset, and prefer the block at exactly this offset. Set it before
    /// the first [`feed`](Self::feed).
    pub fn set_inplace(&mut self, on: bool) {
        self.inplace = on;
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> MatchStats {
        self.stats
    }

    /// Searches the next piece of the new file. Tokens are emitted as soon
    /// as they are certain; up to about `blength + 64 KiB` of data is held
    /// back. Does nothing after [`finish`](Self::finish).
    pub fn feed(&mut self, data: &[u8], out: &mut impl FnMut(Token<'_>)) {
        if self.finished {
            return;
        }
        for piece in data.chunks(FEED_STEP) {
            self.buf.extend_from_slice(piece);
            self.run(None, out);
            self.compact();
        }
    }

    /// Ends the data: emits everything still held back.
    pub fn finish(&mut self, out: &mut impl FnMut(Token<'_>)) {
        if self.finished {
            return;
        }
        let len = self.buf_start + self.buf.len() as u64;
        self.run(Some(len), out);
        if self.last_match < len {
            self.emit_literal(len, out);
        }
        self.finished = true;
        self.buf = Vec::new();
    }

    fn compact(&mut self) {
        let drop = usize::try_from(self.last_match.saturating_sub(self.buf_start)).unwrap_or(0);
        if drop > 0 && drop <= self.buf.len() {
            self.buf.drain(..drop);
            self.buf_start += drop as u64;
        }
    }

    fn rel(&self, abs: u64) -> usize {
        usize::try_from(abs.saturating_sub(self.buf_start)).unwrap_or(usize::MAX)
    }

    /// Emits `last_match..upto` as one literal run.
    fn emit_literal(&mut self, upto: u64, out: &mut impl FnMut(Token<'_>)) {
        let (a, b) = (self.rel(self.last_match), self.rel(upto));
        if let Some(data) = self.buf.get(a..b) {
            if !data.is_empty() {
                self.stats.literal_bytes += data.len() as u64;
                out(Token::Literal(data));
            }
        }
        self.last_match = upto;
    }

    /// Processes every offset that is decidable: all of them when `len`
    /// (the total length) is known, else those with enough lookahead.
    fn run(&mut self, len: Option<u64>, out: &mut impl FnMut(Token<'_>)) {
        let avail = self.buf_start + self.buf.len() as u64;
        if self.count == 0 {
            // No sums: literal data in CHUNK_SIZE steps (`match_sums`),
            // a step only once more data is known to follow it.
            let chunk = CHUNK_SIZE as u64;
            while avail - self.last_match > chunk {
                self.emit_literal(self.last_match + chunk, out);
            }
            return;
        }
        let blength = self.blength as u64;
        let chunk = CHUNK_SIZE as u64;
        loop {
            let o = self.offset;
            let (k, more_known) = match len {
                // end = len + 1 - last_len; offsets o < end are searched.
                Some(len) => {
                    if o + self.last_len as u64 > len {
                        return;
                    }
                    (
                        usize::try_from((len - o).min(blength)).unwrap_or(0),
                        o + blength < len,
                    )
                }
                None => {
                    if avail < o + blength + chunk + 1 {
                        return;
                    }
                    (self.blength, true)
                }
            };
            let rel = self.rel(o);
            let rolling = match self.rolling {
                Some(r) => r,
                None => {
                    let Some(window) = self.buf.get(rel..rel + k) else {
                        return;
                    };
                    Rolling::new(window)
                }
            };
            if let Some(i) = self.search(o, k, rolling.value(), rel) {
                self.emit_literal(o, out);
                out(Token::Block(u32::try_from(i).unwrap_or(u32::MAX)));
                self.stats.matched_blocks += 1;
                self.stats.matched_bytes += k as u64;
                self.offset = o + k as u64;
                self.last_match = self.offset;
                self.rolling = None;
                continue;
            }
            let backup = o - self.last_match;
            let Some(&first) = self.buf.get(rel) else {
                return;
            };
            let mut r = rolling;
            match self.buf.get(rel + k) {
                Some(&next) if more_known => r.roll(first, next),
                _ => r.roll_out(first),
            }
            self.rolling = Some(r);
            let far_from_end = match len {
                Some(len) => (len + 1 - self.last_len as u64).saturating_sub(o) > chunk,
                None => true,
            };
            if backup >= blength + chunk && far_from_end {
                self.emit_literal(o - blength, out);
            }
            self.offset = o + 1;
        }
    }

    fn strong_of(&self, i: usize) -> &[u8] {
        self.sum2.get(i * self.s2..(i + 1) * self.s2).unwrap_or(&[])
    }

    fn same_block(&self, i: usize, sum: u32, k: usize, strong: &[u8]) -> bool {
        self.sum1.get(i) == Some(&sum) && self.block_len(i) == k && self.strong_of(i) == strong
    }

    fn block_len(&self, i: usize) -> usize {
        if i + 1 == self.count {
            self.last_len
        } else {
            self.blength
        }
    }

    /// Looks up the window at offset `o` (length `k`, rolling value `sum`);
    /// returns the block to reference, if any (upstream `hash_search`).
    fn search(&mut self, o: u64, k: usize, sum: u32, rel: usize) -> Option<usize> {
        let b = bucket(sum, self.table.len());
        let mut i = *self.table.get(b)?;
        let mut prev: Option<usize> = None;
        let mut strong: Option<StrongSum> = None;
        let mut tried = 0u32;
        while let Ok(iu) = usize::try_from(i) {
            let next = *self.chain.get(iu)?;
            if self.inplace
                && (iu as u64) * (self.blength as u64) < o
                && !self.same_offset.get(iu).copied().unwrap_or(false)
            {
                // A block behind the write position can never be used again.
                match prev {
                    None => *self.table.get_mut(b)? = next,
                    Some(p) => *self.chain.get_mut(p)? = next,
                }
                i = next;
                continue;
            }
            prev = Some(iu);
            i = next;
            if self.sum1.get(iu) != Some(&sum) {
                continue;
            }
            tried += 1;
            if tried > MAX_CANDIDATES {
                return None;
            }
            if self.block_len(iu) != k {
                continue;
            }
            let st = match strong {
                Some(st) => st,
                None => {
                    let st = self
                        .cfg
                        .block_sum(self.buf.get(rel..rel + k)?)
                        .truncated(self.s2);
                    strong = Some(st);
                    st
                }
            };
            let st = st.as_bytes();
            if self.strong_of(iu) != st {
                continue;
            }
            return Some(self.choose(iu, o, k, sum, st));
        }
        None
    }

    /// Applies the in-place alignment and `want_i` preferences to a match.
    fn choose(&mut self, mut i: usize, o: u64, k: usize, sum: u32, st: &[u8]) -> usize {
        if self.inplace {
            let bl = self.blength as u64;
            while self.aligned_offset < o {
                self.aligned_offset += bl;
                self.aligned_i += 1;
            }
            if o == self.aligned_offset && self.aligned_i < self.count {
                let a = self.aligned_i;
                if i == a || self.same_block(a, sum, k, st) {
                    i = a;
                    if let Some(f) = self.same_offset.get_mut(i) {
                        *f = true;
                    }
                    self.want_i = i;
                }
            }
        }
        let w = self.want_i;
        if i != w
            && w < self.count
            && (!self.inplace
                || (w as u64) * (self.blength as u64) >= o
                || self.same_offset.get(w).copied().unwrap_or(false))
            && self.same_block(w, sum, k, st)
        {
            i = w;
        }
        self.want_i = i + 1;
        i
    }
}

/// Bucket of a rolling sum (`SUM2HASH` for the traditional table size,
/// `BIG_SUM2HASH` above it).
fn bucket(sum: u32, tablesize: usize) -> usize {
    if tablesize == TRADITIONAL_TABLESIZE {
        (((sum & 0xffff) + (sum >> 16)) & 0xffff) as usize
    } else {
        (sum as usize) % tablesize
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::checksum::StrongKind;
    use crate::delta::{SignatureBuilder, SumHead};

    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect()
    }

    /// Token shapes ("l<len>" / "b<index>") for `target` against `basis`.
    fn shapes(basis: &[u8], target: &[u8], block: Option<u32>, step: usize) -> Vec<String> {
        let cfg = ChecksumConfig::for_session(StrongKind::Md5, 42, 31, true, true);
        let head = if basis.is_empty() {
            SumHead::empty()
        } else {
            SumHead::for_file(basis.len() as u64, 31, 16, block, false)
        };
        let mut b = SignatureBuilder::new(head, cfg);
        b.feed(basis);
        let mut m = Matcher::new(&b.finish(), cfg);
        let mut v = Vec::new();
        let mut out = |t: Token<'_>| {
            v.push(match t {
                Token::Literal(d) => format!("l{}", d.len()),
                Token::Block(i) => format!("b{i}"),
            })
        };
        for piece in target.chunks(step) {
            m.feed(piece, &mut out);
        }
        m.finish(&mut out);
        v
    }

    #[test]
    fn literal_flush_and_chunking() {
        let basis = noise(7_000, 1);
        let unrelated = noise(100_000, 2);
        let mut tail_match = unrelated.clone();
        tail_match.extend_from_slice(&basis[..700]);
        let rows: &[(&[u8], &[u8], &[&str])] = &[
            // Pending literal reaches blength + 32768: flushed up to offset - blength.
            (&basis, &unrelated, &["l32768", "l32768", "l34464"]),
            (&basis, &tail_match, &["l32768", "l32768", "l34464", "b0"]),
            // No sums: CHUNK_SIZE steps.
            (b"", &unrelated, &["l32768", "l32768", "l32768", "l1696"]),
            (b"", &unrelated[..65536], &["l32768", "l32768"]),
            (b"", b"", &[]),
            (&basis, b"", &[]),
            (
                &basis,
                &basis,
                &["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"],
            ),
        ];
        for (n, &(basis, target, want)) in rows.iter().enumerate() {
            for step in [1, 999, 40_000, target.len().max(1)] {
                assert_eq!(
                    shapes(basis, target, None, step),
                    want,
                    "row {n} step {step}"
                );
            }
        }
    }

    #[test]
    fn want_i_prefers_the_next_block() {
        // Four identical blocks: the chain lists 3, 2, 1, 0, but runs form.
        let basis = [noise(32, 5), noise(32, 5), noise(32, 5), noise(32, 5)].concat();
        assert_eq!(
            shapes(&basis, &basis, Some(32), 7),
            ["b0", "b1", "b2", "b3"]
        );
        let twice = [basis.clone(), basis.clone()].concat();
        assert_eq!(
            shapes(&basis, &twice, Some(32), 7),
            ["b0", "b1", "b2", "b3", "b3", "b3", "b3", "b3"]
        );
    }
}
