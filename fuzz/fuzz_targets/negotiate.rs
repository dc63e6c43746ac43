//! Capability and name negotiation: the input, split at NUL, gives the
//! `-e` capability string, a checksum name list and a compression name
//! list as a peer would send them. `Capabilities::parse` and the compat
//! flags derived from it, `names_from_list`, `choose_as_client` and
//! `choose_as_server` must never panic, and a chosen name must be one of
//! ours.
#![no_main]

use ferrsync::wire::{
    CHECKSUM_NAMES, COMPRESS_NAMES, Capabilities, choose_as_client, choose_as_server,
    names_from_list, negotiation_failed,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let caps = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let sums = parts.next().unwrap_or_default();
    let comps = parts.next().unwrap_or_default();
    let c = Capabilities::parse(&caps);
    for allow in [false, true] {
        for st in [false, true] {
            let _ = c.server_compat_flags(allow, st);
        }
    }
    for (all, list) in [(CHECKSUM_NAMES, sums), (COMPRESS_NAMES, comps)] {
        let _ = names_from_list(&String::from_utf8_lossy(list), all);
        for chosen in [choose_as_client(all, list), choose_as_server(all, list)]
            .into_iter()
            .flatten()
        {
            assert!(all.contains(&chosen));
        }
        let _ = negotiation_failed("checksum", "md5 md4", list);
    }
});
