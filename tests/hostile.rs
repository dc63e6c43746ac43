//! A hostile sender, written with the crate's own codecs: it lists a
//! 10-byte file and then streams a zstd "bomb" (hundreds of MiB of zeros
//! that compress to almost nothing). The receiver must stop with a clear
//! error, keep memory bounded, and leave nothing behind.

use std::path::Path;

use ferrsync::delta::{Compression, SumHead, TokenCompressor};
use ferrsync::engine::{
    ClientRole, Hooks, MuxReader, MuxWriter, Options, ServerArgs, run_client, setup,
};
use ferrsync::flist::{FileEntry, FileListEncoder, FlistOptions};
use ferrsync::wire::{self, CompatFlags, Limits, NdxDecoder, NdxEncoder};

fn client_options() -> Options {
    let mut o = Options::default();
    o.protocol = Some(31);
    o.checksum_choice = Some("md5".into());
    o.compress = true;
    o.compress_choice = Some("zstd".into());
    o
}

async fn hostile_sender(io: tokio::io::DuplexStream) -> Result<(), ferrsync::Error> {
    let (rd, wr) = tokio::io::split(io);
    let mut r = MuxReader::new(rd, Limits::default());
    let mut w = MuxWriter::new(wr);
    let sa = ServerArgs {
        sender: true,
        capabilities: Options::capabilities().to_string(),
        options: client_options(),
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
    assert_eq!(head, SumHead::empty());
    let mut ndx_out = NdxEncoder::new(s.protocol);
    ndx_out.encode(w.buf(), ndx);
    wire::encode_u16(w.buf(), iflags);
    head.encode(w.buf(), s.protocol);
    let mut comp = TokenCompressor::new(Compression::Zstd, None, s.protocol);
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        comp.literal(w.buf(), &zeros);
        w.flush().await?;
    }
    comp.end_file(w.buf());
    w.flush().await
}

#[test]
fn a_compression_bomb_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dst");
    std::fs::create_dir(&dest).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (client, server) = rt.block_on(async {
        let (rd, wr) = tokio::io::split(ours);
        let opts = client_options();
        let role = ClientRole::Receiver { dest: dest.clone() };
        let hooks = Hooks::default();
        tokio::join!(
            run_client(rd, wr, &opts, role, &hooks),
            hostile_sender(theirs)
        )
    });
    let err = client.expect_err("the bomb must be refused");
    assert!(err.to_string().contains("refusing more than"), "{err}");
    assert_eq!(err.exit_code().code(), 12);
    // (The hostile sender may well have finished writing: the whole bomb
    // compresses to a few KiB.)
    drop(server);
    let left: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!Path::new(&dest.join("bomb.bin")).exists());
    // Memory stayed bounded: the 512 MiB never existed in memory.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(hwm_kib < 256 * 1024, "peak memory {hwm_kib} KiB");
}
