#!/usr/bin/env python3
"""compare.py - time ferrsync against rsync on the shared benchmark scenarios.

Usage:
  scripts/compare.py [--scale S] [-n RUNS] [-s "S1 S3 S6"] [options]
  scripts/compare.py --peak-rss OUT CMD [ARGS...]   (internal: the RSS tracer)

What it does (issue 11, ../shared/bench/README.md):
  1. builds `ferrsync` in release mode (`cargo build --release --bin ferrsync`;
     skipped with --no-build or --ferrsync BIN);
  2. makes the corpus with ../shared/bench/mkcorpus under --base (default
     /dev/shm/ferrsync-bench, a tmpfs: this machine's ext4 makes mass file
     creation quadratic) at --scale (1 = 1 GiB big, 256 MiB text, 100,000
     small files; S8's tree has 1,000,000 x scale files); kept between calls;
  3. runs each scenario as pairs: one untimed warm-up of each side, which is
     also the run whose peak RSS is taken (see below), then RUNS timed pairs
     rsync, ferrsync, rsync, ferrsync, ... (A B A B), the destination rebuilt
     (untimed, then `sync`) before every run;
  4. checks the destination against the source after the last timed run of
     each side (types, modes, mtimes in ns, sizes, symlink targets, uid/gid,
     then file contents); a side that fails the check, or any run that exits
     non-zero, is marked FAILED and its figures do not count;
  5. prints per scenario the median wall time and [min-max] of each side, the
     ratio of the medians, the median [min-max] of the per-pair ratios
     (ferrsync run i / rsync run i) and the peak RSS of each side, and writes
     the same as a Markdown table (with the machine, date, versions, scale and
     repetitions) to --out (default benches/RESULTS.md).

Scenarios (rsync: `rsync`, ferrsync: the built binary, same arguments):
  S1          -a big -> empty dir                                  (local)
  S2          -a --no-whole-file big -> dir holding big-mod as big (local)
  S3          -a small/ -> empty dir                               (local)
  S4          -a small/ -> identical copy                          (local)
  S5          -a --delete small-mod/ -> copy of small              (local)
  S6-<z>      -a [-z --compress-choice=<z>] rsync://127.0.0.1:P/corpus/text
              pulled from a fresh `rsync --daemon` (rsync side) or
              `ferrsync --daemon` (ferrsync side), z in --s6 (none zstd lz4 zlib)
  S7-big, S7-small
              S1 and S3 pushed with `-e ssh ...` to root@127.0.0.1 through a
              test sshd started here (generated keys, cipher --ssh-cipher);
              the far side is `--rsync-path` = the same program (rsync
              --server / ferrsync --server). With --ssh-client russh the
              ferrsync side uses its built-in SSH client (ssh:// URL) instead.
  S8-init, S8-nochange
              -a of a tree of 1,000,000 x scale files (mkcorpus --files) into
              an empty dir, then again with nothing to do (memory)

Wall time: from fork of the client to its exit (the client waits for its
local children: for a local copy that is both roles). CPU: user+sys of the
client and every process it waited for (wait4). Peak RSS: the warm-up run of
each side is run under a ptrace tracer (this script, --peak-rss) that stops
every process and thread of the client tree - and of the daemon or the
--rsync-path server - at exit and reads its VmHWM; the table shows the sum of
the per-process peaks (an upper bound of the side's simultaneous use) and the
list per process, client processes | server processes.

Options:
  --scale S          corpus scale (default 1; e.g. 0.02 for a quick check)
  -n, --runs N       timed pairs per scenario (default 5)
  -s, --scenarios L  subset, e.g. "S1 S3 S6 S8" (S6 = all S6-<z>, S7 = both,
                     S8 = both); default all
  --s6 LIST          S6 compress choices (default "none zstd lz4 zlib")
  --ssh-cipher C     sshd/ssh cipher for S7 (default aes128-gcm@openssh.com)
  --ssh-client K     ferrsync's S7 client: openssh (-e ssh, default) or russh
  --base DIR         scratch + corpus dir (default /dev/shm/ferrsync-bench)
  --ferrsync BIN     time this binary (no build)
  --rsync BIN        rsync binary (default: rsync from PATH)
  --no-build         use target/release/ferrsync as it is
  --out FILE         Markdown result (default benches/RESULTS.md; '-' = none)
"""
import argparse
import ctypes
import datetime
import filecmp
import os
import shlex
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SELF = os.path.abspath(__file__)

# Goals of issue 11 (ferrsync time / rsync time).
GOALS = {
    "S1": 0.5, "S2": 0.6, "S3": 0.5, "S4": 0.7, "S5": 0.6, "S6-none": 0.6,
    "S6-zstd": 0.8, "S6-lz4": 0.8, "S6-zlib": 0.8, "S7-big": 1.0, "S7-small": 0.6,
}

# Scenarios whose peak memory must not exceed rsync's.
MEM_GOALS = {"S3", "S4", "S8-init", "S8-nochange"}


# --------------------------------------------------------------------------
# peak RSS tracer: `compare.py --peak-rss OUT CMD ARGS...`
# --------------------------------------------------------------------------
PTRACE_TRACEME, PTRACE_CONT, PTRACE_SETOPTIONS = 0, 7, 0x4200
OPT_FORK, OPT_VFORK, OPT_CLONE, OPT_EXEC, OPT_EXIT, OPT_EXITKILL = 2, 4, 8, 0x10, 0x40, 0x100000
EV_EXIT = 6
WALL = 0x40000000


def _status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def peak_rss_main(out, argv):
    """Runs argv traced; at each task's exit records VmHWM per process."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    child = os.fork()
    if child == 0:
        try:
            libc.ptrace(PTRACE_TRACEME, 0, None, None)
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    # forward termination requests to the traced command
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda sig, _f: os.kill(child, sig))
    os.waitpid(child, WALL)
    opts = OPT_FORK | OPT_VFORK | OPT_CLONE | OPT_EXEC | OPT_EXIT | OPT_EXITKILL
    libc.ptrace(PTRACE_SETOPTIONS, child, None, ctypes.c_void_p(opts))
    libc.ptrace(PTRACE_CONT, child, None, None)
    seen = {child}
    peaks = {}  # tgid -> [name, kib]
    rc = 0
    while True:
        try:
            pid, st = os.waitpid(-1, WALL)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if os.WIFEXITED(st) or os.WIFSIGNALED(st):
            if pid == child:
                rc = os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
            continue
        if not os.WIFSTOPPED(st):
            continue
        sig, event = os.WSTOPSIG(st), st >> 16
        deliver = 0
        if event == EV_EXIT:
            s = _status(pid)
            tgid = s.get("Tgid", str(pid))
            kib = int(s.get("VmHWM", "0 kB").split()[0] or 0)
            name = s.get("Name", "?")
            cur = peaks.setdefault(tgid, [name, 0])
            cur[1] = max(cur[1], kib)
            if str(pid) == tgid:
                cur[0] = name  # the process's own name, not a worker thread's
        elif event:
            pass  # fork/clone/exec event stop
        elif pid not in seen:
            seen.add(pid)  # the initial SIGSTOP of a new task
            if sig != signal.SIGSTOP:
                deliver = sig
        else:
            deliver = sig
        seen.add(pid)
        libc.ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(deliver))
    with open(out, "a") as f:
        for tgid, (name, kib) in sorted(peaks.items(), key=lambda kv: int(kv[0])):
            f.write(f"{tgid}\t{name}\t{kib}\n")
    return rc


def read_peaks(path):
    """[(name, kib)] recorded by a --peak-rss run, in pid order."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3:
                    out.append((parts[1], int(parts[2])))
    except OSError:
        pass
    return out


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def rmtree(path):
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, secs=10.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def tree_sig(root):
    """Sorted metadata listing of a tree (or one file)."""
    rows = []
    if not os.path.isdir(root):
        st = os.lstat(root)
        return [("", stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                 st.st_size, st.st_uid, st.st_gid, "")]
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            size = st.st_size if stat.S_ISREG(st.st_mode) or link else 0
            # directory mtimes: checked too (rsync -a sets them)
            rows.append((rel, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                         st.st_mtime_ns if not stat.S_ISLNK(st.st_mode) else 0,
                         size, st.st_uid, st.st_gid, link))
    rows.sort()
    return rows


def verify(src, dst):
    """'' when dst equals src (metadata and contents), else what differs."""
    if not os.path.lexists(dst):
        return f"{dst} missing"
    a, b = tree_sig(src), tree_sig(dst)
    if a != b:
        sa, sb = set(a), set(b)
        diff = sorted(sa ^ sb)[:3]
        return f"metadata differs ({len(sa - sb)} vs {len(sb - sa)} rows), e.g. {diff}"
    if not os.path.isdir(src):
        return "" if filecmp.cmp(src, dst, shallow=False) else "contents differ"
    for row in a:
        if row[1] == stat.S_IFREG:
            if not filecmp.cmp(os.path.join(src, row[0]), os.path.join(dst, row[0]), shallow=False):
                return f"contents of {row[0]} differ"
    return ""


def med_mm(xs):
    return statistics.median(xs), min(xs), max(xs)


# --------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------
class Side:
    def __init__(self, name, binary):
        self.name = name
        self.bin = binary


class Runner:
    def __init__(self, a):
        self.a = a
        self.base = os.path.abspath(a.base)
        self.corpus = os.path.join(self.base, f"corpus-{a.scale:g}")
        self.corpus8 = os.path.join(self.base, f"corpus8-{a.scale:g}")
        self.work = os.path.join(self.base, "work")
        self.dst = os.path.join(self.work, "dst")
        self.logs = os.path.join(self.work, "logs")
        self.results = []  # dicts per scenario
        self.sshd = None
        self.daemon = None
        rsync = shutil.which(a.rsync) or a.rsync
        self.sides = [Side("rsync", rsync), Side("ferrsync", a.ferrsync)]

    # ---- setup
    def make_corpus(self, want):
        os.makedirs(self.work, exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        mk = os.path.join(self.a.bench_dir, "mkcorpus")
        need = [s for s in ("S1", "S2", "S3", "S4", "S5", "S6", "S7") if want(s)]
        if need and not os.path.exists(os.path.join(self.corpus, "MANIFEST.json")):
            log(f"mkcorpus --scale {self.a.scale:g} {self.corpus}")
            rmtree(self.corpus)
            sh([sys.executable, mk, "--scale", f"{self.a.scale:g}", self.corpus])
        if want("S8") and not os.path.exists(os.path.join(self.corpus8, "MANIFEST.json")):
            n = max(10, int(1_000_000 * self.a.scale))
            log(f"mkcorpus --files {n} --sets small {self.corpus8}")
            rmtree(self.corpus8)
            sh([sys.executable, mk, "--files", str(n), "--sets", "small", self.corpus8])
            rmtree(os.path.join(self.corpus8, "small-mod"))  # not used; saves tmpfs

    def start_sshd(self):
        d = os.path.join(self.work, "sshd")
        rmtree(d)
        os.makedirs(d, mode=0o700)
        for k in ("host", "id"):
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, k)])
        shutil.copy(os.path.join(d, "id.pub"), os.path.join(d, "authorized_keys"))
        port = free_port()
        with open(os.path.join(d, "sshd_config"), "w") as f:
            f.write(f"ListenAddress 127.0.0.1:{port}\nHostKey {d}/host\nPidFile none\n"
                    f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\nPrintMotd no\n"
                    f"Ciphers {self.a.ssh_cipher}\nLogLevel ERROR\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", f"{d}/sshd_config",
                                      "-E", f"{d}/sshd.log"])
        if not wait_port(port, self.sshd):
            raise RuntimeError(f"sshd did not come up (see {d}/sshd.log)")
        with open(os.path.join(d, "host.pub")) as f:
            hk = " ".join(f.read().split()[:2])
        with open(os.path.join(d, "known_hosts"), "w") as f:
            f.write(f"[127.0.0.1]:{port} {hk}\n")
        self.ssh_dir, self.ssh_port = d, port
        self.ssh_cmd = (f"ssh -F /dev/null -p {port} -i {d}/id -c {self.a.ssh_cipher} "
                        f"-o IdentitiesOnly=yes -o UserKnownHostsFile={d}/known_hosts "
                        "-o StrictHostKeyChecking=yes -o BatchMode=yes -o Compression=no")

    def stop_sshd(self):
        if self.sshd:
            self.sshd.terminate()
            self.sshd.wait()
            self.sshd = None

    def start_daemon(self, side, traced_out):
        port = free_port()
        conf = os.path.join(self.work, f"rsyncd-{side.name}.conf")
        with open(conf, "w") as f:
            f.write(f"use chroot = no\nuid = {os.getuid()}\ngid = {os.getgid()}\n"
                    f"log file = {self.work}/rsyncd-{side.name}.log\n"
                    f"[corpus]\n  path = {self.corpus}\n  read only = yes\n")
        cmd = [side.bin, "--daemon", "--no-detach", "--address=127.0.0.1",
               f"--port={port}", f"--config={conf}"]
        if traced_out:
            cmd = [sys.executable, SELF, "--peak-rss", traced_out] + cmd
        self.daemon = subprocess.Popen(cmd, start_new_session=True)
        if not wait_port(port, self.daemon):
            self.stop_daemon()
            raise RuntimeError(f"{side.name} daemon did not come up")
        return port

    def stop_daemon(self):
        if self.daemon:
            time.sleep(0.05)  # let a per-connection child finish its exit
            try:
                os.killpg(self.daemon.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.daemon.pid, signal.SIGKILL)
                self.daemon.wait()
            self.daemon = None

    # ---- one run
    def run(self, sid, side, argv, traced):
        """(rc, wall, cpu, peak file or None). No ru_maxrss: after fork it
        starts at this script's own RSS (the tracer is exact)."""
        logf = os.path.join(self.logs, f"{sid}-{side.name}.log")
        peaks = None
        if traced:
            peaks = os.path.join(self.logs, f"{sid}-{side.name}.peaks")
            rmtree(peaks)
            argv = [sys.executable, SELF, "--peak-rss", peaks] + argv
        with open(logf, "w") as out:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            _, st, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(st)
        return p.returncode, wall, ru.ru_utime + ru.ru_stime, peaks

    # ---- one scenario
    def scenario(self, sid, src, dst_check, prep, make_argv, server=None):
        """Warm-up (traced) + RUNS timed pairs; verifies each side's last run.

        make_argv(side, traced) -> (argv, server_peaks_file or None);
        server: None, 'daemon' (make_argv gets the port via self.port)."""
        log(f"== {sid}")
        res = {"id": sid, "wall": {}, "cpu": {}, "rss": {}, "srv_rss": {}, "fail": {}, "verify": {}}
        for s in self.sides:
            for k in ("wall", "cpu"):
                res[k][s.name] = []
            res["fail"][s.name] = []
        order = [(0, s) for s in self.sides]
        for r in range(1, self.a.runs + 1):
            order += [(r, s) for s in self.sides]
        for r, side in order:
            traced = r == 0
            prep()
            os.sync()
            srv_peaks = None
            if server == "daemon":
                srv_peaks = os.path.join(self.logs, f"{sid}-{side.name}.srv.peaks") if traced else None
                if srv_peaks:
                    rmtree(srv_peaks)
                try:
                    self.port = self.start_daemon(side, srv_peaks)
                except RuntimeError as err:
                    res["fail"][side.name].append(f"run {r}: {err}")
                    log(f"  {side.name} run {r}: {err}")
                    continue
            argv, srv_file = make_argv(side, traced)
            if srv_file:
                srv_peaks = srv_file
                rmtree(srv_peaks)
            try:
                rc, wall, cpu, peaks = self.run(sid, side, argv, traced)
            finally:
                if server == "daemon":
                    self.stop_daemon()
            if rc != 0:
                res["fail"][side.name].append(f"run {r} exit {rc}")
                log(f"  {side.name} run {r}: exit {rc} (see {self.logs}/{sid}-{side.name}.log)")
            if traced:
                res["rss"][side.name] = read_peaks(peaks) if peaks else []
                res["srv_rss"][side.name] = read_peaks(srv_peaks) if srv_peaks else []
                continue
            res["wall"][side.name].append(wall)
            res["cpu"][side.name].append(cpu)
            log(f"  {side.name:<8} run {r}: {wall:7.3f} s  cpu {cpu:6.2f} s  exit {rc}")
            if r == self.a.runs:
                bad = verify(src, dst_check)
                res["verify"][side.name] = bad or "ok"
                if bad:
                    res["fail"][side.name].append(f"verify: {bad}")
                    log(f"  {side.name}: VERIFY FAILED: {bad}")
                else:
                    log(f"  {side.name}: destination verified equal to the source")
        self.results.append(res)
        self.print_row(res)

    # ---- the scenarios
    def all(self):
        a = self.a
        want = a.want
        c, d = self.corpus, self.dst
        os.makedirs(self.work, exist_ok=True)

        def empty():
            rmtree(d)
            os.makedirs(d)

        def bigmod():
            empty()
            sh(["cp", "-p", f"{c}/big-mod", f"{d}/big"])

        def copy_of(tree):
            def f():
                rmtree(d)
                sh(["cp", "-a", tree, d])
            return f

        def keep():
            pass

        def local(*args):
            return lambda side, traced: ([side.bin, "-a", *args], None)

        if want("S1"):
            self.scenario("S1", f"{c}/big", f"{d}/big", empty, local(f"{c}/big", f"{d}/"))
        if want("S2"):
            self.scenario("S2", f"{c}/big", f"{d}/big", bigmod,
                          local("--no-whole-file", f"{c}/big", f"{d}/"))
        if want("S3"):
            self.scenario("S3", f"{c}/small", d, empty, local(f"{c}/small/", f"{d}/"))
        if want("S4"):
            copy_of(f"{c}/small")()
            self.scenario("S4", f"{c}/small", d, keep, local(f"{c}/small/", f"{d}/"))
        if want("S5"):
            self.scenario("S5", f"{c}/small-mod", d, copy_of(f"{c}/small"),
                          local("--delete", f"{c}/small-mod/", f"{d}/"))
        if want("S6"):
            for z in a.s6.split():
                zo = [] if z == "none" else ["-z", f"--compress-choice={z}"]
                self.scenario(
                    f"S6-{z}", f"{c}/text", f"{d}/text", empty,
                    lambda side, traced, zo=zo: (
                        [side.bin, "-a", *zo, f"rsync://127.0.0.1:{self.port}/corpus/text", f"{d}/"], None),
                    server="daemon")
        if want("S7"):
            self.start_sshd()
            try:
                for name, src, arg in (("big", f"{c}/big", f"{c}/big"), ("small", f"{c}/small", f"{c}/small/")):
                    check = f"{d}/big" if name == "big" else d
                    self.scenario(f"S7-{name}", src, check, empty,
                                  lambda side, traced, arg=arg, name=name: self.ssh_argv(side, traced, arg, name))
            finally:
                self.stop_sshd()
        if want("S8"):
            t = f"{self.corpus8}/small"
            self.scenario("S8-init", t, d, empty, local(f"{t}/", f"{d}/"))
            self.scenario("S8-nochange", t, d, keep, local(f"{t}/", f"{d}/"))
        rmtree(d)

    def ssh_argv(self, side, traced, src, name):
        srv_peaks = os.path.join(self.logs, f"S7-{name}-{side.name}.srv.peaks") if traced else None
        path = side.bin if not traced else f"{sys.executable} {SELF} --peak-rss {srv_peaks} {side.bin}"
        if side.name == "ferrsync" and self.a.ssh_client == "russh":
            return ([side.bin, "-a", "--ssh-key", f"{self.ssh_dir}/id",
                     "--known-hosts", f"{self.ssh_dir}/known_hosts", f"--rsync-path={path}",
                     src, f"ssh://root@127.0.0.1:{self.ssh_port}{self.dst}/"], srv_peaks)
        return ([side.bin, "-a", "-e", self.ssh_cmd, f"--rsync-path={path}", src,
                 f"root@127.0.0.1:{self.dst}/"], srv_peaks)

    # ---- output
    @staticmethod
    def fmt_rss(peaks, srv):
        def part(ps):
            return "+".join(f"{k / 1024:.1f}" for _, k in ps)
        total = sum(k for _, k in peaks) + sum(k for _, k in srv)
        if not peaks and not srv:
            return "-"
        if srv:
            return f"{total / 1024:.1f} (client {part(peaks)}; server {part(srv)})"
        return f"{total / 1024:.1f} ({part(peaks)})"

    def summary(self, res):
        r, f = self.sides[0].name, self.sides[1].name
        wr, wf = res["wall"][r], res["wall"][f]
        out = {"id": res["id"]}
        ok = {s: not res["fail"][s] for s in (r, f)}
        for s, w in ((r, wr), (f, wf)):
            out[s] = "%.3f [%.3f-%.3f]" % med_mm(w) if w else "-"
            if not ok[s]:
                out[s] += " FAILED"
        pairs = [b / a for a, b in zip(wr, wf) if a > 0]
        if wr and wf and ok[r] and ok[f]:
            out["ratio"] = "%.2f" % (statistics.median(wf) / statistics.median(wr))
            out["pairs"] = "%.2f [%.2f-%.2f]" % med_mm(pairs)
            goal = GOALS.get(res["id"])
            out["goal"] = "-" if goal is None else (f"<= {goal} " + ("met" if statistics.median(pairs) <= goal else "not met"))
        else:
            out["ratio"] = out["pairs"] = "-"
            out["goal"] = "-"
        out["rss_" + r] = self.fmt_rss(res["rss"].get(r, []), res["srv_rss"].get(r, []))
        out["rss_" + f] = self.fmt_rss(res["rss"].get(f, []), res["srv_rss"].get(f, []))
        if res["id"] in MEM_GOALS and res["rss"].get(r) and res["rss"].get(f):
            tot = {s: sum(k for _, k in res["rss"][s]) for s in (r, f)}
            met = "met" if tot[f] <= tot[r] else "not met"
            out["goal"] = ("" if out["goal"] == "-" else out["goal"] + "; ") + f"RSS <= rsync's {met}"
        out["fail"] = "; ".join(f"{s}: {', '.join(res['fail'][s])}" for s in (r, f) if res["fail"][s])
        return out

    COLS = [("id", "scenario"), ("rsync", "rsync s, median [min-max]"),
            ("ferrsync", "ferrsync s, median [min-max]"), ("ratio", "ratio of medians"),
            ("pairs", "pair ratios, median [min-max]"), ("goal", "goal"),
            ("rss_rsync", "rsync peak RSS MiB"), ("rss_ferrsync", "ferrsync peak RSS MiB")]

    def print_row(self, res):
        s = self.summary(res)
        print("  ".join(f"{h}: {s[k]}" for k, h in self.COLS), flush=True)
        if s["fail"]:
            print(f"  FAILED: {s['fail']}", flush=True)

    def header_facts(self):
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        mem = "?"
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break

        def ver(b):
            try:
                return subprocess.run([b, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
            except (OSError, IndexError):
                return "?"
        try:
            commit = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                    capture_output=True, text=True).stdout.strip()
        except OSError:
            commit = "?"
        load = open("/proc/loadavg").read().split()[:3]
        return {"machine": f"{model}, {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {mem} RAM",
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "rsync": ver(self.sides[0].bin),
                "ferrsync": f"{ver(self.sides[1].bin)} ("
                + (f"built from git {commit})" if self.a.built else f"binary {self.sides[1].bin})"),
                "load": " ".join(load)}

    def write_markdown(self, path, facts, cmdline):
        rows = [self.summary(r) for r in self.results]
        lines = [
            "# ferrsync vs rsync: benchmark results", "",
            f"Written by `{cmdline}` (see `scripts/compare.py` for what each figure is).", "",
            f"- machine: {facts['machine']}",
            f"- date: {facts['date']}; load average at the start: {facts['load']}",
            f"- rsync: {facts['rsync']}",
            f"- ferrsync: {facts['ferrsync']}",
            f"- corpus: `mkcorpus --scale {self.a.scale:g}` on a tmpfs ({self.base}); "
            f"S8 tree: {max(10, int(1_000_000 * self.a.scale)):,} files",
            f"- repetitions: {self.a.runs} timed pairs per scenario, alternating rsync, ferrsync "
            "(after one untimed warm-up of each); every result checked against the source once per side",
            "- wall time: client exec to exit (a local copy is both roles); ratio = ferrsync / rsync; "
            "pair ratios: ferrsync run i / rsync run i; goal (issue 11) judged on the median pair ratio",
            "- peak RSS: sum of the peak RSS (VmHWM at exit, ptrace) of every process of the side, "
            "per process in brackets (client processes; daemon or `--server` processes)",
        ]
        warn = []
        if self.a.scale != 1:
            warn.append(f"the corpus is at scale {self.a.scale:g}, not 1")
        if float(facts["load"].split()[0]) > (os.cpu_count() or 1) / 2:
            warn.append(f"the machine was busy (load average {facts['load'].split()[0]})")
        if warn:
            lines += ["", "**Not representative** (a check of the runner only): " + "; ".join(warn) + "."]
        lines += [
            "",
            "| " + " | ".join(h for _, h in self.COLS) + " |",
            "| " + " | ".join("---" if k in ("id", "goal") else "---:" for k, _ in self.COLS) + " |",
        ]
        for s in rows:
            lines.append("| " + " | ".join(s[k] for k, _ in self.COLS) + " |")
        fails = [f"- {s['id']}: {s['fail']}" for s in rows if s["fail"]]
        if fails:
            lines += ["", "Failures (not counted):", ""] + fails
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--peak-rss":
        sys.exit(peak_rss_main(sys.argv[2], sys.argv[3:]))
    ap = argparse.ArgumentParser(usage=__doc__.split("\n\n")[1], add_help=False)
    ap.add_argument("-h", "--help", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("-n", "--runs", type=int, default=5)
    ap.add_argument("-s", "--scenarios", default="S1 S2 S3 S4 S5 S6 S7 S8")
    ap.add_argument("--s6", default="none zstd lz4 zlib")
    ap.add_argument("--ssh-cipher", default="aes128-gcm@openssh.com")
    ap.add_argument("--ssh-client", choices=["openssh", "russh"], default="openssh")
    ap.add_argument("--base", default="/dev/shm/ferrsync-bench")
    ap.add_argument("--ferrsync")
    ap.add_argument("--rsync", default="rsync")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(REPO, "benches", "RESULTS.md"))
    ap.add_argument("--bench-dir", default=os.environ.get("BENCH_DIR", os.path.join(REPO, "..", "shared", "bench")))
    a = ap.parse_args()
    if a.help:
        print(__doc__)
        return 0
    wanted = a.scenarios.split()
    picked = [w[3:] for w in wanted if w.startswith("S6-")]
    if picked and "S6" not in wanted:
        a.s6 = " ".join(picked)
    a.want = lambda s: any(w == s or w.startswith(s + "-") or s.startswith(w + "-") for w in wanted) or s in wanted
    a.built = not a.ferrsync
    if not a.ferrsync:
        if not a.no_build:
            sh(["cargo", "build", "--release", "--bin", "ferrsync"], cwd=REPO, stdout=sys.stderr)
        a.ferrsync = os.path.join(REPO, "target", "release", "ferrsync")
    a.ferrsync = os.path.abspath(a.ferrsync)
    runner = Runner(a)
    facts = runner.header_facts()
    log(f"compare: scale {a.scale:g}, {a.runs} pairs, base {runner.base}; {facts['rsync']}; {facts['ferrsync']}")
    runner.make_corpus(a.want)
    try:
        runner.all()
    finally:
        runner.stop_daemon()
        runner.stop_sshd()
    if a.out != "-" and runner.results:
        cmdline = "scripts/compare.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        runner.write_markdown(a.out, facts, cmdline)
        log(f"table: {a.out}")
    return 1 if any(r["fail"][s] for r in runner.results for s in r["fail"]) else 0


if __name__ == "__main__":
    sys.exit(main())
