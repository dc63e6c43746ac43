//! Protocol versions, compat flags and the client's capability string.
//!
//! Layer: wire. Uses only `wire` items; does no IO.
//! Mirrors upstream compat.c (`setup_protocol`, `set_allow_inc_recurse`, the
//! `CF_*` bits), options.c (`maybe_add_e_option`) and the protocol checks of
//! rsync.h. Version differences are named here as predicates so that role
//! code never compares bare numbers.

use super::DecodeError;

/// A negotiated protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(pub u8);

/// Lowest peer value rsync accepts before it calls the peer hopeless.
const PEER_FLOOR: i32 = 20;
/// Highest peer value rsync accepts.
const PEER_CEILING: i32 = 40;

impl ProtocolVersion {
    /// Oldest protocol we speak.
    pub const MIN: ProtocolVersion = ProtocolVersion(27);
    /// Newest protocol we speak.
    pub const MAX: ProtocolVersion = ProtocolVersion(32);

    /// Settles the session's version from `ours` (our maximum or the user's
    /// `--protocol`) and the int32 the peer sent: the smaller of the two.
    ///
    /// ```
    /// use ferrsync::wire::ProtocolVersion;
    /// assert_eq!(ProtocolVersion::negotiate(32, 29).unwrap(), ProtocolVersion(29));
    /// assert!(ProtocolVersion::negotiate(32, 0x7273_7961).unwrap_err()
    ///     .to_string().contains("is your shell clean?"));
    /// ```
    ///
    /// # Errors
    /// [`DecodeError::ShellNotClean`] when the four bytes look like text,
    /// [`DecodeError::VersionMismatch`] for a value outside 20..=40 and
    /// [`DecodeError::VersionTooOld`] when the result is below [`Self::MIN`].
    pub fn negotiate(ours: u8, peer: i32) -> Result<ProtocolVersion, DecodeError> {
        let bytes = peer.to_le_bytes();
        if bytes
            .iter()
            .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            return Err(DecodeError::ShellNotClean {
                text: bytes.map(char::from),
            });
        }
        if !(PEER_FLOOR..=PEER_CEILING).contains(&peer) {
            return Err(DecodeError::VersionMismatch(peer));
        }
        let chosen = i32::from(ours).min(peer);
        if chosen < i32::from(Self::MIN.0) {
            return Err(DecodeError::VersionTooOld {
                peer: chosen,
                min: Self::MIN.0,
            });
        }
        let v = u8::try_from(chosen).map_err(|_| DecodeError::VersionMismatch(peer))?;
        Ok(ProtocolVersion(v))
    }

    /// Numbers are varints and varlongs instead of int32 and longint.
    #[must_use]
    pub const fn uses_varint(self) -> bool {
        self.0 >= 30
    }

    /// The generator sends item flags with each request.
    #[must_use]
    pub const fn sends_item_flags(self) -> bool {
        self.0 >= 29
    }

    /// File-list entries may carry modification-time nanoseconds.
    #[must_use]
    pub const fn sends_mtime_nsec(self) -> bool {
        self.0 >= 31
    }

    /// The server sends compat flags after the version.
    #[must_use]
    pub const fn has_compat_flags(self) -> bool {
        self.0 >= 30
    }

    /// The client's output to the server is multiplexed too.
    #[must_use]
    pub const fn muxes_client_output(self) -> bool {
        self.0 >= 30
    }

    /// The end of a run has the extra `NDX_DONE` goodbye echo.
    #[must_use]
    pub const fn has_goodbye_echo(self) -> bool {
        self.0 >= 31
    }

    /// Sum headers carry the strong-sum length.
    #[must_use]
    pub const fn sends_s2length(self) -> bool {
        self.0 >= 27
    }

    /// The last transfer phase (phase 2 re-sends failed files from 29 on).
    #[must_use]
    pub const fn max_phase(self) -> u8 {
        if self.0 >= 29 { 2 } else { 1 }
    }

    /// Largest block length a sum header may announce.
    #[must_use]
    pub const fn max_block_size(self) -> u32 {
        if self.0 >= 30 { 1 << 17 } else { 1 << 29 }
    }

    /// File names sort by path components (directories' contents after the
    /// directory) rather than as plain strings.
    #[must_use]
    pub const fn sorts_by_components(self) -> bool {
        self.0 >= 29
    }

    /// `MSG_ERROR_EXIT` travels on the wire.
    #[must_use]
    pub const fn has_error_exit_msg(self) -> bool {
        self.0 >= 31
    }
}

/// The server's compat flags (sent as a varint at protocol >= 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompatFlags(pub u32);

impl CompatFlags {
    /// File lists are sent incrementally.
    pub const INC_RECURSE: CompatFlags = CompatFlags(0x1);
    /// The server sets times on symlinks.
    pub const SYMLINK_TIMES: CompatFlags = CompatFlags(0x2);
    /// The server converts symlink targets with `--iconv`.
    pub const SYMLINK_ICONV: CompatFlags = CompatFlags(0x4);
    /// I/O errors may travel in the end-of-list marker.
    pub const SAFE_FLIST: CompatFlags = CompatFlags(0x8);
    /// No xattr hard-link shortcut.
    pub const AVOID_XATTR_OPTIM: CompatFlags = CompatFlags(0x10);
    /// Seed placement fix for MD5 sums.
    pub const CHKSUM_SEED_FIX: CompatFlags = CompatFlags(0x20);
    /// A partial-dir basis is updated in place.
    pub const INPLACE_PARTIAL_DIR: CompatFlags = CompatFlags(0x40);
    /// Varint file-list flags, and checksum/compression names are negotiated.
    pub const VARINT_FLIST_FLAGS: CompatFlags = CompatFlags(0x80);
    /// Id lists carry the names of uid 0 and gid 0.
    pub const ID0_NAMES: CompatFlags = CompatFlags(0x100);

    /// Whether every bit of `other` is set.
    #[must_use]
    pub const fn contains(self, other: CompatFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: CompatFlags) {
        self.0 |= other.0;
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// The capability string a client passes as the value of `-e` (`.iLsfxCIvu`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// The client's protocol when it announced `P.S` (pre-release builds).
    pub protocol: Option<i32>,
    /// The sub-protocol after the dot, when `protocol` is present.
    pub sub_protocol: Option<i32>,
    /// The capability letters.
    pub letters: String,
}

/// Parses a leading decimal number like C `atoi`, saturating.
fn leading_number(s: &str) -> (Option<i32>, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    if digits.is_empty() {
        return (None, rest);
    }
    let n = digits.bytes().fold(0i32, |n, d| {
        n.saturating_mul(10).saturating_add(i32::from(d - b'0'))
    });
    (Some(n), rest)
}

impl Capabilities {
    /// Parses the value of `-e`: `.letters` or `P.Sletters`.
    ///
    /// ```
    /// use ferrsync::wire::Capabilities;
    /// let c = Capabilities::parse("31.0iLsfxC");
    /// assert_eq!((c.protocol, c.sub_protocol), (Some(31), Some(0)));
    /// assert!(c.has('i') && c.has('C') && !c.has('v'));
    /// assert!(Capabilities::parse(".iLsfxCIvu").has('u'));
    /// ```
    #[must_use]
    pub fn parse(value: &str) -> Capabilities {
        let (protocol, rest) = leading_number(value);
        let (sub_protocol, letters) = match rest.strip_prefix('.') {
            Some(after) if protocol.is_some() => leading_number(after),
            Some(after) => (None, after),
            None => (None, rest),
        };
        Capabilities {
            protocol,
            sub_protocol,
            letters: letters.to_string(),
        }
    }

    /// Whether the client announced `letter`.
    #[must_use]
    pub fn has(&self, letter: char) -> bool {
        self.letters.contains(letter)
    }

    /// The string a ferrsync client sends: `.iLfxCIvu`, without `i` when
    /// incremental recursion is not allowed. No `s`: we build without iconv.
    #[must_use]
    pub fn client_default(inc_recurse: bool) -> String {
        if inc_recurse { ".iLfxCIvu" } else { ".LfxCIvu" }.to_string()
    }

    /// The compat flags a server answers with: `INC_RECURSE` only when the
    /// client sent `i` and we allow it, `SYMLINK_TIMES` from our own ability,
    /// never `SYMLINK_ICONV`, and one bit per letter `f x C I v u`.
    #[must_use]
    pub fn server_compat_flags(&self, allow_inc_recurse: bool, symlink_times: bool) -> CompatFlags {
        let mut flags = CompatFlags::default();
        if allow_inc_recurse && self.has('i') {
            flags.insert(CompatFlags::INC_RECURSE);
        }
        if symlink_times {
            flags.insert(CompatFlags::SYMLINK_TIMES);
        }
        let letters = [
            ('f', CompatFlags::SAFE_FLIST),
            ('x', CompatFlags::AVOID_XATTR_OPTIM),
            ('C', CompatFlags::CHKSUM_SEED_FIX),
            ('I', CompatFlags::INPLACE_PARTIAL_DIR),
            ('v', CompatFlags::VARINT_FLIST_FLAGS),
            ('u', CompatFlags::ID0_NAMES),
        ];
        for (letter, flag) in letters {
            if self.has(letter) {
                flags.insert(flag);
            }
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_table() {
        let ok: &[(u8, i32, u8)] = &[
            (32, 32, 32),
            (32, 31, 31),
            (32, 27, 27),
            (30, 32, 30),
            (32, 40, 32),
        ];
        for &(ours, peer, want) in ok {
            assert_eq!(
                ProtocolVersion::negotiate(ours, peer).unwrap(),
                ProtocolVersion(want),
                "{ours} {peer}"
            );
        }
        let bad: &[(i32, &str)] = &[
            (26, "older than 27"),
            (20, "older than 27"),
            (19, "mismatch"),
            (41, "mismatch"),
            (-1, "mismatch"),
            (i32::from_le_bytes(*b"Welc"), "shell printed text"),
            (i32::from_le_bytes(*b"rsyn"), "is your shell clean?"),
            (i32::from_le_bytes(*b"\r\nOK"), "shell printed text"),
        ];
        for &(peer, text) in bad {
            let e = ProtocolVersion::negotiate(32, peer)
                .unwrap_err()
                .to_string();
            assert!(e.contains(text), "{peer}: {e}");
        }
    }

    #[test]
    fn predicates_by_version() {
        type Row = (u8, [bool; 9], u8, u32);
        let rows: &[Row] = &[
            (
                27,
                [false, false, false, false, false, false, true, false, false],
                1,
                1 << 29,
            ),
            (
                28,
                [false, false, false, false, false, false, true, false, false],
                1,
                1 << 29,
            ),
            (
                29,
                [false, true, false, false, false, false, true, true, false],
                2,
                1 << 29,
            ),
            (
                30,
                [true, true, false, true, true, false, true, true, false],
                2,
                1 << 17,
            ),
            (
                31,
                [true, true, true, true, true, true, true, true, true],
                2,
                1 << 17,
            ),
            (
                32,
                [true, true, true, true, true, true, true, true, true],
                2,
                1 << 17,
            ),
        ];
        for &(v, flags, phase, block) in rows {
            let p = ProtocolVersion(v);
            let got = [
                p.uses_varint(),
                p.sends_item_flags(),
                p.sends_mtime_nsec(),
                p.has_compat_flags(),
                p.muxes_client_output(),
                p.has_goodbye_echo(),
                p.sends_s2length(),
                p.sorts_by_components(),
                p.has_error_exit_msg(),
            ];
            assert_eq!(got, flags, "protocol {v}");
            assert_eq!(p.max_phase(), phase);
            assert_eq!(p.max_block_size(), block);
        }
    }

    #[test]
    fn capabilities_table() {
        let rows: &[(&str, Option<i32>, Option<i32>, &str)] = &[
            (".iLsfxCIvu", None, None, "iLsfxCIvu"),
            (".LsfxCIvu", None, None, "LsfxCIvu"),
            ("31.0iLsfxC", Some(31), Some(0), "iLsfxC"),
            ("32.1", Some(32), Some(1), ""),
            ("iL", None, None, "iL"),
            ("", None, None, ""),
        ];
        for &(s, p, sub, letters) in rows {
            let c = Capabilities::parse(s);
            assert_eq!(
                (c.protocol, c.sub_protocol, c.letters.as_str()),
                (p, sub, letters),
                "{s}"
            );
        }
    }

    #[test]
    fn server_flags_table() {
        // (client letters, allow inc-recurse, symlink times, flags) as observed in the captures.
        let rows: &[(&str, bool, bool, u32)] = &[
            (".iLsfxCIvu", true, true, 0x1fb),
            (".LsfxCIvu", true, true, 0x1fa),
            (".iLsfxCIvu", false, true, 0x1fa),
            (".iL", true, true, 0x03),
            (".iLsfxIu", true, true, 0x15b),
            (".iLfxCIvu", true, false, 0x1f9),
        ];
        for &(s, inc, times, want) in rows {
            let flags = Capabilities::parse(s).server_compat_flags(inc, times);
            assert_eq!(flags, CompatFlags(want), "{s}");
            assert!(!flags.contains(CompatFlags::SYMLINK_ICONV));
        }
        assert_eq!(Capabilities::client_default(true), ".iLfxCIvu");
        assert_eq!(Capabilities::client_default(false), ".LfxCIvu");
        let mut f = CompatFlags::default();
        f.insert(CompatFlags::VARINT_FLIST_FLAGS);
        assert!(f.contains(CompatFlags::VARINT_FLIST_FLAGS) && f.bits() == 0x80);
    }
}
