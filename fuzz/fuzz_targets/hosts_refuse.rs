//! Daemon access lists and refused options: the input, split at NUL, is a
//! `hosts allow` value, a `refuse options` list and argument words.
//! `HostList::parse`, `allow_access` for a few addresses and
//! `first_refused` must never panic.
#![no_main]

use std::net::IpAddr;

use ferrsync::daemon::hosts::{HostList, allow_access};
use ferrsync::daemon::refuse::first_refused;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let hosts = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let refuse = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let words = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    if let Ok(list) = HostList::parse(&hosts) {
        let none = HostList::parse("").unwrap_or_else(|_| list.clone());
        for a in ["127.0.0.1", "10.1.2.3", "::1", "fe80::1"] {
            let addr: IpAddr = a.parse().unwrap();
            let _ = list.matches(addr, Some("host.example.org"));
            let _ = allow_access(&list, &none, addr, None);
            let _ = allow_access(&none, &list, addr, Some("h"));
        }
    }
    let patterns: Vec<String> = refuse.split_whitespace().take(64).map(String::from).collect();
    let argv: Vec<String> = words.split('\n').take(256).map(String::from).collect();
    let _ = first_refused(&patterns, &argv);
});
