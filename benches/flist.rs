//! File-list hot paths for many small files: sorting 100,000 entries with
//! rsync's protocol 31 order (shuffled and already sorted input), and
//! scanning a generated tree of about 20,000 files; encoding and decoding
//! a 100,000-entry list on the wire (protocol 31, `-a` fields).

use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ferrsync::flist::{FileEntry, FileListDecoder, FileListEncoder, FlistOptions, sort_file_list};
use ferrsync::fs::{ScanOptions, scan_sources};
use ferrsync::wire::{Decoded, Limits};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};

const WORDS: &[&str] = &[
    "src", "lib", "include", "test", "tests", "doc", "docs", "build", "util", "utils", "core",
    "net", "io", "fs", "data", "assets", "img", "x86", "arm", "a.b", "a-b", "a_b", "v1.2",
    "module", "config", "po", "locale", "share", "bin", ".git", ".hidden", "README",
];
const EXTS: &[&str] = &[
    ".c", ".h", ".rs", ".txt", ".md", ".o", "", ".tar.gz", ".json", ".1",
];

/// About `n` entries: directories 3-5 levels deep with files in each, in
/// a shuffled (scan-like) order.
fn gen_entries(n: usize) -> Vec<FileEntry> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::with_capacity(n + 64);
    out.push(FileEntry {
        name: b".".to_vec(),
        mode: 0o040_755,
        ..FileEntry::default()
    });
    let mut dirs: Vec<Vec<u8>> = Vec::new();
    while out.len() < n {
        let depth = rng.gen_range(3..=5);
        let mut path = Vec::new();
        for level in 0..depth - 1 {
            if level > 0 {
                path.push(b'/');
            }
            let w = WORDS[rng.gen_range(0..WORDS.len())];
            path.extend_from_slice(w.as_bytes());
            if rng.gen_bool(0.3) {
                path.extend_from_slice(format!("{}", rng.gen_range(0..20)).as_bytes());
            }
            if !dirs.contains(&path) {
                dirs.push(path.clone());
                out.push(FileEntry {
                    name: path.clone(),
                    mode: 0o040_755,
                    ..FileEntry::default()
                });
            }
        }
        for _ in 0..rng.gen_range(5..40) {
            let mut f = path.clone();
            f.push(b'/');
            let w = WORDS[rng.gen_range(0..WORDS.len())];
            f.extend_from_slice(format!("{w}_{}", rng.gen_range(0..1000)).as_bytes());
            f.extend_from_slice(EXTS[rng.gen_range(0..EXTS.len())].as_bytes());
            out.push(FileEntry {
                name: f,
                mode: 0o100_644,
                size: 100,
                ..FileEntry::default()
            });
        }
    }
    out.shuffle(&mut rng);
    out
}

fn bench_sort(c: &mut Criterion) {
    let entries = gen_entries(100_000);
    let mut sorted = entries.clone();
    sort_file_list(&mut sorted, 31);
    let mut g = c.benchmark_group("flist_sort");
    g.sample_size(20);
    g.bench_function("sort_100k_p31_shuffled", |b| {
        b.iter_batched(
            || entries.clone(),
            |mut v| {
                sort_file_list(&mut v, 31);
                v
            },
            BatchSize::LargeInput,
        );
    });
    g.bench_function("sort_100k_p31_presorted", |b| {
        b.iter_batched(
            || sorted.clone(),
            |mut v| {
                sort_file_list(&mut v, 31);
                v
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

/// 20 top directories x 10 subdirectories x 100 files = 20,000 files.
fn gen_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for t in 0..20 {
        for s in 0..10 {
            let d = dir.path().join(format!("top{t}")).join(format!("sub{s}"));
            std::fs::create_dir_all(&d).unwrap();
            for f in 0..100 {
                std::fs::write(d.join(format!("file{f}.dat")), b"x").unwrap();
            }
        }
    }
    dir
}

fn bench_scan(c: &mut Criterion) {
    let tree = gen_tree();
    let mut src = tree.path().as_os_str().to_owned();
    src.push("/");
    let sources = vec![PathBuf::from(src)];
    let opts = ScanOptions {
        recursive: true,
        links: true,
        ..ScanOptions::default()
    };
    let mut g = c.benchmark_group("fs_scan");
    g.sample_size(20);
    g.bench_function("scan_20k_files", |b| {
        b.iter(|| {
            let r = scan_sources(black_box(&sources), &opts).unwrap();
            assert!(r.entries.len() > 20_000);
            r
        });
    });
    g.finish();
}

/// The options of `rsync -a` at protocol 31 (what a real transfer uses).
fn archive_opts() -> FlistOptions {
    FlistOptions {
        protocol: 31,
        varint_flags: true,
        safe_flist: true,
        preserve_uid: true,
        preserve_gid: true,
        preserve_links: true,
        preserve_devices: true,
        preserve_specials: true,
        ..FlistOptions::default()
    }
}

fn encode_list(o: FlistOptions, list: &[FileEntry]) -> Vec<u8> {
    let mut enc = FileListEncoder::new(o);
    let mut buf = Vec::with_capacity(list.len() * 24);
    for e in list {
        enc.encode_entry(&mut buf, e).unwrap();
    }
    enc.encode_end(&mut buf, 0);
    buf
}

fn bench_codec(c: &mut Criterion) {
    let mut list = gen_entries(100_000);
    sort_file_list(&mut list, 31);
    let mut rng = StdRng::seed_from_u64(9);
    for e in &mut list {
        e.mtime = 1_700_000_000 + rng.gen_range(0..100_000);
        e.uid = 1000;
        e.gid = 1000;
        if !e.is_dir() {
            e.size = rng.gen_range(0..100_000);
        }
    }
    let o = archive_opts();
    let wire = encode_list(o, &list);
    let mut g = c.benchmark_group("flist_codec");
    g.sample_size(20);
    g.throughput(Throughput::Elements(list.len() as u64));
    g.bench_function("encode_100k_p31", |b| {
        b.iter(|| encode_list(o, black_box(&list)))
    });
    g.bench_function("decode_100k_p31", |b| {
        b.iter(|| {
            let mut dec = FileListDecoder::new(o, Limits::default());
            let mut at = 0;
            let mut n = 0usize;
            while let Ok(Decoded::Done {
                value: Some(e),
                used,
            }) = dec.decode(&wire[at..])
            {
                at += used;
                n += 1;
                black_box(e);
            }
            assert_eq!(n, list.len());
            n
        });
    });
    g.finish();
}

criterion_group!(benches, bench_sort, bench_scan, bench_codec);
criterion_main!(benches);
