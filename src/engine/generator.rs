//! The generator role: walks the received file list, fixes what can be
//! fixed locally, and requests the data of changed files with the block
//! signatures of their old version.
//!
//! Layer: engine. Uses flist, delta, checksum, wire; touches local files.
//! Mirrors upstream generator.c `generate_files`, `recv_generator`,
//! `itemize`, `delete_in_dir` and `touch_up_dirs`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tokio::io::AsyncWrite;
use tokio::sync::mpsc::UnboundedReceiver;

use super::io::MuxWriter;
use super::local::{self, IdMap, Preserve};
use super::options::Options;
use super::report::{Event, EventSink, item};
use super::sender::item_kind;
use super::setup::Setup;
use crate::delta::{SignatureBuilder, SumHead};
use crate::error::{Error, Result};
use crate::flist::entry::{XMIT_NO_CONTENT_DIR, XMIT_TOP_DIR};
use crate::flist::{FileEntry, FileKind, Xattr, XattrValue};
use crate::fs::beneath::Root;
use crate::wire::{self, MsgCode, NDX_DEL_STATS, NDX_DONE, NdxEncoder};

/// What the receiver tells the generator.
#[derive(Debug)]
pub(crate) enum ToGen {
    /// Re-request this file with full-length strong sums.
    Redo(usize),
    /// The receiver saw the end of this phase (1-based).
    Phase(u32),
    /// A message for the peer (server) or the user (client).
    Msg(MsgCode, String),
    /// `--remove-source-files`: the receiving side has this item.
    Success(usize),
    /// The receiver is finished.
    Done,
}

/// Shared view of the receiving side.
pub(crate) struct RecvCtx<'a> {
    pub setup: &'a Setup,
    pub opts: &'a Options,
    pub list: &'a [FileEntry],
    pub active: &'a [bool],
    pub ids: &'a IdMap,
    pub preserve: Preserve,
    pub events: Option<&'a EventSink>,
    pub whole_file: bool,
    /// What `--delete` must leave alone (receiver-side view).
    pub filters: Option<&'a crate::filter::FilterSet>,
    /// The destination root the list's names are relative to.
    pub dest: &'a Path,
    /// `-X`: which attribute names this side reads, sets and removes.
    pub xattrs: crate::fs::xattrs::XattrRules,
    /// The destination, through which every local file operation is
    /// resolved (`crate::fs::beneath`).
    pub root: &'a Root,
    /// A single file received under another name: that name, beneath
    /// `root` (the destination's directory).
    pub single: Option<&'a [u8]>,
}

impl RecvCtx<'_> {
    /// Entry `i`'s name beneath the root (`.` for the root itself).
    pub(crate) fn rel(&self, i: usize) -> &[u8] {
        match self.single {
            Some(n) => n,
            None => &self.list[i].name,
        }
    }

    /// `-X`: the managed attributes of `rel` beneath `root` (none when it
    /// cannot be read).
    pub(crate) fn local_xattrs(&self, root: &Root, rel: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        root.xattr_target(rel)
            .and_then(|t| crate::fs::xattrs::read_local_on((&t).into(), &self.xattrs))
            .unwrap_or_default()
    }

    /// The attributes of a received entry this side keeps, each with its
    /// 1-based position in the sender's list (upstream drops the others
    /// in `receive_xattr` but keeps the numbering).
    pub(crate) fn kept_xattrs<'e>(&self, e: &'e FileEntry) -> Vec<(i32, &'e Xattr)> {
        e.xattrs()
            .unwrap_or_default()
            .iter()
            .zip(1..)
            .filter(|(x, _)| self.xattrs.receives(&x.name))
            .map(|(x, n)| (n, x))
            .collect()
    }

    /// The whole set of attributes entry `e` must end up with: listed
    /// values, requested values from `fetched`, and abbreviated values the
    /// local `basis` holds with the same digest (`None`: missing, left
    /// alone). Upstream xattrs.c `rsync_xal_set`.
    pub(crate) fn wanted_xattrs(
        &self,
        e: &FileEntry,
        fetched: &[(i32, Vec<u8>)],
        basis: Option<(&Root, &[u8])>,
    ) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let local = basis
            .map(|(r, b)| self.local_xattrs(r, b))
            .unwrap_or_default();
        self.kept_xattrs(e)
            .into_iter()
            .map(|(num, x)| {
                let value = match &x.value {
                    XattrValue::Full(v) => Some(v.clone()),
                    XattrValue::Abbrev { .. } => fetched
                        .iter()
                        .rev()
                        .find(|(n, _)| *n == num)
                        .map(|(_, v)| v.clone())
                        .or_else(|| {
                            local
                                .iter()
                                .find(|(n, v)| {
                                    *n == x.name && crate::fs::xattrs::value_matches(&x.value, v)
                                })
                                .map(|(_, v)| v.clone())
                        }),
                };
                (x.name.clone(), value)
            })
            .collect()
    }

    pub(crate) fn emit(&self, ev: Event) {
        if let Some(sink) = self.events {
            sink(&ev);
        }
    }

    fn itemize(&self, e: &FileEntry, flags: u16) {
        self.emit(Event::Itemize {
            flags,
            kind: item_kind(e),
            name: e.name.clone(),
            extra: e.link_target().map(<[u8]>::to_vec),
            sending: false,
            times: self.opts.times,
            known: true,
            size: e.size,
        });
    }
}

/// Below this many bytes a basis piece is read by one thread.
const SPLIT_READ: usize = 1 << 20;

/// Reads up to `buf.len()` bytes of `f` at `off` (fewer only at its end
/// or on an error); a large piece is read as two halves on two threads
/// (the copy out of the page cache is most of a signature's cost).
fn read_piece(f: &fs::File, off: u64, buf: &mut [u8]) -> usize {
    fn fill(f: &fs::File, mut off: u64, buf: &mut [u8]) -> usize {
        use std::os::unix::fs::FileExt;
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], off) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    off += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        got
    }
    if buf.len() < SPLIT_READ {
        return fill(f, off, buf);
    }
    let half = buf.len() / 2;
    let (a, b) = buf.split_at_mut(half);
    let (na, nb) = std::thread::scope(|s| {
        let other = std::thread::Builder::new().spawn_scoped(s, || fill(f, off + half as u64, b));
        let na = fill(f, off, a);
        let nb = match other {
            Ok(h) => h.join().unwrap_or(0),
            Err(_) => 0,
        };
        (na, nb)
    });
    // The second half counts only after a complete first one.
    if na < half { na } else { na + nb }
}

/// How many list entries the generator `lstat`s ahead of itself.
const PRESTAT_WINDOW: usize = 512;

/// Below this many entries in a window, one thread does them.
const PRESTAT_SPLIT: usize = 128;

/// The destination `lstat` of the entries just ahead of the generator,
/// taken in windows of [`PRESTAT_WINDOW`] entries on two threads, each
/// keeping the handle of the last parent directory it resolved (three
/// calls per name instead of five). Within a window a result is at most
/// a few milliseconds older than the generator's own call would be; what
/// the generator does to one entry (make a directory, replace an item in
/// the way, delete extraneous names) does not change another listed
/// entry's result (a child of a directory made now was missing before).
#[derive(Default)]
struct Prestat {
    /// The first list index of the window.
    start: usize,
    stats: Vec<Option<fs::Metadata>>,
}

impl Prestat {
    /// Entry `i`'s destination metadata (`None`: missing or unreachable),
    /// filling the next window when `i` is past the current one. Entries
    /// are taken in increasing order.
    fn take(&mut self, ctx: &RecvCtx<'_>, i: usize) -> Option<fs::Metadata> {
        if i < self.start || i >= self.start + self.stats.len() {
            self.fill(ctx, i);
        }
        self.stats.get_mut(i - self.start).and_then(Option::take)
    }

    fn fill(&mut self, ctx: &RecvCtx<'_>, from: usize) {
        let end = (from + PRESTAT_WINDOW).min(ctx.list.len());
        let names: Vec<Option<&[u8]>> = (from..end)
            .map(|i| ctx.active[i].then(|| ctx.rel(i)))
            .collect();
        let root = ctx.root;
        // One allocation, made here: the helper thread only fills its
        // half (an allocation there would start a malloc arena of its own).
        let mut stats: Vec<Option<fs::Metadata>> = Vec::new();
        stats.resize_with(names.len(), || None);
        if names.len() < PRESTAT_SPLIT {
            lstat_run(root, &names, &mut stats);
        } else {
            let mid = names.len() / 2;
            let (a, b) = names.split_at(mid);
            let (sa, sb) = stats.split_at_mut(mid);
            let joined = std::thread::scope(|s| {
                let other = s.spawn(|| lstat_run(root, b, &mut *sb));
                lstat_run(root, a, sa);
                other.join().is_ok()
            });
            if !joined {
                // Never expected (nothing there panics): that half again,
                // one name at a time.
                for (n, slot) in b.iter().zip(sb.iter_mut()) {
                    *slot = n.and_then(|r| root.lstat(r).ok());
                }
            }
        }
        self.start = from;
        self.stats = stats;
    }
}

/// `lstat` beneath `root` of each name (`None` for an inactive entry),
/// reusing the parent directory's handle between consecutive names in
/// the same directory; a name not in the simple `dir/name` form goes
/// through [`Root::lstat`].
fn lstat_run(root: &Root, names: &[Option<&[u8]>], out: &mut [Option<fs::Metadata>]) {
    use rustix::fs::{Mode, OFlags};
    let mut parent: Option<(&[u8], Option<std::os::fd::OwnedFd>)> = None;
    for (n, slot) in names.iter().zip(out.iter_mut()) {
        let Some(rel) = *n else {
            continue;
        };
        let simple = !rel.is_empty()
            && rel.first() != Some(&b'/')
            && rel.last() != Some(&b'/')
            && !rel.windows(2).any(|w| w == b"//");
        let (dir, name) = match rel.iter().rposition(|b| *b == b'/') {
            Some(p) => (&rel[..p], &rel[p + 1..]),
            None => (&b""[..], rel),
        };
        if !simple
            || name == b"."
            || name == b".."
            || dir.split(|b| *b == b'/').any(|c| c == b"." || c == b"..")
        {
            *slot = root.lstat(rel).ok();
            continue;
        }
        if parent.as_ref().is_none_or(|(d, _)| *d != dir) {
            parent = Some((dir, root.dir(dir).ok()));
        }
        let st = parent
            .as_ref()
            .and_then(|(_, fd)| fd.as_ref())
            .and_then(|fd| {
                let h = rustix::fs::openat(
                    fd,
                    OsStr::from_bytes(name),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()?;
                fs::File::from(h).metadata().ok()
            });
        *slot = st;
    }
}

/// What the generator counted.
#[derive(Debug, Default)]
pub(crate) struct GenStats {
    pub deleted: [i32; 5],
    pub created_dirs: u64,
    pub errors: Vec<String>,
    pub io_error: i32,
}

fn meta_flags(ctx: &RecvCtx<'_>, e: &FileEntry, st: &fs::Metadata, rel: &[u8]) -> u16 {
    let o = ctx.opts;
    let mut f = 0;
    let is_dir = e.is_dir();
    let is_link = e.kind() == Some(FileKind::Symlink);
    if o.times && (!is_dir || !o.omit_dir_times) && !is_link && !same_mtime(ctx, e, st) {
        f |= item::REPORT_TIME;
    }
    if o.atimes > 0 && !is_dir && st.atime() != e.atime {
        f |= item::REPORT_ATIME;
    }
    if o.perms && !is_link && st.mode() & 0o7777 != e.mode & 0o7777 {
        f |= item::REPORT_PERMS;
    }
    if o.owner && ctx.preserve.am_root && st.uid() != ctx.ids.uid(e.uid) {
        f |= item::REPORT_OWNER;
    }
    if o.group && st.gid() != ctx.ids.gid(e.gid) {
        f |= item::REPORT_GROUP;
    }
    if o.acls && !is_link && super::acls::differs(e, ctx.root, rel, st) {
        f |= item::REPORT_ACL;
    }
    f
}

fn same_mtime(ctx: &RecvCtx<'_>, e: &FileEntry, st: &fs::Metadata) -> bool {
    let window = i64::from(ctx.opts.modify_window);
    if window > 0 {
        return (st.mtime() - e.mtime).abs() <= window;
    }
    if st.mtime() != e.mtime {
        return false;
    }
    ctx.setup.protocol < 31 || i64::from(e.mtime_nsec) == st.mtime_nsec()
}

/// `--update`: the receiver's file is newer than the sender's (beyond the
/// modify window).
fn dest_is_newer(ctx: &RecvCtx<'_>, e: &FileEntry, st: &fs::Metadata) -> bool {
    let window = i64::from(ctx.opts.modify_window);
    if window > 0 {
        return st.mtime() - e.mtime > window;
    }
    let nsec = |n: i64| if ctx.setup.protocol >= 31 { n } else { 0 };
    (st.mtime(), nsec(st.mtime_nsec())) > (e.mtime, nsec(i64::from(e.mtime_nsec)))
}

fn file_sum(ctx: &RecvCtx<'_>, rel: &[u8]) -> Option<Vec<u8>> {
    let mut f = ctx.root.open_read(rel).ok()?;
    let mut h = ctx.setup.file_sum.file_hasher();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(h.finish().as_bytes().to_vec())
}

/// Generator state for one session.
pub(crate) struct Generator<'a, 'b, W> {
    ctx: &'b RecvCtx<'a>,
    w: &'b mut MuxWriter<W>,
    rx: UnboundedReceiver<ToGen>,
    ndx: NdxEncoder,
    stats: GenStats,
    redo: Vec<usize>,
    children: HashMap<Vec<u8>, HashSet<Vec<u8>>>,
    dirs: Vec<usize>,
    new_dirs: HashSet<usize>,
    /// Deletions skipped because of `--max-delete`.
    skipped_deletes: u32,
    /// `-H`: each follower's leader (list indexes).
    followers: HashMap<usize, usize>,
    /// `-X`: the abbreviated values already requested per entry (never
    /// twice: rsync's sender refuses a second request).
    xattr_requested: HashMap<usize, HashSet<i32>>,
    /// The filters of each directory entered for deletion (its merge
    /// files read once, when first entered).
    dir_filters: HashMap<Vec<u8>, crate::filter::FilterSet>,
}

/// `-H`: within each group of regular files sharing an inode on the
/// sender, the first in list order is the leader (it gets the data), the
/// others follow it.
fn hardlink_followers(ctx: &RecvCtx<'_>) -> HashMap<usize, usize> {
    let mut leaders: HashMap<(u64, u64), usize> = HashMap::new();
    let mut followers = HashMap::new();
    if !ctx.opts.hard_links {
        return followers;
    }
    for (i, e) in ctx.list.iter().enumerate() {
        if !ctx.active[i] || e.kind() != Some(FileKind::Regular) {
            continue;
        }
        if let Some(h) = e.hardlink() {
            match leaders.get(&(h.dev, h.ino)) {
                Some(&l) => {
                    followers.insert(i, l);
                }
                None => {
                    leaders.insert((h.dev, h.ino), i);
                }
            }
        }
    }
    followers
}

fn split_parent(name: &[u8]) -> (&[u8], &[u8]) {
    match name.iter().rposition(|b| *b == b'/') {
        Some(p) => (&name[..p], &name[p + 1..]),
        None => (b".", name),
    }
}

impl<'a, 'b, W: AsyncWrite + Unpin> Generator<'a, 'b, W> {
    pub(crate) fn new(
        ctx: &'b RecvCtx<'a>,
        w: &'b mut MuxWriter<W>,
        rx: UnboundedReceiver<ToGen>,
    ) -> Self {
        let mut children: HashMap<Vec<u8>, HashSet<Vec<u8>>> = HashMap::new();
        if ctx.opts.delete.is_some() {
            for (e, act) in ctx.list.iter().zip(ctx.active) {
                if *act && e.name != b"." {
                    let (p, b) = split_parent(&e.name);
                    children.entry(p.to_vec()).or_default().insert(b.to_vec());
                }
            }
        }
        Generator {
            ctx,
            w,
            rx,
            ndx: NdxEncoder::new(ctx.setup.protocol),
            stats: GenStats::default(),
            redo: Vec::new(),
            children,
            dirs: Vec::new(),
            new_dirs: HashSet::new(),
            skipped_deletes: 0,
            followers: hardlink_followers(ctx),
            xattr_requested: HashMap::new(),
            dir_filters: HashMap::new(),
        }
    }

    async fn handle(&mut self, m: ToGen) -> Result<Option<u32>> {
        match m {
            ToGen::Redo(i) => self.redo.push(i),
            ToGen::Phase(p) => return Ok(Some(p)),
            ToGen::Msg(code, text) => self.message(code, &text).await?,
            ToGen::Success(i) => self.success(i).await?,
            ToGen::Done => return Ok(Some(u32::MAX)),
        }
        Ok(None)
    }

    /// `--remove-source-files`: tells the sender that item `i` is here
    /// (MSG_SUCCESS; only where our stream to it is multiplexed).
    async fn success(&mut self, i: usize) -> Result<()> {
        let ctx = self.ctx;
        if ctx.opts.remove_source_files && !ctx.opts.dry_run && self.w.is_muxed() {
            let ndx = i32::try_from(i).unwrap_or(i32::MAX);
            self.w
                .send_msg(MsgCode::Success, &ndx.to_le_bytes())
                .await?;
        }
        Ok(())
    }

    async fn message(&mut self, code: MsgCode, text: &str) -> Result<()> {
        if self.ctx.setup.is_server {
            let mut t = text.to_string();
            if !t.ends_with('\n') {
                t.push('\n');
            }
            self.w.send_msg(code, t.as_bytes()).await
        } else {
            self.ctx.emit(Event::Message {
                error: code != MsgCode::Info,
                text: text.to_string(),
            });
            Ok(())
        }
    }

    async fn drain(&mut self) -> Result<()> {
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m).await?;
        }
        Ok(())
    }

    async fn wait_for(&mut self, phase: u32) -> Result<()> {
        loop {
            let Some(m) = self.rx.recv().await else {
                return Err(Error::Protocol("receiver stopped early".into()));
            };
            if let Some(p) = self.handle(m).await? {
                if p >= phase {
                    return Ok(());
                }
            }
        }
    }

    async fn fail(&mut self, what: String) -> Result<()> {
        self.stats.io_error |= 1;
        self.stats.errors.push(what.clone());
        self.message(MsgCode::ErrorXfer, &what).await
    }

    fn send_item(&mut self, i: usize, flags: u16, xattr_need: &[i32]) {
        let p = self.ctx.setup.protocol;
        if p >= 29 && (flags & item::SIGNIFICANT_MASK != 0 || self.ctx.opts.itemize > 1) {
            self.ndx
                .encode(self.w.buf(), i32::try_from(i).unwrap_or(i32::MAX));
            wire::encode_u16(self.w.buf(), flags);
            self.xattr_request(flags, xattr_need);
        }
    }

    /// The request for abbreviated values after an item's flags (6.2).
    fn xattr_request(&mut self, flags: u16, need: &[i32]) {
        if super::sender::xattr_exchange(self.ctx.setup, self.ctx.opts, flags) {
            crate::flist::xattrs::encode_xattr_request(self.w.buf(), need);
        }
    }

    /// `-X`: `ITEM_REPORT_XATTR` when entry `i`'s attributes differ from
    /// those of `local` (`None`: the item is new), and the positions of
    /// the abbreviated values to request (each at most once per entry).
    fn xattr_flags(&mut self, i: usize, local: Option<&[u8]>) -> (u16, Vec<i32>) {
        let ctx = self.ctx;
        if ctx.opts.xattrs == 0 {
            return (0, Vec::new());
        }
        let have = local
            .map(|p| ctx.local_xattrs(ctx.root, p))
            .unwrap_or_default();
        let listed = ctx.kept_xattrs(&ctx.list[i]);
        let (differs, need) = crate::fs::xattrs::compare(&listed, &have);
        let asked = self.xattr_requested.entry(i).or_default();
        let need: Vec<i32> = need.into_iter().filter(|n| asked.insert(*n)).collect();
        (if differs { item::REPORT_XATTR } else { 0 }, need)
    }

    /// Runs phases 0..=last and the goodbye.
    pub(crate) async fn run(mut self) -> Result<GenStats> {
        let ctx = self.ctx;
        let protocol = ctx.setup.protocol;
        // The destination's `lstat`s are taken a window ahead, on two
        // threads (the quick check of a no-change run is mostly these).
        let mut pre = Prestat::default();
        for i in 0..ctx.list.len() {
            if !ctx.active[i] {
                continue;
            }
            self.drain().await?;
            let st = pre.take(ctx, i);
            self.generate(i, st).await?;
            self.w.maybe_flush().await?;
            self.w.keepalive().await?;
        }
        self.ndx.encode(self.w.buf(), NDX_DONE);
        self.w.flush().await?;
        self.wait_for(1).await?;
        let redo = std::mem::take(&mut self.redo);
        for i in redo {
            self.request(i, true, None).await?;
        }
        self.ndx.encode(self.w.buf(), NDX_DONE);
        if protocol >= 29 {
            let links = !self.followers.is_empty();
            if (ctx.opts.delay_updates || links) && !ctx.opts.dry_run {
                // Marker #3 only after the receiver renamed the delayed
                // files (it does when the echo of #2 arrives) and every
                // leader of a hard-link group is complete.
                self.w.flush().await?;
                self.wait_for(2).await?;
            }
            self.link_followers(true).await?;
            self.ndx.encode(self.w.buf(), NDX_DONE);
        }
        if protocol >= 31 {
            if ctx.opts.delete.is_some() {
                let d = self.stats.deleted;
                let total: i32 = d.iter().sum();
                self.ndx.encode(self.w.buf(), NDX_DEL_STATS);
                wire::encode_varint(self.w.buf(), total - d[1] - d[2] - d[3] - d[4]);
                for v in &d[1..] {
                    wire::encode_varint(self.w.buf(), *v);
                }
            }
            self.ndx.encode(self.w.buf(), NDX_DONE);
        }
        self.w.flush().await?;
        self.wait_for(u32::MAX).await?;
        if protocol < 29 {
            self.link_followers(false).await?;
        }
        self.touch_up_dirs().await;
        if self.skipped_deletes > 0 {
            self.stats.io_error |= 4;
            let text = format!(
                "Deletions stopped due to --max-delete limit ({} skipped)",
                self.skipped_deletes
            );
            self.message(MsgCode::Warning, &text).await?;
        }
        self.ndx.encode(self.w.buf(), NDX_DONE);
        self.w.flush().await?;
        Ok(self.stats)
    }

    /// `-H`: makes every follower a hard link to its leader's file (the
    /// leader is complete now), itemized as rsync does (`hf`, with the
    /// leader's name; sent to the sender when `on_wire`).
    async fn link_followers(&mut self, on_wire: bool) -> Result<()> {
        let ctx = self.ctx;
        let mut pairs: Vec<(usize, usize)> = self.followers.iter().map(|(f, l)| (*f, *l)).collect();
        pairs.sort_unstable();
        for (f, l) in pairs {
            let e = &ctx.list[f];
            let leader = &ctx.path(l);
            let path = &ctx.path(f);
            let is_new = ctx.root.lstat(ctx.rel(f)).is_err();
            let linked = if ctx.opts.dry_run {
                Ok(true)
            } else {
                local::link_into(ctx.root, ctx.rel(l), ctx.rel(f))
            };
            match linked {
                Ok(false) => {}
                Ok(true) => {
                    let mut flags = item::LOCAL_CHANGE | item::XNAME_FOLLOWS;
                    if is_new {
                        flags |= item::IS_NEW;
                    }
                    ctx.emit(Event::Itemize {
                        flags,
                        kind: crate::engine::ItemKind::File,
                        name: e.name.clone(),
                        extra: Some(ctx.list[l].name.clone()),
                        sending: false,
                        times: ctx.opts.times,
                        known: true,
                        size: e.size,
                    });
                    if on_wire && ctx.setup.protocol >= 29 {
                        self.ndx
                            .encode(self.w.buf(), i32::try_from(f).unwrap_or(i32::MAX));
                        wire::encode_u16(self.w.buf(), flags);
                        wire::encode_vstring(self.w.buf(), &ctx.list[l].name)?;
                    }
                    self.success(f).await?;
                }
                Err(err) => {
                    self.fail(format!(
                        "link {} => {} failed: {err}",
                        path.display(),
                        leader.display()
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn touch_up_dirs(&mut self) {
        let ctx = self.ctx;
        if ctx.opts.dry_run {
            return;
        }
        let dirs: Vec<usize> = self.dirs.iter().rev().copied().collect();
        for i in dirs {
            let e = &ctx.list[i];
            if ctx.opts.relative
                && !ctx.opts.implied_dirs
                && e.xflags & (XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR)
                    == XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR
            {
                continue;
            }
            let st = ctx.root.lstat(ctx.rel(i)).ok();
            let is_new = self.new_dirs.contains(&i);
            let st = if is_new { None } else { st };
            let res = local::set_attrs(
                ctx.root,
                ctx.rel(i),
                e,
                ctx.ids.uid(e.uid),
                ctx.ids.gid(e.gid),
                &ctx.preserve,
                st.as_ref(),
                is_new,
            );
            // A `-K` link kept in the directory's place: rsync says so.
            if let Err(err) = res {
                if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                    let _ = self
                        .fail(format!(
                            "rsync: [generator] failed to set permissions on \"{}\": Too many levels of symbolic links (40)",
                            ctx.root.display(ctx.rel(i)).display()
                        ))
                        .await;
                }
            }
        }
    }

    async fn generate(&mut self, i: usize, st: Option<fs::Metadata>) -> Result<()> {
        let ctx = self.ctx;
        let e = &ctx.list[i];
        let path = &ctx.path(i);
        let rel = ctx.rel(i);
        let dry = ctx.opts.dry_run;
        let mut st = st;
        let o = ctx.opts;
        if self.followers.contains_key(&i) {
            // Linked to its leader once the leader is complete.
            return Ok(());
        }
        if o.relative && !o.implied_dirs {
            // --no-implied-dirs: the sender's implied parents are not
            // touched; a missing parent is made with default permissions
            // (generator.c, `make_path` with `relative_paths &&
            // !implied_dirs`).
            if e.is_dir()
                && e.xflags & (XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR)
                    == XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR
            {
                return Ok(());
            }
            if let Some(p) = rel.iter().rposition(|b| *b == b'/') {
                let parent = &rel[..p];
                if !dry && ctx.root.dir(parent).is_err() {
                    if let Err(err) = ctx.root.mkdir_all(parent, 0o777) {
                        return self
                            .fail(format!(
                                "recv_generator: mkdir \"{}\" failed: {err}",
                                ctx.root.display(parent).display()
                            ))
                            .await;
                    }
                }
            }
        }
        // --existing, --ignore-existing, --max-size/--min-size, --update
        // (rsync's order of checks in recv_generator); skipped items are
        // neither created nor updated, and rsync says nothing about them
        // without -v.
        if o.existing && st.is_none() && e.name != b"." {
            return Ok(());
        }
        if o.ignore_existing && st.is_some() && !e.is_dir() {
            return Ok(());
        }
        if e.kind() == Some(FileKind::Regular) {
            if o.max_size.is_some_and(|m| e.size > m) || o.min_size.is_some_and(|m| e.size < m) {
                return Ok(());
            }
            if o.update && st.as_ref().is_some_and(|m| dest_is_newer(ctx, e, m)) {
                return Ok(());
            }
        }
        match e.kind() {
            Some(FileKind::Dir) => {
                if o.keep_dirlinks && st.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
                    // -K: a symlink to a directory stands for it.
                    if let Some(m) = ctx.root.stat_dir_inside(rel) {
                        st = Some(m);
                    } else if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
                        // A directory outside the destination: never
                        // followed (nor replaced); what goes under it fails.
                        return self
                            .fail(format!(
                                "keep-dirlinks: not following \"{}\": a symlink out of the destination",
                                path.display()
                            ))
                            .await;
                    }
                }
                if st.as_ref().is_some_and(|m| !m.is_dir()) {
                    if !dry {
                        if let Err(err) = ctx.root.remove_any(rel) {
                            return self
                                .fail(format!("delete of {} failed: {err}", path.display()))
                                .await;
                        }
                    }
                    st = None;
                }
                let is_new = st.is_none();
                if is_new && !dry {
                    if let Err(err) = ctx.root.mkdir(rel, 0o700) {
                        return self
                            .fail(format!("mkdir \"{}\" failed: {err}", path.display()))
                            .await;
                    }
                    self.stats.created_dirs += 1;
                }
                let mut flags = match &st {
                    None => item::LOCAL_CHANGE | item::IS_NEW,
                    Some(m) => meta_flags(ctx, e, m, ctx.rel(i)),
                };
                let (xflags, need) = self.xattr_flags(i, st.is_some().then_some(rel));
                flags |= xflags;
                if is_new {
                    self.new_dirs.insert(i);
                }
                self.dirs.push(i);
                if flags != 0 || ctx.opts.itemize > 1 {
                    ctx.itemize(e, flags);
                }
                self.send_item(i, flags, &need);
                if ctx.opts.delete.is_some()
                    && !is_new
                    && e.xflags & crate::flist::entry::XMIT_NO_CONTENT_DIR == 0
                {
                    self.delete_in_dir(i).await?;
                }
            }
            Some(FileKind::Symlink) if !ctx.opts.links => {
                self.skip_non_regular(e).await?;
            }
            Some(FileKind::Symlink)
                if ctx.opts.safe_links
                    && super::options::unsafe_symlink(
                        e.link_target().unwrap_or_default(),
                        &e.name,
                    ) =>
            {
                let text = format!(
                    "ignoring unsafe symlink \"{}\" -> \"{}\"",
                    String::from_utf8_lossy(&e.name),
                    String::from_utf8_lossy(e.link_target().unwrap_or_default())
                );
                if ctx.opts.verbose > 0 {
                    if ctx.setup.is_server {
                        self.message(MsgCode::Info, &text).await?;
                    }
                    ctx.emit(Event::Message { error: false, text });
                }
            }
            Some(FileKind::Symlink) => {
                let target = e.link_target().unwrap_or_default();
                let same = st.as_ref().is_some_and(|m| m.file_type().is_symlink())
                    && ctx.root.read_link(rel).ok().is_some_and(|t| t == target);
                self.special(i, e, path, st, same, dry).await?;
            }
            Some(
                k @ (FileKind::CharDev | FileKind::BlockDev | FileKind::Fifo | FileKind::Socket),
            ) => {
                let dev = matches!(k, FileKind::CharDev | FileKind::BlockDev);
                if (dev && !ctx.opts.devices) || (!dev && !ctx.opts.specials) {
                    return self.skip_non_regular(e).await;
                }
                let same = st.as_ref().is_some_and(|m| {
                    let ft = m.file_type();
                    let kind_ok = match k {
                        FileKind::CharDev => ft.is_char_device(),
                        FileKind::BlockDev => ft.is_block_device(),
                        FileKind::Fifo => ft.is_fifo(),
                        _ => ft.is_socket(),
                    };
                    kind_ok && (!dev || m.rdev() == rustix::fs::makedev(e.rdev().0, e.rdev().1))
                });
                self.special(i, e, path, st, same, dry).await?;
            }
            Some(FileKind::Regular) => self.regular(i, e, path, st).await?,
            _ => {}
        }
        Ok(())
    }

    /// A directory in the way of a non-directory: without `--delete` or
    /// `--force` a non-empty one stays (rsync says so and skips the item);
    /// false then.
    async fn dir_gives_way(&mut self, e: &FileEntry, rel: &[u8]) -> Result<bool> {
        let o = self.ctx.opts;
        let non_empty = self.ctx.root.read_dir(rel).is_ok_and(|d| !d.is_empty());
        if non_empty && o.delete.is_none() && !o.force {
            let text = format!(
                "cannot delete non-empty directory: {}",
                String::from_utf8_lossy(&e.name)
            );
            if self.ctx.setup.is_server {
                self.message(MsgCode::Info, &text).await?;
            }
            self.ctx.emit(Event::Message { error: false, text });
            let desc = match e.kind() {
                Some(FileKind::Symlink) => "symlink",
                Some(FileKind::CharDev | FileKind::BlockDev) => "device file",
                Some(FileKind::Fifo | FileKind::Socket) => "special file",
                _ => "regular file",
            };
            self.fail(format!(
                "could not make way for new {desc}: {}",
                String::from_utf8_lossy(&e.name)
            ))
            .await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn skip_non_regular(&mut self, e: &FileEntry) -> Result<()> {
        let text = format!(
            "skipping non-regular file \"{}\"",
            String::from_utf8_lossy(&e.name)
        );
        if self.ctx.setup.is_server {
            self.message(MsgCode::Info, &text).await?;
        }
        self.ctx.emit(Event::Message { error: false, text });
        Ok(())
    }

    async fn special(
        &mut self,
        i: usize,
        e: &FileEntry,
        path: &Path,
        st: Option<fs::Metadata>,
        same: bool,
        dry: bool,
    ) -> Result<()> {
        let ctx = self.ctx;
        let (uid, gid) = (ctx.ids.uid(e.uid), ctx.ids.gid(e.gid));
        let mut flags = if same {
            0
        } else if st.is_none() {
            item::LOCAL_CHANGE | item::IS_NEW
        } else {
            item::LOCAL_CHANGE | item::REPORT_CHANGE
        };
        if !same
            && st.as_ref().is_some_and(fs::Metadata::is_dir)
            && !self.dir_gives_way(e, ctx.rel(i)).await?
        {
            return Ok(());
        }
        if !dry {
            if !same {
                if let Err(err) = local::make_special(ctx.root, ctx.rel(i), e) {
                    return self
                        .fail(format!("creating \"{}\" failed: {err}", path.display()))
                        .await;
                }
            }
            let cur = if same { st.as_ref() } else { None };
            match local::set_attrs(ctx.root, ctx.rel(i), e, uid, gid, &ctx.preserve, cur, !same) {
                Ok(f) => flags |= f,
                Err(err) => {
                    return self
                        .fail(format!(
                            "set attributes of \"{}\" failed: {err}",
                            path.display()
                        ))
                        .await;
                }
            }
        } else if let Some(m) = &st {
            if same {
                flags |= meta_flags(ctx, e, m, ctx.rel(i));
            }
        }
        let (xflags, need) = self.xattr_flags(i, (same || !dry).then_some(ctx.rel(i)));
        flags |= xflags;
        if flags != 0 || ctx.opts.itemize > 1 {
            ctx.itemize(e, flags);
        }
        self.send_item(i, flags, &need);
        self.success(i).await?;
        Ok(())
    }

    async fn regular(
        &mut self,
        i: usize,
        e: &FileEntry,
        path: &Path,
        mut st: Option<fs::Metadata>,
    ) -> Result<()> {
        let ctx = self.ctx;
        let o = ctx.opts;
        if st.as_ref().is_some_and(|m| !m.is_file()) {
            if st.as_ref().is_some_and(fs::Metadata::is_dir)
                && !self.dir_gives_way(e, ctx.rel(i)).await?
            {
                return Ok(());
            }
            if !o.dry_run {
                if let Err(err) = ctx.root.remove_any(ctx.rel(i)) {
                    return self
                        .fail(format!("delete of \"{}\" failed: {err}", path.display()))
                        .await;
                }
            }
            st = None;
        }
        if let Some(m) = &st {
            let same_size = m.len() == e.size;
            let unchanged = if o.checksum {
                same_size
                    && e.checksum().is_some()
                    && file_sum(ctx, ctx.rel(i)).as_deref() == e.checksum()
            } else if o.size_only {
                same_size
            } else {
                same_size && !o.ignore_times && same_mtime(ctx, e, m)
            };
            if unchanged {
                if o.delay_updates && !o.dry_run {
                    // A copy held back by an interrupted --delay-updates run
                    // is stale now.
                    local::drop_delayed(ctx.root, ctx.rel(i));
                }
                let mut flags = meta_flags(ctx, e, m, ctx.rel(i));
                if !o.dry_run && flags != 0 {
                    let (uid, gid) = (ctx.ids.uid(e.uid), ctx.ids.gid(e.gid));
                    if let Err(err) = local::set_attrs(
                        ctx.root,
                        ctx.rel(i),
                        e,
                        uid,
                        gid,
                        &ctx.preserve,
                        Some(m),
                        false,
                    ) {
                        return self
                            .fail(format!(
                                "set attributes of \"{}\" failed: {err}",
                                path.display()
                            ))
                            .await;
                    }
                }
                flags &= !item::REPORT_OWNER | if ctx.preserve.am_root { 0xffff } else { 0 };
                let (xflags, need) = self.xattr_flags(i, Some(ctx.rel(i)));
                flags |= xflags;
                if flags != 0 || o.itemize > 1 {
                    ctx.itemize(e, flags);
                }
                ctx.emit(Event::UpToDate {
                    name: e.name.clone(),
                    size: e.size,
                });
                self.send_item(i, flags, &need);
                self.success(i).await?;
                return Ok(());
            }
            if super::sender::append_mode(o, ctx.setup.protocol) > 0 && m.len() >= e.size {
                // --append: a file that is not shorter is left alone
                // (upstream recv_generator).
                return Ok(());
            }
        }
        self.request(i, false, Some(st)).await
    }

    /// Sends a transfer request for entry `i`. `known`: the destination's
    /// `lstat` as the caller already has it (`None`: take it now).
    async fn request(
        &mut self,
        i: usize,
        redo: bool,
        known: Option<Option<fs::Metadata>>,
    ) -> Result<()> {
        let ctx = self.ctx;
        let e = &ctx.list[i];
        let rel = ctx.rel(i);
        let protocol = ctx.setup.protocol;
        let st = known
            .unwrap_or_else(|| ctx.root.lstat(rel).ok())
            .filter(fs::Metadata::is_file);
        let mut flags = item::TRANSFER;
        match &st {
            None => flags |= item::IS_NEW,
            Some(m) => {
                if m.len() != e.size {
                    flags |= item::REPORT_SIZE;
                }
                flags |= meta_flags(ctx, e, m, ctx.rel(i));
                if !ctx.opts.times && !same_mtime(ctx, e, m) {
                    flags |= item::REPORT_TIME;
                }
                if ctx.opts.checksum {
                    flags |= item::REPORT_CHANGE;
                }
            }
        }
        let (xflags, need) = self.xattr_flags(i, st.is_some().then_some(rel));
        flags |= xflags;
        if !redo {
            ctx.itemize(e, flags);
        }
        let use_partial = !ctx.opts.dry_run
            && protocol >= 29
            && !ctx.whole_file
            && ctx
                .opts
                .partial_dir
                .as_deref()
                .and_then(|d| local::find_partial(ctx.root, rel, d))
                .is_some_and(|p| {
                    let (r, n) = p.get();
                    r.lstat(n).is_ok_and(|m| m.len() > 0)
                });
        self.ndx
            .encode(self.w.buf(), i32::try_from(i).unwrap_or(i32::MAX));
        if protocol >= 29 {
            if use_partial {
                wire::encode_u16(self.w.buf(), flags | item::BASIS_TYPE_FOLLOWS);
                self.w.buf().push(local::FNAMECMP_PARTIAL_DIR);
            } else {
                wire::encode_u16(self.w.buf(), flags);
            }
            self.xattr_request(flags, &need);
        }
        if ctx.opts.dry_run {
            return Ok(());
        }
        let digest_len = ctx.setup.checksum.kind.digest_len();
        if !redo && super::sender::append_mode(ctx.opts, protocol) > 0 {
            // --append: the header of the existing file's length, without
            // block sums (upstream generate_and_send_sums).
            let len = st.as_ref().map_or(0, fs::Metadata::len);
            let head = if len > 0 {
                SumHead::for_file(len, protocol, digest_len, ctx.opts.block_size, false)
            } else {
                SumHead::empty()
            };
            head.encode(self.w.buf(), protocol);
            return Ok(());
        }
        // --partial-dir: a partial file from an interrupted run is the
        // better basis (rsync's FNAMECMP_PARTIAL_DIR).
        let partial = ctx
            .opts
            .partial_dir
            .as_deref()
            .filter(|_| protocol >= 29 && !ctx.whole_file)
            .and_then(|d| local::find_partial(ctx.root, rel, d))
            .and_then(|p| {
                let (r, n) = p.get();
                r.open_read(n).ok()
            })
            .and_then(|f| f.metadata().ok().map(|m| (f, m.len())))
            .filter(|(_, len)| *len > 0);
        let basis = match &st {
            _ if partial.is_some() => partial,
            Some(m)
                if !ctx.whole_file
                    && m.len() > 0
                    && ctx.setup.checksum.kind != crate::checksum::StrongKind::None =>
            {
                ctx.root.open_read(rel).ok().map(|f| (f, m.len()))
            }
            _ => None,
        };
        let Some((f, len)) = basis else {
            SumHead::empty().encode(self.w.buf(), protocol);
            return Ok(());
        };
        let head = SumHead::for_file(len, protocol, digest_len, ctx.opts.block_size, redo);
        let mut sb = SignatureBuilder::new(head, ctx.setup.checksum);
        // A large basis is read in pieces big enough for the builder to
        // sum each on two threads.
        let piece = if len >= SignatureBuilder::PARALLEL_FEED as u64 {
            SignatureBuilder::PARALLEL_FEED
        } else {
            256 * 1024
        };
        let mut buf = vec![0u8; piece];
        let mut total = 0u64;
        while total < len {
            let want = usize::try_from((len - total).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = read_piece(&f, total, &mut buf[..want]);
            if n == 0 {
                break;
            }
            sb.feed(&buf[..n]);
            total += n as u64;
            // A huge basis takes a while; what is buffered (requests before
            // this one, our ndx) may go out meanwhile.
            self.w.keepalive().await?;
        }
        if total != len {
            // The basis changed under us: send no sums rather than wrong ones.
            SumHead::empty().encode(self.w.buf(), protocol);
            return Ok(());
        }
        let sig = sb.finish();
        sig.head.encode(self.w.buf(), protocol);
        sig.encode_blocks(self.w.buf());
        Ok(())
    }

    /// Deletes the contents of directory `p` that the filters allow (each
    /// reported, deepest first, as rsync does); false when something was
    /// kept (upstream `delete_dir_contents`).
    async fn delete_dir_contents(
        &mut self,
        p: &Path,
        rel: &[u8],
        filters: Option<&crate::filter::FilterSet>,
    ) -> Result<bool> {
        let ctx = self.ctx;
        let mut names: Vec<Vec<u8>> = ctx.root.read_dir(rel).unwrap_or_default();
        names.sort();
        let inner = match filters {
            Some(f) => {
                let mut rd = super::filters::dir_reader(ctx.root, rel);
                match f.enter_dir(rel, &mut rd) {
                    Ok(inner) => Some(inner),
                    Err(e) => {
                        self.merge_failed(rel, &e).await?;
                        return Ok(false);
                    }
                }
            }
            None => None,
        };
        let mut kept = false;
        for n in names {
            let child = p.join(OsStr::from_bytes(&n));
            let mut crel = rel.to_vec();
            crel.push(b'/');
            crel.extend_from_slice(&n);
            let is_dir = ctx.root.lstat(&crel).is_ok_and(|m| m.is_dir());
            if inner.as_ref().is_some_and(|f| f.is_excluded(&crel, is_dir)) {
                kept = true;
                continue;
            }
            if is_dir && !Box::pin(self.delete_dir_contents(&child, &crel, inner.as_ref())).await? {
                kept = true;
            }
            if !Box::pin(self.delete_item(&child, crel, None, false)).await? {
                kept = true;
            }
        }
        if kept {
            ctx.emit(Event::Message {
                error: false,
                text: format!(
                    "cannot delete non-empty directory: {}",
                    String::from_utf8_lossy(rel)
                ),
            });
        }
        Ok(!kept)
    }

    /// Deletes one extraneous item; with `top`, a directory's contents
    /// first. False when it was not deleted.
    async fn delete_item(
        &mut self,
        p: &Path,
        rel: Vec<u8>,
        filters: Option<&crate::filter::FilterSet>,
        top: bool,
    ) -> Result<bool> {
        let ctx = self.ctx;
        let Ok(m) = ctx.root.lstat(&rel) else {
            return Ok(true);
        };
        if let Some(limit) = ctx.opts.max_delete {
            let done: i32 = self.stats.deleted.iter().sum();
            if i64::from(done) >= i64::from(limit) {
                self.skipped_deletes += 1;
                return Ok(false);
            }
        }
        let ft = m.file_type();
        if top && m.is_dir() && !self.delete_dir_contents(p, &rel, filters).await? {
            return Ok(false);
        }
        let kind_idx = if m.is_dir() {
            1
        } else if ft.is_symlink() {
            2
        } else if ft.is_block_device() || ft.is_char_device() {
            3
        } else if ft.is_fifo() || ft.is_socket() {
            4
        } else {
            0
        };
        if !ctx.opts.dry_run {
            let res = if m.is_dir() {
                ctx.root.remove_dir(&rel)
            } else {
                ctx.root.remove_file(&rel)
            };
            if let Err(err) = res {
                if m.is_dir()
                    && err.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error())
                {
                    ctx.emit(Event::Message {
                        error: false,
                        text: format!(
                            "cannot delete non-empty directory: {}",
                            String::from_utf8_lossy(&rel)
                        ),
                    });
                    return Ok(false);
                }
                return self
                    .fail(format!(
                        "delete_file: unlink \"{}\" failed: {err}",
                        p.display()
                    ))
                    .await
                    .map(|()| false);
            }
        }
        self.stats.deleted[kind_idx] += 1;
        let shown = if m.is_dir() {
            [rel.as_slice(), b"/"].concat()
        } else {
            rel.clone()
        };
        if ctx.setup.is_server && ctx.setup.protocol >= 29 {
            let mut payload = rel;
            if m.is_dir() {
                payload.push(0);
            }
            self.w.send_msg(MsgCode::Deleted, &payload).await?;
        }
        ctx.emit(Event::Deleted { name: shown });
        Ok(true)
    }

    /// A per-directory merge file of destination directory `rel` could not
    /// be used. One that does not parse ends the run as rsync's does
    /// (`Unknown filter rule`, exit 1). One reached only by leaving the
    /// destination (rsync would follow it) is not read: that directory's
    /// rules are unknown, so nothing there is deleted (exit 23).
    async fn merge_failed(&mut self, rel: &[u8], e: &crate::filter::ParseError) -> Result<()> {
        if !matches!(e, crate::filter::ParseError::MergeFile { .. }) {
            return Err(Error::Syntax(e.to_string()));
        }
        let dir = if rel.is_empty() { b"." as &[u8] } else { rel };
        self.fail(format!(
            "rsync: {e} -- skipping deletion in {}",
            String::from_utf8_lossy(dir)
        ))
        .await
    }

    async fn delete_in_dir(&mut self, i: usize) -> Result<()> {
        let ctx = self.ctx;
        let e = &ctx.list[i];
        let dir = &ctx.path(i);
        let Ok(rd) = ctx.root.read_dir(ctx.rel(i)) else {
            return Ok(());
        };
        let filters = match ctx.filters {
            Some(f) => {
                match super::filters::filters_for_dir_cached(
                    f,
                    ctx.root,
                    &e.name,
                    &mut self.dir_filters,
                ) {
                    Ok(f) => Some(f),
                    Err(err) => return self.merge_failed(&e.name, &err).await,
                }
            }
            None => None,
        };
        let keep = self.children.get(e.name.as_slice());
        let mut doomed: Vec<Vec<u8>> = rd
            .into_iter()
            .filter(|n| !keep.is_some_and(|k| k.contains(n)))
            // The holding directory of --delay-updates is never deleted.
            .filter(|n| !(ctx.opts.delay_updates && n == local::DELAY_DIR.as_bytes()))
            // Nor a relative --partial-dir.
            .filter(|n| {
                ctx.opts
                    .partial_dir
                    .as_deref()
                    .is_none_or(|d| d.as_bytes() != n.as_slice())
            })
            .collect();
        doomed.sort();
        for name in doomed {
            let p = dir.join(OsStr::from_bytes(&name));
            let mut rel = if e.name == b"." {
                Vec::new()
            } else {
                [e.name.as_slice(), b"/"].concat()
            };
            rel.extend_from_slice(&name);
            if let Some(f) = &filters {
                let is_dir = ctx.root.lstat(&rel).is_ok_and(|m| m.is_dir());
                if f.is_excluded(&rel, is_dir) {
                    continue;
                }
            }
            let mut inner = filters.clone();
            if let Some(f) = &mut inner {
                f.set_ignore_perishable(true);
            }
            self.delete_item(&p, rel, inner.as_ref(), true).await?;
        }
        Ok(())
    }
}
