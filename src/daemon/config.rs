//! `rsyncd.conf`: parsing, the module table and rendering back.
//!
//! Layer: config. Pure except [`DaemonConfig::load`], which reads the file.
//! Mirrors upstream params.c (the line syntax), loadparm.c (parameter
//! lookup, booleans, sections, global defaults) and daemon-parm.txt (the
//! parameter list and defaults of rsync 3.5.0).
//!
//! Syntax, as rsync reads it: `[name]` starts a module (`[global]` returns
//! to the global section, which is also where lines before any header go);
//! `key = value` lines set parameters; keys ignore case and white space
//! (`read only`, `readonly` and `Read Only` are one key); a line whose first
//! non-blank character is `#` or `;` is a comment (elsewhere these
//! characters are part of the value); a `\` at the end of a line continues
//! it. Local parameters set in the global section become the defaults of
//! the modules that follow.
//!
//! ```
//! use ferrsync::daemon::config::DaemonConfig;
//! let text = "read only = no\n[pub]\n  path = /srv/pub/\n  comment = files\n";
//! let (cfg, warnings) = DaemonConfig::parse(text).unwrap();
//! assert!(warnings.is_empty());
//! let m = cfg.module("pub").unwrap();
//! assert_eq!((m.path.to_str(), m.read_only), (Some("/srv/pub"), false));
//! assert_eq!(DaemonConfig::parse(&cfg.to_conf_string()).unwrap().0, cfg);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::hosts::HostList;
use super::secrets::{AuthUser, c_isspace, parse_auth_users, render_auth_users};

/// rsync's default `lock file`.
pub const DEFAULT_LOCK_FILE: &str = "/var/run/rsyncd.lock";
/// rsync's default `log format`.
pub const DEFAULT_LOG_FORMAT: &str = "%o %h [%a] %m (%u) %f %l";
/// The port a daemon listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 873;

/// rsync 3.5.0's default `dont compress` suffixes (rsync.1 `--skip-compress`).
const DEFAULT_DONT_COMPRESS: &[&str] = &[
    "3g2", "3gp", "7z", "aac", "ace", "apk", "avi", "bz2", "deb", "dmg", "ear", "f4v", "flac",
    "flv", "gpg", "gz", "iso", "jar", "jpeg", "jpg", "lrz", "lz", "lz4", "lzma", "lzo", "m1a",
    "m1v", "m2a", "m2ts", "m2v", "m4a", "m4b", "m4p", "m4r", "m4v", "mka", "mkv", "mov", "mp1",
    "mp2", "mp3", "mp4", "mpa", "mpeg", "mpg", "mpv", "mts", "odb", "odf", "odg", "odi", "odm",
    "odp", "ods", "odt", "oga", "ogg", "ogm", "ogv", "ogx", "opus", "otg", "oth", "otp", "ots",
    "ott", "oxt", "png", "qt", "rar", "rpm", "rz", "rzip", "spx", "squashfs", "sxc", "sxd", "sxg",
    "sxm", "sxw", "sz", "tbz", "tbz2", "tgz", "tlz", "ts", "txz", "tzo", "vob", "war", "webm",
    "webp", "xz", "z", "zip", "zst",
];

/// rsync's default `dont compress` patterns (`*.gz`, ...).
#[must_use]
pub fn default_dont_compress() -> Vec<String> {
    DEFAULT_DONT_COMPRESS
        .iter()
        .map(|s| format!("*.{s}"))
        .collect()
}

/// Server-wide settings (the global section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// `port` (default 873; rsync's `--port` overrides it).
    pub port: u16,
    /// `address`: the address to listen on.
    pub address: Option<String>,
    /// `motd file`.
    pub motd_file: Option<PathBuf>,
    /// `pid file`.
    pub pid_file: Option<PathBuf>,
    /// `log file` (set in the global section).
    pub log_file: Option<PathBuf>,
    /// `reverse lookup` (set in the global section; default yes).
    pub reverse_lookup: bool,
    /// Global parameters rsync knows that ferrsync accepts but ignores
    /// (`daemon chroot`, `socket options`, ...), by rsync's name.
    pub extra: BTreeMap<String, String>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            port: DEFAULT_PORT,
            address: None,
            motd_file: None,
            pid_file: None,
            log_file: None,
            reverse_lookup: true,
            extra: BTreeMap::new(),
        }
    }
}

/// One `[module]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // mirrors rsyncd.conf's yes/no parameters
pub struct Module {
    /// The section name (what clients ask for).
    pub name: String,
    /// `path`, trailing slashes removed; empty when unset (see
    /// [`Module::require_path`]).
    pub path: PathBuf,
    /// `comment`, shown in the module listing.
    pub comment: String,
    /// `read only` (default yes).
    pub read_only: bool,
    /// `write only`.
    pub write_only: bool,
    /// `list` (default yes).
    pub list: bool,
    /// `uid`, a name or number as written.
    pub uid: Option<String>,
    /// `gid`, names or numbers as written.
    pub gid: Option<String>,
    /// `max connections` (0: unlimited).
    pub max_connections: u32,
    /// `lock file`.
    pub lock_file: PathBuf,
    /// `hosts allow`.
    pub hosts_allow: HostList,
    /// `hosts deny`.
    pub hosts_deny: HostList,
    /// `auth users`; empty means no authentication.
    pub auth_users: Vec<AuthUser>,
    /// `secrets file`.
    pub secrets_file: Option<PathBuf>,
    /// `strict modes` (default yes).
    pub strict_modes: bool,
    /// `auth digest`: the weakest digest accepted.
    pub auth_digest: Option<String>,
    /// `refuse options`, one word each.
    pub refuse_options: Vec<String>,
    /// `timeout` in seconds (0: none).
    pub timeout: u32,
    /// `use chroot` (default yes).
    pub use_chroot: bool,
    /// `numeric ids`.
    pub numeric_ids: bool,
    /// `incoming chmod` rules.
    pub incoming_chmod: Option<String>,
    /// `outgoing chmod` rules.
    pub outgoing_chmod: Option<String>,
    /// `exclude` patterns, one word each.
    pub exclude: Vec<String>,
    /// `include` patterns, one word each.
    pub include: Vec<String>,
    /// `filter`: the rule string as written (one element when set; rules
    /// inside it are separated as rsync's filter parser does).
    pub filter: Vec<String>,
    /// `dont compress` patterns (rsync's default list when unset).
    pub dont_compress: Vec<String>,
    /// `transfer logging`.
    pub transfer_logging: bool,
    /// `log format`.
    pub log_format: String,
    /// `munge symlinks` (`None`: rsync's automatic choice).
    pub munge_symlinks: Option<bool>,
    /// `fake super`.
    pub fake_super: bool,
    /// Module parameters rsync knows that ferrsync accepts but ignores
    /// (`pre-xfer exec`, `temp dir`, ...), by rsync's name.
    pub extra: BTreeMap<String, String>,
}

impl Module {
    /// A module with rsync's defaults.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Module {
            name: name.into(),
            path: path.into(),
            comment: String::new(),
            read_only: true,
            write_only: false,
            list: true,
            uid: None,
            gid: None,
            max_connections: 0,
            lock_file: PathBuf::from(DEFAULT_LOCK_FILE),
            hosts_allow: HostList::default(),
            hosts_deny: HostList::default(),
            auth_users: Vec::new(),
            secrets_file: None,
            strict_modes: true,
            auth_digest: None,
            refuse_options: Vec::new(),
            timeout: 0,
            use_chroot: true,
            numeric_ids: false,
            incoming_chmod: None,
            outgoing_chmod: None,
            exclude: Vec::new(),
            include: Vec::new(),
            filter: Vec::new(),
            dont_compress: default_dont_compress(),
            transfer_logging: false,
            log_format: DEFAULT_LOG_FORMAT.to_owned(),
            munge_symlinks: None,
            fake_super: false,
            extra: BTreeMap::new(),
        }
    }

    /// The module's path, or the error rsync reports when a client asks
    /// for a module without one (`@ERROR: no path setting.`).
    ///
    /// # Errors
    /// [`ConfigError::NoPath`] when `path` is empty.
    pub fn require_path(&self) -> Result<&Path, ConfigError> {
        if self.path.as_os_str().is_empty() {
            Err(ConfigError::NoPath {
                module: self.name.clone(),
            })
        } else {
            Ok(&self.path)
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The global section.
    pub global: Global,
    /// The modules, in file order.
    pub modules: Vec<Module>,
}

/// Something in the file that rsync would accept but log about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// 1-based line number (of the first line of a continued line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A configuration we refuse to run with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("unable to open config file \"{}\": {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line that cannot be read at all.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A parameter whose value does not fit its type.
    #[error("line {line}: bad value {value:?} for \"{key}\": {reason}")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The parameter.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A client asked for a module without `path` (checked at use, as
    /// rsync does; parsing only warns).
    #[error("no path setting.")]
    NoPath {
        /// The module.
        module: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Global,
    Local,
}

/// Every parameter of rsync 3.5.0 (daemon-parm.txt), by its public name.
const PARAMS: &[(&str, Class)] = &[
    ("address", Class::Global),
    ("daemon chroot", Class::Global),
    ("daemon gid", Class::Global),
    ("daemon uid", Class::Global),
    ("motd file", Class::Global),
    ("pid file", Class::Global),
    ("proxy protocol hosts", Class::Global),
    ("socket options", Class::Global),
    ("listen backlog", Class::Global),
    ("port", Class::Global),
    ("proxy protocol", Class::Global),
    ("auth digest", Class::Local),
    ("auth users", Class::Local),
    ("charset", Class::Local),
    ("comment", Class::Local),
    ("dont compress", Class::Local),
    ("early exec", Class::Local),
    ("exclude", Class::Local),
    ("exclude from", Class::Local),
    ("filter", Class::Local),
    ("gid", Class::Local),
    ("hosts allow", Class::Local),
    ("hosts deny", Class::Local),
    ("include", Class::Local),
    ("include from", Class::Local),
    ("incoming chmod", Class::Local),
    ("lock file", Class::Local),
    ("log file", Class::Local),
    ("log format", Class::Local),
    ("name", Class::Local),
    ("name converter", Class::Local),
    ("outgoing chmod", Class::Local),
    ("post-xfer exec", Class::Local),
    ("pre-xfer exec", Class::Local),
    ("refuse options", Class::Local),
    ("secrets file", Class::Local),
    ("syslog tag", Class::Local),
    ("uid", Class::Local),
    ("path", Class::Local),
    ("temp dir", Class::Local),
    ("max connections", Class::Local),
    ("max verbosity", Class::Local),
    ("timeout", Class::Local),
    ("syslog facility", Class::Local),
    ("fake super", Class::Local),
    ("forward lookup", Class::Local),
    ("ignore errors", Class::Local),
    ("ignore nonreadable", Class::Local),
    ("insecure links", Class::Local),
    ("list", Class::Local),
    ("read only", Class::Local),
    ("reverse lookup", Class::Local),
    ("strict modes", Class::Local),
    ("transfer logging", Class::Local),
    ("write only", Class::Local),
    ("munge symlinks", Class::Local),
    ("numeric ids", Class::Local),
    ("open noatime", Class::Local),
    ("use chroot", Class::Local),
];

/// The characters of `s` lower-cased, white space left out.
fn squashed(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
}

/// Lower case without white space: how rsync compares names (`strwiEQ`).
fn squash(s: &str) -> String {
    squashed(s).collect()
}

/// Whether two parameter or module names are the same to rsync (case
/// and white space ignored, as its `strwiEQ`), without allocating.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    squashed(a).eq(squashed(b))
}

/// rsync's own name of a parameter written as `key` (any case and
/// spacing), and whether it belongs to the global section only; `None`
/// for a parameter rsync 3.5.0 does not know.
#[must_use]
pub fn known_parameter(key: &str) -> Option<(&'static str, bool)> {
    lookup(key).map(|(name, class)| (name, class == Class::Global))
}

fn lookup(key: &str) -> Option<(&'static str, Class)> {
    if key.starts_with('-') {
        return None;
    }
    // Our names are lower-case ASCII with single spaces: squash the key
    // once and compare bytes, out at the first mismatch.
    let k = squash(key);
    PARAMS
        .iter()
        .copied()
        .find(|(name, _)| name.bytes().filter(|&b| b != b' ').eq(k.bytes()))
}

/// Context for one parameter assignment, for error messages.
struct Assign<'a> {
    line: usize,
    key: &'a str,
    value: &'a str,
}

impl Assign<'_> {
    fn bad(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::BadValue {
            line: self.line,
            key: self.key.to_owned(),
            value: self.value.to_owned(),
            reason: reason.into(),
        }
    }

    /// rsync's booleans; `allow_unset` for its three-state parameters.
    fn boolean(&self, allow_unset: bool) -> Result<Option<bool>, ConfigError> {
        let v = squash(self.value);
        match v.as_str() {
            "yes" | "true" | "1" => Ok(Some(true)),
            "no" | "false" | "0" => Ok(Some(false)),
            "unset" | "-1" if allow_unset => Ok(None),
            _ => Err(self.bad("expected yes/no, true/false or 1/0")),
        }
    }

    fn flag(&self) -> Result<bool, ConfigError> {
        Ok(self.boolean(false)?.unwrap_or(false))
    }

    fn number<T: std::str::FromStr>(&self) -> Result<T, ConfigError> {
        self.value
            .trim()
            .parse()
            .map_err(|_| self.bad("expected a non-negative number in range"))
    }

    /// A `PATH` parameter: trailing slashes removed, as rsync does.
    fn path(&self) -> PathBuf {
        let mut v = self.value;
        while v.len() > 1 {
            match v.strip_suffix('/') {
                Some(shorter) => v = shorter,
                None => break,
            }
        }
        PathBuf::from(v)
    }

    fn words(&self) -> Vec<String> {
        self.value
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

/// Applies a global-class parameter.
fn set_global(g: &mut Global, name: &str, a: &Assign<'_>) -> Result<(), ConfigError> {
    match name {
        "port" => g.port = a.number()?,
        "address" => g.address = Some(a.value.to_owned()).filter(|s| !s.is_empty()),
        "motd file" => g.motd_file = Some(a.path()).filter(|p| !p.as_os_str().is_empty()),
        "pid file" => g.pid_file = Some(a.path()).filter(|p| !p.as_os_str().is_empty()),
        _ => {
            g.extra.insert(name.to_owned(), a.value.to_owned());
        }
    }
    Ok(())
}

/// Applies a local parameter; `Ok(true)` when it is one ferrsync ignores
/// (stored in `extra`).
fn set_local(m: &mut Module, name: &str, a: &Assign<'_>) -> Result<bool, ConfigError> {
    match name {
        "path" => m.path = a.path(),
        "comment" => a.value.clone_into(&mut m.comment),
        "read only" => m.read_only = a.flag()?,
        "write only" => m.write_only = a.flag()?,
        "list" => m.list = a.flag()?,
        "uid" => m.uid = Some(a.value.to_owned()),
        "gid" => m.gid = Some(a.value.to_owned()),
        "max connections" => m.max_connections = a.number()?,
        "lock file" => m.lock_file = a.path(),
        "hosts allow" => m.hosts_allow = HostList::parse(a.value).map_err(|e| a.bad(e))?,
        "hosts deny" => m.hosts_deny = HostList::parse(a.value).map_err(|e| a.bad(e))?,
        "auth users" => m.auth_users = parse_auth_users(a.value),
        "secrets file" => m.secrets_file = Some(a.path()).filter(|p| !p.as_os_str().is_empty()),
        "strict modes" => m.strict_modes = a.flag()?,
        "auth digest" => {
            let v = a.value.trim();
            if !v.is_empty() && crate::handshake::daemon::AuthDigest::from_name(v).is_none() {
                return Err(a.bad("not a supported auth digest (sha512, sha256, sha1, md5, md4)"));
            }
            m.auth_digest = Some(v.to_owned()).filter(|s| !s.is_empty());
        }
        "refuse options" => m.refuse_options = a.words(),
        "timeout" => m.timeout = a.number()?,
        "use chroot" => m.use_chroot = a.boolean(true)?.unwrap_or(true),
        "numeric ids" => m.numeric_ids = a.boolean(true)?.unwrap_or(false),
        "incoming chmod" => m.incoming_chmod = chmod_value(a)?,
        "outgoing chmod" => m.outgoing_chmod = chmod_value(a)?,
        "exclude" => m.exclude = a.words(),
        "include" => m.include = a.words(),
        "filter" => {
            m.filter = if a.value.trim().is_empty() {
                Vec::new()
            } else {
                vec![a.value.to_owned()]
            };
        }
        "dont compress" => m.dont_compress = a.words(),
        "transfer logging" => m.transfer_logging = a.flag()?,
        "log format" => a.value.clone_into(&mut m.log_format),
        "munge symlinks" => m.munge_symlinks = a.boolean(true)?,
        "fake super" => m.fake_super = a.flag()?,
        _ => {
            m.extra.insert(name.to_owned(), a.value.to_owned());
            return Ok(true);
        }
    }
    Ok(false)
}

fn chmod_value(a: &Assign<'_>) -> Result<Option<String>, ConfigError> {
    let v = a.value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    crate::fs::chmod::ChmodRules::parse_with_umask(v, 0).map_err(|e| a.bad(e))?;
    Ok(Some(v.to_owned()))
}

/// A `PATH` value as written to the file: rsync trims blanks after the
/// value and then slashes, so a path that ends in blanks (from `x  /`)
/// is written with one `/` after them to come back the same; so is a
/// path ending in `\` (from `x\/`), which would otherwise continue the
/// line.
fn path_value(p: &Path) -> String {
    let mut v = p.to_string_lossy().into_owned();
    if v.ends_with(c_isspace) || v.ends_with('\\') {
        v.push('/');
    }
    v
}

/// A value as it can stand on a line: a trailing backslash (possibly
/// before blanks) would continue the line into the next parameter, and
/// rsync has no way to escape it, so it is left out (with the blanks
/// before it), as rsync's reader would drop it anyway.
fn line_safe(v: &str) -> &str {
    v.trim_end_matches(|c: char| c == '\\' || c_isspace(c))
}

/// One logical line: continued physical lines joined.
pub(crate) struct Logical {
    pub(crate) line: usize,
    pub(crate) text: String,
}

/// Joins `\`-continued lines and drops `\r`, as params.c does.
pub(crate) fn logical_lines(text: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut pending: Option<Logical> = None;
    let last = text.split('\n').count().saturating_sub(1);
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.replace('\r', "");
        let joined = if let Some(mut p) = pending.take() {
            p.text.push_str(&raw);
            p
        } else {
            let first = raw.trim_start();
            // Comments and blank lines never continue.
            if first.is_empty() || first.starts_with(['#', ';']) {
                continue;
            }
            Logical {
                line: i + 1,
                text: raw,
            }
        };
        let trimmed = joined.text.trim_end_matches(c_isspace);
        // Only a line break continues: params.c keeps a backslash that
        // ends the file.
        if let Some(body) = trimmed.strip_suffix('\\').filter(|_| i < last) {
            pending = Some(Logical {
                line: joined.line,
                text: body.to_owned(),
            });
        } else {
            out.push(joined);
        }
    }
    if let Some(p) = pending {
        out.push(p);
    }
    out
}

/// Handles a `[name]` header (`rest` is what follows the `[`): `None` for
/// the global section, else the index of the module, created from the
/// global defaults unless it exists already.
fn open_section(
    modules: &mut Vec<Module>,
    template: &Module,
    rest: &str,
    line: usize,
) -> Result<Option<usize>, ConfigError> {
    let Some((name, _)) = rest.split_once(']') else {
        return Err(ConfigError::Syntax {
            line,
            message: format!("badly formed section header: [{rest}"),
        });
    };
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err(ConfigError::Syntax {
            line,
            message: "empty section name".to_owned(),
        });
    }
    if same_name(&name, "global") {
        return Ok(None);
    }
    if name.contains('/') {
        return Err(ConfigError::Syntax {
            line,
            message: format!("invalid section name in configuration file: {name}"),
        });
    }
    let existing = modules.iter().position(|m| same_name(&m.name, &name));
    Ok(Some(existing.unwrap_or_else(|| {
        let mut m = template.clone();
        m.name = name;
        modules.push(m);
        modules.len() - 1
    })))
}

impl DaemonConfig {
    /// Parses `rsyncd.conf` text.
    ///
    /// Warnings (rsync logs these and goes on): unknown parameters, known
    /// parameters that ferrsync ignores (kept in `extra`), global
    /// parameters inside a module, malformed lines, modules without `path`
    /// (a client asking for one gets `no path setting.`, see
    /// [`Module::require_path`]).
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] for an unterminated or empty section name, a
    /// module name with `/`, or an `&include`/`&merge` directive (not
    /// supported); [`ConfigError::BadValue`] for a value that does not fit
    /// (a non-numeric port, a bad boolean, a malformed host list or chmod
    /// rule). rsync is laxer with values; a daemon should not guess.
    pub fn parse(text: &str) -> Result<(DaemonConfig, Vec<ConfigWarning>), ConfigError> {
        let mut cfg = DaemonConfig::default();
        let mut warnings = Vec::new();
        let mut template = Module::new("", "");
        // Index of the module being filled, None in the global section.
        let mut current: Option<usize> = None;
        let mut warn =
            |line: usize, message: String| warnings.push(ConfigWarning { line, message });

        for Logical { line, text } in logical_lines(text) {
            let body = text.trim_matches(c_isspace);
            if let Some(rest) = body.strip_prefix('[') {
                current = open_section(&mut cfg.modules, &template, rest, line)?;
                continue;
            }
            if body.starts_with('&') {
                return Err(ConfigError::Syntax {
                    line,
                    message: format!("config directives are not supported by ferrsync: {body}"),
                });
            }
            let Some((key, value)) = body.split_once('=') else {
                warn(
                    line,
                    format!("Ignoring badly formed line in config file: {body}"),
                );
                continue;
            };
            let key = key.split_whitespace().collect::<Vec<_>>().join(" ");
            // params.c trims C `isspace` (not Unicode spaces) around values.
            let value = value.trim_matches(c_isspace);
            if key.is_empty() {
                return Err(ConfigError::Syntax {
                    line,
                    message: "Invalid parameter name in config file.".to_owned(),
                });
            }
            let Some((name, class)) = lookup(&key) else {
                warn(
                    line,
                    format!("Unknown Parameter encountered: \"{key}\" (ignored)"),
                );
                continue;
            };
            let a = Assign {
                line,
                key: &key,
                value,
            };
            let ignored = match (current, class) {
                (Some(_), Class::Global) => {
                    warn(
                        line,
                        format!("Global parameter {key} found in module section! (ignored)"),
                    );
                    continue;
                }
                (None, Class::Global) => {
                    set_global(&mut cfg.global, name, &a)?;
                    cfg.global.extra.contains_key(name)
                }
                (None, Class::Local) if name == "log file" => {
                    cfg.global.log_file = Some(a.path()).filter(|p| !p.as_os_str().is_empty());
                    false
                }
                (None, Class::Local) if name == "reverse lookup" => {
                    cfg.global.reverse_lookup = a.flag()?;
                    false
                }
                (None, Class::Local) => set_local(&mut template, name, &a)?,
                (Some(i), Class::Local) => {
                    if let Some(m) = cfg.modules.get_mut(i) {
                        set_local(m, name, &a)?
                    } else {
                        false
                    }
                }
            };
            if ignored {
                warn(
                    line,
                    format!("parameter \"{name}\" is accepted but ignored by ferrsync"),
                );
            }
        }
        for m in &cfg.modules {
            if m.path.as_os_str().is_empty() {
                warnings.push(ConfigWarning {
                    line: 0,
                    message: format!(
                        "module [{}] has no path; clients asking for it get \"no path setting.\"",
                        m.name
                    ),
                });
            }
        }
        Ok((cfg, warnings))
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`ConfigError::Io`] if it cannot be read, else as [`DaemonConfig::parse`].
    pub fn load(path: &Path) -> Result<(DaemonConfig, Vec<ConfigWarning>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The module a client asks for (exact name, as rsync's `lp_number`).
    #[must_use]
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// Renders an `rsyncd.conf` that rsync 3.5.0 accepts and that
    /// [`DaemonConfig::parse`] reads back to an equal configuration
    /// (values rsync cannot express, such as leading blanks or a trailing
    /// backslash, excepted). Module settings are written out in full; no
    /// local parameter goes to the global section.
    #[must_use]
    pub fn to_conf_string(&self) -> String {
        let mut out = String::from("# rsyncd.conf written by ferrsync\n");
        let g = &self.global;
        let d = Global::default();
        let kv = |out: &mut String, k: &str, v: &str| {
            let _ = writeln!(out, "{k} = {}", line_safe(v));
        };
        if g.port != d.port {
            kv(&mut out, "port", &g.port.to_string());
        }
        if let Some(a) = &g.address {
            kv(&mut out, "address", a);
        }
        for (k, p) in [
            ("motd file", &g.motd_file),
            ("pid file", &g.pid_file),
            ("log file", &g.log_file),
        ] {
            if let Some(p) = p {
                kv(&mut out, k, &path_value(p));
            }
        }
        if !g.reverse_lookup {
            kv(&mut out, "reverse lookup", "no");
        }
        for (k, v) in &g.extra {
            kv(&mut out, k, v);
        }
        for m in &self.modules {
            let _ = write!(out, "\n[{}]\n", m.name);
            render_module(&mut out, m);
        }
        out
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn render_module(out: &mut String, m: &Module) {
    let d = Module::new("", "");
    let mut kv = |k: &str, v: &str| {
        let _ = writeln!(out, "    {k} = {}", line_safe(v));
    };
    if !m.path.as_os_str().is_empty() {
        kv("path", &path_value(&m.path));
    }
    if !m.comment.is_empty() {
        kv("comment", &m.comment);
    }
    for (k, v, dv) in [
        ("read only", m.read_only, d.read_only),
        ("write only", m.write_only, d.write_only),
        ("list", m.list, d.list),
        ("strict modes", m.strict_modes, d.strict_modes),
        ("use chroot", m.use_chroot, d.use_chroot),
        ("numeric ids", m.numeric_ids, d.numeric_ids),
        ("transfer logging", m.transfer_logging, d.transfer_logging),
        ("fake super", m.fake_super, d.fake_super),
    ] {
        if v != dv {
            kv(k, yes_no(v));
        }
    }
    if let Some(b) = m.munge_symlinks {
        kv("munge symlinks", yes_no(b));
    }
    for (k, v) in [
        ("uid", &m.uid),
        ("gid", &m.gid),
        ("auth digest", &m.auth_digest),
        ("incoming chmod", &m.incoming_chmod),
        ("outgoing chmod", &m.outgoing_chmod),
    ] {
        if let Some(v) = v {
            kv(k, v);
        }
    }
    if m.max_connections != 0 {
        kv("max connections", &m.max_connections.to_string());
    }
    if m.timeout != 0 {
        kv("timeout", &m.timeout.to_string());
    }
    if m.lock_file != d.lock_file {
        kv("lock file", &path_value(&m.lock_file));
    }
    if let Some(p) = &m.secrets_file {
        kv("secrets file", &path_value(p));
    }
    if !m.hosts_allow.as_str().is_empty() {
        kv("hosts allow", m.hosts_allow.as_str());
    }
    if !m.hosts_deny.as_str().is_empty() {
        kv("hosts deny", m.hosts_deny.as_str());
    }
    if !m.auth_users.is_empty() {
        kv("auth users", &render_auth_users(&m.auth_users));
    }
    for (k, v) in [
        ("refuse options", &m.refuse_options),
        ("exclude", &m.exclude),
        ("include", &m.include),
    ] {
        if !v.is_empty() {
            kv(k, &v.join(" "));
        }
    }
    if !m.filter.is_empty() {
        kv("filter", &m.filter.join(" "));
    }
    if m.dont_compress != d.dont_compress {
        kv("dont compress", &m.dont_compress.join(" "));
    }
    if m.log_format != d.log_format {
        kv("log format", &m.log_format);
    }
    for (k, v) in &m.extra {
        kv(k, v);
    }
}

#[cfg(test)]
mod tests;
