//! The session layer against real rsync captures.
//!
//! For every remote-shell capture (`NN-*.tap` with `TRANSPORT rsh` and every
//! `transfer-vectors/*.tap`) and every daemon capture that reaches the binary
//! part, decode the binary handshake with the `wire` codecs (versions,
//! compat flags, checksum and compression lists, seed), re-encode it and
//! compare bytes, then split the rest of each multiplexed direction into
//! frames with `MuxDecoder` and check that the whole stream is consumed. The
//! negotiated names are compared with what the capture's `.txt` reports, and
//! the file indexes listed in the transfer decodes are decoded and
//! re-encoded with `NdxDecoder`/`NdxEncoder`.

use crate::common;

use common::tap::{self, Tap};
use ferrsync::wire::{
    CHECKSUM_NAMES, COMPRESS_NAMES, CompatFlags, Decoded, Limits, MsgCode, MuxDecoder, NdxDecoder,
    NdxEncoder, ProtocolVersion, Reader, choose_as_client, choose_as_server, encode_frame_header,
    encode_i32, encode_varint, encode_vstring,
};

/// A minimal reader for the `ARGV` line: a JSON array of plain strings.
fn parse_argv(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = json
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some(other) => word.push(other),
                    None => {}
                },
                _ => word.push(c),
            }
        }
        out.push(word);
    }
    out
}

/// The short-option cluster's letters before the `e` capability value.
fn short_flags(args: &[String]) -> String {
    args.iter()
        .find(|a| a.starts_with('-') && !a.starts_with("--"))
        .map(|a| {
            a.trim_start_matches('-')
                .split('e')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

fn has_word(args: &[String], prefixes: &[&str]) -> bool {
    args.iter()
        .any(|a| prefixes.iter().any(|p| a.starts_with(p)))
}

/// What the argument list says about checksum and compression.
#[derive(Debug)]
struct ArgChoices {
    checksum: Option<String>,
    compress: Option<String>,
    compress_requested: bool,
}

fn arg_choices(args: &[String]) -> ArgChoices {
    let value = |prefixes: &[&str]| {
        args.iter().find_map(|a| {
            prefixes
                .iter()
                .find_map(|p| a.strip_prefix(p))
                .map(str::to_string)
        })
    };
    let checksum = value(&["--checksum-choice=", "--cc="])
        .map(|v| v.split(',').next().unwrap_or("").to_string());
    let compress = value(&["--compress-choice=", "--zc="]).or_else(|| {
        if has_word(args, &["--new-compress"]) {
            Some("zlibx".into())
        } else if has_word(args, &["--old-compress"]) {
            Some("zlib".into())
        } else {
            None
        }
    });
    ArgChoices {
        checksum,
        compress,
        compress_requested: short_flags(args).contains('z'),
    }
}

/// The binary handshake as decoded.
#[derive(Debug, Default)]
struct Handshake {
    versions: Option<(i32, i32)>,
    protocol: u8,
    compat: Option<i32>,
    client_lists: Vec<Vec<u8>>,
    server_lists: Vec<Vec<u8>>,
    seed: i32,
    /// Where the handshake ends in each direction (C>S, S>C).
    c2s_end: usize,
    s2c_end: usize,
}

/// Reads NUL-terminated words until an empty one.
fn nul_words(r: &mut Reader<'_>) -> Vec<String> {
    let mut words = Vec::new();
    loop {
        let rest = r.remaining();
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .expect("unterminated word");
        let word = r.bytes(n + 1).unwrap();
        if n == 0 {
            return words;
        }
        words.push(String::from_utf8_lossy(&word[..n]).into_owned());
    }
}

/// Steps 2..5 of the handshake (compat flags, name lists, seed), starting
/// at `c2s`/`s2c` positions, re-encoded and compared.
fn setup_rest(
    hs: &mut Handshake,
    args: &[String],
    c2s: &[u8],
    s2c: &[u8],
    c_at: usize,
    s_at: usize,
    name: &str,
) {
    let max = Limits::default().max_vstring_len;
    let mut rc = Reader::new(&c2s[c_at..]);
    let mut rs = Reader::new(&s2c[s_at..]);
    let proto = ProtocolVersion(hs.protocol);
    let mut c_expect = Vec::new();
    let mut s_expect = Vec::new();
    let mut compat = CompatFlags::default();
    if proto.has_compat_flags() {
        let v = rs.varint().unwrap();
        encode_varint(&mut s_expect, v);
        hs.compat = Some(v);
        compat = CompatFlags(u32::try_from(v).expect("negative compat flags"));
    }
    let choices = arg_choices(args);
    if compat.contains(CompatFlags::VARINT_FLIST_FLAGS) {
        let mut kinds = Vec::new();
        if choices.checksum.is_none() {
            kinds.push("checksum");
        }
        if choices.compress_requested && choices.compress.is_none() {
            kinds.push("compress");
        }
        for _ in &kinds {
            let c = rc
                .vstring(max)
                .unwrap_or_else(|e| panic!("{name}: client list: {e:?}"));
            let s = rs
                .vstring(max)
                .unwrap_or_else(|e| panic!("{name}: server list: {e:?}"));
            encode_vstring(&mut c_expect, &c).unwrap();
            encode_vstring(&mut s_expect, &s).unwrap();
            hs.client_lists.push(c);
            hs.server_lists.push(s);
        }
    }
    hs.seed = rs.i32().unwrap();
    encode_i32(&mut s_expect, hs.seed);
    hs.c2s_end = c_at + rc.used();
    hs.s2c_end = s_at + rs.used();
    assert_eq!(
        &c2s[c_at..hs.c2s_end],
        &c_expect[..],
        "{name}: C>S handshake re-encoding"
    );
    assert_eq!(
        &s2c[s_at..hs.s2c_end],
        &s_expect[..],
        "{name}: S>C handshake re-encoding"
    );
}

/// A remote-shell session: optional secluded args, both version ints, then
/// the rest. Returns the handshake and the effective argument list.
fn rsh_handshake(t: &Tap, name: &str) -> (Handshake, Vec<String>) {
    let mut args = parse_argv(&t.argv_json);
    let mut rc = Reader::new(&t.c2s);
    if short_flags(&args).contains('s') {
        let words = nul_words(&mut rc);
        assert_eq!(
            words.first().map(String::as_str),
            Some("rsync"),
            "{name}: secluded argv[0]"
        );
        args.extend(words);
    }
    let start = rc.used();
    let client = rc.i32().unwrap();
    let mut rs = Reader::new(&t.s2c);
    let server = rs.i32().unwrap();
    let mut again = Vec::new();
    encode_i32(&mut again, client);
    assert_eq!(&t.c2s[start..start + 4], &again[..]);
    let p = ProtocolVersion::negotiate(u8::try_from(server).unwrap(), client).unwrap();
    assert_eq!(
        p,
        ProtocolVersion::negotiate(u8::try_from(client).unwrap(), server).unwrap(),
        "{name}"
    );
    let mut hs = Handshake {
        versions: Some((client, server)),
        protocol: p.0,
        ..Handshake::default()
    };
    setup_rest(&mut hs, &args, &t.c2s, &t.s2c, rc.used(), rs.used(), name);
    (hs, args)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn greeting_version(stream: &[u8]) -> u8 {
    let line = &stream[..find(stream, b"\n").unwrap()];
    let text = std::str::from_utf8(line)
        .unwrap()
        .strip_prefix("@RSYNCD: ")
        .unwrap();
    text.split('.').next().unwrap().parse().unwrap()
}

/// A daemon session: greetings, then (after `@RSYNCD: OK` and the argument
/// words) the handshake without version ints. `None` when the capture
/// never reaches the binary part.
fn daemon_handshake(t: &Tap, name: &str) -> Option<(Handshake, Vec<String>)> {
    let s_at = find(&t.s2c, b"@RSYNCD: OK\n")? + b"@RSYNCD: OK\n".len();
    let args_at = find(&t.c2s, b"--server")?;
    let p = greeting_version(&t.c2s).min(greeting_version(&t.s2c));
    let mut rc = Reader::new(&t.c2s[args_at..]);
    let args = if p >= 30 {
        nul_words(&mut rc)
    } else {
        let mut words = Vec::new();
        loop {
            let n = rc.remaining().iter().position(|&b| b == b'\n').unwrap();
            let w = rc.bytes(n + 1).unwrap();
            if n == 0 {
                break words;
            }
            words.push(String::from_utf8_lossy(&w[..n]).into_owned());
        }
    };
    let mut hs = Handshake {
        protocol: p,
        ..Handshake::default()
    };
    setup_rest(
        &mut hs,
        &args,
        &t.c2s,
        &t.s2c,
        args_at + rc.used(),
        s_at,
        name,
    );
    Some((hs, args))
}

/// Splits `stream` into frames, re-encodes each header and checks that the
/// whole stream is used. `raw_after_first` skips raw NUL-terminated names
/// after the first frame (`--files-from` forwarding below protocol 31).
fn demux_all(
    stream: &[u8],
    name: &str,
    dir: &str,
    raw_after_first: bool,
) -> (Vec<u8>, Vec<(MsgCode, Vec<u8>)>) {
    let mut dec = MuxDecoder::new(Limits::default());
    let mut data = Vec::new();
    let mut msgs = Vec::new();
    let mut pos = 0;
    let mut frames = 0;
    while pos < stream.len() {
        if raw_after_first && frames == 1 {
            let mut r = Reader::new(&stream[pos..]);
            let names = nul_words(&mut r);
            assert!(!names.is_empty(), "{name}: no raw files-from names");
            pos += r.used();
            frames += 1;
            continue;
        }
        match dec.decode(&stream[pos..]) {
            Ok(Decoded::Done { value, used }) => {
                let mut again = Vec::new();
                encode_frame_header(&mut again, value.code, value.payload.len());
                again.extend_from_slice(value.payload);
                assert_eq!(
                    again,
                    &stream[pos..pos + used],
                    "{name} {dir}: frame re-encoding"
                );
                if value.code == MsgCode::Data {
                    data.extend_from_slice(value.payload);
                } else {
                    msgs.push((value.code, value.payload.to_vec()));
                }
                pos += used;
                frames += 1;
            }
            Ok(Decoded::NeedMore(n)) => {
                panic!("{name} {dir}: stream ends {n} bytes short at {pos:#x}")
            }
            Err(e) => panic!("{name} {dir}: frame at {pos:#x}: {e}"),
        }
    }
    (data, msgs)
}

/// The names the capture's decode reports: (checksum, compression).
fn reported_choices(txt: &str) -> Option<(String, String)> {
    let field = |key: &str| {
        txt.lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .map(|v| v.trim_start_matches([' ', ':']))
            })
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string)
    };
    if let (Some(c), Some(z)) = (
        field("checksum             "),
        field("compression          "),
    ) {
        return Some((c, if z == "off" { "none".into() } else { z }));
    }
    // Transfer decodes: "=> transfer checksum md5 (16 bytes), ..., compression none".
    let line = txt.lines().find(|l| l.contains("=> transfer checksum"))?;
    let after = |k: &str| {
        line.split(k)
            .nth(1)?
            .split([' ', ','])
            .find(|w| !w.is_empty())
            .map(str::to_string)
    };
    Some((after("transfer checksum ")?, after("compression ")?))
}

/// Our reading of the handshake: the checksum and compression in force.
fn derived_choices(hs: &Handshake, args: &[String], name: &str) -> (String, String) {
    let ch = arg_choices(args);
    let mut lists = hs.client_lists.iter().zip(&hs.server_lists);
    let mut pick = |table: &[&str]| {
        let (client, server) = lists.next()?;
        let client_words: Vec<&str> = std::str::from_utf8(client).unwrap().split(' ').collect();
        let server_words: Vec<&str> = std::str::from_utf8(server).unwrap().split(' ').collect();
        let as_client = choose_as_client(&client_words, server);
        // A ferrsync server would agree with the client.
        assert_eq!(
            choose_as_server(&server_words, client),
            as_client,
            "{name}: server rule"
        );
        // And both sides pick something from the canonical tables.
        assert!(
            as_client.is_some_and(|n| table.contains(&n)),
            "{name}: {as_client:?}"
        );
        as_client.map(str::to_string)
    };
    let checksum = match &ch.checksum {
        Some(c) => c.clone(),
        None => pick(CHECKSUM_NAMES).unwrap_or_else(|| {
            if ProtocolVersion(hs.protocol).uses_varint() {
                "md5"
            } else {
                "md4"
            }
            .into()
        }),
    };
    let compress = match (&ch.compress, ch.compress_requested) {
        (Some(c), _) => c.clone(),
        (None, false) => "none".into(),
        (None, true) => pick(COMPRESS_NAMES).unwrap_or_else(|| "zlib".into()),
    };
    (checksum, compress)
}

/// Full check of one capture; returns the handshake and demultiplexed data.
fn check_capture(path: &str) -> Option<(Handshake, Vec<u8>, Vec<u8>)> {
    let t = tap::load(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    let argv = parse_argv(&t.argv_json);
    let daemon = t.transport == "tcp" || argv.iter().any(|a| a == "--daemon");
    let (hs, args) = if daemon {
        daemon_handshake(&t, name)?
    } else {
        rsh_handshake(&t, name)
    };
    let proto = ProtocolVersion(hs.protocol);
    let (s_data, _) = demux_all(&t.s2c[hs.s2c_end..], name, "S>C", false);
    let c_rest = &t.c2s[hs.c2s_end..];
    let c_data = if proto.muxes_client_output() {
        let files_from_raw = hs.protocol < 31 && has_word(&args, &["--files-from=-"]);
        demux_all(c_rest, name, "C>S", files_from_raw).0
    } else {
        c_rest.to_vec()
    };
    let txt_path = tap::captures_dir().join(path.replace(".tap", ".txt"));
    let txt = std::fs::read_to_string(&txt_path).unwrap();
    let want = reported_choices(&txt).unwrap_or_else(|| panic!("{name}: .txt names no checksum"));
    assert_eq!(
        derived_choices(&hs, &args, name),
        want,
        "{name}: negotiated names"
    );
    Some((hs, s_data, c_data))
}

fn session_captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tap::captures_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tap") && n.as_bytes().first().is_some_and(u8::is_ascii_digit))
        .collect();
    v.sort();
    v
}

#[test]
fn every_session_capture_handshake_and_frames() {
    let mut rsh = 0;
    let mut daemon = Vec::new();
    for name in session_captures() {
        let t = tap::load(&name);
        match check_capture(&name) {
            Some((hs, _, _)) if t.transport == "rsh" && hs.versions.is_some() => rsh += 1,
            Some(_) => daemon.push(name),
            None => assert_eq!(
                t.transport, "tcp",
                "{name}: rsh capture without a handshake"
            ),
        }
    }
    assert_eq!(rsh, 18, "remote-shell captures checked");
    eprintln!("daemon captures checked: {daemon:?}");
    for must in [
        "02-daemon-pull.tap",
        "03-daemon-push-auth.tap",
        "12-rsh-daemon-pull.tap",
    ] {
        assert!(
            daemon.iter().any(|d| d == must),
            "{must} not checked: {daemon:?}"
        );
    }
}

#[test]
fn every_transfer_capture_handshake_and_frames() {
    let names = tap::transfer_vectors();
    assert!(names.len() > 100);
    for n in names {
        check_capture(&format!("transfer-vectors/{n}.tap")).expect(&n);
    }
}

#[test]
fn handshake_values_of_known_captures() {
    // (capture, versions, compat, seed, client lists, server lists)
    type Row = (
        &'static str,
        Option<(i32, i32)>,
        Option<i32>,
        u32,
        &'static [&'static str],
        &'static [&'static str],
    );
    const C: &str = "xxh128 xxh3 xxh64 md5 md4 sha1";
    const S: &str = "xxh128 xxh3 xxh64 md5 md4 sha1 none";
    let rows: &[Row] = &[
        (
            "08-rsh-pull-p32.tap",
            Some((32, 32)),
            Some(0x1ff),
            0x6b1c_5076,
            &[C],
            &[S],
        ),
        (
            "09-rsh-pull-p32-secluded-args.tap",
            Some((32, 32)),
            Some(0x1ff),
            0x6b1c_bb39,
            &[C],
            &[S],
        ),
        (
            "10-rsh-pull-p32-zstd.tap",
            Some((32, 32)),
            Some(0x1ff),
            0x6b1c_aa7c,
            &[C, "zstd lz4 zlibx zlib"],
            &[S, "zstd lz4 zlibx zlib none"],
        ),
        (
            "18-rsh-pull-p30-files-from.tap",
            Some((30, 32)),
            Some(0x1fe),
            0x6b1c_f989,
            &[C],
            &[S],
        ),
        (
            "24-rsh-pull-client300.tap",
            None,
            Some(0x07),
            0x6b1c_e755,
            &[],
            &[],
        ),
        ("23-rsh-pull-p27.tap", None, None, 0x6b1c_e912, &[], &[]),
        (
            "02-daemon-pull.tap",
            None,
            Some(0x1ff),
            0x6b1c_38ad,
            &[C],
            &[S],
        ),
        (
            "16-daemon-refused-option.tap",
            None,
            Some(0x06),
            0x6b1c_fd87,
            &[],
            &[],
        ),
        (
            "transfer-vectors/pull-p32-main-none-md5.tap",
            Some((32, 32)),
            Some(0x1ff),
            0x6b01_9d07,
            &[],
            &[],
        ),
    ];
    for &(name, versions, compat, seed, cl, sl) in rows {
        let (hs, _, _) = check_capture(name).unwrap();
        if versions.is_some() {
            assert_eq!(hs.versions, versions, "{name}");
        }
        assert_eq!(hs.compat, compat, "{name}");
        assert_eq!(hs.seed.to_le_bytes(), seed.to_le_bytes(), "{name}");
        let text = |l: &Vec<Vec<u8>>| {
            l.iter()
                .map(|v| String::from_utf8(v.clone()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(text(&hs.client_lists), cl, "{name}");
        assert_eq!(text(&hs.server_lists), sl, "{name}");
    }
}

/// The ndx lines of a transfer decode's two data-stream sections:
/// (S>C?, offset in the data stream, bytes, value).
fn listed_ndx(txt: &str) -> Vec<(bool, usize, Vec<u8>, i32)> {
    let mut out = Vec::new();
    let mut section = None;
    for line in txt.lines() {
        if line.starts_with("SENDER -> RECEIVER") || line.starts_with("GENERATOR -> SENDER") {
            section = Some(line.contains("(S>C"));
            continue;
        }
        let (Some(s2c), Some((off, rest))) = (section, line.split_once("  ")) else {
            continue;
        };
        let Some((hex, what)) = rest.split_once("  ndx ") else {
            continue;
        };
        let Ok(off) = usize::from_str_radix(off, 16) else {
            continue;
        };
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        let word = what.split_whitespace().next().unwrap();
        let value = if word == "NDX_DONE" {
            -1
        } else {
            word.parse().unwrap()
        };
        out.push((s2c, off, bytes, value));
    }
    out
}

#[test]
fn ndx_of_first_requests_in_pull_p32_main_none_md5() {
    let (hs, s_data, c_data) =
        check_capture("transfer-vectors/pull-p32-main-none-md5.tap").unwrap();
    // 02-transfer sections 3.1 and 4.2: after the 4-byte empty filter list
    // the generator asks for ndx 0 (iflags 0x0008) then ndx 2 (0x800c) with
    // the sum header count 9, blength 700, s2length 2, remainder 400.
    let mut ndx = NdxDecoder::new(hs.protocol);
    let mut r = Reader::new(&c_data);
    assert_eq!(r.i32().unwrap(), 0);
    let mut next = |r: &mut Reader<'_>| match ndx.decode(r.remaining()).unwrap() {
        Decoded::Done { value, used } => {
            r.bytes(used).unwrap();
            value
        }
        Decoded::NeedMore(n) => panic!("short by {n}"),
    };
    assert_eq!((next(&mut r), r.u16().unwrap()), (0, 0x0008));
    assert_eq!((next(&mut r), r.u16().unwrap()), (2, 0x800c));
    assert_eq!(
        [
            r.i32().unwrap(),
            r.i32().unwrap(),
            r.i32().unwrap(),
            r.i32().unwrap()
        ],
        [9, 700, 2, 400]
    );
    // The sender's side starts with the sub-list announcement and end marker.
    let mut s = NdxDecoder::new(hs.protocol);
    assert_eq!(
        s.decode(&s_data[0x78..]).unwrap(),
        Decoded::Done {
            value: -102,
            used: 2
        }
    );
    assert_eq!(
        s.decode(&s_data[0x7c..]).unwrap(),
        Decoded::Done { value: -2, used: 6 }
    );
}

#[test]
fn every_listed_ndx_decodes_and_reencodes() {
    let mut checked = 0;
    for n in tap::transfer_vectors() {
        let path = format!("transfer-vectors/{n}.tap");
        let (hs, s_data, c_data) = check_capture(&path).unwrap();
        let txt = std::fs::read_to_string(tap::captures_dir().join(path.replace(".tap", ".txt")))
            .unwrap();
        let mut dec = [NdxDecoder::new(hs.protocol), NdxDecoder::new(hs.protocol)];
        let mut enc = [NdxEncoder::new(hs.protocol), NdxEncoder::new(hs.protocol)];
        for (s2c, off, bytes, value) in listed_ndx(&txt) {
            let (data, i) = if s2c { (&s_data, 0) } else { (&c_data, 1) };
            let got = dec[i].decode(&data[off..]).unwrap();
            assert_eq!(
                got,
                Decoded::Done {
                    value,
                    used: bytes.len()
                },
                "{n} at {off:#x}"
            );
            assert_eq!(&data[off..off + bytes.len()], &bytes[..], "{n} at {off:#x}");
            let mut again = Vec::new();
            enc[i].encode(&mut again, value);
            assert_eq!(again, bytes, "{n} at {off:#x}: re-encoding");
            checked += 1;
        }
    }
    eprintln!("{checked} indexes checked");
    assert!(checked > 2000, "only {checked} indexes checked");
}
