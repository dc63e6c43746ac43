//! File-list indexes ("ndx") on the wire.
//!
//! Layer: wire. Uses only `wire` items; does no IO.
//! Mirrors upstream io.c `write_ndx`/`read_ndx` and the `NDX_*` constants of
//! rsync.h.
//!
//! Below protocol 30 an index is a plain int32. From protocol 30 each
//! direction keeps a small state (the previous positive and the previous
//! negative index) and sends the difference, usually in one byte. An encoder
//! and a decoder for one direction must therefore see the same sequence of
//! values from the start of the connection.

use super::{DecodeError, Decoded, decode_i32, encode_i32};

/// End of a phase or of a request stream.
pub const NDX_DONE: i32 = -1;
/// End of the incremental file lists.
pub const NDX_FLIST_EOF: i32 = -2;
/// Deletion statistics follow (protocol >= 31).
pub const NDX_DEL_STATS: i32 = -3;
/// Base of a sub-list announcement: a directory's list is sent as
/// `NDX_FLIST_OFFSET - dir_index`.
pub const NDX_FLIST_OFFSET: i32 = -101;

/// Protocol from which indexes use the stateful delta form.
const DELTA_FROM: u8 = 30;
/// Largest index 3.5.0 accepts from the peer.
const MAX_NDX: i64 = 0x7fff_ffff;

/// Previous values of one direction (upstream starts at -1 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    prev_positive: i64,
    prev_negative: i64,
}

impl State {
    const fn new() -> Self {
        State {
            prev_positive: -1,
            prev_negative: 1,
        }
    }
}

/// Writes file indexes for one direction.
///
/// Create one per direction at the start of the connection and feed it every
/// index written in that direction, in order.
///
/// ```
/// use ferrsync::wire::{NdxDecoder, NdxEncoder, Decoded};
/// let mut enc = NdxEncoder::new(32);
/// let mut out = Vec::new();
/// for ndx in [0, 2, -1, -102, 300] { enc.encode(&mut out, ndx); }
/// assert_eq!(out, [0x01, 0x02, 0x00, 0xff, 0x65, 0xfe, 0x01, 0x2a]);
/// let mut dec = NdxDecoder::new(32);
/// let mut rest = &out[..];
/// let mut got = Vec::new();
/// while let Ok(Decoded::Done { value, used }) = dec.decode(rest) {
///     got.push(value);
///     rest = &rest[used..];
/// }
/// assert_eq!(got, [0, 2, -1, -102, 300]);
/// ```
#[derive(Debug, Clone)]
pub struct NdxEncoder {
    protocol: u8,
    state: State,
}

impl NdxEncoder {
    /// A fresh encoder for the negotiated `protocol`.
    #[must_use]
    pub fn new(protocol: u8) -> Self {
        NdxEncoder {
            protocol,
            state: State::new(),
        }
    }

    /// Appends `ndx`. `i32::MIN` cannot be represented from protocol 30 on.
    pub fn encode(&mut self, out: &mut Vec<u8>, ndx: i32) {
        if self.protocol < DELTA_FROM {
            encode_i32(out, ndx);
            return;
        }
        debug_assert!(ndx != i32::MIN, "i32::MIN has no wire form");
        if ndx == NDX_DONE {
            out.push(0);
            return;
        }
        let (value, prev) = if ndx >= 0 {
            (i64::from(ndx), &mut self.state.prev_positive)
        } else {
            out.push(0xff);
            (-i64::from(ndx), &mut self.state.prev_negative)
        };
        let diff = value - *prev;
        *prev = value;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        if (1..=0xfd).contains(&diff) {
            out.push(diff as u8);
        } else if (0..=0x7fff).contains(&diff) {
            out.extend_from_slice(&[0xfe, (diff >> 8) as u8, diff as u8]);
        } else {
            out.extend_from_slice(&[
                0xfe,
                ((value >> 24) as u8) | 0x80,
                value as u8,
                (value >> 8) as u8,
                (value >> 16) as u8,
            ]);
        }
    }
}

/// Reads file indexes for one direction; the counterpart of [`NdxEncoder`].
///
/// State changes only when [`NdxDecoder::decode`] returns [`Decoded::Done`],
/// so a call that needed more bytes can be retried with a longer slice.
#[derive(Debug, Clone)]
pub struct NdxDecoder {
    protocol: u8,
    state: State,
}

impl NdxDecoder {
    /// A fresh decoder for the negotiated `protocol`.
    #[must_use]
    pub fn new(protocol: u8) -> Self {
        NdxDecoder {
            protocol,
            state: State::new(),
        }
    }

    /// Decodes one index from the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] when a delta-form index exceeds `0x7fffffff`.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<i32>, DecodeError> {
        if self.protocol < DELTA_FROM {
            return decode_i32(buf);
        }
        let Some(&first) = buf.first() else {
            return Ok(Decoded::NeedMore(1));
        };
        if first == 0 {
            return Ok(Decoded::Done {
                value: NDX_DONE,
                used: 1,
            });
        }
        let negative = first == 0xff;
        let start = usize::from(negative);
        let Some(&lead) = buf.get(start) else {
            return Ok(Decoded::NeedMore(1));
        };
        let prev = if negative {
            self.state.prev_negative
        } else {
            self.state.prev_positive
        };
        let (value, used) = if lead == 0xfe {
            let Some(&[hi, lo]) = buf
                .get(start + 1..start + 3)
                .map(<&[u8; 2]>::try_from)
                .and_then(Result::ok)
            else {
                return Ok(Decoded::NeedMore(start + 3 - buf.len()));
            };
            if hi & 0x80 == 0 {
                (prev + ((i64::from(hi) << 8) | i64::from(lo)), start + 3)
            } else {
                let Some(&[b2, b3]) = buf
                    .get(start + 3..start + 5)
                    .map(<&[u8; 2]>::try_from)
                    .and_then(Result::ok)
                else {
                    return Ok(Decoded::NeedMore(start + 5 - buf.len()));
                };
                let abs = (i64::from(hi & 0x7f) << 24)
                    | i64::from(lo)
                    | (i64::from(b2) << 8)
                    | (i64::from(b3) << 16);
                (abs, start + 5)
            }
        } else {
            (prev + i64::from(lead), start + 1)
        };
        if value > MAX_NDX {
            return Err(DecodeError::Invalid {
                what: "file index",
                value,
            });
        }
        let ndx = i32::try_from(value).map_err(|_| DecodeError::Invalid {
            what: "file index",
            value,
        })?;
        if negative {
            self.state.prev_negative = value;
            Ok(Decoded::Done { value: -ndx, used })
        } else {
            self.state.prev_positive = value;
            Ok(Decoded::Done { value: ndx, used })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 3.9's example sequence for one direction.
    const ROWS: &[(i32, &[u8])] = &[
        (0, &[0x01]),
        (2, &[0x02]),
        (3, &[0x01]),
        (5, &[0x02]),
        (6, &[0x01]),
        (NDX_DONE, &[0x00]),
        (-102, &[0xff, 0x65]),
        (NDX_FLIST_EOF, &[0xff, 0xfe, 0x80, 0x02, 0x00, 0x00]),
        (300, &[0xfe, 0x01, 0x26]),
        (100_000, &[0xfe, 0x80, 0xa0, 0x86, 0x01]),
        (NDX_DEL_STATS, &[0xff, 0x01]),
        (100_000, &[0xfe, 0x00, 0x00]),
        (100_253, &[0xfd]),
        (100_507, &[0xfe, 0x00, 0xfe]),
        (NDX_FLIST_OFFSET, &[0xff, 0x62]),
    ];

    #[test]
    fn section_3_9_sequence() {
        let mut enc = NdxEncoder::new(32);
        let mut dec = NdxDecoder::new(32);
        for &(ndx, bytes) in ROWS {
            let mut out = Vec::new();
            enc.encode(&mut out, ndx);
            assert_eq!(out, bytes, "encode {ndx}");
            for cut in 0..bytes.len() {
                let r = dec.decode(&bytes[..cut]).unwrap();
                assert!(
                    matches!(r, Decoded::NeedMore(n) if n >= 1),
                    "{ndx} cut {cut}: {r:?}"
                );
            }
            assert_eq!(
                dec.decode(bytes).unwrap(),
                Decoded::Done {
                    value: ndx,
                    used: bytes.len()
                }
            );
        }
    }

    #[test]
    fn old_protocols_use_int32() {
        let rows: &[(i32, [u8; 4])] = &[(0, [0; 4]), (NDX_DONE, [0xff; 4]), (300, [0x2c, 1, 0, 0])];
        for &(ndx, bytes) in rows {
            let mut out = Vec::new();
            NdxEncoder::new(29).encode(&mut out, ndx);
            assert_eq!(out, bytes);
            assert_eq!(
                NdxDecoder::new(27).decode(&bytes).unwrap(),
                Decoded::Done {
                    value: ndx,
                    used: 4
                }
            );
        }
    }

    #[test]
    fn rejects_overflowing_deltas() {
        let mut dec = NdxDecoder::new(30);
        assert_eq!(
            dec.decode(&[0xfe, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            Decoded::Done {
                value: 0x7fff_ffff,
                used: 5
            }
        );
        assert!(dec.decode(&[0x01]).is_err());
        // A failed decode leaves the state alone.
        assert_eq!(
            dec.decode(&[0xfe, 0x00, 0x00]).unwrap(),
            Decoded::Done {
                value: 0x7fff_ffff,
                used: 3
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(seq: Vec<i32>, protocol in 27u8..=32) {
            let seq: Vec<i32> = seq.into_iter().map(|v| v.max(-i32::MAX)).collect();
            let mut enc = NdxEncoder::new(protocol);
            let mut out = Vec::new();
            for &v in &seq { enc.encode(&mut out, v); }
            let mut dec = NdxDecoder::new(protocol);
            let mut rest = &out[..];
            for &v in &seq {
                match dec.decode(rest).unwrap() {
                    Decoded::Done { value, used } => { proptest::prop_assert_eq!(value, v); rest = &rest[used..]; }
                    Decoded::NeedMore(n) => proptest::prop_assert!(false, "need {n}"),
                }
            }
            proptest::prop_assert!(rest.is_empty());
        }

        #[test]
        fn small_steps_roundtrip(steps in proptest::collection::vec(-300i32..300, 0..64)) {
            let mut enc = NdxEncoder::new(31);
            let mut dec = NdxDecoder::new(31);
            let mut cur = 0i32;
            for s in steps {
                cur = (cur + s).clamp(-i32::MAX, i32::MAX);
                let mut out = Vec::new();
                enc.encode(&mut out, cur);
                proptest::prop_assert_eq!(dec.decode(&out).unwrap(), Decoded::Done { value: cur, used: out.len() });
            }
        }

        #[test]
        fn decode_never_panics(data: Vec<u8>, protocol in 27u8..=32) {
            let mut dec = NdxDecoder::new(protocol);
            let mut rest = &data[..];
            while let Ok(Decoded::Done { used, .. }) = dec.decode(rest) {
                proptest::prop_assert!(used <= rest.len() && used > 0);
                rest = &rest[used..];
            }
        }
    }
}
