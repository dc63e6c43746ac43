//! Multiplexed message frames (`MSG_*`).
//!
//! Layer: wire. Uses only `wire` items; does no IO.
//! Mirrors upstream io.c (`send_msg`, `read_a_msg`) and `enum msgcode` in
//! rsync.h.
//!
//! Once a direction is multiplexed every byte belongs to a frame: a 4-byte
//! little-endian header `((MPLEX_BASE + code) << 24) | len` and `len` payload
//! bytes. `MSG_DATA` payloads concatenate into the data stream; every other
//! code carries one message.

use super::{DecodeError, Decoded, Limits};

/// Added to a message code to form the tag byte of a frame header.
pub const MPLEX_BASE: u8 = 7;

/// Largest payload length a frame header can express.
const MAX_FRAME_LEN: usize = 0x00ff_ffff;

/// Largest `MSG_DATA` payload [`encode_frames`] puts in one frame.
///
/// 32 KiB is rsync's own I/O buffer size, so every rsync version reads such a
/// frame without growing its buffer; bigger frames save little.
pub const MAX_FRAME_DATA: usize = 32 * 1024;

/// A multiplexed message code (upstream `enum msgcode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum MsgCode {
    /// Raw bytes of the data stream.
    Data = 0,
    /// Error about one file (exit code at least 23).
    ErrorXfer = 1,
    /// Informational text.
    Info = 2,
    /// General error text (protocol >= 30).
    Error = 3,
    /// Warning text (protocol >= 30).
    Warning = 4,
    /// Internal: socket error from the receiver to the generator.
    ErrorSocket = 5,
    /// Internal: a line for the log file only.
    Log = 6,
    /// Internal: a line for the client only.
    Client = 7,
    /// Internal: a UTF-8 conversion error.
    ErrorUtf8 = 8,
    /// Internal: receiver asks the generator to redo a file.
    Redo = 9,
    /// Internal: receiver statistics for the generator.
    Stats = 10,
    /// The sender's accumulated I/O error bits (int32).
    IoError = 22,
    /// A daemon's module timeout in seconds (int32, protocol >= 31).
    IoTimeout = 33,
    /// Keep-alive of protocol-30 peers (no payload).
    Noop = 42,
    /// Error-exit synchronisation (protocol >= 31).
    ErrorExit = 86,
    /// A file was stored; the sender may remove its copy (int32 ndx).
    Success = 100,
    /// A deletion to log (name bytes).
    Deleted = 101,
    /// The sender could not open the requested file (int32 ndx).
    NoSend = 102,
}

impl MsgCode {
    /// Every code, in numeric order.
    const ALL: [MsgCode; 18] = [
        MsgCode::Data,
        MsgCode::ErrorXfer,
        MsgCode::Info,
        MsgCode::Error,
        MsgCode::Warning,
        MsgCode::ErrorSocket,
        MsgCode::Log,
        MsgCode::Client,
        MsgCode::ErrorUtf8,
        MsgCode::Redo,
        MsgCode::Stats,
        MsgCode::IoError,
        MsgCode::IoTimeout,
        MsgCode::Noop,
        MsgCode::ErrorExit,
        MsgCode::Success,
        MsgCode::Deleted,
        MsgCode::NoSend,
    ];

    /// The code with this number, if rsync defines one.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<MsgCode> {
        Self::ALL.into_iter().find(|c| c.as_u8() == v)
    }

    /// The code's number.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether the code may travel on the connection; the others only travel
    /// on rsync's internal receiver-to-generator pipe.
    #[must_use]
    pub const fn is_wire(self) -> bool {
        !matches!(
            self,
            MsgCode::ErrorSocket
                | MsgCode::Log
                | MsgCode::Client
                | MsgCode::ErrorUtf8
                | MsgCode::Redo
                | MsgCode::Stats
        )
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message code.
    pub code: MsgCode,
    /// The payload length that follows the header.
    pub len: u32,
}

/// Appends a frame header for `len` payload bytes.
///
/// `len` must be below 2^24; larger payloads go through [`encode_frames`].
///
/// ```
/// use ferrsync::wire::{decode_frame_header, encode_frame_header, Decoded, FrameHeader, MsgCode};
/// let mut b = Vec::new();
/// encode_frame_header(&mut b, MsgCode::IoTimeout, 4);
/// assert_eq!(b, [0x04, 0x00, 0x00, 0x28]);
/// assert_eq!(decode_frame_header(&b).unwrap(),
///            Decoded::Done { value: FrameHeader { code: MsgCode::IoTimeout, len: 4 }, used: 4 });
/// ```
pub fn encode_frame_header(out: &mut Vec<u8>, code: MsgCode, len: usize) {
    debug_assert!(len <= MAX_FRAME_LEN, "frame payload of {len} bytes");
    #[allow(clippy::cast_possible_truncation)]
    let len = (len & MAX_FRAME_LEN) as u32;
    let h = (u32::from(MPLEX_BASE + code.as_u8()) << 24) | len;
    out.extend_from_slice(&h.to_le_bytes());
}

/// Decodes a frame header.
///
/// # Errors
/// [`DecodeError::UnknownTag`] when the tag byte names no message code.
pub fn decode_frame_header(buf: &[u8]) -> Result<Decoded<FrameHeader>, DecodeError> {
    let Some(&[l0, l1, l2, tag]) = buf.get(..4).map(<&[u8; 4]>::try_from).and_then(Result::ok)
    else {
        return Ok(Decoded::NeedMore(4 - buf.len()));
    };
    let code = tag
        .checked_sub(MPLEX_BASE)
        .and_then(MsgCode::from_u8)
        .ok_or(DecodeError::UnknownTag(tag))?;
    let len = u32::from_le_bytes([l0, l1, l2, 0]);
    Ok(Decoded::Done {
        value: FrameHeader { code, len },
        used: 4,
    })
}

/// One frame, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message code.
    pub code: MsgCode,
    /// The payload bytes.
    pub payload: &'a [u8],
}

/// Splits a multiplexed stream into frames.
///
/// Start it at a frame boundary: right after the handshake for the
/// direction being read.
///
/// ```
/// use ferrsync::wire::{Decoded, Frame, Limits, MsgCode, MuxDecoder};
/// let mut dec = MuxDecoder::new(Limits::default());
/// let bytes = [0x01, 0x00, 0x00, 0x07, 0x00];
/// assert_eq!(dec.decode(&bytes).unwrap(),
///            Decoded::Done { value: Frame { code: MsgCode::Data, payload: &[0] }, used: 5 });
/// ```
#[derive(Debug, Clone)]
pub struct MuxDecoder {
    limits: Limits,
}

impl MuxDecoder {
    /// A decoder enforcing `limits.max_msg_len` on non-data messages.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        MuxDecoder { limits }
    }

    /// Decodes one whole frame from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::UnknownTag`] for an undefined tag,
    /// [`DecodeError::InvalidMessage`] for an internal-only code, and
    /// [`DecodeError::MuxOverflow`] for a non-data payload longer than the
    /// limit (all checked on the header alone, before the payload arrives).
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Decoded<Frame<'a>>, DecodeError> {
        let header = match decode_frame_header(buf)? {
            Decoded::Done { value, .. } => value,
            Decoded::NeedMore(n) => return Ok(Decoded::NeedMore(n)),
        };
        let code = header.code;
        if !code.is_wire() {
            return Err(DecodeError::InvalidMessage(code.as_u8()));
        }
        let len = header.len as usize;
        if code != MsgCode::Data && len > self.limits.max_msg_len {
            return Err(DecodeError::MuxOverflow {
                code: code.as_u8(),
                len,
                max: self.limits.max_msg_len,
            });
        }
        let end = 4 + len;
        match buf.get(4..end) {
            Some(payload) => Ok(Decoded::Done {
                value: Frame { code, payload },
                used: end,
            }),
            None => Ok(Decoded::NeedMore(end - buf.len())),
        }
    }
}

/// Appends `payload` as frames of `code`, at most [`MAX_FRAME_DATA`] bytes
/// each. An empty payload becomes one empty frame (a keep-alive for
/// `MSG_DATA`).
///
/// ```
/// use ferrsync::wire::{encode_frames, MsgCode, MAX_FRAME_DATA};
/// let mut out = Vec::new();
/// encode_frames(&mut out, MsgCode::Data, &vec![0u8; MAX_FRAME_DATA + 1]);
/// assert_eq!(out.len(), MAX_FRAME_DATA + 1 + 8);
/// ```
pub fn encode_frames(out: &mut Vec<u8>, code: MsgCode, payload: &[u8]) {
    if payload.is_empty() {
        encode_frame_header(out, code, 0);
        return;
    }
    for chunk in payload.chunks(MAX_FRAME_DATA) {
        encode_frame_header(out, code, chunk.len());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_table() {
        let rows: &[([u8; 4], MsgCode, u32)] = &[
            ([0x04, 0, 0, 0x07], MsgCode::Data, 4),
            ([0x04, 0, 0, 0x28], MsgCode::IoTimeout, 4),
            ([0, 0, 0, 0x5d], MsgCode::ErrorExit, 0),
            ([0, 0, 0, 0x07], MsgCode::Data, 0),
            ([0x6a, 0, 0, 0x07], MsgCode::Data, 0x6a),
            ([0xff, 0xff, 0xff, 0x07], MsgCode::Data, 0xff_ffff),
            ([0x0a, 0, 0, 0x6c], MsgCode::Deleted, 10),
            ([0x04, 0, 0, 0x1d], MsgCode::IoError, 4),
        ];
        for &(bytes, code, len) in rows {
            let mut out = Vec::new();
            encode_frame_header(&mut out, code, len as usize);
            assert_eq!(out, bytes);
            assert_eq!(
                decode_frame_header(&bytes).unwrap(),
                Decoded::Done {
                    value: FrameHeader { code, len },
                    used: 4
                }
            );
        }
        assert_eq!(decode_frame_header(&[0, 0]).unwrap(), Decoded::NeedMore(2));
    }

    #[test]
    fn codes_roundtrip_and_unknown_tags() {
        for v in 0..=255u8 {
            if let Some(c) = MsgCode::from_u8(v) {
                assert_eq!(c.as_u8(), v);
            }
        }
        let rows: &[u8] = &[0, 6, 7 + 11, 7 + 23, 7 + 103, 0xff];
        for &tag in rows {
            let err = decode_frame_header(&[0, 0, 0, tag]).unwrap_err();
            assert_eq!(err, DecodeError::UnknownTag(tag));
            assert!(err.to_string().contains(&tag.to_string()), "{err}");
        }
    }

    #[test]
    fn decoder_rules() {
        let mut dec = MuxDecoder::new(Limits::default());
        // Internal code MSG_REDO.
        assert_eq!(
            dec.decode(&[4, 0, 0, 7 + 9]).unwrap_err(),
            DecodeError::InvalidMessage(9)
        );
        // 5120-byte MSG_INFO is refused on the header alone.
        let e = dec.decode(&[0x00, 0x14, 0, 7 + 2]).unwrap_err();
        assert!(e.to_string().contains("multiplexing overflow"), "{e}");
        // 5119 bytes are fine; data of any length is fine.
        assert_eq!(
            dec.decode(&[0xff, 0x13, 0, 7 + 2]).unwrap(),
            Decoded::NeedMore(5119)
        );
        assert_eq!(
            dec.decode(&[0xff, 0xff, 0xff, 7, 1]).unwrap(),
            Decoded::NeedMore(0xff_fffe)
        );
        let info = [4, 0, 0, 9, b'h', b'i', b'!', b'\n', 0x99];
        assert_eq!(
            dec.decode(&info).unwrap(),
            Decoded::Done {
                value: Frame {
                    code: MsgCode::Info,
                    payload: b"hi!\n"
                },
                used: 8
            }
        );
    }

    #[test]
    fn frames_split_large_payloads() {
        let payload: Vec<u8> = (0..(2 * MAX_FRAME_DATA + 5))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut out = Vec::new();
        encode_frames(&mut out, MsgCode::Data, &payload);
        let mut dec = MuxDecoder::new(Limits::default());
        let mut rest = &out[..];
        let mut joined = Vec::new();
        let mut lens = Vec::new();
        while !rest.is_empty() {
            let Decoded::Done { value, used } = dec.decode(rest).unwrap() else {
                panic!("short")
            };
            joined.extend_from_slice(value.payload);
            lens.push(value.payload.len());
            rest = &rest[used..];
        }
        assert_eq!(joined, payload);
        assert_eq!(lens, [MAX_FRAME_DATA, MAX_FRAME_DATA, 5]);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let mut dec = MuxDecoder::new(Limits::default());
            let mut rest = &data[..];
            while let Ok(Decoded::Done { used, .. }) = dec.decode(rest) {
                proptest::prop_assert!(used >= 4 && used <= rest.len());
                rest = &rest[used..];
            }
        }
    }
}
