//! The rsync daemon transport against real peers on 127.0.0.1: real
//! `rsync` clients against our [`Daemon`], and our client against a real
//! `rsync --daemon`. Every transfer ends with a tree comparison.

use crate::common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::tree::{Compare, TreeSpec, build_tree, compare_trees, is_root};
use ferrsync::daemon::config::{DaemonConfig, Module};
use ferrsync::daemon::hosts::HostList;
use ferrsync::daemon::secrets::parse_auth_users;
use ferrsync::daemon::{Daemon, ShutdownHandle};
use ferrsync::handshake::daemon::AuthDigest;
use ferrsync::transport::daemon::DaemonUrl;
use ferrsync::{Error, Options, Transfer};

const PASSWORD: &str = "s3cret-pass";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Our daemon, serving on a free port from a runtime of its own.
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
            let rt = rt();
            rt.block_on(async move {
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

    fn url(&self, rest: &str) -> String {
        format!("rsync://127.0.0.1:{}/{rest}", self.port)
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

fn module(name: &str, path: &Path) -> Module {
    let mut m = Module::new(name, path);
    m.comment = format!("the {name} module");
    if is_root() {
        m.uid = Some("root".into());
        m.gid = Some("root".into());
    }
    m
}

fn write_secrets(dir: &Path) -> PathBuf {
    let p = dir.join("secrets");
    fs::write(&p, format!("# users\nalice:{PASSWORD}\nbob:other\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

struct Site {
    tmp: tempfile::TempDir,
    src: PathBuf,
}

impl Site {
    fn new(protocol: u8) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        build_tree(
            &src,
            TreeSpec {
                protocol,
                big: false,
                root_items: true,
            },
        );
        Site { tmp, src }
    }

    fn dir(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// A daemon config with the modules the tests use.
    fn config(&self) -> DaemonConfig {
        let mut cfg = DaemonConfig::default();
        cfg.global.log_file = Some(self.tmp.path().join("daemon.log"));
        let mut pubm = module("pub", &self.src);
        pubm.read_only = true;
        let mut up = module("up", &self.dir("up"));
        up.read_only = false;
        let mut wo = module("wo", &self.dir("wo"));
        wo.read_only = false;
        wo.write_only = true;
        let mut hidden = module("hidden", &self.src);
        hidden.list = false;
        let mut deny = module("deny", &self.src);
        deny.hosts_deny = HostList::parse("127.0.0.0/8").unwrap();
        let mut allow = module("allow", &self.src);
        allow.hosts_allow = HostList::parse("10.0.0.0/8 ::1 127.0.0.1").unwrap();
        let mut other = module("other", &self.src);
        other.hosts_allow = HostList::parse("10.1.2.3").unwrap();
        let mut auth = module("auth", &self.src);
        auth.auth_users = parse_auth_users("alice");
        auth.secrets_file = Some(write_secrets(self.tmp.path()));
        let mut authup = module("authup", &self.dir("authup"));
        authup.read_only = true;
        authup.auth_users = parse_auth_users("alice:rw bob:ro");
        authup.secrets_file = Some(write_secrets(self.tmp.path()));
        let mut refuse = module("refuse", &self.src);
        refuse.refuse_options = vec!["checksum".into(), "delete".into()];
        cfg.modules = vec![
            pubm, up, wo, hidden, deny, allow, other, auth, authup, refuse,
        ];
        cfg
    }
}

fn rsync(args: &[&str]) -> Output {
    Command::new("rsync")
        .args(args)
        .env_remove("RSYNC_PASSWORD")
        .output()
        .expect("rsync must be installed")
}

fn rsync_pw(args: &[&str], password: &str) -> Output {
    Command::new("rsync")
        .args(args)
        .env("RSYNC_PASSWORD", password)
        .output()
        .expect("rsync must be installed")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn same(a: &Path, b: &Path, protocol: u8) {
    let d = compare_trees(a, b, Compare::all(protocol >= 31));
    assert!(d.is_empty(), "trees differ:\n{}", d.join("\n"));
}

fn entries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn rsync_client_lists_pulls_and_pushes_at_every_protocol() {
    for protocol in [29u8, 30, 31, 32] {
        let site = Site::new(protocol);
        let served = Served::start(Daemon::new(site.config()));
        let p = format!("--protocol={protocol}");
        // List: listed modules with comments, unlisted ones hidden.
        let out = rsync(&[&p, &served.url("")]);
        assert!(out.status.success(), "{}", text(&out));
        let listing = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            listing.contains("pub            \tthe pub module"),
            "{listing}"
        );
        assert!(
            listing.contains("up             \tthe up module"),
            "{listing}"
        );
        assert!(!listing.contains("hidden"), "{listing}");
        // Pull the whole module.
        let dst = site.tmp.path().join(format!("pulled{protocol}"));
        let out = rsync(&[
            "-a",
            &p,
            &served.url("pub/"),
            &format!("{}/", dst.display()),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        same(&site.src, &dst, protocol);
        // Pull a subdirectory and an unlisted module.
        let dst2 = site.tmp.path().join(format!("sub{protocol}"));
        let out = rsync(&[
            "-a",
            &p,
            &served.url("hidden/a/"),
            &format!("{}/", dst2.display()),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        same(&site.src.join("a"), &dst2, protocol);
        // A missing path is reported with rsync's words.
        let out = rsync(&[
            "-a",
            &p,
            &served.url("pub/missing"),
            &format!("{}/", dst2.display()),
        ]);
        assert_eq!(out.status.code(), Some(23), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("link_stat"),
            "{}",
            text(&out)
        );
        // Push into a writable module, then update by delta.
        let out = rsync(&[
            "-a",
            &p,
            &format!("{}/", site.src.display()),
            &served.url("up/tree/"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        same(&site.src, &site.tmp.path().join("up/tree"), protocol);
        let f = site.src.join("f65536");
        let mut data = fs::read(&f).unwrap();
        data[100] ^= 0xff;
        fs::write(&f, &data).unwrap();
        let out = rsync(&[
            "-a",
            "--stats",
            &p,
            &format!("{}/", site.src.display()),
            &served.url("up/tree/"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Matched data: "),
            "{}",
            text(&out)
        );
        same(&site.src, &site.tmp.path().join("up/tree"), protocol);
        drop(served);
    }
}

#[test]
fn module_rules_refuse_with_rsyncs_errors() {
    let site = Site::new(32);
    let served = Served::start(Daemon::new(site.config()));
    let src = format!("{}/", site.src.display());
    let out_dir = site.tmp.path().join("out");
    let dst = format!("{}/", out_dir.display());

    // Read-only module: push refused, nothing written.
    let out = rsync(&["-a", &src, &served.url("pub/new/")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ERROR: module is read only"),
        "{}",
        text(&out)
    );
    assert!(!site.src.join("new").exists());

    // Write-only module: pull refused.
    let out = rsync(&["-a", &served.url("wo/"), &dst]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ERROR: module is write only"),
        "{}",
        text(&out)
    );
    // ... but a push works.
    let out = rsync(&["-a", &src, &served.url("wo/")]);
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &site.tmp.path().join("wo"), 32);

    // Unknown module.
    let out = rsync(&["-a", &served.url("nope/"), &dst]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("@ERROR: Unknown module 'nope'"),
        "{}",
        text(&out)
    );

    // hosts deny refuses 127.0.0.1; hosts allow lets it in; an allow list
    // without it refuses.
    let out = rsync(&["-a", &served.url("deny/"), &dst]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("@ERROR: access denied to deny from"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(127.0.0.1)"),
        "{}",
        text(&out)
    );
    let out = rsync(&["-a", &served.url("other/"), &dst]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let out = rsync(&["-a", &served.url("allow/"), &dst]);
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &out_dir, 32);

    // refuse options.
    let out = rsync(&["-a", "-c", &served.url("refuse/"), &dst]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("The server is configured to refuse --checksum (-c)"),
        "{}",
        text(&out)
    );
    let out = rsync(&["-a", "--delete", &src, &served.url("refuse/")]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("The server is configured to refuse --delete"),
        "{}",
        text(&out)
    );
    let log = fs::read_to_string(site.tmp.path().join("daemon.log")).unwrap();
    assert!(log.contains("refused connect from"), "{log}");
}

#[test]
fn authentication_with_every_digest() {
    let site = Site::new(32);
    for digest in AuthDigest::OFFERED {
        let daemon = Daemon::new(site.config()).with_auth_digests(&[digest]);
        let served = Served::start(daemon);
        let dst = site.tmp.path().join(format!("auth-{}", digest.name()));
        let dst_s = format!("{}/", dst.display());
        let url = served.url("auth/").replace("rsync://", "rsync://alice@");
        // Wrong password, then no password, then the right one.
        let out = rsync_pw(&["-a", &url, &dst_s], "wrong");
        assert_eq!(
            out.status.code(),
            Some(5),
            "{}: {}",
            digest.name(),
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("@ERROR: auth failed on module auth"),
            "{}",
            text(&out)
        );
        assert!(!dst.exists());
        let url_bob = served.url("auth/").replace("rsync://", "rsync://bob@");
        let out = rsync_pw(&["-a", &url_bob, &dst_s], "other");
        assert_eq!(
            out.status.code(),
            Some(5),
            "bob is not an auth user: {}",
            text(&out)
        );
        let out = rsync_pw(&["-a", &url, &dst_s], PASSWORD);
        assert!(out.status.success(), "{}: {}", digest.name(), text(&out));
        same(&site.src, &dst, 32);
        // Our own client, password from the API and from a file.
        let ours = site.tmp.path().join(format!("ours-{}", digest.name()));
        let u = DaemonUrl::parse(&url).unwrap();
        let rt = rt();
        let r = rt.block_on(
            Transfer::new(Options::archive())
                .with_password(PASSWORD)
                .pull_daemon(&u, &ours),
        );
        assert!(r.is_ok(), "{}: {r:?}", digest.name());
        same(&site.src, &ours, 32);
        let bad = rt.block_on(
            Transfer::new(Options::archive())
                .with_password("nope")
                .pull_daemon(&u, &site.tmp.path().join("never")),
        );
        match bad {
            Err(Error::DaemonRefused(m)) => assert_eq!(m, "auth failed on module auth"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(!site.tmp.path().join("never").exists());
    }
    // :ro / :rw suffixes override `read only`.
    let served = Served::start(Daemon::new(site.config()));
    let src = format!("{}/", site.src.display());
    let alice = served
        .url("authup/a/")
        .replace("rsync://", "rsync://alice@");
    let out = rsync_pw(&["-a", &src, &alice], PASSWORD);
    assert!(out.status.success(), "alice:rw may push: {}", text(&out));
    same(&site.src, &site.tmp.path().join("authup/a"), 32);
    let bob = served.url("authup/b/").replace("rsync://", "rsync://bob@");
    let out = rsync_pw(&["-a", &src, &bob], "other");
    assert_eq!(
        out.status.code(),
        Some(1),
        "bob:ro may not push: {}",
        text(&out)
    );
    assert!(!site.tmp.path().join("authup/b").exists());
}

use common::daemon::{RealDaemon, free_port, real_daemon};

#[test]
fn our_client_against_real_rsync_daemon() {
    // A tree every protocol carries whole (no nanoseconds, no pre-1970).
    let site = Site::new(29);
    let up = site.dir("realup");
    let secrets = write_secrets(site.tmp.path());
    let conf = format!(
        "use chroot = {chroot}\nmunge symlinks = no\nuid = 0\ngid = 0\nmotd file = {motd}\n\
         [pub]\npath = {src}\ncomment = public tree\n\
         [up]\npath = {up}\nread only = no\n\
         [auth]\npath = {src}\nauth users = alice\nsecrets file = {secrets}\n",
        motd = {
            let m = site.tmp.path().join("motd");
            fs::write(&m, "Hello from the real daemon\n").unwrap();
            m.display().to_string()
        },
        src = site.src.display(),
        up = up.display(),
        secrets = secrets.display(),
        // Without chroot rsync strips the leading slash of absolute link
        // targets it receives; with it (as root) links arrive unchanged.
        chroot = if is_root() { "yes" } else { "no" },
    );
    if !is_root() {
        fs::remove_file(site.src.join("abs-link")).unwrap();
    }
    let real = real_daemon(site.tmp.path(), &conf);
    let base = format!("rsync://127.0.0.1:{}/", real.port);
    let rt = rt();
    // Listing and MOTD.
    let motd = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let m2 = motd.clone();
    let list = rt
        .block_on(
            Transfer::new(Options::default())
                .with_motd(std::sync::Arc::new(move |l: &str| {
                    m2.lock().unwrap().push(l.to_string())
                }))
                .list_modules(&DaemonUrl::parse(&base).unwrap()),
        )
        .unwrap();
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["pub", "up", "auth"]);
    assert_eq!(list[0].comment, "public tree");
    assert!(
        motd.lock()
            .unwrap()
            .iter()
            .any(|l| l == "Hello from the real daemon")
    );
    for protocol in [29u8, 30, 31, 32] {
        let mut o = Options::archive();
        o.protocol = Some(protocol);
        // Pull.
        let dst = site.tmp.path().join(format!("from-real-{protocol}"));
        let r = rt
            .block_on(
                Transfer::new(o.clone())
                    .pull_daemon(&DaemonUrl::parse(&format!("{base}pub/")).unwrap(), &dst),
            )
            .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        same(&site.src, &dst, protocol);
        // Push.
        let target = DaemonUrl::parse(&format!("{base}up/p{protocol}/")).unwrap();
        let srcs = [PathBuf::from(format!("{}/", site.src.display()))];
        let r = rt
            .block_on(Transfer::new(o.clone()).push_daemon(&srcs, &target))
            .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        same(&site.src, &up.join(format!("p{protocol}")), protocol);
    }
    // Auth: each digest we offer alone is accepted by the real daemon.
    for digest in AuthDigest::OFFERED {
        let url =
            DaemonUrl::parse(&format!("rsync://alice@127.0.0.1:{}/auth/", real.port)).unwrap();
        let dst = site.tmp.path().join(format!("real-auth-{}", digest.name()));
        let r = rt.block_on(
            Transfer::new(Options::archive())
                .with_password(PASSWORD)
                .with_auth_digests(&[digest])
                .pull_daemon(&url, &dst),
        );
        assert!(r.is_ok(), "{}: {r:?}", digest.name());
        same(&site.src, &dst, 32);
        let bad = rt.block_on(
            Transfer::new(Options::archive())
                .with_password("wrong")
                .with_auth_digests(&[digest])
                .pull_daemon(&url, &site.tmp.path().join("never")),
        );
        assert!(
            matches!(bad, Err(Error::DaemonRefused(ref m)) if m.contains("auth failed")),
            "{bad:?}"
        );
    }
    // Password file (must not be other-accessible).
    let pw = site.tmp.path().join("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let url = DaemonUrl::parse(&format!("rsync://alice@127.0.0.1:{}/auth/", real.port)).unwrap();
    let dst = site.tmp.path().join("pwfile");
    rt.block_on(
        Transfer::new(Options::archive())
            .with_password_file(&pw)
            .pull_daemon(&url, &dst),
    )
    .unwrap();
    same(&site.src, &dst, 32);
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o604)).unwrap();
    let r = rt.block_on(
        Transfer::new(Options::archive())
            .with_password_file(&pw)
            .pull_daemon(&url, &dst),
    );
    assert!(r.is_err());
    // Unknown module: the daemon's text as a typed error.
    let r = rt.block_on(
        Transfer::new(Options::archive())
            .pull_daemon(&DaemonUrl::parse(&format!("{base}nope/")).unwrap(), &dst),
    );
    match r {
        Err(Error::DaemonRefused(m)) => assert_eq!(m, "Unknown module 'nope'"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn binary_client_and_daemon_both_ways() {
    // The ferrsync binary as a daemon (config file) and as a client.
    let site = Site::new(32);
    let up = site.dir("binup");
    let port = free_port();
    let conf = format!(
        "use chroot = no\n{}[pub]\npath = {}\ncomment = c\n[up]\npath = {}\nread only = false\n",
        if is_root() {
            "uid = root\ngid = root\n"
        } else {
            ""
        },
        site.src.display(),
        up.display(),
    );
    let cfg = site.tmp.path().join("ferrsyncd.conf");
    fs::write(&cfg, conf).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args([
            "--daemon",
            "--no-detach",
            &format!("--config={}", cfg.display()),
        ])
        .arg(format!("--port={port}"))
        .arg("--address=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = RealDaemon { child, port };
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("rsync://127.0.0.1:{port}/");
    let out = rsync(&[&url]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pub"),
        "{}",
        text(&out)
    );
    let dst = site.tmp.path().join("bin-pull");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args(["-a", &format!("{url}pub/"), &format!("{}/", dst.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &dst, 32);
    let out = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args([
            "-a",
            &format!("{}/", site.src.display()),
            &format!("{url}up/"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Without chroot the module munges symlinks (as rsync does) ...
    assert_eq!(
        fs::read_link(up.join("rel-link")).unwrap(),
        Path::new("/rsyncd-munged/f700")
    );
    // ... and unmunges them on the way out: the round trip is exact.
    let back = site.tmp.path().join("bin-back");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args(["-a", &format!("{url}up/"), &format!("{}/", back.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &back, 32);
    let out = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pub            \tc"),
        "{}",
        text(&out)
    );
}

#[test]
fn daemon_over_a_remote_shell() {
    // rsync -e shim host::module: the far side runs `ferrsync --server
    // --daemon .` with its config passed through --rsync-path.
    let site = Site::new(32);
    let cfg = site.tmp.path().join("shell.conf");
    fs::write(
        &cfg,
        format!("use chroot = no\n[pub]\npath = {}\n", site.src.display()),
    )
    .unwrap();
    // Like ssh, the shim hands the command line to a shell.
    let shim = site.tmp.path().join("shell-shim.sh");
    fs::write(&shim, "#!/bin/sh\nshift\nexec sh -c \"$*\"\n").unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    let rp = format!(
        "{} --config={}",
        env!("CARGO_BIN_EXE_ferrsync"),
        cfg.display()
    );
    let dst = site.tmp.path().join("over-shell");
    let out = rsync(&[
        "-a",
        "-e",
        &shim.display().to_string(),
        &format!("--rsync-path={rp}"),
        "localhost::pub/",
        &format!("{}/", dst.display()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &dst, 32);
    // And our client through the same shell into real rsync's daemon mode.
    let real_cfg = site.tmp.path().join("real-shell.conf");
    fs::write(
        &real_cfg,
        format!(
            "use chroot = no\nuid = 0\ngid = 0\n[pub]\npath = {}\n",
            site.src.display()
        ),
    )
    .unwrap();
    let dst2 = site.tmp.path().join("over-shell-ours");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args([
            "-a",
            "-e",
            &shim.display().to_string(),
            &format!("--rsync-path=rsync --config={}", real_cfg.display()),
            "localhost::pub/",
            &format!("{}/", dst2.display()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &dst2, 32);
}

#[test]
fn containment_through_symlinks_and_dotdot() {
    let site = Site::new(32);
    let outside = site.dir("outside");
    fs::write(outside.join("secret"), b"do not read").unwrap();
    let modroot = site.dir("jail");
    fs::write(modroot.join("inside"), b"ok").unwrap();
    std::os::unix::fs::symlink(&outside, modroot.join("esc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", modroot.join("abs")).unwrap();
    for chroot in [false, true] {
        let mut cfg = DaemonConfig::default();
        let mut m = module("jail", &modroot);
        m.read_only = false;
        m.use_chroot = chroot;
        cfg.modules.push(m);
        let served = Served::start(Daemon::new(cfg));
        let dst = site.tmp.path().join(format!("jail-pull-{chroot}"));
        let dst_s = format!("{}/", dst.display());
        // Pulling through the escaping link reads nothing outside.
        let _ = rsync(&["-a", &served.url("jail/esc/"), &dst_s]);
        assert!(!dst.join("secret").exists(), "chroot={chroot}");
        let _ = rsync(&["-a", &served.url("jail/../outside/"), &dst_s]);
        assert!(!dst.join("secret").exists());
        // The whole module: links arrive as links, never followed.
        let out = rsync(&["-a", &served.url("jail/"), &dst_s]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            fs::symlink_metadata(dst.join("esc"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(dst.join("inside")).unwrap(), b"ok");
        // Pushing through the link or with ../ writes nothing outside.
        let before = entries(&outside);
        let _ = rsync(&[
            "-a",
            &format!("{}/", site.src.display()),
            &served.url("jail/esc/"),
        ]);
        let _ = rsync(&[
            "-a",
            &format!("{}/", site.src.display()),
            &served.url("jail/../outside/"),
        ]);
        let _ = rsync(&[
            "-a",
            &format!("{}/", site.src.display()),
            &served.url("jail/esc/deeper/"),
        ]);
        assert_eq!(
            entries(&outside),
            before,
            "chroot={chroot}: something was written outside"
        );
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"do not read");
        // A `../` push lands inside the module.
        let out = rsync(&[
            "-a",
            &format!("{}/", site.src.display()),
            &served.url("jail/../x/"),
        ]);
        if out.status.success() {
            assert!(modroot.join("x").exists() || !site.tmp.path().join("x").exists());
        }
        assert!(!site.tmp.path().join("x").exists());
    }
}

fn hold_connection(port: u16, module: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n")
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\n") {
        s.read_exact(&mut b).unwrap();
        got.push(b[0]);
    }
    s.write_all(format!("{module}\n").as_bytes()).unwrap();
    got.clear();
    while !got.ends_with(b"\n") {
        s.read_exact(&mut b).unwrap();
        got.push(b[0]);
    }
    assert_eq!(got, b"@RSYNCD: OK\n");
    s
}

fn proc_count(pid: u32, what: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/{what}")).unwrap().count()
}

/// The ferrsync binary as a daemon process, killed on drop.
fn binary_daemon(dir: &Path, conf: &str) -> RealDaemon {
    let cfg = dir.join("ferrsyncd.conf");
    fs::write(&cfg, conf).unwrap();
    common::daemon::start(env!("CARGO_BIN_EXE_ferrsync"), &cfg, "127.0.0.1")
}

#[test]
fn max_connections_and_200_concurrent_clients() {
    let site = Site::new(32);
    let small = site.dir("small");
    for i in 0..20 {
        fs::write(
            small.join(format!("f{i}")),
            format!("file {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let conf = format!(
        "use chroot = no\n{}[small]\npath = {p}\nmax connections = 50\n[free]\npath = {p}\n",
        if is_root() {
            "uid = root\ngid = root\n"
        } else {
            ""
        },
        p = small.display()
    );
    let daemon = binary_daemon(site.tmp.path(), &conf);
    let pid = daemon.child.id();
    let url = |m: &str| format!("rsync://127.0.0.1:{}/{m}/", daemon.port);
    // Settle: one connection so that lazily created resources exist.
    let out = rsync(&[
        "-a",
        &url("free"),
        &format!("{}/", site.tmp.path().join("warm").display()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(100));
    let fds_before = proc_count(pid, "fd");
    let tasks_before = proc_count(pid, "task");

    // 50 held connections fill the module; the 51st is turned away with
    // rsync's text, by real rsync.
    let held: Vec<TcpStream> = (0..50)
        .map(|_| hold_connection(daemon.port, "small"))
        .collect();
    let out = rsync(&[
        "-a",
        &url("small"),
        &format!("{}/", site.tmp.path().join("x").display()),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("@ERROR: max connections (50) reached -- try again later"),
        "{}",
        text(&out)
    );
    assert!(!site.tmp.path().join("x").exists());
    drop(held);

    // 200 concurrent pulls: with no limit all succeed; with the limit of
    // 50 every one either succeeds or gets the max-connections refusal,
    // and at least 50 succeed.
    let rt = rt();
    for (module, limited) in [("free", false), ("small", true)] {
        let results = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..200 {
                let u = DaemonUrl::parse(&url(module)).unwrap();
                let dst = site.tmp.path().join(format!("c-{module}-{i}"));
                set.spawn(async move {
                    let r = Transfer::new(Options::archive())
                        .pull_daemon(&u, &dst)
                        .await;
                    (r, dst)
                });
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r.unwrap());
            }
            out
        });
        let mut ok = 0;
        for (r, dst) in results {
            match r {
                Ok(_) => {
                    ok += 1;
                    same(&small, &dst, 32);
                }
                Err(Error::DaemonRefused(m)) if limited => {
                    assert_eq!(m, "max connections (50) reached -- try again later");
                    assert!(!dst.exists());
                }
                Err(e) => panic!("{module}: {e}"),
            }
        }
        if limited {
            assert!(ok >= 50, "{ok}");
        } else {
            assert_eq!(ok, 200);
        }
    }
    // Nothing leaked in the daemon process: threads and descriptors are
    // back to where they were.
    let mut fds = 0;
    let mut tasks = 0;
    for _ in 0..100 {
        fds = proc_count(pid, "fd");
        tasks = proc_count(pid, "task");
        if fds <= fds_before && tasks <= tasks_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fds <= fds_before, "descriptors: {fds} > {fds_before}");
    assert!(tasks <= tasks_before, "threads: {tasks} > {tasks_before}");
    // And the limit still admits new clients.
    let out = rsync(&[
        "-a",
        &url("small"),
        &format!("{}/", site.tmp.path().join("after").display()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn silent_clients_time_out_and_others_are_served() {
    let site = Site::new(32);
    let mut cfg = DaemonConfig::default();
    cfg.modules.push(module("pub", &site.src));
    let daemon = Daemon::new(cfg).with_handshake_timeout(Duration::from_millis(500));
    let served = Served::start(daemon);
    // A client that connects and says nothing, and one that sends garbage.
    let mut silent = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    let mut garbage = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    garbage.write_all(b"GET / HTTP/1.0\n").unwrap();
    let mut buf = Vec::new();
    garbage.read_to_end(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf).contains("@ERROR: protocol startup error"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    // Others are served meanwhile.
    let dst = site.tmp.path().join("served");
    let out = rsync(&["-a", &served.url("pub/"), &format!("{}/", dst.display())]);
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &dst, 32);
    // The silent one is cut off.
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    let greeting = String::from_utf8_lossy(&rest);
    assert!(greeting.starts_with("@RSYNCD: 32.0"), "{greeting}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(served.daemon.active_connections(), 0);
}

#[test]
fn module_parameters_logging_chmod_ids_and_motd() {
    let site = Site::new(32);
    let log = site.tmp.path().join("xfer.log");
    let motd = site.tmp.path().join("motd");
    fs::write(&motd, "Welcome to ferrsync\nSecond line\n").unwrap();
    let mut cfg = DaemonConfig::default();
    cfg.global.log_file = Some(log.clone());
    cfg.global.motd_file = Some(motd);
    let mut m = module("logged", &site.src);
    m.transfer_logging = true;
    m.log_format = "%o %h [%a] %m (%u) %f %l".into();
    m.outgoing_chmod = Some("Fo-rwx,Do-rwx".into());
    cfg.modules.push(m);
    let incoming = site.dir("incoming");
    let mut m = module("in", &incoming);
    m.read_only = false;
    m.incoming_chmod = Some("Fg+w,Dg+s".into());
    m.transfer_logging = true;
    cfg.modules.push(m);
    let named = site.dir("named");
    let mut m = module("named", &named);
    m.read_only = false;
    m.hosts_allow = HostList::parse("localhost").unwrap();
    m.numeric_ids = true;
    cfg.modules.push(m);
    let strict = site.dir("strict");
    let lax_secrets = site.tmp.path().join("lax-secrets");
    fs::write(&lax_secrets, format!("alice:{PASSWORD}\n")).unwrap();
    fs::set_permissions(&lax_secrets, fs::Permissions::from_mode(0o644)).unwrap();
    let mut m = module("strict", &strict);
    m.auth_users = parse_auth_users("alice");
    m.secrets_file = Some(lax_secrets.clone());
    cfg.modules.push(m.clone());
    let mut lax = m;
    lax.name = "lax".into();
    lax.strict_modes = false;
    cfg.modules.push(lax);
    let served = Served::start(Daemon::new(cfg));

    // MOTD before the listing.
    let out = rsync(&[&served.url("")]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.starts_with("Welcome to ferrsync\nSecond line\n"),
        "{listing}"
    );

    // Outgoing chmod: modes as the module says; transfer log lines.
    let dst = site.tmp.path().join("chmodded");
    let out = rsync(&["-a", &served.url("logged/"), &format!("{}/", dst.display())]);
    assert!(out.status.success(), "{}", text(&out));
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode(&dst.join("f700")),
        mode(&site.src.join("f700")) & !0o007
    );
    assert_eq!(mode(&dst.join("a")), mode(&site.src.join("a")) & !0o007);
    let text_log = fs::read_to_string(&log).unwrap();
    let size = fs::metadata(site.src.join("f700")).unwrap().len();
    assert!(
        text_log.contains(&format!("send UNKNOWN [127.0.0.1] logged () f700 {size}")),
        "{text_log}"
    );

    // Incoming chmod applies to what a client pushes.
    let out = rsync(&[
        "-a",
        &format!("{}/", site.src.display()),
        &served.url("in/"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        mode(&incoming.join("f700")),
        mode(&site.src.join("f700")) | 0o020
    );
    assert_ne!(mode(&incoming.join("a")) & 0o2000, 0);
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains("recv UNKNOWN [127.0.0.1] in () f700")
    );

    // hosts allow by name (127.0.0.1 is localhost); numeric ids module.
    let out = rsync(&[
        "-a",
        &format!("{}/", site.src.display()),
        &served.url("named/"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &named, 32);

    // strict modes: an other-readable secrets file is refused unless off.
    let url = |m: &str| {
        served
            .url(&format!("{m}/"))
            .replace("rsync://", "rsync://alice@")
    };
    let out = rsync_pw(
        &["-a", &format!("{}/", site.src.display()), &url("strict")],
        PASSWORD,
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(entries(&strict) == 0);
    let lax_dst = site.tmp.path().join("lax");
    let out = rsync_pw(
        &["-a", &url("lax"), &format!("{}/", lax_dst.display())],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn pushed_files_belong_to_the_module_user() {
    if !is_root() {
        eprintln!("needs root: skipped");
        return;
    }
    let site = Site::new(32);
    let dir = site.dir("nobodys");
    let nobody = 65534;
    rustix::fs::chown(
        &dir,
        Some(rustix::fs::Uid::from_raw(nobody)),
        Some(rustix::fs::Gid::from_raw(nobody)),
    )
    .unwrap();
    let mut cfg = DaemonConfig::default();
    let mut m = Module::new("drop", &dir);
    m.read_only = false;
    m.uid = Some("nobody".into());
    m.gid = Some(nobody.to_string());
    cfg.modules.push(m);
    let served = Served::start(Daemon::new(cfg));
    let plain = site.dir("plain");
    fs::write(plain.join("x"), b"payload").unwrap();
    fs::create_dir(plain.join("d")).unwrap();
    fs::write(plain.join("d/y"), b"more").unwrap();
    let out = rsync(&[
        "-rt",
        &format!("{}/", plain.display()),
        &served.url("drop/"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for p in ["x", "d", "d/y"] {
        let md = fs::symlink_metadata(dir.join(p)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((md.uid(), md.gid()), (nobody, nobody), "{p}");
    }
    // The module user cannot write where it has no permission: a root-owned
    // directory inside the module stays untouched.
    fs::create_dir(dir.join("rootonly")).unwrap();
    fs::set_permissions(dir.join("rootonly"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = rsync(&[
        "-rt",
        &format!("{}/", plain.display()),
        &served.url("drop/rootonly/"),
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(entries(&dir.join("rootonly")), 0);
}

#[test]
fn module_timeout_and_graceful_shutdown() {
    let site = Site::new(32);
    let big = site.dir("big");
    fs::write(big.join("blob"), common::tree::prng_bytes(7, 24 << 20)).unwrap();
    let mut cfg = DaemonConfig::default();
    let mut m = module("t", &site.dir("tdir"));
    m.read_only = false;
    m.timeout = 1;
    cfg.modules.push(m);
    cfg.modules.push(module("big", &big));
    let served = Served::start(Daemon::new(cfg));

    // A client that opens the module for a push and then says nothing is
    // cut off after the module's timeout.
    let mut s = hold_connection(served.port, "t");
    let words = ["--server", "-r", ".", "t/"];
    let mut args = Vec::new();
    for w in words {
        args.extend_from_slice(w.as_bytes());
        args.push(0);
    }
    args.push(0);
    s.write_all(&args).unwrap();
    let started = std::time::Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(15), "not cut off: {waited:?}");

    drop(s);
    for _ in 0..200 {
        if served.daemon.active_connections() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(served.daemon.active_connections(), 0);

    // Shutdown during a transfer lets it finish, then serve() returns.
    let dst = site.tmp.path().join("big-out");
    let dst_s = format!("{}/", dst.display());
    let url = served.url("big/");
    let client = std::thread::spawn(move || {
        Command::new("rsync")
            .args(["-a", "--bwlimit=20m", &url, &dst_s])
            .output()
            .unwrap()
    });
    for _ in 0..500 {
        if served.daemon.active_connections() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(served.daemon.active_connections() > 0);
    std::thread::sleep(Duration::from_millis(300));
    served.stop.shutdown();
    let out = client.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(dst.join("blob")).unwrap(),
        fs::read(big.join("blob")).unwrap()
    );
    // New connections are refused once the listener is closed.
    std::thread::sleep(Duration::from_millis(200));
    assert!(TcpStream::connect(("127.0.0.1", served.port)).is_err());
}

#[test]
fn module_filters_pid_file_ipv6_env_password_groups_and_dont_compress() {
    let site = Site::new(32);
    let text_dir = site.dir("texts");
    let mut big_text = String::new();
    for i in 0..20_000 {
        big_text.push_str(&format!("{i:06} a very compressible line of text\n"));
    }
    fs::write(text_dir.join("notes.txt"), &big_text).unwrap();
    fs::write(text_dir.join("skip.tmp"), b"excluded by the module").unwrap();
    fs::create_dir_all(text_dir.join("cache")).unwrap();
    fs::write(text_dir.join("cache/x"), b"excluded dir").unwrap();
    let secrets = site.tmp.path().join("group-secrets");
    fs::write(&secrets, format!("@root:{PASSWORD}\n")).unwrap();
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600)).unwrap();
    let pid_file = site.tmp.path().join("ferrsyncd.pid");
    let conf = format!(
        "use chroot = no\npid file = {pid}\n{ids}\
         [filtered]\npath = {t}\nexclude = *.tmp cache/\n\
         [plain]\npath = {t}\n\
         [nocomp]\npath = {t}\ndont compress = *.txt\n\
         [grp]\npath = {t}\nauth users = @root\nsecrets file = {s}\n\
         [v6]\npath = {t}\nhosts allow = ::1\n",
        pid = pid_file.display(),
        ids = if is_root() {
            "uid = root\ngid = root\n"
        } else {
            ""
        },
        t = text_dir.display(),
        s = secrets.display(),
    );
    let cfg = site.tmp.path().join("f.conf");
    fs::write(&cfg, conf).unwrap();
    let port = free_port();
    // IPv6 loopback is not on every machine; the IPv6 part needs it.
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args([
            "--daemon",
            "--no-detach",
            &format!("--config={}", cfg.display()),
        ])
        .arg(format!("--port={port}"))
        .arg(if ipv6 {
            "--address=::"
        } else {
            "--address=127.0.0.1"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = RealDaemon { child, port };
    for _ in 0..250 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The pid file names the daemon.
    let pid: u32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, daemon.child.id());
    let url = |m: &str| format!("rsync://127.0.0.1:{port}/{m}/");

    // Module excludes apply to what the client gets.
    let got = site.tmp.path().join("filtered");
    let out = rsync(&["-a", &url("filtered"), &format!("{}/", got.display())]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(got.join("notes.txt").exists());
    assert!(!got.join("skip.tmp").exists());
    assert!(!got.join("cache").exists());
    // ... and a client cannot include them back.
    let got2 = site.tmp.path().join("filtered2");
    let out = rsync(&[
        "-a",
        "--include=*.tmp",
        &url("filtered"),
        &format!("{}/", got2.display()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!got2.join("skip.tmp").exists());

    // dont compress: the .txt file travels at level 0 with zlib.
    let received = |module: &str| -> u64 {
        let d = site.tmp.path().join(format!("z-{module}"));
        let out = rsync(&[
            "-a",
            "--zc=zlib",
            "--stats",
            &url(module),
            &format!("{}/", d.display()),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(fs::read_to_string(d.join("notes.txt")).unwrap(), big_text);
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let line = s
            .lines()
            .find(|l| l.starts_with("Total bytes received:"))
            .unwrap()
            .to_string();
        line.split(':')
            .nth(1)
            .unwrap()
            .trim()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    let plain = received("plain");
    let nocomp = received("nocomp");
    assert!(nocomp > big_text.len() as u64, "{nocomp}");
    assert!(plain * 4 < nocomp, "{plain} vs {nocomp}");

    // @group in auth users, password from RSYNC_PASSWORD, with our binary.
    let dst = site.tmp.path().join("grp");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args([
            "-a",
            &url("grp").replace("rsync://", "rsync://root@"),
            &format!("{}/", dst.display()),
        ])
        .env("RSYNC_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(dst.join("notes.txt").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args([
            "-a",
            &url("grp").replace("rsync://", "rsync://root@"),
            &format!("{}/", dst.display()),
        ])
        .env("RSYNC_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("@ERROR: auth failed on module grp"),
        "{}",
        text(&out)
    );

    // IPv6: hosts allow = ::1 admits a client on ::1 and refuses 127.0.0.1.
    if !ipv6 {
        eprintln!("no IPv6 loopback here: the IPv6 part is skipped");
        drop(daemon);
        return;
    }
    let v6 = site.tmp.path().join("v6");
    let out = rsync(&[
        "-a",
        &format!("rsync://[::1]:{port}/v6/"),
        &format!("{}/", v6.display()),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(v6.join("notes.txt").exists());
    let out = rsync(&[
        "-a",
        &url("v6"),
        &format!("{}/", site.tmp.path().join("v4").display()),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    drop(daemon);
}

#[test]
fn config_file_port_address_and_wildcard_hosts() {
    // `port` and `address` from the config file alone (no command-line
    // overrides), and host-name wildcards in hosts allow/deny.
    let site = Site::new(32);
    let port = free_port();
    let conf = format!(
        "port = {port}\naddress = 127.0.0.1\nuse chroot = no\n{ids}\
         [wild]\npath = {src}\nhosts allow = local*\n\
         [nobody]\npath = {src}\nhosts deny = *\n\
         [numeric]\npath = {src}\nhosts allow = 127.0.0.*\n",
        ids = if is_root() {
            "uid = root\ngid = root\n"
        } else {
            ""
        },
        src = site.src.display(),
    );
    let cfg = site.tmp.path().join("portconf.conf");
    fs::write(&cfg, conf).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrsync"))
        .args([
            "--daemon",
            "--no-detach",
            &format!("--config={}", cfg.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _d = RealDaemon { child, port };
    for _ in 0..250 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = |m: &str| format!("rsync://127.0.0.1:{port}/{m}/");
    let dst = site.tmp.path().join("wild");
    let out = rsync(&["-a", &url("wild"), &format!("{}/", dst.display())]);
    assert!(out.status.success(), "{}", text(&out));
    same(&site.src, &dst, 32);
    let out = rsync(&[
        "-a",
        &url("nobody"),
        &format!("{}/", site.tmp.path().join("n").display()),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("@ERROR: access denied to nobody from"),
        "{}",
        text(&out)
    );
    // rsync matches wildcards against host names only: an address pattern
    // like 127.0.0.* does not admit 127.0.0.1 by address.
    let out = rsync(&[
        "-a",
        &url("numeric"),
        &format!("{}/", site.tmp.path().join("m").display()),
    ]);
    let theirs = {
        let rcfg = site.tmp.path().join("real-wild.conf");
        fs::write(
            &rcfg,
            format!(
                "use chroot = no\n[numeric]\npath = {}\nhosts allow = 127.0.0.*\n",
                site.src.display()
            ),
        )
        .unwrap();
        let d = common::daemon::start("rsync", &rcfg, "127.0.0.1");
        let o = rsync(&[
            "-a",
            &format!("rsync://127.0.0.1:{}/numeric/", d.port),
            &format!("{}/", site.tmp.path().join("r").display()),
        ]);
        o.status.code()
    };
    assert_eq!(
        out.status.code(),
        theirs,
        "ours vs real rsync daemon: {}",
        text(&out)
    );
}
