//! Rolling checksum throughput: `checksum1` over 64 MiB, and sliding a
//! window one byte at a time over 64 MiB (the matcher's inner loop).

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ferrsync::checksum::{Rolling, checksum1};
use rand::{RngCore, SeedableRng, rngs::StdRng};

const LEN: usize = 64 << 20;

fn data() -> Vec<u8> {
    let mut v = vec![0u8; LEN];
    StdRng::seed_from_u64(1).fill_bytes(&mut v);
    v
}

fn bench(c: &mut Criterion) {
    let d = data();
    let mut g = c.benchmark_group("rolling");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("checksum1_64MiB", |b| b.iter(|| checksum1(black_box(&d))));
    for block in [1024usize, 16384] {
        g.bench_with_input(
            BenchmarkId::new("roll_64MiB", block),
            &block,
            |b, &block| {
                b.iter(|| {
                    let d = black_box(&d);
                    let mut r = Rolling::new(&d[..block]);
                    let mut acc = 0u32;
                    for (&out, &inn) in d.iter().zip(&d[block..]) {
                        r.roll(out, inn);
                        acc ^= r.value();
                    }
                    acc
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
