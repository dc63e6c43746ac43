//! Bytes to values and back: rsync's integer and string encodings, file
//! indexes, multiplexed frames and the version/capability vocabulary.
//!
//! Layer: wire (L0). Uses only `bytes` and `thiserror`; does no I/O.
//! Mirrors upstream io.c (`read_int`, `write_varint`, `read_varlong`, ...).
//!
//! Every decoder takes a byte slice and either finishes ([`Decoded::Done`],
//! saying how many bytes it used) or asks for more ([`Decoded::NeedMore`]).
//! Malformed input is a [`DecodeError`]; nothing here panics on peer data.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod int;
mod mux;
mod ndx;
mod negotiate;
mod reader;
mod varint;
mod version;

pub use int::{
    decode_i32, decode_longint, decode_u8, decode_u16, encode_i32, encode_longint, encode_u16,
};
pub use mux::{
    Frame, FrameHeader, MAX_FRAME_DATA, MPLEX_BASE, MsgCode, MuxDecoder, decode_frame_header,
    encode_frame_header, encode_frames,
};
pub use ndx::{NDX_DEL_STATS, NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET, NdxDecoder, NdxEncoder};
pub use negotiate::{
    CHECKSUM_NAMES, COMPRESS_NAMES, choose_as_client, choose_as_server, client_list,
    names_from_list, negotiation_failed, server_list,
};
pub use reader::{ReadError, Reader, encode_varint30, encode_varlong30};
pub use varint::{
    decode_varint, decode_varlong, decode_vstring, encode_varint, encode_varlong, encode_vstring,
};
pub use version::{Capabilities, CompatFlags, ProtocolVersion};

/// The result of a decoder that may need more input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A value was decoded from the first `used` bytes.
    Done {
        /// The decoded value.
        value: T,
        /// How many input bytes it took.
        used: usize,
    },
    /// At least this many more bytes are needed before the value can be decoded.
    NeedMore(usize),
}

impl<T> Decoded<T> {
    /// Maps the value of a finished decode.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Decoded<U> {
        match self {
            Decoded::Done { value, used } => Decoded::Done {
                value: f(value),
                used,
            },
            Decoded::NeedMore(n) => Decoded::NeedMore(n),
        }
    }
}

/// Malformed bytes from the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A varint or varlong lead byte announced more bytes than the type holds.
    #[error("variable-length integer tag {0:#04x} announces too many bytes")]
    VarintTag(u8),
    /// A length read off the wire exceeds what we accept.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// What was being read.
        what: &'static str,
        /// The length announced by the peer.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// A value is outside its legal range.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// The offending value.
        value: i64,
    },
    /// A structural rule of the protocol was broken.
    #[error("{0}")]
    Protocol(&'static str),
    /// A frame header's tag byte names no message code (rsync: "unexpected tag").
    #[error("unexpected tag {0} in multiplexed stream")]
    UnknownTag(u8),
    /// An internal-only message code arrived from the network.
    #[error("invalid multi-message {0} from the peer")]
    InvalidMessage(u8),
    /// A non-data message is longer than we accept.
    #[error("multiplexing overflow: message {code} of {len} bytes exceeds {max}")]
    MuxOverflow {
        /// The message code.
        code: u8,
        /// The announced payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The peer's protocol version is outside what rsync ever used.
    #[error("protocol version mismatch -- is your shell clean? (peer sent {0})")]
    VersionMismatch(i32),
    /// The four version bytes are printable text: the remote shell printed
    /// something (a banner, a message of the day) before rsync started.
    #[error(
        "protocol version mismatch -- is your shell clean? The remote shell printed text before rsync started: {text:?}"
    )]
    ShellNotClean {
        /// The four bytes, as text.
        text: [char; 4],
    },
    /// The peer speaks a protocol older than we support.
    #[error("peer protocol version {peer} is older than {min}, the oldest we support")]
    VersionTooOld {
        /// The peer's version.
        peer: i32,
        /// Our oldest version.
        min: u8,
    },
}

/// Upper bounds on every length read off the wire, so that memory stays
/// bounded whatever the peer sends, and the deadlines that keep a silent
/// peer from holding a session forever. The defaults follow rsync 3.5.0
/// where it has a limit, and are generous but finite where it has none.
///
/// This is the one place where the defaults are written down:
///
/// | Limit | Default | rsync 3.5.0 |
/// |---|---|---|
/// | [`max_name_len`](Self::max_name_len) | 4095 bytes | `MAXPATHLEN` |
/// | [`max_link_len`](Self::max_link_len) | 4095 bytes | `MAXPATHLEN` |
/// | [`max_flist_entries`](Self::max_flist_entries) | 64 Mi entries | none |
/// | [`max_id_name_len`](Self::max_id_name_len) | 255 bytes | one length byte |
/// | [`max_msg_len`](Self::max_msg_len) | 5119 bytes | "multiplexing overflow" at 5120 |
/// | [`max_sum_count`](Self::max_sum_count) | 16 Mi blocks | none |
/// | [`max_token_len`](Self::max_token_len) | 16 MiB | none |
/// | [`max_filter_len`](Self::max_filter_len) | 8192 bytes | `MAXPATHLEN` per rule |
/// | [`max_vstring_len`](Self::max_vstring_len) | 255 bytes | 256-byte buffer |
/// | [`max_xattr_count`](Self::max_xattr_count) | 65536 | none |
/// | [`max_xattr_value_len`](Self::max_xattr_value_len) | 128 MiB | `MAX_XATTR_VALUE_BYTES` |
/// | [`max_alloc`](Self::max_alloc) | 1 GiB | none |
/// | decompressed output of one file | twice the listed size + 64 MiB | none |
/// | daemon argument words | 10,000 words, 256 KiB in all | none |
/// | daemon text lines (greeting, module, auth) | 4096 bytes | `BIGPATHBUFLEN` |
/// | [`handshake_timeout_secs`](Self::handshake_timeout_secs) | 60 s (daemon side) | none |
/// | [`idle_timeout_secs`](Self::idle_timeout_secs) | 600 s (every session) | none |
///
/// A peer past a length limit gets a decode error ("error in rsync
/// protocol data stream", exit 12); past the idle timeout, "timeout in
/// data send/receive" (exit 30); past the handshake deadline the daemon
/// logs it and closes the connection.
///
/// The idle timeout is on by default because the peer is untrusted: a
/// server that stops talking, or a client that connects to a daemon and
/// goes quiet after the handshake, would otherwise hold the session (and a
/// daemon thread) forever. `--timeout=N` (or a daemon module's `timeout`)
/// replaces it; a library caller may set [`Limits::idle_timeout_secs`] on
/// `Options::limits` (0 turns it off, which is rsync's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest file name (prefix + suffix), upstream MAXPATHLEN.
    pub max_name_len: usize,
    /// Longest symlink target.
    pub max_link_len: usize,
    /// Most entries in one file list.
    pub max_flist_entries: usize,
    /// Longest user or group name in an id list.
    pub max_id_name_len: usize,
    /// Longest non-data multiplexed message (rsync refuses 5120 and more).
    pub max_msg_len: usize,
    /// Most blocks in one signature.
    pub max_sum_count: usize,
    /// Longest literal token record accepted.
    pub max_token_len: usize,
    /// Longest filter rule.
    pub max_filter_len: usize,
    /// Longest negotiation string (vstring buffer of 256 bytes upstream).
    pub max_vstring_len: usize,
    /// Most xattrs on one file.
    pub max_xattr_count: usize,
    /// Longest xattr value accepted (upstream `MAX_XATTR_VALUE_BYTES`).
    pub max_xattr_value_len: usize,
    /// Largest single allocation made on behalf of the peer.
    pub max_alloc: usize,
    /// Seconds without any byte read or written after which a session
    /// ends with "timeout in data send/receive" (exit 30), when no
    /// `--timeout` is given; 0: none.
    pub idle_timeout_secs: u32,
    /// Seconds a daemon client may take from connecting to the start of
    /// the transfer (greeting, module, authentication, argument words).
    pub handshake_timeout_secs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_name_len: 4095,
            max_link_len: 4095,
            max_flist_entries: 64 * 1024 * 1024,
            max_id_name_len: 255,
            max_msg_len: 5119,
            max_sum_count: 16 * 1024 * 1024,
            max_token_len: 16 * 1024 * 1024,
            max_filter_len: 8192,
            max_vstring_len: 255,
            max_xattr_count: 65536,
            max_xattr_value_len: 128 * 1024 * 1024,
            max_alloc: 1 << 30,
            idle_timeout_secs: 600,
            handshake_timeout_secs: 60,
        }
    }
}

/// Checks a peer-announced length against a limit.
///
/// # Errors
/// [`DecodeError::TooLong`] when `len > max`.
pub fn check_len(what: &'static str, len: u64, max: usize) -> Result<usize, DecodeError> {
    if len > max as u64 {
        Err(DecodeError::TooLong {
            what,
            len,
            max: max as u64,
        })
    } else {
        usize::try_from(len).map_err(|_| DecodeError::TooLong {
            what,
            len,
            max: max as u64,
        })
    }
}
