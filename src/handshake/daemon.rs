//! The daemon text protocol: `@RSYNCD:` greetings, module listing lines,
//! `@ERROR`/`@RSYNCD: EXIT` replies, the authentication challenge and
//! response, and the argument list sent after `@RSYNCD: OK`.
//!
//! Layer: handshake (L1). Uses `wire` and the digest crates; does no I/O.
//! Mirrors upstream clientserver.c (`exchange_protocols`,
//! `start_inband_exchange`, the listing in `send_listing`), compat.c
//! (`output_daemon_greeting`, `negotiate_daemon_auth`), authenticate.c
//! (`base64_encode`, `gen_challenge`, `generate_hash`) and io.c
//! (`read_args`, `read_line`).
//!
//! A client and a daemon both send their greeting at once, then parse the
//! peer's with [`parse_greeting`], settle the version with
//! [`negotiate_protocol`] and, if the module asks for a password, the digest
//! with [`negotiate_auth_digest`].
//!
//! ```
//! use ferrsync::handshake::daemon::*;
//! let ours = format_greeting(32, &AuthDigest::OFFERED);
//! assert_eq!(ours, "@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n");
//! let peer = parse_greeting(ours.trim_end(), false).unwrap();
//! assert_eq!(negotiate_protocol(30, &peer).unwrap(), 30);
//! let d = negotiate_auth_digest(&AuthDigest::OFFERED, peer.digests.as_deref(), 30, false);
//! assert_eq!(d, Some(AuthDigest::Sha512));
//! ```

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use md4::Md4;
use md5::Md5;
use sha1::Sha1;
use sha1::digest::Digest;
use sha2::{Sha256, Sha512};

use crate::wire::{DecodeError, Decoded};

/// The prefix of every daemon greeting and status line.
const RSYNCD: &str = "@RSYNCD: ";
/// Oldest protocol we speak.
const MIN_PROTOCOL: i32 = 27;
/// Newest protocol we speak.
const MAX_PROTOCOL: i32 = 32;
/// Peer versions outside this range are nonsense (rsync: `MIN_PROTOCOL_VERSION`
/// .. `MAX_PROTOCOL_VERSION` checks in compat.c `setup_protocol`).
const PEER_FLOOR: i32 = 20;
/// See [`PEER_FLOOR`].
const PEER_CEILING: i32 = 40;

/// A digest for daemon authentication (the `@RSYNCD: AUTHREQD` exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthDigest {
    /// SHA-512: what two rsync 3.2.7+ OpenSSL builds agree on.
    Sha512,
    /// SHA-256.
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5: the choice at protocol >= 30 when a greeting carries no list.
    Md5,
    /// MD4 as negotiated from a digest list (no seed bytes).
    Md4,
    /// The legacy MD4 of protocols < 30 without a list: four zero bytes are
    /// hashed before the data (upstream `CSUM_MD4_OLD` with seed 0).
    Md4Old,
}

impl AuthDigest {
    /// The digests we offer, strongest first (rsync 3.5.0 with OpenSSL).
    pub const OFFERED: [AuthDigest; 5] = [
        AuthDigest::Sha512,
        AuthDigest::Sha256,
        AuthDigest::Sha1,
        AuthDigest::Md5,
        AuthDigest::Md4,
    ];

    /// The name used in greetings; [`AuthDigest::Md4Old`] is `"md4"` too.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AuthDigest::Sha512 => "sha512",
            AuthDigest::Sha256 => "sha256",
            AuthDigest::Sha1 => "sha1",
            AuthDigest::Md5 => "md5",
            AuthDigest::Md4 | AuthDigest::Md4Old => "md4",
        }
    }

    /// Parses a greeting name, case-insensitively (`"md4"` is the modern
    /// [`AuthDigest::Md4`]).
    #[must_use]
    pub fn from_name(s: &str) -> Option<Self> {
        Self::OFFERED
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
    }

    /// Length of the raw digest in bytes.
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            AuthDigest::Sha512 => 64,
            AuthDigest::Sha256 => 32,
            AuthDigest::Sha1 => 20,
            AuthDigest::Md5 | AuthDigest::Md4 | AuthDigest::Md4Old => 16,
        }
    }

    /// Rank for `auth digest = NAME` minimums: lower is stronger.
    /// [`AuthDigest::Md4Old`] ranks with MD4.
    #[must_use]
    pub fn rank(self) -> usize {
        match self {
            AuthDigest::Sha512 => 0,
            AuthDigest::Sha256 => 1,
            AuthDigest::Sha1 => 2,
            AuthDigest::Md5 => 3,
            AuthDigest::Md4 | AuthDigest::Md4Old => 4,
        }
    }

    /// Hashes the concatenation of `parts` (with the legacy zero prefix for
    /// [`AuthDigest::Md4Old`]).
    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            h.update(prefix);
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            AuthDigest::Sha512 => run::<Sha512>(&[], parts),
            AuthDigest::Sha256 => run::<Sha256>(&[], parts),
            AuthDigest::Sha1 => run::<Sha1>(&[], parts),
            AuthDigest::Md5 => run::<Md5>(&[], parts),
            AuthDigest::Md4 => run::<Md4>(&[], parts),
            AuthDigest::Md4Old => run::<Md4>(&[0; 4], parts),
        }
    }
}

/// A peer's `@RSYNCD:` greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The peer's protocol number.
    pub protocol: i32,
    /// The peer's sub-protocol (0 for releases and when absent below 30).
    pub sub: i32,
    /// The peer's auth digest names, if it sent a list (3.2.7+).
    pub digests: Option<Vec<String>>,
}

/// A greeting we cannot work with. `Display` gives rsync's text for the side
/// that reports it: the client prints it, a daemon sends it after `@ERROR: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GreetingError {
    /// The line does not start with `@RSYNCD: <number>`.
    #[error("{}", if *.peer_is_client { "protocol startup error".to_owned() } else { format!("server sent \"{line}\" rather than greeting") })]
    NotGreeting {
        /// The line as received.
        line: String,
        /// Whether the peer is the client (we are the daemon).
        peer_is_client: bool,
    },
    /// No `.sub` at protocol >= 30.
    #[error("{} omitted the subprotocol value: {line}", if *.peer_is_client { "your client" } else { "the server" })]
    NoSubprotocol {
        /// The line as received.
        line: String,
        /// Whether the peer is the client.
        peer_is_client: bool,
    },
    /// No digest list at protocol > 31.
    #[error("{} omitted the digest name list: {line}", if *.peer_is_client { "your client" } else { "the server" })]
    NoDigestList {
        /// The line as received.
        line: String,
        /// Whether the peer is the client.
        peer_is_client: bool,
    },
    /// The peer's number is outside anything rsync ever used.
    #[error("protocol version mismatch -- is your shell clean? (peer sent {0})")]
    VersionMismatch(i32),
    /// The negotiated protocol is older than we speak.
    #[error(
        "protocol version mismatch: the peer's protocol {peer} is older than {min}, the oldest we support"
    )]
    VersionTooOld {
        /// The peer's number.
        peer: i32,
        /// Our oldest.
        min: i32,
    },
}

/// Our greeting line, `\n` included. With no digests it is the pre-3.2.7
/// form without a list (`"@RSYNCD: 31.0\n"`); `protocol < 30` with no
/// digests still sends `.0`, as rsync 3.x at `--protocol=29` does.
///
/// ```
/// use ferrsync::handshake::daemon::{format_greeting, AuthDigest};
/// assert_eq!(format_greeting(29, &[]), "@RSYNCD: 29.0\n");
/// assert_eq!(format_greeting(32, &[AuthDigest::Md5, AuthDigest::Md4]), "@RSYNCD: 32.0 md5 md4\n");
/// ```
#[must_use]
pub fn format_greeting(protocol: u8, digests: &[AuthDigest]) -> String {
    let mut s = format!("{RSYNCD}{protocol}.0");
    for d in digests {
        s.push(' ');
        s.push_str(d.name());
    }
    s.push('\n');
    s
}

/// Parses a leading optionally signed decimal integer, like `%d`, returning
/// it and the rest of the text.
fn leading_int(s: &str) -> Option<(i32, &str)> {
    let body = s.trim_start();
    let sign_len = usize::from(body.starts_with(['-', '+']));
    let digits = body
        .get(sign_len..)?
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return None;
    }
    let (num, rest) = body.split_at(sign_len + digits);
    // Absurdly long numbers saturate; the range check rejects them later.
    let value = num.parse::<i64>().map_or(i32::MAX, |v| {
        i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
    });
    Some((value, rest))
}

/// Parses the peer's greeting line (without its `\n`; a trailing `\r` is
/// ignored), applying rules 1-3 of the daemon greeting: a number must
/// follow `@RSYNCD: `; a missing `.sub` is fatal at protocol >= 30; a
/// missing digest list is fatal above 31. `peer_is_client` is true when we
/// are the daemon; it selects rsync's wording of the errors.
///
/// ```
/// use ferrsync::handshake::daemon::parse_greeting;
/// let g = parse_greeting("@RSYNCD: 27", false).unwrap();
/// assert_eq!((g.protocol, g.sub, g.digests), (27, 0, None));
/// let e = parse_greeting("@RSYNCD: 32.0", true).unwrap_err();
/// assert_eq!(e.to_string(), "your client omitted the digest name list: @RSYNCD: 32.0");
/// ```
///
/// # Errors
/// A [`GreetingError`] naming the broken rule.
pub fn parse_greeting(line: &str, peer_is_client: bool) -> Result<Greeting, GreetingError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let not_greeting = || GreetingError::NotGreeting {
        line: line.to_owned(),
        peer_is_client,
    };
    let after = line.strip_prefix(RSYNCD).ok_or_else(not_greeting)?;
    let (protocol, rest) = leading_int(after).ok_or_else(not_greeting)?;
    let sub = rest
        .strip_prefix('.')
        .and_then(leading_int)
        .map(|(sub, _)| sub);
    let sub = match sub {
        Some(s) => s,
        None if protocol >= 30 => {
            return Err(GreetingError::NoSubprotocol {
                line: line.to_owned(),
                peer_is_client,
            });
        }
        None => 0,
    };
    // Like rsync: the list is whatever follows the first space after the
    // "@RSYNCD: " prefix, even if it is empty.
    let digests = after.split_once(' ').map(|(_, list)| {
        list.split_ascii_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    if digests.is_none() && protocol > 31 {
        return Err(GreetingError::NoDigestList {
            line: line.to_owned(),
            peer_is_client,
        });
    }
    Ok(Greeting {
        protocol,
        sub,
        digests,
    })
}

/// Settles the session's protocol: the smaller of ours and the peer's, one
/// lower when the peer is a pre-release build of a protocol at or below
/// ours (rule 4; we are always a release, sub 0).
///
/// # Errors
/// [`GreetingError::VersionMismatch`] for a peer number outside 20..=40,
/// [`GreetingError::VersionTooOld`] when the result is below 27.
pub fn negotiate_protocol(ours: u8, peer: &Greeting) -> Result<u8, GreetingError> {
    if !(PEER_FLOOR..=PEER_CEILING).contains(&peer.protocol) {
        return Err(GreetingError::VersionMismatch(peer.protocol));
    }
    let ours = i32::from(ours).min(MAX_PROTOCOL);
    let mut chosen = ours.min(peer.protocol);
    if peer.protocol <= ours && peer.sub != 0 {
        chosen -= 1;
    }
    if chosen < MIN_PROTOCOL {
        return Err(GreetingError::VersionTooOld {
            peer: peer.protocol,
            min: MIN_PROTOCOL,
        });
    }
    u8::try_from(chosen).map_err(|_| GreetingError::VersionMismatch(peer.protocol))
}

/// Chooses the auth digest.
///
/// With a peer list, the name rule of the checksum negotiation: as a client
/// our earliest digest the daemon lists; as a daemon the client's earliest
/// digest that we offer (this agrees with every rsync). Without a list:
/// MD5 at protocol >= 30, else the legacy [`AuthDigest::Md4Old`] (if we
/// offer MD5 / MD4 at all). `None`: nothing in common; a daemon then sends
/// `@ERROR: your client does not support one of our daemon-auth checksums:
/// <our list>` and exits with code 4.
#[must_use]
pub fn negotiate_auth_digest(
    ours: &[AuthDigest],
    peer_list: Option<&[String]>,
    protocol: u8,
    as_daemon: bool,
) -> Option<AuthDigest> {
    let offers = |d: AuthDigest| ours.iter().any(|o| o.name() == d.name());
    let Some(list) = peer_list else {
        return if protocol >= 30 {
            offers(AuthDigest::Md5).then_some(AuthDigest::Md5)
        } else {
            offers(AuthDigest::Md4).then_some(AuthDigest::Md4Old)
        };
    };
    let theirs: Vec<AuthDigest> = list
        .iter()
        .filter_map(|n| AuthDigest::from_name(n))
        .collect();
    if as_daemon {
        theirs.into_iter().find(|&d| offers(d))
    } else {
        ours.iter()
            .copied()
            .map(|d| {
                if d == AuthDigest::Md4Old {
                    AuthDigest::Md4
                } else {
                    d
                }
            })
            .find(|d| theirs.contains(d))
    }
}

/// Standard base64 (`A-Z a-z 0-9 + /`) without `=` padding, as rsync's
/// `base64_encode(.., pad = 0)`.
///
/// ```
/// use ferrsync::handshake::daemon::base64_nopad;
/// assert_eq!(base64_nopad(b"hello"), "aGVsbG8");
/// assert_eq!(base64_nopad(&[0xff; 3]), "////");
/// ```
#[must_use]
pub fn base64_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |i: u32| char::from(ALPHABET.get((i & 63) as usize).copied().unwrap_or(b'='));
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| chunk.get(i).map_or(0, |&v| u32::from(v));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        if chunk.len() > 1 {
            out.push(sym(n >> 6));
        }
        if chunk.len() > 2 {
            out.push(sym(n));
        }
    }
    out
}

/// The client's answer to `@RSYNCD: AUTHREQD <challenge>`:
/// `base64_nopad(H(password || challenge))` (for [`AuthDigest::Md4Old`],
/// MD4 over four zero bytes first). The line to send is
/// `"<user> <response>\n"`.
#[must_use]
pub fn auth_response(d: AuthDigest, password: &[u8], challenge: &str) -> String {
    base64_nopad(&d.hash(&[password, challenge.as_bytes()]))
}

/// A fresh challenge for `@RSYNCD: AUTHREQD`: the chosen digest over 32
/// bytes from the operating system's CSPRNG, then rsync's 32-byte block
/// (client address text NUL-padded to 16 bytes, seconds, microseconds and
/// pid as little-endian int32, four zero bytes), base64 without padding.
/// Its length is that of a response: 22 characters for MD4/MD5, 27 for
/// SHA-1, 43 for SHA-256, 86 for SHA-512.
///
/// If the CSPRNG fails, the randomly keyed hasher of the standard library
/// is mixed in instead; rsync in that case falls back to time and pid only.
#[must_use]
pub fn make_challenge(d: AuthDigest, client_addr: &str) -> String {
    let mut rnd = [0u8; 32];
    if getrandom::fill(&mut rnd).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for chunk in rnd.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(client_addr.as_bytes());
            let v = h.finish().to_le_bytes();
            for (dst, src) in chunk.iter_mut().zip(v) {
                *dst = src;
            }
        }
    }
    let mut block = [0u8; 32];
    for (dst, src) in block.iter_mut().zip(client_addr.bytes().take(16)) {
        *dst = src;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Truncation to 32 bits is what rsync's SIVAL does.
    #[allow(clippy::cast_possible_truncation)]
    let secs = now.as_secs() as u32;
    let fields = [secs, now.subsec_micros(), std::process::id()];
    for (slot, v) in block.chunks_mut(4).skip(4).zip(fields) {
        slot.copy_from_slice(&v.to_le_bytes());
    }
    base64_nopad(&d.hash(&[&rnd, &block]))
}

/// What one daemon line (without its `\n`) means to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonLine<'a> {
    /// `@RSYNCD: OK`: send the arguments.
    Ok,
    /// `@RSYNCD: EXIT`: the module listing is complete (exit 0).
    Exit,
    /// `@RSYNCD: AUTHREQD <challenge>`: answer with user and response.
    AuthReqd(&'a str),
    /// A line starting with `@ERROR`: the text after `@ERROR: ` (or after
    /// `@ERROR` when the colon is missing). The client prints it and exits
    /// with code 5.
    Error(&'a str),
    /// Anything else: MOTD or listing text to print.
    Text(&'a str),
}

/// Classifies one line from a daemon (a trailing `\r` or `\n` is ignored).
///
/// ```
/// use ferrsync::handshake::daemon::{classify_line, DaemonLine};
/// assert_eq!(classify_line("@RSYNCD: AUTHREQD abc"), DaemonLine::AuthReqd("abc"));
/// assert_eq!(classify_line("@ERROR: Unknown module 'x'"), DaemonLine::Error("Unknown module 'x'"));
/// assert_eq!(classify_line("pub            \tpublic"), DaemonLine::Text("pub            \tpublic"));
/// ```
#[must_use]
pub fn classify_line(line: &str) -> DaemonLine<'_> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(challenge) = line.strip_prefix("@RSYNCD: AUTHREQD ") {
        DaemonLine::AuthReqd(challenge)
    } else if line == "@RSYNCD: OK" {
        DaemonLine::Ok
    } else if line == "@RSYNCD: EXIT" {
        DaemonLine::Exit
    } else if let Some(rest) = line.strip_prefix("@ERROR") {
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        DaemonLine::Error(rest.strip_prefix(' ').unwrap_or(rest))
    } else {
        DaemonLine::Text(line)
    }
}

/// One line of a module listing: the name padded with spaces to at least
/// 15 characters, a tab, the comment, `\n` (rsync: `"%-15s\t%s\n"`).
///
/// ```
/// use ferrsync::handshake::daemon::module_list_line;
/// assert_eq!(module_list_line("pub", "public"), "pub            \tpublic\n");
/// ```
#[must_use]
pub fn module_list_line(name: &str, comment: &str) -> String {
    let mut s = String::with_capacity(name.len().max(15) + comment.len() + 2);
    let _ = writeln!(s, "{name:<15}\t{comment}");
    s
}

/// The argument list sent after `@RSYNCD: OK`: at protocol >= 30 every word
/// NUL-terminated and a lone NUL at the end, below 30 every word
/// `\n`-terminated and an empty line at the end.
///
/// ```
/// use ferrsync::handshake::daemon::encode_args;
/// let words = ["--server".to_owned(), ".".to_owned()];
/// assert_eq!(encode_args(&words, 30), b"--server\0.\0\0");
/// assert_eq!(encode_args(&words, 29), b"--server\n.\n\n");
/// ```
#[must_use]
pub fn encode_args(words: &[String], protocol: u8) -> Vec<u8> {
    let end = if protocol >= 30 { b'\0' } else { b'\n' };
    let mut out = Vec::with_capacity(words.iter().map(|w| w.len() + 1).sum::<usize>() + 1);
    for w in words {
        out.extend_from_slice(w.as_bytes());
        out.push(end);
    }
    out.push(end);
    out
}

/// Decodes an argument list as raw bytes (file names need not be UTF-8).
/// At protocol >= 30 words end at NUL; below 30 at `\n` or `\r` (as rsync's
/// `read_line`, so a `\r\n` pair ends the list early there too). An empty
/// word ends the list. `max_total` bounds the bytes consumed, `max_words`
/// the number of words (rsync allows 16,000 for a daemon).
///
/// # Errors
/// [`DecodeError::TooLong`] when either bound is exceeded.
pub fn decode_args_bytes(
    buf: &[u8],
    protocol: u8,
    max_total: usize,
    max_words: usize,
) -> Result<Decoded<Vec<Vec<u8>>>, DecodeError> {
    let is_end = |b: u8| {
        if protocol >= 30 {
            b == 0
        } else {
            b == b'\n' || b == b'\r'
        }
    };
    let mut words = Vec::new();
    let mut pos = 0;
    loop {
        let window = buf.get(pos..).unwrap_or_default();
        let Some(len) = window.iter().position(|&b| is_end(b)) else {
            if buf.len() > max_total {
                return Err(too_long("daemon argument list", buf.len(), max_total));
            }
            return Ok(Decoded::NeedMore(1));
        };
        let used = pos + len + 1;
        if used > max_total {
            return Err(too_long("daemon argument list", used, max_total));
        }
        if len == 0 {
            return Ok(Decoded::Done { value: words, used });
        }
        if words.len() >= max_words {
            return Err(too_long(
                "daemon argument count",
                words.len() + 1,
                max_words,
            ));
        }
        words.push(window.get(..len).unwrap_or_default().to_vec());
        pos = used;
    }
}

/// [`decode_args_bytes`] for UTF-8 words.
///
/// ```
/// use ferrsync::handshake::daemon::decode_args;
/// use ferrsync::wire::Decoded;
/// let d = decode_args(b"--server\0.\0\0rest", 31, 1024, 10).unwrap();
/// assert_eq!(d, Decoded::Done { value: vec!["--server".into(), ".".into()], used: 12 });
/// assert_eq!(decode_args(b"--server\0", 31, 1024, 10).unwrap(), Decoded::NeedMore(1));
/// ```
///
/// # Errors
/// As [`decode_args_bytes`], and [`DecodeError::Protocol`] for a word that
/// is not UTF-8 (use [`decode_args_bytes`] to accept any bytes).
pub fn decode_args(
    buf: &[u8],
    protocol: u8,
    max_total: usize,
    max_words: usize,
) -> Result<Decoded<Vec<String>>, DecodeError> {
    match decode_args_bytes(buf, protocol, max_total, max_words)? {
        Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
        Decoded::Done { value, used } => {
            let words = value
                .into_iter()
                .map(String::from_utf8)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| DecodeError::Protocol("daemon argument is not valid UTF-8"))?;
            Ok(Decoded::Done { value: words, used })
        }
    }
}

fn too_long(what: &'static str, len: usize, max: usize) -> DecodeError {
    DecodeError::TooLong {
        what,
        len: len as u64,
        max: max as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &[u8] = b"s3cret";

    #[test]
    fn capture_auth_vectors() {
        // (capture, digest, challenge, response) from the capture headers.
        let rows = [
            (
                "03",
                AuthDigest::Sha512,
                "NLtvsqWhUi7+UVlcLOFKRlmC9AeTQY8ksqjWq2JW6s7qmlsl0OMZbQHndQjutH8QptGtRXW+zFJr91jRHUnPiQ",
                "2GJ6sU6L2fqToz2S4wa7e24+7Jhf5AQeqRmBOXMdBMWw2XlbEtBSHFzbG8El/hMUgHGtj2+4+w7EEVahllnONw",
            ),
            (
                "04",
                AuthDigest::Sha512,
                "TTLkNXNQIAaDubBQLQNggL/CAzoiJ6mbMtVDBtcEgsx9z72tY4b6ktzFGzeOR+yg7CdQCFly1PFDx7JSwK8HPA",
                "o7Fxg4l6Tj/rGdOYqviJZ8wdJVKNbqV+cDxE9FIVxgQRIElJFq+fbNPAVjaz3tmZ1ULSAxIf/h/TybDIcRo/Rw",
            ),
            (
                "14",
                AuthDigest::Sha512,
                "5XB2NyqOzALrq2vep8OybprLxeSAbKDinCZ59IhQROpHF2ctrn6bXyxXIMqjUinFq+buf4fbfocttXHUaQ7FOQ",
                "f5UrJI6TQ2tjtu9ucHAvXVx1+1DRIC/pGWeOX8zK6sb1f9i1Pc9DC3aUZ55Jf1gNmzM0e7mNL24B+wu5/X9aGA",
            ),
            (
                "20",
                AuthDigest::Md4Old,
                "gSIVu2F3FFfQfHTS5TiTHw",
                "ssedzqjhqtP1OJZ/ne7WHA",
            ),
            (
                "21",
                AuthDigest::Md5,
                "8u1GrYzwxjRMMPiCd/wn9Q",
                "qWfj0eCvVOLbF89HUogKMg",
            ),
            (
                "29",
                AuthDigest::Md5,
                "nCy2v0VOZOBJLy4H8fnhJw",
                "taNd/QzXcGhwYlV2ly5VgQ",
            ),
            (
                "30",
                AuthDigest::Md4Old,
                "H90Q5Sdc9oBLkWQdDh0o0g",
                "ZpUXAFo7CIT0bVIt8VuoDw",
            ),
        ];
        for (capture, d, challenge, response) in rows {
            assert_eq!(
                auth_response(d, PASSWORD, challenge),
                response,
                "capture {capture}"
            );
        }
        // The modern md4 (from a list) has no zero prefix, so it differs.
        assert_ne!(
            auth_response(AuthDigest::Md4, PASSWORD, "gSIVu2F3FFfQfHTS5TiTHw"),
            "ssedzqjhqtP1OJZ/ne7WHA"
        );
    }

    #[test]
    fn capture_greetings() {
        // (line, protocol, sub, digests) from captures 01, 04, 20, 29, 30.
        let full: Vec<String> = ["sha512", "sha256", "sha1", "md5", "md4"]
            .map(String::from)
            .to_vec();
        let rows: [(&str, i32, i32, Option<Vec<String>>); 5] = [
            (
                "@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4",
                32,
                0,
                Some(full.clone()),
            ),
            (
                "@RSYNCD: 29.0 sha512 sha256 sha1 md5 md4",
                29,
                0,
                Some(full.clone()),
            ),
            ("@RSYNCD: 29.0", 29, 0, None),
            ("@RSYNCD: 31.0", 31, 0, None),
            ("@RSYNCD: 27", 27, 0, None),
        ];
        for (line, protocol, sub, digests) in rows {
            for peer_is_client in [false, true] {
                let g = parse_greeting(line, peer_is_client).unwrap();
                assert_eq!(
                    g,
                    Greeting {
                        protocol,
                        sub,
                        digests: digests.clone()
                    },
                    "{line}"
                );
            }
        }
        assert_eq!(
            format_greeting(32, &AuthDigest::OFFERED),
            "@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n"
        );
        assert_eq!(format_greeting(29, &[]), "@RSYNCD: 29.0\n");
        assert_eq!(
            parse_greeting("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\r\n", false)
                .unwrap()
                .protocol,
            32
        );
    }

    #[test]
    fn greeting_errors() {
        let rows: [(&str, bool, &str); 7] = [
            ("hello", false, "server sent \"hello\" rather than greeting"),
            ("hello", true, "protocol startup error"),
            ("@RSYNCD: x", true, "protocol startup error"),
            (
                "@RSYNCD: 30",
                true,
                "your client omitted the subprotocol value: @RSYNCD: 30",
            ),
            (
                "@RSYNCD: 31",
                false,
                "the server omitted the subprotocol value: @RSYNCD: 31",
            ),
            (
                "@RSYNCD: 32.0",
                true,
                "your client omitted the digest name list: @RSYNCD: 32.0",
            ),
            (
                "@RSYNCD: 32.0",
                false,
                "the server omitted the digest name list: @RSYNCD: 32.0",
            ),
        ];
        for (line, peer_is_client, text) in rows {
            let e = parse_greeting(line, peer_is_client).unwrap_err();
            assert_eq!(e.to_string(), text);
        }
        // A trailing space is an empty list, which rsync accepts.
        let g = parse_greeting("@RSYNCD: 32.0 ", true).unwrap();
        assert_eq!(g.digests, Some(vec![]));
    }

    #[test]
    fn protocol_negotiation() {
        let g = |protocol, sub| Greeting {
            protocol,
            sub,
            digests: None,
        };
        assert_eq!(negotiate_protocol(32, &g(29, 0)), Ok(29));
        assert_eq!(negotiate_protocol(29, &g(32, 0)), Ok(29));
        assert_eq!(negotiate_protocol(32, &g(33, 1)), Ok(32));
        assert_eq!(negotiate_protocol(32, &g(32, 1)), Ok(31));
        assert_eq!(negotiate_protocol(32, &g(31, 2)), Ok(30));
        let e = negotiate_protocol(32, &g(26, 0)).unwrap_err();
        assert!(e.to_string().contains("older than 27"), "{e}");
        let e = negotiate_protocol(32, &g(1234, 0)).unwrap_err();
        assert!(e.to_string().contains("is your shell clean?"), "{e}");
    }

    #[test]
    fn digest_negotiation() {
        // (ours, peer list, protocol, as_daemon, expected)
        type Row<'a> = (
            &'a [AuthDigest],
            Option<Vec<String>>,
            u8,
            bool,
            Option<AuthDigest>,
        );
        let list = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let all = list("sha512 sha256 sha1 md5 md4");
        let o = &AuthDigest::OFFERED;
        let rows: [Row<'_>; 10] = [
            (o, Some(all.clone()), 32, false, Some(AuthDigest::Sha512)),
            (o, Some(all.clone()), 29, true, Some(AuthDigest::Sha512)),
            (o, Some(list("md5 sha1")), 32, true, Some(AuthDigest::Md5)),
            (o, Some(list("md5 sha1")), 32, false, Some(AuthDigest::Sha1)),
            (o, Some(list("MD4")), 32, false, Some(AuthDigest::Md4)),
            (o, Some(list("xxh3 crc")), 32, true, None),
            (o, None, 30, true, Some(AuthDigest::Md5)),
            (o, None, 31, false, Some(AuthDigest::Md5)),
            (o, None, 29, false, Some(AuthDigest::Md4Old)),
            (&[AuthDigest::Sha512], None, 31, true, None),
        ];
        for (ours, peer, protocol, as_daemon, want) in rows {
            assert_eq!(
                negotiate_auth_digest(ours, peer.as_deref(), protocol, as_daemon),
                want,
                "{peer:?} at {protocol}, daemon {as_daemon}"
            );
        }
        for d in AuthDigest::OFFERED {
            assert_eq!(AuthDigest::from_name(d.name()), Some(d));
        }
        assert_eq!(AuthDigest::Md4Old.name(), "md4");
    }

    #[test]
    fn challenges() {
        let rows = [
            (AuthDigest::Md4Old, 22),
            (AuthDigest::Md4, 22),
            (AuthDigest::Md5, 22),
            (AuthDigest::Sha1, 27),
            (AuthDigest::Sha256, 43),
            (AuthDigest::Sha512, 86),
        ];
        for (d, len) in rows {
            let a = make_challenge(d, "127.0.0.1");
            let b = make_challenge(d, "127.0.0.1");
            assert_eq!(a.len(), len, "{d:?}");
            assert_eq!(auth_response(d, b"x", &a).len(), len);
            assert!(
                a.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
            );
            assert_ne!(a, b, "{d:?}");
        }
        // A long IPv6 address text is cut to 16 bytes, not a problem.
        assert_eq!(
            make_challenge(AuthDigest::Md5, "2001:db8:1234:5678::abcd").len(),
            22
        );
    }

    #[test]
    fn base64_table() {
        let rows: [(&[u8], &str); 5] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (raw, enc) in rows {
            assert_eq!(base64_nopad(raw), enc);
        }
    }

    #[test]
    fn lines() {
        let rows = [
            ("@RSYNCD: OK", DaemonLine::Ok),
            ("@RSYNCD: OK\r", DaemonLine::Ok),
            ("@RSYNCD: EXIT", DaemonLine::Exit),
            ("@RSYNCD: AUTHREQD xyz", DaemonLine::AuthReqd("xyz")),
            (
                "@ERROR: auth failed on module upload",
                DaemonLine::Error("auth failed on module upload"),
            ),
            ("@ERROR", DaemonLine::Error("")),
            ("@RSYNCD: 32.0", DaemonLine::Text("@RSYNCD: 32.0")),
            ("", DaemonLine::Text("")),
        ];
        for (line, want) in rows {
            assert_eq!(classify_line(line), want, "{line:?}");
        }
        // Capture 01's listing bytes.
        assert_eq!(
            module_list_line("pub", "public read-only module"),
            "pub            \tpublic read-only module\n"
        );
        assert_eq!(
            module_list_line("upload", "authenticated upload module"),
            "upload         \tauthenticated upload module\n"
        );
        assert_eq!(
            module_list_line("a-very-long-module-name", "c"),
            "a-very-long-module-name\tc\n"
        );
    }

    #[test]
    fn args_capture_bytes() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // Capture 02, C>S 0x002d..0x005f.
        let nul = words(&[
            "--server",
            "--sender",
            "-vlogDtpre.iLsfxCIvu",
            ".",
            "pub/src/",
        ]);
        let nul_bytes: &[u8] = b"--server\0--sender\0-vlogDtpre.iLsfxCIvu\0.\0pub/src/\0\0";
        assert_eq!(encode_args(&nul, 32), nul_bytes);
        // Capture 30, C>S 0x004d..0x0072.
        let newline_words = words(&["--server", "-vlogDtpr", ".", "upload/push260/"]);
        let newline_bytes: &[u8] = b"--server\n-vlogDtpr\n.\nupload/push260/\n\n";
        assert_eq!(encode_args(&newline_words, 27), newline_bytes);

        for (bytes, protocol, want) in [(nul_bytes, 32, &nul), (newline_bytes, 27, &newline_words)]
        {
            let mut stream = bytes.to_vec();
            stream.extend_from_slice(b"\x81\xff");
            assert_eq!(
                decode_args(&stream, protocol, 4096, 100).unwrap(),
                Decoded::Done {
                    value: want.clone(),
                    used: bytes.len()
                }
            );
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode_args(&bytes[..cut], protocol, 4096, 100).unwrap(),
                    Decoded::NeedMore(1),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn args_bounds() {
        assert!(matches!(
            decode_args(b"a\0b\0c\0\0", 30, 1024, 2),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(matches!(
            decode_args(b"abcdefgh", 30, 4, 10),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(matches!(
            decode_args(b"abc\0\0", 30, 4, 10),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(decode_args(b"abc\0\0", 30, 5, 10).is_ok());
        assert!(matches!(
            decode_args(b"\xff\0\0", 30, 64, 10),
            Err(DecodeError::Protocol(_))
        ));
        assert_eq!(
            decode_args_bytes(b"\xff\0\0", 30, 64, 10).unwrap(),
            Decoded::Done {
                value: vec![vec![0xff]],
                used: 3
            }
        );
        // Below 30 a CR ends a word, as in rsync's read_line.
        assert_eq!(
            decode_args(b"a\r\n", 29, 64, 10).unwrap(),
            Decoded::Done {
                value: vec!["a".to_owned()],
                used: 3
            }
        );
    }
}
