//! Matcher throughput: a 256 MiB target against the signature of a
//! 256 MiB basis, with 1 % of the blocks edited (replacements, inserts
//! and deletes of 1..64 bytes at random places, shifting alignment).

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ferrsync::checksum::{ChecksumConfig, StrongKind};
use ferrsync::delta::{Matcher, SignatureBuilder, SumHead, Token};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};

const LEN: usize = 256 << 20;

fn edited(basis: &[u8], edits: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut at: Vec<usize> = (0..edits).map(|_| rng.gen_range(0..basis.len())).collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(basis.len() + edits * 64);
    let mut prev = 0;
    for p in at {
        if p < prev {
            continue;
        }
        out.extend_from_slice(&basis[prev..p]);
        let n = rng.gen_range(1..=64);
        match rng.gen_range(0..3) {
            0 => {
                // replace n bytes
                out.extend((0..n).map(|_| rng.r#gen::<u8>()));
                prev = (p + n).min(basis.len());
            }
            1 => {
                // insert n bytes
                out.extend((0..n).map(|_| rng.r#gen::<u8>()));
                prev = p;
            }
            _ => prev = (p + n).min(basis.len()), // delete n bytes
        }
    }
    out.extend_from_slice(&basis[prev..]);
    out
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let mut basis = vec![0u8; LEN];
    rng.fill_bytes(&mut basis);
    let mut g = c.benchmark_group("matcher");
    g.sample_size(10);
    for kind in [StrongKind::Xxh128, StrongKind::Md5] {
        let cfg = ChecksumConfig::for_session(kind, 0x1234_5678, 32, true, true);
        let head = SumHead::for_file(LEN as u64, 32, kind.digest_len(), None, false);
        let mut sb = SignatureBuilder::new(head, cfg);
        sb.feed(&basis);
        let sig = sb.finish();
        let blocks = usize::try_from(head.count).unwrap_or(0);
        let target = edited(&basis, blocks / 100, &mut rng);
        g.throughput(Throughput::Bytes(target.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("edits_1pct_256MiB", kind.name()),
            &cfg,
            |b, cfg| {
                b.iter(|| {
                    let mut m = Matcher::new(&sig, *cfg);
                    let mut n = 0u64;
                    let mut sink = |t: Token<'_>| {
                        n += match t {
                            Token::Literal(d) => d.len() as u64,
                            Token::Block(_) => 1,
                        }
                    };
                    for piece in black_box(&target).chunks(1 << 20) {
                        m.feed(piece, &mut sink);
                    }
                    m.finish(&mut sink);
                    (n, m.stats())
                });
            },
        );
        let mut m = Matcher::new(&sig, cfg);
        let mut sink = |_: Token<'_>| {};
        m.feed(&target, &mut sink);
        m.finish(&mut sink);
        let st = m.stats();
        eprintln!(
            "matcher {}: {} blocks of {}, literal {} bytes, matched {} blocks",
            kind.name(),
            head.count,
            head.blength,
            st.literal_bytes,
            st.matched_blocks
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
