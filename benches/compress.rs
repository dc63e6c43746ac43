//! Compressed token stream throughput: `TokenCompressor` (one 64 MiB
//! literal, default level) and `TokenDecompressor` (the resulting stream
//! back to literals) for each algorithm, on 64 MiB of generated log-like
//! text and 64 MiB of random bytes. Throughput is the uncompressed size.
//!
//! One iteration takes up to a few seconds (zlib on random data), so the
//! group samples flat: 10 samples of one iteration each.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, black_box, criterion_group, criterion_main,
};
use ferrsync::delta::{CToken, Compression, TokenCompressor, TokenDecompressor};
use ferrsync::wire::{Decoded, Limits};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};
use std::time::Duration;

const LEN: usize = 64 << 20;
const PROTOCOL: u8 = 31;
const ALGS: [Compression; 4] = [
    Compression::Zlib,
    Compression::Zlibx,
    Compression::Zstd,
    Compression::Lz4,
];

fn random() -> Vec<u8> {
    let mut v = vec![0u8; LEN];
    StdRng::seed_from_u64(1).fill_bytes(&mut v);
    v
}

fn text() -> Vec<u8> {
    const LEVELS: [&str; 4] = ["INFO", "DEBUG", "WARN", "ERROR"];
    const WORDS: [&str; 12] = [
        "request", "served", "cache", "miss", "hit", "upstream", "timeout", "retry", "user",
        "session", "closed", "opened",
    ];
    let mut r = StdRng::seed_from_u64(2);
    let mut v = Vec::with_capacity(LEN + 256);
    let mut t = 0u64;
    while v.len() < LEN {
        t += r.gen_range(0..1500);
        let line = format!(
            "2026-11-25T{:02}:{:02}:{:02}.{:03}Z {} [worker-{}] {} {} {} id={:08x} took={}ms\n",
            (t / 3_600_000) % 24,
            (t / 60_000) % 60,
            (t / 1000) % 60,
            t % 1000,
            LEVELS[r.gen_range(0..4)],
            r.gen_range(0..16),
            WORDS[r.gen_range(0..12)],
            WORDS[r.gen_range(0..12)],
            WORDS[r.gen_range(0..12)],
            r.r#gen::<u32>(),
            r.gen_range(0..5000),
        );
        v.extend_from_slice(line.as_bytes());
    }
    v.truncate(LEN);
    v
}

fn encode(kind: Compression, data: &[u8]) -> Vec<u8> {
    let mut c = TokenCompressor::new(kind, None, PROTOCOL);
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    c.literal(&mut out, data);
    c.end_file(&mut out);
    out
}

fn decode(kind: Compression, stream: &[u8]) -> usize {
    let mut d = TokenDecompressor::new(kind, PROTOCOL, Limits::default());
    let mut rest = stream;
    let mut total = 0usize;
    loop {
        match d.decode(rest).expect("valid stream") {
            Decoded::Done { value, used } => {
                rest = &rest[used..];
                match value {
                    CToken::Literal(p) => total += p.len(),
                    CToken::Block(_) => unreachable!(),
                    CToken::End => return total,
                }
            }
            Decoded::NeedMore(n) => panic!("truncated stream, {n} more"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let inputs = [("text", text()), ("random", random())];
    let mut g = c.benchmark_group("compress");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes(LEN as u64));
    for (name, data) in &inputs {
        for kind in ALGS {
            let stream = encode(kind, data);
            assert_eq!(decode(kind, &stream), data.len());
            eprintln!(
                "{name} {}: {} -> {} bytes ({:.1}%)",
                kind.name(),
                data.len(),
                stream.len(),
                stream.len() as f64 * 100.0 / data.len() as f64
            );
            g.bench_with_input(
                BenchmarkId::new(format!("encode_{}", kind.name()), name),
                data,
                |b, data| b.iter(|| encode(kind, black_box(data))),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("decode_{}", kind.name()), name),
                &stream,
                |b, stream| b.iter(|| decode(kind, black_box(stream))),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
