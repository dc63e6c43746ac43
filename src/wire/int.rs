//! Fixed-size little-endian integers and the legacy 64-bit "longint".
//!
//! Layer: wire. Mirrors upstream io.c `read_int`/`write_int`,
//! `read_longint`/`write_longint`, `read_shortint`, `read_byte`.

use super::{Decoded, DecodeError};

/// Appends `v` as four little-endian bytes (`write_int`).
pub fn encode_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` as two little-endian bytes (`write_shortint`).
pub fn encode_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a longint (protocol < 30): int32 when `0 <= v <= i32::MAX`, else
/// `ff ff ff ff` and eight little-endian bytes.
///
/// ```
/// let mut b = Vec::new();
/// ferrsync::wire::encode_longint(&mut b, 1 << 31);
/// assert_eq!(b, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80, 0, 0, 0, 0]);
/// assert_eq!(ferrsync::wire::decode_longint(&b).unwrap(),
///            ferrsync::wire::Decoded::Done { value: 1 << 31, used: 12 });
/// ```
pub fn encode_longint(out: &mut Vec<u8>, v: i64) {
    if (0..=i64::from(i32::MAX)).contains(&v) {
        #[allow(clippy::cast_possible_truncation)]
        encode_i32(out, v as i32);
    } else {
        out.extend_from_slice(&[0xff; 4]);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn take<const N: usize>(buf: &[u8]) -> Result<[u8; N], usize> {
    match buf.get(..N) {
        Some(s) => {
            let mut a = [0u8; N];
            a.copy_from_slice(s);
            Ok(a)
        }
        None => Err(N - buf.len()),
    }
}

/// Decodes one byte.
///
/// # Errors
/// Never; the `Result` keeps the decoder signatures uniform.
pub fn decode_u8(buf: &[u8]) -> Result<Decoded<u8>, DecodeError> {
    Ok(match buf.first() {
        Some(&b) => Decoded::Done { value: b, used: 1 },
        None => Decoded::NeedMore(1),
    })
}

/// Decodes a little-endian uint16 (`read_shortint`).
///
/// # Errors
/// Never.
pub fn decode_u16(buf: &[u8]) -> Result<Decoded<u16>, DecodeError> {
    Ok(match take::<2>(buf) {
        Ok(a) => Decoded::Done { value: u16::from_le_bytes(a), used: 2 },
        Err(n) => Decoded::NeedMore(n),
    })
}

/// Decodes a little-endian int32 (`read_int`).
///
/// # Errors
/// Never.
pub fn decode_i32(buf: &[u8]) -> Result<Decoded<i32>, DecodeError> {
    Ok(match take::<4>(buf) {
        Ok(a) => Decoded::Done { value: i32::from_le_bytes(a), used: 4 },
        Err(n) => Decoded::NeedMore(n),
    })
}

/// Decodes a longint (protocol < 30).
///
/// # Errors
/// Never.
pub fn decode_longint(buf: &[u8]) -> Result<Decoded<i64>, DecodeError> {
    let head = match take::<4>(buf) {
        Ok(a) => i32::from_le_bytes(a),
        Err(n) => return Ok(Decoded::NeedMore(n)),
    };
    if head != -1 {
        return Ok(Decoded::Done { value: i64::from(head), used: 4 });
    }
    let rest = buf.get(4..).unwrap_or(&[]);
    Ok(match take::<8>(rest) {
        Ok(a) => Decoded::Done { value: i64::from_le_bytes(a), used: 12 },
        Err(n) => Decoded::NeedMore(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longint_table() {
        let rows: &[(i64, &[u8])] = &[
            (323, &[0x43, 0x01, 0, 0]),
            (0x7fff_ffff, &[0xff, 0xff, 0xff, 0x7f]),
            (1 << 31, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80, 0, 0, 0, 0]),
            (-1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ];
        for &(v, bytes) in rows {
            let mut out = Vec::new();
            encode_longint(&mut out, v);
            assert_eq!(out, bytes, "encode {v}");
            assert_eq!(decode_longint(bytes).unwrap(), Decoded::Done { value: v, used: bytes.len() });
            for cut in 0..bytes.len() {
                assert!(matches!(decode_longint(&bytes[..cut]).unwrap(), Decoded::NeedMore(_)));
            }
        }
    }

    #[test]
    fn int32_and_short() {
        let mut out = Vec::new();
        encode_i32(&mut out, 32);
        encode_u16(&mut out, 0xa000);
        assert_eq!(out, [0x20, 0, 0, 0, 0x00, 0xa0]);
        assert_eq!(decode_i32(&out).unwrap(), Decoded::Done { value: 32, used: 4 });
        assert_eq!(decode_u16(&out[4..]).unwrap(), Decoded::Done { value: 0xa000, used: 2 });
        assert_eq!(decode_i32(&out[..3]).unwrap(), Decoded::NeedMore(1));
    }
}
