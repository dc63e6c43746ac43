//! Signature throughput over 256 MiB (block length as rsync sizes it),
//! next to the raw strong hash over the same data for comparison.
//!
//! `signature_256MiB` feeds the builder pieces of
//! `SignatureBuilder::PARALLEL_FEED` bytes, as the generator reads a large
//! basis, so it sums on **two threads**; `signature_1thread_256MiB` feeds
//! 1 MiB pieces, which stay on one. The raw hashes are one thread.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ferrsync::checksum::{ChecksumConfig, StrongKind};
use ferrsync::delta::{SignatureBuilder, SumHead};
use md5::Digest;
use rand::{RngCore, SeedableRng, rngs::StdRng};

const LEN: usize = 256 << 20;

fn bench(c: &mut Criterion) {
    let mut d = vec![0u8; LEN];
    StdRng::seed_from_u64(2).fill_bytes(&mut d);
    let mut g = c.benchmark_group("signature");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(LEN as u64));
    for kind in [StrongKind::Xxh128, StrongKind::Md5] {
        let cfg = ChecksumConfig::for_session(kind, 0x1234_5678, 32, true, true);
        let head = SumHead::for_file(LEN as u64, 32, kind.digest_len(), None, false);
        for (name, piece) in [
            ("signature_256MiB", SignatureBuilder::PARALLEL_FEED),
            ("signature_1thread_256MiB", 1 << 20),
        ] {
            g.bench_with_input(BenchmarkId::new(name, kind.name()), &cfg, |b, cfg| {
                b.iter(|| {
                    let mut s = SignatureBuilder::new(head, *cfg);
                    for p in black_box(&d).chunks(piece) {
                        s.feed(p);
                    }
                    s.finish().blocks.len()
                });
            });
        }
    }
    g.bench_function("raw_256MiB/xxh128", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_128_with_seed(black_box(&d), 7))
    });
    g.bench_function("raw_256MiB/md5", |b| {
        b.iter(|| md5::Md5::digest(black_box(&d)))
    });
    // Raw per-block hashing with the same block length: what a signature
    // cannot avoid.
    let bl =
        usize::try_from(SumHead::for_file(LEN as u64, 32, 16, None, false).blength).unwrap_or(1);
    g.bench_function("raw_blocks_256MiB/xxh128", |b| {
        b.iter(|| {
            black_box(&d)
                .chunks(bl)
                .map(|c| xxhash_rust::xxh3::xxh3_128_with_seed(c, 7) as u64)
                .sum::<u64>()
        })
    });
    g.bench_function("raw_blocks_256MiB/md5", |b| {
        b.iter(|| {
            black_box(&d)
                .chunks(bl)
                .map(|c| md5::Md5::digest(c)[0] as u64)
                .sum::<u64>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
