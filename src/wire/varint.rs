//! Variable-length integers (protocol >= 30) and vstrings.
//!
//! Layer: wire. Mirrors upstream io.c `write_varint`/`read_varint`,
//! `write_varlong`/`read_varlong` and `write_vstring`/`read_vstring`.

use super::{DecodeError, Decoded};

/// Extra bytes announced by a lead byte, indexed by `lead / 4`
/// (upstream `int_byte_extra`).
const fn extra_bytes(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 0,
        0x80..=0xbf => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        0xf8..=0xfb => 5,
        0xfc..=0xff => 6,
    }
}

/// Appends `v` as a varint (1 to 5 bytes).
///
/// ```
/// let mut b = Vec::new();
/// ferrsync::wire::encode_varint(&mut b, 300);
/// assert_eq!(b, [0x81, 0x2c]);
/// assert_eq!(ferrsync::wire::decode_varint(&b).unwrap(),
///            ferrsync::wire::Decoded::Done { value: 300, used: 2 });
/// ```
pub fn encode_varint(out: &mut Vec<u8>, v: i32) {
    encode_var(out, &v.to_le_bytes(), 1);
}

/// Appends `v` as a varlong of at least `min_bytes` bytes (3..=8; upstream uses 3 and 4).
///
/// ```
/// let mut b = Vec::new();
/// ferrsync::wire::encode_varlong(&mut b, 13, 3);
/// assert_eq!(b, [0x00, 0x0d, 0x00]);
/// ```
pub fn encode_varlong(out: &mut Vec<u8>, v: i64, min_bytes: usize) {
    encode_var(out, &v.to_le_bytes(), min_bytes.clamp(3, 8));
}

/// Shared encoder: `le` holds the little-endian bytes of the value.
fn encode_var(out: &mut Vec<u8>, le: &[u8], min_bytes: usize) {
    // b[1..=len] = value bytes, b[0] = lead byte (as upstream lays it out).
    let mut b = [0u8; 9];
    for (dst, src) in b.iter_mut().skip(1).zip(le) {
        *dst = *src;
    }
    let mut cnt = le.len();
    while cnt > min_bytes && b.get(cnt).copied() == Some(0) {
        cnt -= 1;
    }
    let top = b.get(cnt).copied().unwrap_or(0);
    let bit: u32 = 1 << (7 + min_bytes - cnt);
    let lead;
    if u32::from(top) >= bit {
        cnt += 1;
        #[allow(clippy::cast_possible_truncation)]
        {
            lead = !(bit - 1) as u8;
        }
    } else if cnt > min_bytes {
        #[allow(clippy::cast_possible_truncation)]
        {
            lead = top | !(bit * 2 - 1) as u8;
        }
    } else {
        lead = top;
    }
    out.push(lead);
    out.extend_from_slice(b.get(1..cnt).unwrap_or(&[]));
}

/// Decodes a varint.
///
/// # Errors
/// [`DecodeError::VarintTag`] when the lead byte announces more than four
/// extra bytes.
pub fn decode_varint(buf: &[u8]) -> Result<Decoded<i32>, DecodeError> {
    let Some(&lead) = buf.first() else {
        return Ok(Decoded::NeedMore(1));
    };
    let extra = extra_bytes(lead);
    if extra > 4 {
        return Err(DecodeError::VarintTag(lead));
    }
    let Some(tail) = buf.get(1..=extra) else {
        return Ok(Decoded::NeedMore(extra + 1 - buf.len()));
    };
    let mut u = [0u8; 5];
    let value = if extra == 0 {
        i32::from(lead)
    } else {
        for (d, s) in u.iter_mut().zip(tail) {
            *d = *s;
        }
        let mask = (1u16 << (8 - extra)) - 1;
        #[allow(clippy::cast_possible_truncation)]
        if let Some(slot) = u.get_mut(extra) {
            *slot = (u16::from(lead) & mask) as u8;
        }
        // Only the low 32 bits count, as upstream's union does.
        i32::from_le_bytes([u[0], u[1], u[2], u[3]])
    };
    Ok(Decoded::Done { value, used: 1 + extra })
}

/// Decodes a varlong written with `min_bytes` (3..=8).
///
/// # Errors
/// [`DecodeError::VarintTag`] when the lead byte announces more bytes than a
/// 64-bit value holds.
pub fn decode_varlong(buf: &[u8], min_bytes: usize) -> Result<Decoded<i64>, DecodeError> {
    let min_bytes = min_bytes.clamp(3, 8);
    let Some(head) = buf.get(..min_bytes) else {
        return Ok(Decoded::NeedMore(min_bytes - buf.len()));
    };
    let lead = head.first().copied().unwrap_or(0);
    let extra = extra_bytes(lead);
    if min_bytes + extra > 9 {
        return Err(DecodeError::VarintTag(lead));
    }
    let total = min_bytes + extra;
    let Some(all) = buf.get(..total) else {
        return Ok(Decoded::NeedMore(total - buf.len()));
    };
    let mut u = [0u8; 9];
    // bytes 1..min_bytes, then the extra bytes, then the lead's value bits.
    for (d, s) in u.iter_mut().zip(all.iter().skip(1)) {
        *d = *s;
    }
    let top = if extra == 0 {
        lead
    } else {
        #[allow(clippy::cast_possible_truncation)]
        let m = ((1u16 << (8 - extra)) - 1) as u8;
        lead & m
    };
    if let Some(slot) = u.get_mut(total - 1) {
        *slot = top;
    }
    let value = i64::from_le_bytes([u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7]]);
    Ok(Decoded::Done { value, used: total })
}

/// Appends a vstring: a length of one byte (< 128) or two bytes (< 32768),
/// then the bytes.
///
/// # Errors
/// [`DecodeError::TooLong`] for strings of 32768 bytes or more, which the
/// protocol cannot carry.
pub fn encode_vstring(out: &mut Vec<u8>, s: &[u8]) -> Result<(), DecodeError> {
    let len = s.len();
    if len > 0x7fff {
        return Err(DecodeError::TooLong { what: "vstring", len: len as u64, max: 0x7fff });
    }
    #[allow(clippy::cast_possible_truncation)]
    if len > 0x7f {
        out.push(0x80 | (len >> 8) as u8);
        out.push((len & 0xff) as u8);
    } else {
        out.push(len as u8);
    }
    out.extend_from_slice(s);
    Ok(())
}

/// Decodes a vstring of at most `max` bytes.
///
/// # Errors
/// [`DecodeError::TooLong`] when the announced length exceeds `max`.
pub fn decode_vstring(buf: &[u8], max: usize) -> Result<Decoded<Vec<u8>>, DecodeError> {
    let Some(&b0) = buf.first() else {
        return Ok(Decoded::NeedMore(1));
    };
    let (len, hdr) = if b0 & 0x80 != 0 {
        let Some(&b1) = buf.get(1) else {
            return Ok(Decoded::NeedMore(1));
        };
        ((usize::from(b0 & 0x7f) << 8) | usize::from(b1), 2)
    } else {
        (usize::from(b0), 1)
    };
    if len > max {
        return Err(DecodeError::TooLong { what: "vstring", len: len as u64, max: max as u64 });
    }
    match buf.get(hdr..hdr + len) {
        Some(s) => Ok(Decoded::Done { value: s.to_vec(), used: hdr + len }),
        None => Ok(Decoded::NeedMore(hdr + len - buf.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_table() {
        let rows: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x80]),
            (154, &[0x80, 0x9a]),
            (300, &[0x81, 0x2c]),
            (511, &[0x81, 0xff]),
            (16383, &[0xbf, 0xff]),
            (16384, &[0xc0, 0x00, 0x40]),
            (0x1234_5678, &[0xf0, 0x78, 0x56, 0x34, 0x12]),
            (-1, &[0xf0, 0xff, 0xff, 0xff, 0xff]),
            (-2, &[0xf0, 0xfe, 0xff, 0xff, 0xff]),
        ];
        for &(v, bytes) in rows {
            let mut out = Vec::new();
            encode_varint(&mut out, v);
            assert_eq!(out, bytes, "encode {v}");
            assert_eq!(decode_varint(bytes).unwrap(), Decoded::Done { value: v, used: bytes.len() });
        }
    }

    #[test]
    fn varlong_table() {
        let rows: &[(i64, usize, &[u8])] = &[
            (0, 3, &[0, 0, 0]),
            (13, 3, &[0x00, 0x0d, 0x00]),
            (323, 3, &[0x00, 0x43, 0x01]),
            (4096, 3, &[0x00, 0x00, 0x10]),
            (0x7f_ffff, 3, &[0x7f, 0xff, 0xff]),
            (0x80_0000, 3, &[0x80, 0x00, 0x00, 0x80]),
            (0x12_3456_789a, 3, &[0xd2, 0x9a, 0x78, 0x56, 0x34]),
            (1_704_164_645, 4, &[0x65, 0x25, 0x7d, 0x93]),
            (1 << 40, 4, &[0xc1, 0, 0, 0, 0, 0]),
            (-1, 3, &[0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ];
        for &(v, min, bytes) in rows {
            let mut out = Vec::new();
            encode_varlong(&mut out, v, min);
            assert_eq!(out, bytes, "encode {v} min {min}");
            assert_eq!(decode_varlong(bytes, min).unwrap(), Decoded::Done { value: v, used: bytes.len() });
        }
    }

    #[test]
    fn vstring_table() {
        let mut out = Vec::new();
        encode_vstring(&mut out, b"md5").unwrap();
        assert_eq!(out, [3, b'm', b'd', b'5']);
        let long = vec![b'x'; 300];
        let mut out = Vec::new();
        encode_vstring(&mut out, &long).unwrap();
        assert_eq!(&out[..2], &[0x81, 0x2c]);
        assert_eq!(decode_vstring(&out, 1000).unwrap(), Decoded::Done { value: long, used: 302 });
        assert!(decode_vstring(&out, 255).is_err());
    }

    proptest::proptest! {
        #[test]
        fn varint_roundtrip(v: i32) {
            let mut out = Vec::new();
            encode_varint(&mut out, v);
            proptest::prop_assert_eq!(decode_varint(&out).unwrap(), Decoded::Done { value: v, used: out.len() });
        }

        #[test]
        fn varlong_roundtrip(v: i64, min in 3usize..=8) {
            let mut out = Vec::new();
            encode_varlong(&mut out, v, min);
            proptest::prop_assert_eq!(decode_varlong(&out, min).unwrap(), Decoded::Done { value: v, used: out.len() });
        }

        #[test]
        fn decoders_never_panic(data: Vec<u8>, min in 1usize..=8) {
            let _ = decode_varint(&data);
            let _ = decode_varlong(&data, min);
            let _ = decode_vstring(&data, 255);
        }
    }
}
