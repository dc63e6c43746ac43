//! Hostile clients against our daemon (`ferrsync::daemon::Daemon`), and
//! silent peers against both ends (the default idle timeout).
//!
//! The clients speak the real daemon protocol with our own codecs but
//! choose every word themselves: module escapes through `..`, absolute
//! path words and absolute option paths, symlinks inside the module,
//! oversized and endless file lists, message floods, a slow-drip
//! handshake, too many and too long argument words, and a client that
//! goes quiet after the handshake. Each case checks: nothing outside the
//! module changed, the module's old file is intact, the session ends with
//! a clear error (the client's error or the daemon's log line), within
//! 30 seconds.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrsync::daemon::config::{DaemonConfig, Module};
use ferrsync::daemon::{Daemon, ShutdownHandle};
use ferrsync::engine::{ClientRole, Hooks, MuxReader, MuxWriter, Options, run_client, setup};
use ferrsync::flist::{FileEntry, FileListEncoder, FlistOptions};
use ferrsync::handshake::daemon::{AuthDigest, encode_args, format_greeting};
use ferrsync::transport::daemon::DaemonUrl;
use ferrsync::wire::{CompatFlags, Limits, MsgCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROTOCOLS: [u8; 4] = [29, 30, 31, 32];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Served {
    port: u16,
    stop: ShutdownHandle,
    daemon: Daemon,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start(daemon: Daemon) -> Served {
        let (tx, rx) = std::sync::mpsc::channel();
        let d2 = daemon.clone();
        let thread = std::thread::spawn(move || {
            rt().block_on(async move {
                let l = d2.bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap().port()).unwrap();
                d2.serve_with_grace(l, Duration::from_secs(5))
                    .await
                    .unwrap();
            });
        });
        let port = rx.recv().unwrap();
        Served {
            port,
            stop: daemon.shutdown_handle(),
            daemon,
            thread: Some(thread),
        }
    }

    /// Waits (bounded) until no connection is being served.
    fn wait_idle(&self, within: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < within {
            if self.daemon.active_connections() == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A writable module `m` (no chroot, so our own confinement is what is
/// tested), a directory beside it that must never change, and the
/// daemon's log file.
struct Site {
    tmp: tempfile::TempDir,
    module: PathBuf,
    outside: PathBuf,
    log: PathBuf,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("module");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&module).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"outside secret").unwrap();
    fs::write(module.join("old"), b"old file").unwrap();
    std::os::unix::fs::symlink(&outside, module.join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside", module.join("rel")).unwrap();
    let log = tmp.path().join("daemon.log");
    Site {
        tmp,
        module,
        outside,
        log,
    }
}

impl Site {
    fn daemon(&self, chroot: bool) -> Daemon {
        let mut cfg = DaemonConfig::default();
        cfg.global.log_file = Some(self.log.clone());
        let mut m = Module::new("m", &self.module);
        m.read_only = false;
        m.use_chroot = chroot;
        m.uid = Some("root".into());
        m.gid = Some("root".into());
        cfg.modules.push(m);
        Daemon::new(cfg)
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
                out.push((p, Vec::new()));
            } else if m.is_file() {
                out.push((p.clone(), fs::read(&p).unwrap()));
            } else {
                out.push((p, b"(other)".to_vec()));
            }
        }
    }
    out.sort();
    out
}

/// The invariants of every case.
fn check(s: &Site, before: &[(PathBuf, Vec<u8>)], name: &str, t0: Instant) {
    assert_eq!(
        snapshot(&s.outside),
        before,
        "{name}: something outside the module changed"
    );
    assert_eq!(
        fs::read(s.module.join("old")).unwrap(),
        b"old file",
        "{name}: the module's old file changed"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "{name}: took {:?}",
        t0.elapsed()
    );
}

fn opts(protocol: u8) -> Options {
    let mut o = Options::archive();
    o.owner = false;
    o.group = false;
    o.protocol = Some(protocol);
    o.timeout = 20;
    o
}

/// Greeting and module line; returns the stream after `@RSYNCD: OK`, or
/// the daemon's `@ERROR` line.
async fn open(port: u16, protocol: u8) -> Result<tokio::net::TcpStream, String> {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    sock.write_all(format_greeting(protocol, &AuthDigest::OFFERED).as_bytes())
        .await
        .unwrap();
    sock.write_all(b"m\n").await.unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    let mut seen_greeting = false;
    loop {
        if sock.read(&mut b).await.unwrap_or(0) == 0 {
            return Err(String::from_utf8_lossy(&line).into_owned());
        }
        if b[0] != b'\n' {
            line.push(b[0]);
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        if !seen_greeting {
            seen_greeting = true;
            continue;
        }
        if text == "@RSYNCD: OK" {
            return Ok(sock);
        }
        if text.starts_with("@ERROR") {
            return Err(text);
        }
    }
}

/// A push whose argument words the client chooses (`paths` after `.`),
/// with `o`'s server words; then our sender sends `sources`.
fn push_words(
    port: u16,
    o: &Options,
    paths: &[&str],
    sources: &[PathBuf],
) -> Result<ferrsync::Report, String> {
    let protocol = o.protocol.unwrap();
    rt().block_on(async {
        let mut sock = open(port, protocol).await?;
        let mut words = o.server_args(false);
        words.push(".".into());
        words.extend(paths.iter().map(|p| (*p).to_string()));
        sock.write_all(&encode_args(&words, protocol))
            .await
            .unwrap();
        let (rd, wr) = tokio::io::split(sock);
        let role = ClientRole::Sender {
            sources: sources.to_vec(),
        };
        ferrsync::engine::run_client_with(rd, wr, o, role, &Hooks::default(), Some(protocol))
            .await
            .map_err(|e| e.to_string())
    })
}

/// A pull with chosen path words into `dest`.
fn pull_words(
    port: u16,
    o: &Options,
    paths: &[&str],
    dest: &Path,
) -> Result<ferrsync::Report, String> {
    let protocol = o.protocol.unwrap();
    rt().block_on(async {
        let mut sock = open(port, protocol).await?;
        let mut words = o.server_args(true);
        words.push(".".into());
        words.extend(paths.iter().map(|p| (*p).to_string()));
        sock.write_all(&encode_args(&words, protocol))
            .await
            .unwrap();
        let (rd, wr) = tokio::io::split(sock);
        let role = ClientRole::Receiver {
            dest: dest.to_path_buf(),
        };
        ferrsync::engine::run_client_with(rd, wr, o, role, &Hooks::default(), Some(protocol))
            .await
            .map_err(|e| e.to_string())
    })
}

fn payload(s: &Site) -> PathBuf {
    let src = s.tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("evil"), b"pwned").unwrap();
    fs::write(src.join("old"), b"new content").unwrap();
    fs::write(src.join("secret"), b"pwned").unwrap();
    src
}

/// Path words that climb out of the module, absolute path words, and
/// symlinks inside the module (absolute and relative, pointing outside):
/// pushes write nothing outside, pulls read nothing from outside.
#[test]
fn module_escapes_through_words_and_symlinks() {
    let words = [
        "m/../outside/",
        "m/../../",
        "m/a/../../outside/",
        "m/..",
        "m//../outside",
        "/outside/",
        "m/abs/",
        "m/rel/",
        "m/abs/x/",
        "m/rel/../rel/",
    ];
    for chroot in [false, true] {
        let s = site();
        let served = Served::start(s.daemon(chroot));
        let src = payload(&s);
        for protocol in PROTOCOLS {
            for w in words {
                let name = format!("push {w} p{protocol} chroot={chroot}");
                let before = snapshot(&s.outside);
                let t0 = Instant::now();
                let o = opts(protocol);
                let srcs = [src.join("evil"), src.join("secret")];
                let _ = push_words(served.port, &o, &[w], &srcs);
                check(&s, &before, &name, t0);
                // A pull of the secret through the same word.
                let name = format!("pull {w} p{protocol} chroot={chroot}");
                let dest = s.tmp.path().join("pulled");
                let _ = fs::remove_dir_all(&dest);
                fs::create_dir_all(&dest).unwrap();
                let t0 = Instant::now();
                let secret_word = format!("{}secret", w.trim_end_matches('/').to_owned() + "/");
                let _ = pull_words(served.port, &o, &[&secret_word], &dest);
                check(&s, &before, &name, t0);
                for (p, data) in snapshot(&dest) {
                    assert_ne!(data, b"outside secret", "{name}: read {p:?} from outside");
                }
            }
        }
        assert!(served.wait_idle(Duration::from_secs(10)));
    }
}

/// Option paths chosen by the client (`--backup-dir`, `--partial-dir`)
/// that are absolute or climb out of the module: the daemon keeps them
/// inside the module (rsync's `sanitize_paths`), or refuses.
#[test]
fn absolute_and_climbing_option_paths_stay_inside() {
    let s = site();
    let served = Served::start(s.daemon(false));
    let src = payload(&s);
    let out = s.outside.display().to_string();
    let dirs = [
        format!("{out}/bk"),
        "../outside/bk".to_string(),
        "../../".to_string(),
        "abs/bk".to_string(),
        "rel".to_string(),
    ];
    for protocol in PROTOCOLS {
        for d in &dirs {
            for kind in ["backup", "partial"] {
                let name = format!("--{kind}-dir={d} p{protocol}");
                let before = snapshot(&s.outside);
                let t0 = Instant::now();
                let mut o = opts(protocol);
                o.ignore_times = true;
                if kind == "backup" {
                    o.backup = true;
                    o.backup_dir = Some(d.clone());
                } else {
                    o.partial = true;
                    o.partial_dir = Some(d.clone());
                }
                // Push a changed `old`: a backup of the old one would be
                // made, and a partial basis looked up.
                let mut srcs = vec![src.join("old")];
                srcs.push(src.join("evil"));
                let r = push_words(s_port(&served), &o, &["m/"], &srcs);
                let _ = r;
                // The module's `old` was replaced (that is the transfer);
                // put it back for the invariant check.
                let now = fs::read(s.module.join("old")).unwrap();
                assert!(
                    now == b"old file" || now == b"new content",
                    "{name}: old is {now:?}"
                );
                fs::write(s.module.join("old"), b"old file").unwrap();
                check(&s, &before, &name, t0);
            }
        }
    }
}

fn s_port(s: &Served) -> u16 {
    s.port
}

/// A hostile client that pushes a file list of its own making: a name
/// past the length limit, and an endless list (cut by the client after a
/// budget). The daemon ends the session, writes nothing, and stays
/// bounded and available. The daemon's entry limit is lowered (the default,
/// 64 Mi entries, would let a fast client make it hold gigabytes before
/// the budget ends): the endless list must be cut at that limit.
#[test]
fn oversized_and_endless_file_lists() {
    let s = site();
    let mut limits = Limits::default();
    limits.max_flist_entries = 200_000;
    let served = Served::start(s.daemon(false).with_limits(limits));
    for protocol in [29u8, 31, 32] {
        for case in ["long-name", "endless", "traversal", "flood", "big-msg"] {
            let name = format!("{case} p{protocol}");
            let before = snapshot(&s.outside);
            let t0 = Instant::now();
            let r: Result<(), ferrsync::Error> = rt().block_on(async {
                let o = opts(protocol);
                let mut sock = open(served.port, protocol)
                    .await
                    .map_err(ferrsync::Error::Syntax)?;
                let mut words = o.server_args(false);
                words.extend([".".to_string(), "m/".to_string()]);
                sock.write_all(&encode_args(&words, protocol))
                    .await
                    .unwrap();
                let (rd, wr) = tokio::io::split(sock);
                let mut r = MuxReader::new(rd, Limits::default());
                let mut w = MuxWriter::new(wr);
                let st = setup::client_setup(&mut r, &mut w, &o, Some(protocol)).await?;
                r.set_muxed(true);
                w.set_muxed(st.protocol >= 30);
                let fo = FlistOptions {
                    protocol: st.protocol,
                    varint_flags: st.varint_flags(),
                    safe_flist: st.safe_flist(),
                    id0_names: st.compat.contains(CompatFlags::ID0_NAMES),
                    preserve_links: true,
                    ..FlistOptions::default()
                };
                let mut enc = FileListEncoder::new(fo);
                let file = |n: Vec<u8>| FileEntry {
                    name: n,
                    mode: 0o100_644,
                    size: 5,
                    mtime: 1_700_000_000,
                    ..FileEntry::default()
                };
                let dot = FileEntry {
                    name: b".".to_vec(),
                    mode: 0o040_755,
                    mtime: 1_700_000_000,
                    ..FileEntry::default()
                };
                enc.encode_entry(w.buf(), &dot)?;
                match case {
                    "long-name" => {
                        // Written by hand: our encoder refuses such names.
                        // XMIT_LONG_NAME, then a 5000-byte name length.
                        let buf = w.buf();
                        if st.varint_flags() {
                            ferrsync::wire::encode_varint(buf, 0x40);
                        } else {
                            buf.push(0x40);
                        }
                        if st.protocol >= 30 {
                            ferrsync::wire::encode_varint(buf, 5000);
                        } else {
                            ferrsync::wire::encode_i32(buf, 5000);
                        }
                        buf.extend(vec![b'a'; 5000]);
                    }
                    "traversal" => {
                        enc.encode_entry(w.buf(), &file(b"../outside/evil".to_vec()))?;
                    }
                    "endless" => {
                        // Entries until the daemon stops reading or the
                        // budget ends; then drop the connection.
                        let t = Instant::now();
                        let mut i = 0u64;
                        while t.elapsed() < Duration::from_secs(4) {
                            for _ in 0..1000 {
                                enc.encode_entry(w.buf(), &file(format!("f{i:012}").into_bytes()))?;
                                i += 1;
                            }
                            if w.flush().await.is_err() {
                                break;
                            }
                        }
                        return Ok(());
                    }
                    "flood" => {
                        let text = vec![b'x'; 4000];
                        for _ in 0..20_000 {
                            w.send_msg(MsgCode::Info, &text).await?;
                        }
                    }
                    _ => {
                        // A non-data frame longer than rsync accepts.
                        w.flush().await?;
                        let mut raw = Vec::new();
                        ferrsync::wire::encode_frame_header(&mut raw, MsgCode::Info, 60_000);
                        raw.extend(vec![b'y'; 60_000]);
                        w.put(&raw);
                    }
                }
                enc.encode_end(w.buf(), 0);
                w.flush().await?;
                // Whatever the daemon says, read until it closes.
                let mut sink = vec![0u8; 1 << 16];
                let read_all = async {
                    loop {
                        match r.read_exact(&mut sink[..1]).await {
                            Ok(()) => {}
                            Err(e) => return Err::<(), _>(e),
                        }
                    }
                };
                // A few seconds, then drop the connection.
                let _ = tokio::time::timeout(Duration::from_secs(3), read_all).await;
                Ok(())
            });
            let _ = r;
            check(&s, &before, &name, t0);
            assert!(
                served.wait_idle(Duration::from_secs(20)),
                "{name}: the daemon still serves the connection"
            );
            let mut left: Vec<_> = fs::read_dir(&s.module)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            assert_eq!(left, ["abs", "old", "rel"], "{name}: the module changed");
        }
    }
    // Memory stayed bounded through the endless lists and floods.
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(hwm_kib < 1024 * 1024, "peak memory {hwm_kib} KiB");
    let log = s.log_text();
    assert!(log.contains("rsync error on module m"), "{log}");
}

/// A client that drips its greeting one byte at a time is cut off at the
/// handshake deadline; one that sends too many or too long argument words
/// is refused; others are served meanwhile.
#[test]
fn slow_drip_and_argument_limits() {
    let s = site();
    let served = Served::start(
        s.daemon(false)
            .with_handshake_timeout(Duration::from_secs(1)),
    );
    let t0 = Instant::now();
    let mut drip = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    drip.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut closed = false;
    let mut buf = [0u8; 256];
    for b in b"@RSYNCD: 32.0 md5\nm\n".iter().cycle().take(200) {
        if drip.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        match drip.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    assert!(closed, "the slow client was never cut off");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(s.log_text().contains("timed out before the transfer"));
    drop(served);

    // The argument limits, with the default handshake deadline.
    let served = Served::start(s.daemon(false));
    for protocol in [29u8, 30, 32] {
        let before = snapshot(&s.outside);
        let o = opts(protocol);
        let base = o.server_args(false);
        let many: Vec<String> = base
            .iter()
            .cloned()
            .chain(std::iter::once(".".to_string()))
            .chain((0..20_000).map(|i| format!("m/f{i}")))
            .collect();
        let mut long = base.clone();
        long.push(".".into());
        long.push(format!("m/{}", "a".repeat(300 * 1024)));
        for (name, words) in [("many", many), ("long", long)] {
            let t0 = Instant::now();
            let got = rt().block_on(async {
                let mut sock = open(served.port, protocol).await.unwrap();
                let _ = sock.write_all(&encode_args(&words, protocol)).await;
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut rest))
                    .await;
                rest
            });
            let _ = got;
            check(&s, &before, &format!("{name} words p{protocol}"), t0);
            assert!(served.wait_idle(Duration::from_secs(10)), "{name}");
        }
    }
    let log = s.log_text();
    assert!(log.contains("argument"), "{log}");
    // Still serving.
    let dest = s.tmp.path().join("after");
    fs::create_dir_all(&dest).unwrap();
    let r = pull_words(served.port, &opts(32), &["m/old"], &dest);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(fs::read(dest.join("old")).unwrap(), b"old file");
}

/// A client that completes the handshake and then says nothing is cut off
/// by the daemon's default idle timeout (configured short here), and the
/// module is untouched.
#[test]
fn a_client_silent_after_the_handshake_times_out() {
    let s = site();
    let served = Served::start(s.daemon(false).with_idle_timeout(Duration::from_secs(1)));
    for (sender, protocol) in [(false, 29u8), (false, 32), (true, 31)] {
        let before = snapshot(&s.outside);
        let t0 = Instant::now();
        rt().block_on(async {
            let mut sock = open(served.port, protocol).await.unwrap();
            let o = opts(protocol);
            let mut o = o;
            o.timeout = 0;
            let mut words = o.server_args(sender);
            words.extend([".".to_string(), "m/".to_string()]);
            sock.write_all(&encode_args(&words, protocol))
                .await
                .unwrap();
            // Say nothing more; the daemon must close within its timeout.
            let mut rest = Vec::new();
            let r =
                tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut rest)).await;
            assert!(r.is_ok(), "the daemon kept a silent client");
        });
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        check(&s, &before, "silent client", t0);
        assert!(served.wait_idle(Duration::from_secs(10)));
    }
    let log = s.log_text();
    assert!(log.contains("timeout in data send/receive"), "{log}");
}

/// Our client against a server that accepts and then says nothing: over a
/// pipe (no version bytes ever come) and over the daemon transport (no
/// greeting): the default idle timeout ends it with rsync's timeout error,
/// exit 30. The default itself is 600 s, on for every session.
#[test]
fn a_silent_server_times_out_by_default() {
    assert_eq!(Limits::default().idle_timeout_secs, 600);
    assert_eq!(Options::default().limits.idle_timeout_secs, 600);
    assert_eq!(Options::default().timeout, 0);
    let mut o = Options::archive();
    o.limits.idle_timeout_secs = 1;
    let tmp = tempfile::tempdir().unwrap();
    let rt = rt();
    // Pipe.
    let t0 = Instant::now();
    let (ours, _silent) = tokio::io::duplex(1 << 16);
    let r = rt.block_on(async {
        let (rd, wr) = tokio::io::split(ours);
        let role = ClientRole::Receiver {
            dest: tmp.path().join("d1"),
        };
        tokio::time::timeout(
            Duration::from_secs(20),
            run_client(rd, wr, &o, role, &Hooks::default()),
        )
        .await
    });
    let err = r.expect("hung").expect_err("a silent server must time out");
    assert_eq!(err.exit_code().code(), 30, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Daemon: a listener that accepts and never speaks; then one that
    // greets and goes quiet after `@RSYNCD: OK`.
    for after_ok in [false, true] {
        let t0 = Instant::now();
        let r = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("rsync://127.0.0.1:{}/m/", l.local_addr().unwrap().port());
            let silent = async move {
                let (mut sock, _) = l.accept().await.unwrap();
                if after_ok {
                    sock.write_all(b"@RSYNCD: 32.0 md5\n@RSYNCD: OK\n")
                        .await
                        .unwrap();
                }
                let mut sink = Vec::new();
                let _ = sock.read_to_end(&mut sink).await;
                sock
            };
            let url = DaemonUrl::parse(&url).unwrap();
            let t = ferrsync::Transfer::new(o.clone());
            let dest = tmp.path().join("d2");
            let pull = tokio::time::timeout(Duration::from_secs(20), t.pull_daemon(&url, &dest));
            let (res, _sock) = tokio::join!(pull, silent);
            res
        });
        let err = r.expect("hung").expect_err("a silent daemon must time out");
        assert_eq!(err.exit_code().code(), 30, "after_ok={after_ok}: {err}");
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    // `--timeout` overrides the default.
    let mut o2 = Options::archive();
    o2.limits.idle_timeout_secs = 600;
    o2.timeout = 1;
    let t0 = Instant::now();
    let (ours, _silent) = tokio::io::duplex(1 << 16);
    let r = rt.block_on(async {
        let (rd, wr) = tokio::io::split(ours);
        let role = ClientRole::Receiver {
            dest: tmp.path().join("d3"),
        };
        tokio::time::timeout(
            Duration::from_secs(20),
            run_client(rd, wr, &o2, role, &Hooks::default()),
        )
        .await
    });
    assert_eq!(r.expect("hung").unwrap_err().exit_code().code(), 30);
    assert!(t0.elapsed() < Duration::from_secs(10));
}

/// Our `ferrsync --daemon` binary (not chrooted) with `FERRSYNC_BENEATH_WALK`
/// set or not, on a free port.
/// A configuration with module `m` at `module`, read-only and not
/// chrooted, run as root.
fn unchrooted_module_conf(dir: &Path, module: &Path) -> PathBuf {
    let conf = dir.join("ferrsyncd.conf");
    fs::write(
        &conf,
        format!(
            "[m]\npath = {}\nuse chroot = no\nread only = yes\nuid = root\ngid = root\n",
            module.display()
        ),
    )
    .unwrap();
    conf
}

fn binary_daemon(conf: &Path, walk: bool) -> (std::process::Child, u16) {
    for _ in 0..8 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrsync"))
            .args(["--daemon", "--no-detach"])
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .env("FERRSYNC_BENEATH_WALK", if walk { "1" } else { "0" })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..250 {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                std::thread::sleep(Duration::from_millis(150));
                if let Ok(None) = child.try_wait() {
                    return (child, port);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("ferrsync --daemon did not start");
}

/// Every regular file under `root` (its content) and every name, for the
/// marker check.
fn pulled(root: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            out.push((p.clone(), Vec::new()));
            pulled(&p, out);
        } else if md.is_file() {
            out.push((p.clone(), fs::read(&p).unwrap_or_default()));
        } else {
            out.push((p, Vec::new()));
        }
    }
}

/// Issue 10: a client pulling from a module that is not chrooted can
/// never make the daemon read outside it: symlinks to outside files and
/// directories (absolute and relative), with `-a` (munged links), `-L`,
/// `-k`, `--copy-unsafe-links` and `-R`, while a local user keeps
/// swapping a directory of the module for a symlink to the outside.
/// Real rsync is the client; both resolvers (`openat2` and the
/// `O_NOFOLLOW` walk) run the daemon. The outside holds a marker secret
/// (in file contents and names) that must never show up in a pulled
/// tree, and the inside content must arrive.
#[test]
fn a_pull_from_an_unchrooted_module_never_reads_outside() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("module");
    let outside = tmp.path().join("outside");
    let marker = format!("MARKER-{}-SECRET", std::process::id());
    fs::create_dir_all(outside.join("secretdir")).unwrap();
    fs::write(outside.join("secret"), &marker).unwrap();
    fs::write(outside.join("secretdir/secretinner"), &marker).unwrap();
    fs::create_dir_all(module.join("d/e")).unwrap();
    fs::create_dir_all(module.join("racy.real/sub")).unwrap();
    fs::write(module.join("d/e/f"), b"inside").unwrap();
    fs::write(module.join("racy.real/inner"), b"inside racy").unwrap();
    fs::write(module.join("racy.real/sub/deep"), b"inside racy deep").unwrap();
    let ln = |t: &Path, n: &str| std::os::unix::fs::symlink(t, module.join(n)).unwrap();
    ln(&outside, "absdir");
    ln(Path::new("../outside"), "reldir");
    ln(&outside.join("secret"), "absfile");
    ln(Path::new("../outside/secret"), "relfile");
    ln(Path::new("d/../../outside/secretdir"), "climb");
    ln(Path::new("d/e/f"), "insidefile");
    ln(Path::new("d"), "insidedir");
    let conf = unchrooted_module_conf(tmp.path(), &module);
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = Arc::clone(&stop);
        let (module, outside) = (module.clone(), outside.clone());
        std::thread::spawn(move || {
            let d = module.join("racy");
            let held = module.join("racy.real");
            let sub = held.join("sub");
            let sub_held = module.join("sub.held");
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::rename(&held, &d);
                // The real directory stays in place for a while, so that
                // some pulls see it even on a loaded machine (a bare
                // yield left it there too briefly: 52 pulls, none saw it).
                std::thread::sleep(Duration::from_millis(3));
                let _ = fs::rename(&d, &held);
                let _ = std::os::unix::fs::symlink(&outside, &d);
                // A deeper directory swapped too (relative link out).
                let _ = fs::rename(&sub, &sub_held);
                let _ = std::os::unix::fs::symlink("../../outside", &sub);
                std::thread::sleep(Duration::from_millis(1));
                let _ = fs::remove_file(&d);
                let _ = fs::remove_file(&sub);
                let _ = fs::rename(&sub_held, &sub);
            }
        })
    };
    let option_sets: [&[&str]; 6] = [
        &["-a"],
        &["-aL"],
        &["-ak"],
        &["-a", "--copy-unsafe-links"],
        &["-aR"],
        &["-aX"],
    ];
    let mut total = 0;
    let mut racy_seen = 0;
    for walk in [false, true] {
        let (mut child, port) = binary_daemon(&conf, walk);
        for opts in option_sets {
            let t0 = Instant::now();
            let mut runs = 0;
            while runs < 3 || (t0.elapsed() < Duration::from_secs(3) && runs < 40) {
                runs += 1;
                total += 1;
                let dest = tmp.path().join(format!("dest{total}"));
                let mut words: Vec<String> = vec![
                    format!("rsync://127.0.0.1:{port}/m/"),
                    format!("rsync://127.0.0.1:{port}/m/racy/"),
                    format!("rsync://127.0.0.1:{port}/m/racy/sub/"),
                    format!("rsync://127.0.0.1:{port}/m/absfile"),
                ];
                if opts.contains(&"-aR") {
                    words = vec![format!("rsync://127.0.0.1:{port}/m/./d")];
                    words.push(format!("rsync://127.0.0.1:{port}/m/./racy/sub/"));
                    words.push(format!("rsync://127.0.0.1:{port}/m/./racy/"));
                }
                let mut cmd = std::process::Command::new("rsync");
                cmd.args(opts)
                    .arg("--timeout=20")
                    .args(&words[..1])
                    .arg(&dest);
                let out = cmd.output().unwrap();
                assert!(
                    matches!(out.status.code(), Some(0 | 23 | 24)),
                    "{opts:?} walk {walk}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // The other words, one pull each (a word that resolves
                // outside is refused, which is fine).
                for w in &words[1..] {
                    let _ = std::process::Command::new("rsync")
                        .args(opts)
                        .arg("--timeout=20")
                        .arg(w)
                        .arg(dest.join("extra"))
                        .output()
                        .unwrap();
                }
                let mut items = Vec::new();
                pulled(&dest, &mut items);
                for (p, content) in &items {
                    let name = p.file_name().unwrap().to_string_lossy();
                    assert!(
                        !content
                            .windows(marker.len())
                            .any(|w| w == marker.as_bytes())
                            && !name.starts_with("secret"),
                        "outside data pulled with {opts:?} (walk {walk}): {}",
                        p.display()
                    );
                }
                assert_eq!(fs::read(dest.join("d/e/f")).unwrap(), b"inside");
                if items
                    .iter()
                    .any(|(p, c)| p.ends_with("racy/inner") && c == b"inside racy")
                {
                    racy_seen += 1;
                }
                let _ = fs::remove_dir_all(&dest);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    // The outside is untouched and the race went both ways.
    assert_eq!(fs::read(outside.join("secret")).unwrap(), marker.as_bytes());
    assert!(
        racy_seen > 0,
        "the racy directory was never pulled ({total} pulls)"
    );
}

/// Issue 10: a daemon-side `--files-from` list (a path in a module that
/// is not chrooted) is read beneath the module's handle: a list reached
/// through a symlink to the outside is refused, and while a local user
/// keeps swapping the list's directory for such a symlink, the outside
/// list (which names a file that exists in the module) is never used.
/// Real rsync is the client; both resolvers.
#[test]
fn a_daemon_side_files_from_list_is_read_beneath_the_module() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("module");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(module.join("lists.real")).unwrap();
    fs::write(outside.join("names"), b"canary\n").unwrap();
    fs::write(module.join("lists.real/names"), b"ok\n").unwrap();
    fs::write(module.join("ok"), b"listed inside").unwrap();
    fs::write(module.join("canary"), b"only the outside list names this").unwrap();
    std::os::unix::fs::symlink("../outside", module.join("outlists")).unwrap();
    let conf = unchrooted_module_conf(tmp.path(), &module);
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = Arc::clone(&stop);
        let module = module.clone();
        std::thread::spawn(move || {
            let (d, held) = (module.join("lists"), module.join("lists.real"));
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::rename(&held, &d);
                std::thread::sleep(Duration::from_millis(3));
                let _ = fs::rename(&d, &held);
                let _ = std::os::unix::fs::symlink("../outside", &d);
                std::thread::sleep(Duration::from_millis(1));
                let _ = fs::remove_file(&d);
            }
        })
    };
    let (mut total, mut listed) = (0, 0);
    for walk in [false, true] {
        let (mut child, port) = binary_daemon(&conf, walk);
        let pull = |list: &str, dest: &Path| {
            std::process::Command::new("rsync")
                .args(["-a", "--timeout=20"])
                .arg(format!("--files-from=:{list}"))
                .arg(format!("rsync://127.0.0.1:{port}/m/"))
                .arg(format!("{}/", dest.display()))
                .output()
                .unwrap()
        };
        // Through a symlink that leads out: refused, nothing sent.
        let dest = tmp.path().join(format!("static{walk}"));
        let out = pull("outlists/names", &dest);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "walk {walk}: {err}");
        assert!(!dest.join("canary").exists(), "walk {walk}: {err}");
        let t0 = Instant::now();
        let mut runs = 0;
        while runs < 5 || (t0.elapsed() < Duration::from_secs(3) && runs < 60) {
            runs += 1;
            total += 1;
            let dest = tmp.path().join(format!("dest{total}"));
            let out = pull("lists/names", &dest);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !dest.join("canary").exists() && !err.contains("canary"),
                "walk {walk}: the outside list was read: {err}"
            );
            if out.status.code() == Some(0) {
                assert_eq!(fs::read(dest.join("ok")).unwrap(), b"listed inside");
                listed += 1;
            }
            let _ = fs::remove_dir_all(&dest);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    assert!(listed > 0, "the inside list was never read ({total} pulls)");
}
