//! The three roles (generator, sender, receiver) over any async byte
//! stream, and the client and server drivers that run them.
//!
//! Layer: engine (L4). Uses every layer below plus tokio's I/O traits; no
//! networking. Mirrors upstream main.c (`client_run`, `start_server`,
//! `do_server_sender`, `do_server_recv`).
//!
//! ```text
//!   client (pull)                        server (--sender)
//!   generator --requests, NDX_DONE-->    sender
//!   receiver  <--file list, tokens--     sender
//! ```
//! In a push the client runs the sender and the server the generator and
//! the receiver. The generator owns the writing half of the connection and
//! the receiver the reading half; they run concurrently in one task.

mod acls;
mod client_args;
pub mod files_from;
pub mod filters;
mod generator;
pub mod io;
pub mod local;
pub mod options;
mod receiver;
pub mod report;
pub mod requested;
pub mod sender;
pub mod setup;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use io::{MessageSink, MuxReader, MuxWriter};
pub use options::{DeleteTiming, Options, ServerArgs, parse_server_args};
pub use report::{Event, EventSink, ItemKind, Report, Stats};
pub use sender::SendList;
pub use setup::Setup;

use crate::error::{Error, Result};
use crate::filter::Side;
use crate::wire::{Limits, MsgCode};

/// Which side of the transfer the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRole {
    /// We receive into `dest` (a pull).
    Receiver {
        /// The local destination.
        dest: PathBuf,
    },
    /// We send `sources` (a push).
    Sender {
        /// The local sources, with rsync's trailing-slash meaning.
        sources: Vec<PathBuf>,
    },
}

/// Observers of a running transfer.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Per-item events.
    pub events: Option<EventSink>,
    /// Text messages from the peer.
    pub messages: Option<MessageSink>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// Builds the sender's file list from local sources.
///
/// # Errors
/// A source cannot be read at all.
pub fn build_send_list(sources: &[PathBuf], opts: &Options, protocol: u8) -> Result<SendList> {
    build_send_list_filtered(sources, opts, protocol, None)
}

/// [`build_send_list`] leaving out what `filters` exclude.
///
/// # Errors
/// A source cannot be read at all.
pub fn build_send_list_filtered(
    sources: &[PathBuf],
    opts: &Options,
    protocol: u8,
    filters: Option<&crate::filter::FilterSet>,
) -> Result<SendList> {
    let so = scan_options(opts, protocol);
    let beneath = read_root(opts)?;
    let res = crate::fs::scan_sources_beneath(beneath.clone(), sources, &so, filters)
        .map_err(|e| Error::FileSelect(format!("rsync: building the file list failed: {e}")))?;
    let mut list = finish_send_list(res, opts, protocol)?;
    list.beneath = beneath;
    Ok(list)
}

/// The module a daemon's sending side reads beneath ([`Options::module_root`]),
/// opened once for the list and the file data.
fn read_root(opts: &Options) -> Result<Option<Arc<crate::fs::beneath_read::ReadRoot>>> {
    let Some(root) = &opts.module_root else {
        return Ok(None);
    };
    crate::fs::beneath_read::ReadRoot::open(root)
        .map(|r| Some(Arc::new(r)))
        .map_err(|e| {
            Error::FileSelect(format!(
                "rsync: opening the module {} failed: {e}",
                root.display()
            ))
        })
}

/// The `--files-from` list: `names` relative to the directory `base`
/// (rsync's single source argument), scanned the `-R` way when
/// [`Options::relative`] is set.
///
/// # Errors
/// As [`build_send_list`]; a name with a `..` component in its relative
/// part is a syntax error, as in rsync.
pub fn build_send_list_from(
    base: &Path,
    names: &[Vec<u8>],
    opts: &Options,
    protocol: u8,
    filters: Option<&crate::filter::FilterSet>,
) -> Result<SendList> {
    let mut so = scan_options(opts, protocol);
    // --files-from implies --dirs.
    so.dirs = true;
    let beneath = read_root(opts)?;
    let res = if opts.relative {
        crate::fs::scan_relative_beneath(beneath.clone(), Some(base), names, &so, filters)
    } else {
        let sources: Vec<PathBuf> = names
            .iter()
            .map(|n| base.join(std::ffi::OsStr::from_bytes(n)))
            .collect();
        crate::fs::scan_sources_beneath(beneath.clone(), &sources, &so, filters)
    }
    .map_err(|e| Error::FileSelect(format!("rsync: building the file list failed: {e}")))?;
    let mut list = finish_send_list(res, opts, protocol)?;
    list.beneath = beneath;
    Ok(list)
}

/// Builds the sender's list (or its `--checksum` sums) on a thread of its
/// own while keeping the peer alive (`--timeout`): a big tree, or
/// `--checksum`, can take longer than the peer's timeout before the first
/// entry is out, and rsync's receiver gives up on a silent sender. Without
/// keep-alives the list is built right here, as before.
pub(crate) async fn list_keeping_alive<W, T>(
    w: &mut MuxWriter<W>,
    build: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T>
where
    W: AsyncWrite + Unpin,
    T: Send + 'static,
{
    if !w.keepalive_on() {
        return build();
    }
    // A thread of our own, started from this one, not tokio's blocking
    // pool: a daemon connection's thread is chrooted and runs with the
    // module's uid/gid (both per thread on Linux), and a new thread starts
    // with its creator's root directory and credentials, where a pooled
    // one keeps whatever it had.
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ferrsync-list".into())
        .spawn(move || {
            let _ = tx.send(build());
        })
        .map_err(|e| Error::FileSelect(format!("rsync: building the file list failed: {e}")))?;
    loop {
        tokio::select! {
            done = &mut rx => {
                return done.map_err(|_| {
                    Error::FileSelect("rsync: building the file list failed: the thread died".into())
                })?;
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => w.keepalive().await?,
        }
    }
}

fn scan_options(opts: &Options, protocol: u8) -> crate::fs::ScanOptions {
    crate::fs::ScanOptions {
        recursive: opts.recursive,
        // Everything is listed; the receiving side skips what it must not
        // create, saying so, as rsync does.
        links: true,
        devices: true,
        specials: true,
        dirs: opts.dirs || opts.files_from.is_some(),
        one_file_system: opts.one_file_system,
        hard_links: opts.hard_links,
        xattrs: opts.xattrs,
        acls: opts.acls,
        copy_links: opts.copy_links,
        copy_dirlinks: opts.copy_dirlinks,
        copy_unsafe_links: opts
            .copy_unsafe_links
            .then_some(options::unsafe_symlink as fn(&[u8], &[u8]) -> bool),
        relative: opts.relative,
        // At protocol 30 the sender always sends them, flagged; the
        // receiver decides whether to use them.
        implied_dirs: opts.relative && (opts.implied_dirs || protocol >= 30),
        ..crate::fs::ScanOptions::default()
    }
}

fn finish_send_list(
    mut res: crate::fs::ScanResult,
    opts: &Options,
    protocol: u8,
) -> Result<SendList> {
    if let Some(msg) = res.fatal.take() {
        return Err(Error::Syntax(msg));
    }
    apply_chmod(&mut res.entries, opts)?;
    if opts.munge_links {
        munge_links(&mut res.entries, false);
    }
    if opts.safe_links {
        // The sender leaves unsafe symlinks out of the list too.
        let keep: Vec<bool> = res
            .entries
            .iter()
            .map(|e| {
                e.link_target()
                    .is_none_or(|t| !options::unsafe_symlink(t, &e.name))
            })
            .collect();
        let mut k = keep.iter();
        res.entries.retain(|_| *k.next().unwrap_or(&true));
        let mut k = keep.iter();
        res.paths.retain(|_| *k.next().unwrap_or(&true));
    }
    if protocol < 29 {
        crate::fs::sort_scan(&mut res, protocol);
    }
    // The lists are kept for the whole transfer: without the slack of
    // their growth (a third of the largest allocation on average).
    res.entries.shrink_to_fit();
    res.paths.shrink_to_fit();
    Ok(SendList {
        entries: res.entries,
        paths: res.paths,
        io_error: res.io_error,
        errors: res.errors,
        beneath: None,
    })
}

/// Applies the `--chmod` rules of `opts` (a daemon module's `incoming
/// chmod` / `outgoing chmod`) to the modes of listed files, as rsync does
/// when it builds or receives a file list. Symlinks keep their mode.
///
/// # Errors
/// The rules do not parse.
pub(crate) fn apply_chmod(entries: &mut [crate::flist::FileEntry], opts: &Options) -> Result<()> {
    let Some(spec) = opts.chmod.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let rules = crate::fs::chmod::ChmodRules::parse(spec)
        .map_err(|e| Error::Syntax(format!("Invalid argument passed to --chmod ({spec}): {e}")))?;
    for e in entries {
        if e.mode == 0 || e.kind() == Some(crate::flist::FileKind::Symlink) {
            continue;
        }
        let is_dir = e.is_dir();
        e.mode = (e.mode & !0o7777) | (rules.apply(e.mode, is_dir) & 0o7777);
    }
    Ok(())
}

/// The prefix of munged symlink targets.
pub const MUNGE_PREFIX: &[u8] = b"/rsyncd-munged/";

/// Adds (`add`) or removes the munge prefix of every symlink target.
pub(crate) fn munge_links(entries: &mut [crate::flist::FileEntry], add: bool) {
    for e in entries {
        let Some(t) = e.extra.as_mut().and_then(|x| x.link_target.as_mut()) else {
            continue;
        };
        if add {
            let mut v = MUNGE_PREFIX.to_vec();
            v.extend_from_slice(t);
            *t = v;
        } else if let Some(rest) = t.strip_prefix(MUNGE_PREFIX) {
            *t = rest.to_vec();
        }
        e.size = t.len() as u64;
    }
}

fn set_timeouts<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    opts: &Options,
) {
    // The peer is untrusted: without `--timeout` a default idle timeout
    // still applies (`Limits::idle_timeout_secs`), so a silent peer cannot
    // hold the session forever.
    let secs = if opts.timeout > 0 {
        opts.timeout
    } else {
        opts.limits.idle_timeout_secs
    };
    if secs > 0 {
        let t = Some(Duration::from_secs(u64::from(secs)));
        r.set_timeout(t);
        w.set_timeout(t);
    }
    // Keep-alives go with an explicit `--timeout` (a daemon module's
    // timeout, or the daemon's default, is one too), as in rsync: the peer
    // then times out as well, and must hear from us while we work.
    // `FERRSYNC_NO_KEEPALIVE=1` turns them off (for tests that show a peer
    // timing out without them).
    let off = std::env::var_os("FERRSYNC_NO_KEEPALIVE").is_some_and(|v| !v.is_empty() && v != "0");
    if opts.timeout > 0 && !off {
        w.set_keepalive(Some(Duration::from_secs(u64::from(opts.timeout))));
    }
    w.set_bwlimit(opts.bwlimit);
}

/// `-A` and `-X` need protocol 30 (upstream compat.c `setup_protocol`).
fn check_protocol_features(setup: &Setup, opts: &Options) -> Result<()> {
    if opts.acls && setup.protocol < 30 {
        return Err(Error::Version(format!(
            "--acls requires protocol 30 or higher (negotiated {}).",
            setup.protocol
        )));
    }
    if opts.xattrs > 0 && setup.protocol < 30 {
        return Err(Error::Version(format!(
            "--xattrs requires protocol 30 or higher (negotiated {}).",
            setup.protocol
        )));
    }
    Ok(())
}

/// Settles what the options imply after the setup: zlib and zlibx at
/// level 0 mean no compression on both sides (as rsync does).
fn settle(setup: &mut Setup, opts: &Options) -> Result<()> {
    if let Some(name) = setup.compression {
        let kind = crate::delta::Compression::from_name(name)
            .ok_or_else(|| Error::Unsupported(format!("unsupported compression: {name}")))?;
        if kind.disabled_by_level(opts.compress_level) {
            setup.compression = None;
        }
    }
    Ok(())
}

/// Runs the client side of a transfer over an established byte stream to
/// an `rsync --server` (or `ferrsync --server`) that was started with
/// [`Options::server_args`].
///
/// # Errors
/// Any fatal session error; per-file problems are in the [`Report`].
pub async fn run_client<R, W>(
    reader: R,
    writer: W,
    opts: &Options,
    role: ClientRole,
    hooks: &Hooks,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    run_client_with(reader, writer, opts, role, hooks, None).await
}

/// [`run_client`] for a connection whose protocol is already settled (a
/// daemon connection after `@RSYNCD: OK` and the argument words): the
/// binary setup then skips the version ints.
///
/// # Errors
/// Any fatal session error; per-file problems are in the [`Report`].
pub async fn run_client_with<R, W>(
    reader: R,
    writer: W,
    opts: &Options,
    role: ClientRole,
    hooks: &Hooks,
    known_protocol: Option<u8>,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut r = MuxReader::new(reader, opts.limits);
    r.set_sink(hooks.messages.clone());
    let mut w = MuxWriter::new(writer);
    set_timeouts(&mut r, &mut w, opts);
    let mut setup = setup::client_setup(&mut r, &mut w, opts, known_protocol).await?;
    settle(&mut setup, opts)?;
    check_protocol_features(&setup, opts)?;
    r.set_muxed(true);
    w.set_muxed(setup.protocol >= 30);
    let whole_file = opts.whole_file.unwrap_or(false);
    let mut report = match role {
        ClientRole::Receiver { dest } => {
            let root = filters::transfer_root(&dest, Side::Receiver);
            let mut fl = filters::client_list(opts, Side::Receiver, setup.protocol, root)?;
            let wire = fl
                .wire_rules(false, setup.protocol)
                .map_err(Error::Protocol)?;
            setup::send_filter_list(&mut w, &wire).await?;
            let mut requested = implied_requests(opts);
            if let Some(req) = &mut requested {
                if let Some(rules) = sender_view(&fl, &wire, opts, setup.protocol) {
                    req.set_sender_rules(rules);
                }
            }
            if let Some(ff) = opts
                .files_from
                .as_deref()
                .filter(|f| options::files_from_remote(f).is_none())
            {
                // The sender is remote: it reads our list from us.
                let data = files_from::read_list(ff)?;
                if let Some(req) = &mut requested {
                    for n in files_from::split_names(&data, opts.from0, false) {
                        req.add(&n, false, opts.relative, opts.recursive, true);
                    }
                }
                files_from::forward_interleaved(&mut r, &mut w, &data, opts.from0, setup.protocol)
                    .await?;
            }
            filters::client_cvs(&mut fl, opts, setup.protocol, false)?;
            let set = filters::with_daemon(fl, opts, Side::Receiver)?;
            receiver::run_receiving_side(
                &mut r,
                &mut w,
                &setup,
                opts,
                &dest,
                whole_file,
                hooks.events.as_ref(),
                set.as_ref(),
                requested.as_ref().filter(|r| r.is_active()),
            )
            .await?
        }
        ClientRole::Sender { sources } => {
            let root = sources.first().and_then(|s| filters::send_root(s, opts));
            let mut fl = filters::client_list(opts, Side::Sender, setup.protocol, root)?;
            filters::client_cvs(&mut fl, opts, setup.protocol, true)?;
            if setup::filter_list_sent(false, opts) {
                let wire = fl
                    .wire_rules(true, setup.protocol)
                    .map_err(Error::Protocol)?;
                setup::send_filter_list(&mut w, &wire).await?;
            }
            filters::client_cvs(&mut fl, opts, setup.protocol, false)?;
            let set = filters::with_daemon(fl, opts, Side::Sender)?;
            let list = if let Some(ff) = &opts.files_from {
                let names = if options::files_from_remote(ff).is_some() {
                    files_from::receive(&mut r, setup.protocol, opts.relative).await?
                } else {
                    files_from::read_local_names(ff, opts.from0, opts.relative)?
                };
                let base = sources
                    .first()
                    .cloned()
                    .unwrap_or_else(|| PathBuf::from("."));
                let first = filters::first_send_dir(&sources, opts, Some(&names));
                let set = filters::with_parents(set, first);
                let (o, p) = (opts.clone(), setup.protocol);
                list_keeping_alive(&mut w, move || {
                    build_send_list_from(&base, &names, &o, p, set.as_ref())
                })
                .await?
            } else {
                let set = filters::with_parents(set, filters::first_send_dir(&sources, opts, None));
                let (o, p, srcs) = (opts.clone(), setup.protocol, sources.clone());
                list_keeping_alive(&mut w, move || {
                    build_send_list_filtered(&srcs, &o, p, set.as_ref())
                })
                .await?
            };
            sender::run_sender(&mut r, &mut w, &setup, opts, list, hooks.events.as_ref()).await?
        }
    };
    let _ = w.flush().await;
    let inbox = r.inbox();
    if let Ok(i) = inbox.lock() {
        report.io_error |= i.io_error;
        if i.had_xfer_error && report.errors.is_empty() {
            report.errors.push(i.last_error.clone().unwrap_or_default());
        }
        if let Some(ev) = &hooks.events {
            for name in &i.deleted {
                ev(&Event::Deleted { name: name.clone() });
            }
        }
    }
    Ok(report)
}

/// Runs the server side (`--server`) over a byte stream, as `rsync
/// --server` does on its stdin/stdout.
///
/// # Errors
/// Any fatal session error.
pub async fn run_server<R, W>(
    reader: R,
    writer: W,
    sa: &ServerArgs,
    hooks: &Hooks,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    run_server_with(reader, writer, sa, hooks, &ServerContext::default()).await
}

/// What a daemon settled before the binary setup, and the module rules the
/// server roles must keep.
#[derive(Debug, Clone, Default)]
pub struct ServerContext {
    /// The protocol the greetings agreed on (the version ints are skipped).
    pub protocol: Option<u8>,
    /// Sent as the first multiplexed message, MSG_IO_TIMEOUT (a module's
    /// `timeout`; protocol 31 and later).
    pub io_timeout: Option<u32>,
    /// The module refuses uploads (`read only`).
    pub read_only: bool,
    /// The module refuses downloads (`write only`).
    pub write_only: bool,
}

/// [`run_server`] with what a daemon settled first.
///
/// # Errors
/// Any fatal session error.
pub async fn run_server_with<R, W>(
    reader: R,
    writer: W,
    sa: &ServerArgs,
    hooks: &Hooks,
    ctx: &ServerContext,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opts = &sa.options;
    let mut r = MuxReader::new(reader, opts.limits);
    r.set_sink(hooks.messages.clone());
    let mut w = MuxWriter::new(writer);
    set_timeouts(&mut r, &mut w, opts);
    let mut setup = setup::server_setup(&mut r, &mut w, sa, ctx.protocol).await?;
    settle(&mut setup, &sa.options)?;
    w.set_muxed(true);
    r.set_muxed(setup.protocol >= 30);
    if let Some(t) = ctx.io_timeout.filter(|t| *t > 0 && setup.protocol >= 31) {
        w.send_msg(MsgCode::IoTimeout, &t.to_le_bytes()).await?;
    }
    let result = if sa.sender && ctx.write_only {
        Err(Error::Syntax("ERROR: module is write only".into()))
    } else if !sa.sender && ctx.read_only {
        Err(Error::Syntax("ERROR: module is read only".into()))
    } else {
        server_roles(&mut r, &mut w, &setup, sa, hooks).await
    };
    match result {
        Ok(report) => {
            let _ = w.flush().await;
            Ok(report)
        }
        Err(e) => {
            let code = e.exit_code().code();
            let role = if sa.sender { "sender" } else { "Receiver" };
            let text = match &e {
                // A refusal (e.g. `ERROR: module is read only`) is said as
                // is, then the exit reason, as rsync does: one message per
                // line (rsync's client shows a line break inside one as
                // `\#012`).
                Error::Syntax(msg) => {
                    let said = format!("{msg}\n");
                    let _ = w.send_msg(MsgCode::Error, said.as_bytes()).await;
                    format!(
                        "rsync error: {} (code {code}) [{role}=ferrsync {}]\n",
                        e.exit_code().describe(),
                        env!("CARGO_PKG_VERSION")
                    )
                }
                _ => format!(
                    "rsync error: {e} (code {code}) [server=ferrsync {}]\n",
                    env!("CARGO_PKG_VERSION")
                ),
            };
            let _ = w.send_msg(MsgCode::Error, text.as_bytes()).await;
            if setup.protocol >= 31 {
                let _ = w.send_msg(MsgCode::ErrorExit, &code.to_le_bytes()).await;
            }
            let _ = w.flush().await;
            Err(e)
        }
    }
}

async fn server_roles<R, W>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    setup: &Setup,
    sa: &ServerArgs,
    hooks: &Hooks,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let opts = &sa.options;
    let limits = Limits::default();
    check_protocol_features(setup, opts)?;
    if sa.sender {
        let rules = setup::recv_filter_list(r, limits.max_filter_len).await?;
        let mut sources: Vec<PathBuf> = sa.paths.iter().map(PathBuf::from).collect();
        if sources.is_empty() {
            sources.push(PathBuf::from("."));
        }
        let root = filters::send_root(&sources[0], opts);
        let fl = filters::server_list(&rules, opts, Side::Sender, setup.protocol, root)?;
        let set = filters::with_daemon(fl, opts, Side::Sender)?;
        let list = if let Some(ff) = &opts.files_from {
            let names = if ff == "-" {
                files_from::receive(r, setup.protocol, opts.relative).await?
            } else if let Some(root) = read_root(opts)? {
                // A daemon's list: a path in the module, read beneath it.
                files_from::read_names_beneath(&root, ff, opts.from0, opts.relative)?
            } else {
                files_from::read_local_names(ff, opts.from0, opts.relative)?
            };
            // A daemon never reads merge files above its module.
            let first = filters::first_send_dir(&sources, opts, Some(&names))
                .filter(|_| opts.module_root.is_none());
            let set = filters::with_parents(set, first);
            let (o, p, base) = (opts.clone(), setup.protocol, sources[0].clone());
            list_keeping_alive(w, move || {
                build_send_list_from(&base, &names, &o, p, set.as_ref())
            })
            .await?
        } else {
            let first = filters::first_send_dir(&sources, opts, None)
                .filter(|_| opts.module_root.is_none());
            let set = filters::with_parents(set, first);
            let (o, p) = (opts.clone(), setup.protocol);
            list_keeping_alive(w, move || {
                build_send_list_filtered(&sources, &o, p, set.as_ref())
            })
            .await?
        };
        sender::run_sender(r, w, setup, opts, list, hooks.events.as_ref()).await
    } else {
        let rules = if setup::filter_list_sent(false, opts) {
            setup::recv_filter_list(r, limits.max_filter_len).await?
        } else {
            Vec::new()
        };
        if let Some(ff) = opts.files_from.as_deref().filter(|f| *f != "-") {
            // A list on our side for the client's sender (`host:FILE`).
            let data = files_from::read_list(ff)?;
            files_from::forward_interleaved(r, w, &data, opts.from0, setup.protocol).await?;
        }
        let dest = sa
            .paths
            .first()
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        let root = filters::transfer_root(&dest, Side::Receiver);
        let fl = filters::server_list(&rules, opts, Side::Receiver, setup.protocol, root)?;
        let set = filters::with_daemon(fl, opts, Side::Receiver)?;
        let whole_file = opts.whole_file.unwrap_or(false);
        receiver::run_receiving_side(
            r,
            w,
            setup,
            opts,
            &dest,
            whole_file,
            hooks.events.as_ref(),
            set.as_ref(),
            None,
        )
        .await
    }
}

/// The names a pull asked for, from the source words sent to the server
/// (rsync's `add_implied_include` in `main.c`); `None` with
/// `--trust-sender`, with a list read on the remote side, or when no
/// words are known.
fn implied_requests(opts: &Options) -> Option<requested::Requested> {
    if opts.trust_sender || opts.requested.is_empty() {
        return None;
    }
    let ff = opts.files_from.as_deref();
    if ff.is_some_and(|f| f != "-" && options::files_from_remote(f).is_some()) {
        return None;
    }
    let mut req = requested::Requested::new();
    // With a local --files-from list the source word is only its base
    // directory: the listed names are what is requested.
    if ff.is_none() {
        let dirs = opts.dirs;
        for w in &opts.requested {
            let w = if w.is_empty() { "." } else { w.as_str() };
            req.add(
                w.as_bytes(),
                opts.requested_in_module,
                opts.relative,
                opts.recursive,
                dirs,
            );
        }
    }
    Some(req)
}

/// The client's rules as the sender will parse them off the wire, for
/// the receiving client's "rejecting excluded file-list name" check
/// (rsync 3.2.5+). `None` where rsync trusts the sender's filtering, or
/// where the check could refuse what an honest sender lists: no rules, a
/// per-directory merge rule (its files are on the sender), `-C` (one of
/// those), or a rule anchored at the sender's absolute path.
fn sender_view(
    fl: &crate::filter::FilterList,
    wire: &[Vec<u8>],
    opts: &Options,
    protocol: u8,
) -> Option<crate::filter::FilterList> {
    use crate::filter::{Entry, RuleFlags};
    let absolute = fl.entries().iter().any(|e| match e {
        Entry::Rule(r) | Entry::Cvs(r) | Entry::PerDir { rule: r, .. } => {
            r.flags.contains(RuleFlags::ABS_PATH)
        }
    });
    if wire.is_empty() || fl.has_per_dir() || opts.cvs_exclude || absolute {
        return None;
    }
    filters::server_list(wire, opts, Side::Sender, protocol, None).ok()
}

/// Aborts the spawned task when the owner is dropped (cancellation).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies local sources to a local destination with both sides in this
/// process, joined by an in-memory pipe (no external rsync needed).
///
/// # Errors
/// Any fatal error of either side.
pub async fn run_local(
    sources: &[PathBuf],
    dest: &Path,
    opts: &Options,
    hooks: &Hooks,
) -> Result<Report> {
    if opts
        .files_from
        .as_deref()
        .is_some_and(|f| f != "-" && options::files_from_remote(f).is_some())
    {
        // As rsync's main.c: a list "on the remote side" of a local copy.
        return Err(Error::Syntax(
            "--files-from cannot be remote when the transfer is local".into(),
        ));
    }
    // As much in flight as a few pipe buffers: the file list and data
    // stream through it, it does not hold them (a larger buffer only
    // grows the peak memory of a large list).
    let (client_io, server_io) = tokio::io::duplex(256 << 10);
    let mut server_opts = opts.clone();
    // The sending side applies --chmod in a local copy; not twice.
    server_opts.chmod = None;
    // The sending side reads the --files-from list itself.
    server_opts.files_from = None;
    if server_opts.whole_file.is_none() && opts.append == 0 {
        server_opts.whole_file = Some(true);
    }
    let sa = ServerArgs {
        sender: false,
        daemon: false,
        capabilities: Options::capabilities().to_string(),
        options: server_opts.clone(),
        paths: vec![dest.to_string_lossy().into_owned()],
        ignored: Vec::new(),
        secluded: false,
    };
    let server_hooks = Hooks {
        events: hooks.events.clone(),
        messages: None,
    };
    let mut server = AbortOnDrop(tokio::spawn(async move {
        let (rd, wr) = tokio::io::split(server_io);
        run_server(rd, wr, &sa, &server_hooks).await
    }));
    let (rd, wr) = tokio::io::split(client_io);
    // The receiving side reports the items of a local copy, as rsync does.
    let client_hooks = Hooks::default();
    let mut client_opts = server_opts.clone();
    client_opts.chmod.clone_from(&opts.chmod);
    client_opts.files_from.clone_from(&opts.files_from);
    let client = run_client(
        rd,
        wr,
        &client_opts,
        ClientRole::Sender {
            sources: sources.to_vec(),
        },
        &client_hooks,
    )
    .await;
    let server = (&mut server.0)
        .await
        .map_err(|e| Error::Protocol(format!("local receiver failed: {e}")))?;
    // The in-process receiver's own error says more than the sending
    // side's "remote error" about it.
    let (mut report, srv) = match (client, server) {
        (Err(Error::Remote { .. }), Err(e)) => return Err(e),
        (client, server) => (client?, server?),
    };
    // The sending side kept the receiver's last error message, which the
    // receiver's own list has too: shown once.
    report.errors.retain(|e| !srv.errors.contains(e));
    report.errors.extend(srv.errors);
    report.io_error |= srv.io_error;
    report.stats.deleted += srv.stats.deleted;
    report.stats.num_created_dirs += srv.stats.num_created_dirs;
    Ok(report)
}
