//! The xattr request and fill-in exchange (`-X`): after an item's flags,
//! when `ITEM_REPORT_XATTR` is set, the generator names the abbreviated
//! values it wants and the sender's echo carries them.
//!
//! Layer: flist (L2). Uses `wire` only; does no I/O.
//! Mirrors upstream xattrs.c `send_xattr_request` and `recv_xattr_request`.
//!
//! Both lists are varint position differences (the first relative to 0)
//! of 1-based positions in the sender's sorted xattr list of the item,
//! ended by a 0; the fill-in adds each value's length and bytes.
//!
//! ```
//! use ferrsync::flist::xattrs::{decode_xattr_request, encode_xattr_request};
//! use ferrsync::wire::{Decoded, Limits};
//! let mut out = Vec::new();
//! encode_xattr_request(&mut out, &[1, 3]);
//! assert_eq!(out, [1, 2, 0]);
//! let Decoded::Done { value, used } = decode_xattr_request(&out, &Limits::default()).unwrap() else { panic!() };
//! assert_eq!((value, used), (vec![1, 3], 3));
//! ```

use crate::wire::{DecodeError, Decoded, Limits, ReadError, Reader, check_len, encode_varint};

/// Fill-in values: (1-based position, value) in the order sent.
pub type XattrValues = Vec<(i32, Vec<u8>)>;

/// Appends a request for the 1-based positions `nums` (in increasing
/// order, as rsync sends them) and the end marker.
pub fn encode_xattr_request(out: &mut Vec<u8>, nums: &[i32]) {
    let mut prior = 0i32;
    for &n in nums {
        encode_varint(out, n.wrapping_sub(prior));
        prior = n;
    }
    encode_varint(out, 0);
}

/// Appends the fill-in values: for each (position, value) the position
/// difference, the length and the bytes; then the end marker.
pub fn encode_xattr_values(out: &mut Vec<u8>, values: &[(i32, &[u8])]) {
    let mut prior = 0i32;
    for (n, v) in values {
        encode_varint(out, n.wrapping_sub(prior));
        prior = *n;
        encode_varint(out, i32::try_from(v.len()).unwrap_or(i32::MAX));
        out.extend_from_slice(v);
    }
    encode_varint(out, 0);
}

/// The next position of a list, or `None` at its end marker.
fn next_num(
    r: &mut Reader<'_>,
    num: &mut i32,
    count: &mut usize,
    limits: &Limits,
) -> Result<Option<i32>, ReadError> {
    let rel = r.varint()?;
    if rel == 0 {
        return Ok(None);
    }
    *count += 1;
    check_len("xattr request", *count as u64, limits.max_xattr_count)?;
    *num = num
        .checked_add(rel)
        .filter(|n| *n > 0)
        .ok_or(ReadError::Malformed(DecodeError::Invalid {
            what: "xattr position",
            value: i64::from(*num) + i64::from(rel),
        }))?;
    Ok(Some(*num))
}

/// Decodes a request: the wanted 1-based positions, in the order sent.
///
/// # Errors
/// [`DecodeError`] for a position that is not positive, or more entries
/// than `limits.max_xattr_count`.
pub fn decode_xattr_request(buf: &[u8], limits: &Limits) -> Result<Decoded<Vec<i32>>, DecodeError> {
    let mut r = Reader::new(buf);
    let run = |r: &mut Reader<'_>| -> Result<Vec<i32>, ReadError> {
        let (mut num, mut count, mut v) = (0, 0, Vec::new());
        while let Some(n) = next_num(r, &mut num, &mut count, limits)? {
            v.push(n);
        }
        Ok(v)
    };
    match run(&mut r) {
        Ok(value) => Ok(Decoded::Done {
            value,
            used: r.used(),
        }),
        Err(e) => e.into_decoded(),
    }
}

/// Decodes fill-in values: (1-based position, value) in the order sent.
///
/// # Errors
/// As [`decode_xattr_request`], and values longer than
/// `limits.max_xattr_value_len`.
pub fn decode_xattr_values(
    buf: &[u8],
    limits: &Limits,
) -> Result<Decoded<XattrValues>, DecodeError> {
    let mut r = Reader::new(buf);
    let run = |r: &mut Reader<'_>| -> Result<XattrValues, ReadError> {
        let (mut num, mut count, mut v) = (0, 0, Vec::new());
        while let Some(n) = next_num(r, &mut num, &mut count, limits)? {
            let len = r.varint()?;
            let len = u64::try_from(len).map_err(|_| {
                ReadError::Malformed(DecodeError::Invalid {
                    what: "xattr value length",
                    value: i64::from(len),
                })
            })?;
            let len = check_len("xattr value", len, limits.max_xattr_value_len)?;
            v.push((n, super::codec::take(r, len)?.to_vec()));
        }
        Ok(v)
    };
    match run(&mut r) {
        Ok(value) => Ok(Decoded::Done {
            value,
            used: r.used(),
        }),
        Err(e) => e.into_decoded(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_cut_offs_ask_for_more() {
        let rows: &[(&[i32], &[u8])] = &[(&[], &[0]), (&[1], &[1, 0]), (&[2, 5, 9], &[2, 3, 4, 0])];
        for (nums, bytes) in rows {
            let mut out = Vec::new();
            encode_xattr_request(&mut out, nums);
            assert_eq!(&out, bytes);
            let Decoded::Done { value, used } =
                decode_xattr_request(&out, &Limits::default()).unwrap()
            else {
                panic!()
            };
            assert_eq!((value.as_slice(), used), (*nums, out.len()));
            for cut in 0..out.len() {
                assert!(matches!(
                    decode_xattr_request(&out[..cut], &Limits::default()),
                    Ok(Decoded::NeedMore(_))
                ));
            }
        }
    }

    #[test]
    fn values_round_trip() {
        let big = vec![b'B'; 64];
        let mut out = Vec::new();
        encode_xattr_values(&mut out, &[(1, &big), (3, b"")]);
        assert_eq!(&out[..2], &[1, 64]);
        let Decoded::Done { value, used } = decode_xattr_values(&out, &Limits::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(used, out.len());
        assert_eq!(value, vec![(1, big), (3, Vec::new())]);
    }

    #[test]
    fn bad_positions_and_lengths_are_refused() {
        let lim = Limits::default();
        // A step back below position 1.
        let mut back = Vec::new();
        encode_varint(&mut back, 1);
        encode_varint(&mut back, -2);
        back.push(0);
        assert!(decode_xattr_request(&back, &lim).is_err());
        let small = Limits {
            max_xattr_value_len: 4,
            ..Limits::default()
        };
        assert!(decode_xattr_values(&[1, 5, 0, 0, 0, 0, 0, 0], &small).is_err());
    }
}
