//! Writes the `compressed_tokens` seeds: for each algorithm, a few small
//! streams made by `TokenCompressor`, prefixed with the selector byte; the
//! same files go to the per-algorithm corpus (`compressed_zlib`, ...).
//! `cargo run --example compressed_tokens_seeds` from `fuzz/`.

use ferrsync::delta::{Compression, TokenCompressor};
use std::fs;

const FAKE_BLOCK: [u8; 64] = {
    let mut b = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        b[i] = b"fake block "[i % 11];
        i += 1;
    }
    b
};

fn main() {
    let algs = [
        (Compression::Zlib, "zlib"),
        (Compression::Zlibx, "zlibx"),
        (Compression::Zstd, "zstd"),
        (Compression::Lz4, "lz4"),
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/compressed_tokens");
    fs::create_dir_all(dir).unwrap();
    let write = |name: &str, file: String, bytes: &[u8]| {
        fs::write(format!("{dir}/{file}"), bytes).unwrap();
        let own = format!("{dir}/../compressed_{name}");
        fs::create_dir_all(&own).unwrap();
        fs::write(format!("{own}/{file}"), bytes).unwrap();
    };
    let text: Vec<u8> = (0..40)
        .flat_map(|i| format!("2026-11-25 12:00:{i:02} INFO worker {i} done\n").into_bytes())
        .collect();
    for (a, (kind, name)) in algs.into_iter().enumerate() {
        for (p, protocol) in [(3u8, 32u8), (0, 29)] {
            let sel = a as u8 | (p << 2);
            // 1: literal, block run, literal, far block, end.
            let mut c = TokenCompressor::new(kind, None, protocol);
            let mut out = vec![sel];
            c.literal(&mut out, b"hello hello hello hello");
            c.block(&mut out, 0, &FAKE_BLOCK);
            c.block(&mut out, 1, &FAKE_BLOCK);
            c.block(&mut out, 2, &FAKE_BLOCK);
            c.literal(&mut out, &text);
            c.block(&mut out, 300, &FAKE_BLOCK);
            c.literal(&mut out, b"fake block fake block tail");
            c.end_file(&mut out);
            write(name, format!("seed-{name}-p{protocol}-mixed"), &out);
            // 2: literal only.
            let mut c = TokenCompressor::new(kind, None, protocol);
            let mut out = vec![sel];
            c.literal(&mut out, &text);
            c.end_file(&mut out);
            write(name, format!("seed-{name}-p{protocol}-literal"), &out);
        }
        // 3: blocks only, protocol 31.
        let mut c = TokenCompressor::new(kind, None, 31);
        let mut out = vec![a as u8 | (2 << 2)];
        for i in [0, 1, 2, 70, 71, 5] {
            c.block(&mut out, i, &FAKE_BLOCK);
        }
        c.end_file(&mut out);
        write(name, format!("seed-{name}-p31-blocks"), &out);
    }
}
