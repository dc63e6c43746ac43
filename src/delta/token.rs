//! The uncompressed token stream: literal records, block references, end.
//!
//! Layer: delta (L2). Uses `wire` for integers and limits.
//! Mirrors upstream token.c `simple_send_token` / `simple_recv_token`.

use crate::wire::{DecodeError, Decoded, Limits, decode_i32, encode_i32};

/// Largest literal record rsync's sender writes (`CHUNK_SIZE`).
pub const CHUNK_SIZE: usize = 32768;

/// Appends literal data as int32-length records of at most [`CHUNK_SIZE`]
/// bytes each; nothing for empty data.
///
/// ```
/// use ferrsync::delta::{TokenHeader, decode_token_header, encode_block, encode_end, encode_literal};
/// use ferrsync::wire::{Decoded, Limits};
/// let mut b = Vec::new();
/// encode_literal(&mut b, b"hi");
/// encode_block(&mut b, 3);
/// encode_end(&mut b);
/// let lim = Limits::default();
/// assert_eq!(decode_token_header(&b, &lim), Ok(Decoded::Done { value: TokenHeader::Literal(2), used: 4 }));
/// assert_eq!(decode_token_header(&b[6..], &lim), Ok(Decoded::Done { value: TokenHeader::Block(3), used: 4 }));
/// assert_eq!(decode_token_header(&b[10..], &lim), Ok(Decoded::Done { value: TokenHeader::End, used: 4 }));
/// ```
pub fn encode_literal(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(CHUNK_SIZE) {
        // chunk.len() <= CHUNK_SIZE fits an int32.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        encode_i32(out, chunk.len() as i32);
        out.extend_from_slice(chunk);
    }
}

/// Appends a reference to basis block `index` (int32 `-(index + 1)`).
/// Indexes come from a sum header's int32 count, so they fit.
pub fn encode_block(out: &mut Vec<u8>, index: u32) {
    let v = i64::from(index) + 1;
    encode_i32(out, i32::try_from(-v).unwrap_or(i32::MIN));
}

/// Appends the end-of-file token (int32 0).
pub fn encode_end(out: &mut Vec<u8>) {
    encode_i32(out, 0);
}

/// One token header of the uncompressed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHeader {
    /// This many literal bytes follow.
    Literal(usize),
    /// Copy basis block `n`.
    Block(u32),
    /// The file data is complete.
    End,
}

/// Reads one token header; the literal bytes of a [`TokenHeader::Literal`]
/// follow it and are not consumed.
///
/// # Errors
/// [`DecodeError::TooLong`] when a literal record is longer than
/// `limits.max_token_len`.
pub fn decode_token_header(
    buf: &[u8],
    limits: &Limits,
) -> Result<Decoded<TokenHeader>, DecodeError> {
    let (v, used) = match decode_i32(buf)? {
        Decoded::Done { value, used } => (value, used),
        Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
    };
    let value = match v {
        0 => TokenHeader::End,
        n if n > 0 => TokenHeader::Literal(crate::wire::check_len(
            "literal token",
            u64::from(n.unsigned_abs()),
            limits.max_token_len,
        )?),
        // -(n + 1) for n < 0 is 0..=i32::MAX.
        n => TokenHeader::Block((-(i64::from(n) + 1)).try_into().unwrap_or(u32::MAX)),
    };
    Ok(Decoded::Done { value, used })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn dec(b: &[u8]) -> Result<Decoded<TokenHeader>, DecodeError> {
        decode_token_header(b, &Limits::default())
    }

    #[test]
    fn table() {
        let rows: &[([u8; 4], TokenHeader)] = &[
            ([0xff, 0xff, 0xff, 0xff], TokenHeader::Block(0)),
            ([0xf7, 0xff, 0xff, 0xff], TokenHeader::Block(8)),
            (
                [0x00, 0x00, 0x00, 0x80],
                TokenHeader::Block(i32::MAX as u32),
            ),
            ([0xd9, 0x02, 0x00, 0x00], TokenHeader::Literal(729)),
            ([0, 0, 0, 0], TokenHeader::End),
        ];
        for &(bytes, want) in rows {
            assert_eq!(
                dec(&bytes),
                Ok(Decoded::Done {
                    value: want,
                    used: 4
                })
            );
            let mut b = Vec::new();
            match want {
                TokenHeader::Block(i) => encode_block(&mut b, i),
                TokenHeader::End => encode_end(&mut b),
                TokenHeader::Literal(_) => continue,
            }
            assert_eq!(b, bytes);
        }
        assert_eq!(dec(&[1, 2]), Ok(Decoded::NeedMore(2)));
    }

    #[test]
    fn literal_records_split_at_chunk_size() {
        let data = vec![7u8; CHUNK_SIZE * 2 + 5];
        let mut b = Vec::new();
        encode_literal(&mut b, &data);
        assert_eq!(b.len(), data.len() + 12);
        let mut at = 0;
        let mut lens = Vec::new();
        while at < b.len() {
            let Ok(Decoded::Done {
                value: TokenHeader::Literal(n),
                used,
            }) = dec(&b[at..])
            else {
                unreachable!()
            };
            lens.push(n);
            at += used + n;
        }
        assert_eq!(lens, [CHUNK_SIZE, CHUNK_SIZE, 5]);
        let lim = Limits {
            max_token_len: 100,
            ..Limits::default()
        };
        assert!(matches!(
            decode_token_header(&b, &lim),
            Err(DecodeError::TooLong { .. })
        ));
        let mut e = Vec::new();
        encode_literal(&mut e, b"");
        assert!(e.is_empty());
    }
}
