//! The compressed token stream (`-z`): zlib, zlibx, zstd and lz4.
//!
//! Layer: delta (L2, pure compute). Mirrors upstream token.c
//! `send_deflated_token` / `recv_deflated_token`, `send_zstd_token` /
//! `recv_zstd_token` and `send_compressed_token` / `recv_compressed_token`
//! (transfer document section 4.3).
//!
//! All four share one framing of flag bytes:
//!
//! ```text
//! 00                 END_FLAG
//! 01xxxxxx lo        DEFLATED_DATA, n = (xxxxxx << 8) | lo bytes follow (<= 16383)
//! 0x20 int32         TOKEN_LONG: block t (0x01..0x3f with bit 0 clear, as rsync reads it)
//! 0x21 int32 u16le   TOKENRUN_LONG: blocks t ..= t + r
//! 10xxxxxx           TOKEN_REL: block last + xxxxxx
//! 11xxxxxx u16le     TOKENRUN_REL: blocks b ..= b + r, b = last + xxxxxx
//! ```
//!
//! Both sides live for the whole session: zstd is one never-ended frame
//! across all files, zlib/zlibx are reset at each file start.

use crate::wire::{DecodeError, Decoded, Limits};
use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

/// `END_FLAG`.
pub const END_FLAG: u8 = 0x00;
/// `TOKEN_LONG`.
pub const TOKEN_LONG: u8 = 0x20;
/// `TOKENRUN_LONG`.
pub const TOKENRUN_LONG: u8 = 0x21;
/// `DEFLATED_DATA` (high bits; low 6 bits are the length's high part).
pub const DEFLATED_DATA: u8 = 0x40;
/// `TOKEN_REL`.
pub const TOKEN_REL: u8 = 0x80;
/// `TOKENRUN_REL`.
pub const TOKENRUN_REL: u8 = 0xC0;
/// Largest payload of one `DEFLATED_DATA` record (`MAX_DATA_COUNT`).
pub const MAX_DATA_COUNT: usize = 16383;

/// Literal bytes fed to deflate at a time (rsync `CHUNK_SIZE`).
const CHUNK: usize = 32768;
/// Output piece size of the receiver's decoders (rsync's
/// `AVAIL_OUT_SIZE(CHUNK_SIZE)` is a little larger; any size works).
const OUT_PIECE: usize = 32768;
/// The lz4 receive buffer: max(LZ4_compressBound(32768), 16385).
const LZ4_OUT: usize = 32768 + 32768 / 255 + 16;
/// Largest piece of a matched block inserted into zlib history at once.
const PIECE: usize = 0xffff;
/// The inflater's window (raw deflate, 15 window bits, as rsync's
/// `inflateInit2(-15)`): only the last this many bytes of output are ever
/// referenced again.
const WINDOW: usize = 1 << 15;
/// Size the receiver's pending history may grow to before its front is
/// dropped (amortises the move of the kept window).
const PENDING_CAP: usize = 4 * WINDOW;

/// A token compression algorithm negotiated for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Classic `-z`: raw deflate, matched blocks go into the history.
    Zlib,
    /// "New compression" (`-zz`): raw deflate without history insertion.
    Zlibx,
    /// zstd: one endless frame for the whole session.
    Zstd,
    /// lz4: independent raw blocks.
    Lz4,
}

impl Compression {
    /// Parses a negotiation / `--compress-choice` name (`none` is not a
    /// compression and gives `None`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "zlib" => Some(Self::Zlib),
            "zlibx" => Some(Self::Zlibx),
            "zstd" => Some(Self::Zstd),
            "lz4" => Some(Self::Lz4),
            _ => None,
        }
    }

    /// The name used on the wire in negotiation.
    pub fn name(self) -> &'static str {
        match self {
            Self::Zlib => "zlib",
            Self::Zlibx => "zlibx",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
        }
    }

    /// The level the sender uses (rsync `init_compression_level`): zlib and
    /// zlibx default 6 clamped to 1..=9, zstd default 3 clamped to the
    /// library's range, lz4 has none (0).
    ///
    /// Note: with zlib/zlibx a requested level of 0 turns compression off
    /// completely on both sides; see [`Compression::disabled_by_level`].
    pub fn effective_level(self, level: Option<i32>) -> i32 {
        match self {
            Self::Zlib | Self::Zlibx => level.unwrap_or(6).clamp(1, 9),
            Self::Zstd => {
                let r = zstd::compression_level_range();
                level.unwrap_or(3).clamp(*r.start(), *r.end())
            }
            Self::Lz4 => 0,
        }
    }

    /// rsync quirk (4.4): `--compress-level=0` with zlib/zlibx means no
    /// compression at all (the uncompressed token format is used).
    pub fn disabled_by_level(self, level: Option<i32>) -> bool {
        matches!(self, Self::Zlib | Self::Zlibx) && level == Some(0)
    }
}

/// Writes a block run (first `start`, `extra` more blocks) relative to
/// `last`, as rsync's senders do.
fn write_run(out: &mut Vec<u8>, last: u32, start: u32, extra: u16) {
    let rel = i64::from(start) - i64::from(last);
    if (0..=63).contains(&rel) {
        // rel is 0..=63.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let r = rel as u8;
        out.push(if extra == 0 { TOKEN_REL } else { TOKENRUN_REL } + r);
    } else {
        out.push(if extra == 0 {
            TOKEN_LONG
        } else {
            TOKENRUN_LONG
        });
        out.extend_from_slice(&start.to_le_bytes());
    }
    if extra != 0 {
        out.extend_from_slice(&extra.to_le_bytes());
    }
}

/// Writes `data` as `DEFLATED_DATA` records (nothing for empty data).
fn write_records(out: &mut Vec<u8>, data: &[u8]) {
    for c in data.chunks(MAX_DATA_COUNT) {
        write_record(out, c);
    }
}

/// One record; `c.len() <= MAX_DATA_COUNT`.
fn write_record(out: &mut Vec<u8>, c: &[u8]) {
    let n = c.len().min(MAX_DATA_COUNT);
    #[allow(clippy::cast_possible_truncation)]
    {
        out.push(DEFLATED_DATA | (n >> 8) as u8);
        out.push(n as u8);
    }
    out.extend_from_slice(c.get(..n).unwrap_or(c));
}

/// The bytes of one matched block that go into zlib history, in pieces as
/// rsync inserts them: pieces of at most 65 535 bytes, each taken from the
/// start of the block when `protocol < 31` (the duplicate-piece quirk).
fn history_pieces(data: &[u8], protocol: u8) -> impl Iterator<Item = &[u8]> {
    let n = data.len();
    let count = n.div_ceil(PIECE);
    (0..count).map(move |i| {
        let len = (n - i * PIECE).min(PIECE);
        let from = if protocol >= 31 { i * PIECE } else { 0 };
        data.get(from..from + len).unwrap_or(&[])
    })
}

enum Enc {
    Deflate {
        c: Box<Compress>,
        history: bool,
    },
    Zstd {
        e: Box<zstd::zstd_safe::CCtx<'static>>,
        /// rsync's persistent output buffer (`zstd_out_buff`).
        buf: Vec<u8>,
        pos: usize,
    },
    Lz4,
}

/// The sender side of the compressed token stream; one per session.
///
/// Call [`literal`](Self::literal) and [`block`](Self::block) in file
/// order, then [`end_file`](Self::end_file) after each file.
///
/// ```
/// use ferrsync::delta::{Compression, CToken, TokenCompressor, TokenDecompressor};
/// use ferrsync::wire::{Decoded, Limits};
/// let mut tx = TokenCompressor::new(Compression::Zstd, None, 31);
/// let mut wire = Vec::new();
/// tx.literal(&mut wire, b"hello hello hello");
/// tx.block(&mut wire, 0, b"basis block");
/// tx.end_file(&mut wire);
/// let mut rx = TokenDecompressor::new(Compression::Zstd, 31, Limits::default());
/// let mut at = 0;
/// let mut got = Vec::new();
/// loop {
///     let Decoded::Done { value, used } = rx.decode(&wire[at..]).unwrap() else { panic!() };
///     at += used;
///     match value {
///         CToken::End => break,
///         CToken::Block(i) => { rx.block_data(b"basis block"); got.push(CToken::Block(i)) }
///         t => got.push(t),
///     }
/// }
/// assert_eq!(got, [CToken::Literal(b"hello hello hello".to_vec()), CToken::Block(0)]);
/// ```
pub struct TokenCompressor {
    kind: Compression,
    protocol: u8,
    enc: Enc,
    /// End of the last run written in this file ("last").
    last: u32,
    /// Pending run: first block and number of extra blocks.
    run: Option<(u32, u32)>,
    /// Literal data was compressed without a flush since the last flush.
    flush_pending: bool,
    /// Scratch output buffer.
    scratch: Vec<u8>,
    /// Broken encoder state (a library error): everything after is lost.
    failed: bool,
    /// The other deflate compressor (level 0 while the normal one is in
    /// use, or the normal one while a `--skip-compress` file is sent).
    spare: Option<Box<Compress>>,
    /// Whether the level-0 compressor is the active one.
    skipping: bool,
}

impl std::fmt::Debug for TokenCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCompressor")
            .field("kind", &self.kind)
            .field("protocol", &self.protocol)
            .field("last", &self.last)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl TokenCompressor {
    /// A sender for the session. `level` as given by `--compress-level`
    /// (clamped per [`Compression::effective_level`]).
    pub fn new(kind: Compression, level: Option<i32>, protocol: u8) -> Self {
        let lvl = kind.effective_level(level);
        let enc = match kind {
            Compression::Zlib | Compression::Zlibx => Enc::Deflate {
                #[allow(clippy::cast_sign_loss)]
                c: Box::new(Compress::new(flate2::Compression::new(lvl as u32), false)),
                history: kind == Compression::Zlib,
            },
            Compression::Zstd => {
                let mut e = zstd::zstd_safe::CCtx::create();
                let _ = e.set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(lvl));
                Enc::Zstd {
                    e: Box::new(e),
                    buf: vec![0; MAX_DATA_COUNT],
                    pos: 0,
                }
            }
            Compression::Lz4 => Enc::Lz4,
        };
        TokenCompressor {
            kind,
            protocol,
            enc,
            last: 0,
            run: None,
            flush_pending: false,
            scratch: Vec::new(),
            failed: false,
            spare: None,
            skipping: false,
        }
    }

    /// Chooses the level for the next file: `skip` for a file whose suffix
    /// is in the `--skip-compress` list (rsync then deflates it at level 0,
    /// stored blocks; zstd and lz4 keep their level, as in rsync). Call
    /// before the file's first token.
    pub fn begin_file(&mut self, skip: bool) {
        let Enc::Deflate { c, .. } = &mut self.enc else {
            return;
        };
        if skip == self.skipping {
            return;
        }
        let other = self
            .spare
            .take()
            .unwrap_or_else(|| Box::new(Compress::new(flate2::Compression::new(0), false)));
        self.spare = Some(std::mem::replace(c, other));
        self.skipping = skip;
    }

    /// The algorithm.
    pub fn kind(&self) -> Compression {
        self.kind
    }

    /// The underlying compressor reported an error (not expected with
    /// valid use); the stream written since is unusable.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn write_pending_run(&mut self, out: &mut Vec<u8>) {
        if let Some((start, extra)) = self.run.take() {
            // extra <= 65535 by construction.
            write_run(
                out,
                self.last,
                start,
                u16::try_from(extra).unwrap_or(u16::MAX),
            );
            self.last = start + extra;
        }
    }

    /// Literal data of the current file. May be compressed without a
    /// flush; the flush happens at the next block or the end of the file.
    pub fn literal(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.write_pending_run(out);
        self.compress(out, data, false);
        self.flush_pending = true;
    }

    /// A reference to basis block `index`; `block_data` is the block's bytes
    /// (needed for the zlib history; ignored by the others).
    pub fn block(&mut self, out: &mut Vec<u8>, index: u32, block_data: &[u8]) {
        if self.flush_pending {
            self.compress(out, &[], true);
            self.flush_pending = false;
        }
        self.run = match self.run {
            Some((start, extra))
                if u64::from(start) + u64::from(extra) + 1 == u64::from(index) && extra < 65535 =>
            {
                Some((start, extra + 1))
            }
            Some(_) => {
                self.write_pending_run(out);
                Some((index, 0))
            }
            None => Some((index, 0)),
        };
        self.insert_history(block_data);
    }

    /// Ends the current file: pending run, pending literal (flushed),
    /// `END_FLAG`; the per-file state is reset.
    pub fn end_file(&mut self, out: &mut Vec<u8>) {
        self.write_pending_run(out);
        if self.flush_pending {
            self.compress(out, &[], true);
            self.flush_pending = false;
        }
        out.push(END_FLAG);
        self.last = 0;
        self.run = None;
        if let Enc::Deflate { c, .. } = &mut self.enc {
            c.reset();
        }
    }

    fn insert_history(&mut self, data: &[u8]) {
        let protocol = self.protocol;
        let Enc::Deflate { c, history: true } = &mut self.enc else {
            return;
        };
        if self.scratch.len() < PIECE + 1024 {
            self.scratch.resize(PIECE + 1024, 0);
        }
        for piece in history_pieces(data, protocol) {
            let mut rest = piece;
            loop {
                let before_in = c.total_in();
                let before_out = c.total_out();
                if c.compress(rest, &mut self.scratch, FlushCompress::Sync)
                    .is_err()
                {
                    self.failed = true;
                    return;
                }
                let used = usize::try_from(c.total_in() - before_in).unwrap_or(rest.len());
                let made = usize::try_from(c.total_out() - before_out).unwrap_or(0);
                rest = rest.get(used..).unwrap_or(&[]);
                // Done when all input is in and the output did not fill up.
                if rest.is_empty() && made < self.scratch.len() {
                    break;
                }
                if used == 0 && made == 0 {
                    self.failed = true;
                    return;
                }
            }
        }
    }

    /// Compresses `data`; with `flush`, makes everything so far decodable.
    fn compress(&mut self, out: &mut Vec<u8>, data: &[u8], flush: bool) {
        if self.failed {
            return;
        }
        match &mut self.enc {
            Enc::Lz4 => {
                lz4_records(out, data);
            }
            Enc::Zstd { e, buf, pos } => {
                // rsync send_zstd_token: one persistent output buffer of
                // MAX_DATA_COUNT, written when full or on every flush step.
                use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
                use zstd::zstd_safe::{InBuffer, OutBuffer};
                let mode = if flush {
                    ZSTD_EndDirective::ZSTD_e_flush
                } else {
                    ZSTD_EndDirective::ZSTD_e_continue
                };
                let mut input = InBuffer::around(data);
                loop {
                    let mut ob = OutBuffer::around_pos(buf.as_mut_slice(), *pos);
                    let r = e.compress_stream2(&mut ob, &mut input, mode);
                    *pos = ob.pos();
                    let Ok(remaining) = r else {
                        self.failed = true;
                        return;
                    };
                    if *pos == MAX_DATA_COUNT || flush {
                        write_record(out, buf.get(..*pos).unwrap_or(&[]));
                        *pos = 0;
                    }
                    // rsync: loop while input is left or the flush is
                    // incomplete.
                    if input.pos >= data.len() && remaining == 0 {
                        break;
                    }
                }
            }
            Enc::Deflate { c, .. } => {
                // rsync: output buffer of MAX_DATA_COUNT; on a flush the
                // last 4 bytes (00 00 ff ff) are cut off.
                let mut z = std::mem::take(&mut self.scratch);
                z.clear();
                let mut rest = data;
                loop {
                    let piece_len = rest.len().min(CHUNK);
                    let (piece, after) = rest.split_at(piece_len);
                    let mode = if after.is_empty() && flush {
                        FlushCompress::Sync
                    } else {
                        FlushCompress::None
                    };
                    let mut p = piece;
                    loop {
                        if z.capacity() - z.len() < 1024 {
                            z.reserve(64 * 1024);
                        }
                        let before_in = c.total_in();
                        if c.compress_vec(p, &mut z, mode).is_err() {
                            self.failed = true;
                            self.scratch = z;
                            return;
                        }
                        let used = usize::try_from(c.total_in() - before_in).unwrap_or(p.len());
                        p = p.get(used..).unwrap_or(&[]);
                        // Finished when input is in and output did not fill
                        // the spare capacity.
                        if p.is_empty() && z.capacity() - z.len() >= 1024 {
                            break;
                        }
                    }
                    // Emit whole records as soon as they are complete (keep
                    // 4 bytes back in case they are the sync marker).
                    if z.len() > MAX_DATA_COUNT + 4 {
                        let full = (z.len() - 4) / MAX_DATA_COUNT * MAX_DATA_COUNT;
                        write_records(out, z.get(..full).unwrap_or(&[]));
                        z.drain(..full);
                    }
                    rest = after;
                    if rest.is_empty() {
                        break;
                    }
                }
                if flush {
                    if z.ends_with(&[0, 0, 0xff, 0xff]) {
                        z.truncate(z.len() - 4);
                    } else {
                        // Cannot happen with a deflate sync flush.
                        self.failed = true;
                    }
                }
                write_records(out, &z);
                z.clear();
                self.scratch = z;
            }
        }
    }
}

/// lz4: each record one independent block of at most 16 383 input bytes,
/// halved until the compressed form fits a record.
fn lz4_records(out: &mut Vec<u8>, data: &[u8]) {
    let mut rest = data;
    let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(MAX_DATA_COUNT)];
    while !rest.is_empty() {
        let mut take = rest.len().min(MAX_DATA_COUNT);
        loop {
            let src = rest.get(..take).unwrap_or(rest);
            match lz4_flex::block::compress_into(src, &mut buf) {
                Ok(n) if n <= MAX_DATA_COUNT => {
                    write_record(out, buf.get(..n).unwrap_or(&[]));
                    break;
                }
                _ if take > 1 => take /= 2,
                // One byte always compresses to 2 bytes.
                _ => break,
            }
        }
        rest = rest.get(take..).unwrap_or(&[]);
    }
}

/// One token of the compressed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CToken {
    /// Decompressed literal data (one piece; several may follow).
    Literal(Vec<u8>),
    /// Copy basis block n.
    Block(u32),
    /// End of this file's data.
    End,
}

enum Dec {
    Deflate { d: Box<Decompress>, history: bool },
    Zstd(Box<zstd::zstd_safe::DCtx<'static>>),
    Lz4,
}

/// The receiver side of the compressed token stream; one per session.
///
/// [`decode`](Self::decode) is sans-IO: it reads at most one item from the
/// front of `buf` and commits its state only when it returns `Done`. One
/// `DEFLATED_DATA` record may give several `Literal` pieces (each at most
/// min(32 KiB, `limits.max_token_len`) bytes, or 32,912 bytes for lz4,
/// rsync's lz4 receive buffer; a piece may be empty when a
/// record carries only headers); the later pieces and the later blocks of a
/// run come with `used == 0`, so keep calling (even with an empty `buf`)
/// until `End`. After every `Block` the caller must pass the block's bytes
/// to [`block_data`](Self::block_data) before decoding further (zlib keeps
/// them as history).
///
/// Flags 0x01..=0x3F other than 0x20/0x21 are read as rsync reads them (the
/// LONG form, with a run count when bit 0 is set).
pub struct TokenDecompressor {
    kind: Compression,
    protocol: u8,
    limits: Limits,
    dec: Dec,
    /// The current block number ("last").
    token: u32,
    /// Blocks of a run still to return.
    run_left: u32,
    /// Compressed payload of the current record not yet fully inflated.
    input: Vec<u8>,
    in_pos: usize,
    /// Inflating the current record may still produce output.
    draining: bool,
    /// Data records were seen since the last non-data flag (zlib sync).
    inflated: bool,
    /// At the start of a file (zlib reset pending).
    at_file_start: bool,
    /// zlib: the history bytes of the matched blocks since the last data
    /// record, not yet inserted into the inflater (only their last
    /// [`WINDOW`] bytes matter; see [`block_data`](Self::block_data)).
    pending: Vec<u8>,
    /// Output of the history insertion (checked against its input).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for TokenDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenDecompressor")
            .field("kind", &self.kind)
            .field("protocol", &self.protocol)
            .field("token", &self.token)
            .field("run_left", &self.run_left)
            .finish_non_exhaustive()
    }
}

fn lost(msg: &'static str) -> DecodeError {
    DecodeError::Protocol(msg)
}

/// Largest zstd window the decoder accepts (2^27 = 128 MiB, the library
/// default and what level 22 uses).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

fn zstd_error(code: usize) -> DecodeError {
    // ZSTD_error_frameParameter_windowTooLarge ("Frame requires too much
    // memory for decoding"): a hostile or foreign frame header.
    if zstd::zstd_safe::get_error_name(code).contains("memory") {
        lost("zstd frame asks for a window over 128 MiB; refused")
    } else {
        lost("zstd decompression failed")
    }
}

impl TokenDecompressor {
    /// A receiver for the session.
    pub fn new(kind: Compression, protocol: u8, limits: Limits) -> Self {
        let dec = match kind {
            Compression::Zlib | Compression::Zlibx => Dec::Deflate {
                d: Box::new(Decompress::new(false)),
                history: kind == Compression::Zlib,
            },
            Compression::Zstd => {
                let mut z = zstd::zstd_safe::DCtx::create();
                // The library default, made explicit: the memory bound of
                // the decoder (a frame asking for more is refused). rsync
                // uses the default too, and its level 22 needs 2^27.
                let _ = z.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
                    ZSTD_WINDOW_LOG_MAX,
                ));
                Dec::Zstd(Box::new(z))
            }
            Compression::Lz4 => Dec::Lz4,
        };
        TokenDecompressor {
            kind,
            protocol,
            limits,
            dec,
            token: 0,
            run_left: 0,
            input: Vec::new(),
            in_pos: 0,
            draining: false,
            inflated: false,
            at_file_start: true,
            pending: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The algorithm.
    pub fn kind(&self) -> Compression {
        self.kind
    }

    fn piece_cap(&self) -> usize {
        OUT_PIECE.min(self.limits.max_token_len).max(1)
    }

    /// Reads the next token.
    ///
    /// # Errors
    /// [`DecodeError::Protocol`] for corrupt compressed data or a lost
    /// zlib sync, [`DecodeError::TooLong`] for an lz4 record that would
    /// exceed the limits.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<CToken>, DecodeError> {
        if self.draining {
            if let Some(piece) = self.drain()? {
                return Ok(Decoded::Done {
                    value: CToken::Literal(piece),
                    used: 0,
                });
            }
        }
        if self.run_left > 0 {
            self.run_left -= 1;
            self.token = self
                .token
                .checked_add(1)
                .ok_or(lost("block run overflows"))?;
            return Ok(Decoded::Done {
                value: CToken::Block(self.token),
                used: 0,
            });
        }
        let Some(&flag) = buf.first() else {
            return Ok(Decoded::NeedMore(1));
        };
        if self.at_file_start {
            if let Dec::Deflate { d, .. } = &mut self.dec {
                d.reset(false);
            }
            self.at_file_start = false;
            self.token = 0;
            self.inflated = false;
            // History of the previous file (the inflater is reset).
            self.pending.clear();
        }
        if flag & 0xC0 == DEFLATED_DATA {
            let Some(&lo) = buf.get(1) else {
                return Ok(Decoded::NeedMore(1));
            };
            let n = (usize::from(flag & 0x3f) << 8) | usize::from(lo);
            let Some(payload) = buf.get(2..2 + n) else {
                return Ok(Decoded::NeedMore(2 + n - buf.len()));
            };
            let used = 2 + n;
            if let Dec::Lz4 = self.dec {
                let cap = LZ4_OUT.min(self.limits.max_token_len.max(1));
                let mut out = vec![0u8; cap];
                let got = lz4_flex::block::decompress_into(payload, &mut out)
                    .map_err(|_| lost("lz4 decompression failed"))?;
                if got == 0 {
                    // rsync's receiver would take this as the end of file.
                    return Err(lost("empty lz4 record"));
                }
                out.truncate(got);
                return Ok(Decoded::Done {
                    value: CToken::Literal(out),
                    used,
                });
            }
            self.insert_pending()?;
            self.input.clear();
            self.input.extend_from_slice(payload);
            self.in_pos = 0;
            self.draining = true;
            self.inflated = true;
            let piece = self.drain()?.unwrap_or_default();
            return Ok(Decoded::Done {
                value: CToken::Literal(piece),
                used,
            });
        }
        // A token flag: check it is complete before touching any state.
        let (block, run, used) = if flag == END_FLAG {
            (None, 0u32, 1usize)
        } else if flag & TOKEN_REL != 0 {
            let b = u64::from(self.token) + u64::from(flag & 0x3f);
            let b = u32::try_from(b).map_err(|_| lost("block number overflows"))?;
            if flag & 0x40 != 0 {
                let Some(r) = buf.get(1..3).and_then(|r| <[u8; 2]>::try_from(r).ok()) else {
                    return Ok(Decoded::NeedMore(3 - buf.len()));
                };
                (Some(b), u32::from(u16::from_le_bytes(r)), 3)
            } else {
                (Some(b), 0, 1)
            }
        } else {
            let Some(t) = buf.get(1..5).and_then(|t| <[u8; 4]>::try_from(t).ok()) else {
                return Ok(Decoded::NeedMore(5 - buf.len()));
            };
            let t = i32::from_le_bytes(t);
            let b = u32::try_from(t).map_err(|_| DecodeError::Invalid {
                what: "block number",
                value: i64::from(t),
            })?;
            if flag & 1 != 0 {
                let Some(r) = buf.get(5..7).and_then(|r| <[u8; 2]>::try_from(r).ok()) else {
                    return Ok(Decoded::NeedMore(7 - buf.len()));
                };
                (Some(b), u32::from(u16::from_le_bytes(r)), 7)
            } else {
                (Some(b), 0, 5)
            }
        };
        if let Some(b) = block {
            if u64::from(b) + u64::from(run) > u64::from(u32::MAX) {
                return Err(lost("block run overflows"));
            }
        }
        self.end_of_data()?;
        match block {
            None => {
                self.at_file_start = true;
                self.run_left = 0;
                Ok(Decoded::Done {
                    value: CToken::End,
                    used,
                })
            }
            Some(b) => {
                self.token = b;
                self.run_left = run;
                Ok(Decoded::Done {
                    value: CToken::Block(b),
                    used,
                })
            }
        }
    }

    /// zlib/zlibx: after data records, feed the cut-off sync marker.
    fn end_of_data(&mut self) -> Result<(), DecodeError> {
        if !self.inflated {
            return Ok(());
        }
        self.inflated = false;
        let Dec::Deflate { d, .. } = &mut self.dec else {
            return Ok(());
        };
        let mut out = [0u8; 64];
        let before_in = d.total_in();
        let before_out = d.total_out();
        let st = d
            .decompress(&[0, 0, 0xff, 0xff], &mut out, FlushDecompress::Sync)
            .map_err(|_| lost("decompressor lost sync"))?;
        if st == Status::StreamEnd || d.total_out() != before_out || d.total_in() - before_in != 4 {
            return Err(lost("decompressor lost sync"));
        }
        Ok(())
    }

    /// The next piece of output of the current record, or `None` when it
    /// is fully consumed and produces nothing more.
    fn drain(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        let cap = self.piece_cap();
        // Written into its spare capacity: no zeroing of the piece.
        let mut out = Vec::with_capacity(cap);
        loop {
            let input = self.input.get(self.in_pos..).unwrap_or(&[]);
            let (used, made) = match &mut self.dec {
                Dec::Deflate { d, .. } => {
                    let bi = d.total_in();
                    let bo = d.total_out();
                    let st = d
                        .decompress_vec(input, &mut out, FlushDecompress::None)
                        .map_err(|_| lost("inflate failed: corrupt compressed data"))?;
                    if st == Status::StreamEnd {
                        return Err(lost("inflate: unexpected end of deflate stream"));
                    }
                    (
                        usize::try_from(d.total_in() - bi).unwrap_or(0),
                        usize::try_from(d.total_out() - bo).unwrap_or(0),
                    )
                }
                Dec::Zstd(z) => {
                    use zstd::zstd_safe::{InBuffer, OutBuffer};
                    let mut ib = InBuffer::around(input);
                    let mut ob = OutBuffer::around(&mut out);
                    z.decompress_stream(&mut ob, &mut ib).map_err(zstd_error)?;
                    (ib.pos, ob.pos())
                }
                Dec::Lz4 => (input.len(), 0),
            };
            self.in_pos += used;
            let done_in = self.in_pos >= self.input.len();
            if made == 0 {
                if done_in {
                    self.draining = false;
                    return Ok(None);
                }
                if used == 0 {
                    self.draining = false;
                    return Err(lost("compressed record not consumed"));
                }
                // Input consumed without output (headers): go on.
                continue;
            }
            if done_in && made < cap {
                // The decoder had room left, so it has nothing pending.
                self.draining = false;
            }
            return Ok(Some(out));
        }
    }

    /// The bytes of the matched block just copied by the receiver (after
    /// each `Block` token). zlib puts them into the inflater's history;
    /// the others ignore them.
    ///
    /// rsync's receiver inserts every matched block into its inflater as
    /// stored blocks, in pieces of at most 65,535 bytes (before protocol 31
    /// each piece taken from the start of the block). The inflater is at a
    /// block boundary then (after the sync marker), and a stored block
    /// changes nothing but the window, which only keeps the last 32 KiB of
    /// output. So the blocks between two data records are collected here
    /// and only their last 32 KiB are inserted, once, before the next data
    /// record: the same window as inserting them one by one.
    pub fn block_data(&mut self, data: &[u8]) {
        if !matches!(self.dec, Dec::Deflate { history: true, .. }) {
            return;
        }
        for piece in history_pieces(data, self.protocol) {
            self.push_history(piece);
        }
    }

    /// Appends `piece` to the pending history, keeping at least its last
    /// [`WINDOW`] bytes.
    fn push_history(&mut self, piece: &[u8]) {
        let p = &mut self.pending;
        if piece.len() >= WINDOW {
            p.clear();
            p.extend_from_slice(piece.get(piece.len() - WINDOW..).unwrap_or(piece));
            return;
        }
        if p.len() + piece.len() > PENDING_CAP {
            // Keep the bytes that, with `piece`, make up the window.
            let keep = WINDOW - piece.len();
            p.drain(..p.len().saturating_sub(keep));
        }
        p.extend_from_slice(piece);
    }

    /// Inserts the last [`WINDOW`] bytes of the pending history into the
    /// inflater as one stored block and checks it came out unchanged.
    fn insert_pending(&mut self) -> Result<(), DecodeError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Dec::Deflate { d, history: true } = &mut self.dec else {
            self.pending.clear();
            return Ok(());
        };
        let data = self
            .pending
            .get(self.pending.len().saturating_sub(WINDOW)..)
            .unwrap_or(&[]);
        // data.len() <= WINDOW < 65536.
        let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
        let [l0, l1] = len.to_le_bytes();
        let [n0, n1] = (!len).to_le_bytes();
        let hdr = [0u8, l0, l1, n0, n1];
        self.scratch.clear();
        self.scratch.reserve(data.len());
        for part in [&hdr[..], data] {
            let mut rest = part;
            while !rest.is_empty() {
                let bi = d.total_in();
                let bo = d.total_out();
                match d.decompress_vec(rest, &mut self.scratch, FlushDecompress::None) {
                    Ok(Status::Ok | Status::BufError) => {}
                    _ => return Err(lost("inflate failed while inserting a matched block")),
                }
                let used = usize::try_from(d.total_in() - bi).unwrap_or(0);
                let made = usize::try_from(d.total_out() - bo).unwrap_or(0);
                if used == 0 && made == 0 {
                    return Err(lost("inflate stalled while inserting a matched block"));
                }
                rest = rest.get(used..).unwrap_or(&[]);
            }
        }
        if self.scratch.as_slice() != data {
            return Err(lost(
                "decompressor lost sync while inserting a matched block",
            ));
        }
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `stream` the way the receiver does, stopping once more than
    /// `budget` literal bytes came out (the receiver refuses the file
    /// there). Returns (literal bytes, largest piece, first error).
    fn drive(
        d: &mut TokenDecompressor,
        stream: &[u8],
        budget: u64,
    ) -> (u64, usize, Option<DecodeError>) {
        let mut rest = stream;
        let (mut total, mut largest) = (0u64, 0usize);
        loop {
            if total > budget {
                return (total, largest, None);
            }
            match d.decode(rest) {
                Ok(Decoded::Done { value, used }) => {
                    rest = &rest[used..];
                    match value {
                        CToken::Literal(p) => {
                            total += p.len() as u64;
                            largest = largest.max(p.len());
                        }
                        CToken::Block(_) => d.block_data(&[0; 64]),
                        CToken::End => return (total, largest, None),
                    }
                }
                Ok(Decoded::NeedMore(n)) => panic!("stream cut short, {n} more"),
                Err(e) => return (total, largest, Some(e)),
            }
        }
    }

    /// Payload sizes of the `DEFLATED_DATA` records of a stream.
    fn record_sizes(mut s: &[u8]) -> Vec<usize> {
        let mut v = Vec::new();
        while let [flag, lo, ..] = *s {
            if flag & 0xC0 != DEFLATED_DATA {
                break;
            }
            let n = (usize::from(flag & 0x3f) << 8) | usize::from(lo);
            v.push(n);
            s = &s[2 + n..];
        }
        v
    }

    /// A zstd frame header (no content size, window 2^`log`) followed by
    /// RLE blocks of 128 KiB: 4 bytes each on the wire, as many as fit
    /// one record. Expands about 32,000-fold.
    fn zstd_rle_bomb(window_log: u8) -> Vec<u8> {
        let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, (window_log - 10) << 3];
        let block: u32 = (1 << 1) | ((128 * 1024) << 3); // RLE, not last
        while frame.len() + 4 <= MAX_DATA_COUNT {
            frame.extend_from_slice(&block.to_le_bytes()[..3]);
            frame.push(b'A');
        }
        let mut out = Vec::new();
        write_record(&mut out, &frame);
        out.push(END_FLAG);
        out
    }

    #[test]
    fn a_zlib_bomb_comes_out_in_bounded_pieces() {
        let zeros = vec![0u8; 64 << 20];
        for kind in [Compression::Zlib, Compression::Zlibx] {
            let mut c = TokenCompressor::new(kind, None, 31);
            let mut stream = Vec::new();
            c.literal(&mut stream, &zeros);
            c.end_file(&mut stream);
            // 64 MiB in a few records of at most 16383 bytes each.
            assert!(stream.len() < 128 * 1024, "{kind:?}: {}", stream.len());
            assert!(record_sizes(&stream).iter().all(|&n| n <= MAX_DATA_COUNT));
            for (max_token_len, cap) in [(usize::MAX, OUT_PIECE), (4096, 4096)] {
                let limits = Limits {
                    max_token_len,
                    ..Limits::default()
                };
                let mut d = TokenDecompressor::new(kind, 31, limits);
                let (total, largest, err) = drive(&mut d, &stream, u64::MAX);
                assert_eq!(err, None, "{kind:?}");
                assert_eq!(total, zeros.len() as u64, "{kind:?}");
                assert!(largest <= cap, "{kind:?}: piece of {largest} > {cap}");
                // A receiver that stops early (its size limit) may do so
                // in the middle of a record.
                let mut d = TokenDecompressor::new(kind, 31, limits);
                let (total, largest, _) = drive(&mut d, &stream, 1 << 20);
                assert!(total <= (1 << 20) + cap as u64 && largest <= cap);
            }
        }
    }

    #[test]
    fn a_zstd_bomb_comes_out_in_bounded_pieces() {
        let stream = zstd_rle_bomb(17);
        assert!(stream.len() <= MAX_DATA_COUNT + 3);
        let mut d = TokenDecompressor::new(Compression::Zstd, 31, Limits::default());
        // One 16 KiB record holds about 500 MiB; take 64 MiB of it.
        let (total, largest, err) = drive(&mut d, &stream, 64 << 20);
        assert_eq!(err, None);
        assert!(total > 64 << 20 && total <= (64 << 20) + OUT_PIECE as u64);
        assert!(largest <= OUT_PIECE, "piece of {largest}");
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        for log in [28u8, 31] {
            let stream = zstd_rle_bomb(log);
            let mut d = TokenDecompressor::new(Compression::Zstd, 31, Limits::default());
            let (total, _, err) = drive(&mut d, &stream, u64::MAX);
            assert_eq!(total, 0);
            let err = err.expect("refused");
            assert!(err.to_string().contains("window over 128 MiB"), "{err}");
        }
        // The largest window rsync's own levels produce is accepted.
        let mut d = TokenDecompressor::new(Compression::Zstd, 31, Limits::default());
        let (total, _, err) = drive(&mut d, &zstd_rle_bomb(27), 1 << 20);
        assert_eq!(err, None);
        assert!(total > 1 << 20);
    }

    #[test]
    fn an_lz4_record_past_the_receive_buffer_is_refused() {
        // 1 MiB of zeros as one lz4 block: about 4 KiB, fits a record.
        let block = lz4_flex::block::compress(&vec![0u8; 1 << 20]);
        assert!(block.len() <= MAX_DATA_COUNT);
        let mut stream = Vec::new();
        write_record(&mut stream, &block);
        stream.push(END_FLAG);
        let mut d = TokenDecompressor::new(Compression::Lz4, 31, Limits::default());
        let (total, _, err) = drive(&mut d, &stream, u64::MAX);
        assert_eq!(total, 0);
        assert!(err.expect("refused").to_string().contains("lz4"));
    }

    /// Pseudo-random bytes (xorshift), deterministic per seed.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Decodes a whole stream of one file, copying `basis` blocks of
    /// `blen` bytes for `Block` tokens (and passing them to `block_data`).
    fn decode_file(d: &mut TokenDecompressor, stream: &[u8], basis: &[u8], blen: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = stream;
        loop {
            match d.decode(rest).expect("decodes") {
                Decoded::Done { value, used } => {
                    rest = &rest[used..];
                    match value {
                        CToken::Literal(p) => out.extend_from_slice(&p),
                        CToken::Block(i) => {
                            let b = &basis[i as usize * blen..][..blen];
                            d.block_data(b);
                            out.extend_from_slice(b);
                        }
                        CToken::End => return out,
                    }
                }
                Decoded::NeedMore(n) => panic!("stream cut short, {n} more"),
            }
        }
    }

    /// Runs of matched blocks (short, over 32 KiB, over the 65,535-byte
    /// piece) between literals that copy from the blocks just matched, so
    /// the literals compress only through the history: the receiver's
    /// window must be the one the sender had, at every protocol (before 31
    /// with rsync's duplicate-piece insertion).
    #[test]
    fn many_matched_blocks_between_literals_round_trip() {
        for protocol in [29u8, 30, 31, 32] {
            for (blen, count) in [(64usize, 2000usize), (700, 300), (8192, 40), (70_000, 6)] {
                let basis = noise(blen as u64 * 31 + 7, blen * count);
                let mut c = TokenCompressor::new(Compression::Zlib, None, protocol);
                let mut stream = Vec::new();
                let mut want = Vec::new();
                let mut literal_bytes = 0usize;
                let mut next = 0usize;
                let mut round = 0u64;
                while next < count {
                    round += 1;
                    // A run of 1, 5, 60 or 600 blocks (as far as they go).
                    let run = [1usize, 5, 60, 600][round as usize % 4].min(count - next);
                    for i in next..next + run {
                        let b = &basis[i * blen..][..blen];
                        c.block(&mut stream, u32::try_from(i).unwrap(), b);
                        want.extend_from_slice(b);
                    }
                    next += run;
                    // Literal: a little noise, then copies of the output's
                    // last 2,000 bytes and of bytes 20,000 back.
                    let mut lit = noise(round, 40);
                    let end = want.len();
                    lit.extend_from_slice(&want[end.saturating_sub(2000)..end]);
                    let far = end.saturating_sub(20_000);
                    lit.extend_from_slice(&want[far..(far + 1500).min(end)]);
                    literal_bytes += lit.len();
                    c.literal(&mut stream, &lit);
                    want.extend_from_slice(&lit);
                }
                c.end_file(&mut stream);
                assert!(!c.is_failed());
                // The copies came through the history, not as literals
                // (except before protocol 31 with blocks over one piece:
                // the history then holds the start of the block twice).
                assert!(
                    (protocol < 31 && blen > PIECE) || stream.len() < literal_bytes / 4,
                    "p{protocol} {blen}: stream {} for {literal_bytes} literal bytes",
                    stream.len()
                );
                let mut d = TokenDecompressor::new(Compression::Zlib, protocol, Limits::default());
                let got = decode_file(&mut d, &stream, &basis, blen);
                assert!(got == want, "p{protocol} block {blen}: output differs");
                // The same decoder takes a second file (reset history).
                let mut stream2 = Vec::new();
                c.block(&mut stream2, 0, &basis[..blen]);
                c.literal(&mut stream2, &basis[..blen.min(3000)]);
                c.end_file(&mut stream2);
                let got = decode_file(&mut d, &stream2, &basis, blen);
                let mut want2 = basis[..blen].to_vec();
                want2.extend_from_slice(&basis[..blen.min(3000)]);
                assert!(
                    got == want2,
                    "p{protocol} block {blen}: second file differs"
                );
            }
        }
    }
}
