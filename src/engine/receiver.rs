//! The receiver role and the receiving side as a whole: reads the file
//! list, then runs the generator and the receiver concurrently.
//!
//! Layer: engine. Uses flist, delta, wire; writes local files.
//! Mirrors upstream flist.c `recv_file_list`, receiver.c `recv_files` and
//! `receive_data`, main.c `do_recv`.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::generator::{Generator, RecvCtx, ToGen};
use super::io::{MuxReader, MuxWriter};
use super::local::{self, IdMap, Preserve};
use super::options::Options;
use super::report::{Event, EventSink, Report, item};
use super::requested::Requested;
use super::sender::flist_options;
use super::setup::Setup;
use crate::delta::{
    BasisRead, CToken, Compression, Patcher, SumHead, TokenDecompressor, TokenHeader,
    decode_token_header,
};
use crate::error::{Error, Result};
use crate::flist::{
    FileEntry, FileKind, FileListDecoder, check_safe_name, clean_file_list, decode_id_list,
    sort_file_list,
};
use crate::fs::beneath::{Links, Root};
use crate::wire::{Limits, MsgCode, NDX_DEL_STATS, NDX_DONE, NdxDecoder};

/// Reads the file list (and id lists, io_error) from the sender.
///
/// # Errors
/// Malformed list, unsafe names, broken connection.
pub(crate) async fn recv_file_list<R: AsyncRead + Unpin>(
    r: &mut MuxReader<R>,
    setup: &Setup,
    opts: &Options,
) -> Result<(Vec<FileEntry>, IdMap, i32)> {
    let limits = opts.limits;
    let fopts = flist_options(setup, opts);
    let mut dec = FileListDecoder::new(fopts, limits);
    let mut entries = Vec::new();
    while let Some(mut e) = r.decode(|b| dec.decode(b)).await? {
        if opts.relative && e.name.first() == Some(&b'/') {
            // rsync's receiver strips the leading slashes of `-R` names
            // from absolute sources (flist_sort_and_clean `strip_root`).
            let n = e.name.iter().take_while(|&&c| c == b'/').count();
            e.name.drain(..n);
            if e.name.is_empty() {
                e.name = b".".to_vec();
            }
        }
        check_safe_name(&e.name)?;
        entries.push(e);
        if entries.len() > limits.max_flist_entries {
            return Err(Error::Protocol("file list too long".into()));
        }
    }
    // The list is kept for the whole transfer: without its growth slack.
    entries.shrink_to_fit();
    super::apply_chmod(&mut entries, opts)?;
    if opts.hard_links {
        normalize_hardlinks(&mut entries, setup.protocol);
    }
    if opts.munge_links {
        super::munge_links(&mut entries, true);
    }
    let mut io_error = dec.io_error();
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let id0 = fopts.id0_names;
    if !opts.numeric_ids {
        if opts.owner || opts.acls {
            users = r
                .decode(|b| decode_id_list(b, setup.protocol, id0, &limits))
                .await?;
        }
        if opts.group || opts.acls {
            groups = r
                .decode(|b| decode_id_list(b, setup.protocol, id0, &limits))
                .await?;
        }
    }
    if setup.protocol < 30 {
        io_error |= r.read_i32().await?;
    }
    let mut ids = if opts.numeric_ids || opts.local_numeric_ids {
        IdMap::default()
    } else {
        IdMap::new(&users, &groups)
    };
    for (spec, is_user) in [(&opts.usermap, true), (&opts.groupmap, false)] {
        let Some(spec) = spec.as_deref() else {
            continue;
        };
        // Unknown names were reported by `map_warnings`; their rules
        // are dropped, as rsync does.
        let (map, _unknown) = local::NameMap::parse(spec, is_user).map_err(Error::Syntax)?;
        let names = if is_user { &users } else { &groups };
        let mut seen: Vec<(u32, Vec<u8>)> = Vec::new();
        let owners = entries.iter().map(|e| if is_user { e.uid } else { e.gid });
        for id in owners.chain(crate::engine::acls::acl_ids(&entries, is_user)) {
            if seen.iter().any(|(i, _)| *i == id) {
                continue;
            }
            // The sender's name for the id; root is "root" unless named.
            let name = names
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, n)| n.clone())
                .or_else(|| (id == 0 && !opts.numeric_ids).then(|| b"root".to_vec()))
                .unwrap_or_default();
            seen.push((id, name));
        }
        ids.apply(&map, is_user, &seen);
    }
    if opts.acls {
        crate::engine::acls::map_acl_ids(&mut entries, &ids);
    }
    Ok((entries, ids, io_error))
}

/// rsync's complaints about `--usermap` / `--groupmap` names this system
/// does not know: said (as errors that do not change the exit code) and
/// the rule dropped (upstream uidlist.c `parse_name_map`).
fn map_warnings(opts: &Options) -> Vec<String> {
    [(&opts.usermap, true), (&opts.groupmap, false)]
        .into_iter()
        .filter_map(|(spec, is_user)| local::NameMap::parse(spec.as_deref()?, is_user).ok())
        .flat_map(|(_, unknown)| unknown)
        .collect()
}

/// Where the received entries go: under a directory (`Some(must_create)`),
/// or (a single file) to a file name (`None`).
fn dest_kind(dest: &Path, list: &[FileEntry]) -> Option<bool> {
    let dest_is_dir = fs::metadata(dest).map(|m| m.is_dir()).unwrap_or(false);
    if list.len() == 1
        && !list[0].is_dir()
        && !dest_is_dir
        && !dest.as_os_str().as_bytes().ends_with(b"/")
    {
        return None;
    }
    Some(!dest_is_dir)
}

impl RecvCtx<'_> {
    /// Entry `i`'s destination path, for messages: the destination itself
    /// for `.` and for a single file received under another name, else
    /// the name under it.
    pub(crate) fn path(&self, i: usize) -> PathBuf {
        match self.list.get(i) {
            Some(e) if self.single.is_none() && e.name != b"." => {
                self.dest.join(OsStr::from_bytes(&e.name))
            }
            _ => self.dest.to_path_buf(),
        }
    }
}

/// Rejects entries whose parent is not a directory of the same list, so
/// that nothing is ever written through a symlink.
fn check_parents(list: &[FileEntry], active: &mut [bool]) -> Vec<String> {
    let dirs: HashSet<&[u8]> = list
        .iter()
        .zip(active.iter())
        .filter(|(e, a)| **a && e.is_dir())
        .map(|(e, _)| e.name.as_slice())
        .collect();
    let mut errs = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if let Some(p) = e.name.iter().rposition(|b| *b == b'/') {
            if active[i] && !dirs.contains(&e.name[..p]) {
                active[i] = false;
                errs.push(format!(
                    "invalid path from sender: {}",
                    String::from_utf8_lossy(&e.name)
                ));
            }
        }
    }
    errs
}

/// A directory named twice keeps one entry; like rsync's receiver
/// (flist_sort_and_clean), the kept one is a content (top) directory if
/// either was, and implied only if both were.
fn merge_duplicate_dirs(list: &mut [FileEntry], active: &[bool]) {
    use crate::flist::entry::{XMIT_NO_CONTENT_DIR as NC, XMIT_TOP_DIR as TOP};
    let mut kept: Option<usize> = None;
    for i in 0..list.len() {
        if active.get(i) == Some(&true) {
            kept = Some(i);
            continue;
        }
        let Some(k) = kept else { continue };
        if !(list[i].is_dir() && list[k].is_dir() && list[i].name == list[k].name) {
            continue;
        }
        let (a, b) = (list[k].xflags, list[i].xflags);
        let content = a & NC == 0 || b & NC == 0;
        let top = (a & NC == 0 && a & TOP != 0) || (b & NC == 0 && b & TOP != 0);
        let implied = a & (TOP | NC) == TOP | NC && b & (TOP | NC) == TOP | NC;
        list[k].xflags = if content {
            if top { TOP } else { 0 }
        } else if implied {
            TOP | NC
        } else {
            NC
        };
    }
}

/// The checks rsync 3.5.0's receiver makes of each listed name, in its
/// order: `.` must be a directory (a file there would let `--force`
/// remove the destination to make it); then, on a pull, a name the
/// client's own rules exclude, or one it did not ask for (CVE-2022-29154),
/// is refused before anything is written.
fn check_sender_list(list: &[FileEntry], requested: Option<&Requested>) -> Result<()> {
    for e in list {
        let lossy = || String::from_utf8_lossy(&e.name);
        if matches!(e.name.as_slice(), b"." | b"/.") && !e.is_dir() {
            // rsync's RERR_PROTOCOL (exit 2).
            return Err(Error::Version(format!(
                "ERROR: rejecting non-directory transfer-root entry: {}",
                lossy()
            )));
        }
        let Some(req) = requested else { continue };
        if req.excluded(&e.name, e.is_dir()) {
            return Err(Error::Unsupported(format!(
                "ERROR: rejecting excluded file-list name: {}",
                lossy()
            )));
        }
        if !req.allows(&e.name, e.is_dir()) {
            return Err(Error::Unsupported(format!(
                "ERROR: rejecting unrequested file-list name: {}",
                lossy()
            )));
        }
    }
    Ok(())
}

/// Below protocol 30 the list carries no content-directory flag: as
/// rsync's `recv_file_entry`, in the order received, a directory flagged
/// top starts a hierarchy (`-r`) whose directories below it are content;
/// any other directory is not (so `--delete` leaves it alone). The result
/// is written as the protocol-30 flags (`XMIT_NO_CONTENT_DIR`, and with
/// `XMIT_TOP_DIR` for an implied parent).
fn pre30_content_dirs(
    list: &mut [FileEntry],
    recursive: bool,
    relative: bool,
    requested: Option<&Requested>,
) {
    use crate::flist::entry::{XMIT_NO_CONTENT_DIR as NC, XMIT_TOP_DIR as TOP};
    // The top of the current hierarchy (empty: everything below).
    let mut hier: Option<Vec<u8>> = None;
    for e in list.iter_mut().filter(|e| e.is_dir()) {
        let name = e.name.strip_prefix(b"/").unwrap_or(&e.name);
        if e.xflags & TOP != 0 {
            if requested.is_some_and(|r| r.is_implied_parent(name)) {
                e.xflags = TOP | NC;
                continue;
            }
            hier = recursive.then(|| {
                let top = if name == b"." { &b""[..] } else { name };
                let top = if relative {
                    top.strip_suffix(b"/.").unwrap_or(top)
                } else {
                    top
                };
                top.to_vec()
            });
            e.xflags = TOP;
        } else if let Some(top) = &hier {
            let inside = !relative
                || top.is_empty()
                || (name.starts_with(top) && name.get(top.len()) == Some(&b'/'));
            if inside {
                e.xflags = 0;
            } else {
                hier = None;
                e.xflags = NC;
            }
        } else {
            e.xflags = NC;
        }
    }
}

/// Runs the receiving side (generator + receiver) after the setup.
///
/// # Errors
/// A broken connection or a peer that breaks the protocol.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_receiving_side<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    setup: &Setup,
    opts: &Options,
    dest: &Path,
    whole_file: bool,
    events: Option<&EventSink>,
    filters: Option<&crate::filter::FilterSet>,
    requested: Option<&Requested>,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    for text in map_warnings(opts) {
        if setup.is_server {
            w.send_msg(MsgCode::Error, format!("{text}\n").as_bytes())
                .await?;
        } else if let Some(sink) = events {
            sink(&Event::Message { error: true, text });
        }
    }
    let (mut list, ids, io_error) = recv_file_list(r, setup, opts).await?;
    check_sender_list(&list, requested)?;
    if let Some(req) = requested.filter(|_| setup.protocol >= 30) {
        // rsync 3.5.0: a parent the pull asked for only as a parent stays
        // an implied directory, whatever the sender flagged, so that
        // `--delete` cannot sweep its other entries.
        use crate::flist::entry::{XMIT_NO_CONTENT_DIR as NC, XMIT_TOP_DIR as TOP};
        for e in list.iter_mut().filter(|e| e.is_dir()) {
            if e.xflags & (TOP | NC) != TOP | NC && req.is_implied_parent(&e.name) {
                e.xflags |= TOP | NC;
            }
        }
    }
    if setup.protocol < 30 {
        pre30_content_dirs(&mut list, opts.recursive, opts.relative, requested);
    }
    if list.is_empty() && !setup.is_server {
        // rsync's client stops here ("nothing to do"), and an rsync sender
        // exits after sending an empty list.
        if let Some(sink) = events {
            if opts.verbose > 0 {
                sink(&Event::Message {
                    error: false,
                    text: "client: nothing to do: perhaps you need to specify some filenames or the --recursive option?".into(),
                });
            }
        }
        return Ok(Report {
            io_error,
            ..Report::default()
        });
    }
    let flist_bytes = r.bytes_read();
    if let Some(sink) = events {
        sink(&Event::FileList {
            files: list.len() as u64,
            size: list
                .iter()
                .filter(|e| e.kind() == Some(crate::flist::FileKind::Regular))
                .map(|e| e.size)
                .sum(),
        });
    }
    if !crate::flist::sort::is_sorted_file_list(&list, setup.protocol) {
        sort_file_list(&mut list, setup.protocol);
    }
    let mut active = clean_file_list(&list, setup.protocol);
    merge_duplicate_dirs(&mut list, &active);
    let mut report = Report {
        errors: check_parents(&list, &mut active),
        io_error,
        ..Report::default()
    };
    let kind = dest_kind(dest, &list);
    let must_create = kind.unwrap_or(false);
    if must_create && !list.is_empty() {
        // A list with "." creates the destination itself (and itemizes it
        // as new); otherwise it is the container of the top names.
        if !opts.dry_run && !list.iter().any(|e| e.name == b".") {
            fs::create_dir_all(dest).map_err(|e| Error::local("mkdir", dest, e))?;
        }
        if let Some(sink) = events {
            if opts.verbose > 0 || opts.itemize > 0 {
                let shown = dest.to_string_lossy();
                let shown = shown.trim_end_matches('/');
                sink(&Event::Message {
                    error: false,
                    text: format!("created directory {shown}"),
                });
            }
        }
    }
    // Every local operation on a listed name is resolved beneath the
    // destination through handles (crate::fs::beneath). A single file
    // received under another name lives beneath the destination's
    // directory.
    let links = if opts.keep_dirlinks || (opts.relative && !opts.implied_dirs) {
        Links::Inside
    } else {
        Links::Never
    };
    let single_name: Option<Vec<u8>> =
        (kind.is_none() && list.first().is_some_and(|e| e.name != b".")).then(|| {
            dest.file_name()
                .map_or_else(|| b".".to_vec(), |n| n.as_bytes().to_vec())
        });
    let root = match (&single_name, dest.parent()) {
        (Some(_), Some(p)) if !p.as_os_str().is_empty() => Root::new(p, links),
        (Some(_), _) => Root::new(Path::new("."), links),
        (None, _) => Root::new(dest, links),
    };
    let preserve = Preserve {
        perms: opts.perms,
        times: opts.times,
        owner: opts.owner,
        group: opts.group,
        omit_dir_times: opts.omit_dir_times,
        am_root: local::am_root(),
        nsec: setup.protocol >= 31,
        atimes: opts.atimes > 0,
        acls: opts.acls,
    };
    let scanned = super::filters::receiver_with_parents(filters, dest, opts);
    let ctx = RecvCtx {
        setup,
        opts,
        list: &list,
        active: &active,
        ids: &ids,
        preserve,
        events,
        whole_file,
        filters: scanned.as_ref(),
        dest,
        xattrs: crate::fs::xattrs::XattrRules {
            level: opts.xattrs,
            am_root: preserve.am_root,
        },
        root: &root,
        single: single_name.as_deref(),
    };
    let (tx, rx) = unbounded_channel();
    let generator = Generator::new(&ctx, w, rx);
    let (gen_stats, recv_report) = tokio::try_join!(generator.run(), receive(&ctx, r, tx))?;
    report.stats = recv_report.stats;
    report.stats.flist_size = flist_bytes;
    report.stats.num_files = list.len() as u64;
    for e in &list {
        if !e.is_dir() {
            report.stats.total_size += e.size;
        }
        if e.kind() == Some(FileKind::Regular) {
            report.stats.num_reg_files += 1;
        }
    }
    report.stats.deleted = gen_stats
        .deleted
        .iter()
        .map(|v| u64::try_from(*v).unwrap_or(0))
        .sum();
    report.stats.num_created_dirs = gen_stats.created_dirs;
    report.errors.extend(gen_stats.errors);
    report.errors.extend(recv_report.errors);
    report.io_error |= gen_stats.io_error | recv_report.io_error;
    Ok(report)
}

/// Deletes a temporary file when dropped (after a successful rename the
/// path no longer exists and nothing happens).
/// The temporary file of the file being received; what happens to it if
/// the step does not finish: removed, or kept (`--partial`, with the
/// destination and the partial dir, if any).
struct TempGuard<'r>(&'r Root, Option<Vec<u8>>, Option<(Vec<u8>, Option<String>)>);

impl TempGuard<'_> {
    /// The file was renamed into place or must go anyway.
    fn discard(&mut self) {
        self.2 = None;
        if let Some(p) = self.1.take() {
            let _ = self.0.remove_file(&p);
        }
    }

    /// The file was renamed away: its temporary name no longer exists, so
    /// nothing is left to remove (saves an `unlink` per file).
    fn renamed(&mut self) {
        self.2 = None;
        self.1 = None;
    }
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.1.take() {
            match self.2.take() {
                Some((dest, dir)) => local::keep_partial(self.0, &p, &dest, dir.as_deref()),
                None => {
                    let _ = self.0.remove_file(&p);
                }
            }
        }
    }
}

/// The most data a file may receive: twice its listed size plus 64 MiB
/// (a file may grow while it is being sent), so that a hostile stream (a
/// compression bomb, endless literals) cannot fill the disk.
fn output_cap(listed: u64) -> u64 {
    listed.saturating_mul(2).saturating_add(64 << 20)
}

/// Bytes between two progress events.
const PROGRESS_STEP: u64 = 1 << 20;

struct NoBasis;

impl BasisRead for NoBasis {
    fn read_block(&mut self, _offset: u64, _buf: &mut [u8]) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "block reference without a basis file",
        ))
    }
}

enum Basis {
    None(NoBasis),
    File(fs::File),
}

/// The receiver proper.
async fn receive<R: AsyncRead + Unpin>(
    ctx: &RecvCtx<'_>,
    r: &mut MuxReader<R>,
    tx: UnboundedSender<ToGen>,
) -> Result<Report> {
    let setup = ctx.setup;
    let protocol = setup.protocol;
    let limits = Limits::default();
    let mut ndx_in = NdxDecoder::new(protocol);
    let max_phase = if protocol >= 29 { 2 } else { 1 };
    let mut phase = 0u32;
    let mut redone: HashSet<usize> = HashSet::new();
    let mut dec = setup
        .compression
        .and_then(Compression::from_name)
        .map(|k| TokenDecompressor::new(k, protocol, limits));
    let mut report = Report::default();
    let digest_len = setup.checksum.kind.digest_len();
    // --delay-updates: (list index, holding name, final name).
    let mut delayed: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
    // -X: abbreviated values the sender filled in, per list index.
    let mut fetched: std::collections::HashMap<usize, Vec<(i32, Vec<u8>)>> =
        std::collections::HashMap::new();
    // Our effective ids: who owns a file we create (for its first mode).
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    loop {
        let ndx = r.decode(|b| ndx_in.decode(b)).await?;
        if ndx == NDX_DONE {
            phase += 1;
            if phase == 2 || phase > max_phase {
                finish_delayed(ctx.root, &mut delayed, &tx, &mut report);
            }
            let _ = tx.send(ToGen::Phase(phase));
            if phase > max_phase {
                break;
            }
            continue;
        }
        if ndx == NDX_DEL_STATS {
            for _ in 0..5 {
                r.read_varint().await?;
            }
            continue;
        }
        let idx = usize::try_from(ndx)
            .ok()
            .filter(|i| *i < ctx.list.len() && ctx.active[*i])
            .ok_or_else(|| Error::Protocol(format!("invalid file index {ndx} from sender")))?;
        let iflags = if protocol >= 29 {
            r.read_u16().await?
        } else {
            item::TRANSFER
        };
        let basis_type = if iflags & item::BASIS_TYPE_FOLLOWS != 0 {
            Some(r.read_u8().await?)
        } else {
            None
        };
        if iflags & item::XNAME_FOLLOWS != 0 {
            r.read_vstring(limits.max_name_len).await?;
        }
        if super::sender::xattr_exchange(setup, ctx.opts, iflags) {
            let values = r
                .decode(|b| crate::flist::xattrs::decode_xattr_values(b, &limits))
                .await?;
            let known = ctx.list[idx].xattrs().unwrap_or_default();
            for (n, _) in &values {
                let abbrev = usize::try_from(*n - 1)
                    .ok()
                    .and_then(|i| known.get(i))
                    .is_some_and(|x| x.value.is_abbrev());
                if !abbrev {
                    return Err(Error::Protocol(format!(
                        "could not find abbreviated xattr #{n} for {}",
                        String::from_utf8_lossy(&ctx.list[idx].name)
                    )));
                }
            }
            fetched.entry(idx).or_default().extend(values);
        }
        if iflags & item::TRANSFER == 0 {
            let both = item::XNAME_FOLLOWS | item::LOCAL_CHANGE;
            if ctx.opts.xattrs > 0
                && iflags & item::REPORT_XATTR != 0
                && !ctx.opts.dry_run
                && iflags & both != both
            {
                let rel = ctx.rel(idx);
                let got = fetched.get(&idx).map_or(&[][..], Vec::as_slice);
                let basis = (ctx.root, rel);
                if let Err(msg) = set_xattrs(ctx, &ctx.list[idx], got, rel, basis) {
                    report.errors.push(msg.clone());
                    report.io_error |= 1;
                    let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
                }
            }
            continue;
        }
        let e = &ctx.list[idx];
        if e.kind() != Some(FileKind::Regular) {
            return Err(Error::Protocol(format!(
                "file data sent for a non-regular item: {ndx}"
            )));
        }
        if ctx.opts.dry_run {
            report.stats.num_transferred += 1;
            report.stats.transferred_size += e.size;
            continue;
        }
        let head = r
            .decode(|b| SumHead::decode(b, protocol, digest_len, &limits))
            .await?;
        let rel = ctx.rel(idx);
        // The generator chose the partial file as the basis (0x81).
        let partial = ctx
            .opts
            .partial_dir
            .as_deref()
            .filter(|_| basis_type == Some(local::FNAMECMP_PARTIAL_DIR));
        let basis_loc = partial.map_or_else(
            || local::Loc::In(ctx.root, rel.to_vec()),
            |d| local::partial_path(ctx.root, rel, d),
        );
        let basis = if head.count > 0 {
            let (r, n) = basis_loc.get();
            r.open_read(n)
                .map(Basis::File)
                .unwrap_or(Basis::None(NoBasis))
        } else {
            Basis::None(NoBasis)
        };
        let inplace = ctx.opts.inplace;
        let (uid, gid) = (ctx.ids.uid(e.uid), ctx.ids.gid(e.gid));
        let out = if inplace {
            ctx.root.open_inplace(rel).map(|f| (f, rel.to_vec()))
        } else {
            let mode = local::tmp_mode(e, uid, gid, &ctx.preserve, me);
            local::create_tmp(ctx.root, rel, mode)
        };
        // Removes (or with --partial keeps) the temporary file however this
        // step ends, including when the whole transfer is cancelled by
        // dropping its future.
        let keep = ctx
            .opts
            .partial
            .then(|| (rel.to_vec(), ctx.opts.partial_dir.clone()));
        let mut guard = TempGuard(
            ctx.root,
            out.as_ref()
                .ok()
                .filter(|_| !inplace)
                .map(|(_, p)| p.clone()),
            keep,
        );
        // --append: the first pass continues after the receiver's part
        // (the redo after a failed --append-verify is a normal update).
        let append = super::sender::append_mode(ctx.opts, protocol);
        let mode = WriteMode {
            start: if append > 0 && !redone.contains(&idx) {
                head.basis_len()
            } else {
                0
            },
            verify_prefix: append == 2 && !redone.contains(&idx),
            // rsync turns --sparse off for --append's first pass.
            sparse: ctx.opts.sparse && (append == 0 || redone.contains(&idx)),
            inplace,
            preallocate: ctx.opts.preallocate.then_some(e.size),
        };
        let outcome = receive_data(
            ctx,
            e,
            r,
            head,
            basis,
            out,
            mode,
            (&limits, digest_len),
            dec.as_mut(),
            &mut report,
        )
        .await?;
        match outcome {
            Outcome::Ok(tmp, _) if inplace => {
                let got = fetched.get(&idx).map_or(&[][..], Vec::as_slice);
                if let Err(msg) = set_xattrs(ctx, e, got, &tmp, basis_loc.get()) {
                    report.errors.push(msg.clone());
                    report.io_error |= 1;
                    let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
                }
                // The old content may have been longer.
                let res = ctx
                    .root
                    .open_inplace(&tmp)
                    .and_then(|f| f.set_len(e.size))
                    .and_then(|()| {
                        local::set_attrs(ctx.root, &tmp, e, uid, gid, &ctx.preserve, None, true)
                    })
                    .map(|_| ());
                match res {
                    Ok(()) => {
                        report.stats.num_transferred += 1;
                        report.stats.transferred_size += e.size;
                        let _ = tx.send(ToGen::Success(idx));
                    }
                    Err(err) => {
                        let msg =
                            format!("update of \"{}\" failed: {err}", ctx.path(idx).display());
                        report.errors.push(msg.clone());
                        report.io_error |= 1;
                        let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
                    }
                }
            }
            Outcome::Ok(tmp, file) => {
                let got = fetched.get(&idx).map_or(&[][..], Vec::as_slice);
                if let Err(msg) = set_xattrs(ctx, e, got, &tmp, basis_loc.get()) {
                    report.errors.push(msg.clone());
                    report.io_error |= 1;
                    let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
                }
                let root = ctx.root;
                // The new file's attributes go through its open handle
                // (an ACL goes by name).
                let attrs = match file.filter(|_| !ctx.preserve.acls) {
                    Some(f) => local::set_attrs_fd(&f, e, uid, gid, &ctx.preserve),
                    None => local::set_attrs(root, &tmp, e, uid, gid, &ctx.preserve, None, true)
                        .map(|_| ()),
                };
                let res = attrs.and_then(|()| {
                    if ctx.opts.backup {
                        local::make_backup(root, rel, &e.name, ctx.opts)?;
                    }
                    if ctx.opts.delay_updates {
                        let held = local::delay_path(root, rel)?;
                        root.rename(&tmp, &held)?;
                        delayed.push((idx, held, rel.to_vec()));
                        Ok(())
                    } else {
                        root.rename(&tmp, rel)
                    }
                });
                if res.is_ok() {
                    guard.renamed();
                    if let Some(d) = partial {
                        local::drop_partial(root, rel, d);
                    }
                } else {
                    guard.discard();
                }
                if let Err(err) = res {
                    let msg = format!("rename \"{}\" failed: {err}", ctx.path(idx).display());
                    report.errors.push(msg.clone());
                    report.io_error |= 1;
                    let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
                } else {
                    report.stats.num_transferred += 1;
                    report.stats.transferred_size += e.size;
                    if !ctx.opts.delay_updates {
                        let _ = tx.send(ToGen::Success(idx));
                    }
                }
            }
            Outcome::Mismatch => {
                guard.discard();
                let name = String::from_utf8_lossy(&e.name).into_owned();
                if redone.insert(idx) {
                    let _ = tx.send(ToGen::Msg(
                        MsgCode::Warning,
                        format!(
                            "WARNING: {name} failed verification -- update {} (will try again).",
                            if inplace { "retained" } else { "discarded" }
                        ),
                    ));
                    let _ = tx.send(ToGen::Redo(idx));
                } else {
                    let msg = format!(
                        "ERROR: {name} failed verification -- update {}.",
                        if inplace { "retained" } else { "discarded" }
                    );
                    report.errors.push(msg.clone());
                    report.io_error |= 1;
                    let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
                }
            }
            Outcome::LocalError(msg) if msg.starts_with("write failed") => {
                // rsync's receiver stops at a failed write (a full disk):
                // RERR_FILEIO, exit 11. The temporary file goes with the
                // guard; the destination file stays the old one.
                let why = msg.trim_start_matches("write failed: ");
                let text = format!("write failed on \"{}\": {why}", ctx.path(idx).display());
                let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, text));
                return Err(Error::local(
                    "write failed on",
                    ctx.path(idx),
                    std::io::Error::other(why.to_string()),
                ));
            }
            Outcome::LocalError(msg) => {
                report.errors.push(msg.clone());
                report.io_error |= 1;
                let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
            }
        }
    }
    if !setup.is_server {
        // Statistics from a server sender.
        let n = if protocol >= 29 { 5 } else { 3 };
        for k in 0..n {
            let v = r.read_varlong30(protocol, 3).await?;
            let v = u64::try_from(v).unwrap_or(0);
            match k {
                0 => report.stats.bytes_sent = v,
                1 => report.stats.bytes_received = v,
                _ => {}
            }
        }
    }
    if protocol >= 31 {
        loop {
            let ndx = r.decode(|b| ndx_in.decode(b)).await?;
            if ndx == NDX_DEL_STATS {
                for _ in 0..5 {
                    r.read_varint().await?;
                }
                continue;
            }
            if ndx != NDX_DONE {
                return Err(Error::Protocol(format!(
                    "expected the goodbye echo, got index {ndx}"
                )));
            }
            break;
        }
    }
    let _ = tx.send(ToGen::Done);
    Ok(report)
}

/// `-X`: gives `target` entry `e`'s whole attribute set. Abbreviated values
/// come from `fetched` or, when the digest matches, from `basis`; one that
/// is in neither is reported (and the others are still set).
fn set_xattrs(
    ctx: &RecvCtx<'_>,
    e: &FileEntry,
    fetched: &[(i32, Vec<u8>)],
    rel: &[u8],
    basis: (&Root, &[u8]),
) -> std::result::Result<(), String> {
    if ctx.opts.xattrs == 0 {
        return Ok(());
    }
    let target = ctx.root.display(rel);
    let wanted = ctx.wanted_xattrs(e, fetched, Some(basis));
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    let res = ctx
        .root
        .xattr_target(rel)
        .and_then(|t| crate::fs::xattrs::apply_on((&t).into(), &wanted, &ctx.xattrs))
        .map_err(|err| {
            format!(
                "rsync_xal_set: setxattr(\"{}\") failed: {err}",
                target.display()
            )
        });
    match missing.first() {
        Some(name) => Err(format!(
            "Missing abbreviated xattr value, {name}, for \"{}\"",
            target.display()
        )),
        None => res.map(|_| ()),
    }
}

/// Gives every hard-linked entry its group key in `dev`/`ino`, whatever
/// the protocol: (dev, ino) below 30; at 30 and later the sending index of
/// the group's first entry (`dev` = `u64::MAX`), which the entries lose
/// once the list is sorted.
fn normalize_hardlinks(entries: &mut [FileEntry], protocol: u8) {
    if protocol < 30 {
        return;
    }
    for (pos, e) in entries.iter_mut().enumerate() {
        if let Some(h) = e.hardlink_mut() {
            let key = h
                .first
                .map_or(pos as u64, |f| u64::try_from(f).unwrap_or(0));
            h.first = None;
            h.dev = u64::MAX;
            h.ino = key;
        }
    }
}

/// Renames the files held back by `--delay-updates` into place, in list
/// order, then removes the emptied holding directories.
fn finish_delayed(
    root: &Root,
    delayed: &mut Vec<(usize, Vec<u8>, Vec<u8>)>,
    tx: &UnboundedSender<ToGen>,
    report: &mut Report,
) {
    delayed.sort_by_key(|d| d.0);
    let mut dirs: Vec<Vec<u8>> = Vec::new();
    for (idx, held, path) in delayed.drain(..) {
        if let Err(err) = root.rename(&held, &path) {
            let msg = format!(
                "rename \"{}\" -> \"{}\": {err}",
                root.display(&held).display(),
                root.display(&path).display()
            );
            report.errors.push(msg.clone());
            report.io_error |= 1;
            let _ = tx.send(ToGen::Msg(MsgCode::ErrorXfer, msg));
        } else {
            let _ = tx.send(ToGen::Success(idx));
        }
        if let Some(p) = held.iter().rposition(|b| *b == b'/') {
            let d = &held[..p];
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_vec());
            }
        }
    }
    for d in dirs {
        let _ = root.remove_dir(&d);
    }
}

/// How the received data is written.
#[derive(Debug, Clone, Copy)]
struct WriteMode {
    /// The offset of the first byte (`--append`: the kept length).
    start: u64,
    /// `--append-verify`: the kept bytes count in the whole-file checksum.
    verify_prefix: bool,
    /// `--sparse`.
    sparse: bool,
    /// `--inplace` (with `--sparse`: holes punched into the old file).
    inplace: bool,
    /// `--preallocate`: the size to reserve.
    preallocate: Option<u64>,
}

enum Outcome {
    /// Written and verified: its name, and the file still open.
    Ok(Vec<u8>, Option<fs::File>),
    Mismatch,
    LocalError(String),
}

#[allow(clippy::too_many_arguments)]
async fn receive_data<R: AsyncRead + Unpin>(
    ctx: &RecvCtx<'_>,
    entry: &FileEntry,
    r: &mut MuxReader<R>,
    head: SumHead,
    basis: Basis,
    out: std::io::Result<(fs::File, Vec<u8>)>,
    mode: WriteMode,
    (limits, digest_len): (&Limits, usize),
    dec: Option<&mut TokenDecompressor>,
    report: &mut Report,
) -> Result<Outcome> {
    let (writer, tmp, local_err) = match out {
        Ok((f, p)) => {
            let mut of = local::OutFile::new(f, mode.start, mode.sparse);
            let old_len = if mode.inplace {
                of.inplace(ctx.whole_file)
            } else {
                0
            };
            // In place, only a file that grows is preallocated (upstream
            // receive_data).
            if let Some(len) = mode.preallocate.filter(|l| !mode.inplace || *l > old_len) {
                of.preallocate(len);
            }
            (
                Some(BufWriter::with_capacity(256 * 1024, of)),
                Some(p),
                None,
            )
        }
        Err(e) => (None, None, Some(format!("mkstemp failed: {e}"))),
    };
    let res = receive_tokens(
        ctx,
        entry,
        r,
        head,
        (basis, mode),
        writer,
        tmp.clone(),
        local_err,
        (limits, digest_len),
        dec,
        report,
    )
    .await;
    // If the stream broke mid-file the old file stays; the caller's guard
    // removes the partial (or keeps it with --partial).
    res
}

#[allow(clippy::too_many_arguments)]
async fn receive_tokens<R: AsyncRead + Unpin>(
    ctx: &RecvCtx<'_>,
    entry: &FileEntry,
    r: &mut MuxReader<R>,
    head: SumHead,
    (mut basis, mode): (Basis, WriteMode),
    mut writer: Option<BufWriter<local::OutFile>>,
    tmp: Option<Vec<u8>>,
    mut local_err: Option<String>,
    (limits, digest_len): (&Limits, usize),
    mut dec: Option<&mut TokenDecompressor>,
    report: &mut Report,
) -> Result<Outcome> {
    let mut sink = std::io::sink();
    let mut patcher = Patcher::new(head, ctx.setup.checksum);
    if mode.verify_prefix && mode.start > 0 {
        // --append-verify: the kept part counts in the checksum.
        let mut off = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        while off < mode.start {
            let n = usize::try_from((mode.start - off).min(buf.len() as u64)).unwrap_or(0);
            let read = match &mut basis {
                Basis::File(f) => f.read_block(off, &mut buf[..n]),
                Basis::None(b) => b.read_block(off, &mut buf[..n]),
            };
            if let Err(e) = read {
                local_err.get_or_insert(format!("reading the kept part failed: {e}"));
                break;
            }
            patcher.hash_only(&buf[..n]);
            off += n as u64;
        }
    }
    let mut next_progress = PROGRESS_STEP;
    let cap = output_cap(entry.size);
    let too_much = |written: u64| {
        Error::Protocol(format!(
            "the sender sent {written} bytes for \"{}\", listed with {} bytes; refusing more than {cap}",
            String::from_utf8_lossy(&entry.name),
            entry.size
        ))
    };
    while let Some(dec) = dec.as_deref_mut() {
        if patcher.written() > cap {
            return Err(too_much(patcher.written()));
        }
        if ctx.opts.progress && patcher.written() >= next_progress {
            next_progress = patcher.written() + PROGRESS_STEP;
            ctx.emit(Event::Progress {
                name: entry.name.clone(),
                done: patcher.written(),
                total: entry.size,
            });
        }
        // Compressed tokens: literals arrive decompressed; a block's bytes
        // are read from the basis, written, and given back to the
        // decompressor (zlib keeps them in its history).
        match r.decode(|b| dec.decode(b)).await? {
            CToken::End => break,
            CToken::Literal(data) => {
                report.stats.literal_data += data.len() as u64;
                let res = match writer.as_mut() {
                    Some(w) => patcher.literal(&data, w),
                    None => patcher.literal(&data, &mut sink),
                };
                if let Err(e) = res {
                    local_err.get_or_insert(format!("write failed: {e}"));
                    writer = None;
                }
            }
            CToken::Block(i) => {
                let (Some(len), Some(off)) = (head.block_len(i), head.block_offset(i)) else {
                    return Err(Error::Protocol(format!("invalid block index {i}")));
                };
                report.stats.matched_data += len as u64;
                let mut bytes = vec![0u8; len];
                let read = match &mut basis {
                    Basis::File(f) => f.read_block(off, &mut bytes),
                    Basis::None(n) => n.read_block(off, &mut bytes),
                };
                if let Err(e) = read {
                    local_err.get_or_insert(format!("reading the basis failed: {e}"));
                    writer = None;
                }
                let res = match writer.as_mut() {
                    Some(w) => patcher.literal(&bytes, w),
                    None => patcher.literal(&bytes, &mut sink),
                };
                if let Err(e) = res {
                    local_err.get_or_insert(format!("write failed: {e}"));
                    writer = None;
                }
                dec.block_data(&bytes);
            }
        }
    }
    loop {
        if dec.is_some() {
            break;
        }
        if patcher.written() > cap {
            return Err(too_much(patcher.written()));
        }
        if ctx.opts.progress && patcher.written() >= next_progress {
            next_progress = patcher.written() + PROGRESS_STEP;
            ctx.emit(Event::Progress {
                name: entry.name.clone(),
                done: patcher.written(),
                total: entry.size,
            });
        }
        match r.decode(|b| decode_token_header(b, limits)).await? {
            TokenHeader::End => break,
            TokenHeader::Literal(mut len) => {
                report.stats.literal_data += len as u64;
                while len > 0 {
                    let mut res = Ok(());
                    let n = r
                        .read_some(len, |data| {
                            res = match writer.as_mut() {
                                Some(w) => patcher.literal(data, w),
                                None => patcher.literal(data, &mut sink),
                            };
                        })
                        .await?;
                    len -= n;
                    if let Err(e) = res {
                        local_err.get_or_insert(format!("write failed: {e}"));
                        writer = None;
                    }
                }
            }
            TokenHeader::Block(i) => {
                let len = head
                    .block_len(i)
                    .ok_or_else(|| Error::Protocol(format!("invalid block index {i}")))?;
                report.stats.matched_data += len as u64;
                let res = match (&mut basis, writer.as_mut()) {
                    (Basis::File(f), Some(w)) => patcher.block(i, f, w),
                    (Basis::File(f), None) => patcher.block(i, f, &mut sink),
                    (Basis::None(n), Some(w)) => patcher.block(i, n, w),
                    (Basis::None(n), None) => patcher.block(i, n, &mut sink),
                };
                if let Err(e) = res {
                    local_err.get_or_insert(format!("rebuilding from the basis failed: {e}"));
                    writer = None;
                }
            }
        }
    }
    let mut theirs = vec![0u8; digest_len];
    r.read_exact(&mut theirs).await?;
    if ctx.opts.progress {
        ctx.emit(Event::Progress {
            name: entry.name.clone(),
            done: patcher.written(),
            total: patcher.written(),
        });
    }
    let ours = patcher.finish();
    let flushed = match writer.take() {
        Some(mut w) => w
            .flush()
            .and_then(|()| w.get_mut().finish())
            .map(|()| w.into_parts().0.into_file())
            .map_err(|e| e.to_string()),
        None => Err(String::new()),
    };
    let result = if let Some(msg) = local_err {
        Outcome::LocalError(msg)
    } else if let Err(msg) = &flushed {
        Outcome::LocalError(format!("write failed: {msg}"))
    } else if ours.as_bytes() != theirs.as_slice() {
        Outcome::Mismatch
    } else if let Some(p) = &tmp {
        return Ok(Outcome::Ok(p.clone(), flushed.ok()));
    } else {
        Outcome::LocalError("no temporary file".into())
    };
    if let Some(p) = tmp.as_ref().filter(|_| !ctx.opts.inplace) {
        let _ = ctx.root.remove_file(p);
    }
    Ok(result)
}
