//! [`Module`] and [`Service`]: this host's rsync daemon as a NAS shows it,
//! rendered to and read from `rsyncd.conf`.
//!
//! Layer: task. Uses the daemon's parameter table and parser.
//!
//! Rendering is safe by validation: a value with a line break, a control
//! character, a trailing `\` (a continuation), blanks at either end (lost
//! on reading) or a `%NAME%` (rsync replaces it with an environment
//! variable) is refused, so no comment or value can start a section or a
//! parameter of its own. `=` and `[` inside a value are harmless: a line
//! is split at its first `=`, and only a line starting with `[` is a
//! section. Every rendered file is read back with the daemon's own parser
//! before it is used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Invalid, Problems, account};
use crate::daemon::config::{DaemonConfig, known_parameter, same_name};
use crate::daemon::hosts::HostList;

/// What clients may do with a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Download only (`read only = yes`, rsync's default).
    #[default]
    ReadOnly,
    /// Upload and download (`read only = no`).
    ReadWrite,
    /// Upload only (`read only = no`, `write only = yes`).
    WriteOnly,
}

/// One daemon module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Module {
    /// The name clients ask for: not empty, no `/` or `]`, unique.
    pub name: String,
    /// The directory served (absolute).
    pub path: PathBuf,
    /// Shown in the module list.
    pub comment: String,
    /// What clients may do.
    pub access: Access,
    /// At most this many clients at once (0: unlimited).
    pub max_connections: u32,
    /// The account file operations run as (`uid`, when the daemon is root).
    pub user: String,
    /// The group file operations run as (`gid`).
    pub group: String,
    /// `hosts allow`, one pattern per entry.
    pub hosts_allow: Vec<String>,
    /// `hosts deny`, one pattern per entry.
    pub hosts_deny: Vec<String>,
    /// More `rsyncd.conf` module parameters by name (`timeout`,
    /// `refuse options`, ...); each must be one rsync 3.5.0 knows and not
    /// one of the fields above.
    pub auxiliary: BTreeMap<String, String>,
    /// Served by [`Service::start`] only when true.
    pub enabled: bool,
}

impl Default for Module {
    fn default() -> Self {
        Module {
            name: String::new(),
            path: PathBuf::new(),
            comment: String::new(),
            access: Access::ReadOnly,
            max_connections: 0,
            user: "nobody".into(),
            group: "nogroup".into(),
            hosts_allow: Vec::new(),
            hosts_deny: Vec::new(),
            auxiliary: BTreeMap::new(),
            enabled: true,
        }
    }
}

/// Module parameters that are [`Module`] fields.
const MODULE_FIELDS: &[&str] = &[
    "path",
    "comment",
    "read only",
    "write only",
    "max connections",
    "uid",
    "gid",
    "hosts allow",
    "hosts deny",
];

/// The daemon itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Service {
    /// TCP port (873; 0 picks a free one at [`Service::start`]).
    pub port: u16,
    /// More global `rsyncd.conf` parameters by name (`address`,
    /// `motd file`, ...; module parameters here are defaults for every
    /// module, as in rsync).
    pub auxiliary: BTreeMap<String, String>,
    /// Whether the service starts with the host: [`Service::autostart`]
    /// starts it when true and does nothing when false ([`Service::start`]
    /// starts it either way).
    pub start_automatically: bool,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            port: crate::daemon::config::DEFAULT_PORT,
            auxiliary: BTreeMap::new(),
            start_automatically: false,
        }
    }
}

/// Why a value can't be written into `rsyncd.conf` as it is.
fn unsafe_value(v: &str) -> Option<&'static str> {
    if v.chars().any(char::is_control) {
        return Some("must not contain line breaks or control characters");
    }
    if v.ends_with('\\') {
        return Some("must not end with a backslash (it would continue the line)");
    }
    if v.trim() != v {
        return Some("must not start or end with blanks");
    }
    if has_env_reference(v) {
        return Some("must not contain %NAME% (rsync replaces it with an environment variable)");
    }
    None
}

fn has_env_reference(v: &str) -> bool {
    let mut rest = v;
    while let Some(i) = rest.find('%') {
        let after = &rest[i + 1..];
        if let Some(j) = after.find('%') {
            let name = &after[..j];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return true;
            }
        }
        rest = after;
    }
    false
}

fn check_value(p: &mut Problems, field: &str, v: &str) {
    if let Some(why) = unsafe_value(v) {
        p.add(field, why);
    }
}

fn check_hosts(p: &mut Problems, field: &str, list: &[String]) {
    for (i, h) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if h.is_empty() || h.contains(|c: char| c.is_whitespace() || c == ',') {
            p.add(&f, "one non-empty pattern without blanks or commas");
        } else if let Err(e) = HostList::parse(h) {
            p.add(&f, e);
        } else {
            check_value(p, &f, h);
        }
    }
}

impl Module {
    /// A module with the defaults and this name and path.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Module {
            name: name.into(),
            path: path.into(),
            ..Module::default()
        }
    }

    /// Every problem with this module alone (see [`Service::validate_modules`]
    /// for names across modules).
    ///
    /// # Errors
    /// The problems, each naming its field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut p = Problems::default();
        self.check(&mut p, "");
        p.into_result()
    }

    fn check(&self, p: &mut Problems, prefix: &str) {
        let f = |name: &str| format!("{prefix}{name}");
        if self.name.is_empty() {
            p.add(f("name"), "required");
        } else if self.name.contains(['/', ']']) {
            p.add(f("name"), "must not contain / or ]");
        } else if self.name.trim().eq_ignore_ascii_case("global") {
            p.add(f("name"), "\"global\" is rsyncd.conf's global section");
        } else if self.name.contains("  ") {
            p.add(f("name"), "runs of blanks are squeezed by rsync");
        } else {
            check_value(p, &f("name"), &self.name);
        }
        let path = self.path.to_string_lossy();
        if path.is_empty() {
            p.add(f("path"), "required");
        } else if !self.path.is_absolute() {
            p.add(f("path"), "must be absolute");
        } else {
            check_value(p, &f("path"), &path);
        }
        check_value(p, &f("comment"), &self.comment);
        if self.user.is_empty() {
            p.add(f("user"), "required");
        } else if account::lookup_user(&self.user).is_none() {
            p.add(f("user"), format!("no such user: {}", self.user));
        }
        if self.group.is_empty() {
            p.add(f("group"), "required");
        } else if !account::group_exists(&self.group) {
            p.add(f("group"), format!("no such group: {}", self.group));
        }
        check_hosts(p, &f("hosts_allow"), &self.hosts_allow);
        check_hosts(p, &f("hosts_deny"), &self.hosts_deny);
        for (k, v) in &self.auxiliary {
            let field = f(&format!("auxiliary.{k}"));
            match known_parameter(k) {
                None => p.add(&field, "not an rsyncd.conf parameter"),
                Some((_, true)) => p.add(&field, "a global parameter (set it on the service)"),
                Some((name, false)) if MODULE_FIELDS.contains(&name) || name == "name" => {
                    p.add(&field, format!("\"{name}\" is set by a module field"));
                }
                Some(_) => check_value(p, &field, v),
            }
        }
        if !p.0.iter().any(|x| x.field.starts_with(prefix)) {
            // Values the daemon's parser refuses (a bad number, boolean,
            // chmod rule...): ask it.
            let text = render_modules(&[self]);
            if let Err(e) = DaemonConfig::parse(&text) {
                p.add(f("auxiliary"), e.to_string());
            }
        }
    }
}

fn render_modules(modules: &[&Module]) -> String {
    let mut out = String::new();
    for m in modules {
        let _ = write!(out, "\n[{}]\n", m.name);
        let mut kv = |k: &str, v: &str| {
            let _ = writeln!(out, "    {k} = {v}");
        };
        kv("path", &m.path.to_string_lossy());
        if !m.comment.is_empty() {
            kv("comment", &m.comment);
        }
        let (ro, wo) = match m.access {
            Access::ReadOnly => ("yes", "no"),
            Access::ReadWrite => ("no", "no"),
            Access::WriteOnly => ("no", "yes"),
        };
        kv("read only", ro);
        kv("write only", wo);
        kv("max connections", &m.max_connections.to_string());
        kv("uid", &m.user);
        kv("gid", &m.group);
        if !m.hosts_allow.is_empty() {
            kv("hosts allow", &m.hosts_allow.join(" "));
        }
        if !m.hosts_deny.is_empty() {
            kv("hosts deny", &m.hosts_deny.join(" "));
        }
        for (k, v) in &m.auxiliary {
            kv(k, v);
        }
    }
    out
}

impl Service {
    /// Every problem with the service settings.
    ///
    /// # Errors
    /// The problems, each naming its field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut p = Problems::default();
        self.check(&mut p);
        p.into_result()
    }

    fn check(&self, p: &mut Problems) {
        for (k, v) in &self.auxiliary {
            let field = format!("auxiliary.{k}");
            match known_parameter(k) {
                None => p.add(&field, "not an rsyncd.conf parameter"),
                Some(("port", _)) => p.add(&field, "set by the port field"),
                Some(_) => check_value(p, &field, v),
            }
        }
    }

    /// Every problem with these modules: each one's, and names that are
    /// not unique (rsync compares them ignoring case and blanks).
    ///
    /// # Errors
    /// The problems; fields are `modules[i].field`.
    pub fn validate_modules(modules: &[Module]) -> Result<(), Invalid> {
        let mut p = Problems::default();
        check_modules(&mut p, modules);
        p.into_result()
    }

    /// The `rsyncd.conf` for this service and the enabled `modules`.
    ///
    /// # Errors
    /// Every problem with the service or the modules; nothing is rendered
    /// from an invalid configuration.
    pub fn to_conf_string(&self, modules: &[Module]) -> Result<String, Invalid> {
        let mut p = Problems::default();
        self.check(&mut p);
        check_modules(&mut p, modules);
        p.into_result()?;
        let mut out = String::from("# rsyncd.conf written by ferrsync\n");
        let _ = writeln!(out, "port = {}", self.port);
        for (k, v) in &self.auxiliary {
            let _ = writeln!(out, "{k} = {v}");
        }
        let enabled: Vec<&Module> = modules.iter().filter(|m| m.enabled).collect();
        out.push_str(&render_modules(&enabled));
        Ok(out)
    }

    /// The daemon configuration for this service and the enabled `modules`
    /// (the rendered file, read back by the daemon's parser).
    ///
    /// # Errors
    /// As [`Service::to_conf_string`], and whatever the parser refuses.
    pub fn daemon_config(&self, modules: &[Module]) -> Result<DaemonConfig, Invalid> {
        let text = self.to_conf_string(modules)?;
        DaemonConfig::parse(&text)
            .map(|(cfg, _)| cfg)
            .map_err(|e| Invalid {
                problems: vec![super::Problem {
                    field: "auxiliary".into(),
                    message: e.to_string(),
                }],
            })
    }

    /// Reads an `rsyncd.conf`: the global section becomes the service,
    /// each section a module (all enabled); parameters without a field go
    /// to `auxiliary`.
    ///
    /// # Errors
    /// Unknown parameters, malformed lines, and every validation problem.
    pub fn parse_conf(text: &str) -> Result<(Service, Vec<Module>), Invalid> {
        let mut p = Problems::default();
        let mut svc = Service::default();
        let mut modules: Vec<Module> = Vec::new();
        for (line, body) in logical_lines(text) {
            let at = format!("line {line}");
            if let Some(rest) = body.strip_prefix('[') {
                let Some((name, _)) = rest.split_once(']') else {
                    p.add(at, "badly formed section header");
                    continue;
                };
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
                if name.eq_ignore_ascii_case("global") {
                    continue;
                }
                let mut m = Module::new(name, "");
                // Absent uid/gid are rsync's defaults, which are ours.
                m.auxiliary.clear();
                modules.push(m);
                continue;
            }
            let Some((key, value)) = body.split_once('=') else {
                p.add(at, "not a `key = value` line");
                continue;
            };
            let value = value.trim().to_string();
            let Some((name, _)) = known_parameter(key.trim()) else {
                p.add(at, format!("unknown parameter \"{}\"", key.trim()));
                continue;
            };
            let Some(m) = modules.last_mut() else {
                if name == "port" {
                    match value.parse() {
                        Ok(n) => svc.port = n,
                        Err(_) => p.add(at, "port: not a number"),
                    }
                } else {
                    svc.auxiliary.insert(name.to_string(), value);
                }
                continue;
            };
            let yes = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1");
            match name {
                "path" => m.path = PathBuf::from(value),
                "comment" => m.comment = value,
                "read only" => {
                    let ro = yes(&value);
                    m.access = match (ro, m.access) {
                        (true, _) => Access::ReadOnly,
                        (false, Access::WriteOnly) => Access::WriteOnly,
                        (false, _) => Access::ReadWrite,
                    };
                }
                "write only" => {
                    if yes(&value) && m.access != Access::ReadOnly {
                        m.access = Access::WriteOnly;
                    } else if yes(&value) {
                        // `write only` before `read only = no`.
                        m.auxiliary.insert("write only".into(), value);
                    }
                }
                "max connections" => match value.parse() {
                    Ok(n) => m.max_connections = n,
                    Err(_) => p.add(at, "max connections: not a number"),
                },
                "uid" => m.user = value,
                "gid" => m.group = value,
                "hosts allow" => m.hosts_allow = host_words(&value),
                "hosts deny" => m.hosts_deny = host_words(&value),
                _ => {
                    m.auxiliary.insert(name.to_string(), value);
                }
            }
        }
        for m in &mut modules {
            // A `write only = yes` seen before `read only = no`.
            if m.auxiliary.remove("write only").is_some() && m.access != Access::ReadOnly {
                m.access = Access::WriteOnly;
            }
        }
        svc.check(&mut p);
        check_modules(&mut p, &modules);
        p.into_result()?;
        Ok((svc, modules))
    }
}

fn host_words(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn check_modules(p: &mut Problems, modules: &[Module]) {
    for (i, m) in modules.iter().enumerate() {
        m.check(p, &format!("modules[{i}]."));
        if modules[..i].iter().any(|o| same_name(&o.name, &m.name)) {
            p.add(
                format!("modules[{i}].name"),
                format!("\"{}\" is not unique", m.name),
            );
        }
    }
}

/// `(line number, text)` of each logical line (continuations joined;
/// comments and blank lines dropped), as rsync's params.c reads them: the
/// daemon reader's, trimmed.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    crate::daemon::config::logical_lines(text)
        .into_iter()
        .map(|l| (l.line, l.text.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests;
