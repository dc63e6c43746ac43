//! The binary session setup: protocol versions, compat flags, checksum
//! negotiation, the checksum seed, and the filter-list exchange.
//!
//! Layer: engine. Uses wire (codecs, version vocabulary) and checksum.
//! Mirrors upstream compat.c `setup_protocol` and exclude.c
//! `send_filter_list`/`recv_filter_list`.

use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{MuxReader, MuxWriter};
use super::options::{Options, ServerArgs};
use crate::checksum::{ChecksumConfig, StrongKind};
use crate::error::{Error, Result};
use crate::wire::{
    self, CHECKSUM_NAMES, COMPRESS_NAMES, Capabilities, CompatFlags, ProtocolVersion,
    choose_as_client, choose_as_server, client_list, names_from_list, server_list,
};

/// Everything both roles of one side agreed on during setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Negotiated protocol.
    pub protocol: u8,
    /// Compat flags (0 below protocol 30).
    pub compat: CompatFlags,
    /// The checksum seed.
    pub seed: i32,
    /// Block and whole-file checksums.
    pub checksum: ChecksumConfig,
    /// The `--checksum` (pre-transfer) file sum: same algorithm, no seed.
    pub file_sum: ChecksumConfig,
    /// Whether this side is the server.
    pub is_server: bool,
    /// The compression algorithm for file data (`zstd`, `lz4`, `zlibx`,
    /// `zlib`), if any.
    pub compression: Option<&'static str>,
}

impl Setup {
    /// Varint file-list flags and name negotiation are on.
    #[must_use]
    pub fn varint_flags(&self) -> bool {
        self.compat.contains(CompatFlags::VARINT_FLIST_FLAGS)
    }

    /// The end-of-list marker may carry an io_error.
    #[must_use]
    pub fn safe_flist(&self) -> bool {
        self.protocol >= 31 || self.compat.contains(CompatFlags::SAFE_FLIST)
    }
}

fn parse_choice(choice: &str) -> Result<Option<StrongKind>> {
    let first = choice.split(',').next().unwrap_or("").trim();
    if first.eq_ignore_ascii_case("auto") || first.is_empty() {
        return Ok(None);
    }
    StrongKind::from_name(first)
        .map(Some)
        .ok_or_else(|| Error::Unsupported(format!("unknown checksum name: {first}")))
}

fn build(
    protocol: u8,
    compat: CompatFlags,
    seed: i32,
    kind: StrongKind,
    named: bool,
    is_server: bool,
) -> Setup {
    let seed_fix = compat.contains(CompatFlags::CHKSUM_SEED_FIX);
    Setup {
        protocol,
        compat,
        seed,
        checksum: ChecksumConfig::for_session(kind, seed, protocol, seed_fix, named),
        file_sum: ChecksumConfig::for_session(kind, 0, protocol, seed_fix, named),
        is_server,
        compression: None,
    }
}

/// What compression the options ask for: `None` for none, `Some(None)` to
/// negotiate (or plain zlib when names are not negotiated), `Some(Some(n))`
/// for an explicit choice.
fn compress_request(opts: &Options) -> Result<Option<Option<&'static str>>> {
    if !opts.compress {
        return Ok(None);
    }
    match opts
        .compress_choice
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("auto") => Ok(Some(None)),
        Some("none") => Ok(None),
        Some(name) => COMPRESS_NAMES
            .iter()
            .find(|n| **n == name && **n != "none")
            .map(|n| Some(Some(*n)))
            .ok_or_else(|| Error::Unsupported(format!("unknown compress name: {name}"))),
    }
}

fn compress_failed(ours: &str, theirs: &[u8]) -> Error {
    Error::Unsupported(format!(
        "Failed to negotiate a compress choice: our list \"{ours}\", peer's list \"{}\"",
        String::from_utf8_lossy(theirs)
    ))
}

fn default_kind(protocol: u8) -> StrongKind {
    if protocol >= 30 {
        StrongKind::Md5
    } else {
        StrongKind::Md4
    }
}

fn negotiation_failed(ours: &str, theirs: &[u8]) -> Error {
    Error::Unsupported(format!(
        "Failed to negotiate a checksum choice: our list \"{ours}\", peer's list \"{}\"",
        String::from_utf8_lossy(theirs)
    ))
}

/// Runs the client half of the setup. `known_protocol` is the protocol a
/// daemon greeting already settled (the version ints are then skipped).
///
/// # Errors
/// Version mismatch, negotiation failure, or a broken connection.
pub async fn client_setup<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    opts: &Options,
    known_protocol: Option<u8>,
) -> Result<Setup>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let protocol = match known_protocol {
        Some(p) => p,
        None => exchange_versions(r, w, opts).await?,
    };
    let compat = if protocol >= 30 {
        CompatFlags(u32::try_from(r.read_varint().await?).unwrap_or(0))
    } else {
        CompatFlags::default()
    };
    let (kind, named, compression) = exchange_lists(r, w, protocol, compat, opts, false).await?;
    let seed = r.read_i32().await?;
    let mut setup = build(protocol, compat, seed, kind, named, false);
    setup.compression = compression;
    Ok(setup)
}

/// Runs the server half of the setup. `known_protocol` as for
/// [`client_setup`].
///
/// # Errors
/// Version mismatch, negotiation failure, or a broken connection.
pub async fn server_setup<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    sa: &ServerArgs,
    known_protocol: Option<u8>,
) -> Result<Setup>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opts = &sa.options;
    let protocol = match known_protocol {
        Some(p) => p,
        None => exchange_versions(r, w, opts).await?,
    };
    let mut compat = CompatFlags::default();
    if protocol >= 30 {
        let caps = Capabilities::parse(&sa.capabilities);
        compat = caps.server_compat_flags(false, true);
        wire::encode_varint(w.buf(), i32::try_from(compat.bits()).unwrap_or(0));
    }
    let (kind, named, compression) = exchange_lists(r, w, protocol, compat, opts, true).await?;
    let seed = opts.checksum_seed.unwrap_or_else(make_seed);
    wire::encode_i32(w.buf(), seed);
    w.flush().await?;
    let mut setup = build(protocol, compat, seed, kind, named, true);
    setup.compression = compression;
    Ok(setup)
}

/// Both sides send their protocol version, then read the peer's; the
/// session uses the lower one.
async fn exchange_versions<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    opts: &Options,
) -> Result<u8>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ours = opts.protocol.unwrap_or(ProtocolVersion::MAX.0);
    wire::encode_i32(w.buf(), i32::from(ours));
    w.flush().await?;
    let peer = r.read_i32().await?;
    Ok(ProtocolVersion::negotiate(ours, peer)
        .map_err(|e| Error::Version(e.to_string()))?
        .0)
}

/// Both sides write their name lists, then read the peer's (rsync's
/// `negotiate_the_strings`): the checksum list unless a checksum was chosen,
/// the compression list when compressing without an explicit choice.
async fn exchange_lists<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    protocol: u8,
    compat: CompatFlags,
    opts: &Options,
    as_server: bool,
) -> Result<(StrongKind, bool, Option<&'static str>)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let choice = match &opts.checksum_choice {
        Some(c) => parse_choice(c)?,
        None => None,
    };
    let compress = compress_request(opts)?;
    let varint = compat.contains(CompatFlags::VARINT_FLIST_FLAGS);
    let neg_csum = choice.is_none() && varint;
    let neg_comp = compress == Some(None) && varint;
    // A user-given list replaces ours as it is (rsync sends the variable's
    // text); otherwise the built-in one in the client or server form.
    let user_csums = opts
        .checksum_list
        .as_deref()
        .map(|v| names_from_list(v, CHECKSUM_NAMES));
    let user_comps = opts
        .compress_list
        .as_deref()
        .map(|v| names_from_list(v, COMPRESS_NAMES));
    let csum_names: &[&'static str] = user_csums.as_deref().unwrap_or(CHECKSUM_NAMES);
    let comp_names: &[&'static str] = user_comps.as_deref().unwrap_or(COMPRESS_NAMES);
    let list = |names: &[&str], user: bool| {
        if as_server || user {
            server_list(names)
        } else {
            client_list(names)
        }
    };
    let choose = |names: &[&'static str], theirs: &[u8]| {
        if as_server {
            choose_as_server(names, theirs)
        } else {
            choose_as_client(names, theirs)
        }
    };
    let csum_list = list(csum_names, user_csums.is_some());
    let comp_list = list(comp_names, user_comps.is_some());
    if neg_csum {
        wire::encode_vstring(w.buf(), csum_list.as_bytes())?;
    }
    if neg_comp {
        wire::encode_vstring(w.buf(), comp_list.as_bytes())?;
    }
    if neg_csum || neg_comp {
        w.flush().await?;
    }
    let (kind, named) = if let Some(k) = choice {
        (k, true)
    } else if neg_csum {
        let theirs = r.read_vstring(255).await?;
        let name =
            choose(csum_names, &theirs).ok_or_else(|| negotiation_failed(&csum_list, &theirs))?;
        (
            StrongKind::from_name(name).ok_or_else(|| negotiation_failed(&csum_list, &theirs))?,
            true,
        )
    } else {
        (default_kind(protocol), false)
    };
    let compression = match compress {
        None => None,
        Some(Some(name)) => Some(name),
        Some(None) if neg_comp => {
            let theirs = r.read_vstring(255).await?;
            let name =
                choose(comp_names, &theirs).ok_or_else(|| compress_failed(&comp_list, &theirs))?;
            (name != "none").then_some(name)
        }
        Some(None) => Some("zlib"),
    };
    Ok((kind, named, compression))
}

fn make_seed() -> i32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    #[allow(clippy::cast_possible_truncation)]
    let v = (now ^ (u64::from(std::process::id()) << 6)) as i32;
    if v == 0 { 1 } else { v }
}

/// Whether a filter list travels from client to server for this transfer
/// (upstream exclude.c: always in a pull; in a push only when the receiver
/// deletes).
#[must_use]
pub fn filter_list_sent(server_sends: bool, opts: &Options) -> bool {
    server_sends || opts.delete.is_some() || opts.delete_excluded
}

/// Writes a filter list: each rule as `int32 length` + text, then
/// `int32 0`.
///
/// # Errors
/// The connection failed.
pub async fn send_filter_list<W: AsyncWrite + Unpin>(
    w: &mut MuxWriter<W>,
    rules: &[Vec<u8>],
) -> Result<()> {
    for r in rules {
        let len =
            i32::try_from(r.len()).map_err(|_| Error::Protocol("filter rule too long".into()))?;
        wire::encode_i32(w.buf(), len);
        w.buf().extend_from_slice(r);
    }
    wire::encode_i32(w.buf(), 0);
    w.flush().await
}

/// Reads the peer's filter list. Rules are returned as text.
///
/// # Errors
/// A rule longer than the limit, or a broken connection.
pub async fn recv_filter_list<R: AsyncRead + Unpin>(
    r: &mut MuxReader<R>,
    max_len: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut rules = Vec::new();
    loop {
        let len = r.read_i32().await?;
        if len == 0 {
            return Ok(rules);
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= max_len)
            .ok_or_else(|| Error::Protocol(format!("filter rule of length {len} refused")))?;
        let mut rule = vec![0u8; len];
        r.read_exact(&mut rule).await?;
        rules.push(rule);
        if rules.len() > 100_000 {
            return Err(Error::Protocol("too many filter rules".into()));
        }
    }
}
