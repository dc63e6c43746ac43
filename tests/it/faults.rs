//! Fault injection: transfers whose connection is dropped at a random byte,
//! and destinations that run out of space.
//!
//! Kill points: a remote-shell shim puts `head -c N` on one side of the
//! connection (what the client sends, or what the server sends), so the
//! stream ends after N bytes and the peer on the other side is cut off
//! (its next write fails, its next read sees the end). N is random (fixed
//! seed) over the whole length of that side's stream, measured first. Two
//! directions, each at more than 200 points, with ferrsync receiving:
//! our client pulling from real `rsync --server --sender`, and real rsync
//! pushing to `ferrsync --server`. A third of the points run plain, a
//! third with `--delay-updates`, a third with `--partial-dir`. After each
//! cut: every destination file is the old one or the complete new one, no
//! temporary file is left (outside the partial dir, whose partial files
//! are its purpose), and a rerun reaches exactly what real rsync alone
//! makes of the same start, with no staging directory left.
//!
//! Disk full: a small tmpfs as the destination, filled to several levels:
//! the run fails with the exit code real rsync gives in the same place,
//! old files stay whole, nothing partial is left, and after space is freed
//! a rerun completes.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::tree::{Compare, compare_trees, prng_bytes};

const FERRSYNC: &str = env!("CARGO_BIN_EXE_ferrsync");

/// xorshift64*, fixed seed: the same kill points on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn set_mtime(p: &Path, sec: i64) {
    let t = filetime::FileTime::from_unix_time(sec, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

fn put(root: &Path, rel: &str, data: &[u8], sec: i64) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    set_mtime(&p, sec);
}

/// A small source tree and an older destination: new files, changed files
/// (whole and delta), unchanged files, and a file only in the destination.
fn build(root: &Path) -> (PathBuf, PathBuf) {
    let src = root.join("src");
    let old = root.join("old");
    let t_new = 1_700_000_000;
    let t_old = 1_600_000_000;
    for i in 0..8u64 {
        let n = format!("a/small{i}");
        put(
            &src,
            &n,
            &prng_bytes(i + 10, 1000 + 300 * i as usize),
            t_new,
        );
        if i < 5 {
            put(
                &old,
                &n,
                &prng_bytes(i + 100, 900 + 250 * i as usize),
                t_old,
            );
        }
    }
    let big = prng_bytes(7, 160_000);
    let mut big_old = big.clone();
    for k in [5_000usize, 60_000, 120_000] {
        big_old[k..k + 300].fill(0x55);
    }
    put(&src, "big1", &big, t_new);
    put(&old, "big1", &big_old, t_old);
    put(&src, "sub/deep/big2", &prng_bytes(8, 90_000), t_new);
    put(&src, "same", b"unchanged content", t_new);
    put(&old, "same", b"unchanged content", t_new);
    put(&old, "onlyold", b"stays", t_old);
    for d in [&src, &old] {
        for sub in ["a", "sub/deep", "sub", ""] {
            let p = if sub.is_empty() {
                d.to_path_buf()
            } else {
                d.join(sub)
            };
            if p.exists() {
                set_mtime(&p, t_new);
            }
        }
    }
    (src, old)
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The remote shell, a small proxy: drops the host name and runs the
/// command with its stdin and stdout passed through. With `CUT_DIR=in` the
/// command gets only the first `CUT_N` bytes the client sends (then its
/// stdin ends and the client's next write fails); with `CUT_DIR=out` the
/// client gets only the first `CUT_N` bytes the command sends (then its
/// stream ends and the command gets SIGTERM); with `CUT_DIR=count` the
/// lengths of both streams are written to `$COUNT.in` / `$COUNT.out`.
/// The proxy ends when the command's output does, not waiting for the
/// client to close its side (rsync waits for its remote shell first).
fn write_cut_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("cut.py");
    // The system interpreter starts faster than a version-manager shim.
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "/usr/bin/env python3"
    };
    fs::write(
        &shim,
        format!("#!{python}\n")
            + r#"import os, subprocess, sys, threading
args = sys.argv[2:]
mode = os.environ.get("CUT_DIR", "")
if mode not in ("in", "out", "count"):
    os.execvp(args[0], args)
n = int(os.environ.get("CUT_N", "0"))
p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
counts = {"in": 0, "out": 0}

def pump(src, dst, side):
    left = n if mode == side else None
    try:
        while left is None or left > 0:
            b = os.read(src, 65536 if left is None else min(65536, left))
            if not b:
                break
            os.write(dst, b)
            counts[side] += len(b)
            if left is not None:
                left -= len(b)
    except OSError:
        pass

def pump_in():
    pump(0, p.stdin.fileno(), "in")
    try:
        p.stdin.close()
    except OSError:
        pass
    if mode == "in":
        os.close(0)

t = threading.Thread(target=pump_in, daemon=True)
t.start()
pump(p.stdout.fileno(), 1, "out")
os.close(1)
if mode == "out":
    # SIGTERM, as a dying ssh session's peer would see a hangup: the
    # process gets to remove its temporary file (SIGKILL leaves it, for
    # rsync as for us).
    p.terminate()
try:
    code = p.wait(timeout=30)
except subprocess.TimeoutExpired:
    p.kill()
    code = p.wait()
if mode == "count":
    t.join(timeout=0.2)
    for side in ("in", "out"):
        with open(os.environ["COUNT"] + "." + side, "w") as f:
            f.write(str(counts[side]))
os._exit(code if code >= 0 else 255)
"#,
    )
    .unwrap();
    fs::set_permissions(&shim, fs::Permissions::from_mode(0o755)).unwrap();
    shim
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Our client pulls from real `rsync --server --sender`.
    OursPull,
    /// Real rsync pushes to `ferrsync --server`.
    RsyncPush,
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    Plain,
    DelayUpdates,
    PartialDir,
}

const PARTIAL: &str = ".rsync-partial";

fn variant_args(v: Variant) -> Vec<String> {
    match v {
        Variant::Plain => vec![],
        Variant::DelayUpdates => vec!["--delay-updates".into()],
        Variant::PartialDir => vec![format!("--partial-dir={PARTIAL}")],
    }
}

/// Runs one transfer of `src/` into `dst/`, with a cut when `cut` is
/// `Some((side, n))`.
fn transfer(
    d: Dir,
    v: Variant,
    shim: &Path,
    src: &Path,
    dst: &Path,
    cut: Option<(&str, u64)>,
    count: Option<&Path>,
) -> Output {
    let (prog, path, a, b) = match d {
        Dir::OursPull => (
            FERRSYNC,
            "rsync".to_string(),
            format!("localhost:{}/", src.display()),
            format!("{}/", dst.display()),
        ),
        Dir::RsyncPush => (
            "rsync",
            FERRSYNC.to_string(),
            format!("{}/", src.display()),
            format!("localhost:{}/", dst.display()),
        ),
    };
    let mut c = Command::new(prog);
    c.args(["-a", "--no-whole-file", "--timeout=20"])
        .args(variant_args(v))
        .arg("-e")
        .arg(shim)
        .arg(format!("--rsync-path={path}"))
        .arg(a)
        .arg(b)
        .env_remove("CUT_DIR");
    if let Some((side, n)) = cut {
        c.env("CUT_DIR", side).env("CUT_N", n.to_string());
    }
    if let Some(p) = count {
        c.env("CUT_DIR", "count").env("COUNT", p);
    }
    let out = c.output().unwrap();
    // The server side may outlive the client by a moment (rsync signals
    // its remote shell on error): wait until no process names `dst`.
    wait_gone(dst);
    out
}

/// Waits (up to 10 s) until no process has `marker` in its command line.
fn wait_gone(marker: &Path) {
    let m = marker.display().to_string();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let mut any = false;
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
                if String::from_utf8_lossy(&cmd).contains(&m) {
                    any = true;
                    break;
                }
            }
        }
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("processes on {m} did not end");
}

/// Every file under `dst` by relative path.
fn files(root: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap().flatten() {
            let r = rel.join(e.file_name());
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(r.clone());
                out.push((r, true));
            } else {
                out.push((r, false));
            }
        }
    }
    out
}

/// The invariants after an interrupted run: each file is the old or the
/// new one, whole; nothing else exists except inside the partial dir.
fn check_cut(name: &str, dst: &Path, src: &Path, old: &Path, v: Variant) {
    for (rel, is_dir) in files(dst) {
        let in_partial = rel
            .components()
            .any(|c| c.as_os_str() == PARTIAL || c.as_os_str() == ".~tmp~");
        if in_partial {
            // A staging dir is allowed after a failed run only for the
            // options that keep one on purpose.
            let keeps = matches!(v, Variant::PartialDir)
                || (matches!(v, Variant::DelayUpdates)
                    && rel.components().any(|c| c.as_os_str() == ".~tmp~"));
            assert!(keeps, "{name}: staging entry {rel:?} left");
            if !is_dir {
                // What is kept there is a prefix of the new file, or whole.
                let base = rel.file_name().unwrap();
                let parent = rel.parent().unwrap().parent().unwrap_or(Path::new(""));
                let want = fs::read(src.join(parent).join(base)).unwrap_or_default();
                let got = fs::read(dst.join(&rel)).unwrap();
                assert!(
                    got.len() <= want.len(),
                    "{name}: staged {rel:?} is longer than the new file"
                );
            }
            continue;
        }
        if is_dir {
            assert!(
                src.join(&rel).is_dir() || old.join(&rel).is_dir(),
                "{name}: stray dir {rel:?}"
            );
            continue;
        }
        let got = fs::read(dst.join(&rel)).unwrap();
        let new = fs::read(src.join(&rel)).ok();
        let was = fs::read(old.join(&rel)).ok();
        assert!(
            new.as_deref() == Some(&got[..]) || was.as_deref() == Some(&got[..]),
            "{name}: {rel:?} is neither the old nor the new file ({} bytes)",
            got.len()
        );
    }
}

fn check_clean(name: &str, dst: &Path) {
    for (rel, _) in files(dst) {
        let n = rel.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            n != PARTIAL && n != ".~tmp~",
            "{name}: staging dir {rel:?} left after a completed run"
        );
        assert!(
            !(n.starts_with('.') && n.len() > 8 && n.as_bytes()[n.len() - 7] == b'.'),
            "{name}: temp file {rel:?} left after a completed run"
        );
    }
}

fn kill_points(d: Dir, points: usize, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let (src, old) = build(tmp.path());
    let shim = write_cut_shim(tmp.path());
    let dst = tmp.path().join(format!("dst-{d:?}"));
    // What real rsync alone makes of the same start.
    let reference = tmp.path().join("reference");
    copy_tree(&old, &reference);
    let out = Command::new("rsync")
        .args(["-a", "--no-whole-file"])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", reference.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    // The length of each side's stream, per variant.
    let variants = [Variant::Plain, Variant::DelayUpdates, Variant::PartialDir];
    let mut totals = Vec::new();
    for v in variants {
        copy_tree(&old, &dst);
        let count = tmp.path().join("count");
        let out = transfer(d, v, &shim, &src, &dst, None, Some(&count));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let len = |ext: &str| -> u64 {
            fs::read_to_string(count.with_extension(ext))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        totals.push((len("in"), len("out")));
    }
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    let mut failed_runs = 0;
    for i in 0..points {
        let v = variants[i % 3];
        let (tin, tout) = totals[i % 3];
        let (side, n) = if rng.below(2) == 0 {
            ("in", rng.below(tin))
        } else {
            ("out", rng.below(tout))
        };
        let name = format!("{d:?} {v:?} point {i}: {side} cut at {n}");
        copy_tree(&old, &dst);
        let out = transfer(d, v, &shim, &src, &dst, Some((side, n)), None);
        if !out.status.success() {
            failed_runs += 1;
        }
        check_cut(&name, &dst, &src, &old, v);
        // The rerun reaches the exact tree and leaves nothing behind.
        let out = transfer(d, v, &shim, &src, &dst, None, None);
        assert!(
            out.status.success(),
            "{name}: rerun failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let diffs = compare_trees(&reference, &dst, Compare::all(true));
        assert!(diffs.is_empty(), "{name}: rerun differs: {diffs:?}");
        check_clean(&name, &dst);
    }
    eprintln!(
        "{d:?}: {points} kill points ({failed_runs} runs failed as they should; stream lengths {totals:?}) in {:?}",
        t0.elapsed()
    );
    // Most cuts land before the end of the stream and must fail.
    assert!(
        failed_runs * 3 > points,
        "only {failed_runs} of {points} cuts failed"
    );
}

/// Kill points per direction: 210, or `FERRSYNC_FAULT_POINTS`.
fn points() -> usize {
    std::env::var("FERRSYNC_FAULT_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(210)
}

#[test]
fn kill_points_ours_pulling() {
    kill_points(Dir::OursPull, points(), 0x5eed_0001);
}

#[test]
fn kill_points_rsync_pushing_to_ours() {
    kill_points(Dir::RsyncPush, points(), 0x5eed_0002);
}

/// Mounts a tmpfs of `size` bytes on `dir`; false when mounting is not
/// possible here (not root, no mount namespace rights).
fn mount_tmpfs(dir: &Path, size: u64) -> bool {
    fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={size}"))
        .arg("tmpfs")
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_fails_cleanly_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, old) = build(tmp.path());
    let shim = write_cut_shim(tmp.path());
    let reference = tmp.path().join("reference");
    copy_tree(&old, &reference);
    let out = Command::new("rsync")
        .args(["-a", "--no-whole-file"])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", reference.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let probe = tmp.path().join("probe");
    if !mount_tmpfs(&probe, 1 << 20) {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
        return;
    }
    drop(Mounted(probe));
    // Free space left on a 2 MiB tmpfs after the old tree and a filler.
    for free in [8 * 1024u64, 60 * 1024, 120 * 1024] {
        for d in [Dir::OursPull, Dir::RsyncPush] {
            let name = format!("{d:?} with {free} bytes free");
            let mnt = tmp.path().join(format!("mnt-{free}-{d:?}"));
            assert!(mount_tmpfs(&mnt, 2 << 20), "{name}: mount failed");
            let _m = Mounted(mnt.clone());
            // Real rsync in the same place: its exit code is the one to give.
            let want = {
                let dst = mnt.join("rsync");
                copy_tree(&old, &dst);
                let filler = mnt.join("filler");
                fill_to(&mnt, &filler, free);
                let out = Command::new("rsync")
                    .args(["-a", "--no-whole-file"])
                    .arg(format!("{}/", src.display()))
                    .arg(format!("{}/", dst.display()))
                    .output()
                    .unwrap();
                fs::remove_file(&filler).unwrap();
                fs::remove_dir_all(&dst).unwrap();
                out.status.code()
            };
            let dst = mnt.join("dst");
            copy_tree(&old, &dst);
            let filler = mnt.join("filler");
            fill_to(&mnt, &filler, free);
            let out = transfer(d, Variant::Plain, &shim, &src, &dst, None, None);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_ne!(
                want,
                Some(0),
                "{name}: real rsync found room; the level is wrong"
            );
            assert!(!out.status.success(), "{name}: succeeded on a full disk");
            assert_eq!(out.status.code(), want, "{name}: exit code; {stderr}");
            assert!(
                stderr.contains("No space left on device"),
                "{name}: no clear error: {stderr}"
            );
            check_cut(&name, &dst, &src, &old, Variant::Plain);
            check_clean(&name, &dst);
            fs::remove_file(&filler).unwrap();
            let out = transfer(d, Variant::Plain, &shim, &src, &dst, None, None);
            assert!(
                out.status.success(),
                "{name}: rerun failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let diffs = compare_trees(&reference, &dst, Compare::all(true));
            assert!(diffs.is_empty(), "{name}: rerun differs: {diffs:?}");
            check_clean(&name, &dst);
        }
    }
}

/// Writes `filler` so that about `free` bytes stay free on `mnt`.
fn fill_to(mnt: &Path, filler: &Path, free: u64) {
    let st = rustix::fs::statvfs(mnt).unwrap();
    let avail = st.f_bavail * st.f_frsize;
    let len = avail.saturating_sub(free);
    let f = fs::File::create(filler).unwrap();
    // Real blocks, not a hole.
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut w = std::io::BufWriter::new(f);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if std::io::Write::write_all(&mut w, &chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = std::io::Write::flush(&mut w);
}
