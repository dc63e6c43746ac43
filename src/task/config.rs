//! [`Task`]: one sync between a local directory and a daemon module or an
//! SSH host, its validation and its mapping to transfer [`Options`].
//!
//! Layer: task. Uses the engine's options and command-line parser.
//!
//! # What lands where
//!
//! A task does what the equivalent rsync command does, trailing slashes
//! included:
//!
//! | task | rsync command |
//! | --- | --- |
//! | Module, push | `rsync OPTS PATH rsync://HOST:PORT/MODULE/` |
//! | Module, pull | `rsync OPTS rsync://HOST:PORT/MODULE/ PATH` |
//! | SSH, push | `rsync OPTS PATH USER@HOST:REMOTE_PATH` |
//! | SSH, pull | `rsync OPTS USER@HOST:REMOTE_PATH PATH` |
//!
//! So a push of `/mnt/tank/data` creates `data/` in the module, and a push
//! of `/mnt/tank/data/` copies what is inside `data` into the module's
//! top. A pull copies the module's contents into `PATH`; over SSH,
//! `REMOTE_PATH` decides as a source does (`dir` brings `dir/` itself,
//! `dir/` its contents).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Invalid, Problems, account};
use crate::engine::options::parse_client_args_onto;
use crate::engine::{DeleteTiming, Options};

/// How the task reaches the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// An rsync daemon module (`rsync://host/module`).
    #[default]
    Module,
    /// `rsync --server` over SSH.
    Ssh,
}

/// Which way the data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From `path` to the remote side.
    #[default]
    Push,
    /// From the remote side into `path`.
    Pull,
}

/// A secret string: serialized as itself, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One sync job. Fields and defaults as a NAS shows them; see the module
/// documentation for what lands where.
///
/// ```
/// let task: ferrsync::task::Task = toml::from_str(r#"
///     path = "/tmp"
///     remote_host = "backup.example.net"
///     remote_module = "tank"
///     schedule = "@daily"
///     extra = ["--exclude=*.tmp"]
/// "#).unwrap();
/// assert!(task.options().unwrap().compress);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // the yes/no settings of a sync
pub struct Task {
    /// The local directory (must exist).
    pub path: PathBuf,
    /// The local account the transfer runs as (empty: this process's).
    /// When the process is root, local file operations use that user's
    /// uid, gid and groups.
    pub user: String,
    /// Daemon module or SSH.
    pub mode: Mode,
    /// Push or pull.
    pub direction: Direction,
    /// Free text.
    pub description: String,
    /// 5-field cron (minute hour day-of-month month day-of-week) or a
    /// shortcut such as `@daily`.
    pub schedule: String,
    /// `-r`
    pub recursive: bool,
    /// `-t`
    pub times: bool,
    /// `-z`, with the algorithm negotiated (zstd when the peer has it).
    pub compress: bool,
    /// `-a`
    pub archive: bool,
    /// `--delete-delay`
    pub delete: bool,
    /// `-q`: no informational output from either side, and no itemized
    /// list in the report.
    pub quiet: bool,
    /// `-p` (mode bits only). To keep POSIX ACLs too (what a TrueNAS-style
    /// "preserve permissions" means on an ACL dataset) add `-A` to
    /// [`extra`](Self::extra); it implies `-p`.
    pub preserve_permissions: bool,
    /// `-X` (not supported yet: a task asking for it does not validate).
    pub preserve_xattrs: bool,
    /// `--delay-updates`
    pub delay_updates: bool,
    /// More rsync options, one argument per entry (`--exclude=*.tmp`),
    /// never through a shell.
    pub extra: Vec<String>,
    /// Run by the scheduler only when true.
    pub enabled: bool,
    /// The remote host (`host`, `user@host` in Module mode, an IPv6
    /// literal with or without brackets).
    pub remote_host: String,
    /// The remote port (None: 873 for Module, 22 for SSH).
    pub remote_port: Option<u16>,
    /// Module mode: the module.
    pub remote_module: String,
    /// Module mode: the password for `auth users`.
    pub password: Option<Secret>,
    /// Module mode: the environment variable holding the password.
    pub password_env: Option<String>,
    /// Module mode: the file holding the password (first line; not
    /// readable by others).
    pub password_file: Option<PathBuf>,
    /// SSH mode: the login.
    pub remote_user: String,
    /// SSH mode: the private key file.
    pub private_key_file: Option<PathBuf>,
    /// SSH mode: the private key itself (OpenSSH PEM text).
    pub private_key: Option<Secret>,
    /// SSH mode: accepted host keys (`known_hosts` lines or
    /// `ssh-ed25519 AAAA...`).
    pub known_host_keys: Vec<String>,
    /// SSH mode: a `known_hosts` file.
    pub known_hosts_file: Option<PathBuf>,
    /// SSH mode: seconds to wait for the connection (None: 10).
    pub connect_timeout: Option<u64>,
    /// SSH mode: the remote directory.
    pub remote_path: String,
    /// SSH mode: check the remote path is a directory before saving.
    pub validate_remote_path: bool,
    /// SSH mode: with `validate_remote_path`, create it when missing.
    pub create_remote_path: bool,
}

impl Default for Task {
    fn default() -> Self {
        Task {
            path: PathBuf::new(),
            user: String::new(),
            mode: Mode::Module,
            direction: Direction::Push,
            description: String::new(),
            schedule: "0 * * * *".into(),
            recursive: true,
            times: true,
            compress: true,
            archive: false,
            delete: false,
            quiet: false,
            preserve_permissions: false,
            preserve_xattrs: false,
            delay_updates: true,
            extra: Vec::new(),
            enabled: true,
            remote_host: String::new(),
            remote_port: None,
            remote_module: String::new(),
            password: None,
            password_env: None,
            password_file: None,
            remote_user: String::new(),
            private_key_file: None,
            private_key: None,
            known_host_keys: Vec::new(),
            known_hosts_file: None,
            connect_timeout: None,
            remote_path: String::new(),
            validate_remote_path: false,
            create_remote_path: false,
        }
    }
}

/// Parses a 5-field cron schedule (or a shortcut such as `@daily`); no
/// seconds or years field.
pub(crate) fn parse_schedule(s: &str) -> Result<croner::Cron, croner::errors::CronError> {
    use croner::parser::{CronParser, Seconds, Year};
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(s)
}

/// Options a task's `extra` must not carry, and why.
fn refused(ca: &crate::engine::options::ClientArgs, mode: Mode) -> Option<&'static str> {
    let d = &ca.daemon;
    if ca.help || ca.version {
        Some("--help and --version are not transfer options")
    } else if ca.server || d.run {
        Some("--server and --daemon are not for a task")
    } else if ca.rsh.is_some() {
        Some(match mode {
            Mode::Module => "-e/--rsh is refused: a Module task talks to the daemon directly",
            Mode::Ssh => "-e/--rsh is refused: an SSH task uses its own SSH settings",
        })
    } else if ca.rsync_path_given {
        Some("--rsync-path is refused: it runs a command on the remote host")
    } else if d.config.is_some() || d.address.is_some() || d.no_detach || d.log_file.is_some() {
        Some("daemon options are not for a task")
    } else if d.port.is_some() {
        Some("--port is refused: set remote_port")
    } else if d.password_file.is_some() {
        Some("--password-file is refused: set password_file")
    } else if !ca.args.is_empty() {
        Some("not an option (sources and destination come from the task)")
    } else {
        None
    }
}

/// `--name='value'` and `--name="value"` mean `--name=value` (no shell
/// ever removes those quotes here).
fn unquote(entry: &str) -> String {
    if let Some((name, value)) = entry.split_once('=') {
        if name.starts_with("--") && value.len() >= 2 {
            for q in ['\'', '"'] {
                if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
                    return format!("{name}={inner}");
                }
            }
        }
    }
    entry.to_string()
}

impl Task {
    /// The port to connect to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.remote_port.unwrap_or(match self.mode {
            Mode::Module => crate::daemon::config::DEFAULT_PORT,
            Mode::Ssh => 22,
        })
    }

    /// The transfer options this task asks for: its fields, then `extra`
    /// on top (so `extra = ["--delete-after"]` wins over `delete`).
    ///
    /// # Errors
    /// Every problem with `extra`.
    pub fn options(&self) -> Result<Options, Invalid> {
        let mut p = Problems::default();
        let o = self.build_options(&mut p);
        p.into_result().map(|()| o)
    }

    fn build_options(&self, p: &mut Problems) -> Options {
        let mut o = if self.archive {
            Options::archive()
        } else {
            Options::default()
        };
        o.recursive |= self.recursive;
        o.times |= self.times;
        o.perms |= self.preserve_permissions;
        if self.delete {
            o.delete = Some(DeleteTiming::Delay);
        }
        o.delay_updates = self.delay_updates;
        o.quiet = self.quiet;
        if self.preserve_xattrs {
            o.xattrs = o.xattrs.max(1);
        }
        for (i, entry) in self.extra.iter().enumerate() {
            let field = format!("extra[{i}]");
            let word = unquote(entry);
            if !word.starts_with('-') || word == "-" || word == "--" {
                p.add(field, format!("{entry:?}: not an option"));
                continue;
            }
            match parse_client_args_onto(o.clone(), std::slice::from_ref(&word)) {
                Ok(ca) => match refused(&ca, self.mode) {
                    Some(why) => p.add(field, format!("{entry:?}: {why}")),
                    None => o = ca.opts,
                },
                Err(e) => p.add(
                    field,
                    format!("{entry:?}: {e} (one argument per entry: write --option=value)"),
                ),
            }
        }
        if self.compress {
            // Plain -z: the algorithm is negotiated, zstd first. Applied
            // after `extra` so an extra `-z` does not make it `-zz`.
            o.compress = true;
        }
        o
    }

    /// Every problem with this task, as (field, message) pairs.
    ///
    /// # Errors
    /// The problems.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut p = Problems::default();
        if self.path.as_os_str().is_empty() {
            p.add("path", "required");
        } else if !self.path.is_dir() {
            p.add(
                "path",
                format!("{} is not an existing directory", self.path.display()),
            );
        }
        if !self.user.is_empty() {
            match account::lookup_user(&self.user) {
                None => p.add("user", format!("no such user: {}", self.user)),
                Some(a) if !account::is_current(&a) && !account::is_root() => {
                    p.add("user", "only root can run a task as another user");
                }
                Some(_) => {}
            }
        }
        if let Err(e) = parse_schedule(&self.schedule) {
            p.add("schedule", format!("{:?}: {e}", self.schedule));
        }
        if self.remote_host.is_empty() {
            p.add("remote_host", "required");
        } else if self
            .remote_host
            .contains(|c: char| c.is_whitespace() || c == '/')
        {
            p.add("remote_host", "no blanks or / in a host name");
        }
        if self.remote_port == Some(0) {
            p.add("remote_port", "0 is not a port");
        }
        let module_only: [(&str, bool); 4] = [
            ("remote_module", !self.remote_module.is_empty()),
            ("password", self.password.is_some()),
            ("password_env", self.password_env.is_some()),
            ("password_file", self.password_file.is_some()),
        ];
        let ssh_only: [(&str, bool); 8] = [
            ("remote_user", !self.remote_user.is_empty()),
            ("private_key_file", self.private_key_file.is_some()),
            ("private_key", self.private_key.is_some()),
            ("known_host_keys", !self.known_host_keys.is_empty()),
            ("known_hosts_file", self.known_hosts_file.is_some()),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("remote_path", !self.remote_path.is_empty()),
            (
                "validate_remote_path",
                self.validate_remote_path || self.create_remote_path,
            ),
        ];
        let (wrong, other) = match self.mode {
            Mode::Module => (ssh_only.as_slice(), "SSH"),
            Mode::Ssh => (module_only.as_slice(), "Module"),
        };
        for (field, set) in wrong {
            if *set {
                p.add(*field, format!("only for {other} mode"));
            }
        }
        match self.mode {
            Mode::Module => {
                if self.remote_module.is_empty() {
                    p.add("remote_module", "required in Module mode");
                } else if self.remote_module.contains(['/', ']']) {
                    p.add("remote_module", "a module name has no / or ]");
                }
                let sources = module_only[1..].iter().filter(|(_, s)| *s).count();
                if sources > 1 {
                    p.add(
                        "password",
                        "give one of password, password_env, password_file",
                    );
                }
                if let Some(var) = &self.password_env {
                    if std::env::var(var).is_err() {
                        p.add("password_env", format!("${var} is not set"));
                    }
                }
            }
            Mode::Ssh => {
                if self.remote_user.is_empty() {
                    p.add("remote_user", "required in SSH mode");
                }
                if self.remote_path.is_empty() {
                    p.add("remote_path", "required in SSH mode");
                }
                if self.private_key.is_some() && self.private_key_file.is_some() {
                    p.add(
                        "private_key",
                        "give private_key or private_key_file, not both",
                    );
                }
                if self.private_key.is_none() && self.private_key_file.is_none() {
                    p.add("private_key_file", "a private key is required in SSH mode");
                }
                if self.known_host_keys.is_empty() && self.known_hosts_file.is_none() {
                    p.add(
                        "known_host_keys",
                        "host keys (or known_hosts_file) are required",
                    );
                }
                if self.connect_timeout == Some(0) {
                    p.add("connect_timeout", "must be at least one second");
                }
            }
        }
        self.build_options(&mut p);
        p.into_result()
    }

    /// Reads a task from TOML and validates it.
    ///
    /// # Errors
    /// A TOML error or every validation problem, as text.
    pub fn from_toml(text: &str) -> Result<Task, String> {
        let t: Task = toml::from_str(text).map_err(|e| e.to_string())?;
        t.validate().map_err(|e| e.to_string())?;
        Ok(t)
    }

    /// Reads a task from JSON and validates it.
    ///
    /// # Errors
    /// A JSON error or every validation problem, as text.
    pub fn from_json(text: &str) -> Result<Task, String> {
        let t: Task = serde_json::from_str(text).map_err(|e| e.to_string())?;
        t.validate().map_err(|e| e.to_string())?;
        Ok(t)
    }

    /// The daemon URL of a Module task (`user@` split off the host,
    /// brackets off an IPv6 literal).
    #[must_use]
    pub fn daemon_url(&self) -> crate::transport::daemon::DaemonUrl {
        let (user, host) = match self.remote_host.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, self.remote_host.as_str()),
        };
        crate::transport::daemon::DaemonUrl {
            user,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: self.port(),
            module: self.remote_module.clone(),
            path: String::new(),
        }
    }
}

#[cfg(test)]
mod tests;
