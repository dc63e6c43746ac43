//! Transfer options: what a user asks for, how they become the argument
//! vector of `rsync --server`, and how a server reads them back.
//!
//! Layer: engine (config). Uses nothing below but plain data.
//! Mirrors upstream options.c `server_options` (the order of letters and
//! long options) and popt's parsing rules for the server side.

use crate::error::{Error, Result};

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
    /// `--timeout=SECONDS` (0 = none)
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
            filters: Vec::new(),
            cvs_exclude: false,
            delete_excluded: false,
            daemon_filters: Vec::new(),
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
        if client_sends && self.omit_dir_times {
            c.push('O');
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
        if self.perms {
            c.push('p');
        }
        if self.recursive {
            c.push('r');
        }
        if self.checksum {
            c.push('c');
        }
        if self.cvs_exclude {
            c.push('C');
        }
        if self.ignore_times {
            c.push('I');
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
            if self.size_only {
                args.push("--size-only".into());
            }
        }
        if let Some(s) = self.checksum_seed.filter(|s| *s != 0) {
            args.push(format!("--checksum-seed={s}"));
        }
        if self.ignore_errors {
            args.push("--ignore-errors".into());
        }
        if self.numeric_ids {
            args.push("--numeric-ids".into());
        }
        args
    }
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
    ("no-implied-dirs", false),
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
];

/// Options that are harmless for us to accept without acting on them.
const IGNORABLE: &[&str] = &[
    "log-format",
    "out-format",
    "stats",
    "force",
    "msgs2stderr",
    "no-msgs2stderr",
    "info",
    "debug",
    "no-r",
    "no-relative",
    "no-implied-dirs",
    "max-alloc",
    "open-noatime",
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
                n if IGNORABLE.contains(&n) => sa.ignored.push(a.to_string()),
                _ => return Err(unknown(a)),
            }
            continue;
        }
        if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (pos, ch) in cluster.char_indices() {
                let rest = &cluster[pos + ch.len_utf8()..];
                match ch {
                    'v' => o.verbose += 1,
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
                    'i' => o.itemize += 1,
                    's' => sa.secluded = true,
                    'z' => o.compress = true,
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
                            _ => sa.ignored.push(format!("-@{val}")),
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
}
