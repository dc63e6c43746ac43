//! A hostile sender, written with the crate's own codecs: it lists a
//! 10-byte file and then streams a zstd or zlib "bomb" (hundreds of MiB of
//! zeros that compress to almost nothing). The receiver must stop with a
//! clear error, keep memory bounded, and leave nothing behind: no temp
//! file, and an existing destination file untouched.

use std::path::Path;

use ferrsync::delta::{Compression, SumHead, TokenCompressor};
use ferrsync::engine::{
    ClientRole, Hooks, MuxReader, MuxWriter, Options, ServerArgs, run_client, setup,
};
use ferrsync::flist::{FileEntry, FileListEncoder, FlistOptions};
use ferrsync::wire::{self, CompatFlags, Limits, NdxDecoder, NdxEncoder};

fn client_options(kind: Compression) -> Options {
    let mut o = Options::default();
    o.protocol = Some(31);
    o.checksum_choice = Some("md5".into());
    o.compress = true;
    o.compress_choice = Some(kind.name().into());
    o
}

async fn hostile_sender(
    io: tokio::io::DuplexStream,
    kind: Compression,
) -> Result<(), ferrsync::Error> {
    let (rd, wr) = tokio::io::split(io);
    let mut r = MuxReader::new(rd, Limits::default());
    let mut w = MuxWriter::new(wr);
    let sa = ServerArgs {
        sender: true,
        capabilities: Options::capabilities().to_string(),
        options: client_options(kind),
        ..ServerArgs::default()
    };
    let s = setup::server_setup(&mut r, &mut w, &sa, None).await?;
    w.set_muxed(true);
    r.set_muxed(true);
    setup::recv_filter_list(&mut r, 8192).await?;
    let fo = FlistOptions {
        protocol: s.protocol,
        varint_flags: s.varint_flags(),
        safe_flist: s.safe_flist(),
        id0_names: s.compat.contains(CompatFlags::ID0_NAMES),
        ..FlistOptions::default()
    };
    let mut enc = FileListEncoder::new(fo);
    let entry = FileEntry {
        name: b"bomb.bin".to_vec(),
        mode: 0o100_644,
        size: 10,
        mtime: 1_700_000_000,
        ..FileEntry::default()
    };
    enc.encode_entry(w.buf(), &entry)?;
    enc.encode_end(w.buf(), 0);
    w.flush().await?;
    // The generator's request for the file.
    let mut ndx_in = NdxDecoder::new(s.protocol);
    let ndx = r.decode(|b| ndx_in.decode(b)).await?;
    let iflags = r.read_u16().await?;
    let head = r
        .decode(|b| SumHead::decode(b, s.protocol, 16, &Limits::default()))
        .await?;
    // (With an old destination file the generator sends its signature;
    // the bomb ignores it and sends literals only.)
    let count = usize::try_from(head.count).unwrap_or(0);
    let s2 = usize::try_from(head.s2length).unwrap_or(0);
    let mut sums = vec![0u8; count * (4 + s2)];
    r.read_exact(&mut sums).await?;
    let mut ndx_out = NdxEncoder::new(s.protocol);
    ndx_out.encode(w.buf(), ndx);
    wire::encode_u16(w.buf(), iflags);
    head.encode(w.buf(), s.protocol);
    let mut comp = TokenCompressor::new(kind, None, s.protocol);
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        comp.literal(w.buf(), &zeros);
        w.flush().await?;
    }
    comp.end_file(w.buf());
    w.flush().await
}

/// Runs the hostile sender against our client receiving into `dest` and
/// returns the client's result.
fn run_bomb(kind: Compression, dest: &Path) -> Result<ferrsync::engine::Report, ferrsync::Error> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (client, server) = rt.block_on(async {
        let (rd, wr) = tokio::io::split(ours);
        let opts = client_options(kind);
        let role = ClientRole::Receiver {
            dest: dest.to_path_buf(),
        };
        let hooks = Hooks::default();
        tokio::join!(
            run_client(rd, wr, &opts, role, &hooks),
            hostile_sender(theirs, kind)
        )
    });
    // (The hostile sender may well have finished writing: the whole bomb
    // compresses to a few hundred KiB at most.)
    drop(server);
    client
}

fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

/// Peak resident memory of this test process, KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn refused(kind: Compression, err: &ferrsync::Error) {
    assert!(
        err.to_string().contains("refusing more than"),
        "{kind:?}: {err}"
    );
    assert_eq!(err.exit_code().code(), 12, "{kind:?}");
}

#[test]
fn a_compression_bomb_is_refused_for_a_new_file() {
    for kind in [Compression::Zstd, Compression::Zlib] {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dst");
        std::fs::create_dir(&dest).unwrap();
        let err = run_bomb(kind, &dest).expect_err("the bomb must be refused");
        refused(kind, &err);
        let left = names(&dest);
        assert!(left.is_empty(), "{kind:?}: left behind: {left:?}");
        assert!(!dest.join("bomb.bin").exists());
    }
    // Memory stayed bounded: the 512 MiB never existed in memory.
    let hwm_kib = peak_kib();
    assert!(hwm_kib < 256 * 1024, "peak memory {hwm_kib} KiB");
}

#[test]
fn a_compression_bomb_leaves_an_existing_file_untouched() {
    for kind in [Compression::Zlib, Compression::Zstd] {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dst");
        std::fs::create_dir(&dest).unwrap();
        let old: Vec<u8> = (0..100_000u32).flat_map(u32::to_le_bytes).collect();
        let target = dest.join("bomb.bin");
        std::fs::write(&target, &old).unwrap();
        let err = run_bomb(kind, &dest).expect_err("the bomb must be refused");
        refused(kind, &err);
        assert_eq!(names(&dest), ["bomb.bin"], "{kind:?}");
        assert!(
            std::fs::read(&target).unwrap() == old,
            "{kind:?}: old file changed"
        );
    }
    let hwm_kib = peak_kib();
    assert!(hwm_kib < 256 * 1024, "peak memory {hwm_kib} KiB");
}

/// Issue 10: our client's own option values (`--backup-dir`, `--suffix`,
/// `--partial-dir`, `--chown`'s `*:USER` maps) go through a remote shell
/// escaped as rsync's `safe_arg` escapes them: blanks, quotes, `;`,
/// `$()`, backticks, a newline and `*` reach real `rsync --server`
/// unchanged and nothing runs. The remote shell is `sh -c "$*"`, as ssh
/// does on the far side; the backup lands under the exact directory
/// name and suffix given, and no marker file is made.
#[test]
fn option_values_through_a_remote_shell_are_data() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let fake = base.join("fake-ssh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nshift\ncd '{}' && exec sh -c \"$*\"\n",
            base.join("calls").display(),
            base.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = base.join("marker");
    let nasty = [
        "bk dir; touch marker",
        "subst $(touch marker)",
        "tick `touch marker`",
        "quotes ' \" & | > marker2 *",
        "new\nline; touch marker",
    ];
    for (k, value) in nasty.iter().enumerate() {
        let src = base.join(format!("src{k}"));
        let dst = base.join(format!("dst{k}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(src.join("f"), b"new content").unwrap();
        std::fs::write(dst.join("f"), b"old").unwrap();
        // The old file is older, so it is replaced (and backed up).
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(dst.join("f"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let suffix = format!(".{k}{value}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrsync"))
            .current_dir(&base)
            .args(["-a", "-b", "-e"])
            .arg(&fake)
            .arg("--rsync-path=rsync")
            .arg(format!("--backup-dir={value}"))
            .arg(format!("--suffix={suffix}"))
            .arg(format!("--partial-dir=pd {value}"))
            .arg("--chown=root:root")
            .arg(format!("{}/", src.display()))
            .arg(format!("h:dst{k}/"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!marker.exists(), "{value:?}: the marker was made\n{err}");
        assert!(!base.join("marker2").exists(), "{value:?}: a redirect ran");
        assert_eq!(out.status.code(), Some(0), "{value:?}: {err}");
        assert_eq!(std::fs::read(dst.join("f")).unwrap(), b"new content");
        let backup = dst.join(value).join(format!("f{suffix}"));
        assert_eq!(
            std::fs::read(&backup).unwrap_or_default(),
            b"old",
            "{value:?}: no backup at {}",
            backup.display()
        );
        // The words the remote shell got carry the escaped values.
        let calls = std::fs::read_to_string(base.join("calls")).unwrap();
        assert!(calls.contains("--usermap=\\*:root"), "{calls}");
        let _ = std::fs::remove_file(base.join("calls"));
    }
}
