//! Checksum and compression name negotiation (protocol >= 30 with
//! `CF_VARINT_FLIST_FLAGS`).
//!
//! Layer: wire. Uses nothing outside `wire`; does no IO.
//! Mirrors upstream compat.c (`negotiate_the_strings`, `send_negotiate_str`,
//! `parse_nni_str`) and the name tables of checksum.c and compat.c.
//!
//! Each side sends a vstring of space-separated names, then picks from the
//! peer's list. As a client we pick our earliest name the server offers; as
//! a server we pick the client's earliest name we support. Both rules agree
//! with every rsync release (3.5.0 servers use a third rule that can
//! disagree when a user reorders a list).

/// Transfer checksums, strongest first (the order advertised).
pub const CHECKSUM_NAMES: &[&str] = &["xxh128", "xxh3", "xxh64", "md5", "md4", "sha1", "none"];
/// Compression algorithms, preferred first (the order advertised).
pub const COMPRESS_NAMES: &[&str] = &["zstd", "lz4", "zlibx", "zlib", "none"];

/// Older spellings and the canonical name they stand for.
const ALIASES: &[(&str, &str)] = &[("xxhash", "xxh64")];

/// The canonical `'static` spelling of `name`, case-insensitively, if it is
/// a known checksum or compression name or alias.
fn canonical(name: &[u8]) -> Option<&'static str> {
    let known = CHECKSUM_NAMES.iter().chain(COMPRESS_NAMES).copied();
    let aliased = ALIASES
        .iter()
        .filter(|(alias, _)| alias.as_bytes().eq_ignore_ascii_case(name))
        .map(|&(_, c)| c);
    known
        .filter(|n| n.as_bytes().eq_ignore_ascii_case(name))
        .chain(aliased)
        .next()
}

/// The names of a peer's list, canonicalised; unknown names are dropped.
fn parse_list(list: &[u8]) -> impl Iterator<Item = &'static str> + '_ {
    list.split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .filter_map(canonical)
}

/// A user-given list (rsync's `RSYNC_CHECKSUM_LIST` and
/// `RSYNC_COMPRESS_LIST`): the names of `value` that are in `all`, in the
/// user's order, canonicalised, without repeats.
///
/// ```
/// use ferrsync::wire::{names_from_list, CHECKSUM_NAMES};
/// assert_eq!(names_from_list("md5 bogus XXHASH md5", CHECKSUM_NAMES), ["md5", "xxh64"]);
/// ```
#[must_use]
pub fn names_from_list(value: &str, all: &[&'static str]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for n in parse_list(value.as_bytes()) {
        if all.contains(&n) && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The list a client advertises: every name but `none`, space-separated.
///
/// ```
/// use ferrsync::wire::{client_list, COMPRESS_NAMES};
/// assert_eq!(client_list(COMPRESS_NAMES), "zstd lz4 zlibx zlib");
/// ```
#[must_use]
pub fn client_list(all: &[&str]) -> String {
    all.iter()
        .copied()
        .filter(|n| *n != "none")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The list a server advertises: every name, `none` included.
///
/// ```
/// use ferrsync::wire::{server_list, CHECKSUM_NAMES};
/// assert_eq!(server_list(CHECKSUM_NAMES), "xxh128 xxh3 xxh64 md5 md4 sha1 none");
/// ```
#[must_use]
pub fn server_list(all: &[&str]) -> String {
    all.join(" ")
}

/// A client's choice: our earliest name present in the server's list.
///
/// ```
/// use ferrsync::wire::{choose_as_client, CHECKSUM_NAMES};
/// assert_eq!(choose_as_client(CHECKSUM_NAMES, b"md5 XXHASH"), Some("xxh64"));
/// ```
#[must_use]
pub fn choose_as_client(ours: &[&str], peer_list: &[u8]) -> Option<&'static str> {
    let peer: Vec<&'static str> = parse_list(peer_list).collect();
    ours.iter()
        .filter_map(|n| canonical(n.as_bytes()))
        .find(|n| peer.contains(n))
}

/// A server's choice: the client's earliest name that we support.
///
/// ```
/// use ferrsync::wire::{choose_as_server, CHECKSUM_NAMES};
/// assert_eq!(choose_as_server(CHECKSUM_NAMES, b"foo md5 xxh128"), Some("md5"));
/// ```
#[must_use]
pub fn choose_as_server(ours: &[&str], client_list: &[u8]) -> Option<&'static str> {
    let ours: Vec<&'static str> = ours
        .iter()
        .filter_map(|n| canonical(n.as_bytes()))
        .collect();
    parse_list(client_list).find(|n| ours.contains(n))
}

/// The message rsync prints when no name is common, e.g. `kind` =
/// `"checksum"`: "Failed to negotiate a checksum choice." plus both lists.
/// The session then ends with exit code 4 (`RERR_UNSUPPORTED`).
#[must_use]
pub fn negotiation_failed(kind: &str, ours: &str, peer_list: &[u8]) -> String {
    format!(
        "Failed to negotiate a {kind} choice.\nOur list: {ours}\nTheir list: {}",
        String::from_utf8_lossy(peer_list).escape_debug()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(
            client_list(CHECKSUM_NAMES),
            "xxh128 xxh3 xxh64 md5 md4 sha1"
        );
        assert_eq!(server_list(COMPRESS_NAMES), "zstd lz4 zlibx zlib none");
    }

    #[test]
    fn choice_table() {
        // (ours, peer list, as client, as server)
        type Row = (
            &'static [&'static str],
            &'static [u8],
            Option<&'static str>,
            Option<&'static str>,
        );
        let rows: &[Row] = &[
            (
                CHECKSUM_NAMES,
                b"xxh128 xxh3 xxh64 md5 md4 sha1 none",
                Some("xxh128"),
                Some("xxh128"),
            ),
            (CHECKSUM_NAMES, b"md5 xxh128", Some("xxh128"), Some("md5")),
            (CHECKSUM_NAMES, b"MD4  Md5", Some("md5"), Some("md4")),
            (CHECKSUM_NAMES, b"xxhash", Some("xxh64"), Some("xxh64")),
            (CHECKSUM_NAMES, b"INVALID", None, None),
            (CHECKSUM_NAMES, b"", None, None),
            (&["md5", "md4"], b"sha1 xxh3 md4", Some("md4"), Some("md4")),
            (
                COMPRESS_NAMES,
                b"zstd lz4 zlibx zlib",
                Some("zstd"),
                Some("zstd"),
            ),
            (
                &["zlib", "none"],
                b"zstd lz4 zlibx zlib none",
                Some("zlib"),
                Some("zlib"),
            ),
            (&["xxhash"], b"xxh64", Some("xxh64"), Some("xxh64")),
        ];
        for &(ours, peer, client, server) in rows {
            assert_eq!(choose_as_client(ours, peer), client, "{ours:?} {peer:?}");
            assert_eq!(choose_as_server(ours, peer), server, "{ours:?} {peer:?}");
        }
    }

    #[test]
    fn failure_text() {
        let m = negotiation_failed("checksum", "md5", b"foo");
        assert!(
            m.starts_with("Failed to negotiate a checksum choice"),
            "{m}"
        );
    }
}
