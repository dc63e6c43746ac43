//! The client side of the rsync daemon text protocol: greeting, module
//! listing, MOTD, authentication and the argument words, over TCP or any
//! byte stream (daemon over a remote shell).
//!
//! Layer: transport (L4). Uses handshake (sans-IO daemon vocabulary) and
//! tokio; never the engine. Mirrors upstream clientserver.c
//! `start_inband_exchange` and authenticate.c `auth_client`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferrsync::Error> {
//! use ferrsync::transport::daemon::{DaemonUrl, list_modules};
//! let url = DaemonUrl::parse("rsync://127.0.0.1:8873/").unwrap();
//! let mut stream = url.connect().await?;
//! for m in list_modules(&mut stream, 32, &mut |_| {}).await? {
//!     println!("{}\t{}", m.name, m.comment);
//! }
//! # Ok(()) }
//! ```

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::handshake::daemon::{
    AuthDigest, DaemonLine, auth_response, classify_line, encode_args, format_greeting,
    negotiate_auth_digest, negotiate_protocol, parse_greeting,
};

/// The daemon's default TCP port.
pub const DEFAULT_PORT: u16 = 873;

/// The longest line we accept from a daemon (rsync's own limit is 4 KiB
/// for most lines; MOTD lines are read with the same buffer).
const MAX_LINE: usize = 16 * 1024;

/// Where a daemon path points: `rsync://[user@]host[:port]/module/path` or
/// `[user@]host::module/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonUrl {
    /// The login for daemon authentication, if given.
    pub user: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port (873 unless given).
    pub port: u16,
    /// The module; empty to ask for the module list.
    pub module: String,
    /// The path inside the module (may be empty).
    pub path: String,
}

impl DaemonUrl {
    /// Parses either daemon form; `None` for anything else (a local path or
    /// a remote-shell `host:path`).
    #[must_use]
    pub fn parse(s: &str) -> Option<DaemonUrl> {
        if let Some(rest) = s.strip_prefix("rsync://") {
            let (hostpart, modpath) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            let (user, hostport) = split_user(hostpart);
            let (host, port) = split_port(hostport)?;
            let (module, path) = split_module(modpath);
            return Some(DaemonUrl {
                user,
                host,
                port,
                module,
                path,
            });
        }
        let i = s.find("::")?;
        let hostpart = &s[..i];
        if hostpart.contains('/') || hostpart.is_empty() {
            return None;
        }
        let (user, host) = split_user(hostpart);
        let (module, path) = split_module(&s[i + 2..]);
        Some(DaemonUrl {
            user,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: DEFAULT_PORT,
            module,
            path,
        })
    }

    /// The path word the daemon gets for this URL (`module/path`; a bare
    /// module becomes `module/`).
    #[must_use]
    pub fn path_word(&self) -> String {
        let mut w = format!("{}/{}", self.module, self.path);
        if w.starts_with('-') {
            w.insert_str(0, "./");
        }
        w
    }

    /// Opens a TCP connection to the daemon.
    ///
    /// # Errors
    /// [`Error::Start`] when the connection cannot be made.
    pub async fn connect(&self) -> Result<TcpStream> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                Error::Start(format!(
                    "failed to connect to {} ({}): {e}",
                    self.host, self.port
                ))
            })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// The user to authenticate as: the URL's, else `$USER`, else
    /// `$LOGNAME`, else `nobody` (as rsync does).
    #[must_use]
    pub fn auth_user(&self) -> String {
        self.user
            .clone()
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "nobody".to_string())
    }
}

fn split_user(s: &str) -> (Option<String>, &str) {
    match s.rfind('@') {
        Some(i) => (Some(s[..i].to_string()), &s[i + 1..]),
        None => (None, s),
    }
}

fn split_port(s: &str) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = rest[..end].to_string();
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            _ => DEFAULT_PORT,
        };
        return Some((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = if p.is_empty() {
                DEFAULT_PORT
            } else {
                p.parse().ok()?
            };
            Some((h.to_string(), port))
        }
        _ => Some((s.to_string(), DEFAULT_PORT)),
    }
}

fn split_module(s: &str) -> (String, String) {
    match s.find('/') {
        Some(i) => (s[..i].to_string(), s[i + 1..].to_string()),
        None => (s.to_string(), String::new()),
    }
}

/// One entry of a daemon's module list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleListing {
    /// The module name.
    pub name: String,
    /// Its comment (may be empty).
    pub comment: String,
}

/// How to answer a daemon's authentication request.
#[derive(Clone)]
pub struct Credentials {
    /// The login (see [`DaemonUrl::auth_user`]).
    pub user: String,
    /// The password; `None` means the daemon's challenge cannot be answered.
    pub password: Option<String>,
    /// The digests we offer in our greeting, strongest first.
    pub digests: Vec<AuthDigest>,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            user: String::new(),
            password: None,
            digests: AuthDigest::OFFERED.to_vec(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Reads one `\n`-terminated line (without the newline; a trailing `\r`
/// is dropped too), one byte at a time so that nothing after it is
/// consumed. `Ok(None)` at a clean end of stream before any byte.
///
/// # Errors
/// A line longer than the limit, or a broken connection.
pub async fn read_line<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let mut b = [0u8; 1];
        let n = s.read(&mut b).await.map_err(Error::Connection)?;
        if n == 0 {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(Error::UnexpectedEof(line.len() as u64));
        }
        if b[0] == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
        line.push(b[0]);
        if line.len() > MAX_LINE {
            return Err(Error::Protocol("line from daemon too long".into()));
        }
    }
}

async fn write_all<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> Result<()> {
    s.write_all(bytes).await.map_err(Error::Connection)?;
    s.flush().await.map_err(Error::Connection)
}

/// What the greeting exchange settled.
#[derive(Debug, Clone)]
pub struct Greeted {
    /// The protocol both sides will speak.
    pub protocol: u8,
    /// The daemon's auth digest list, if it sent one.
    pub digests: Option<Vec<String>>,
}

/// Sends our greeting and reads the daemon's.
///
/// # Errors
/// A malformed greeting or an unusable protocol.
pub async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ours: u8,
    digests: &[AuthDigest],
) -> Result<Greeted> {
    write_all(s, format_greeting(ours, digests).as_bytes()).await?;
    let line = read_line(s).await?.ok_or(Error::UnexpectedEof(0))?;
    let g = parse_greeting(&line, false).map_err(|e| Error::Start(e.to_string()))?;
    let protocol = negotiate_protocol(ours, &g).map_err(|e| Error::Version(e.to_string()))?;
    Ok(Greeted {
        protocol,
        digests: g.digests,
    })
}

/// Asks for the module list; MOTD lines go to `motd` (the daemon's lines
/// before the list cannot be told from list lines by the protocol, so
/// lines that do not look like `name<TAB>comment` are treated as MOTD).
///
/// # Errors
/// A refusal (`@ERROR`) or a broken connection.
pub async fn list_modules<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ours: u8,
    motd: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<ModuleListing>> {
    greet(s, ours, &AuthDigest::OFFERED).await?;
    write_all(s, b"\n").await?;
    let mut out = Vec::new();
    let mut in_motd = true;
    while let Some(line) = read_line(s).await? {
        match classify_line(&line) {
            DaemonLine::Exit => return Ok(out),
            DaemonLine::Error(e) => return Err(Error::DaemonRefused(e.to_string())),
            DaemonLine::Ok | DaemonLine::AuthReqd(_) => {
                return Err(Error::Protocol(format!("unexpected daemon line: {line}")));
            }
            DaemonLine::Text(t) => {
                if in_motd && t.is_empty() {
                    in_motd = false;
                    continue;
                }
                match t.split_once('\t') {
                    Some((name, comment)) if !name.trim().is_empty() => {
                        in_motd = false;
                        out.push(ModuleListing {
                            name: name.trim_end().to_string(),
                            comment: comment.to_string(),
                        });
                    }
                    _ => motd(t),
                }
            }
        }
        if out.len() > 100_000 {
            return Err(Error::Protocol("module list too long".into()));
        }
    }
    // Daemons below protocol 25 just close after the list.
    Ok(out)
}

/// Opens `module`: greeting, module line, authentication when asked, and
/// the argument words (`args` are the `--server ...` words; `.` and the
/// path words are appended here). Returns the negotiated protocol; the
/// binary setup follows on the same stream, without version ints.
///
/// # Errors
/// [`Error::DaemonRefused`] for an `@ERROR` line (unknown module, access
/// denied, auth failed, max connections), [`Error::Start`] when the daemon
/// asks for a password and none was given, or a broken connection.
pub async fn open_module<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ours: u8,
    module: &str,
    creds: &Credentials,
    motd: &mut (dyn FnMut(&str) + Send),
    args: &(dyn Fn(u8) -> Vec<String> + Sync),
    paths: &[String],
) -> Result<u8> {
    let g = greet(s, ours, &creds.digests).await?;
    write_all(s, format!("{module}\n").as_bytes()).await?;
    loop {
        let line = read_line(s).await?.ok_or(Error::UnexpectedEof(0))?;
        match classify_line(&line) {
            DaemonLine::Ok => break,
            DaemonLine::Exit => {
                return Err(Error::Protocol(
                    "daemon ended the session before the transfer".into(),
                ));
            }
            DaemonLine::Error(e) => return Err(Error::DaemonRefused(e.to_string())),
            DaemonLine::AuthReqd(challenge) => {
                let Some(password) = &creds.password else {
                    return Err(Error::Start(format!(
                        "module {module} needs a password: set RSYNC_PASSWORD, use --password-file, or give one through the API"
                    )));
                };
                let digest =
                    negotiate_auth_digest(&creds.digests, g.digests.as_deref(), g.protocol, false)
                        .ok_or_else(|| {
                            Error::Start("no common daemon authentication digest".into())
                        })?;
                let resp = auth_response(digest, password.as_bytes(), challenge);
                write_all(s, format!("{} {resp}\n", creds.user).as_bytes()).await?;
            }
            DaemonLine::Text(t) => motd(t),
        }
    }
    let mut words = args(g.protocol);
    words.push(".".into());
    words.extend(paths.iter().cloned());
    write_all(s, &encode_args(&words, g.protocol)).await?;
    Ok(g.protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = DaemonUrl::parse("rsync://alice@example.org:8873/pub/src/").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!((u.host.as_str(), u.port), ("example.org", 8873));
        assert_eq!((u.module.as_str(), u.path.as_str()), ("pub", "src/"));
        assert_eq!(u.path_word(), "pub/src/");
        let u = DaemonUrl::parse("rsync://[::1]:99/m").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.module.as_str()),
            ("::1", 99, "m")
        );
        assert_eq!(u.path_word(), "m/");
        let u = DaemonUrl::parse("rsync://host").unwrap();
        assert_eq!((u.port, u.module.as_str()), (873, ""));
        let u = DaemonUrl::parse("bob@host::mod/a/b").unwrap();
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(
            (u.host.as_str(), u.module.as_str(), u.path.as_str()),
            ("host", "mod", "a/b")
        );
        let u = DaemonUrl::parse("host::").unwrap();
        assert_eq!(u.module, "");
        assert!(DaemonUrl::parse("host:path").is_none());
        assert!(DaemonUrl::parse("./a::b").is_none());
        assert!(DaemonUrl::parse("/tmp/x").is_none());
    }

    #[tokio::test]
    async fn read_line_stops_at_newline() {
        let data: &[u8] = b"@RSYNCD: OK\r\nrest";
        let mut r = data;
        assert_eq!(
            read_line(&mut r).await.unwrap().as_deref(),
            Some("@RSYNCD: OK")
        );
        assert_eq!(r, b"rest");
        let mut long = vec![b'a'; MAX_LINE + 2];
        long.push(b'\n');
        assert!(read_line(&mut long.as_slice()).await.is_err());
        let mut empty: &[u8] = b"";
        assert!(read_line(&mut empty).await.unwrap().is_none());
    }
}
