//! A scripted hostile sender against our receiving client, at protocols 29
//! to 32, over the pipe transport (`run_client` on a byte stream) and over
//! the daemon transport (the fake peer also speaks the daemon greeting,
//! module acknowledgement and argument words, and our daemon client pulls
//! from it with `Transfer::pull_daemon`): traversal names, symlink escapes, a file sent "through" a
//! symlink the same transfer created, pre-existing symlinks in the
//! destination, out-of-range indexes, sum-header and token abuse, a basis
//! redirect, message floods and oversized lists. Every case must end in a
//! clear error or a clean refusal, within 30 seconds, with nothing written
//! outside the destination and old files intact.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrsync::delta::{SumHead, encode_block, encode_end, encode_literal};
use ferrsync::engine::{
    ClientRole, Hooks, MuxReader, MuxWriter, Options, ServerArgs, run_client, setup,
};
use ferrsync::flist::{FileEntry, FileListEncoder, FlistOptions};
use ferrsync::wire::{self, CompatFlags, Limits, MsgCode, NdxDecoder, NdxEncoder};

const PROTOCOLS: [u8; 4] = [29, 30, 31, 32];

/// What the hostile sender does once the list is out.
#[derive(Clone, Debug)]
enum Act {
    /// Answer every request with this content (a well-formed transfer).
    Serve(Vec<u8>),
    /// Answer the first request with another index.
    WrongIndex(i32),
    /// Answer with this sum header instead of the generator's.
    SumHead(SumHead),
    /// Send a block reference although there is no basis.
    BlockWithoutBasis,
    /// Claim a basis in the partial dir / fuzzy name outside the tree.
    BasisRedirect,
    /// Send a literal far beyond the listed size.
    EndlessLiteral,
    /// Flood the receiver with info messages, then serve.
    Flood,
    /// Send a wrong whole-file checksum.
    BadChecksum,
}

fn entry(name: &str, mode: u32, size: u64) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        mode,
        size,
        mtime: 1_700_000_000,
        ..FileEntry::default()
    }
}

fn dir(name: &str) -> FileEntry {
    entry(name, 0o040_755, 0)
}

fn file(name: &str, size: u64) -> FileEntry {
    entry(name, 0o100_644, size)
}

fn link(name: &str, target: &str) -> FileEntry {
    let mut e = entry(name, 0o120_777, target.len() as u64);
    e.extra_mut().link_target = Some(target.as_bytes().to_vec());
    e
}

fn opts(protocol: u8) -> Options {
    let mut o = Options::archive();
    o.owner = false;
    o.group = false;
    o.protocol = Some(protocol);
    o.timeout = 20;
    o
}

/// The two transports the suite runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Pipe,
    Daemon,
}

const TRANSPORTS: [Transport; 2] = [Transport::Pipe, Transport::Daemon];

/// The daemon half of the fake peer: greeting at `protocol`, the client's
/// greeting and module line, `@RSYNCD: OK`, the argument words; then the
/// same hostile session as over a pipe, without the version ints.
async fn hostile_daemon(
    listener: tokio::net::TcpListener,
    protocol: u8,
    list: Vec<FileEntry>,
    act: Act,
) -> Result<(), ferrsync::Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut sock, _) = listener
        .accept()
        .await
        .map_err(ferrsync::Error::Connection)?;
    let hello = ferrsync::handshake::daemon::format_greeting(
        protocol,
        &ferrsync::handshake::daemon::AuthDigest::OFFERED,
    );
    sock.write_all(hello.as_bytes())
        .await
        .map_err(ferrsync::Error::Connection)?;
    // Two lines (greeting, module), then the words up to the empty one.
    let term = if protocol >= 30 { 0u8 } else { b'\n' };
    let mut lines = 0;
    let mut prev = 0u8;
    let mut b = [0u8; 1];
    loop {
        if sock
            .read(&mut b)
            .await
            .map_err(ferrsync::Error::Connection)?
            == 0
        {
            return Err(ferrsync::Error::UnexpectedEof(0));
        }
        if lines < 2 {
            if b[0] == b'\n' {
                lines += 1;
                if lines == 2 {
                    sock.write_all(b"@RSYNCD: OK\n")
                        .await
                        .map_err(ferrsync::Error::Connection)?;
                    prev = term;
                }
            }
            continue;
        }
        if b[0] == term && prev == term {
            break;
        }
        prev = b[0];
    }
    hostile(sock, protocol, Some(protocol), list, act).await
}

async fn hostile<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(
    io: S,
    protocol: u8,
    known_protocol: Option<u8>,
    list: Vec<FileEntry>,
    act: Act,
) -> Result<(), ferrsync::Error> {
    let (rd, wr) = tokio::io::split(io);
    let mut r = MuxReader::new(rd, Limits::default());
    let mut w = MuxWriter::new(wr);
    let sa = ServerArgs {
        sender: true,
        capabilities: Options::capabilities().to_string(),
        options: opts(protocol),
        ..ServerArgs::default()
    };
    let s = setup::server_setup(&mut r, &mut w, &sa, known_protocol).await?;
    w.set_muxed(true);
    r.set_muxed(s.protocol >= 30);
    setup::recv_filter_list(&mut r, 8192).await?;
    let fo = FlistOptions {
        protocol: s.protocol,
        varint_flags: s.varint_flags(),
        safe_flist: s.safe_flist(),
        id0_names: s.compat.contains(CompatFlags::ID0_NAMES),
        preserve_links: true,
        ..FlistOptions::default()
    };
    let mut enc = FileListEncoder::new(fo);
    for e in &list {
        enc.encode_entry(w.buf(), e)?;
    }
    enc.encode_end(w.buf(), 0);
    if s.protocol < 30 {
        wire::encode_i32(w.buf(), 0);
    }
    w.flush().await?;
    if matches!(act, Act::Flood) {
        let text = vec![b'x'; 4000];
        for _ in 0..20_000 {
            w.send_msg(MsgCode::Info, &text).await?;
        }
    }
    let digest_len = s.checksum.kind.digest_len();
    let mut ndx_in = NdxDecoder::new(s.protocol);
    let mut ndx_out = NdxEncoder::new(s.protocol);
    let mut phase = 0;
    let max_phase = if s.protocol >= 29 { 2 } else { 1 };
    loop {
        let ndx = r.decode(|b| ndx_in.decode(b)).await?;
        if ndx == wire::NDX_DONE {
            phase += 1;
            ndx_out.encode(w.buf(), wire::NDX_DONE);
            w.flush().await?;
            if phase > max_phase {
                break;
            }
            continue;
        }
        let iflags = r.read_u16().await?;
        if iflags & 0x8000 == 0 {
            // No transfer: echo and go on.
            ndx_out.encode(w.buf(), ndx);
            wire::encode_u16(w.buf(), iflags);
            continue;
        }
        let head = r
            .decode(|b| SumHead::decode(b, s.protocol, digest_len, &Limits::default()))
            .await?;
        let mut blocks = 0;
        while blocks < head.count {
            let mut skip = vec![0u8; 4 + usize::try_from(head.s2length).unwrap()];
            r.read_exact(&mut skip).await?;
            blocks += 1;
        }
        let content = match &act {
            Act::Serve(c) => c.clone(),
            _ => b"payload".to_vec(),
        };
        match &act {
            Act::WrongIndex(i) => ndx_out.encode(w.buf(), *i),
            _ => ndx_out.encode(w.buf(), ndx),
        }
        match &act {
            Act::BasisRedirect => {
                // Basis type follows (fuzzy) and an xname pointing out.
                wire::encode_u16(w.buf(), iflags | 0x0800 | 0x1000);
                w.buf().push(0x83);
                wire::encode_vstring(w.buf(), b"../../outside/secret")?;
            }
            _ => wire::encode_u16(w.buf(), iflags),
        }
        match &act {
            Act::SumHead(h) => h.encode(w.buf(), s.protocol),
            _ => head.encode(w.buf(), s.protocol),
        }
        let mut hasher = s.checksum.file_hasher();
        match &act {
            Act::BlockWithoutBasis | Act::BasisRedirect => {
                encode_block(w.buf(), 0);
            }
            Act::EndlessLiteral => {
                let chunk = vec![7u8; 1 << 20];
                for _ in 0..200 {
                    encode_literal(w.buf(), &chunk);
                    w.flush().await?;
                }
            }
            _ => {
                encode_literal(w.buf(), &content);
                hasher.update(&content);
            }
        }
        encode_end(w.buf());
        let mut sum = hasher.finish().as_bytes().to_vec();
        if matches!(act, Act::BadChecksum) {
            sum[0] ^= 0xff;
        }
        w.buf().extend_from_slice(&sum);
        w.flush().await?;
    }
    // Statistics, then the goodbye (rsync's read_final_goodbye).
    for _ in 0..5 {
        wire::encode_varlong30(w.buf(), s.protocol, 0, 3);
    }
    w.flush().await?;
    if s.protocol >= 31 {
        loop {
            let ndx = r.decode(|b| ndx_in.decode(b)).await?;
            if ndx == wire::NDX_DEL_STATS {
                for _ in 0..5 {
                    r.read_varint().await?;
                }
                continue;
            }
            ndx_out.encode(w.buf(), wire::NDX_DONE);
            w.flush().await?;
            break;
        }
    }
    let _ = r.decode(|b| ndx_in.decode(b)).await;
    Ok(())
}

struct Site {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&dest).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"outside secret").unwrap();
    fs::write(dest.join("old"), b"old file").unwrap();
    Site {
        _tmp: tmp,
        dest,
        outside,
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

/// Runs one case over both transports; returns the client's result over
/// the last one. Checks the invariants that hold for every case.
fn run_case(
    name: &str,
    protocol: u8,
    s: &Site,
    list: Vec<FileEntry>,
    act: Act,
) -> Result<ferrsync::Report, ferrsync::Error> {
    let links: Vec<(PathBuf, PathBuf)> = fs::read_dir(&s.dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| fs::read_link(&p).ok().map(|t| (p, t)))
        .collect();
    let mut last = None;
    for t in TRANSPORTS {
        // Each transport starts from the same destination.
        reset(s, &links);
        PRE.with(|pre| {
            for (path, data) in pre.borrow().iter() {
                let p = s.dest.join(path);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, data).unwrap();
            }
        });
        last = Some(run_case_over(
            t,
            name,
            protocol,
            s,
            list.clone(),
            act.clone(),
        ));
    }
    last.unwrap()
}

/// Puts the destination back as [`site`] made it (keeping a symlink or
/// directory the case added before the run).
fn reset(s: &Site, links: &[(PathBuf, PathBuf)]) {
    for e in fs::read_dir(&s.dest).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    fs::write(s.dest.join("old"), b"old file").unwrap();
    for (p, t) in links {
        std::os::unix::fs::symlink(t, p).unwrap();
    }
}

/// What a pull asked for (CVE-2022-29154 cases): the source word over a
/// pipe, the path inside the module over the daemon transport, `-r`,
/// `-R`, `--trust-sender`, the client's `--filter` rules.
#[derive(Clone, Debug, Default)]
struct Ask {
    word: String,
    module_path: String,
    recursive: bool,
    relative: bool,
    trust: bool,
    filters: Vec<String>,
}

thread_local! {
    static ASK: std::cell::RefCell<Option<Ask>> = const { std::cell::RefCell::new(None) };
    /// Files put into the destination before each transport's run.
    static PRE: std::cell::RefCell<Vec<(String, Vec<u8>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn run_case_over(
    transport: Transport,
    name: &str,
    protocol: u8,
    s: &Site,
    list: Vec<FileEntry>,
    act: Act,
) -> Result<ferrsync::Report, ferrsync::Error> {
    let ask = ASK.with(|a| a.borrow().clone());
    let outside_before = snapshot(&s.outside);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dest = s.dest.clone();
    let name = format!("{name} over {transport:?}");
    let name = name.as_str();
    let result = rt.block_on(async {
        let mut o = opts(protocol);
        if name.starts_with("delete") {
            o.delete = Some(ferrsync::DeleteTiming::Auto);
        }
        if name.contains("[K]") {
            o.keep_dirlinks = true;
        }
        if name.contains("[safe]") {
            o.safe_links = true;
        }
        let mut module_path = String::new();
        if let Some(a) = &ask {
            o.recursive = a.recursive;
            o.relative = a.relative;
            o.trust_sender = a.trust;
            o.filters = a
                .filters
                .iter()
                .map(|f| ferrsync::filter::FilterArg::Filter(f.clone()))
                .collect();
            if transport == Transport::Pipe {
                o.requested = vec![a.word.clone()];
            }
            module_path = a.module_path.clone();
        }
        let both = async {
            match transport {
                Transport::Pipe => {
                    let (ours, theirs) = tokio::io::duplex(1 << 16);
                    let (rd, wr) = tokio::io::split(ours);
                    let role = ClientRole::Receiver { dest };
                    let hooks = Hooks::default();
                    tokio::join!(
                        run_client(rd, wr, &o, role, &hooks),
                        hostile(theirs, protocol, None, list, act)
                    )
                }
                Transport::Daemon => {
                    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let url = format!(
                        "rsync://127.0.0.1:{}/m/{module_path}",
                        l.local_addr().unwrap().port()
                    );
                    let url = ferrsync::transport::daemon::DaemonUrl::parse(&url).unwrap();
                    let t = ferrsync::Transfer::new(o.clone());
                    tokio::join!(
                        t.pull_daemon(&url, &dest),
                        hostile_daemon(l, protocol, list, act)
                    )
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), both).await
    });
    let (client, server) = result.unwrap_or_else(|_| panic!("{name} p{protocol}: hung"));
    if std::env::var("HOSTILE_DEBUG").is_ok() {
        eprintln!(
            "{name} p{protocol}: client {:?} / peer {:?}",
            client.as_ref().map(|r| &r.errors),
            server
        );
    }
    assert_eq!(
        snapshot(&s.outside),
        outside_before,
        "{name} p{protocol}: something outside changed"
    );
    if !name.starts_with("delete") {
        assert_eq!(
            fs::read(s.dest.join("old")).unwrap(),
            b"old file",
            "{name} p{protocol}"
        );
    }
    // No temporary file is left anywhere in the destination.
    for (p, _) in snapshot(&s.dest) {
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !(n.starts_with('.') && n.len() > 8 && n.as_bytes()[n.len() - 7] == b'.'),
            "{name} p{protocol}: temp file left: {p:?}"
        );
    }
    client
}

fn must_fail(name: &str, r: &Result<ferrsync::Report, ferrsync::Error>) {
    match r {
        Err(_) => {}
        Ok(rep) => assert!(
            !rep.errors.is_empty() || rep.exit_code().code() != 0,
            "{name}: the hostile input was accepted silently"
        ),
    }
}

#[test]
fn traversal_names_are_refused() {
    let names = [
        "../evil",
        "/abs/evil",
        "a/../../evil",
        "ok/../../../outside/secret",
        "..",
        "a//../..//evil",
    ];
    for protocol in PROTOCOLS {
        for n in names {
            let s = site();
            let list = vec![dir("."), file(n, 7)];
            let r = run_case(n, protocol, &s, list, Act::Serve(b"payload".to_vec()));
            must_fail(n, &r);
            assert!(!s.dest.parent().unwrap().join("evil").exists());
        }
    }
}

#[test]
fn files_through_symlinks_never_leave_the_destination() {
    for protocol in PROTOCOLS {
        // A symlink the same transfer creates, then a file "through" it.
        let s = site();
        let out = s.outside.display().to_string();
        let list = vec![dir("."), link("esc", &out), file("esc/secret", 7)];
        let r = run_case(
            "through-new-link",
            protocol,
            &s,
            list,
            Act::Serve(b"pwned!!".to_vec()),
        );
        must_fail("through-new-link", &r);
        // A symlink already in the destination, then a directory and file
        // of the same name: the link is replaced, never followed.
        let s = site();
        std::os::unix::fs::symlink(&s.outside, s.dest.join("pre")).unwrap();
        let list = vec![dir("."), dir("pre"), file("pre/secret", 7)];
        let r = run_case(
            "through-old-link",
            protocol,
            &s,
            list,
            Act::Serve(b"pwned!!".to_vec()),
        );
        if r.is_ok() {
            assert!(fs::symlink_metadata(s.dest.join("pre")).unwrap().is_dir());
            assert_eq!(fs::read(s.dest.join("pre/secret")).unwrap(), b"pwned!!");
        }
        // A symlinked directory in the destination and --delete: nothing
        // outside is deleted.
        let s = site();
        std::os::unix::fs::symlink(&s.outside, s.dest.join("deldir")).unwrap();
        let list = vec![dir("."), dir("deldir"), file("keep", 7)];
        let r = run_case(
            "delete-through-link",
            protocol,
            &s,
            list,
            Act::Serve(b"payload".to_vec()),
        );
        assert!(r.is_ok(), "{r:?}");
        assert!(
            fs::symlink_metadata(s.dest.join("deldir"))
                .unwrap()
                .is_dir()
        );
        assert!(s.outside.join("secret").exists());
        // A file whose parent is a file of the list.
        let s = site();
        let list = vec![dir("."), file("f", 7), file("f/g", 7)];
        let r = run_case(
            "file-under-file",
            protocol,
            &s,
            list,
            Act::Serve(b"payload".to_vec()),
        );
        must_fail("file-under-file", &r);
        // An entry whose parent is not in the list at all.
        let s = site();
        let list = vec![dir("."), file("nodir/g", 7)];
        let r = run_case(
            "orphan",
            protocol,
            &s,
            list,
            Act::Serve(b"payload".to_vec()),
        );
        must_fail("orphan", &r);
    }
}

#[test]
fn protocol_abuse_ends_with_a_clear_error() {
    let cases: Vec<(&str, Act)> = vec![
        ("wrong-index", Act::WrongIndex(5000)),
        ("negative-index", Act::WrongIndex(-77)),
        (
            "huge-sum-count",
            Act::SumHead(SumHead {
                count: i32::MAX,
                blength: 700,
                s2length: 16,
                remainder: 0,
            }),
        ),
        (
            "huge-block-len",
            Act::SumHead(SumHead {
                count: 1,
                blength: 1 << 30,
                s2length: 16,
                remainder: 0,
            }),
        ),
        (
            "bad-strong-len",
            Act::SumHead(SumHead {
                count: 1,
                blength: 700,
                s2length: 99,
                remainder: 0,
            }),
        ),
        ("block-without-basis", Act::BlockWithoutBasis),
        ("basis-redirect", Act::BasisRedirect),
        ("endless-literal", Act::EndlessLiteral),
        ("bad-checksum", Act::BadChecksum),
    ];
    for protocol in PROTOCOLS {
        for (name, act) in &cases {
            let s = site();
            let list = vec![dir("."), file("target", 7)];
            let r = run_case(name, protocol, &s, list, act.clone());
            must_fail(name, &r);
            assert!(
                !s.dest.join("target").exists()
                    || fs::read(s.dest.join("target")).unwrap() != b"outside secret"
            );
        }
    }
}

#[test]
fn message_floods_and_big_lists_stay_bounded() {
    for protocol in [30u8, 32] {
        let s = site();
        let list = vec![dir("."), file("f", 7)];
        let r = run_case("flood", protocol, &s, list, Act::Flood);
        // A flood of informational messages is noise, not an attack on
        // correctness: the transfer completes.
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(fs::read(s.dest.join("f")).unwrap(), b"payload");
    }
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(hwm_kib < 1024 * 1024, "peak memory {hwm_kib} KiB");
}

/// `-K` lets a receiver-side symlink stand for a directory, but only one
/// that resolves inside the destination: symlinked parents pointing
/// outside (absolute, or climbing with `..`) are refused with a clear
/// error, through handles (`openat2` with `RESOLVE_BENEATH`, or the
/// `openat` walk), and nothing outside is written or deleted.
#[test]
fn keep_dirlinks_never_follows_a_symlink_out_of_the_destination() {
    if std::env::var_os(ferrsync::fs::beneath::WALK_ENV).is_some() {
        assert!(ferrsync::fs::beneath::walk_forced());
    }
    for protocol in PROTOCOLS {
        let s = site();
        std::os::unix::fs::symlink(&s.outside, s.dest.join("kd")).unwrap();
        std::os::unix::fs::symlink("../outside", s.dest.join("kr")).unwrap();
        std::os::unix::fs::symlink("inner", s.dest.join("ki")).unwrap();
        let list = vec![
            dir("."),
            dir("inner"),
            dir("kd"),
            file("kd/new", 7),
            file("kd/secret", 7),
            dir("ki"),
            file("ki/f", 7),
            dir("kr"),
            file("kr/secret", 7),
        ];
        let r = run_case(
            "outside-links[K]",
            protocol,
            &s,
            list.clone(),
            Act::Serve(b"pwned!!".to_vec()),
        );
        must_fail("outside-links[K]", &r);
        if let Err(e) = &r {
            panic!("outside-links[K] p{protocol}: the transfer itself failed: {e}");
        }
        let errs = r.unwrap().errors.join("\n");
        assert!(
            errs.contains("outside the destination or through a symlink"),
            "p{protocol}: {errs}"
        );
        // The link that stays inside is followed, as rsync's -K does.
        assert!(
            fs::symlink_metadata(s.dest.join("ki"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(fs::read(s.dest.join("inner/f")).unwrap(), b"pwned!!");
        // --delete under -K through the same links deletes nothing outside.
        let s = site();
        std::os::unix::fs::symlink(&s.outside, s.dest.join("kd")).unwrap();
        let list = vec![dir("."), dir("kd"), file("keep", 7)];
        let r = run_case(
            "delete-through-link[K]",
            protocol,
            &s,
            list,
            Act::Serve(b"payload".to_vec()),
        );
        assert!(r.is_ok(), "{r:?}");
        assert!(s.outside.join("secret").exists());
    }
}

/// CVE-2024-12088: under `--safe-links` a sender lists `deep/a -> ..`
/// (safe on its own: it names the top of the destination) and then links
/// that climb through it (`deep/a/../outside/secret` counts as staying
/// inside but resolves outside). None of the climbing links is made, as
/// rsync 3.4+ does; no symlink in the destination resolves outside; a
/// file sent through one lands nowhere outside.
#[test]
fn safe_links_refuses_links_that_climb_through_another_link() {
    let through = |s: &Site| {
        let top = fs::canonicalize(&s.dest).unwrap();
        for (p, _) in snapshot(&s.dest) {
            if fs::symlink_metadata(&p).unwrap().is_symlink()
                && let Ok(c) = fs::canonicalize(&p)
            {
                assert!(c.starts_with(&top), "{p:?} resolves to {c:?}");
            }
        }
    };
    for protocol in PROTOCOLS {
        let s = site();
        let list = vec![
            dir("."),
            dir("deep"),
            link("deep/a", ".."),
            link("lnk", "deep/a/../outside/secret"),
            link("esc", "deep/a/../outside"),
            link("d2", "deep/a/.."),
            link("dot", "./../outside"),
            file("plain", 7),
        ];
        let r = run_case(
            "cve-2024-12088[safe]",
            protocol,
            &s,
            list,
            Act::Serve(b"payload".to_vec()),
        );
        assert!(r.is_ok(), "p{protocol}: {r:?}");
        through(&s);
        assert!(
            fs::symlink_metadata(s.dest.join("deep/a"))
                .unwrap()
                .is_symlink()
        );
        for gone in ["lnk", "esc", "d2", "dot"] {
            assert!(
                fs::symlink_metadata(s.dest.join(gone)).is_err(),
                "p{protocol}: {gone} was made"
            );
        }
        assert_eq!(fs::read(s.dest.join("plain")).unwrap(), b"payload");
        // Then a file "through" the climbing link: refused or written
        // inside, never outside (run_case compares the outside).
        let s = site();
        let list = vec![
            dir("."),
            dir("deep"),
            link("deep/a", ".."),
            link("esc", "deep/a/../outside"),
            file("esc/secret", 7),
        ];
        let _ = run_case(
            "cve-2024-12088-through[safe]",
            protocol,
            &s,
            list,
            Act::Serve(b"pwned!!".to_vec()),
        );
        through(&s);
        assert_eq!(
            fs::read(s.outside.join("secret")).unwrap(),
            b"outside secret"
        );
    }
}

/// A local user racing the transfer: a directory of the destination is
/// swapped back and forth for a symlink to the outside while files are
/// written into it. Every write lands inside or fails; nothing outside
/// changes, and the transfer ends.
#[test]
fn a_directory_swapped_for_a_symlink_mid_transfer_never_leads_outside() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = site();
    let mut list = vec![dir("."), dir("sub")];
    for i in 0..400 {
        list.push(file(&format!("sub/f{i:03}"), 7));
    }
    let outside_before = snapshot(&s.outside);
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = Arc::clone(&stop);
        let d = s.dest.join("sub");
        let held = s.dest.join("held");
        let outside = s.outside.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if fs::rename(&d, &held).is_ok() {
                    if std::os::unix::fs::symlink(&outside, &d).is_ok() {
                        swaps += 1;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                    let _ = fs::remove_file(&d);
                    let _ = fs::rename(&held, &d);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            swaps
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dest = s.dest.clone();
    let result = rt.block_on(async {
        let o = opts(31);
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (rd, wr) = tokio::io::split(ours);
        let role = ClientRole::Receiver { dest };
        let hooks = Hooks::default();
        let both = async {
            tokio::join!(
                run_client(rd, wr, &o, role, &hooks),
                hostile(theirs, 31, None, list, Act::Serve(b"payload".to_vec()))
            )
        };
        tokio::time::timeout(Duration::from_secs(30), both).await
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = flipper.join().unwrap();
    assert!(result.is_ok(), "the raced transfer hung");
    assert!(swaps > 0, "the race never ran");
    assert_eq!(
        snapshot(&s.outside),
        outside_before,
        "something outside changed ({swaps} swaps)"
    );
}

/// The confinement cases again with the `openat` walk instead of
/// `openat2` (the fallback for kernels without it), in a child process
/// with `FERRSYNC_BENEATH_WALK=1`.
#[test]
fn the_same_cases_through_the_openat_walk() {
    if std::env::var_os(ferrsync::fs::beneath::WALK_ENV).is_some() {
        return;
    }
    for name in [
        "keep_dirlinks_never_follows_a_symlink_out_of_the_destination",
        "a_directory_swapped_for_a_symlink_mid_transfer_never_leads_outside",
        "files_through_symlinks_never_leave_the_destination",
        "traversal_names_are_refused",
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(ferrsync::fs::beneath::WALK_ENV, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{name} with the walk: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// CVE-2022-29154: a server listing names the pull did not ask for (an
/// extra top-level file, a file outside the requested sub-path, with and
/// without `-r`, with `-R`, a wildcard the server expands) is refused
/// with rsync's error and exit code 4 before anything is written; the
/// names that were asked for (a trailing-slash directory, `-R` parents)
/// pass; `--trust-sender` turns the check off as in rsync. Over the
/// pipe and the daemon transport, protocols 29 to 32.
#[test]
fn unrequested_names_are_refused() {
    let ask = |word: &str, module_path: &str, recursive: bool, relative: bool| Ask {
        word: word.into(),
        module_path: module_path.into(),
        recursive,
        relative,
        trust: false,
        filters: Vec::new(),
    };
    // (case, what was asked, list, the unrequested name or None)
    let cases: Vec<(&str, Ask, Vec<FileEntry>, Option<&str>)> = vec![
        (
            "extra-top-file",
            ask("/srv/f", "f", false, false),
            vec![file("f", 7), file("evil", 7)],
            Some("evil"),
        ),
        (
            "extra-top-file-r",
            ask("/srv/f", "f", true, false),
            vec![file("f", 7), file("evil", 7)],
            Some("evil"),
        ),
        (
            "outside-sub-path-r",
            ask("/srv/sub", "sub", true, false),
            vec![
                dir("sub"),
                file("sub/ok", 7),
                dir("other"),
                file("other/evil", 7),
            ],
            Some("other"),
        ),
        (
            "outside-sub-path",
            ask("/srv/sub", "sub", false, false),
            vec![dir("sub"), file("sub/evil", 7)],
            Some("sub/evil"),
        ),
        (
            "relative-sibling",
            ask("/srv/./a/b", "./a/b", true, true),
            vec![dir("a"), dir("a/b"), file("a/b/ok", 7), file("a/evil", 7)],
            Some("a/evil"),
        ),
        (
            "relative-parent-as-file",
            ask("/srv/./a/b", "./a/b", true, true),
            vec![file("a", 7)],
            Some("a"),
        ),
        (
            "wildcard-other-name",
            ask("/srv/*.txt", "*.txt", false, false),
            vec![file("a.txt", 7), file("b.sh", 7)],
            Some("b.sh"),
        ),
        (
            "requested-trailing-slash",
            ask("/srv/sub/", "sub/", true, false),
            vec![dir("."), file("x", 7), dir("d"), file("d/y", 7)],
            None,
        ),
        (
            "requested-relative",
            ask("/srv/./a/b", "./a/b", true, true),
            vec![
                dir("a"),
                dir("a/b"),
                file("a/b/ok", 7),
                dir("a/b/c"),
                file("a/b/c/d", 7),
            ],
            None,
        ),
        (
            "requested-wildcard",
            ask("/srv/*.txt", "*.txt", false, false),
            vec![file("a.txt", 7), file("b.txt", 7)],
            None,
        ),
    ];
    for protocol in PROTOCOLS {
        for (name, a, list, bad) in &cases {
            let s = site();
            for trust in [false, true] {
                if trust && bad.is_none() {
                    continue;
                }
                let mut a = a.clone();
                a.trust = trust;
                let what = format!("{name} trust={trust} p{protocol}");
                ASK.with(|c| *c.borrow_mut() = Some(a));
                let r = run_case(
                    name,
                    protocol,
                    &s,
                    list.clone(),
                    Act::Serve(b"payload".to_vec()),
                );
                ASK.with(|c| *c.borrow_mut() = None);
                match (bad, trust) {
                    (Some(bad), false) => {
                        let e = r.expect_err(&what);
                        assert_eq!(e.exit_code().code(), 4, "{what}: {e}");
                        assert!(
                            e.to_string()
                                .contains(&format!("rejecting unrequested file-list name: {bad}")),
                            "{what}: {e}"
                        );
                        // Nothing of the list was written.
                        let top = bad.split('/').next().unwrap();
                        assert!(!s.dest.join(top).exists(), "{what}");
                    }
                    _ => {
                        let rep = r.unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(rep.exit_code().code(), 0, "{what}: {:?}", rep.errors);
                        if let Some(bad) = bad {
                            // --trust-sender: rsync takes the list as it is.
                            assert!(s.dest.join(bad).exists(), "{what}");
                        }
                    }
                }
            }
        }
    }
}

/// [`run_case`] of a pull that asked for `a`, serving `list`.
fn run_asked(
    name: &str,
    protocol: u8,
    s: &Site,
    a: &Ask,
    list: &[FileEntry],
) -> Result<ferrsync::Report, ferrsync::Error> {
    ASK.with(|c| *c.borrow_mut() = Some(a.clone()));
    let r = run_case(
        name,
        protocol,
        s,
        list.to_vec(),
        Act::Serve(b"payload".to_vec()),
    );
    ASK.with(|c| *c.borrow_mut() = None);
    r
}

fn dir_flagged(name: &str, xflags: u32) -> FileEntry {
    let mut e = dir(name);
    e.xflags = xflags;
    e
}

/// rsync 3.5.0's receiver checks (flist.c `recv_file_entry`): a sender
/// that flags a parent the pull asked for only as a `-R` parent (or the
/// top) as a content directory does not widen `--delete` to its other
/// entries; below protocol 30 only a top directory and the directories
/// under it are content; a listed name the client's own rules exclude is
/// refused ("rejecting excluded file-list name", exit 4) unless rsync
/// would trust the sender's filtering; `.` as a non-directory is refused
/// (exit 2). Pipe and daemon transports, protocols 29-32.
#[test]
fn a_sender_cannot_widen_delete_or_list_excluded_names() {
    use ferrsync::flist::entry::{XMIT_NO_CONTENT_DIR as NC, XMIT_TOP_DIR as TOP};
    let ask = |word: &str, module_path: &str, relative: bool, filters: &[&str]| Ask {
        word: word.into(),
        module_path: module_path.into(),
        recursive: true,
        relative,
        trust: false,
        filters: filters.iter().map(|f| (*f).to_owned()).collect(),
    };
    let served = |f: &str| vec![dir_flagged(f, TOP), file(&format!("{f}/f"), 7)];
    let rel = ask("/srv/./a/b", "./a/b", true, &[]);
    // (case, asked, list): the honest one first.
    let delete_cases: Vec<(&str, Ask, Vec<FileEntry>)> = vec![
        ("delete-honest-relative", rel.clone(), {
            let mut l = vec![dir_flagged("a", TOP | NC)];
            l.extend(served("a/b"));
            l
        }),
        ("delete-parent-flagged-top-content", rel.clone(), {
            let mut l = vec![dir_flagged("a", TOP)];
            l.extend(served("a/b"));
            l
        }),
        ("delete-parent-flagged-content", rel.clone(), {
            let mut l = vec![dir_flagged("a", 0)];
            l.extend(served("a/b"));
            l
        }),
        ("delete-root-flagged-content", rel.clone(), {
            let mut l = vec![dir_flagged(".", TOP), dir_flagged("a", TOP | NC)];
            l.extend(served("a/b"));
            l
        }),
    ];
    PRE.with(|p| {
        *p.borrow_mut() = vec![
            ("a/sib".into(), b"sibling".to_vec()),
            ("a/b/stale".into(), b"stale".to_vec()),
        ];
    });
    for protocol in PROTOCOLS {
        for (name, a, list) in &delete_cases {
            let s = site();
            let what = format!("{name} p{protocol}");
            let r = run_asked(name, protocol, &s, a, list);
            let rep = r.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(rep.exit_code().code(), 0, "{what}: {:?}", rep.errors);
            assert_eq!(
                fs::read(s.dest.join("a/b/f")).unwrap(),
                b"payload",
                "{what}"
            );
            // --delete works in the requested directory...
            assert!(!s.dest.join("a/b/stale").exists(), "{what}: not deleted");
            // ...and nowhere the pull did not ask for.
            assert_eq!(
                fs::read(s.dest.join("a/sib")).unwrap(),
                b"sibling",
                "{what}"
            );
            assert_eq!(fs::read(s.dest.join("old")).unwrap(), b"old file", "{what}");
        }
    }
    PRE.with(|p| p.borrow_mut().clear());

    let top = |filters: &[&str]| ask("/srv/", "", false, filters);
    let list = vec![dir_flagged(".", TOP), file("f", 7), file("x.secret", 7)];
    // (case, asked, whether the list is refused)
    let filter_cases: Vec<(&str, Ask, bool)> = vec![
        ("excluded", top(&["- *.secret"]), true),
        ("hidden", top(&["H *.secret"]), true),
        ("excluded-dir-of-name", top(&["- x.secret"]), true),
        ("protected-only", top(&["P *.secret"]), false),
        ("not-matching", top(&["- *.other"]), false),
        (
            "per-dir-rules-trust-the-sender",
            top(&["- *.secret", ": .rules"]),
            false,
        ),
        (
            "trust-sender",
            Ask {
                trust: true,
                ..top(&["- *.secret"])
            },
            false,
        ),
    ];
    for protocol in PROTOCOLS {
        for (name, a, refused) in &filter_cases {
            let s = site();
            let what = format!("{name} p{protocol}");
            let r = run_asked(name, protocol, &s, a, &list);
            if *refused {
                let e = r.expect_err(&what);
                assert_eq!(e.exit_code().code(), 4, "{what}: {e}");
                assert!(
                    e.to_string()
                        .contains("ERROR: rejecting excluded file-list name: x.secret"),
                    "{what}: {e}"
                );
                assert!(
                    !s.dest.join("f").exists() && !s.dest.join("x.secret").exists(),
                    "{what}"
                );
            } else {
                let rep = r.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(rep.exit_code().code(), 0, "{what}: {:?}", rep.errors);
                assert_eq!(
                    fs::read(s.dest.join("x.secret")).unwrap(),
                    b"payload",
                    "{what}"
                );
            }
        }
    }

    for protocol in PROTOCOLS {
        let s = site();
        let what = format!("root-as-file p{protocol}");
        let r = run_case(
            "root-as-file",
            protocol,
            &s,
            vec![file(".", 7)],
            Act::Serve(b"payload".to_vec()),
        );
        let e = r.expect_err(&what);
        assert_eq!(e.exit_code().code(), 2, "{what}: {e}");
        assert!(
            e.to_string()
                .contains("ERROR: rejecting non-directory transfer-root entry: ."),
            "{what}: {e}"
        );
        assert!(s.dest.is_dir(), "{what}");
    }
}
