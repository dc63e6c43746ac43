//! Serving modules: the listener, one thread per connection, and the
//! daemon side of the text protocol (greeting, listing, access checks,
//! authentication, argument words) before the engine takes over.
//!
//! Layer: daemon (L5). Uses handshake, engine and the daemon config.
//! Mirrors upstream clientserver.c (`start_daemon`, `rsync_module`) and
//! socket.c (`start_accept_loop`).
//!
//! Each connection runs on its own OS thread with its own single-threaded
//! runtime, so a connection may confine itself (a per-thread `chroot` and
//! per-thread uid/gid, see [`super::confine`]) without touching the others,
//! and a slow file system never stalls the accept loop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use super::config::{DaemonConfig, Module};
use super::log::DaemonLog;
use super::secrets::{Access, check_auth};
use crate::engine::{self, Hooks, ServerArgs, ServerContext, parse_server_args};
use crate::error::{Error, Result};
use crate::handshake::daemon::{
    AuthDigest, decode_args, format_greeting, make_challenge, module_list_line,
    negotiate_auth_digest, negotiate_protocol, parse_greeting,
};
use crate::wire::{Decoded, ProtocolVersion};

/// The longest text line we read from a client.
const MAX_LINE: usize = 4096;
/// Bounds of the argument words.
const MAX_ARGS_BYTES: usize = 256 * 1024;
const MAX_ARGS_WORDS: usize = 10_000;

/// An rsync daemon serving the modules of a [`DaemonConfig`].
///
/// ```no_run
/// # async fn demo() -> Result<(), ferrsync::Error> {
/// use ferrsync::daemon::{Daemon, config::{DaemonConfig, Module}};
/// let mut cfg = DaemonConfig::default();
/// let mut m = Module::new("backup", "/srv/backup");
/// m.read_only = false;
/// cfg.modules.push(m);
/// let daemon = Daemon::new(cfg);
/// let listener = daemon.bind("127.0.0.1:8873").await?;
/// daemon.serve(listener).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Daemon {
    /// Swapped whole by [`Daemon::reload`]; a connection takes its copy
    /// when it asks for a module, so a reload never touches one in flight.
    cfg: Arc<RwLock<Arc<DaemonConfig>>>,
    shared: Arc<Shared>,
    /// Longest time from connect to the start of the transfer.
    handshake_timeout: Duration,
    /// Idle timeout (seconds) of a transfer whose module sets no `timeout`.
    idle_timeout: u32,
    limits: crate::wire::Limits,
    /// Auth digests offered, strongest first.
    digests: Arc<[AuthDigest]>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("modules", &self.config().modules.len())
            .field("active", &self.active_connections())
            .finish()
    }
}

struct Shared {
    /// Connections per module (for `max connections`).
    counts: Mutex<HashMap<String, u32>>,
    /// Connections being served.
    active: AtomicUsize,
    idle: Notify,
    shutdown: watch::Sender<bool>,
    log: DaemonLog,
}

/// Stops a running [`Daemon`]: no new connections, then waits (with a
/// bound) for those in flight.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShutdownHandle")
    }
}

impl ShutdownHandle {
    /// Asks the daemon to stop accepting; [`Daemon::serve`] then waits up
    /// to its grace period for transfers in flight and returns.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }
}

/// Decrements the connection counters when a connection ends, however it
/// ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

struct ModuleSlot {
    shared: Arc<Shared>,
    name: String,
}

impl Drop for ModuleSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.shared.counts.lock() {
            if let Some(n) = c.get_mut(&self.name) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its address (`None` over a remote shell).
    pub addr: Option<IpAddr>,
    /// Its host name, when looked up.
    pub host: Option<String>,
}

impl PeerInfo {
    fn addr_text(&self) -> String {
        self.addr
            .map_or_else(|| "0.0.0.0".to_string(), |a| a.to_string())
    }

    fn host_text(&self) -> String {
        self.host.clone().unwrap_or_else(|| "UNKNOWN".to_string())
    }
}

impl Daemon {
    /// A daemon for these modules.
    #[must_use]
    pub fn new(cfg: DaemonConfig) -> Self {
        let log = DaemonLog::open(cfg.global.log_file.as_deref());
        let (tx, _) = watch::channel(false);
        Daemon {
            cfg: Arc::new(RwLock::new(Arc::new(cfg))),
            shared: Arc::new(Shared {
                counts: Mutex::new(HashMap::new()),
                active: AtomicUsize::new(0),
                idle: Notify::new(),
                shutdown: tx,
                log,
            }),
            handshake_timeout: Duration::from_secs(u64::from(
                crate::wire::Limits::default().handshake_timeout_secs,
            )),
            idle_timeout: crate::wire::Limits::default().idle_timeout_secs,
            limits: crate::wire::Limits::default(),
            digests: AuthDigest::OFFERED.into(),
        }
    }

    /// Offers only these auth digests (strongest first); the default is
    /// every digest rsync 3.5.0 offers.
    #[must_use]
    pub fn with_auth_digests(mut self, digests: &[AuthDigest]) -> Self {
        self.digests = digests.into();
        self
    }

    /// How long a client may take from connecting to the start of the
    /// transfer (greeting, module, authentication, arguments); 60 seconds
    /// by default.
    #[must_use]
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// The idle I/O timeout of a transfer whose module sets no `timeout`
    /// (`Limits::idle_timeout_secs`, 600 seconds, by default; rounded up
    /// to whole seconds; zero turns it off, as rsync has it). Like a
    /// module's `timeout`, it also caps a longer `--timeout` asked for by
    /// the client.
    #[must_use]
    pub fn with_idle_timeout(mut self, t: Duration) -> Self {
        let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
        self.idle_timeout = u32::try_from(secs).unwrap_or(u32::MAX);
        self
    }

    /// The bounds on what a client may send (file-list entries, name and
    /// message lengths, ...; see [`crate::wire::Limits`]). The idle
    /// timeout stays [`Daemon::with_idle_timeout`]'s.
    #[must_use]
    pub fn with_limits(mut self, limits: crate::wire::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> Arc<DaemonConfig> {
        self.cfg
            .read()
            .map_or_else(|p| p.into_inner().clone(), |c| c.clone())
    }

    /// Replaces the configuration: connections from now on see `cfg`;
    /// those already past the module choice keep the module they got.
    /// The global `port`, `address` and `log file` only apply at the next
    /// [`Daemon::bind`] / [`Daemon::new`].
    pub fn reload(&self, cfg: DaemonConfig) {
        let mut slot = self
            .cfg
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(cfg);
    }

    /// Connections being served right now.
    #[must_use]
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// A handle that stops [`Daemon::serve`].
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Binds the listening socket.
    ///
    /// # Errors
    /// [`Error::Start`] when the address cannot be bound.
    pub async fn bind(&self, addr: &str) -> Result<TcpListener> {
        TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Start(format!("failed to bind {addr}: {e}")))
    }

    /// The address the config asks for (`address`, `port`).
    #[must_use]
    pub fn configured_address(&self) -> String {
        let cfg = self.config();
        let host = cfg.global.address.as_deref().unwrap_or("0.0.0.0");
        if host.contains(':') {
            format!("[{host}]:{}", cfg.global.port)
        } else {
            format!("{host}:{}", cfg.global.port)
        }
    }

    /// Accepts and serves connections until [`ShutdownHandle::shutdown`],
    /// then waits up to 30 seconds for transfers in flight.
    ///
    /// # Errors
    /// Accepting failed in a way that is not about one connection.
    pub async fn serve(&self, listener: TcpListener) -> Result<()> {
        self.serve_with_grace(listener, Duration::from_secs(30))
            .await
    }

    /// [`Daemon::serve`] with a chosen shutdown grace period.
    ///
    /// # Errors
    /// As [`Daemon::serve`].
    pub async fn serve_with_grace(&self, listener: TcpListener, grace: Duration) -> Result<()> {
        let mut stop = self.shared.shutdown.subscribe();
        loop {
            tokio::select! {
                res = listener.accept() => {
                    match res {
                        Ok((stream, peer)) => self.spawn_connection(stream, peer),
                        Err(e) => {
                            // Out of descriptors and the like: say so, back
                            // off a little, keep serving.
                            self.shared.log.line(&format!("accept failed: {e}"));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                _ = stop.changed() => break,
            }
        }
        drop(listener);
        let wait = async {
            loop {
                let idle = self.shared.idle.notified();
                if self.active_connections() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
        Ok(())
    }

    fn spawn_connection(&self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let Ok(std_stream) = stream.into_std() else {
            return;
        };
        self.shared.active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(self.shared.clone());
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ferrsync-conn".into())
            .spawn(move || {
                let _guard = guard;
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                        return;
                    };
                    let _ = stream.set_nodelay(true);
                    let info = PeerInfo {
                        addr: Some(canonical_ip(peer.ip())),
                        host: None,
                    };
                    let _ = this.serve_connection(stream, info, true).await;
                });
            });
        if spawned.is_err() {
            self.shared
                .log
                .line("could not start a thread for a connection; dropped it");
        }
    }

    /// Serves one connection on the current task: the whole daemon
    /// dialogue, then the transfer. `may_confine` allows a per-thread
    /// chroot and uid/gid switch (only pass true when this thread serves
    /// nothing else).
    ///
    /// # Errors
    /// The session's error, after it was reported to the client.
    pub async fn serve_connection<S>(
        &self,
        io: S,
        mut peer: PeerInfo,
        may_confine: bool,
    ) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut rd, mut wr) = tokio::io::split(io);
        let t = self.handshake_timeout;
        let dialogue =
            tokio::time::timeout(t, self.dialogue(&mut rd, &mut wr, &mut peer, may_confine)).await;
        let accepted = match dialogue {
            Ok(Ok(Some(a))) => a,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => {
                let _ = wr.flush().await;
                self.shared.log.line(&format!(
                    "connection from {} ended before the transfer: {e}",
                    peer.addr_text()
                ));
                return Err(e);
            }
            Err(_) => {
                self.shared.log.line(&format!(
                    "connection from {} timed out before the transfer",
                    peer.addr_text()
                ));
                return Err(Error::Timeout);
            }
        };
        let Accepted {
            module,
            protocol,
            sa,
            access,
            user,
            slot: _slot,
            option_error,
            confined,
        } = accepted;
        if let Some(msg) = option_error {
            return refuse_after_setup(rd, wr, protocol, &msg).await;
        }
        let mut sa = sa;
        let read_only = match access {
            Access::ReadOnly => true,
            Access::ReadWrite => false,
            _ => module.read_only,
        };
        sa.options.module_root = Some(confined.root(&module.path));
        match map_paths(&module, &confined, &mut sa) {
            Ok(()) => {}
            Err(msg) => return refuse_after_setup(rd, wr, protocol, &msg).await,
        }
        let ctx = ServerContext {
            protocol: Some(protocol),
            io_timeout: (module.timeout > 0).then_some(module.timeout),
            read_only,
            write_only: module.write_only,
        };
        let log = self.shared.log.clone();
        let hooks = Hooks {
            events: log.transfer_sink(&module, &peer, &user, sa.sender),
            messages: None,
        };
        let res = engine::run_server_with(rd, wr, &sa, &hooks, &ctx).await;
        if let Err(e) = &res {
            log.line(&format!(
                "rsync error on module {} from {} ({}): {e}",
                module.name,
                peer.host_text(),
                peer.addr_text()
            ));
        }
        res.map(|_| ())
    }

    /// The text part of the protocol. `Ok(None)` when the connection ended
    /// without a transfer (a listing, or a refusal already sent).
    async fn dialogue<R, W>(
        &self,
        rd: &mut R,
        wr: &mut W,
        peer: &mut PeerInfo,
        may_confine: bool,
    ) -> Result<Option<Accepted>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let ours = ProtocolVersion::MAX.0;
        let cfg = self.config();
        let mut hello = format_greeting(ours, &self.digests);
        if let Some(motd) = &cfg.global.motd_file {
            if let Ok(text) = std::fs::read_to_string(motd) {
                hello.push_str(&text);
                if !text.is_empty() && !text.ends_with('\n') {
                    hello.push('\n');
                }
                hello.push('\n');
            }
        }
        send(wr, &hello).await?;
        let Some(line) = read_line(rd).await? else {
            return Ok(None);
        };
        let greeting = match parse_greeting(&line, true) {
            Ok(g) => g,
            Err(e) => {
                send(wr, &format!("@ERROR: {e}\n")).await?;
                return Ok(None);
            }
        };
        let protocol = match negotiate_protocol(ours, &greeting) {
            Ok(p) => p,
            Err(e) => {
                send(wr, &format!("@ERROR: {e}\n")).await?;
                return Ok(None);
            }
        };
        let mut line = read_line(rd).await?.unwrap_or_default();
        if let Some(n) = line.strip_prefix("#early_input=") {
            // We run no `early exec` script; read and drop the bytes.
            let n: usize = n.trim().parse().unwrap_or(usize::MAX);
            if n > 5120 {
                send(wr, "@ERROR: invalid early_input length\n").await?;
                return Ok(None);
            }
            let mut buf = vec![0u8; n];
            rd.read_exact(&mut buf).await.map_err(Error::Connection)?;
            line = read_line(rd).await?.unwrap_or_default();
        }
        if line.is_empty() || line == "#list" {
            let mut out = String::new();
            for m in cfg.modules.iter().filter(|m| m.list) {
                out.push_str(&module_list_line(&m.name, &m.comment));
            }
            if protocol >= 25 {
                out.push_str("@RSYNCD: EXIT\n");
            }
            send(wr, &out).await?;
            return Ok(None);
        }
        if line.starts_with('#') {
            send(wr, &format!("@ERROR: Unknown command '{line}'\n")).await?;
            return Ok(None);
        }
        let name = line;
        let Some(module) = cfg.module(&name).cloned() else {
            self.refuse(wr, &format!("Unknown module '{name}'"), peer)
                .await?;
            return Ok(None);
        };
        let names = module.hosts_allow.needs_hostname() || module.hosts_deny.needs_hostname();
        if names && cfg.global.reverse_lookup {
            // rsync says UNKNOWN for an address without a name.
            peer.host = Some(
                peer.addr
                    .and_then(reverse_lookup)
                    .unwrap_or_else(|| "UNKNOWN".to_string()),
            );
        }
        if let Some(addr) = peer.addr {
            if !super::hosts::allow_access(
                &module.hosts_allow,
                &module.hosts_deny,
                addr,
                peer.host.as_deref(),
            ) {
                let msg = format!(
                    "access denied to {} from {} ({})",
                    module.name,
                    peer.host_text(),
                    peer.addr_text()
                );
                self.refuse(wr, &msg, peer).await?;
                return Ok(None);
            }
        }
        let Some(slot) = self.take_slot(&module) else {
            let msg = format!(
                "max connections ({}) reached -- try again later",
                module.max_connections
            );
            self.refuse(wr, &msg, peer).await?;
            return Ok(None);
        };
        let mut access = Access::Default;
        let mut user = String::new();
        if !module.auth_users.is_empty() {
            let Some(digest) =
                negotiate_auth_digest(&self.digests, greeting.digests.as_deref(), protocol, true)
            else {
                let list: Vec<&str> = self.digests.iter().map(|d| d.name()).collect();
                let msg = format!(
                    "your client does not support one of our daemon-auth checksums: {}",
                    list.join(" ")
                );
                self.refuse(wr, &msg, peer).await?;
                return Ok(None);
            };
            let challenge = make_challenge(digest, &peer.addr_text());
            send(wr, &format!("@RSYNCD: AUTHREQD {challenge}\n")).await?;
            let answer = read_line(rd).await?.unwrap_or_default();
            let (who, response) = answer.split_once(' ').unwrap_or((answer.as_str(), ""));
            let ok = module.secrets_file.as_deref().map(|file| {
                check_auth(
                    &module.auth_users,
                    file,
                    module.strict_modes,
                    who,
                    response,
                    &challenge,
                    digest,
                )
            });
            match ok {
                Some(Ok(a)) if a != Access::Deny => {
                    access = a;
                    user = who.to_string();
                }
                other => {
                    if let Some(Err(why)) = other {
                        self.shared.log.line(&format!(
                            "auth failed on module {} from {} ({}) for {who}: {why}",
                            module.name,
                            peer.host_text(),
                            peer.addr_text()
                        ));
                    }
                    send(
                        wr,
                        &format!("@ERROR: auth failed on module {}\n", module.name),
                    )
                    .await?;
                    return Ok(None);
                }
            }
        }
        let confined = if may_confine {
            match super::confine::enter(&module) {
                Ok(c) => c,
                Err(msg) => {
                    self.refuse(wr, &msg, peer).await?;
                    return Ok(None);
                }
            }
        } else {
            super::confine::Confined::none()
        };
        send(wr, "@RSYNCD: OK\n").await?;
        let words = read_arg_words(rd, protocol).await?;
        let (sa, option_error) = match self.parse_args(&module, &words, rd, protocol).await? {
            Ok(sa) => (sa, None),
            Err(msg) => (ServerArgs::default(), Some(msg)),
        };
        self.shared.log.line(&format!(
            "{} on {} from {}{} ({})",
            if sa.sender { "rsync to" } else { "rsync on" },
            module.name,
            if user.is_empty() {
                String::new()
            } else {
                format!("{user}@")
            },
            peer.host_text(),
            peer.addr_text()
        ));
        Ok(Some(Accepted {
            module,
            protocol,
            sa,
            access,
            user,
            slot,
            option_error,
            confined,
        }))
    }

    async fn refuse<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        msg: &str,
        peer: &PeerInfo,
    ) -> Result<()> {
        self.shared.log.line(&format!(
            "refused connect from {} ({}): {msg}",
            peer.host_text(),
            peer.addr_text()
        ));
        send(wr, &format!("@ERROR: {msg}\n")).await
    }

    fn take_slot(&self, module: &Module) -> Option<ModuleSlot> {
        let mut counts = self.shared.counts.lock().ok()?;
        let n = counts.entry(module.name.clone()).or_insert(0);
        if module.max_connections > 0 && *n >= module.max_connections {
            return None;
        }
        *n += 1;
        Some(ModuleSlot {
            shared: self.shared.clone(),
            name: module.name.clone(),
        })
    }

    /// Parses the words as `rsync --server` options, with the module's
    /// restrictions. The inner `Err` is an option error to report after a
    /// minimal setup (rsync's behaviour for refused options).
    async fn parse_args<R: AsyncRead + Unpin>(
        &self,
        module: &Module,
        words: &[String],
        rd: &mut R,
        protocol: u8,
    ) -> Result<std::result::Result<ServerArgs, String>> {
        let mut sa = match parse_server_args(words) {
            Ok(sa) => sa,
            Err(e) => return Ok(Err(format!("rsync: {e}"))),
        };
        let mut all = words.to_vec();
        if sa.secluded {
            let extra = read_secluded(rd).await?;
            all.extend(extra.into_iter().skip(1));
            sa = match parse_server_args(&all) {
                Ok(mut sa) => {
                    sa.secluded = true;
                    sa
                }
                Err(e) => return Ok(Err(format!("rsync: {e}"))),
            };
        }
        if let Some(refused) = super::refuse::first_refused(&module.refuse_options, &all) {
            return Ok(Err(format!(
                "rsync: The server is configured to refuse {refused}"
            )));
        }
        let o = &mut sa.options;
        if module.numeric_ids {
            o.local_numeric_ids = true;
        }
        // The module's `timeout`, else the daemon's default idle timeout,
        // caps what the client asked for (the client is untrusted).
        let cap = if module.timeout > 0 {
            module.timeout
        } else {
            self.idle_timeout
        };
        if cap > 0 && (o.timeout == 0 || cap < o.timeout) {
            o.timeout = cap;
        }
        o.limits = self.limits;
        o.limits.idle_timeout_secs = self.idle_timeout;
        if !module.dont_compress.is_empty() && o.skip_compress.is_none() {
            o.skip_compress = Some(module.dont_compress.join("/"));
        }
        let _ = protocol;
        o.munge_links = module.munge_symlinks.unwrap_or(!module.use_chroot);
        o.chmod = if sa.sender {
            module.outgoing_chmod.clone()
        } else {
            module.incoming_chmod.clone()
        };
        // The module's rules, in rsyncd's order, on top of the client's.
        use crate::filter::FilterArg;
        o.daemon_filters = (module.filter.iter().cloned().map(FilterArg::Filter))
            .chain(module.include.iter().cloned().map(FilterArg::Include))
            .chain(module.exclude.iter().cloned().map(FilterArg::Exclude))
            .collect();
        Ok(Ok(sa))
    }
}

struct Accepted {
    module: Module,
    protocol: u8,
    sa: ServerArgs,
    access: Access,
    user: String,
    slot: ModuleSlot,
    option_error: Option<String>,
    confined: super::confine::Confined,
}

/// IPv4-mapped IPv6 addresses are treated as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn reverse_lookup(addr: IpAddr) -> Option<String> {
    dns_lookup::lookup_addr(&addr).ok()
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> Result<()> {
    w.write_all(text.as_bytes())
        .await
        .map_err(Error::Connection)?;
    w.flush().await.map_err(Error::Connection)
}

async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let mut b = [0u8; 1];
        let n = r.read(&mut b).await.map_err(Error::Connection)?;
        if n == 0 {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(Error::UnexpectedEof(line.len() as u64));
        }
        match b[0] {
            b'\n' => break,
            b'\r' => {}
            c => line.push(c),
        }
        if line.len() > MAX_LINE {
            return Err(Error::Protocol("line from client too long".into()));
        }
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Reads the argument words: NUL-terminated with an empty word at the end
/// (protocol 30 and later), newline-terminated with an empty line below.
async fn read_arg_words<R: AsyncRead + Unpin>(r: &mut R, protocol: u8) -> Result<Vec<String>> {
    let term = if protocol >= 30 { 0u8 } else { b'\n' };
    let mut buf = Vec::new();
    loop {
        let mut b = [0u8; 1];
        let n = r.read(&mut b).await.map_err(Error::Connection)?;
        if n == 0 {
            return Err(Error::UnexpectedEof(buf.len() as u64));
        }
        buf.push(b[0]);
        let ended = b[0] == term && (buf.len() == 1 || buf[buf.len() - 2] == term);
        if ended {
            break;
        }
        if buf.len() > MAX_ARGS_BYTES {
            return Err(Error::Protocol("argument list too long".into()));
        }
    }
    match decode_args(&buf, protocol, MAX_ARGS_BYTES, MAX_ARGS_WORDS) {
        Ok(Decoded::Done { value, .. }) => Ok(value),
        Ok(Decoded::NeedMore(_)) => Err(Error::Protocol("incomplete argument list".into())),
        Err(e) => Err(Error::Decode(e)),
    }
}

/// The secluded (`-s`) words: NUL-terminated, ending with an empty word;
/// the first is argv[0].
async fn read_secluded<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = Vec::new();
    let mut total = 0usize;
    loop {
        let mut b = [0u8; 1];
        let n = r.read(&mut b).await.map_err(Error::Connection)?;
        if n == 0 {
            return Err(Error::UnexpectedEof(total as u64));
        }
        total += 1;
        if b[0] == 0 {
            if cur.is_empty() {
                return Ok(words);
            }
            words.push(String::from_utf8_lossy(&cur).into_owned());
            cur.clear();
        } else {
            cur.push(b[0]);
        }
        if total > MAX_ARGS_BYTES || words.len() > MAX_ARGS_WORDS {
            return Err(Error::Protocol("secluded argument list too long".into()));
        }
    }
}

/// Reports an option error as rsync does: a minimal binary setup (no
/// negotiated names), then MSG_ERROR, a short pause, and the end.
async fn refuse_after_setup<R, W>(rd: R, wr: W, protocol: u8, msg: &str) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut w = engine::MuxWriter::new(wr);
    if protocol >= 30 {
        crate::wire::encode_varint(
            w.buf(),
            i32::try_from(crate::wire::CompatFlags::SYMLINK_TIMES.bits()).unwrap_or(0),
        );
    }
    crate::wire::encode_i32(w.buf(), 1);
    w.flush().await?;
    w.set_muxed(true);
    let mut text = msg.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    w.send_msg(crate::wire::MsgCode::Error, text.as_bytes())
        .await?;
    w.flush().await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(rd);
    Err(Error::Unsupported(msg.to_string()))
}

/// Turns the client's path words into paths under the module (rsync's
/// `glob_expand_module` and `sanitize_path`): the module name is removed,
/// a word is split at ` module/` unless args are secluded, `..` never
/// climbs above the module, and the result must stay inside the module
/// even through symlinks.
fn map_paths(
    module: &Module,
    confined: &super::confine::Confined,
    sa: &mut ServerArgs,
) -> std::result::Result<(), String> {
    let root = confined.root(&module.path);
    let mut out = Vec::new();
    let words = std::mem::take(&mut sa.paths);
    for word in &words {
        let pieces: Vec<String> = if sa.secluded {
            vec![word.clone()]
        } else {
            let sep = format!(" {}/", module.name);
            let mut v = Vec::new();
            let mut rest = word.as_str();
            while let Some(i) = rest.find(&sep) {
                v.push(rest[..i].to_string());
                rest = &rest[i + 1..];
            }
            v.push(rest.to_string());
            v
        };
        for p in pieces {
            let rel = strip_module(&p, &module.name);
            if sa.options.relative {
                // -R: names are relative to the module root (rsync's
                // daemon works from there); a `/./` marker is kept.
                let rootstr = root.display().to_string();
                let rootstr = rootstr.trim_end_matches('/');
                let full = match rel.find("/./") {
                    Some(i) => format!(
                        "{rootstr}/{}/./{}",
                        sanitize(&rel[..i]).trim_end_matches('/'),
                        sanitize(&rel[i + 3..])
                    ),
                    None => format!("{rootstr}/./{}", sanitize(&rel)),
                };
                if !confined.is_chrooted() {
                    super::confine::check_inside(&module.path, Path::new(&full), sa.sender)?;
                }
                out.push(full);
                continue;
            }
            let clean = sanitize(&rel);
            for expanded in super::glob::expand(&root, &clean) {
                let full = if expanded.is_empty() || expanded == "." {
                    format!("{}/", root.display().to_string().trim_end_matches('/'))
                } else {
                    format!(
                        "{}/{}",
                        root.display().to_string().trim_end_matches('/'),
                        expanded
                    )
                };
                if !confined.is_chrooted() {
                    super::confine::check_inside(&module.path, Path::new(&full), sa.sender)?;
                }
                out.push(full);
            }
        }
    }
    if out.is_empty() {
        out.push(format!(
            "{}/",
            root.display().to_string().trim_end_matches('/')
        ));
    }
    if !sa.sender && out.len() > 1 {
        out.truncate(1);
    }
    if let Some(ff) = sa.options.files_from.as_mut().filter(|f| f.as_str() != "-") {
        // A files-from list on the daemon's side is a path in the module.
        let rootstr = root.display().to_string();
        *ff = format!("{}/{}", rootstr.trim_end_matches('/'), sanitize(ff));
        if !confined.is_chrooted() {
            super::confine::check_inside(&module.path, Path::new(ff.as_str()), true)?;
        }
    }
    sa.paths = out;
    // Directories the client names in options (rsync's `sanitize_paths`):
    // relative to the destination, never above the module, and never
    // through a symlink that leads out of it.
    let dest = sa.paths.first().cloned().unwrap_or_default();
    let o = &mut sa.options;
    for (opt, dir) in [
        ("--backup-dir", &mut o.backup_dir),
        ("--partial-dir", &mut o.partial_dir),
    ] {
        let Some(d) = dir.as_mut() else { continue };
        let clean = sanitize(d);
        let clean = clean.trim_end_matches('/');
        if clean.is_empty() {
            return Err(format!("ERROR: {opt} {d} leads outside the module"));
        }
        if !confined.is_chrooted() {
            let full = format!("{}/{clean}", dest.trim_end_matches('/'));
            super::confine::check_inside(&module.path, Path::new(&full), false)
                .map_err(|_| format!("ERROR: {opt} {d} leads outside the module"))?;
        }
        *d = clean.to_string();
    }
    Ok(())
}

fn strip_module(word: &str, module: &str) -> String {
    if word == module {
        return String::new();
    }
    if let Some(rest) = word.strip_prefix(module) {
        if let Some(r) = rest.strip_prefix('/') {
            return r.to_string();
        }
    }
    word.to_string()
}

/// rsync's `sanitize_path`: drop leading `/`, `.` components and any `..`
/// that would climb above the root; keep a trailing slash.
#[must_use]
pub fn sanitize(path: &str) -> String {
    let trailing = path.ends_with('/') || path.ends_with("/.") || path == ".";
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut s = parts.join("/");
    if trailing && !s.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize("../../etc/passwd"), "etc/passwd");
        assert_eq!(sanitize("/abs/x/"), "abs/x/");
        assert_eq!(sanitize("a/../../b"), "b");
        assert_eq!(sanitize("./"), "");
        assert_eq!(sanitize("a/./b/."), "a/b/");
        assert_eq!(strip_module("pub/src/", "pub"), "src/");
        assert_eq!(strip_module("pub", "pub"), "");
        assert_eq!(strip_module("public/x", "pub"), "public/x");
    }

    #[test]
    fn mapped_ips() {
        let v6: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(canonical_ip(v6), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
