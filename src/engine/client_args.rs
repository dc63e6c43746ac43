//! rsync's client command line: options into [`Options`], the rest
//! (sources, destination, daemon settings) kept apart.
//!
//! Layer: engine (config). Pure; used by the `ferrsync` binary and by the
//! task layer for a task's extra options, so there is one parser.
//! Mirrors upstream options.c (`long_options`, `parse_arguments`) for the
//! options we support.

use super::options::{DeleteTiming, Options};
use crate::error::Error;
use crate::filter::FilterArg;

pub(crate) fn set_archive(o: &mut Options) {
    o.recursive = true;
    o.links = true;
    o.perms = true;
    o.times = true;
    o.group = true;
    o.owner = true;
    o.devices = true;
    o.specials = true;
}

/// What an rsync command line asks for.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientArgs {
    /// The transfer options.
    pub opts: Options,
    /// `-e` / `--rsh`.
    pub rsh: Option<String>,
    /// `--rsync-path` was given.
    pub rsync_path_given: bool,
    /// `--server`: `args` holds the words from `--server` on.
    pub server: bool,
    /// The words that are not options (sources and destination), or the
    /// server words.
    pub args: Vec<String>,
    /// Daemon-related options.
    pub daemon: DaemonArgs,
    /// `-h` / `--help` came first: parsing stopped there.
    pub help: bool,
    /// `--version` came first: parsing stopped there.
    pub version: bool,
    /// Built-in SSH options (`--ssh-key`, `--known-hosts`,
    /// `--host-key-policy`, `--ssh-server`, `--listen`, ...), by name, in
    /// command-line order; the binary interprets them.
    pub ssh: Vec<(String, String)>,
}

/// The long options of the built-in SSH client and endpoint (they take a
/// value, except `ssh-server`).
pub const SSH_OPTIONS: &[&str] = &[
    "ssh-key",
    "ssh-passphrase-file",
    "known-hosts",
    "host-key-policy",
    "ssh-server",
    "listen",
    "host-key",
    "authorized-keys",
    "root",
];

/// Daemon-related options (`--daemon` mode and the daemon client).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DaemonArgs {
    /// `--daemon`.
    pub run: bool,
    /// `--config=FILE`.
    pub config: Option<String>,
    /// `--port=PORT`.
    pub port: Option<u16>,
    /// `--address=ADDR`.
    pub address: Option<String>,
    /// `--no-detach`.
    pub no_detach: bool,
    /// `--password-file=FILE`.
    pub password_file: Option<String>,
    /// `--no-motd`.
    pub no_motd: bool,
    /// `--log-file=FILE`.
    pub log_file: Option<String>,
}

fn syntax(msg: String) -> Error {
    Error::Syntax(msg)
}

fn num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| syntax(format!("invalid value for {opt}: {v}")))
}

/// Parses an rsync command line (without the program name).
///
/// # Errors
/// [`Error::Syntax`] for an unknown option or a malformed value.
pub fn parse_client_args(argv: &[String]) -> Result<ClientArgs, Error> {
    parse_client_args_onto(Options::default(), argv)
}

/// [`parse_client_args`] starting from `base` instead of the defaults (the
/// options in `argv` are applied on top).
///
/// # Errors
/// As [`parse_client_args`].
#[allow(clippy::too_many_lines)]
pub fn parse_client_args_onto(base: Options, argv: &[String]) -> Result<ClientArgs, Error> {
    let mut o = base;
    let mut d = DaemonArgs::default();
    let mut ssh: Vec<(String, String)> = Vec::new();
    let mut rsync_path_given = false;
    let mut cli_rsh = None;
    let mut f_count = 0;
    let mut relative: Option<bool> = None;
    let mut explicit_r = false;
    let mut files_from_given = false;
    let mut args = Vec::new();
    let mut i = 0;
    let mut no_more = false;
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if no_more || a == "-" || !a.starts_with('-') {
            args.push(a.clone());
            continue;
        }
        if a == "--" {
            no_more = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let mut value = || -> Result<String, Error> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                let v = argv
                    .get(i)
                    .cloned()
                    .ok_or_else(|| syntax(format!("--{name}: missing argument")))?;
                i += 1;
                Ok(v)
            };
            match name {
                "server" => {
                    return Ok(ClientArgs {
                        opts: o,
                        server: true,
                        // Options before `--server` (e.g. `--config=` in
                        // an `--rsync-path`) are ours, not the server's.
                        args: argv[i - 1..].to_vec(),
                        daemon: d,
                        ssh,
                        rsync_path_given,
                        ..ClientArgs::default()
                    });
                }
                "daemon" => d.run = true,
                "config" => d.config = Some(value()?),
                "port" => d.port = Some(num("--port", &value()?)?),
                "address" => d.address = Some(value()?),
                "no-detach" => d.no_detach = true,
                "detach" => d.no_detach = false,
                "password-file" => d.password_file = Some(value()?),
                "no-motd" => d.no_motd = true,
                "log-file" => d.log_file = Some(value()?),
                "verbose" => o.verbose = o.verbose.saturating_add(1),
                "quiet" => o.quiet = true,
                "archive" => set_archive(&mut o),
                "recursive" => {
                    o.recursive = true;
                    explicit_r = true;
                }
                "no-recursive" | "no-r" => {
                    o.recursive = false;
                    explicit_r = false;
                }
                "relative" => relative = Some(true),
                "no-relative" | "no-R" => relative = Some(false),
                "implied-dirs" | "i-d" => o.implied_dirs = true,
                "no-implied-dirs" | "no-i-d" => o.implied_dirs = false,
                "files-from" => {
                    o.files_from = Some(value()?);
                    files_from_given = true;
                }
                "from0" => o.from0 = true,
                "trust-sender" => o.trust_sender = true,
                "no-from0" => o.from0 = false,
                "dirs" => o.dirs = true,
                "links" => o.links = true,
                "perms" => o.perms = true,
                "times" => o.times = true,
                "group" => o.group = true,
                "owner" => o.owner = true,
                "devices" => o.devices = true,
                "specials" => o.specials = true,
                "no-devices" => o.devices = false,
                "no-specials" => o.specials = false,
                "omit-dir-times" => o.omit_dir_times = true,
                "dry-run" => o.dry_run = true,
                "whole-file" => o.whole_file = Some(true),
                "no-whole-file" | "no-W" => o.whole_file = Some(false),
                "checksum" => o.checksum = true,
                "size-only" => o.size_only = true,
                "ignore-times" => o.ignore_times = true,
                "delete" | "del" => o.delete = Some(DeleteTiming::Auto),
                "delete-before" => o.delete = Some(DeleteTiming::Before),
                "delete-during" => o.delete = Some(DeleteTiming::During),
                "delete-delay" => o.delete = Some(DeleteTiming::Delay),
                "delete-after" => o.delete = Some(DeleteTiming::After),
                "numeric-ids" => o.numeric_ids = true,
                "compress" => o.compress = true,
                "compress-choice" | "zc" => {
                    o.compress = true;
                    o.compress_choice = Some(value()?);
                }
                "compress-level" => o.compress_level = Some(num("--compress-level", &value()?)?),
                "skip-compress" => o.skip_compress = Some(value()?),
                "new-compress" => {
                    o.compress = true;
                    o.compress_choice = Some("zlibx".into());
                }
                "old-compress" => {
                    o.compress = true;
                    o.compress_choice = Some("zlib".into());
                }
                "ignore-errors" => o.ignore_errors = true,
                "delay-updates" => o.delay_updates = true,
                "update" => o.update = true,
                "existing" | "ignore-non-existing" => o.existing = true,
                "ignore-existing" => o.ignore_existing = true,
                "max-size" => {
                    o.max_size = Some(super::options::parse_size("--max-size", &value()?)?);
                }
                "min-size" => {
                    o.min_size = Some(super::options::parse_size("--min-size", &value()?)?);
                }
                "modify-window" => o.modify_window = num("--modify-window", &value()?)?,
                "backup" => o.backup = true,
                "backup-dir" => {
                    o.backup = true;
                    o.backup_dir = Some(value()?);
                }
                "suffix" => o.suffix = Some(value()?),
                "one-file-system" => o.one_file_system = true,
                "partial" => o.partial = true,
                "inplace" => o.inplace = true,
                "hard-links" => o.hard_links = true,
                "xattrs" => o.xattrs = o.xattrs.saturating_add(1),
                "acls" => {
                    o.acls = true;
                    o.perms = true;
                }
                "no-acls" | "no-A" => o.acls = false,
                "safe-links" => o.safe_links = true,
                "munge-links" => o.munge_links = true,
                "max-delete" => o.max_delete = Some(num("--max-delete", &value()?)?),
                "force" => o.force = true,
                "no-force" => o.force = false,
                "append" => {
                    o.append = 1;
                    o.inplace = true;
                }
                "append-verify" => {
                    o.append = 2;
                    o.inplace = true;
                }
                "no-append" => o.append = 0,
                "sparse" => o.sparse = true,
                "no-sparse" => o.sparse = false,
                "preallocate" => o.preallocate = true,
                "remove-source-files" => o.remove_source_files = true,
                "copy-links" => o.copy_links = true,
                "copy-unsafe-links" => o.copy_unsafe_links = true,
                "copy-dirlinks" => o.copy_dirlinks = true,
                "keep-dirlinks" => o.keep_dirlinks = true,
                "usermap" => {
                    o.usermap = Some(value()?);
                    o.owner = true;
                }
                "groupmap" => {
                    o.groupmap = Some(value()?);
                    o.group = true;
                }
                "chown" => super::options::set_chown(&mut o, &value()?)?,
                "atimes" => {
                    o.atimes = o.atimes.saturating_add(1);
                    if o.atimes > 1 {
                        o.open_noatime = true;
                    }
                }
                "no-atimes" => o.atimes = 0,
                "open-noatime" => o.open_noatime = true,
                "no-open-noatime" => o.open_noatime = false,
                "partial-dir" => {
                    o.partial = true;
                    o.partial_dir = Some(value()?);
                }
                "bwlimit" => {
                    let v = value()?;
                    o.bwlimit = Some(
                        super::options::parse_bwlimit(&v)
                            .ok_or_else(|| syntax(format!("--bwlimit={v}: invalid rate")))?,
                    )
                    .filter(|b| *b > 0);
                }
                "filter" => o.filters.push(FilterArg::Filter(value()?)),
                "exclude" => o.filters.push(FilterArg::Exclude(value()?)),
                "include" => o.filters.push(FilterArg::Include(value()?)),
                "exclude-from" => o.filters.push(FilterArg::ExcludeFrom(value()?)),
                "include-from" => o.filters.push(FilterArg::IncludeFrom(value()?)),
                "cvs-exclude" => o.cvs_exclude = true,
                "delete-excluded" => {
                    o.delete_excluded = true;
                    o.delete.get_or_insert(DeleteTiming::Auto);
                }
                "chmod" => {
                    let v = value()?;
                    o.chmod = Some(match o.chmod.take() {
                        Some(prev) => format!("{prev},{v}"),
                        None => v,
                    });
                }
                "block-size" => o.block_size = Some(num("--block-size", &value()?)?),
                "checksum-choice" | "cc" => o.checksum_choice = Some(value()?),
                "checksum-seed" => o.checksum_seed = Some(num("--checksum-seed", &value()?)?),
                "protocol" => o.protocol = Some(num("--protocol", &value()?)?),
                "rsh" => cli_rsh = Some(value()?),
                "rsync-path" => {
                    o.rsync_path = value()?;
                    rsync_path_given = true;
                }
                "timeout" => o.timeout = num("--timeout", &value()?)?,
                "itemize-changes" => o.itemize = o.itemize.saturating_add(1),
                "stats" => o.stats = true,
                "progress" => o.progress = true,
                "help" => {
                    return Ok(ClientArgs {
                        opts: o,
                        help: true,
                        ..ClientArgs::default()
                    });
                }
                "version" => {
                    return Ok(ClientArgs {
                        opts: o,
                        version: true,
                        ..ClientArgs::default()
                    });
                }
                n if SSH_OPTIONS.contains(&n) => {
                    let v = if n == "ssh-server" {
                        String::new()
                    } else {
                        value()?
                    };
                    ssh.push((n.to_string(), v));
                }
                _ => return Err(syntax(format!("--{name}: unknown option"))),
            }
            continue;
        }
        let cluster = &a[1..];
        for (pos, ch) in cluster.char_indices() {
            let rest = &cluster[pos + ch.len_utf8()..];
            let mut take = || -> Result<String, Error> {
                if !rest.is_empty() {
                    return Ok(rest.to_string());
                }
                let v = argv
                    .get(i)
                    .cloned()
                    .ok_or_else(|| syntax(format!("-{ch}: missing argument")))?;
                i += 1;
                Ok(v)
            };
            match ch {
                'v' => o.verbose = o.verbose.saturating_add(1),
                'q' => o.quiet = true,
                'a' => set_archive(&mut o),
                'r' => {
                    o.recursive = true;
                    explicit_r = true;
                }
                'R' => relative = Some(true),
                '0' => o.from0 = true,
                'd' => o.dirs = true,
                'l' => o.links = true,
                'p' => o.perms = true,
                't' => o.times = true,
                'g' => o.group = true,
                'o' => o.owner = true,
                'D' => {
                    o.devices = true;
                    o.specials = true;
                }
                'O' => o.omit_dir_times = true,
                'n' => o.dry_run = true,
                'W' => o.whole_file = Some(true),
                'c' => o.checksum = true,
                'I' => o.ignore_times = true,
                'i' => o.itemize = o.itemize.saturating_add(1),
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
                'P' => {
                    o.partial = true;
                    o.progress = true;
                }
                'b' => o.backup = true,
                'x' => o.one_file_system = true,
                'C' => o.cvs_exclude = true,
                'F' => {
                    f_count += 1;
                    match f_count {
                        1 => o.filters.push(FilterArg::Filter(": /.rsync-filter".into())),
                        2 => o.filters.push(FilterArg::Filter("- .rsync-filter".into())),
                        _ => {}
                    }
                }
                'f' => {
                    o.filters.push(FilterArg::Filter(take()?));
                    break;
                }
                'z' => {
                    if o.compress && o.compress_choice.is_none() {
                        o.compress_choice = Some("zlibx".into());
                    }
                    o.compress = true;
                }
                'h' => {
                    return Ok(ClientArgs {
                        opts: o,
                        help: true,
                        ..ClientArgs::default()
                    });
                }
                'e' => {
                    cli_rsh = Some(take()?);
                    break;
                }
                'B' => {
                    o.block_size = Some(num("-B", &take()?)?);
                    break;
                }
                _ => return Err(syntax(format!("-{ch}: unknown option"))),
            }
        }
    }
    // options.c: --files-from turns off the recursion -a implies (not an
    // explicit -r) and implies -R unless --no-relative was given.
    if files_from_given && !explicit_r {
        o.recursive = false;
    }
    if let Some(r) = relative {
        o.relative = r;
    } else if files_from_given {
        o.relative = true;
    }
    Ok(ClientArgs {
        opts: o,
        rsh: cli_rsh,
        rsync_path_given,
        args,
        daemon: d,
        ssh,
        ..ClientArgs::default()
    })
}
