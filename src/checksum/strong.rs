//! Strong checksums (`sum2`) and the whole-file checksum, with rsync's seed
//! placement rules.
//!
//! Layer: checksum (L1, pure compute). Uses `md4`, `md-5`, `sha1` and
//! `xxhash-rust`. Mirrors upstream checksum.c (`get_checksum2`, `sum_init`,
//! `sum_update`, `sum_end`, `parse_csum_name`) as built with OpenSSL in
//! rsync 3.5.0.

use md4::Md4;
use md5::Md5;
use sha1::Sha1;
use sha1::digest::Digest;
use xxhash_rust::xxh3::{Xxh3Default, xxh3_64_with_seed, xxh3_128_with_seed};
use xxhash_rust::xxh64::{Xxh64, xxh64};

/// The transfer checksum algorithm of a session.
#[doc(alias = "checksum2")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrongKind {
    /// MD4 (RFC 1320); the default below protocol 30.
    Md4,
    /// MD5; the default at protocol 30 and 31 without negotiation.
    Md5,
    /// SHA-1 (only offered by OpenSSL builds).
    Sha1,
    /// XXH64 (also named "xxhash").
    Xxh64,
    /// XXH3, 64-bit output.
    Xxh3,
    /// XXH3, 128-bit output.
    Xxh128,
    /// No checksum: whole-file transfers, a one-byte zero digest.
    None,
}

impl StrongKind {
    /// Every kind, in rsync's order of preference for negotiation.
    pub const ALL: [StrongKind; 7] = [
        StrongKind::Xxh128,
        StrongKind::Xxh3,
        StrongKind::Xxh64,
        StrongKind::Md5,
        StrongKind::Md4,
        StrongKind::Sha1,
        StrongKind::None,
    ];

    /// Parses a negotiation or `--checksum-choice` name, case-insensitively;
    /// `"xxhash"` is XXH64.
    ///
    /// ```
    /// use ferrsync::checksum::StrongKind;
    /// assert_eq!(StrongKind::from_name("XXHASH"), Some(StrongKind::Xxh64));
    /// assert_eq!(StrongKind::from_name("crc32"), None);
    /// ```
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        Some(match n.as_str() {
            "md4" => StrongKind::Md4,
            "md5" => StrongKind::Md5,
            "sha1" => StrongKind::Sha1,
            "xxh64" | "xxhash" => StrongKind::Xxh64,
            "xxh3" => StrongKind::Xxh3,
            "xxh128" => StrongKind::Xxh128,
            "none" => StrongKind::None,
            _ => return None,
        })
    }

    /// The name rsync uses on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            StrongKind::Md4 => "md4",
            StrongKind::Md5 => "md5",
            StrongKind::Sha1 => "sha1",
            StrongKind::Xxh64 => "xxh64",
            StrongKind::Xxh3 => "xxh3",
            StrongKind::Xxh128 => "xxh128",
            StrongKind::None => "none",
        }
    }

    /// Digest length in bytes (upstream `csum_len_for_type`).
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            StrongKind::Md4 | StrongKind::Md5 | StrongKind::Xxh128 => 16,
            StrongKind::Sha1 => 20,
            StrongKind::Xxh64 | StrongKind::Xxh3 => 8,
            StrongKind::None => 1,
        }
    }
}

/// Where the checksum seed goes when hashing with MD4, MD5 or SHA-1.
///
/// For the xxhash family the seed is the hash function's own seed
/// parameter: any placement other than [`SeedPlacement::Omit`] means "seeded".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedPlacement {
    /// The seed is not hashed.
    Omit,
    /// The four little-endian seed bytes are hashed before the data.
    Prefix,
    /// The four little-endian seed bytes are hashed after the data.
    Suffix,
}

/// A digest, at most 20 bytes, possibly truncated to a sum header's
/// `s2length`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StrongSum {
    bytes: [u8; 20],
    len: u8,
}

impl StrongSum {
    /// The longest digest (SHA-1).
    pub const MAX_LEN: usize = 20;

    /// Wraps digest bytes; `None` when longer than [`StrongSum::MAX_LEN`].
    #[must_use]
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; 20];
        bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(StrongSum {
            bytes,
            len: u8::try_from(b.len()).ok()?,
        })
    }

    /// The digest bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes
            .get(..usize::from(self.len))
            .unwrap_or(&self.bytes)
    }

    /// The first `n` bytes (all of them when `n` is larger).
    #[must_use]
    pub fn truncated(self, n: usize) -> Self {
        let mut s = self;
        if n < usize::from(s.len) {
            // n < len <= 20, so it fits.
            #[allow(clippy::cast_possible_truncation)]
            {
                s.len = n as u8;
            }
            for b in s.bytes.iter_mut().skip(n) {
                *b = 0;
            }
        }
        s
    }

    /// Digest length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the digest is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for StrongSum {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The strong checksum settings of a session: algorithm, seed and where
/// the seed goes for block sums and for the whole-file checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumConfig {
    /// The transfer checksum algorithm.
    pub kind: StrongKind,
    /// The session's checksum seed (0: none).
    pub seed: i32,
    /// Seed placement in block sums (`get_checksum2`).
    pub block_seed: SeedPlacement,
    /// Seed placement in the whole-file checksum (`sum_init`).
    pub file_seed: SeedPlacement,
}

impl ChecksumConfig {
    /// The rules of rsync 3.5.0 built with OpenSSL.
    ///
    /// `named` is true when the algorithm was negotiated or chosen with
    /// `--checksum-choice`, false for the implied protocol default (MD4
    /// below 30, MD5 from 30); `seed_fix` is `CF_CHKSUM_SEED_FIX`.
    ///
    /// | kind | block seed | file seed |
    /// |---|---|---|
    /// | md4 default | after | before |
    /// | md4 named | after | none |
    /// | md5 default | after, before with `seed_fix` | none |
    /// | md5 named | before | none |
    /// | sha1 | before | none |
    /// | xxh* | hash seed (sign-extended) | hash seed 0 |
    ///
    /// A seed of 0 adds nothing for md4, md5 and sha1.
    #[must_use]
    pub fn for_session(
        kind: StrongKind,
        seed: i32,
        protocol: u8,
        seed_fix: bool,
        named: bool,
    ) -> Self {
        use SeedPlacement::{Omit, Prefix, Suffix};
        // The protocol only matters through which default applies; an
        // implied md4 at 30+ cannot happen, and is treated as "md4 old".
        let _ = protocol;
        let (block_seed, file_seed) = match kind {
            StrongKind::Md4 if named => (Suffix, Omit),
            StrongKind::Md4 => (Suffix, Prefix),
            StrongKind::Md5 if named || seed_fix => (Prefix, Omit),
            StrongKind::Md5 => (Suffix, Omit),
            StrongKind::Sha1 => (Prefix, Omit),
            StrongKind::Xxh64 | StrongKind::Xxh3 | StrongKind::Xxh128 => (Prefix, Omit),
            StrongKind::None => (Omit, Omit),
        };
        ChecksumConfig {
            kind,
            seed,
            block_seed,
            file_seed,
        }
    }

    /// The seed as the xxhash functions take it: a C `int` passed to a
    /// 64-bit parameter, so sign-extended.
    fn seed64(&self) -> u64 {
        #[allow(clippy::cast_sign_loss)]
        let s = i64::from(self.seed) as u64;
        s
    }

    /// The full strong checksum of one block (upstream `get_checksum2`).
    #[must_use]
    pub fn block_sum(&self, data: &[u8]) -> StrongSum {
        let seed = self.seed.to_le_bytes();
        let place = if self.seed == 0 {
            SeedPlacement::Omit
        } else {
            self.block_seed
        };
        match self.kind {
            StrongKind::Md4 => digest_seeded::<Md4>(data, &seed, place),
            StrongKind::Md5 => digest_seeded::<Md5>(data, &seed, place),
            StrongKind::Sha1 => digest_seeded::<Sha1>(data, &seed, place),
            StrongKind::Xxh64 => sum8(xxh64(data, self.xxh_seed(self.block_seed))),
            StrongKind::Xxh3 => sum8(xxh3_64_with_seed(data, self.xxh_seed(self.block_seed))),
            StrongKind::Xxh128 => sum16(xxh3_128_with_seed(data, self.xxh_seed(self.block_seed))),
            StrongKind::None => none_sum(),
        }
    }

    fn xxh_seed(&self, place: SeedPlacement) -> u64 {
        if place == SeedPlacement::Omit {
            0
        } else {
            self.seed64()
        }
    }

    /// A streaming hasher for the whole-file checksum (upstream
    /// `sum_init`); feed it the file in order.
    #[must_use]
    pub fn file_hasher(&self) -> FileHasher {
        let seed = self.seed.to_le_bytes();
        let prefix = self.seed != 0 && self.file_seed == SeedPlacement::Prefix;
        let suffix = (self.seed != 0 && self.file_seed == SeedPlacement::Suffix).then_some(seed);
        let mut state = match self.kind {
            StrongKind::Md4 => State::Md4(Md4::new()),
            StrongKind::Md5 => State::Md5(Md5::new()),
            StrongKind::Sha1 => State::Sha1(Sha1::new()),
            StrongKind::Xxh64 => State::Xxh64(Xxh64::new(self.xxh_seed(self.file_seed))),
            StrongKind::Xxh3 | StrongKind::Xxh128 if self.xxh_seed(self.file_seed) != 0 => {
                State::Xxh3Seeded(
                    Box::new(xxhash_rust::xxh3::Xxh3::with_seed(self.seed64())),
                    self.kind,
                )
            }
            StrongKind::Xxh3 => State::Xxh3(Box::new(Xxh3Default::new()), false),
            StrongKind::Xxh128 => State::Xxh3(Box::new(Xxh3Default::new()), true),
            StrongKind::None => State::None,
        };
        let suffix = if self.kind_uses_bytes_seed() {
            suffix
        } else {
            None
        };
        if prefix && self.kind_uses_bytes_seed() {
            state.update(&seed);
        }
        FileHasher { state, suffix }
    }

    fn kind_uses_bytes_seed(&self) -> bool {
        matches!(
            self.kind,
            StrongKind::Md4 | StrongKind::Md5 | StrongKind::Sha1
        )
    }
}

fn digest_seeded<D: Digest>(data: &[u8], seed: &[u8; 4], place: SeedPlacement) -> StrongSum {
    let mut h = D::new();
    if place == SeedPlacement::Prefix {
        h.update(seed);
    }
    h.update(data);
    if place == SeedPlacement::Suffix {
        h.update(seed);
    }
    from_digest(&h.finalize())
}

fn from_digest(d: &[u8]) -> StrongSum {
    StrongSum::from_slice(d).unwrap_or_else(none_sum)
}

fn sum8(v: u64) -> StrongSum {
    from_digest(&v.to_le_bytes())
}

/// Low 64 bits little-endian, then high 64 bits little-endian: exactly the
/// little-endian bytes of the 128-bit value.
fn sum16(v: u128) -> StrongSum {
    from_digest(&v.to_le_bytes())
}

fn none_sum() -> StrongSum {
    StrongSum {
        bytes: [0; 20],
        len: 1,
    }
}

enum State {
    Md4(Md4),
    Md5(Md5),
    Sha1(Sha1),
    Xxh64(Xxh64),
    /// Seed 0 (the whole-file case); the flag selects 128-bit output.
    Xxh3(Box<Xxh3Default>, bool),
    Xxh3Seeded(Box<xxhash_rust::xxh3::Xxh3>, StrongKind),
    None,
}

impl State {
    fn update(&mut self, data: &[u8]) {
        match self {
            State::Md4(h) => h.update(data),
            State::Md5(h) => h.update(data),
            State::Sha1(h) => h.update(data),
            State::Xxh64(h) => h.update(data),
            State::Xxh3(h, _) => h.update(data),
            State::Xxh3Seeded(h, _) => h.update(data),
            State::None => {}
        }
    }
}

/// Streaming whole-file checksum (upstream `sum_init` / `sum_update` /
/// `sum_end`). Made by [`ChecksumConfig::file_hasher`].
pub struct FileHasher {
    state: State,
    suffix: Option<[u8; 4]>,
}

impl std::fmt::Debug for FileHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHasher").finish_non_exhaustive()
    }
}

impl FileHasher {
    /// Hashes the next piece of the file.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
    }

    /// The digest of everything fed (one 0x00 byte for [`StrongKind::None`]).
    #[must_use]
    pub fn finish(mut self) -> StrongSum {
        if let Some(s) = self.suffix {
            self.state.update(&s);
        }
        match self.state {
            State::Md4(h) => from_digest(&h.finalize()),
            State::Md5(h) => from_digest(&h.finalize()),
            State::Sha1(h) => from_digest(&h.finalize()),
            State::Xxh64(h) => sum8(h.digest()),
            State::Xxh3(h, false) => sum8(h.digest()),
            State::Xxh3(h, true) => sum16(h.digest128()),
            State::Xxh3Seeded(h, StrongKind::Xxh128) => sum16(h.digest128()),
            State::Xxh3Seeded(h, _) => sum8(h.digest()),
            State::None => none_sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeedPlacement::{Omit, Prefix, Suffix};

    fn hex(s: &StrongSum) -> String {
        s.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn names_and_lengths() {
        let rows = [
            ("md4", StrongKind::Md4, 16),
            ("MD5", StrongKind::Md5, 16),
            ("sha1", StrongKind::Sha1, 20),
            ("xxh64", StrongKind::Xxh64, 8),
            ("xxh3", StrongKind::Xxh3, 8),
            ("Xxh128", StrongKind::Xxh128, 16),
            ("none", StrongKind::None, 1),
        ];
        for (name, kind, len) in rows {
            assert_eq!(StrongKind::from_name(name), Some(kind));
            assert_eq!(StrongKind::from_name(kind.name()), Some(kind));
            assert_eq!(kind.digest_len(), len);
            let cfg = ChecksumConfig::for_session(kind, 5, 31, true, true);
            assert_eq!(cfg.block_sum(b"abc").len(), len, "{name}");
            assert_eq!(cfg.file_hasher().finish().len(), len, "{name}");
        }
    }

    #[test]
    fn placements() {
        // (kind, protocol, seed_fix, named, block, file)
        let rows = [
            (StrongKind::Md4, 29, false, false, Suffix, Prefix),
            (StrongKind::Md4, 31, true, true, Suffix, Omit),
            (StrongKind::Md5, 30, false, false, Suffix, Omit),
            (StrongKind::Md5, 31, true, false, Prefix, Omit),
            (StrongKind::Md5, 29, false, true, Prefix, Omit),
            (StrongKind::Sha1, 31, true, true, Prefix, Omit),
            (StrongKind::Xxh128, 32, true, true, Prefix, Omit),
            (StrongKind::None, 32, true, true, Omit, Omit),
        ];
        for (kind, p, fix, named, b, f) in rows {
            let c = ChecksumConfig::for_session(kind, 1, p, fix, named);
            assert_eq!(
                (c.block_seed, c.file_seed),
                (b, f),
                "{kind:?} {p} {fix} {named}"
            );
        }
    }

    #[test]
    fn known_digests() {
        let plain = |k| ChecksumConfig::for_session(k, 0, 32, true, true);
        // RFC 1320 / RFC 1321 / FIPS 180 test vectors for "abc".
        assert_eq!(
            hex(&plain(StrongKind::Md4).block_sum(b"abc")),
            "a448017aaf21d8525fc10ae87aa6729d"
        );
        assert_eq!(
            hex(&plain(StrongKind::Md5).block_sum(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex(&plain(StrongKind::Sha1).block_sum(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&plain(StrongKind::None).block_sum(b"abc")), "00");
    }

    #[test]
    fn seed_goes_where_configured() {
        let seed = 0x0102_0304_i32;
        let s = seed.to_le_bytes();
        let mut md5 = ChecksumConfig::for_session(StrongKind::Md5, seed, 31, true, true);
        let pre = md5.block_sum(b"data");
        assert_eq!(
            pre.as_bytes(),
            Md5::digest([&s[..], b"data"].concat()).as_slice()
        );
        md5.block_seed = Suffix;
        assert_eq!(
            md5.block_sum(b"data").as_bytes(),
            Md5::digest([&b"data"[..], &s].concat()).as_slice()
        );
        // md4 "old": file checksum hashes the seed first.
        let md4 = ChecksumConfig::for_session(StrongKind::Md4, seed, 29, false, false);
        let mut h = md4.file_hasher();
        h.update(b"da");
        h.update(b"ta");
        assert_eq!(
            h.finish().as_bytes(),
            Md4::digest([&s[..], b"data"].concat()).as_slice()
        );
    }

    #[test]
    fn xxh_seed_is_sign_extended_and_file_unseeded() {
        let c = ChecksumConfig::for_session(StrongKind::Xxh128, -1_234_567, 32, true, true);
        let want = xxh3_128_with_seed(b"block", 0xFFFF_FFFF_FFED_2979).to_le_bytes();
        assert_eq!(c.block_sum(b"block").as_bytes(), &want);
        let mut h = c.file_hasher();
        h.update(b"whole ");
        h.update(b"file");
        assert_eq!(
            h.finish().as_bytes(),
            &xxhash_rust::xxh3::xxh3_128(b"whole file").to_le_bytes()
        );
        let c64 = ChecksumConfig::for_session(StrongKind::Xxh64, 7, 32, true, true);
        assert_eq!(
            c64.block_sum(b"x").as_bytes(),
            &xxh64(b"x", 7).to_le_bytes()
        );
        let c3 = ChecksumConfig::for_session(StrongKind::Xxh3, 7, 32, true, true);
        assert_eq!(
            c3.block_sum(b"x").as_bytes(),
            &xxh3_64_with_seed(b"x", 7).to_le_bytes()
        );
    }

    #[test]
    fn truncation() {
        let s = StrongSum::from_slice(&[1, 2, 3, 4]).unwrap_or_else(none_sum);
        assert_eq!(s.truncated(2).as_bytes(), &[1, 2]);
        assert_eq!(s.truncated(9).as_bytes(), &[1, 2, 3, 4]);
        assert!(StrongSum::from_slice(&[0; 21]).is_none());
    }
}
