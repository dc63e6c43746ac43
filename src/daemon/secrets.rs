//! `auth users`, the daemon's secrets file and the client's password file.
//!
//! Layer: config. Reads the secrets, password, `/etc/passwd` and
//! `/etc/group` files with `std::fs`; no network. Mirrors upstream
//! authenticate.c (`auth_server`, `check_secret`, `getpassf`) and util1.c
//! (`conf_strtok`).
//!
//! Group entries (`@staff`) use the groups listed for the user in
//! `/etc/passwd` (primary) and `/etc/group` (supplementary); users and
//! groups known only to NSS services such as LDAP are not seen.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::filter::wildmatch;
use crate::handshake::daemon::{AuthDigest, auth_response};

/// What an `auth users` entry grants (its `:ro`, `:rw` or `:deny` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// No suffix: the module's `read only` setting applies.
    #[default]
    Default,
    /// `:ro`: read-only whatever the module says.
    ReadOnly,
    /// `:rw`: writable whatever the module says.
    ReadWrite,
    /// `:deny`: refused.
    Deny,
}

/// One `auth users` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// A user-name wildcard, or a group-name wildcard when `group` is set
    /// (without its `@`).
    pub pattern: String,
    /// Whether the entry was written `@group`.
    pub group: bool,
    /// What a match grants.
    pub access: Access,
}

impl AuthUser {
    /// The entry as written in `rsyncd.conf`.
    #[must_use]
    pub fn to_conf(&self) -> String {
        let at = if self.group { "@" } else { "" };
        let suffix = match self.access {
            // An empty name (the token `:`) or one that ends in a blank
            // (`, x\t:` in the commas-only form, trimmed before the `:` is
            // split off) keeps its `:`, or it would vanish or lose the
            // blank when read back.
            Access::Default if self.pattern.is_empty() || self.pattern.ends_with(c_isspace) => ":",
            Access::Default => "",
            Access::ReadOnly => ":ro",
            Access::ReadWrite => ":rw",
            Access::Deny => ":deny",
        };
        format!("{at}{}{suffix}", self.pattern)
    }
}

/// C `isspace` in the C locale (rsync's `isSpace`): space, `\t`, `\n`,
/// `\v`, `\f`, `\r`; not the other Unicode spaces Rust's `trim` removes.
#[must_use]
pub fn c_isspace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits a list value the way rsync's `conf_strtok` does: if it starts
/// with a comma, on commas only (so entries may contain spaces), otherwise
/// on spaces, tabs, commas and line ends.
#[must_use]
pub fn conf_tokens(s: &str) -> Vec<&str> {
    let s = s.trim_start_matches(c_isspace);
    if let Some(rest) = s.strip_prefix(',') {
        rest.split(',')
            .map(|t| t.trim_matches(c_isspace))
            .filter(|t| !t.is_empty())
            .collect()
    } else {
        s.split([' ', ',', '\t', '\r', '\n'])
            .filter(|t| !t.is_empty())
            .collect()
    }
}

/// Parses an `auth users` value such as `"alice, bob:ro @staff:rw *:deny"`.
/// Unknown suffixes are ignored, as rsync does.
///
/// ```
/// use ferrsync::daemon::secrets::{parse_auth_users, Access};
/// let u = parse_auth_users("alice, @staff:RW *:deny");
/// assert_eq!((u[1].pattern.as_str(), u[1].group, u[1].access), ("staff", true, Access::ReadWrite));
/// assert_eq!(u[2].access, Access::Deny);
/// ```
#[must_use]
pub fn parse_auth_users(s: &str) -> Vec<AuthUser> {
    conf_tokens(s)
        .into_iter()
        .map(|tok| {
            let (name, access) = match tok.split_once(':') {
                Some((name, opt)) => {
                    let opt = opt.as_bytes();
                    let lower = |i: usize| opt.get(i).map(u8::to_ascii_lowercase);
                    let access = match (lower(0), lower(1)) {
                        (Some(b'r'), Some(b'o')) => Access::ReadOnly,
                        (Some(b'r'), Some(b'w')) => Access::ReadWrite,
                        (Some(b'd'), _) => Access::Deny,
                        _ => Access::Default,
                    };
                    (name, access)
                }
                None => (tok, Access::Default),
            };
            match name.strip_prefix('@') {
                Some(g) => AuthUser {
                    pattern: g.to_owned(),
                    group: true,
                    access,
                },
                None => AuthUser {
                    pattern: name.to_owned(),
                    group: false,
                    access,
                },
            }
        })
        .collect()
}

/// Renders entries back to an `auth users` value that
/// [`parse_auth_users`] reads back to the same entries: the commas-only
/// form (a leading comma) when an entry holds a character the plain form
/// splits on (only entries read in that form can: they never start or
/// end with a C space, which that form trims).
#[must_use]
pub fn render_auth_users(users: &[AuthUser]) -> String {
    let parts: Vec<String> = users.iter().map(AuthUser::to_conf).collect();
    if parts.iter().any(|p| p.contains([' ', '\t', '\r', '\n'])) {
        format!(", {}", parts.join(", "))
    } else {
        parts.join(", ")
    }
}

/// Why a daemon refused a login. `Display` is the reason rsync logs after
/// `auth failed on module M from H (A) for U: `; see [`AuthFailure::log_line`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No `auth users` entry matches the user.
    #[error("no matching rule")]
    NoMatchingRule,
    /// The first matching entry has `:deny`.
    #[error("denied by rule")]
    DeniedByRule,
    /// The secrets file is unset, missing or unreadable, or a symlink owned
    /// by someone else.
    #[error("no secrets file")]
    NoSecretsFile,
    /// Strict modes: the secrets file is other-accessible, or not owned by
    /// root while we run as root. The detail is what rsync logs first.
    #[error("ignoring secrets file")]
    IgnoringSecretsFile {
        /// rsync's explanatory log line.
        detail: &'static str,
    },
    /// The user name starts with `#`.
    #[error("invalid username")]
    InvalidUsername,
    /// No line for the user (or its matched group).
    #[error("secret not found")]
    SecretNotFound,
    /// A line was found but the response does not match it.
    #[error("password mismatch")]
    PasswordMismatch,
}

impl AuthFailure {
    /// rsync's full log line, without the trailing newline.
    #[must_use]
    pub fn log_line(&self, module: &str, host: &str, addr: &str, user: &str) -> String {
        format!("auth failed on module {module} from {host} ({addr}) for {user}: {self}")
    }
}

/// Whether we run as root (then secrets and password files must be root's).
fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The first line of `text`, as rsync's `strtok(buf, "\n\r")` gives it:
/// leading line ends skipped, cut at the next one.
fn first_token(text: &str) -> Option<&str> {
    text.trim_start_matches(['\r', '\n'])
        .split(['\r', '\n'])
        .next()
        .filter(|s| !s.is_empty())
}

/// The names of the groups of `user` from passwd and group file texts:
/// `None` when the user is unknown.
fn groups_from(passwd: &str, group: &str, user: &str) -> Option<Vec<String>> {
    let primary = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(user)).then(|| f.nth(2).map(str::to_owned))?
    })?;
    let mut out = Vec::new();
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        let (Some(name), Some(gid), Some(members)) = (f.first(), f.get(2), f.get(3)) else {
            continue;
        };
        let is_member = members.split(',').any(|m| m.trim() == user);
        if (*gid == primary || is_member) && !out.iter().any(|g| g == name) {
            if *gid == primary {
                out.insert(0, (*name).to_owned());
            } else {
                out.push((*name).to_owned());
            }
        }
    }
    Some(out)
}

/// The groups of `user` per `/etc/passwd` and `/etc/group`.
fn system_groups(user: &str) -> Option<Vec<String>> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    groups_from(&passwd, &group, user)
}

/// Opens a secrets or password file, refusing a symlink that is owned by
/// neither root nor us (rsync's `open_no_attacker_symlinks`).
fn open_guarded(path: &Path) -> std::io::Result<File> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != 0 && meta.uid() != me {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "refusing a symlink owned by another user",
            ));
        }
    }
    File::open(path)
}

/// Checks a daemon login: `user` and `response` are the client's answer to
/// `challenge`, hashed with `digest`.
///
/// The first `auth users` entry whose wildcard matches the user (or, for
/// `@group` entries, one of the user's groups) decides; `:deny` fails.
/// Then the secrets file must hold `user:password`, or `@group:password`
/// for the group that matched, whose expected response equals `response`.
/// With `strict_modes` the file must not be other-accessible, and must be
/// owned by root when we run as root.
///
/// # Errors
/// An [`AuthFailure`] naming the reason rsync would log.
pub fn check_auth(
    users: &[AuthUser],
    secrets_file: &Path,
    strict_modes: bool,
    user: &str,
    response: &str,
    challenge: &str,
    digest: AuthDigest,
) -> Result<Access, AuthFailure> {
    let request = Login {
        user,
        response,
        challenge,
        digest,
    };
    check_auth_with(users, secrets_file, strict_modes, &request, system_groups)
}

/// One login attempt.
struct Login<'a> {
    user: &'a str,
    response: &'a str,
    challenge: &'a str,
    digest: AuthDigest,
}

fn check_auth_with(
    users: &[AuthUser],
    secrets_file: &Path,
    strict_modes: bool,
    login: &Login<'_>,
    groups_of: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<Access, AuthFailure> {
    let mut groups: Option<Vec<String>> = None;
    let mut matched: Option<(Access, Option<String>)> = None;
    for entry in users {
        if entry.group {
            let list = groups.get_or_insert_with(|| groups_of(login.user).unwrap_or_default());
            if let Some(g) = list
                .iter()
                .find(|g| wildmatch(entry.pattern.as_bytes(), g.as_bytes()))
            {
                matched = Some((entry.access, Some(g.clone())));
                break;
            }
        } else if wildmatch(entry.pattern.as_bytes(), login.user.as_bytes()) {
            matched = Some((entry.access, None));
            break;
        }
    }
    let (access, group) = matched.ok_or(AuthFailure::NoMatchingRule)?;
    if access == Access::Deny {
        return Err(AuthFailure::DeniedByRule);
    }
    check_secret(secrets_file, strict_modes, login, group.as_deref())?;
    Ok(access)
}

fn check_secret(
    path: &Path,
    strict_modes: bool,
    login: &Login<'_>,
    group: Option<&str>,
) -> Result<(), AuthFailure> {
    if path.as_os_str().is_empty() {
        return Err(AuthFailure::NoSecretsFile);
    }
    let mut file = open_guarded(path).map_err(|_| AuthFailure::NoSecretsFile)?;
    let meta = file.metadata().map_err(|_| AuthFailure::NoSecretsFile)?;
    if strict_modes {
        if meta.mode() & 0o006 != 0 {
            return Err(AuthFailure::IgnoringSecretsFile {
                detail: "secrets file must not be other-accessible (see strict modes option)",
            });
        }
        if running_as_root() && meta.uid() != 0 {
            return Err(AuthFailure::IgnoringSecretsFile {
                detail: "secrets file must be owned by root when running as root (see strict modes)",
            });
        }
    }
    if login.user.starts_with('#') {
        return Err(AuthFailure::InvalidUsername);
    }
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)
        .map_err(|_| AuthFailure::NoSecretsFile)?;
    let mut want_user = Some(login.user);
    let mut want_group = group;
    let mut err = AuthFailure::SecretNotFound;
    for line in raw.split(|&b| b == b'\n') {
        if want_user.is_none() && want_group.is_none() {
            break;
        }
        let line = line.split(|&b| b == b'\r').next().unwrap_or_default();
        let (is_group, body) = match line.strip_prefix(b"@") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let wanted = if is_group { want_group } else { want_user };
        let Some(name) = wanted else { continue };
        let Some(password) = body
            .strip_prefix(name.as_bytes())
            .and_then(|r| r.strip_prefix(b":"))
        else {
            continue;
        };
        if auth_response(login.digest, password, login.challenge) == login.response {
            return Ok(());
        }
        err = AuthFailure::PasswordMismatch;
        if is_group {
            want_group = None;
        } else {
            want_user = None;
        }
    }
    Err(err)
}

/// Reads a client's `--password-file` (`-` is standard input): the first
/// line, without CR/LF. The file must not be other-accessible, and must be
/// owned by root when we run as root.
///
/// # Errors
/// rsync's message for the failure (exit code 1 follows in rsync).
pub fn read_password_file(path: &Path) -> Result<String, String> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("could not read a password from standard input: {e}"))?;
        buf = line.into_bytes();
    } else {
        let file = open_guarded(path)
            .map_err(|e| format!("could not open password file {}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("fstat({}): {e}", path.display()))?;
        if meta.mode() & 0o006 != 0 {
            return Err("ERROR: password file must not be other-accessible".to_owned());
        }
        if running_as_root() && meta.uid() != 0 {
            return Err(
                "ERROR: password file must be owned by root when running as root".to_owned(),
            );
        }
        file.take(511)
            .read_to_end(&mut buf)
            .map_err(|e| format!("could not read password file {}: {e}", path.display()))?;
    }
    let text = String::from_utf8_lossy(&buf);
    first_token(&text)
        .map(str::to_owned)
        .ok_or_else(|| format!("ERROR: failed to read a password from {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    const CHALLENGE: &str = "8u1GrYzwxjRMMPiCd/wn9Q";

    fn secrets(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        fs::set_permissions(f.path(), fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    fn groups(user: &str) -> Option<Vec<String>> {
        match user {
            "carol" => Some(vec!["carol".into(), "staff".into()]),
            "dave" => Some(vec!["dave".into()]),
            _ => None,
        }
    }

    fn attempt(
        users: &str,
        file: &Path,
        strict: bool,
        user: &str,
        password: &str,
    ) -> Result<Access, AuthFailure> {
        let response = auth_response(AuthDigest::Md5, password.as_bytes(), CHALLENGE);
        let login = Login {
            user,
            response: &response,
            challenge: CHALLENGE,
            digest: AuthDigest::Md5,
        };
        check_auth_with(&parse_auth_users(users), file, strict, &login, groups)
    }

    #[test]
    fn auth_users_parsing() {
        let u = parse_auth_users("alice, bob:ro @staff:rw *:deny eve:Deny x:zz");
        let want = [
            ("alice", false, Access::Default),
            ("bob", false, Access::ReadOnly),
            ("staff", true, Access::ReadWrite),
            ("*", false, Access::Deny),
            ("eve", false, Access::Deny),
            ("x", false, Access::Default),
        ];
        assert_eq!(u.len(), want.len());
        for (got, (p, g, a)) in u.iter().zip(want) {
            assert_eq!((got.pattern.as_str(), got.group, got.access), (p, g, a));
        }
        let spaced = parse_auth_users(", @domain users:ro , bob");
        assert_eq!(spaced[0].pattern, "domain users");
        assert_eq!(parse_auth_users(&render_auth_users(&spaced)), spaced);
        assert_eq!(parse_auth_users(&render_auth_users(&u)), u);
    }

    /// Fuzz find: the token `:` (empty name) rendered as nothing, so the
    /// rendered value started with a comma and was read back in the
    /// commas-only form, which trims a trailing form feed off `b\x0c`.
    /// rsync's conf_strtok: the plain form splits on space, comma, tab,
    /// CR, LF only (a form feed stays in the name); the commas-only form
    /// trims C spaces around each entry.
    #[test]
    fn auth_users_round_trip_with_form_feeds_and_empty_names() {
        for text in [
            ": a, b\x0c",
            ":ro, x\x0c,y",
            "\x0c\x0ba\x0cb c:rw",
            ", a b , \x0cc\x0c ,:deny",
            ", a\rb, c",
            // Fuzz find: the name `x\t@f\t` (trimmed before the `:`).
            ",lstgres\x0b\x0ba\x0b\u{fffd}\t@f\t: ",
            ", y\x0c:, z",
        ] {
            let u = parse_auth_users(text);
            let r = render_auth_users(&u);
            assert_eq!(parse_auth_users(&r), u, "{text:?} -> {r:?}");
        }
        let u = parse_auth_users(": a, b\x0c");
        assert_eq!(u.len(), 3);
        assert_eq!((u[0].pattern.as_str(), u[0].access), ("", Access::Default));
        assert_eq!(u[2].pattern, "b\x0c");
        // Leading C spaces are skipped, in both forms (form feed, vertical tab).
        assert_eq!(parse_auth_users("\x0c\x0ba\x0cb c:rw")[0].pattern, "a\x0cb");
        let c = parse_auth_users(", a b , \x0cc\x0c ,:deny");
        assert_eq!(c[1].pattern, "c");
        assert_eq!((c[2].pattern.as_str(), c[2].access), ("", Access::Deny));
        assert_eq!(parse_auth_users(", y\t:, z")[0].pattern, "y\t");
        // Unicode spaces are not C spaces.
        assert_eq!(parse_auth_users(", \u{a0}x")[0].pattern, "\u{a0}x");
    }

    #[test]
    fn secrets_rules() {
        let f = secrets(
            "# comment\n#alice:nope\n\nalice:s3cret\r\nbob:pw\n@staff:grouppw\ncarol:own\n",
            0o600,
        );
        let p = f.path();
        // (auth users, user, password, expected)
        let rows: &[(&str, &str, &str, Result<Access, AuthFailure>)] = &[
            ("alice", "alice", "s3cret", Ok(Access::Default)),
            (
                "alice",
                "alice",
                "wrong",
                Err(AuthFailure::PasswordMismatch),
            ),
            ("al*:ro", "alice", "s3cret", Ok(Access::ReadOnly)),
            ("bob", "alice", "s3cret", Err(AuthFailure::NoMatchingRule)),
            (
                "alice:deny *",
                "alice",
                "s3cret",
                Err(AuthFailure::DeniedByRule),
            ),
            ("*:rw", "bob", "pw", Ok(Access::ReadWrite)),
            ("*", "zed", "pw", Err(AuthFailure::SecretNotFound)),
            ("@staff:rw", "carol", "grouppw", Ok(Access::ReadWrite)),
            ("@staff", "carol", "own", Ok(Access::Default)),
            (
                "@staff",
                "carol",
                "other",
                Err(AuthFailure::PasswordMismatch),
            ),
            ("@st*", "dave", "grouppw", Err(AuthFailure::NoMatchingRule)),
            (
                "@staff",
                "nobody-here",
                "x",
                Err(AuthFailure::NoMatchingRule),
            ),
            // A user entry does not open @group lines.
            (
                "carol",
                "carol",
                "grouppw",
                Err(AuthFailure::PasswordMismatch),
            ),
            ("*", "#alice", "nope", Err(AuthFailure::InvalidUsername)),
        ];
        for (users, user, password, want) in rows {
            assert_eq!(
                &attempt(users, p, true, user, password),
                want,
                "{users} {user} {password}"
            );
        }
    }

    #[test]
    fn strict_modes() {
        let f = secrets("alice:s3cret\n", 0o604);
        let e = attempt("alice", f.path(), true, "alice", "s3cret").unwrap_err();
        assert!(matches!(e, AuthFailure::IgnoringSecretsFile { .. }));
        assert_eq!(
            e.log_line("upload", "UNKNOWN", "127.0.0.1", "alice"),
            "auth failed on module upload from UNKNOWN (127.0.0.1) for alice: ignoring secrets file"
        );
        if !running_as_root() {
            assert_eq!(
                attempt("alice", f.path(), false, "alice", "s3cret"),
                Ok(Access::Default)
            );
        }
        assert_eq!(
            attempt(
                "alice",
                Path::new("/nonexistent/secrets"),
                true,
                "alice",
                "x"
            ),
            Err(AuthFailure::NoSecretsFile)
        );
        assert_eq!(
            attempt("alice", Path::new(""), true, "alice", "x"),
            Err(AuthFailure::NoSecretsFile)
        );
    }

    #[test]
    fn public_check_auth() {
        let f = secrets("alice:s3cret\n", 0o600);
        if running_as_root() {
            return;
        }
        let response = auth_response(AuthDigest::Sha512, b"s3cret", "abc");
        let users = parse_auth_users("alice:rw");
        assert_eq!(
            check_auth(
                &users,
                f.path(),
                true,
                "alice",
                &response,
                "abc",
                AuthDigest::Sha512
            ),
            Ok(Access::ReadWrite)
        );
    }

    #[test]
    fn group_files() {
        let passwd = "root:x:0:0::/root:/bin/sh\ncarol:x:1000:1000::/home/carol:/bin/sh\n";
        let group = "root:x:0:\ncarol:x:1000:\nstaff:x:50:dave,carol\nwheel:x:10:dave\n";
        assert_eq!(
            groups_from(passwd, group, "carol"),
            Some(vec!["carol".to_owned(), "staff".to_owned()])
        );
        assert_eq!(groups_from(passwd, group, "dave"), None);
    }

    #[test]
    fn password_file() {
        let good = secrets("\ns3cret\r\nsecond line\n", 0o600);
        if !running_as_root() {
            assert_eq!(read_password_file(good.path()).unwrap(), "s3cret");
        }
        let open = secrets("s3cret\n", 0o644);
        assert_eq!(
            read_password_file(open.path()).unwrap_err(),
            "ERROR: password file must not be other-accessible"
        );
        let empty = secrets("\n\n", 0o600);
        if !running_as_root() {
            assert!(
                read_password_file(empty.path())
                    .unwrap_err()
                    .starts_with("ERROR: failed to read a password from")
            );
        }
        assert!(
            read_password_file(Path::new("/nonexistent/pw"))
                .unwrap_err()
                .starts_with("could not open password file")
        );
    }
}
