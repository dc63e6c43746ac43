//! File lists captured from rsync 3.5.0 (and older peers): decode every
//! entry, then re-encode the decoded entries and compare bytes exactly.
//!
//! For each capture the handshake is skipped (versions, compat flags, the
//! negotiation strings, the seed), the sender's stream is demultiplexed, a
//! push's filter list is skipped, and the first file list is taken with its
//! id lists and (protocol < 30) the io_error int.

use crate::common;

use common::tap;
use ferrsync::flist::codec::{FileListDecoder, FileListEncoder, FlistOptions};
use ferrsync::flist::entry::FileEntry;
use ferrsync::flist::ids::{
    apply_id_names, collect_gid_names, collect_uid_names, decode_id_list, encode_id_list,
};
use ferrsync::wire::{Decoded, Limits, decode_i32, decode_varint, decode_vstring};

/// Captures that are not checked, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "pull-p31-extra-A",
        "ACL data (-A) follows each entry; not part of this codec",
    ),
    (
        "pull-p31-extra-A-noinc",
        "ACL data (-A) follows each entry; not part of this codec",
    ),
];

/// Captures whose sender is rsync 2.6.0: it sets `XMIT_SAME_UID`/`GID` on
/// the very first entry and `XMIT_SAME_RDEV_pre28` on every entry, which
/// 3.x senders (and we) do not. Their lists are decoded and must survive
/// our re-encoding with the same meaning, but not with the same bytes.
const OLD_SENDERS: &[&str] = &["pull-p27-main-old260", "28-rsh-pull-server260"];

/// Session captures that run over a remote shell and are simple enough.
const SESSION: &[&str] = &[
    "05-rsh-pull-p29",
    "06-rsh-pull-p30",
    "07-rsh-pull-p31",
    "08-rsh-pull-p32",
    "10-rsh-pull-p32-zstd",
    "11-rsh-push-p32-delete",
    "13-rsh-pull-p32-server327",
    "19-rsh-pull-p32-filters",
    "22-rsh-pull-p28",
    "23-rsh-pull-p27",
    "24-rsh-pull-client300",
    "25-rsh-pull-client260",
    "26-rsh-pull-server300",
    "27-rsh-pull-server310",
    "28-rsh-pull-server260",
];

struct Capture {
    argv: Vec<String>,
    protocol: u8,
    compat: u32,
    /// The sender's data stream, starting at the file list.
    flist: Vec<u8>,
    /// Negotiated checksum name, if names were negotiated.
    checksum: Option<String>,
}

fn parse_argv(json: &str) -> Vec<String> {
    json.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(", ")
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

fn le32(b: &[u8], at: usize) -> i32 {
    match decode_i32(&b[at..]).unwrap() {
        Decoded::Done { value, .. } => value,
        Decoded::NeedMore(_) => panic!("short int32"),
    }
}

fn varint(b: &[u8], at: &mut usize) -> i32 {
    match decode_varint(&b[*at..]).unwrap() {
        Decoded::Done { value, used } => {
            *at += used;
            value
        }
        Decoded::NeedMore(_) => panic!("short varint"),
    }
}

fn vstring(b: &[u8], at: &mut usize) -> String {
    match decode_vstring(&b[*at..], 1024).unwrap() {
        Decoded::Done { value, used } => {
            *at += used;
            String::from_utf8(value).unwrap()
        }
        Decoded::NeedMore(_) => panic!("short vstring"),
    }
}

fn short_opts(argv: &[String]) -> String {
    argv.iter()
        .find(|a| a.starts_with('-') && !a.starts_with("--"))
        .map(|a| a[1..].to_string())
        .unwrap_or_default()
}

fn letters(argv: &[String]) -> String {
    let s = short_opts(argv);
    match s.find("e.") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn load(name: &str) -> Capture {
    let t = tap::load(name);
    let argv = parse_argv(&t.argv_json);
    let push = !argv.iter().any(|a| a == "--sender");
    let protocol = le32(&t.c2s, 0).min(le32(&t.s2c, 0)) as u8;
    let mut s = 4;
    let compat = if protocol >= 30 {
        varint(&t.s2c, &mut s) as u32
    } else {
        0
    };
    let mut c = 4;
    let mut checksum = None;
    if compat & 0x80 != 0 {
        let has = |p: &str| argv.iter().any(|a| a.starts_with(p));
        if !has("--checksum-choice") {
            let server = vstring(&t.s2c, &mut s);
            let client = vstring(&t.c2s, &mut c);
            let server: Vec<&str> = server.split(' ').collect();
            checksum = client
                .split(' ')
                .find(|n| server.contains(n))
                .map(str::to_string);
        }
        let z = letters(&argv).contains('z');
        if z && !has("--new-compress") && !has("--old-compress") && !has("--compress-choice") {
            vstring(&t.s2c, &mut s);
            vstring(&t.c2s, &mut c);
        }
    }
    s += 4; // checksum seed
    let flist = if push {
        let mut data = if protocol >= 30 {
            tap::demux(&t.c2s[c..]).data
        } else {
            t.c2s[c..].to_vec()
        };
        if argv.iter().any(|a| a.starts_with("--delete")) {
            let mut at = 0;
            loop {
                let n = le32(&data, at) as usize;
                at += 4 + n;
                if n == 0 {
                    break;
                }
            }
            data.drain(..at);
        }
        data
    } else {
        tap::demux(&t.s2c[s..]).data
    };
    Capture {
        argv,
        protocol,
        compat,
        flist,
        checksum,
    }
}

fn options(c: &Capture) -> FlistOptions {
    let l = letters(&c.argv);
    let has = |ch| l.contains(ch);
    let checksum_len = if !has('c') {
        0
    } else if c.protocol < 30 {
        16
    } else {
        match c.checksum.as_deref().unwrap_or("md5") {
            "xxh3" | "xxh64" => 8,
            "sha1" => 20,
            _ => 16,
        }
    };
    FlistOptions {
        protocol: c.protocol,
        varint_flags: c.compat & 0x80 != 0,
        safe_flist: c.compat & 0x08 != 0 || c.protocol >= 31,
        inc_recurse: c.compat & 0x01 != 0,
        id0_names: c.compat & 0x100 != 0,
        preserve_uid: has('o'),
        preserve_gid: has('g'),
        preserve_links: has('l'),
        preserve_devices: has('D'),
        preserve_specials: has('D'),
        preserve_hard_links: has('H'),
        preserve_atimes: has('U'),
        numeric_ids: c.argv.iter().any(|a| a == "--numeric-ids"),
        checksum_len,
        preserve_xattrs: has('X'),
        preserve_acls: has('A'),
    }
}

/// What one capture's check found, for the summary.
struct Checked {
    entries: usize,
    bytes: usize,
}

fn check(name: &str) -> Checked {
    let c = load(name);
    let opts = options(&c);
    let data = &c.flist;
    let mut dec = FileListDecoder::new(opts, Limits::default());
    let mut at = 0;
    let mut entries: Vec<FileEntry> = Vec::new();
    loop {
        // A cut-off entry asks for more and changes nothing.
        if at + 1 < data.len() {
            let mut probe = dec.clone();
            if let Decoded::Done { used, .. } = probe.decode(&data[at..]).unwrap() {
                if used > 1 {
                    let r = dec
                        .decode(&data[at..at + used - 1])
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(
                        matches!(r, Decoded::NeedMore(_)),
                        "{name}: truncated entry decoded"
                    );
                }
            }
        }
        match dec
            .decode(&data[at..])
            .unwrap_or_else(|e| panic!("{name}: entry {} at {at:#x}: {e}", entries.len()))
        {
            Decoded::Done {
                value: Some(e),
                used,
            } => {
                at += used;
                entries.push(e);
            }
            Decoded::Done { value: None, used } => {
                at += used;
                break;
            }
            Decoded::NeedMore(_) => panic!("{name}: file list cut off"),
        }
    }
    let list_end = at;
    let mut enc = FileListEncoder::new(opts);
    let mut out = Vec::new();
    for e in &entries {
        enc.encode_entry(&mut out, e).unwrap();
    }
    enc.encode_end(&mut out, dec.io_error());
    if OLD_SENDERS.iter().any(|o| name.contains(o)) {
        let mut again = FileListDecoder::new(opts, Limits::default());
        let mut at2 = 0;
        let mut round = Vec::new();
        while let Decoded::Done {
            value: Some(e),
            used,
        } = again.decode(&out[at2..]).unwrap()
        {
            at2 += used;
            round.push(e);
        }
        assert_eq!(
            round, entries,
            "{name}: re-encoded entries differ in meaning"
        );
    } else {
        assert_eq!(
            hex(&out),
            hex(&data[..list_end]),
            "{name}: re-encoded file list differs"
        );
    }

    if !opts.inc_recurse && !opts.numeric_ids {
        let mut lists = Vec::new();
        for on in [opts.preserve_uid, opts.preserve_gid] {
            if !on {
                lists.push(Vec::new());
                continue;
            }
            let Decoded::Done { value, used } = decode_id_list(
                &data[at..],
                opts.protocol,
                opts.id0_names,
                &Limits::default(),
            )
            .unwrap() else {
                panic!("{name}: id list cut off")
            };
            let (pairs, id0) = if opts.id0_names {
                let (last, rest) = value.split_last().unwrap();
                (rest.to_vec(), Some(last.1.clone()))
            } else {
                (value.clone(), None)
            };
            let mut out = Vec::new();
            encode_id_list(&mut out, opts.protocol, &pairs, id0.as_deref());
            assert_eq!(hex(&out), hex(&data[at..at + used]), "{name}: id list");
            at += used;
            lists.push(pairs);
        }
        // The lists hold exactly the named non-zero ids in first-seen order.
        apply_id_names(&mut entries, &lists[0], &lists[1]);
        if opts.preserve_uid {
            assert_eq!(
                collect_uid_names(&entries),
                lists[0],
                "{name}: uid list order"
            );
        }
        if opts.preserve_gid {
            assert_eq!(
                collect_gid_names(&entries),
                lists[1],
                "{name}: gid list order"
            );
        }
    }
    if opts.protocol < 30 {
        assert_eq!(le32(data, at), 0, "{name}: io_error");
        at += 4;
    }
    Checked {
        entries: entries.len(),
        bytes: at,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_transfer_capture_round_trips() {
    let names = tap::transfer_vectors();
    assert!(names.len() >= 100, "captures missing: {}", names.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in &names {
        if SKIPPED.iter().any(|(n, _)| n == name) {
            continue;
        }
        let path = format!("transfer-vectors/{name}.tap");
        match std::panic::catch_unwind(|| check(&path)) {
            Ok(r) => {
                assert!(r.entries > 0 && r.bytes > 0);
                checked += 1;
            }
            Err(e) => failures.push(format!(
                "{name}: {}",
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "panic".into())
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
    assert_eq!(checked + SKIPPED.len(), names.len());
}

#[test]
fn session_captures_round_trip() {
    for name in SESSION {
        let r = check(&format!("{name}.tap"));
        assert!(r.entries > 0, "{name}");
    }
}

#[test]
fn coverage_of_the_captures() {
    // The set of captures exercises every feature the codec has.
    let mut seen = std::collections::BTreeSet::new();
    for name in tap::transfer_vectors() {
        if SKIPPED.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let c = load(&format!("transfer-vectors/{name}.tap"));
        let o = options(&c);
        seen.insert(format!("p{}", o.protocol));
        for (on, what) in [
            (o.varint_flags, "varint"),
            (!o.varint_flags && o.protocol >= 30, "byteflags30+"),
            (o.preserve_devices, "devices"),
            (o.preserve_hard_links, "hardlinks"),
            (o.preserve_atimes, "atimes"),
            (o.checksum_len > 0, "checksum"),
            (o.inc_recurse, "inc"),
            (o.id0_names && !o.inc_recurse, "id0"),
            (o.preserve_xattrs, "xattrs"),
        ] {
            if on {
                seen.insert(what.to_string());
            }
        }
    }
    for want in [
        "p27",
        "p28",
        "p29",
        "p30",
        "p31",
        "p32",
        "varint",
        "byteflags30+",
        "devices",
        "hardlinks",
        "atimes",
        "checksum",
        "inc",
        "id0",
        "xattrs",
    ] {
        assert!(seen.contains(want), "no capture covers {want}: {seen:?}");
    }
}

/// Decodes a capture's first list and returns its entries.
fn entries_of(name: &str) -> Vec<FileEntry> {
    let c = load(name);
    let mut dec = FileListDecoder::new(options(&c), Limits::default());
    let mut at = 0;
    let mut v = Vec::new();
    while let Decoded::Done {
        value: Some(e),
        used,
    } = dec.decode(&c.flist[at..]).unwrap()
    {
        at += used;
        v.push(e);
    }
    v
}

#[test]
fn devices_agree_across_protocols() {
    let dev = |p: &str| {
        let mut v: Vec<(Vec<u8>, u32, u32, u32)> =
            entries_of(&format!("transfer-vectors/pull-{p}-devices.tap"))
                .into_iter()
                .filter(|e| e.kind().is_some_and(|k| k.is_device() || k.is_special()))
                .map(|e| (e.name.clone(), e.mode, e.rdev().0, e.rdev().1))
                .collect();
        v.sort();
        v
    };
    let p31 = dev("p31");
    assert!(
        p31.iter().any(|d| d.2 != 0 || d.3 != 0),
        "no device numbers: {p31:?}"
    );
    for p in ["p27", "p29", "p30"] {
        assert_eq!(dev(p), p31, "{p}");
    }
}

#[test]
fn hard_links_and_atimes_decode() {
    // Protocol 30 and 32: one abbreviated follower naming its first entry.
    for p in ["p30", "p32"] {
        let e = entries_of(&format!("transfer-vectors/pull-{p}-extra-H.tap"));
        let followers: Vec<_> = e
            .iter()
            .filter(|e| e.hardlink().is_some_and(|h| h.first.is_some()))
            .collect();
        assert!(!followers.is_empty(), "{p}");
        for f in followers {
            let first = f.hardlink().unwrap().first.unwrap();
            let target = &e[(first - 1) as usize];
            assert_eq!(
                (target.size, target.mtime, target.mode),
                (f.size, f.mtime, f.mode),
                "{p}"
            );
        }
    }
    // Protocol 29: groups by (dev, ino).
    let e = entries_of("transfer-vectors/pull-p29-extra-H.tap");
    let mut pairs: Vec<_> = e
        .iter()
        .filter_map(|e| e.hardlink().map(|h| (h.dev, h.ino)))
        .collect();
    pairs.sort();
    assert!(pairs.windows(2).any(|w| w[0] == w[1]), "{pairs:?}");
    let e = entries_of("transfer-vectors/pull-p31-devices-atimes.tap");
    assert!(e.iter().any(|e| !e.is_dir() && e.atime != 0));
}

/// Reads one ndx as protocol >= 30 writes it (`prev` = [positive, negative]
/// running values), or `None` at the end of the data.
fn read_ndx(b: &[u8], at: &mut usize, prev: &mut [i32; 2]) -> Option<i32> {
    let byte = |at: &mut usize| {
        let v = b.get(*at).copied();
        *at += 1;
        v
    };
    let mut first = byte(at)?;
    if first == 0 {
        return Some(-1);
    }
    let neg = first == 0xff;
    if neg {
        first = byte(at)?;
    }
    let slot = usize::from(neg);
    let num = if first == 0xfe {
        let (b1, b2) = (byte(at)?, byte(at)?);
        if b1 & 0x80 != 0 {
            let (b3, b4) = (byte(at)?, byte(at)?);
            i32::from_le_bytes([b2, b3, b4, b1 & 0x7f])
        } else {
            (i32::from(b1) << 8) + i32::from(b2) + prev[slot]
        }
    } else {
        i32::from(first) + prev[slot]
    };
    prev[slot] = num;
    Some(if neg { -num } else { num })
}

#[test]
fn incremental_sub_lists_round_trip() {
    // Sub-lists announced right after the first list (before any file data)
    // are decoded with the same decoder and re-encoded with the same
    // encoder: the previous-value state and ndx_start carry over.
    let mut sub_lists = 0;
    let mut names = tap::transfer_vectors();
    names.retain(|n| !SKIPPED.iter().any(|(s, _)| s == n));
    for name in names {
        let c = load(&format!("transfer-vectors/{name}.tap"));
        let o = options(&c);
        if !o.inc_recurse {
            continue;
        }
        let data = &c.flist;
        let mut dec = FileListDecoder::new(o, Limits::default());
        let mut enc = FileListEncoder::new(o);
        let mut at = 0;
        let mut prev = [-1, 1];
        let mut list = 0;
        loop {
            let start = at;
            assert_eq!(dec.ndx_start(), enc.ndx_start(), "{name}");
            let entries = {
                let mut v = Vec::new();
                loop {
                    match dec
                        .decode(&data[at..])
                        .unwrap_or_else(|e| panic!("{name} list {list}: {e}"))
                    {
                        Decoded::Done {
                            value: Some(e),
                            used,
                        } => {
                            at += used;
                            v.push(e);
                        }
                        Decoded::Done { value: None, used } => {
                            at += used;
                            break;
                        }
                        Decoded::NeedMore(_) => panic!("{name}: cut off"),
                    }
                }
                v
            };
            let mut out = Vec::new();
            for e in &entries {
                enc.encode_entry(&mut out, e).unwrap();
            }
            enc.encode_end(&mut out, dec.io_error());
            assert_eq!(hex(&out), hex(&data[start..at]), "{name}: list {list}");
            if list > 0 {
                sub_lists += 1;
            }
            list += 1;
            match read_ndx(data, &mut at, &mut prev) {
                Some(n) if n <= -101 => {}
                _ => break,
            }
        }
    }
    eprintln!("{sub_lists} sub-lists checked");
    assert!(sub_lists >= 50, "only {sub_lists} sub-lists checked");
}
