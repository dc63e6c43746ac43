//! Path sanitising: the daemon's `sanitize` (rsync's `sanitize_path`) and
//! the file-list name check `check_safe_name`. A sanitised path never has
//! a `..` or empty component, never starts with `/`, and is a fixed
//! point; a name the check accepts has no `..` component, no NUL, and is
//! not absolute.
#![no_main]

use ferrsync::daemon::serve::sanitize;
use ferrsync::flist::check_safe_name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s = sanitize(&text);
    assert!(!s.starts_with('/'), "{text:?} -> {s:?}");
    for c in s.trim_end_matches('/').split('/') {
        assert!(c != ".." && (c != "." || s == "."), "{text:?} -> {s:?}");
        assert!(!c.is_empty() || s.is_empty(), "{text:?} -> {s:?}");
    }
    assert_eq!(sanitize(&s), s, "not a fixed point: {text:?}");
    if check_safe_name(data).is_ok() {
        assert!(!data.contains(&0));
        assert!(!data.starts_with(b"/"), "{data:?}");
        assert!(!data.split(|b| *b == b'/').any(|c| c == b".."), "{data:?}");
    }
});
