//! A short run of every cargo-fuzz target in the ordinary test suite.
//!
//! Each target under `fuzz/fuzz_targets/` is compiled here as a module,
//! unchanged: `fuzz_target!` is this crate's macro (see `main.rs`), which
//! turns the target's body into `fn run(data: &[u8])`. Every target is run
//! over its seed corpus (`fuzz/corpus/<target>/`, the committed seeds and
//! whatever a local `cargo fuzz run` added), the empty input and every
//! one-byte input, then over mutations of the seeds from a fixed-seed
//! generator (bit flips, byte sets, inserts, deletes, truncations, chunk
//! copies, splices of two seeds): `MIN_MUTATED` of them, then more until
//! `MAX_MUTATED` inputs or `BUDGET` have passed. The checks are the targets' own asserts; a panic reports
//! the target and the input in hex, and writes the input to
//! `target/fuzz-smoke/<target>-<n>` for `cargo fuzz run <target> <file>`.
//! This is a smoke test of the harnesses and of the seeds, not fuzzing:
//! the long runs are `cargo fuzz run` (fuzz/README.md).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Mutated inputs per target: at least `MIN_MUTATED`, then more until
/// `MAX_MUTATED` or until `BUDGET` has passed.
const MIN_MUTATED: usize = 300;
const MAX_MUTATED: usize = 4000;
/// Time for the mutated inputs of one target (the seeds always all run).
const BUDGET: Duration = Duration::from_millis(1500);

/// xorshift64*, fixed seed per target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'\n', b'/', b':'];

/// One mutation of a seed: one to four edits.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = if rng.below(2) == 0 {
                    INTERESTING[rng.below(INTERESTING.len())]
                } else {
                    rng.next() as u8
                };
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(16));
                v.drain(i..i + n);
            }
            4 => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
            5 if !v.is_empty() => {
                // Copy a chunk of the input over another place.
                let from = rng.below(v.len());
                let n = 1 + rng.below((v.len() - from).min(32));
                let chunk = v[from..from + n].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, chunk);
            }
            6 => {
                // Splice: this input's head, another seed's tail.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                // Repeat a byte a few times (lengths, counts, runs).
                let i = rng.below(v.len() + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                let n = 1 + rng.below(8);
                v.splice(i..i, std::iter::repeat_n(b, n));
            }
        }
    }
    v
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fuzz_dir().join("corpus").join(target))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Runs `run` on `input`; on a panic, reports and saves the input first.
fn one(target: &str, n: usize, run: fn(&[u8]), input: &[u8]) {
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| run(input))) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke");
        let saved = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(format!("{target}-{n}")), input))
            .map(|()| dir.join(format!("{target}-{n}")).display().to_string())
            .unwrap_or_else(|e| format!("(not saved: {e})"));
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        eprintln!("fuzz target {target} panicked on input {n} ({saved}): {hex}");
        resume_unwind(e);
    }
}

fn smoke(target: &str, run: fn(&[u8])) {
    assert!(
        fuzz_dir()
            .join("fuzz_targets")
            .join(format!("{target}.rs"))
            .is_file(),
        "no fuzz target {target}"
    );
    let seeds = seeds(target);
    assert!(
        !seeds.is_empty(),
        "{target}: no seeds in fuzz/corpus/{target}"
    );
    let mut n = 0;
    for s in &seeds {
        one(target, n, run, s);
        n += 1;
    }
    one(target, n, run, &[]);
    n += 1;
    for b in 0..=255u8 {
        one(target, n, run, &[b]);
        n += 1;
    }
    let fixed = n;
    let mut rng = Rng(target.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    let t0 = Instant::now();
    let mut mutated = 0;
    while mutated < MIN_MUTATED || (mutated < MAX_MUTATED && t0.elapsed() < BUDGET) {
        let input = mutate(&mut rng, &seeds);
        one(target, n, run, &input);
        n += 1;
        mutated += 1;
    }
    eprintln!(
        "{target}: {} seeds, {fixed} fixed inputs, {mutated} mutated in {:?}",
        seeds.len(),
        t0.elapsed()
    );
}

/// One module and one test per fuzz target; the list must name them all
/// (`all_fuzz_targets_are_here`).
macro_rules! targets {
    ($($name:ident = $path:literal),* $(,)?) => {
        $(
            #[allow(unused_attributes)]
            #[path = $path]
            mod $name;
        )*

        mod run {
            $(
                #[test]
                fn $name() {
                    super::smoke(stringify!($name), super::$name::run);
                }
            )*
        }

        const TARGETS: &[&str] = &[$(stringify!($name)),*];
    };
}

targets!(
    compressed_lz4 = "../../fuzz/fuzz_targets/compressed_lz4.rs",
    compressed_tokens = "../../fuzz/fuzz_targets/compressed_tokens.rs",
    compressed_zlib = "../../fuzz/fuzz_targets/compressed_zlib.rs",
    compressed_zlibx = "../../fuzz/fuzz_targets/compressed_zlibx.rs",
    compressed_zstd = "../../fuzz/fuzz_targets/compressed_zstd.rs",
    daemon_argv = "../../fuzz/fuzz_targets/daemon_argv.rs",
    daemon_auth = "../../fuzz/fuzz_targets/daemon_auth.rs",
    daemon_greeting = "../../fuzz/fuzz_targets/daemon_greeting.rs",
    filter_rules = "../../fuzz/fuzz_targets/filter_rules.rs",
    flist_decode = "../../fuzz/fuzz_targets/flist_decode.rs",
    flist_roundtrip = "../../fuzz/fuzz_targets/flist_roundtrip.rs",
    hosts_refuse = "../../fuzz/fuzz_targets/hosts_refuse.rs",
    id_list = "../../fuzz/fuzz_targets/id_list.rs",
    mux_frame = "../../fuzz/fuzz_targets/mux_frame.rs",
    ndx = "../../fuzz/fuzz_targets/ndx.rs",
    negotiate = "../../fuzz/fuzz_targets/negotiate.rs",
    path_sanitize = "../../fuzz/fuzz_targets/path_sanitize.rs",
    rsyncd_conf = "../../fuzz/fuzz_targets/rsyncd_conf.rs",
    sum_head = "../../fuzz/fuzz_targets/sum_head.rs",
    token_patch = "../../fuzz/fuzz_targets/token_patch.rs",
    varint = "../../fuzz/fuzz_targets/varint.rs",
    xattr_lists = "../../fuzz/fuzz_targets/xattr_lists.rs",
);

#[test]
fn all_fuzz_targets_are_here() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let mut here: Vec<&str> = TARGETS.to_vec();
    here.sort_unstable();
    assert_eq!(
        on_disk, here,
        "add new fuzz targets to tests/it/fuzz_smoke.rs"
    );
    // And every target is a [[bin]] of the fuzz crate.
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for t in TARGETS {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{t}.rs\"")),
            "{t} is not in fuzz/Cargo.toml"
        );
    }
}
