//! The compressed token codecs against rsync 3.5.0 captures
//! (`shared/protocol/captures/transfer-vectors/*-{zlib,zlibx,zstd,lz4}*`).
//!
//! For each capture we locate every transferred file's token stream in the
//! sender's data stream (offsets from the annotated `.txt` decode, verified
//! against the shown hex), rebuild the capture trees with
//! `transfer-build-tree.py`, and check:
//!
//! 1. our `TokenDecompressor` (one per session) rebuilds every file from
//!    rsync's bytes, given the basis blocks via `block_data`;
//! 2. the same token sequence through our `TokenCompressor` decodes back to
//!    the same file, and whether our bytes equal rsync's (reported).

use crate::common;

use common::tap;
use ferrsync::delta::{CToken, Compression, TokenCompressor, TokenDecompressor};
use ferrsync::wire::{Decoded, Limits};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One transferred file: its name, sum header and token bytes (END incl.).
#[derive(Debug)]
struct FileTokens {
    name: String,
    count: u32,
    blength: u32,
    remainder: u32,
    bytes: Vec<u8>,
}

struct Line {
    off: usize,
    hex: Vec<u8>,
    desc: String,
}

fn parse_lines(section: &str) -> Vec<Line> {
    let mut v = Vec::new();
    for l in section.lines() {
        let Some((off, rest)) = l.split_once("  ") else {
            continue;
        };
        if off.len() != 6 || !off.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(off) = usize::from_str_radix(off, 16) else {
            continue;
        };
        // Hex bytes: up to 16 groups "xx " in a 48-char column.
        let col: String = rest.chars().take(48).collect();
        let mut hex = Vec::new();
        for w in col.split_whitespace() {
            if w.len() == 2 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex.push(u8::from_str_radix(w, 16).unwrap());
            } else {
                break;
            }
        }
        let desc = rest.chars().skip(48).collect::<String>().trim().to_string();
        v.push(Line { off, hex, desc });
    }
    v
}

fn num_after(desc: &str, key: &str) -> u32 {
    let at = desc.find(key).unwrap() + key.len();
    desc[at..]
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The sender's data stream and per-file token streams of a capture.
fn capture(name: &str) -> Vec<FileTokens> {
    let txt =
        std::fs::read_to_string(tap::captures_dir().join(format!("transfer-vectors/{name}.txt")))
            .unwrap();
    let start = txt.find("SENDER -> RECEIVER data stream").unwrap();
    let end = txt[start..]
        .find("GENERATOR -> SENDER data stream")
        .map_or(txt.len(), |e| start + e);
    let lines = parse_lines(&txt[start..end]);
    // Files: (name, count, blength, remainder, start, end, check lines).
    struct F {
        name: String,
        count: u32,
        blength: u32,
        remainder: u32,
        start: usize,
        end: usize,
    }
    let mut files: Vec<F> = Vec::new();
    let mut cur_name = String::new();
    let mut cur = (0u32, 0u32, 0u32);
    let mut in_tokens: Option<usize> = None;
    let mut checks: Vec<(usize, Vec<u8>)> = Vec::new();
    for l in &lines {
        if in_tokens.is_none() && l.desc.starts_with("ndx ") {
            if let Some(q) = l.desc.find("= '") {
                cur_name = l.desc[q + 3..l.desc.len() - 1].to_string();
            }
        }
        if l.desc.starts_with("sum header: block count") {
            cur.0 = num_after(&l.desc, "block count");
            checks.push((l.off, l.hex.clone()));
        } else if l.desc.starts_with("sum header: block length") {
            cur.1 = num_after(&l.desc, "block length");
        } else if l.desc.starts_with("sum header: remainder") {
            cur.2 = l.desc.split_whitespace().last().unwrap().parse().unwrap();
            in_tokens = Some(l.off + 4);
        } else if let Some(s) = in_tokens {
            if !l.hex.is_empty() {
                checks.push((l.off, l.hex.clone()));
            }
            if l.desc.starts_with("END_FLAG") {
                files.push(F {
                    name: cur_name.clone(),
                    count: cur.0,
                    blength: cur.1,
                    remainder: cur.2,
                    start: s,
                    end: l.off + 1,
                });
                in_tokens = None;
            }
        }
    }
    assert!(!files.is_empty(), "{name}: no files found");
    // Which byte stream do the offsets refer to? Try the candidates.
    let t = tap::load(&format!("transfer-vectors/{name}.tap"));
    let mut cands: Vec<Vec<u8>> = Vec::new();
    for (raw, from) in [(&t.s2c, 8usize), (&t.c2s, 4usize)] {
        if let Some(s) = frame_start(raw, from) {
            cands.push(tap::demux(&raw[s..]).data);
        }
        for k in 0..80 {
            cands.push(raw.get(k..).unwrap_or(&[]).to_vec());
        }
    }
    let stream = cands
        .into_iter()
        .find(|s| {
            checks
                .iter()
                .all(|(o, h)| s.get(*o..*o + h.len()) == Some(h.as_slice()))
        })
        .unwrap_or_else(|| panic!("{name}: no stream matches the decode"));
    files
        .into_iter()
        .map(|f| FileTokens {
            name: f.name,
            count: f.count,
            blength: f.blength,
            remainder: f.remainder,
            bytes: stream[f.start..f.end].to_vec(),
        })
        .collect()
}

fn frame_start(s: &[u8], from: usize) -> Option<usize> {
    'outer: for o in from..s.len().min(from + 256) {
        let mut i = o;
        while i < s.len() {
            let Some(h) = s.get(i..i + 4) else {
                continue 'outer;
            };
            let h = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let tag = h >> 24;
            if !(7..7 + 110).contains(&tag) || (i == o && tag != 7) {
                continue 'outer;
            }
            i += 4 + (h & 0xff_ffff) as usize;
        }
        if i == s.len() {
            return Some(o);
        }
    }
    None
}

/// Capture trees, built once: flag -> directory.
fn tree(flag: &str) -> PathBuf {
    static TREES: OnceLock<std::sync::Mutex<HashMap<String, tempfile::TempDir>>> = OnceLock::new();
    let m = TREES.get_or_init(Default::default);
    let mut m = m.lock().unwrap();
    let d = m.entry(flag.to_string()).or_insert_with(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = tap::captures_dir().join("transfer-build-tree.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script);
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        let st = cmd.arg(dir.path()).status().unwrap();
        assert!(st.success(), "{} {flag} failed", script.display());
        dir
    });
    d.path().to_path_buf()
}

struct Case {
    name: &'static str,
    kind: Compression,
    protocol: u8,
    /// `transfer-build-tree.py` flag and the src/basis directory names.
    flag: &'static str,
    src: &'static str,
    basis: &'static str,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for dir in ["pull", "push"] {
        for p in [29u8, 30, 31, 32] {
            for (algo, kind) in [
                ("zlib", Compression::Zlib),
                ("zlibx", Compression::Zlibx),
                ("zstd", Compression::Zstd),
            ] {
                for sum in ["md5", "xxh128"] {
                    let name: &'static str =
                        Box::leak(format!("{dir}-p{p}-main-{algo}-{sum}").into_boxed_str());
                    v.push(Case {
                        name,
                        kind,
                        protocol: p,
                        flag: "",
                        src: "src",
                        basis: "basis",
                    });
                }
            }
        }
    }
    for (name, kind, protocol, flag, src, basis) in [
        (
            "pull-p32-extra-zlib-delta",
            Compression::Zlib,
            32,
            "--extras",
            "src2",
            "basis2",
        ),
        (
            "pull-p30-extra-zlib-delta",
            Compression::Zlib,
            30,
            "--extras",
            "src2",
            "basis2",
        ),
        (
            "pull-p32-extra-lz4",
            Compression::Lz4,
            32,
            "--extras",
            "src2",
            "basis2",
        ),
        (
            "pull-p31-bigblock-zlib",
            Compression::Zlib,
            31,
            "--bigblock",
            "src4",
            "basis4",
        ),
        (
            "pull-p30-bigblock-zlib",
            Compression::Zlib,
            30,
            "--bigblock",
            "src4",
            "basis4",
        ),
        (
            "pull-p31-main-old313-zlib",
            Compression::Zlib,
            31,
            "",
            "src",
            "basis",
        ),
    ] {
        v.push(Case {
            name,
            kind,
            protocol,
            flag,
            src,
            basis,
        });
    }
    v.retain(|c| {
        tap::captures_dir()
            .join(format!("transfer-vectors/{}.tap", c.name))
            .exists()
    });
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(Vec<u8>),
    Blk(u32),
}

fn block_bytes<'a>(f: &FileTokens, basis: &'a [u8], i: u32) -> &'a [u8] {
    assert!(i < f.count, "{}: block {i} of {}", f.name, f.count);
    let off = i as usize * f.blength as usize;
    let len = if i + 1 == f.count && f.remainder != 0 {
        f.remainder as usize
    } else {
        f.blength as usize
    };
    &basis[off..off + len]
}

/// Decodes one file's tokens with the session decompressor; returns the
/// rebuilt file and the token sequence (literal runs merged).
fn decode_file(
    rx: &mut TokenDecompressor,
    f: &FileTokens,
    basis: &[u8],
    feed_step: usize,
) -> (Vec<u8>, Vec<Tok>) {
    let mut out = Vec::new();
    let mut toks: Vec<Tok> = Vec::new();
    let buf = &f.bytes;
    let mut at = 0;
    // Feed growing prefixes to exercise NeedMore.
    let mut avail = feed_step.min(buf.len());
    loop {
        match rx.decode(&buf[at..avail]).unwrap() {
            Decoded::NeedMore(_) => {
                assert!(avail < buf.len(), "{}: decoder wants more at end", f.name);
                avail = (avail + feed_step).min(buf.len());
            }
            Decoded::Done { value, used } => {
                at += used;
                avail = avail.max(at);
                match value {
                    CToken::End => break,
                    CToken::Block(i) => {
                        let b = block_bytes(f, basis, i);
                        out.extend_from_slice(b);
                        rx.block_data(b);
                        toks.push(Tok::Blk(i));
                    }
                    CToken::Literal(d) => {
                        out.extend_from_slice(&d);
                        if let Some(Tok::Lit(l)) = toks.last_mut() {
                            l.extend_from_slice(&d);
                        } else if !d.is_empty() {
                            toks.push(Tok::Lit(d));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(at, buf.len(), "{}: END not at the end", f.name);
    (out, toks)
}

fn read_or_empty(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}

/// (1) rsync's bytes decode to the source files.
#[test]
fn decode_rsync_streams() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} captures found", cases.len());
    for c in &cases {
        let files = capture(c.name);
        let root = tree(c.flag);
        for step in [usize::MAX, 1, 7] {
            let mut rx = TokenDecompressor::new(c.kind, c.protocol, Limits::default());
            for f in &files {
                let basis = read_or_empty(&root.join(c.basis).join(&f.name));
                let src = std::fs::read(root.join(c.src).join(&f.name)).unwrap();
                let (out, _) = decode_file(&mut rx, f, &basis, step);
                assert!(
                    out == src,
                    "{} {} step {step}: rebuilt file differs",
                    c.name,
                    f.name
                );
            }
        }
    }
}

/// (2) The same tokens through our compressor decode back; report byte
/// identity with rsync's stream per capture.
#[test]
fn encode_like_rsync() {
    let mut report = Vec::new();
    for c in &cases() {
        let files = capture(c.name);
        let root = tree(c.flag);
        let mut rx = TokenDecompressor::new(c.kind, c.protocol, Limits::default());
        let mut tx = TokenCompressor::new(c.kind, None, c.protocol);
        let mut rx2 = TokenDecompressor::new(c.kind, c.protocol, Limits::default());
        let mut identical = true;
        let mut same_shape = true;
        for f in &files {
            let basis = read_or_empty(&root.join(c.basis).join(&f.name));
            let src = std::fs::read(root.join(c.src).join(&f.name)).unwrap();
            let (_, toks) = decode_file(&mut rx, f, &basis, usize::MAX);
            let mut ours = Vec::new();
            for t in &toks {
                match t {
                    Tok::Lit(d) => tx.literal(&mut ours, d),
                    Tok::Blk(i) => tx.block(&mut ours, *i, block_bytes(f, &basis, *i)),
                }
            }
            tx.end_file(&mut ours);
            let ff = FileTokens {
                name: f.name.clone(),
                count: f.count,
                blength: f.blength,
                remainder: f.remainder,
                bytes: ours.clone(),
            };
            let (back, toks2) = decode_file(&mut rx2, &ff, &basis, usize::MAX);
            assert!(
                back == src,
                "{} {}: our stream does not rebuild the file",
                c.name,
                f.name
            );
            assert_eq!(toks2, toks, "{} {}", c.name, f.name);
            if ours != f.bytes {
                identical = false;
            }
            if shape(&ours) != shape(&f.bytes) {
                same_shape = false;
            }
        }
        // zstd: the same libzstd algorithm and rsync's record logic give
        // rsync's exact bytes.
        // All: the same token flags (runs, REL/LONG forms, END) as rsync.
        assert!(same_shape, "{}: token flags differ from rsync's", c.name);
        if c.kind == Compression::Zstd {
            assert!(identical, "{}: zstd bytes differ from rsync's", c.name);
        }
        report.push(format!(
            "{:32} {:15} {}",
            c.name,
            if identical {
                "byte-identical"
            } else {
                "differs"
            },
            if same_shape {
                "same token flags"
            } else {
                "different token flags"
            }
        ));
    }
    eprintln!("{}", report.join("\n"));
}

/// The flag/record layout of a token stream, payload bytes left out:
/// token flags verbatim, each run of records as one marker.
fn shape(wire: &[u8]) -> Vec<u32> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < wire.len() {
        let f = wire[i];
        if f & 0xC0 == 0x40 {
            let n = (usize::from(f & 0x3f) << 8) | usize::from(wire[i + 1]);
            if v.last() != Some(&0x1_0000) {
                v.push(0x1_0000);
            }
            i += 2 + n;
        } else {
            let len = match f {
                0 => 1,
                f if f & 0x80 != 0 => {
                    if f & 0x40 != 0 {
                        3
                    } else {
                        1
                    }
                }
                f => {
                    if f & 1 != 0 {
                        7
                    } else {
                        5
                    }
                }
            };
            v.extend(wire[i..i + len].iter().map(|&b| u32::from(b)));
            i += len;
        }
    }
    v
}

/// The protocol-30 duplicate-piece quirk (section 4.3.1): modelling it the
/// wrong way round breaks decoding of both bigblock captures.
#[test]
fn bigblock_quirk_matters() {
    for (name, right, wrong) in [
        ("pull-p30-bigblock-zlib", 30u8, 31u8),
        ("pull-p31-bigblock-zlib", 31, 30),
    ] {
        let files = capture(name);
        assert!(
            files.iter().any(|f| f.blength > 65535),
            "{name}: no big block"
        );
        let root = tree("--bigblock");
        for (proto, ok) in [(right, true), (wrong, false)] {
            let mut rx = TokenDecompressor::new(Compression::Zlib, proto, Limits::default());
            let mut good = true;
            for f in &files {
                let basis = read_or_empty(&root.join("basis4").join(&f.name));
                let src = std::fs::read(root.join("src4").join(&f.name)).unwrap();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    decode_file(&mut rx, f, &basis, usize::MAX).0
                }));
                good &= matches!(r, Ok(out) if out == src);
            }
            assert_eq!(good, ok, "{name} decoded as protocol {proto}");
        }
    }
}
