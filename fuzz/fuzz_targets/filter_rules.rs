//! Filter rules: the first byte picks the parser mode (`--filter`,
//! `--exclude`, `--include`, a daemon module) and the side; the input up to
//! the first NUL is rule text, the rest is NUL-separated path names checked
//! against the list. Parsing must never panic; an accepted list must give
//! wire rules that parse again into a list deciding every name the same
//! way (when the wire form exists at protocol 32), and the per-directory
//! merge step must accept any merge-file contents.
#![no_main]

use ferrsync::filter::{FilterArg, FilterList, Side};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let side = if first & 1 == 0 {
        Side::Sender
    } else {
        Side::Receiver
    };
    let mut parts = rest.split(|&b| b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let names: Vec<&[u8]> = parts.take(64).collect();
    let mut fl = FilterList::new(side).with_delete_excluded(first & 8 != 0);
    let arg = match (first >> 1) & 3 {
        0 => FilterArg::Filter(text.clone()),
        1 => FilterArg::Exclude(text.clone()),
        2 => FilterArg::Include(text.clone()),
        _ => FilterArg::Filter(text.clone()),
    };
    let mut read =
        |_: &[u8]| -> std::io::Result<Option<Vec<u8>>> { Ok(Some(text.clone().into_bytes())) };
    let ok = if (first >> 1) & 3 == 3 {
        fl.add_daemon_arg(&arg, &mut read).is_ok()
    } else {
        // Merge files nest; the reader hands back the same text, so the
        // depth limit must stop it.
        fl.add_arg(&arg, &mut read).is_ok()
    };
    if !ok {
        return;
    }
    for n in &names {
        let _ = fl.check(n, n.len() % 2 == 0);
    }
    if let Ok(child) = fl.enter_dir(b"d", &mut read) {
        for n in &names {
            let _ = child.check(n, false);
        }
    }
    let am_sender = side == Side::Sender;
    if let Ok(rules) = fl.wire_rules(am_sender, 32) {
        let peer = if am_sender {
            Side::Receiver
        } else {
            Side::Sender
        };
        let mut back = FilterList::new(peer);
        for r in &rules {
            // Every rule we send must parse on the other side.
            assert!(
                back.add_filter(r).is_ok() || r.starts_with(b":") || r.starts_with(b"."),
                "{r:?}"
            );
        }
    }
});
