//! Transfer options: what a user asks for, how they become the argument
//! vector of `rsync --server`, and how a server reads them back.
//!
//! Layer: engine (config). Uses nothing below but plain data.
//! Mirrors upstream options.c `server_options` (the order of letters and
//! long options) and popt's parsing rules for the server side.

use crate::error::{Error, Result};

pub use super::client_args::{
    ClientArgs, DaemonArgs, SSH_OPTIONS, parse_client_args, parse_client_args_onto,
};

/// When `--delete` removes extraneous files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteTiming {
    /// Plain `--delete`: during the transfer at protocol >= 30, before below.
    Auto,
    /// `--delete-before`.
    Before,
    /// `--delete-during`.
    During,
    /// `--delete-delay`.
    Delay,
    /// `--delete-after`.
    After,
}

/// Options of a transfer, named after rsync's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// `-r`
    pub recursive: bool,
    /// `-d`
    pub dirs: bool,
    /// `-l`
    pub links: bool,
    /// `-p`
    pub perms: bool,
    /// `-t`
    pub times: bool,
    /// `-g`
    pub group: bool,
    /// `-o`
    pub owner: bool,
    /// `--devices`
    pub devices: bool,
    /// `--specials`
    pub specials: bool,
    /// `-O`
    pub omit_dir_times: bool,
    /// `--delete*`
    pub delete: Option<DeleteTiming>,
    /// `--numeric-ids`
    pub numeric_ids: bool,
    /// `-W` / `--no-W`; `None` = rsync's default (whole-file for local copies).
    pub whole_file: Option<bool>,
    /// `-c`
    pub checksum: bool,
    /// `--size-only`
    pub size_only: bool,
    /// `-I`
    pub ignore_times: bool,
    /// `-n`
    pub dry_run: bool,
    /// `--checksum-choice=NAME`
    pub checksum_choice: Option<String>,
    /// `--checksum-seed=N`
    pub checksum_seed: Option<i32>,
    /// `-B N`
    pub block_size: Option<u32>,
    /// `--protocol=N`
    pub protocol: Option<u8>,
    /// `--rsync-path`
    pub rsync_path: String,
    /// `--timeout=SECONDS`; 0: the default idle timeout,
    /// `limits.idle_timeout_secs` (600 s; rsync has none).
    pub timeout: u32,
    /// `-v` count
    pub verbose: u8,
    /// `-q`
    pub quiet: bool,
    /// `-i` count
    pub itemize: u8,
    /// `--stats`
    pub stats: bool,
    /// `--progress`
    pub progress: bool,
    /// `--ignore-errors`
    pub ignore_errors: bool,
    /// `-z`: compress file data on the wire.
    pub compress: bool,
    /// `--compress-choice=NAME` (`zstd`, `lz4`, `zlibx`, `zlib`, `none`).
    pub compress_choice: Option<String>,
    /// `--compress-level=N`.
    pub compress_level: Option<i32>,
    /// `--skip-compress=LIST` (accepted; every file is compressed alike).
    pub skip_compress: Option<String>,
    /// Our checksum list for the negotiation instead of the built-in one
    /// (rsync's `RSYNC_CHECKSUM_LIST`; the binary reads that variable).
    pub checksum_list: Option<String>,
    /// Our compression list for the negotiation (`RSYNC_COMPRESS_LIST`).
    pub compress_list: Option<String>,
    /// `--chmod` rules applied to the modes of the files this side lists
    /// (as sender) or receives (as receiver); a daemon sets its module's
    /// `incoming chmod` / `outgoing chmod` here.
    pub chmod: Option<String>,
    /// rsync's `munge symlinks` (a daemon module without chroot): received
    /// symlink targets get the `/rsyncd-munged/` prefix so they cannot be
    /// followed out of the module, and the prefix is removed when sending.
    pub munge_links: bool,
    /// A daemon module's `numeric ids`: the id lists still travel as the
    /// client expects (it did not ask for `--numeric-ids`), but this side
    /// sends no names and maps none.
    pub local_numeric_ids: bool,
    /// `--bwlimit`: the most bytes per second this side writes (rsync's
    /// unit on the command line is KiB/s).
    pub bwlimit: Option<u64>,
    /// `--delay-updates`: received files wait in `.~tmp~` beside their
    /// destination and are renamed into place together at the end.
    pub delay_updates: bool,
    /// `-u`: skip files that are newer on the receiver.
    pub update: bool,
    /// `--existing`: don't create new files.
    pub existing: bool,
    /// `--ignore-existing`: don't update files that exist.
    pub ignore_existing: bool,
    /// `--max-size`: skip files larger than this many bytes.
    pub max_size: Option<u64>,
    /// `--min-size`: skip files smaller than this many bytes.
    pub min_size: Option<u64>,
    /// `--modify-window` / `-@`: mtimes this many seconds apart count as
    /// equal (nanoseconds are then ignored).
    pub modify_window: u32,
    /// `-b`: keep the replaced version of each updated file.
    pub backup: bool,
    /// `--backup-dir`: where backups go (relative to the destination).
    pub backup_dir: Option<String>,
    /// `--suffix`: appended to backup names (`~`, or empty with a backup
    /// dir).
    pub suffix: Option<String>,
    /// `-x`: don't cross file-system boundaries when listing.
    pub one_file_system: bool,
    /// `--partial`: keep a partially received file (in place of the
    /// destination, as rsync does) when a transfer is interrupted.
    pub partial: bool,
    /// `--partial-dir`: keep partial files in this directory (relative to
    /// each file's directory unless absolute) and resume from them.
    pub partial_dir: Option<String>,
    /// `--inplace`: update destination files in place (no temporary file;
    /// an interrupted or failed update leaves the file partly updated, as
    /// rsync does).
    pub inplace: bool,
    /// `--max-delete`: delete at most this many items (0: none, only warn).
    pub max_delete: Option<u32>,
    /// `-H`: preserve hard links (regular files linked together on the
    /// sender are linked together on the receiver).
    pub hard_links: bool,
    /// `--safe-links`: ignore symlinks that point outside the transferred
    /// tree (absolute, or climbing above it with `..`).
    pub safe_links: bool,
    /// `-X` count: 1 preserves extended attributes (protocol >= 30), 2
    /// (`-XX`) also the `user.rsync.%*` names rsync keeps for itself.
    pub xattrs: u8,
    /// `-A`: preserve POSIX ACLs (protocol >= 30; implies `-p`).
    pub acls: bool,
    /// Filter options in command-line order (`--filter`, `--exclude`,
    /// `--include`, `--exclude-from`, `--include-from`; `-F` adds
    /// `--filter` rules).
    pub filters: Vec<crate::filter::FilterArg>,
    /// `-C`: add rsync's CVS-ignore rules.
    pub cvs_exclude: bool,
    /// `--delete-excluded`: excluded names are deleted on the receiver.
    pub delete_excluded: bool,
    /// A daemon module's rules, applied on top of the client's and never
    /// sent (the `filter`, `exclude` and `include` parameters).
    pub daemon_filters: Vec<crate::filter::FilterArg>,
    /// Bounds on what the peer may send, and the idle timeout used when
    /// `timeout` is 0 (see [`crate::wire::Limits`]); never sent.
    pub limits: crate::wire::Limits,
    /// `--append` (1) / `--append-verify` (2): a shorter destination file
    /// is extended in place with the sender's tail; 2 also checks the
    /// whole file's checksum (and redoes the file when it differs).
    pub append: u8,
    /// `-S` / `--sparse`: runs of zeros become holes in new files.
    pub sparse: bool,
    /// `--preallocate`: reserve each new file's final size before writing.
    pub preallocate: bool,
    /// `--remove-source-files`: the sender deletes each non-directory it
    /// listed once the receiver has it (transferred or up to date).
    pub remove_source_files: bool,
    /// `-L` / `--copy-links`: the sender follows every symlink.
    pub copy_links: bool,
    /// `--copy-unsafe-links`: the sender follows symlinks that point
    /// outside the transferred tree.
    pub copy_unsafe_links: bool,
    /// `-k` / `--copy-dirlinks`: the sender follows symlinks to
    /// directories.
    pub copy_dirlinks: bool,
    /// `-K` / `--keep-dirlinks`: the receiver treats a symlink to a
    /// directory as that directory.
    pub keep_dirlinks: bool,
    /// `--usermap` (and the user part of `--chown`), applied by the
    /// receiver.
    pub usermap: Option<String>,
    /// `--groupmap` (and the group part of `--chown`), applied by the
    /// receiver.
    pub groupmap: Option<String>,
    /// `--force`: a non-empty directory in the way of a non-directory is
    /// removed (with its contents).
    pub force: bool,
    /// `-U` count: preserve access times of non-directories (protocol >=
    /// 30); 2 (`-UU`) also implies `--open-noatime`.
    pub atimes: u8,
    /// `--open-noatime`: open source files with `O_NOATIME`.
    pub open_noatime: bool,
    /// `-R`: send the source names as given (the part after a `/./`
    /// marker, else the whole path), with their parent directories.
    pub relative: bool,
    /// `--no-implied-dirs` clears this: with `-R`, the parent directories
    /// of a source are not created with the sender's attributes (missing
    /// ones are made with default permissions).
    pub implied_dirs: bool,
    /// `--files-from=FILE`: the names to send, relative to the single
    /// source directory. `-` is standard input; `host:FILE` or `:FILE` a
    /// file on the remote side. Implies `-R` (unless `--no-relative`) and
    /// `--dirs`; `-a` does not recurse with it unless `-r` is given too.
    pub files_from: Option<String>,
    /// `--from0`: the files-from names (and rules files) end with NUL,
    /// not with a newline.
    pub from0: bool,
    /// A daemon module's path: its filter rules ([`Options::daemon_filters`])
    /// are anchored there, whatever directory of the module the transfer
    /// starts in (rsync matches them against the module-relative path).
    pub module_root: Option<std::path::PathBuf>,
    /// `--trust-sender`: do not check that a pulled file list only holds
    /// what was asked for (rsync 3.2.5+'s check against CVE-2022-29154).
    pub trust_sender: bool,
    /// The source arguments of a pull as the client sent them (set by
    /// [`crate::Transfer`]'s pull methods): the receiving client refuses a
    /// listed name outside them. Empty: not checked.
    pub requested: Vec<String>,
    /// The [`Options::requested`] words start with a daemon module name.
    pub requested_in_module: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            recursive: false,
            dirs: false,
            links: false,
            perms: false,
            times: false,
            group: false,
            owner: false,
            devices: false,
            specials: false,
            omit_dir_times: false,
            delete: None,
            numeric_ids: false,
            whole_file: None,
            checksum: false,
            size_only: false,
            ignore_times: false,
            dry_run: false,
            checksum_choice: None,
            checksum_seed: None,
            block_size: None,
            protocol: None,
            rsync_path: "rsync".to_string(),
            timeout: 0,
            verbose: 0,
            quiet: false,
            itemize: 0,
            stats: false,
            progress: false,
            ignore_errors: false,
            compress: false,
            compress_choice: None,
            compress_level: None,
            skip_compress: None,
            checksum_list: None,
            compress_list: None,
            chmod: None,
            munge_links: false,
            local_numeric_ids: false,
            bwlimit: None,
            delay_updates: false,
            update: false,
            existing: false,
            ignore_existing: false,
            max_size: None,
            min_size: None,
            modify_window: 0,
            backup: false,
            backup_dir: None,
            suffix: None,
            one_file_system: false,
            partial: false,
            partial_dir: None,
            inplace: false,
            max_delete: None,
            hard_links: false,
            safe_links: false,
            xattrs: 0,
            acls: false,
            filters: Vec::new(),
            cvs_exclude: false,
            delete_excluded: false,
            daemon_filters: Vec::new(),
            limits: crate::wire::Limits::default(),
            append: 0,
            sparse: false,
            preallocate: false,
            remove_source_files: false,
            copy_links: false,
            copy_unsafe_links: false,
            copy_dirlinks: false,
            keep_dirlinks: false,
            usermap: None,
            groupmap: None,
            force: false,
            atimes: 0,
            open_noatime: false,
            relative: false,
            implied_dirs: true,
            files_from: None,
            from0: false,
            module_root: None,
            trust_sender: false,
            requested: Vec::new(),
            requested_in_module: false,
        }
    }
}

impl Options {
    /// `-a`: `-rlptgoD`.
    #[must_use]
    pub fn archive() -> Self {
        Options {
            recursive: true,
            links: true,
            perms: true,
            times: true,
            group: true,
            owner: true,
            devices: true,
            specials: true,
            ..Options::default()
        }
    }

    /// The capability string we send after `-e` (we never offer incremental
    /// recursion, and we are built without iconv).
    #[must_use]
    pub fn capabilities() -> &'static str {
        ".LfxCvu"
    }

    /// The `rsync --server ...` words for these options, without the `.`
    /// and the paths. `server_sends` is true for a pull (the server is the
    /// sender).
    #[must_use]
    pub fn server_args(&self, server_sends: bool) -> Vec<String> {
        let client_sends = !server_sends;
        let mut args = vec!["--server".to_string()];
        if server_sends {
            args.push("--sender".into());
        }
        let mut c = String::from("-");
        for _ in 0..self.verbose.min(9) {
            c.push('v');
        }
        if self.quiet {
            c.push('q');
        }
        if self.dry_run {
            c.push('n');
        }
        if self.links {
            c.push('l');
        }
        if self.dirs || (self.delete.is_some() && !self.recursive && client_sends) {
            c.push('d');
        }
        if client_sends && self.keep_dirlinks {
            c.push('K');
        }
        if client_sends && self.omit_dir_times {
            c.push('O');
        }
        if server_sends && self.copy_links {
            c.push('L');
        }
        if server_sends && self.copy_dirlinks {
            c.push('k');
        }
        if self.whole_file == Some(true) {
            c.push('W');
        }
        if self.owner {
            c.push('o');
        }
        if self.group {
            c.push('g');
        }
        if self.devices {
            c.push('D');
        }
        if self.times {
            c.push('t');
        }
        for _ in 0..self.atimes.min(2) {
            c.push('U');
        }
        if self.perms {
            c.push('p');
        }
        if self.acls {
            c.push('A');
        }
        for _ in 0..self.xattrs.min(2) {
            c.push('X');
        }
        if self.recursive {
            c.push('r');
        }
        if self.checksum {
            c.push('c');
        }
        if self.hard_links {
            c.push('H');
        }
        if self.update && client_sends {
            c.push('u');
        }
        if self.backup && client_sends {
            c.push('b');
        }
        if self.one_file_system && server_sends {
            c.push('x');
        }
        if self.cvs_exclude {
            c.push('C');
        }
        if self.ignore_times {
            c.push('I');
        }
        if self.sparse {
            c.push('S');
        }
        if self.relative {
            c.push('R');
        }
        let choice = self.compress_choice.as_deref().map(str::to_ascii_lowercase);
        if self.compress && matches!(choice.as_deref(), None | Some("zlib")) {
            c.push('z');
        }
        if self.protocol.is_none_or(|p| p >= 30) {
            c.push('e');
            c.push_str(Self::capabilities());
        }
        if c.len() > 1 {
            args.push(c);
        }
        if self.devices && !self.specials {
            args.push("--no-specials".into());
        } else if self.specials && !self.devices {
            args.push("--specials".into());
        }
        if let Some(b) = self.block_size {
            args.push(format!("-B{b}"));
        }
        if self.timeout > 0 {
            args.push(format!("--timeout={}", self.timeout));
        }
        if let Some(cc) = &self.checksum_choice {
            args.push(format!("--checksum-choice={cc}"));
        }
        if self.compress {
            if let Some(level) = self.compress_level {
                args.push(format!("--compress-level={level}"));
            }
            match choice.as_deref() {
                None => {}
                Some("zlib") => args.push("--old-compress".into()),
                Some("zlibx") => args.push("--new-compress".into()),
                Some(other) => args.push(format!("--compress-choice={other}")),
            }
        }
        if client_sends {
            if let Some(d) = self
                .delete
                .filter(|d| !(self.delete_excluded && *d == DeleteTiming::Auto))
            {
                args.push(
                    match d {
                        DeleteTiming::Auto => "--delete",
                        DeleteTiming::Before => "--delete-before",
                        DeleteTiming::During => "--delete-during",
                        DeleteTiming::Delay => "--delete-delay",
                        DeleteTiming::After => "--delete-after",
                    }
                    .into(),
                );
            }
            if self.delete_excluded {
                args.push("--delete-excluded".into());
            }
            if self.force {
                args.push("--force".into());
            }
            if self.size_only {
                args.push("--size-only".into());
            }
            if let Some(m) = self.max_delete {
                let wire = if m == 0 { -1 } else { i64::from(m) };
                args.push(format!("--max-delete={wire}"));
            }
        }
        if let Some(s) = self.checksum_seed.filter(|s| *s != 0) {
            args.push(format!("--checksum-seed={s}"));
        }
        if self.ignore_errors {
            args.push("--ignore-errors".into());
        }
        if self.delay_updates {
            args.push("--delay-updates".into());
        }
        if self.copy_unsafe_links {
            args.push("--copy-unsafe-links".into());
        }
        if self.safe_links {
            args.push("--safe-links".into());
        }
        if self.munge_links && client_sends {
            args.push("--munge-links".into());
        }
        if self.append > 0 {
            if self.append > 1 {
                args.push("--append".into());
            }
            args.push("--append".into());
        } else if self.inplace {
            args.push("--inplace".into());
        }
        if let Some(ff) = &self.files_from {
            let remote = files_from_remote(ff);
            if server_sends || remote.is_some() {
                if let Some(path) = remote {
                    args.push("--files-from".into());
                    args.push(path.to_string());
                    if self.from0 {
                        args.push("--from0".into());
                    }
                } else {
                    args.push("--files-from=-".into());
                    args.push("--from0".into());
                }
                if !self.relative {
                    args.push("--no-relative".into());
                }
            }
        }
        if self.relative
            && !self.implied_dirs
            && (server_sends || self.protocol.is_none_or(|p| p >= 30))
        {
            args.push("--no-implied-dirs".into());
        }
        if client_sends {
            if let Some(m) = &self.usermap {
                args.push(format!("--usermap={m}"));
            }
            if let Some(m) = &self.groupmap {
                args.push(format!("--groupmap={m}"));
            }
            if self.existing {
                args.push("--existing".into());
            }
            if self.ignore_existing {
                args.push("--ignore-existing".into());
            }
            if let Some(m) = self.max_size {
                args.push(format!("--max-size={m}"));
            }
            if let Some(m) = self.min_size {
                args.push(format!("--min-size={m}"));
            }
            if let Some(d) = &self.partial_dir {
                args.push(format!("--partial-dir={d}"));
            } else if self.partial {
                args.push("--partial".into());
            }
            if let Some(d) = &self.backup_dir {
                args.push(format!("--backup-dir={d}"));
            }
            if let Some(sfx) = &self.suffix {
                args.push(format!("--suffix={sfx}"));
            }
        }
        if self.modify_window > 0 {
            args.push(format!("--modify-window={}", self.modify_window));
        }
        if let Some(b) = self.bwlimit {
            args.push(format!("--bwlimit={}", b.div_ceil(1024)));
        }
        if self.numeric_ids {
            args.push("--numeric-ids".into());
        }
        if self.remove_source_files {
            args.push("--remove-source-files".into());
        }
        if self.preallocate && client_sends {
            args.push("--preallocate".into());
        }
        if self.open_noatime && self.atimes <= 1 {
            args.push("--open-noatime".into());
        }
        args
    }
}

/// `--chown=USER:GROUP`: rsync turns it into `--usermap=*:USER` and
/// `--groupmap=*:GROUP` (each part only when given), implying `-o` / `-g`.
///
/// # Errors
/// A part that a `--usermap` / `--groupmap` already set.
///
/// ```
/// use ferrsync::Options;
/// use ferrsync::engine::options::set_chown;
/// let mut o = Options::default();
/// set_chown(&mut o, "nobody:").unwrap();
/// assert_eq!(o.usermap.as_deref(), Some("*:nobody"));
/// assert_eq!(o.groupmap, None);
/// assert!(o.owner && !o.group);
/// ```
pub fn set_chown(o: &mut Options, spec: &str) -> Result<()> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if !user.is_empty() {
        if o.usermap.is_some() {
            return Err(Error::Syntax(
                "--chown conflicts with prior --usermap.".into(),
            ));
        }
        o.usermap = Some(format!("*:{user}"));
        o.owner = true;
    }
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        if o.groupmap.is_some() {
            return Err(Error::Syntax(
                "--chown conflicts with prior --groupmap.".into(),
            ));
        }
        o.groupmap = Some(format!("*:{g}"));
        o.group = true;
    }
    Ok(())
}

/// The remote file of a `--files-from` value (`host:FILE` or `:FILE`, as
/// rsync's `check_for_hostspec` reads it), or `None` for a local file or
/// `-`.
///
/// ```
/// use ferrsync::engine::options::files_from_remote;
/// assert_eq!(files_from_remote(":list"), Some("list"));
/// assert_eq!(files_from_remote("host:dir/list"), Some("dir/list"));
/// assert_eq!(files_from_remote("dir/a:b"), None);
/// assert_eq!(files_from_remote("-"), None);
/// ```
#[must_use]
pub fn files_from_remote(v: &str) -> Option<&str> {
    if let Some(rest) = v.strip_prefix("rsync://") {
        return rest.split_once('/').map(|(_, p)| p);
    }
    let colon = v.find(':')?;
    if v[..colon].contains('/') {
        return None;
    }
    let path = &v[colon + 1..];
    Some(path.strip_prefix(':').unwrap_or(path))
}

/// rsync's `unsafe_symlink` (3.4.0 and later): whether the symlink `name`
/// (relative to the transfer root) with target `target` may point outside
/// the tree: absolute or empty targets, `..` components that climb above
/// the root, and any `..` that is not part of the leading run of `../`
/// (or a target ending in `/..`).
///
/// The last rule is CVE-2024-12088: `a/../x` looks like it stays at the
/// link's level, but when `a` is itself a symlink (one the same transfer
/// created, say `a -> ..`), the `..` is taken from where `a` points, and
/// the link reaches outside. Counting components cannot see that, so
/// rsync treats every such target as unsafe, and so do we.
///
/// ```
/// use ferrsync::engine::options::unsafe_symlink;
/// assert!(unsafe_symlink(b"/etc/passwd", b"l"));
/// assert!(unsafe_symlink(b"../x", b"l"));
/// assert!(!unsafe_symlink(b"../x", b"d/l"));
/// assert!(unsafe_symlink(b"../../x", b"d/l"));
/// assert!(!unsafe_symlink(b"a/b", b"l"));
/// assert!(unsafe_symlink(b"a/../b", b"l"));
/// assert!(unsafe_symlink(b"a/..", b"d/l"));
/// assert!(unsafe_symlink(b"", b"l"));
/// ```
#[must_use]
pub fn unsafe_symlink(target: &[u8], name: &[u8]) -> bool {
    if target.is_empty() || target.first() == Some(&b'/') {
        return true;
    }
    // A `..` anywhere but in the leading run of `../` (extra slashes
    // allowed), or a target ending in `/..`.
    let mut rest = target;
    while let Some(r) = rest.strip_prefix(b"../") {
        rest = r;
        while let Some(r) = rest.strip_prefix(b"/") {
            rest = r;
        }
    }
    if rest.windows(4).any(|w| w == b"/../") {
        return true;
    }
    if target.len() > 3 && target.ends_with(b"/..") {
        return true;
    }
    // The link's depth below the root: its directory components.
    let mut depth: i64 = 0;
    let parts: Vec<&[u8]> = name.split(|&b| b == b'/').collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        match *c {
            b".." => depth = 0,
            b"." | b"" => {}
            _ => depth += 1,
        }
    }
    for c in target.split(|&b| b == b'/') {
        match c {
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            b"." | b"" => {}
            _ => depth += 1,
        }
    }
    false
}

/// Parses an rsync size (`--max-size`, `--min-size`): bytes, or with a
/// suffix `K`, `M`, `G` (1024-based; `KB`, `MB`, `GB` are 1000-based), an
/// optional `+1`/`-1` adjustment.
///
/// # Errors
/// Not a size.
///
/// ```
/// use ferrsync::engine::options::parse_size;
/// assert_eq!(parse_size("--max-size", "1k").unwrap(), 1024);
/// assert_eq!(parse_size("--max-size", "2MB").unwrap(), 2_000_000);
/// assert_eq!(parse_size("--max-size", "1k-1").unwrap(), 1023);
/// assert_eq!(parse_size("--max-size", "100").unwrap(), 100);
/// ```
pub fn parse_size(opt: &str, v: &str) -> Result<u64> {
    let bad = || Error::Syntax(format!("{opt}: invalid size \"{v}\""));
    let (body, adjust) = if let Some(b) = v.strip_suffix("+1") {
        (b, 1i64)
    } else if let Some(b) = v.strip_suffix("-1") {
        (b, -1i64)
    } else {
        (v, 0)
    };
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1000.0,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return Err(bad()),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let base = (n * mult) as i64;
    u64::try_from(base + adjust).map_err(|_| bad())
}

/// Parses an rsync `--bwlimit` value: a number of KiB/s, or with a
/// suffix `B`, `K`, `M`, `G` (powers of 1024; `KB`/`MB` style suffixes are
/// powers of 1000). Returns bytes per second.
///
/// ```
/// use ferrsync::engine::options::parse_bwlimit;
/// assert_eq!(parse_bwlimit("100"), Some(102_400));
/// assert_eq!(parse_bwlimit("20m"), Some(20 << 20));
/// assert_eq!(parse_bwlimit("1.5MB"), Some(1_500_000));
/// assert_eq!(parse_bwlimit("x"), None);
/// ```
#[must_use]
pub fn parse_bwlimit(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "k" | "kib" => 1024.0,
        "b" => 1.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1000.0,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return None,
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((n * mult) as u64)
}

/// What `rsync --server ...` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerArgs {
    /// `--sender`: we send (the client pulls).
    pub sender: bool,
    /// `--daemon` with `--server`: speak the daemon protocol on stdio.
    pub daemon: bool,
    /// The `-e` capability string.
    pub capabilities: String,
    /// The transfer options.
    pub options: Options,
    /// Path words after the `.`.
    pub paths: Vec<String>,
    /// Options we accepted but do not act on.
    pub ignored: Vec<String>,
    /// `-s`: the real arguments follow on stdin (secluded args).
    pub secluded: bool,
}

/// Long options a server accepts: (name, takes a value).
const LONG: &[(&str, bool)] = &[
    ("server", false),
    ("sender", false),
    ("bwlimit", true),
    ("delay-updates", false),
    ("update", false),
    ("existing", false),
    ("ignore-non-existing", false),
    ("ignore-existing", false),
    ("max-size", true),
    ("min-size", true),
    ("backup", false),
    ("backup-dir", true),
    ("suffix", true),
    ("one-file-system", false),
    ("partial", false),
    ("inplace", false),
    ("max-delete", true),
    ("hard-links", false),
    ("safe-links", false),
    ("munge-links", false),
    ("xattrs", false),
    ("acls", false),
    ("partial-dir", true),
    ("daemon", false),
    ("delete", false),
    ("delete-before", false),
    ("delete-during", false),
    ("delete-delay", false),
    ("delete-after", false),
    ("delete-excluded", false),
    ("del", false),
    ("numeric-ids", false),
    ("checksum-choice", true),
    ("cc", true),
    ("checksum-seed", true),
    ("size-only", false),
    ("no-specials", false),
    ("specials", false),
    ("devices", false),
    ("no-devices", false),
    ("timeout", true),
    ("ignore-errors", false),
    ("log-format", true),
    ("out-format", true),
    ("stats", false),
    ("whole-file", false),
    ("no-whole-file", false),
    ("no-W", false),
    ("protocol", true),
    ("block-size", true),
    ("force", false),
    ("msgs2stderr", false),
    ("no-msgs2stderr", false),
    ("info", true),
    ("debug", true),
    ("no-r", false),
    ("no-relative", false),
    ("relative", false),
    ("no-implied-dirs", false),
    ("implied-dirs", false),
    ("files-from", true),
    ("from0", false),
    ("max-alloc", true),
    ("modify-window", true),
    ("open-noatime", false),
    ("super", false),
    ("config", true),
    ("compress", false),
    ("compress-choice", true),
    ("zc", true),
    ("compress-level", true),
    ("new-compress", false),
    ("old-compress", false),
    ("skip-compress", true),
    ("append", false),
    ("append-verify", false),
    ("no-append", false),
    ("sparse", false),
    ("preallocate", false),
    ("remove-source-files", false),
    ("remove-sent-files", false),
    ("copy-links", false),
    ("copy-unsafe-links", false),
    ("copy-dirlinks", false),
    ("keep-dirlinks", false),
    ("usermap", true),
    ("groupmap", true),
    ("chown", true),
    ("atimes", false),
    ("no-force", false),
];

/// Options that are harmless for us to accept without acting on them.
const IGNORABLE: &[&str] = &[
    "log-format",
    "out-format",
    "stats",
    "msgs2stderr",
    "no-msgs2stderr",
    "info",
    "debug",
    "no-r",
    "max-alloc",
    "super",
    "config",
    "modify-window",
];

/// Parses the argument vector of `rsync --server ...` (without argv[0]) the
/// way popt would.
///
/// # Errors
/// [`Error::Syntax`] with rsync's text for an unknown option or bad value.
pub fn parse_server_args<S: AsRef<str>>(argv: &[S]) -> Result<ServerArgs> {
    let mut sa = ServerArgs::default();
    let o = &mut sa.options;
    o.rsync_path.clear();
    let mut i = 0;
    let mut saw_dot = false;
    let mut saw_server = false;
    let mut relative: Option<bool> = None;
    while i < argv.len() {
        let a = argv[i].as_ref();
        i += 1;
        if saw_dot {
            sa.paths.push(a.to_string());
            continue;
        }
        if a == "." && saw_server {
            saw_dot = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(&(_, takes)) = LONG.iter().find(|(n, _)| *n == name) else {
                return Err(unknown(a));
            };
            let value = if takes {
                match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = argv.get(i).map(|s| s.as_ref().to_string());
                        i += 1;
                        Some(v.ok_or_else(|| Error::Syntax(format!("{a}: missing argument")))?)
                    }
                }
            } else {
                None
            };
            let val = value.unwrap_or_default();
            match name {
                "server" => saw_server = true,
                "sender" => sa.sender = true,
                "daemon" => sa.daemon = true,
                "delete" | "del" => o.delete = Some(DeleteTiming::Auto),
                "delete-before" => o.delete = Some(DeleteTiming::Before),
                "delete-during" => o.delete = Some(DeleteTiming::During),
                "delete-delay" => o.delete = Some(DeleteTiming::Delay),
                "delete-after" => o.delete = Some(DeleteTiming::After),
                "delete-excluded" => {
                    o.delete_excluded = true;
                    o.delete.get_or_insert(DeleteTiming::Auto);
                }
                "numeric-ids" => o.numeric_ids = true,
                "delay-updates" => o.delay_updates = true,
                "update" => o.update = true,
                "existing" | "ignore-non-existing" => o.existing = true,
                "ignore-existing" => o.ignore_existing = true,
                "max-size" => o.max_size = Some(parse_size(a, &val)?),
                "min-size" => o.min_size = Some(parse_size(a, &val)?),
                "modify-window" => o.modify_window = parse_num(a, &val)?,
                "backup" => o.backup = true,
                "backup-dir" => {
                    o.backup = true;
                    o.backup_dir = Some(val);
                }
                "suffix" => o.suffix = Some(val),
                "one-file-system" => o.one_file_system = true,
                "partial" => o.partial = true,
                "inplace" => o.inplace = true,
                // rsync sends -1 for a user's 0 (warn, delete nothing).
                "max-delete" => {
                    let n: i64 = parse_num(a, &val)?;
                    o.max_delete = Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX));
                }
                "hard-links" => o.hard_links = true,
                "safe-links" => o.safe_links = true,
                "munge-links" => o.munge_links = true,
                "xattrs" => o.xattrs = o.xattrs.saturating_add(1),
                "acls" => {
                    o.acls = true;
                    o.perms = true;
                }
                "force" => o.force = true,
                "no-force" => o.force = false,
                // A server counts: `--append --append` is --append-verify.
                "append" => {
                    o.append = o.append.saturating_add(1).min(2);
                    o.inplace = true;
                }
                "append-verify" => {
                    o.append = 2;
                    o.inplace = true;
                }
                "no-append" => o.append = 0,
                "sparse" => o.sparse = true,
                "preallocate" => o.preallocate = true,
                "remove-source-files" | "remove-sent-files" => o.remove_source_files = true,
                "copy-links" => o.copy_links = true,
                "copy-unsafe-links" => o.copy_unsafe_links = true,
                "copy-dirlinks" => o.copy_dirlinks = true,
                "keep-dirlinks" => o.keep_dirlinks = true,
                "usermap" => {
                    o.usermap = Some(val);
                    o.owner = true;
                }
                "groupmap" => {
                    o.groupmap = Some(val);
                    o.group = true;
                }
                "chown" => set_chown(o, &val)?,
                "atimes" => o.atimes = o.atimes.saturating_add(1),
                "open-noatime" => o.open_noatime = true,
                "partial-dir" => {
                    o.partial = true;
                    o.partial_dir = Some(val);
                }
                "bwlimit" => o.bwlimit = parse_bwlimit(&val).filter(|b| *b > 0),
                "checksum-choice" | "cc" => o.checksum_choice = Some(val),
                "checksum-seed" => o.checksum_seed = Some(parse_num(a, &val)?),
                "size-only" => o.size_only = true,
                "no-specials" => o.specials = false,
                "specials" => o.specials = true,
                "devices" => o.devices = true,
                "no-devices" => o.devices = false,
                "timeout" => o.timeout = parse_num(a, &val)?,
                "ignore-errors" => o.ignore_errors = true,
                "whole-file" => o.whole_file = Some(true),
                "no-whole-file" | "no-W" => o.whole_file = Some(false),
                "protocol" => o.protocol = Some(parse_num(a, &val)?),
                "block-size" => o.block_size = Some(parse_num(a, &val)?),
                "compress" => o.compress = true,
                "compress-choice" | "zc" => {
                    o.compress = true;
                    o.compress_choice = Some(val);
                }
                "compress-level" => o.compress_level = Some(parse_num(a, &val)?),
                "new-compress" => {
                    o.compress = true;
                    o.compress_choice = Some("zlibx".into());
                }
                "old-compress" => {
                    o.compress = true;
                    o.compress_choice = Some("zlib".into());
                }
                "skip-compress" => o.skip_compress = Some(val),
                "relative" => relative = Some(true),
                "no-relative" => relative = Some(false),
                "implied-dirs" => o.implied_dirs = true,
                "no-implied-dirs" => o.implied_dirs = false,
                "files-from" => o.files_from = Some(val),
                "from0" => o.from0 = true,
                n if IGNORABLE.contains(&n) => sa.ignored.push(a.to_string()),
                _ => return Err(unknown(a)),
            }
            continue;
        }
        if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (pos, ch) in cluster.char_indices() {
                let rest = &cluster[pos + ch.len_utf8()..];
                match ch {
                    'v' => o.verbose = o.verbose.saturating_add(1),
                    'q' => o.quiet = true,
                    'n' => o.dry_run = true,
                    'l' => o.links = true,
                    'd' => o.dirs = true,
                    'W' => o.whole_file = Some(true),
                    'o' => o.owner = true,
                    'g' => o.group = true,
                    'D' => {
                        o.devices = true;
                        o.specials = true;
                    }
                    't' => o.times = true,
                    'p' => o.perms = true,
                    'r' => o.recursive = true,
                    'c' => o.checksum = true,
                    'C' => o.cvs_exclude = true,
                    'I' => o.ignore_times = true,
                    'O' => o.omit_dir_times = true,
                    'i' => o.itemize = o.itemize.saturating_add(1),
                    's' => sa.secluded = true,
                    'z' => o.compress = true,
                    'u' => o.update = true,
                    'H' => o.hard_links = true,
                    'X' => o.xattrs = o.xattrs.saturating_add(1),
                    'A' => {
                        o.acls = true;
                        o.perms = true;
                    }
                    'S' => o.sparse = true,
                    'L' => o.copy_links = true,
                    'k' => o.copy_dirlinks = true,
                    'K' => o.keep_dirlinks = true,
                    'U' => {
                        o.atimes = o.atimes.saturating_add(1);
                        if o.atimes > 1 {
                            o.open_noatime = true;
                        }
                    }
                    'b' => o.backup = true,
                    'x' => o.one_file_system = true,
                    'R' => relative = Some(true),
                    'e' | 'B' | '@' => {
                        let val = if rest.is_empty() {
                            let v = argv.get(i).map(|s| s.as_ref().to_string());
                            i += 1;
                            v.ok_or_else(|| Error::Syntax(format!("-{ch}: missing argument")))?
                        } else {
                            rest.to_string()
                        };
                        match ch {
                            'e' => sa.capabilities = val,
                            'B' => o.block_size = Some(parse_num("-B", &val)?),
                            _ => o.modify_window = parse_num("-@", &val)?,
                        }
                        break;
                    }
                    // Letters that only matter to features we do not have
                    // yet are refused rather than silently ignored.
                    _ => return Err(unknown(&format!("-{ch}"))),
                }
            }
            continue;
        }
        if !saw_server {
            return Err(Error::Syntax(format!(
                "unexpected argument before --server: {a}"
            )));
        }
        // A path word before the ".": rsync would treat it as a path too.
        sa.paths.push(a.to_string());
    }
    if !saw_server {
        return Err(Error::Syntax("--server must be given".into()));
    }
    // As options.c: --files-from implies -R unless told otherwise, and
    // --dirs; -R off means no implied directories either.
    let o = &mut sa.options;
    o.relative = relative.unwrap_or(o.files_from.is_some());
    if !o.relative {
        o.implied_dirs = false;
    }
    if let Some(ff) = &o.files_from {
        if files_from_remote(ff).is_some() && ff != "-" {
            return Err(Error::Syntax(
                "The --files-from sent to the server cannot specify a host.".into(),
            ));
        }
    }
    Ok(sa)
}

fn unknown(opt: &str) -> Error {
    Error::Syntax(format!("{opt}: unknown option"))
}

fn parse_num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| Error::Syntax(format!("{opt}: invalid numeric value \"{v}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_symlink_follows_rsync_3_4_rules() {
        // (target, link name, unsafe?) as rsync 3.4+'s unsafe_symlink.
        let cases: &[(&str, &str, bool)] = &[
            ("x", "l", false),
            ("a/b/c", "l", false),
            ("./x", "l", false),
            ("../x", "d/l", false),
            ("..//..///x", "d/e/l", false),
            ("../../x", "d/e/l", false),
            ("../../../x", "d/e/l", true),
            ("..", "d/l", false),
            ("../..", "d/e/l", true),
            ("../", "d/l", false),
            ("a/../x", "l", true),
            ("a/../x", "d/e/l", true),
            ("./../x", "d/l", true),
            ("../a/../x", "d/e/l", true),
            ("a/..", "d/l", true),
            ("a/../", "d/l", true),
            ("a/..b/c", "l", false),
            ("a/b..", "l", false),
            ("deep/a/../outside", "l", true),
            ("", "l", true),
            ("/etc", "d/l", true),
            ("x", "../l", false),
            ("../x", "../d/l", false),
        ];
        for &(t, n, want) in cases {
            assert_eq!(
                unsafe_symlink(t.as_bytes(), n.as_bytes()),
                want,
                "{t:?} as {n:?}"
            );
        }
    }

    #[test]
    fn archive_pull_args_match_rsync() {
        // rsync -a host:src/ dst/ sends "-logDtpre.iLsfxCIvu"; we leave out
        // the letters for features we do not offer (i, s, I).
        let mut o = Options::archive();
        o.verbose = 0;
        assert_eq!(
            o.server_args(true),
            ["--server", "--sender", "-logDtpre.LfxCvu"]
        );
        o.delete = Some(DeleteTiming::Auto);
        o.numeric_ids = true;
        assert_eq!(
            o.server_args(false),
            ["--server", "-logDtpre.LfxCvu", "--delete", "--numeric-ids"]
        );
    }

    #[test]
    fn repeated_counting_letters_saturate() {
        // A fuzz find (daemon_argv): 300 `i` letters overflowed a u8.
        let many = format!("-{}{}", "i".repeat(300), "v".repeat(300));
        let sa = parse_server_args(&["--server", many.as_str(), ".", "d"]).unwrap();
        assert_eq!(sa.options.itemize, u8::MAX);
        assert_eq!(sa.options.verbose, u8::MAX);
        let argv: Vec<String> =
            ["-".to_string() + &"i".repeat(300), "a".into(), "b".into()].to_vec();
        let ca = crate::engine::client_args::parse_client_args(&argv).unwrap();
        assert_eq!(ca.opts.itemize, u8::MAX);
    }

    #[test]
    fn parse_rsync_argv() {
        let rows: &[(&[&str], bool, &str, bool)] = &[
            (
                &["--server", "--sender", "-logDtpre.iLsfxCIvu", ".", "src/"],
                true,
                ".iLsfxCIvu",
                true,
            ),
            (
                &[
                    "--server",
                    "-vlogDtpre.iLsfxCIvu",
                    "--delete-during",
                    ".",
                    "dst/",
                ],
                false,
                ".iLsfxCIvu",
                true,
            ),
            (
                &["--server", "-logDtpr", "--checksum-choice", "md5", ".", "d"],
                false,
                "",
                true,
            ),
        ];
        for (argv, sender, caps, rec) in rows {
            let sa = parse_server_args(argv).unwrap();
            assert_eq!(sa.sender, *sender);
            assert_eq!(sa.capabilities, *caps);
            assert_eq!(sa.options.recursive, *rec);
            assert!(sa.options.owner && sa.options.devices);
            assert_eq!(sa.paths.len(), 1);
        }
        let sa = parse_server_args(&["--server", "-logDtpr", "--checksum-choice", "md5", ".", "d"])
            .unwrap();
        assert_eq!(sa.options.checksum_choice.as_deref(), Some("md5"));
        assert!(parse_server_args(&["--server", "--frobnicate", "."]).is_err());
        assert!(parse_server_args(&["--server", "-Z", "."]).is_err());
    }

    #[test]
    fn xattrs_travel_in_the_cluster() {
        // rsync -aX / -aXX host:src/ dst/ send "-logDtpXre..." / "-logDtpXXre...".
        for (n, cluster) in [(1u8, "-logDtpXre.LfxCvu"), (2, "-logDtpXXre.LfxCvu")] {
            let mut o = Options::archive();
            o.xattrs = n;
            assert_eq!(o.server_args(true), ["--server", "--sender", cluster]);
            let sa = parse_server_args(&["--server", "--sender", cluster, ".", "src/"]).unwrap();
            assert_eq!(sa.options.xattrs, n);
        }
        let sa = parse_server_args(&["--server", "-r", "--xattrs", ".", "d"]).unwrap();
        assert_eq!(sa.options.xattrs, 1);
    }
}
