//! A sequential reader over a byte slice for multi-field decoders.
//!
//! Layer: wire. A decoder of a structure (a file-list entry, a sum header)
//! reads field after field; when the slice runs out it reports how much more
//! it needs, and the caller retries later with more bytes. Nothing is
//! consumed from the caller's buffer until the whole structure decoded.

use super::{
    DecodeError, Decoded, decode_i32, decode_longint, decode_u16, decode_varint, decode_varlong,
    decode_vstring,
};

/// Why a [`Reader`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The input ended; at least this many more bytes are needed.
    NeedMore(usize),
    /// The input is malformed.
    Malformed(DecodeError),
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> Self {
        ReadError::Malformed(e)
    }
}

impl ReadError {
    /// Turns a reader outcome into a [`Decoded`] result.
    ///
    /// # Errors
    /// The malformed-input error, if that was the cause.
    pub fn into_decoded<T>(self) -> Result<Decoded<T>, DecodeError> {
        match self {
            ReadError::NeedMore(n) => Ok(Decoded::NeedMore(n)),
            ReadError::Malformed(e) => Err(e),
        }
    }
}

/// Reads values one after another from a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    #[must_use]
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    #[must_use]
    pub fn used(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    #[must_use]
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn step<T>(&mut self, r: Result<Decoded<T>, DecodeError>) -> Result<T, ReadError> {
        match r? {
            Decoded::Done { value, used } => {
                self.pos += used;
                Ok(value)
            }
            Decoded::NeedMore(n) => Err(ReadError::NeedMore(n)),
        }
    }

    /// One byte.
    ///
    /// # Errors
    /// [`ReadError::NeedMore`] at the end of input.
    pub fn u8(&mut self) -> Result<u8, ReadError> {
        let b = *self.remaining().first().ok_or(ReadError::NeedMore(1))?;
        self.pos += 1;
        Ok(b)
    }

    /// A little-endian uint16.
    ///
    /// # Errors
    /// [`ReadError::NeedMore`] at the end of input.
    pub fn u16(&mut self) -> Result<u16, ReadError> {
        let r = decode_u16(self.remaining());
        self.step(r)
    }

    /// A little-endian int32.
    ///
    /// # Errors
    /// [`ReadError::NeedMore`] at the end of input.
    pub fn i32(&mut self) -> Result<i32, ReadError> {
        let r = decode_i32(self.remaining());
        self.step(r)
    }

    /// A longint (protocol < 30).
    ///
    /// # Errors
    /// [`ReadError::NeedMore`] at the end of input.
    pub fn longint(&mut self) -> Result<i64, ReadError> {
        let r = decode_longint(self.remaining());
        self.step(r)
    }

    /// A varint.
    ///
    /// # Errors
    /// As [`decode_varint`].
    pub fn varint(&mut self) -> Result<i32, ReadError> {
        let r = decode_varint(self.remaining());
        self.step(r)
    }

    /// A varlong with `min_bytes`.
    ///
    /// # Errors
    /// As [`decode_varlong`].
    pub fn varlong(&mut self, min_bytes: usize) -> Result<i64, ReadError> {
        let r = decode_varlong(self.remaining(), min_bytes);
        self.step(r)
    }

    /// `varint` at protocol >= 30, else `int32` (upstream `read_varint30`).
    ///
    /// # Errors
    /// As the underlying decoder.
    pub fn varint30(&mut self, protocol: u8) -> Result<i32, ReadError> {
        if protocol >= 30 { self.varint() } else { self.i32() }
    }

    /// `varlong(min)` at protocol >= 30, else `longint` (`read_varlong30`).
    ///
    /// # Errors
    /// As the underlying decoder.
    pub fn varlong30(&mut self, protocol: u8, min_bytes: usize) -> Result<i64, ReadError> {
        if protocol >= 30 { self.varlong(min_bytes) } else { self.longint() }
    }

    /// A vstring of at most `max` bytes.
    ///
    /// # Errors
    /// As [`decode_vstring`].
    pub fn vstring(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        let r = decode_vstring(self.remaining(), max);
        self.step(r)
    }

    /// Exactly `n` bytes, borrowed.
    ///
    /// # Errors
    /// [`ReadError::NeedMore`] when fewer are left.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let rest = self.remaining();
        let s = rest.get(..n).ok_or(ReadError::NeedMore(n - rest.len()))?;
        self.pos += n;
        Ok(s)
    }
}

/// Appends `varint` at protocol >= 30, else `int32` (upstream `write_varint30`).
pub fn encode_varint30(out: &mut Vec<u8>, protocol: u8, v: i32) {
    if protocol >= 30 { super::encode_varint(out, v) } else { super::encode_i32(out, v) }
}

/// Appends `varlong(min)` at protocol >= 30, else `longint` (`write_varlong30`).
pub fn encode_varlong30(out: &mut Vec<u8>, protocol: u8, v: i64, min_bytes: usize) {
    if protocol >= 30 { super::encode_varlong(out, v, min_bytes) } else { super::encode_longint(out, v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_fields_and_need_more() {
        let bytes = [0x20, 0, 0, 0, 0x81, 0x2c, 0x03, b'a', b'b', b'c'];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.i32().unwrap(), 32);
        assert_eq!(r.varint().unwrap(), 300);
        assert_eq!(r.vstring(255).unwrap(), b"abc");
        assert_eq!(r.used(), bytes.len());
        let mut r = Reader::new(&bytes[..5]);
        assert_eq!(r.i32().unwrap(), 32);
        assert_eq!(r.varint(), Err(ReadError::NeedMore(1)));
    }
}
