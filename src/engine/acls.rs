//! `-A` on the receiving side: the ids of received ACLs, mapped to local
//! ones once the id lists are in (upstream acls.c `match_acl_ids`).
//!
//! Layer: engine. Uses flist.

use super::local::IdMap;
use crate::flist::FileEntry;

/// The sender's user (`users`) or group ids named in the entries' ACLs,
/// in list order (repeats included).
pub(crate) fn acl_ids(entries: &[FileEntry], users: bool) -> impl Iterator<Item = u32> + '_ {
    entries
        .iter()
        .filter_map(|e| e.extra().acls.as_deref())
        .flat_map(|a| {
            a.access
                .names
                .iter()
                .chain(a.default.iter().flat_map(|d| &d.names))
        })
        .filter(move |n| n.is_user == users)
        .map(|n| n.id)
}

/// Replaces the sender's ids in the entries' ACLs by the local ones.
pub(crate) fn map_acl_ids(entries: &mut [FileEntry], ids: &IdMap) {
    for a in entries
        .iter_mut()
        .filter_map(|e| e.extra.as_deref_mut().and_then(|x| x.acls.as_deref_mut()))
    {
        for acl in std::iter::once(&mut a.access).chain(a.default.as_mut()) {
            for n in &mut acl.names {
                n.id = if n.is_user {
                    ids.uid(n.id)
                } else {
                    ids.gid(n.id)
                };
            }
            acl.sort_names();
        }
    }
}

/// Whether `rel` beneath `root` (with metadata `st`) needs `e`'s ACLs
/// applied, read through a handle opened beneath the root; an ACL that
/// cannot be read counts as differing (applying it reports why).
pub(crate) fn differs(
    e: &FileEntry,
    root: &crate::fs::beneath::Root,
    rel: &[u8],
    st: &std::fs::Metadata,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(a) = e.extra().acls.as_deref() else {
        return false;
    };
    match root.xattr_target(rel) {
        Ok(t) => crate::fs::acls::differs((&t).into(), a, e.mode, st.mode()).unwrap_or(true),
        Err(_) => true,
    }
}
