//! Reader for the "rsync tap log v1" captures in `shared/protocol/captures`.
//!
//! A capture holds both directions of a real rsync session as hex chunks.
//! This helper joins each direction into one byte stream and can split a
//! multiplexed stream into its data bytes and its messages.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One capture, both directions joined.
#[derive(Debug, Clone)]
pub struct Tap {
    /// `rsh` or `tcp`.
    pub transport: String,
    /// The server command line as recorded (JSON list, kept raw).
    pub argv_json: String,
    /// Client-to-server bytes in order.
    pub c2s: Vec<u8>,
    /// Server-to-client bytes in order.
    pub s2c: Vec<u8>,
}

/// Where the shared captures live: `$FERRSYNC_CAPTURES`, else
/// `../shared/protocol/captures` beside the crate.
pub fn captures_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FERRSYNC_CAPTURES") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/protocol/captures")
}

fn unhex(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    b.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Loads a capture by path (absolute, or relative to [`captures_dir`]).
pub fn load(name: &str) -> Tap {
    let path = if Path::new(name).is_absolute() { PathBuf::from(name) } else { captures_dir().join(name) };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tap = Tap { transport: String::new(), argv_json: String::new(), c2s: Vec::new(), s2c: Vec::new() };
    for line in text.lines() {
        let mut words = line.splitn(5, ' ');
        match words.next() {
            Some("TRANSPORT") => tap.transport = words.next().unwrap_or("").to_string(),
            Some("ARGV") => tap.argv_json = line["ARGV ".len()..].to_string(),
            Some("CHUNK") => {
                let _seq = words.next();
                let _ms = words.next();
                let dir = words.next().unwrap();
                let hex = words.next().unwrap_or("");
                let bytes = unhex(hex);
                match dir {
                    "C>S" => tap.c2s.extend(bytes),
                    "S>C" => tap.s2c.extend(bytes),
                    other => panic!("bad direction {other}"),
                }
            }
            _ => {}
        }
    }
    tap
}

/// A multiplexed stream split up: the concatenated MSG_DATA payloads, and
/// every other message as (code, payload).
#[derive(Debug, Default, Clone)]
pub struct Demuxed {
    /// All MSG_DATA bytes joined.
    pub data: Vec<u8>,
    /// Non-data messages in order: (MSG code, payload).
    pub msgs: Vec<(u8, Vec<u8>)>,
    /// Bytes left over that did not form a whole frame.
    pub trailing: Vec<u8>,
}

/// Splits `stream` (which must start at a frame boundary) into data and
/// messages. Frame header: little-endian u32, tag = (h >> 24) - 7, length =
/// h & 0xffffff.
pub fn demux(stream: &[u8]) -> Demuxed {
    let mut out = Demuxed::default();
    let mut i = 0;
    while i + 4 <= stream.len() {
        let h = u32::from_le_bytes([stream[i], stream[i + 1], stream[i + 2], stream[i + 3]]);
        let code = ((h >> 24) as u8).wrapping_sub(7);
        let len = (h & 0xff_ffff) as usize;
        if i + 4 + len > stream.len() {
            break;
        }
        let payload = &stream[i + 4..i + 4 + len];
        if code == 0 {
            out.data.extend_from_slice(payload);
        } else {
            out.msgs.push((code, payload.to_vec()));
        }
        i += 4 + len;
    }
    out.trailing = stream[i..].to_vec();
    out
}

/// Names of all transfer captures (without extension).
pub fn transfer_vectors() -> Vec<String> {
    let dir = captures_dir().join("transfer-vectors");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            n.strip_suffix(".tap").map(str::to_string)
        })
        .collect();
    v.sort();
    v
}
