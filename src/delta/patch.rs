//! Rebuilding a file from tokens and basis blocks.
//!
//! Layer: delta (L2). Uses `checksum` for the whole-file checksum and
//! `std::io` traits only for the sink and the basis the caller supplies
//! (no file is opened here). Mirrors upstream receiver.c `receive_data`.

use super::sum_head::SumHead;
use crate::checksum::{ChecksumConfig, FileHasher, StrongSum};
use std::io::{self, Write};

/// Random-access reads of the basis file.
pub trait BasisRead {
    /// Fills `buf` with the basis bytes at `offset`.
    ///
    /// # Errors
    /// [`io::ErrorKind::UnexpectedEof`] when the basis ends before `buf`
    /// is full; any other read error.
    fn read_block(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl BasisRead for std::fs::File {
    fn read_block(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl BasisRead for &std::fs::File {
    fn read_block(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(*self, buf, offset)
    }
}

impl BasisRead for &[u8] {
    fn read_block(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl BasisRead for Vec<u8> {
    fn read_block(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_block(offset, buf)
    }
}

/// Why a block could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The sender referenced a block the header does not have.
    #[error("block index {index} out of range (count {count})")]
    InvalidBlock {
        /// The index sent.
        index: u32,
        /// The header's block count.
        count: i32,
    },
    /// The basis is shorter than the header says.
    #[error("basis too short for block {index} at offset {offset}")]
    ShortBasis {
        /// The block.
        index: u32,
        /// Its offset in the basis.
        offset: u64,
    },
    /// The output would exceed the configured cap.
    #[error("output exceeds the limit of {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// Reading the basis failed.
    #[error("reading the basis")]
    Basis(#[source] io::Error),
    /// Writing the output failed.
    #[error("writing the output")]
    Write(#[source] io::Error),
}

/// Applies a token stream: literal data and basis blocks are written in
/// order to the caller's sink and hashed for the whole-file checksum.
///
/// Make it with the sum header the sender echoed; call
/// [`literal`](Self::literal) and [`block`](Self::block) per token; at the
/// end token call [`finish`](Self::finish) and compare with the sender's
/// checksum.
///
/// ```
/// use ferrsync::checksum::{ChecksumConfig, StrongKind};
/// use ferrsync::delta::{Patcher, SumHead};
/// let cfg = ChecksumConfig::for_session(StrongKind::Md5, 0, 31, true, true);
/// let head = SumHead { count: 2, blength: 4, s2length: 2, remainder: 2 };
/// let mut basis: &[u8] = b"abcdef";
/// let mut out = Vec::new();
/// let mut p = Patcher::new(head, cfg);
/// p.block(1, &mut basis, &mut out).unwrap();
/// p.literal(b"-", &mut out).unwrap();
/// p.block(0, &mut basis, &mut out).unwrap();
/// assert!(p.block(2, &mut basis, &mut out).is_err());
/// assert_eq!(p.written(), 7);
/// let sum = p.finish();
/// assert_eq!(out, b"ef-abcd");
/// let mut h = cfg.file_hasher();
/// h.update(b"ef-abcd");
/// assert_eq!(sum, h.finish());
/// ```
pub struct Patcher {
    head: SumHead,
    hasher: FileHasher,
    written: u64,
    max: Option<u64>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Patcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patcher")
            .field("head", &self.head)
            .field("written", &self.written)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Patcher {
    /// Starts rebuilding a file described by `head` (the sender's echo).
    #[must_use]
    pub fn new(head: SumHead, cfg: ChecksumConfig) -> Self {
        Patcher {
            head,
            hasher: cfg.file_hasher(),
            written: 0,
            max: None,
            scratch: Vec::new(),
        }
    }

    /// Caps the output size; writes past it fail.
    #[must_use]
    pub fn with_max_output(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }

    fn room(&self, n: usize) -> bool {
        self.max
            .is_none_or(|m| self.written.saturating_add(n as u64) <= m)
    }

    /// Writes literal data.
    ///
    /// # Errors
    /// The sink's error, or [`io::ErrorKind::FileTooLarge`] past the cap.
    pub fn literal(&mut self, data: &[u8], out: &mut impl Write) -> io::Result<()> {
        if !self.room(data.len()) {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "output exceeds the limit",
            ));
        }
        out.write_all(data)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Copies basis block `index` to the output.
    ///
    /// # Errors
    /// [`PatchError::InvalidBlock`] for an index the header does not
    /// have, [`PatchError::ShortBasis`] when the basis ends early,
    /// [`PatchError::TooLarge`] past the cap, or the I/O error.
    pub fn block(
        &mut self,
        index: u32,
        basis: &mut impl BasisRead,
        out: &mut impl Write,
    ) -> Result<(), PatchError> {
        let invalid = || PatchError::InvalidBlock {
            index,
            count: self.head.count,
        };
        let len = self.head.block_len(index).ok_or_else(invalid)?;
        let offset = self.head.block_offset(index).ok_or_else(invalid)?;
        if !self.room(len) {
            return Err(PatchError::TooLarge {
                max: self.max.unwrap_or(0),
            });
        }
        self.scratch.resize(len, 0);
        basis.read_block(offset, &mut self.scratch).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                PatchError::ShortBasis { index, offset }
            } else {
                PatchError::Basis(e)
            }
        })?;
        out.write_all(&self.scratch).map_err(PatchError::Write)?;
        self.hasher.update(&self.scratch);
        self.written += len as u64;
        Ok(())
    }

    /// Adds bytes already in place to the whole-file checksum without
    /// writing them (`--append-verify`: the kept start of the file).
    pub fn hash_only(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The whole-file checksum of everything written.
    #[must_use]
    pub fn finish(self) -> StrongSum {
        self.hasher.finish()
    }
}
