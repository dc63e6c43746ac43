//! The sender role: sends the file list, answers each request with delta
//! tokens and the whole-file checksum, counts the phases.
//!
//! Layer: engine. Uses flist, delta, checksum, wire; reads local files.
//! Mirrors upstream flist.c `send_file_list`, sender.c `send_files`,
//! main.c `handle_stats` and `read_final_goodbye`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{MuxReader, MuxWriter};
use super::options::Options;
use super::report::{Event, EventSink, ItemKind, Report, item};
use super::setup::Setup;
use crate::delta::{
    CHUNK_SIZE, Compression, Matcher, Signature, SumHead, Token, TokenCompressor, encode_block,
    encode_end, encode_literal,
};
use crate::error::{Error, Result};
use crate::flist::{FileEntry, FileKind, FileListEncoder, FlistOptions, encode_id_list};
use crate::wire::{self, Limits, MsgCode, NDX_DEL_STATS, NDX_DONE, NdxDecoder, NdxEncoder};

/// Bytes of a source file read per step.
const READ_STEP: usize = 256 * 1024;

/// The list the sender offers, in sending order (which we keep equal to
/// rsync's sorted order).
#[derive(Debug, Clone, Default)]
pub struct SendList {
    /// The entries.
    pub entries: Vec<FileEntry>,
    /// The local path of each entry.
    pub paths: Vec<PathBuf>,
    /// io_error bits from building the list.
    pub io_error: i32,
    /// Messages about what could not be listed.
    pub errors: Vec<String>,
    /// A daemon module (not chrooted) every path is read beneath.
    pub beneath: Option<std::sync::Arc<crate::fs::beneath_read::ReadRoot>>,
}

/// File-list options for this session.
pub(crate) fn flist_options(setup: &Setup, opts: &Options) -> FlistOptions {
    FlistOptions {
        protocol: setup.protocol,
        varint_flags: setup.varint_flags(),
        safe_flist: setup.safe_flist(),
        inc_recurse: false,
        id0_names: setup.compat.contains(crate::wire::CompatFlags::ID0_NAMES),
        preserve_uid: opts.owner,
        preserve_gid: opts.group,
        preserve_links: opts.links,
        preserve_devices: opts.devices,
        preserve_specials: opts.specials,
        preserve_hard_links: opts.hard_links,
        preserve_atimes: opts.atimes > 0,
        numeric_ids: opts.numeric_ids,
        checksum_len: if opts.checksum {
            setup.file_sum.kind.digest_len()
        } else {
            0
        },
        preserve_xattrs: opts.xattrs > 0,
        preserve_acls: opts.acls,
    }
}

/// Whether an item with these flags carries the xattr request (generator
/// to sender) and the requested values (sender to receiver): `-X`,
/// `ITEM_REPORT_XATTR`, not a dry run, and not the hard-link shortcut
/// (protocol >= 31 without `CF_AVOID_XATTR_OPTIM`, for items with both
/// `ITEM_XNAME_FOLLOWS` and `ITEM_LOCAL_CHANGE`).
pub(crate) fn xattr_exchange(setup: &Setup, opts: &Options, iflags: u16) -> bool {
    let optim = setup.protocol >= 31
        && !setup
            .compat
            .contains(crate::wire::CompatFlags::AVOID_XATTR_OPTIM);
    let both = item::XNAME_FOLLOWS | item::LOCAL_CHANGE;
    opts.xattrs > 0
        && iflags & item::REPORT_XATTR != 0
        && !opts.dry_run
        && !(optim && iflags & both == both)
}

/// Reads the generator's xattr request for `entry` and prepares the
/// sender's answer: the requested values read again from `path` (a value
/// that cannot be read goes as empty, as rsync does).
async fn answer_xattr_request<R: AsyncRead + Unpin>(
    r: &mut MuxReader<R>,
    entry: &FileEntry,
    (path, beneath): (&std::path::Path, Option<&crate::fs::beneath_read::ReadRoot>),
    limits: &Limits,
    report: &mut Report,
) -> Result<Vec<u8>> {
    let follow = entry.kind() != Some(FileKind::Symlink);
    let mut nums = r
        .decode(|b| crate::flist::xattrs::decode_xattr_request(b, limits))
        .await?;
    nums.sort_unstable();
    nums.dedup();
    let list = entry.xattrs().unwrap_or_default();
    let mut values = Vec::with_capacity(nums.len());
    for n in nums {
        let x = usize::try_from(n - 1)
            .ok()
            .and_then(|i| list.get(i))
            .filter(|x| x.value.is_abbrev())
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "could not find abbreviated xattr #{n} for {}",
                    String::from_utf8_lossy(&entry.name)
                ))
            })?;
        let value = crate::fs::beneath_read::with_xattr_path(beneath, path, follow, |p| {
            crate::fs::xattrs::read_value(p, &x.name)
        })
        .unwrap_or_else(|err| {
            report.errors.push(format!(
                "failed to re-read xattr {} for {}: {err}",
                String::from_utf8_lossy(&x.name),
                path.display()
            ));
            report.io_error |= 1;
            Vec::new()
        });
        values.push((n, value));
    }
    let refs: Vec<(i32, &[u8])> = values.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let mut out = Vec::new();
    crate::flist::xattrs::encode_xattr_values(&mut out, &refs);
    Ok(out)
}

pub(crate) fn item_kind(e: &FileEntry) -> ItemKind {
    match e.kind() {
        Some(FileKind::Dir) => ItemKind::Dir,
        Some(FileKind::Symlink) => ItemKind::Symlink,
        Some(FileKind::CharDev | FileKind::BlockDev) => ItemKind::Device,
        Some(FileKind::Fifo | FileKind::Socket) => ItemKind::Special,
        _ => ItemKind::File,
    }
}

/// Computes `--checksum` file sums for the regular files of a list.
pub(crate) fn fill_file_sums(list: &mut SendList, setup: &Setup, opts: &Options) {
    for (e, p) in list.entries.iter_mut().zip(&list.paths) {
        if e.kind() != Some(FileKind::Regular) {
            continue;
        }
        let mut h = setup.file_sum.file_hasher();
        let ok = open_source(p, opts, list.beneath.as_deref()).and_then(|mut f| {
            let mut buf = vec![0u8; READ_STEP];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                h.update(&buf[..n]);
            }
        });
        match ok {
            Ok(()) => e.extra_mut().checksum = Some(h.finish().as_bytes().to_vec()),
            Err(_) => {
                e.extra_mut().checksum = Some(vec![0; setup.file_sum.kind.digest_len()]);
                list.io_error |= 1;
            }
        }
    }
}

/// Runs the sender until the peer's goodbye.
///
/// # Errors
/// A broken connection or a peer that breaks the protocol.
#[allow(clippy::too_many_lines)]
pub async fn run_sender<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    setup: &Setup,
    opts: &Options,
    mut list: SendList,
    events: Option<&EventSink>,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let started = Instant::now();
    let protocol = setup.protocol;
    let limits = Limits::default();
    let mut report = Report::default();
    for msg in std::mem::take(&mut list.errors) {
        if setup.is_server {
            w.send_msg(MsgCode::Error, format!("{msg}\n").as_bytes())
                .await?;
        } else {
            report.errors.push(msg);
        }
    }
    if opts.checksum {
        let (s, o) = (*setup, opts.clone());
        list = super::list_keeping_alive(w, move || {
            fill_file_sums(&mut list, &s, &o);
            Ok(list)
        })
        .await?;
    }
    if opts.hard_links && protocol >= 30 {
        // Followers name their group's first entry by its sending index.
        crate::flist::link_hardlink_groups(&mut list.entries, 0);
    }
    let build_ms = started.elapsed().as_millis();

    // The file list.
    let flist_start = w.bytes_written();
    let xfer_start = Instant::now();
    let fopts = flist_options(setup, opts);
    let mut enc = FileListEncoder::new(fopts);
    for e in &list.entries {
        enc.encode_entry(w.buf(), e)?;
        w.maybe_flush().await?;
    }
    let io_error = if opts.ignore_errors { 0 } else { list.io_error };
    enc.encode_end(w.buf(), if setup.safe_flist() { io_error } else { 0 });
    if !opts.numeric_ids {
        let mut uids: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut gids: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut root_user = None;
        let mut root_group = None;
        let names = if opts.local_numeric_ids {
            &[][..]
        } else {
            &list.entries[..]
        };
        for e in names {
            if let Some(n) = e.user_name.as_ref().filter(|_| opts.owner) {
                if e.uid == 0 {
                    root_user = Some(n.to_vec());
                } else if !uids.iter().any(|(u, _)| *u == e.uid) {
                    uids.push((e.uid, n.to_vec()));
                }
            }
            if let Some(n) = e.group_name.as_ref().filter(|_| opts.group) {
                if e.gid == 0 {
                    root_group = Some(n.to_vec());
                } else if !gids.iter().any(|(g, _)| *g == e.gid) {
                    gids.push((e.gid, n.to_vec()));
                }
            }
            // `-A`: the ids the ACLs name join the lists (upstream
            // `send_ida_entries` calls `add_uid` / `add_gid`).
            let acl_names = e.extra().acls.as_ref().filter(|_| opts.acls);
            for (is_user, id, n) in acl_names.iter().flat_map(|a| &a.id_names) {
                let (list, root) = if *is_user {
                    (&mut uids, &mut root_user)
                } else {
                    (&mut gids, &mut root_group)
                };
                if *id == 0 {
                    root.get_or_insert_with(|| n.clone());
                } else if !list.iter().any(|(i, _)| i == id) {
                    list.push((*id, n.clone()));
                }
            }
        }
        let id0 = fopts.id0_names;
        if opts.owner || opts.acls {
            let name = root_user.unwrap_or_else(|| b"root".to_vec());
            encode_id_list(w.buf(), protocol, &uids, id0.then_some(name.as_slice()));
        }
        if opts.group || opts.acls {
            let name = root_group.unwrap_or_else(|| b"root".to_vec());
            encode_id_list(w.buf(), protocol, &gids, id0.then_some(name.as_slice()));
        }
    }
    if protocol < 30 {
        wire::encode_i32(w.buf(), io_error);
    }
    w.flush().await?;
    if protocol >= 30 && !setup.safe_flist() && io_error != 0 {
        w.send_msg(MsgCode::IoError, &io_error.to_le_bytes())
            .await?;
    }
    report.stats.flist_size = w.bytes_written() - flist_start;
    report.stats.num_files = list.entries.len() as u64;
    for e in &list.entries {
        if e.kind() == Some(FileKind::Regular) {
            report.stats.num_reg_files += 1;
        }
        if !e.is_dir() {
            report.stats.total_size += e.size;
        }
    }
    report.io_error |= list.io_error;
    if let Some(ev) = events {
        ev(&Event::FileList {
            files: list.entries.len() as u64,
            size: regular_size(&list.entries),
        });
    }
    if list.entries.is_empty() && setup.is_server {
        // Nothing to send: rsync's server sender exits here and its client
        // receiver stops after the empty list; so do ours.
        w.flush().await?;
        return Ok(report);
    }

    // Requests.
    let mut ndx_in = NdxDecoder::new(protocol);
    let mut ndx_out = NdxEncoder::new(protocol);
    let max_phase = if protocol >= 29 { 2 } else { 1 };
    let mut phase = 0;
    let digest_len = setup.checksum.kind.digest_len();
    let mut comp = setup
        .compression
        .and_then(Compression::from_name)
        .map(|k| TokenCompressor::new(k, opts.compress_level, protocol));
    let skip_list = crate::delta::SkipCompress::new(opts.skip_compress.as_deref());
    // Phase 0 asks for files in list order: entries before the one asked
    // for that were not asked for are up to date.
    let mut decided = 0usize;
    let append = append_mode(opts, protocol);
    // Files already sent once: a second request is a redo (full sums, no
    // append shortcut), as rsync's FLAG_FILE_SENT.
    let mut sent: std::collections::HashSet<usize> = std::collections::HashSet::new();
    loop {
        let ndx = r.decode(|b| ndx_in.decode(b)).await?;
        remove_sent(r, w, setup, opts, &list, &mut report).await?;
        if ndx == NDX_DONE {
            if phase == 0 {
                up_to_date(events, list.entries.get(decided..).unwrap_or_default());
                decided = list.entries.len();
            }
            phase += 1;
            if phase > max_phase {
                break;
            }
            ndx_out.encode(w.buf(), NDX_DONE);
            w.flush().await?;
            continue;
        }
        if ndx == NDX_DEL_STATS {
            forward_del_stats(r, w, setup, &mut ndx_out).await?;
            continue;
        }
        let idx = usize::try_from(ndx)
            .ok()
            .filter(|i| *i < list.entries.len())
            .ok_or_else(|| Error::Protocol(format!("invalid file index {ndx} requested")))?;
        let iflags = if protocol >= 29 {
            r.read_u16().await?
        } else {
            item::TRANSFER
        };
        let basis = if iflags & item::BASIS_TYPE_FOLLOWS != 0 {
            Some(r.read_u8().await?)
        } else {
            None
        };
        let xname = if iflags & item::XNAME_FOLLOWS != 0 {
            Some(r.read_vstring(limits.max_name_len).await?)
        } else {
            None
        };
        if phase == 0 && idx >= decided {
            up_to_date(events, list.entries.get(decided..idx).unwrap_or_default());
            decided = idx + 1;
            if iflags & item::TRANSFER == 0 {
                up_to_date(events, &list.entries[idx..=idx]);
            }
        }
        let entry = &list.entries[idx];
        let xattr_values = if xattr_exchange(setup, opts, iflags) {
            Some(
                answer_xattr_request(
                    r,
                    entry,
                    (&list.paths[idx], list.beneath.as_deref()),
                    &limits,
                    &mut report,
                )
                .await?,
            )
        } else {
            None
        };
        let echo = |w: &mut MuxWriter<W>, ndx_out: &mut NdxEncoder| -> Result<()> {
            ndx_out.encode(w.buf(), ndx);
            if protocol >= 29 {
                wire::encode_u16(w.buf(), iflags);
                if let Some(b) = basis {
                    w.buf().push(b);
                }
                if let Some(x) = &xname {
                    wire::encode_vstring(w.buf(), x)?;
                }
                if let Some(v) = &xattr_values {
                    w.put(v);
                }
            }
            Ok(())
        };
        if let Some(ev) = events {
            ev(&Event::Itemize {
                flags: iflags,
                kind: item_kind(entry),
                name: entry.name.clone(),
                extra: entry.link_target().map(<[u8]>::to_vec),
                sending: true,
                times: opts.times,
                known: protocol >= 29,
                size: entry.size,
            });
        }
        if iflags & item::TRANSFER == 0 {
            echo(w, &mut ndx_out)?;
            continue;
        }
        if opts.dry_run {
            echo(w, &mut ndx_out)?;
            report.stats.num_transferred += 1;
            report.stats.transferred_size += entry.size;
            continue;
        }
        let head = r
            .decode(|b| SumHead::decode(b, protocol, digest_len, &limits))
            .await?;
        // --append: the header describes the receiver's length and no
        // block sums follow (upstream receive_sums).
        let append_now = append > 0 && sent.insert(idx);
        let blocks = if append_now {
            Vec::new()
        } else {
            r.decode(|b| Signature::decode_blocks(b, &head)).await?
        };
        let sig = crate::delta::Signature { head, blocks };
        if entry.kind() != Some(FileKind::Regular) {
            return Err(Error::Protocol(format!(
                "file data requested for a non-regular item: {ndx}"
            )));
        }
        let file = match open_source(&list.paths[idx], opts, list.beneath.as_deref()) {
            Ok(f) => f,
            Err(err) => {
                let msg = format!(
                    "send_files failed to open \"{}\": {err}\n",
                    list.paths[idx].display()
                );
                report.errors.push(msg.trim_end().to_string());
                report.io_error |= 1;
                w.send_msg(MsgCode::ErrorXfer, msg.as_bytes()).await?;
                if protocol >= 30 {
                    w.send_msg(MsgCode::NoSend, &ndx.to_le_bytes()).await?;
                }
                continue;
            }
        };
        if append_now && file.metadata().is_ok_and(|m| m.len() < entry.size) {
            let msg = format!("skipped diminished file: {}\n", list.paths[idx].display());
            w.send_msg(MsgCode::Warning, msg.as_bytes()).await?;
            if protocol >= 30 {
                w.send_msg(MsgCode::NoSend, &ndx.to_le_bytes()).await?;
            }
            continue;
        }
        echo(w, &mut ndx_out)?;
        head.encode(w.buf(), protocol);
        if let Some(c) = comp.as_mut() {
            c.begin_file(skip_list.matches(&entry.name));
        }
        if append_now {
            send_append(
                w,
                setup,
                (head.basis_len(), append == 2),
                file,
                comp.as_mut(),
                &mut report,
            )
            .await?;
            report.stats.num_transferred += 1;
            report.stats.transferred_size += entry.size;
            continue;
        }
        send_file_data(
            w,
            setup,
            (&sig, opts.inplace),
            file,
            comp.as_mut(),
            &mut report,
        )
        .await?;
        report.stats.num_transferred += 1;
        report.stats.transferred_size += entry.size;
    }
    ndx_out.encode(w.buf(), NDX_DONE);
    if setup.is_server {
        let v = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
        let read = r.bytes_read();
        let written = w.bytes_written();
        wire::encode_varlong30(w.buf(), protocol, v(read), 3);
        wire::encode_varlong30(w.buf(), protocol, v(written), 3);
        wire::encode_varlong30(w.buf(), protocol, v(report.stats.total_size), 3);
        if protocol >= 29 {
            let xfer_ms = xfer_start.elapsed().as_millis();
            wire::encode_varlong30(w.buf(), protocol, i64::try_from(build_ms).unwrap_or(0), 3);
            wire::encode_varlong30(w.buf(), protocol, i64::try_from(xfer_ms).unwrap_or(0), 3);
        }
    }
    w.flush().await?;

    // Goodbye.
    if protocol >= 31 {
        loop {
            let ndx = r.decode(|b| ndx_in.decode(b)).await?;
            if ndx == NDX_DEL_STATS {
                forward_del_stats(r, w, setup, &mut ndx_out).await?;
                continue;
            }
            if ndx != NDX_DONE {
                return Err(Error::Protocol(format!(
                    "expected the goodbye marker, got index {ndx}"
                )));
            }
            break;
        }
        ndx_out.encode(w.buf(), NDX_DONE);
        w.flush().await?;
    }
    let ndx = r.decode(|b| ndx_in.decode(b)).await?;
    if ndx != NDX_DONE {
        return Err(Error::Protocol(format!(
            "expected the final goodbye, got index {ndx}"
        )));
    }
    remove_sent(r, w, setup, opts, &list, &mut report).await?;
    w.flush().await?;
    report.stats.bytes_sent = w.bytes_written();
    report.stats.bytes_received = r.bytes_read();
    Ok(report)
}

/// `--remove-source-files`: deletes the listed items the receiving side
/// confirmed (MSG_SUCCESS), unless they changed since they were listed
/// (upstream sender.c `successful_send`).
async fn remove_sent<R, W>(
    r: &MuxReader<R>,
    w: &mut MuxWriter<W>,
    setup: &Setup,
    opts: &Options,
    list: &SendList,
    report: &mut Report,
) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use std::os::unix::fs::MetadataExt;
    let done = {
        let inbox = r.inbox();
        let mut i = inbox
            .lock()
            .map_err(|_| Error::Protocol("inbox poisoned".into()))?;
        std::mem::take(&mut i.success)
    };
    if !opts.remove_source_files {
        return Ok(());
    }
    for ndx in done {
        let idx = usize::try_from(ndx)
            .ok()
            .filter(|i| *i < list.entries.len())
            .ok_or_else(|| Error::Protocol(format!("invalid file index {ndx} in MSG_SUCCESS")))?;
        let e = &list.entries[idx];
        let path = &list.paths[idx];
        if e.is_dir() {
            continue;
        }
        let st = match list.beneath.as_deref() {
            Some(b) => {
                let st = if opts.copy_links {
                    b.stat(path)
                } else {
                    b.lstat(path)
                };
                st.map_err(std::io::Error::from).and_then(|_| {
                    let (_pin, p) = b.pinned(path, opts.copy_links)?;
                    std::fs::symlink_metadata(p)
                })
            }
            None if opts.copy_links => std::fs::metadata(path),
            None => std::fs::symlink_metadata(path),
        };
        let (code, text) = match st {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => (
                MsgCode::Info,
                format!("sender file already removed: {}", path.display()),
            ),
            Err(err) => (
                MsgCode::ErrorXfer,
                format!("sender failed to re-lstat {}: {err}", path.display()),
            ),
            Ok(m) => {
                let changed = (e.kind() == Some(FileKind::Regular) && m.len() != e.size)
                    || m.mtime() != e.mtime
                    || (setup.protocol >= 31 && m.mtime_nsec() != i64::from(e.mtime_nsec));
                if changed {
                    (
                        MsgCode::ErrorXfer,
                        format!(
                            "ERROR: Skipping sender remove for changed file: {}",
                            path.display()
                        ),
                    )
                } else {
                    let removed = match list.beneath.as_deref() {
                        Some(b) => b.remove_file(path),
                        None => std::fs::remove_file(path),
                    };
                    match removed {
                        Ok(()) => continue,
                        Err(err) => (
                            MsgCode::ErrorXfer,
                            format!("sender failed to remove {}: {err}", path.display()),
                        ),
                    }
                }
            }
        };
        if code == MsgCode::ErrorXfer {
            report.io_error |= 1;
            report.errors.push(text.clone());
        }
        if setup.is_server {
            w.send_msg(code, format!("{text}\n").as_bytes()).await?;
        }
    }
    Ok(())
}

async fn forward_del_stats<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    setup: &Setup,
    ndx_out: &mut NdxEncoder,
) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut vals = [0i32; 5];
    for v in &mut vals {
        *v = r.read_varint().await?;
    }
    if setup.is_server {
        ndx_out.encode(w.buf(), NDX_DEL_STATS);
        for v in vals {
            wire::encode_varint(w.buf(), v);
        }
    }
    Ok(())
}

/// The append mode in force: `--append` is `--append-verify` below
/// protocol 30 (upstream compat.c).
pub(crate) fn append_mode(opts: &Options, protocol: u8) -> u8 {
    if opts.append == 1 && protocol < 30 {
        2
    } else {
        opts.append
    }
}

/// Opens a source file: never through a symlink unless the options make
/// the sender follow symlinks (`-L`, `--copy-unsafe-links`, `-k`, where
/// the list holds the target's kind); with `--open-noatime`, `O_NOATIME`
/// (dropped when the kernel refuses it, as for a file we do not own).
pub(crate) fn open_source(
    path: &std::path::Path,
    opts: &Options,
    beneath: Option<&crate::fs::beneath_read::ReadRoot>,
) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let follow = opts.copy_links || opts.copy_unsafe_links || opts.copy_dirlinks;
    if let Some(b) = beneath {
        let open = |f| b.open_file(path, follow, f);
        return if opts.open_noatime {
            match open(rustix::fs::OFlags::NOATIME) {
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
                    open(rustix::fs::OFlags::empty())
                }
                r => r,
            }
        } else {
            open(rustix::fs::OFlags::empty())
        };
    }
    let mut flags = rustix::fs::OFlags::NONBLOCK;
    if !follow {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let open = |f: rustix::fs::OFlags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(f.bits() as i32)
            .open(path)
    };
    let f = if opts.open_noatime {
        match open(flags | rustix::fs::OFlags::NOATIME) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
                open(flags)?
            }
            r => r?,
        }
    } else {
        open(flags)?
    };
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// `--append`: the receiver keeps its first `keep` bytes; only the rest
/// goes, as literal data. With `verify` the whole-file checksum also
/// covers the kept part (upstream match.c `match_sums` in append mode).
async fn send_append<W: AsyncWrite + Unpin>(
    w: &mut MuxWriter<W>,
    setup: &Setup,
    (keep, verify): (u64, bool),
    mut file: std::fs::File,
    mut comp: Option<&mut TokenCompressor>,
    report: &mut Report,
) -> Result<()> {
    let mut hasher = setup.checksum.file_hasher();
    let mut read_failed = false;
    let mut data = vec![0u8; CHUNK_SIZE];
    let mut pos = 0u64;
    loop {
        let n = match file.read(&mut data) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => {
                read_failed = true;
                break;
            }
        };
        let chunk = &data[..n];
        let skip = usize::try_from(keep.saturating_sub(pos))
            .unwrap_or(usize::MAX)
            .min(n);
        if verify {
            hasher.update(&chunk[..skip]);
        }
        pos += n as u64;
        let tail = &chunk[skip..];
        if tail.is_empty() {
            continue;
        }
        hasher.update(tail);
        report.stats.literal_data += tail.len() as u64;
        match comp.as_deref_mut() {
            Some(c) => c.literal(w.buf(), tail),
            None => encode_literal(w.buf(), tail),
        }
        w.maybe_flush().await?;
    }
    match comp {
        Some(c) => c.end_file(w.buf()),
        None => encode_end(w.buf()),
    }
    let mut sum = hasher.finish().as_bytes().to_vec();
    if read_failed {
        report.io_error |= 1;
        sum.iter_mut().for_each(|b| *b = 0);
    }
    w.put(&sum);
    w.maybe_flush().await
}

async fn send_file_data<W: AsyncWrite + Unpin>(
    w: &mut MuxWriter<W>,
    setup: &Setup,
    (sig, inplace): (&crate::delta::Signature, bool),
    file: std::fs::File,
    comp: Option<&mut TokenCompressor>,
    report: &mut Report,
) -> Result<()> {
    if let Some(comp) = comp {
        return send_compressed(w, setup, (sig, inplace), file, comp, report).await;
    }
    let mut hasher = setup.checksum.file_hasher();
    let mut read_failed = false;
    if sig.head.count == 0 {
        // No block sums: literal records are read straight into the output
        // buffer, behind their length, and hashed in place.
        loop {
            let buf = w.buf();
            let at = buf.len();
            buf.extend_from_slice(&[0u8; 4]);
            match (&file).take(CHUNK_SIZE as u64).read_to_end(buf) {
                Ok(0) => {
                    buf.truncate(at);
                    break;
                }
                Ok(n) => {
                    let len = i32::try_from(n).unwrap_or(i32::MAX).to_le_bytes();
                    buf[at..at + 4].copy_from_slice(&len);
                    hasher.update(&buf[at + 4..]);
                    report.stats.literal_data += n as u64;
                }
                Err(_) => {
                    buf.truncate(at);
                    read_failed = true;
                    break;
                }
            }
            w.maybe_flush().await?;
        }
    } else {
        let mut matcher = Matcher::new(sig, setup.checksum);
        matcher.set_inplace(inplace);
        let mut data = vec![0u8; READ_STEP];
        let mut file = file;
        loop {
            let n = match file.read(&mut data) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => {
                    read_failed = true;
                    break;
                }
            };
            let chunk = &data[..n];
            hasher.update(chunk);
            matcher.feed(chunk, &mut |t| emit(w.buf(), t));
            w.maybe_flush().await?;
        }
        matcher.finish(&mut |t| emit(w.buf(), t));
        let st = matcher.stats();
        report.stats.literal_data += st.literal_bytes;
        report.stats.matched_data += st.matched_bytes;
    }
    encode_end(w.buf());
    let mut sum = hasher.finish().as_bytes().to_vec();
    if read_failed {
        // A deliberately wrong sum makes the receiver discard the file.
        report.io_error |= 1;
        sum.iter_mut().for_each(|b| *b = 0);
    }
    w.put(&sum);
    w.maybe_flush().await
}

/// The compressed token stream: literals and block references go through
/// the session's compressor; zlib also needs the bytes of every matched
/// block, taken from the source data at the current offset.
async fn send_compressed<W: AsyncWrite + Unpin>(
    w: &mut MuxWriter<W>,
    setup: &Setup,
    (sig, inplace): (&crate::delta::Signature, bool),
    mut file: std::fs::File,
    comp: &mut TokenCompressor,
    report: &mut Report,
) -> Result<()> {
    let mut hasher = setup.checksum.file_hasher();
    let mut read_failed = false;
    let mut matcher = (sig.head.count > 0).then(|| {
        let mut m = Matcher::new(sig, setup.checksum);
        m.set_inplace(inplace);
        m
    });
    let mut data = vec![0u8; READ_STEP];
    // Source bytes from offset `win_start` on, for the block data.
    let mut window: Vec<u8> = Vec::new();
    let mut win_start = 0u64;
    let mut pos = 0u64;
    let head = sig.head;
    let mut bad_block = false;
    loop {
        let n = match file.read(&mut data) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => {
                read_failed = true;
                break;
            }
        };
        let chunk = &data[..n];
        hasher.update(chunk);
        match matcher.as_mut() {
            None => {
                comp.literal(w.buf(), chunk);
                report.stats.literal_data += n as u64;
            }
            Some(m) => {
                window.extend_from_slice(chunk);
                let out = w.buf();
                m.feed(chunk, &mut |t| {
                    emit_compressed(
                        out,
                        comp,
                        t,
                        &head,
                        &window,
                        win_start,
                        &mut pos,
                        &mut bad_block,
                    );
                });
                let drop = usize::try_from(pos - win_start)
                    .unwrap_or(0)
                    .min(window.len());
                window.drain(..drop);
                win_start += drop as u64;
            }
        }
        w.maybe_flush().await?;
    }
    if let Some(m) = matcher.as_mut() {
        let out = w.buf();
        m.finish(&mut |t| {
            emit_compressed(
                out,
                comp,
                t,
                &head,
                &window,
                win_start,
                &mut pos,
                &mut bad_block,
            );
        });
        let st = m.stats();
        report.stats.literal_data += st.literal_bytes;
        report.stats.matched_data += st.matched_bytes;
    }
    comp.end_file(w.buf());
    if bad_block {
        return Err(Error::Protocol(
            "matched block outside the source window".into(),
        ));
    }
    let mut sum = hasher.finish().as_bytes().to_vec();
    if read_failed {
        report.io_error |= 1;
        sum.iter_mut().for_each(|b| *b = 0);
    }
    w.put(&sum);
    w.maybe_flush().await
}

#[allow(clippy::too_many_arguments)]
fn emit_compressed(
    out: &mut Vec<u8>,
    comp: &mut TokenCompressor,
    t: Token<'_>,
    head: &SumHead,
    window: &[u8],
    win_start: u64,
    pos: &mut u64,
    bad: &mut bool,
) {
    match t {
        Token::Literal(d) => {
            comp.literal(out, d);
            *pos += d.len() as u64;
        }
        Token::Block(i) => {
            let len = head.block_len(i).unwrap_or(0);
            let from = usize::try_from(*pos - win_start).unwrap_or(usize::MAX);
            match window.get(from..from.saturating_add(len)) {
                Some(bytes) => comp.block(out, i, bytes),
                None => *bad = true,
            }
            *pos += len as u64;
        }
    }
}

fn emit(out: &mut Vec<u8>, t: Token<'_>) {
    match t {
        Token::Literal(d) => encode_literal(out, d),
        Token::Block(i) => encode_block(out, i),
    }
}

/// Total size of the regular files among `entries`.
fn regular_size(entries: &[FileEntry]) -> u64 {
    entries
        .iter()
        .filter(|e| e.kind() == Some(FileKind::Regular))
        .map(|e| e.size)
        .sum()
}

/// [`Event::UpToDate`] for each regular file among `entries`.
fn up_to_date(events: Option<&EventSink>, entries: &[FileEntry]) {
    if let Some(ev) = events {
        for e in entries
            .iter()
            .filter(|e| e.kind() == Some(FileKind::Regular))
        {
            ev(&Event::UpToDate {
                name: e.name.clone(),
                size: e.size,
            });
        }
    }
}
