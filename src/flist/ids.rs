//! uid/gid name lists sent after a non-incremental file list, and helpers
//! to collect and apply them.
//!
//! Layer: flist (L2). Uses `wire` only; does no I/O.
//! Mirrors upstream uidlist.c (`add_uid`, `send_one_list`, `recv_id_list`).
//!
//! ```
//! use ferrsync::flist::{decode_id_list, encode_id_list};
//! use ferrsync::wire::{Decoded, Limits};
//! let mut out = Vec::new();
//! encode_id_list(&mut out, 31, &[(65534, b"nobody".to_vec())], Some(b"root"));
//! assert_eq!(out, b"\xc0\xfe\xff\x06nobody\x00\x04root");
//! let Decoded::Done { value, used } = decode_id_list(&out, 31, true, &Limits::default()).unwrap() else { panic!() };
//! assert_eq!(used, out.len());
//! assert_eq!(value, vec![(65534, b"nobody".to_vec()), (0, b"root".to_vec())]);
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use super::codec::take;
use super::entry::FileEntry;
use crate::wire::{DecodeError, Decoded, Limits, ReadError, Reader, check_len, encode_varint30};

/// An id list: (id, name) pairs (the same type as `Vec<(u32, Vec<u8>)>`).
pub type IdNames = Vec<(u32, Vec<u8>)>;

fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    let n = name.get(..name.len().min(255)).unwrap_or_default();
    out.push(n.len() as u8);
    out.extend_from_slice(n);
}

/// Appends one id list: `varint30 id, byte length, name` for every pair
/// with a non-zero id, then `varint30 0`, then (when `CF_ID0_NAMES` was
/// negotiated, pass `Some`) the length byte and name of id 0, possibly empty.
/// Names are cut at 255 bytes.
pub fn encode_id_list(
    out: &mut Vec<u8>,
    protocol: u8,
    ids: &[(u32, Vec<u8>)],
    id0_name: Option<&[u8]>,
) {
    for (id, name) in ids {
        if *id != 0 {
            encode_varint30(out, protocol, *id as i32);
            push_name(out, name);
        }
    }
    encode_varint30(out, protocol, 0);
    if let Some(n) = id0_name {
        push_name(out, n);
    }
}

/// Decodes one id list. With `id0_names` the last pair is `(0, name of id
/// 0)` (the name may be empty).
///
/// # Errors
/// [`DecodeError::TooLong`] when a name exceeds `limits.max_id_name_len` or
/// the list has more than `limits.max_flist_entries` ids.
pub fn decode_id_list(
    buf: &[u8],
    protocol: u8,
    id0_names: bool,
    limits: &Limits,
) -> Result<Decoded<IdNames>, DecodeError> {
    let mut r = Reader::new(buf);
    match read_list(&mut r, protocol, id0_names, limits) {
        Ok(v) => Ok(Decoded::Done {
            value: v,
            used: r.used(),
        }),
        Err(e) => e.into_decoded(),
    }
}

fn read_list(
    r: &mut Reader<'_>,
    protocol: u8,
    id0_names: bool,
    limits: &Limits,
) -> Result<IdNames, ReadError> {
    let mut v = Vec::new();
    loop {
        let id = r.varint30(protocol)?;
        if id == 0 {
            break;
        }
        check_len("id list", v.len() as u64 + 1, limits.max_flist_entries)?;
        let n = check_len(
            "user or group name",
            u64::from(r.u8()?),
            limits.max_id_name_len,
        )?;
        v.push((id as u32, take(r, n)?.to_vec()));
    }
    if id0_names {
        let n = check_len(
            "user or group name",
            u64::from(r.u8()?),
            limits.max_id_name_len,
        )?;
        v.push((0, take(r, n)?.to_vec()));
    }
    Ok(v)
}

/// The pairs upstream puts in an id list, in its order: every non-zero id
/// in first-seen (sending) order that has a name. `id_of` picks the uid or
/// gid of an entry, `lookup` gives a name for an id.
pub fn collect_id_names(
    entries: &[FileEntry],
    id_of: impl Fn(&FileEntry) -> u32,
    mut lookup: impl FnMut(u32) -> Option<Vec<u8>>,
) -> Vec<(u32, Vec<u8>)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in entries {
        let id = id_of(e);
        if id != 0 && seen.insert(id) {
            if let Some(n) = lookup(id) {
                out.push((id, n));
            }
        }
    }
    out
}

/// [`collect_id_names`] for uids, naming each id by the `user_name` of the
/// first entry that carries it.
#[must_use]
pub fn collect_uid_names(entries: &[FileEntry]) -> Vec<(u32, Vec<u8>)> {
    let names: HashMap<u32, Vec<u8>> = entries
        .iter()
        .rev()
        .filter_map(|e| Some((e.uid, e.user_name.as_deref()?.to_vec())))
        .collect();
    collect_id_names(entries, |e| e.uid, |id| names.get(&id).cloned())
}

/// [`collect_id_names`] for gids, naming each id by `group_name`.
#[must_use]
pub fn collect_gid_names(entries: &[FileEntry]) -> Vec<(u32, Vec<u8>)> {
    let names: HashMap<u32, Vec<u8>> = entries
        .iter()
        .rev()
        .filter_map(|e| Some((e.gid, e.group_name.as_deref()?.to_vec())))
        .collect();
    collect_id_names(entries, |e| e.gid, |id| names.get(&id).cloned())
}

/// Fills `user_name` / `group_name` of received entries from decoded id
/// lists (the receiving side of a non-incremental transfer). The id-0 pair,
/// if present, names id 0.
pub fn apply_id_names(entries: &mut [FileEntry], uids: &[(u32, Vec<u8>)], gids: &[(u32, Vec<u8>)]) {
    // One shared copy of each name, however many entries carry it.
    let u: HashMap<u32, Arc<[u8]>> = uids.iter().map(|(i, n)| (*i, Arc::from(&n[..]))).collect();
    let g: HashMap<u32, Arc<[u8]>> = gids.iter().map(|(i, n)| (*i, Arc::from(&n[..]))).collect();
    for e in entries {
        if let Some(n) = u.get(&e.uid) {
            e.user_name = Some(Arc::clone(n));
        }
        if let Some(n) = g.get(&e.gid) {
            e.group_name = Some(Arc::clone(n));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lists_from_captures() {
        let rows: &[(u8, bool, &[u8], IdNames)] = &[
            (29, false, b"\0\0\0\0", vec![]),
            (
                31,
                true,
                b"\xc0\xfe\xff\x07nogroup\x00\x04root",
                vec![(65534, b"nogroup".to_vec()), (0, b"root".to_vec())],
            ),
            (
                29,
                false,
                b"\xfe\xff\0\0\x06nobody\0\0\0\0",
                vec![(65534, b"nobody".to_vec())],
            ),
        ];
        for (p, id0, bytes, want) in rows {
            let got = decode_id_list(bytes, *p, *id0, &Limits::default()).unwrap();
            assert_eq!(
                got,
                Decoded::Done {
                    value: want.clone(),
                    used: bytes.len()
                }
            );
            let (list, id0_name) = if *id0 {
                let (last, rest) = want.split_last().unwrap();
                (rest.to_vec(), Some(last.1.as_slice()))
            } else {
                (want.clone(), None)
            };
            let mut out = Vec::new();
            encode_id_list(&mut out, *p, &list, id0_name);
            assert_eq!(out, *bytes);
            for cut in 0..bytes.len() {
                assert!(matches!(
                    decode_id_list(&bytes[..cut], *p, *id0, &Limits::default()),
                    Ok(Decoded::NeedMore(_))
                ));
            }
        }
    }

    #[test]
    fn collect_in_first_seen_order() {
        let e = |uid: u32, name: Option<&str>| FileEntry {
            uid,
            user_name: name.map(|n| Arc::from(n.as_bytes())),
            ..FileEntry::default()
        };
        let entries = [
            e(0, Some("root")),
            e(7, Some("seven")),
            e(3, None),
            e(5, Some("five")),
            e(7, Some("seven")),
        ];
        assert_eq!(
            collect_uid_names(&entries),
            vec![(7, b"seven".to_vec()), (5, b"five".to_vec())]
        );
    }
}
