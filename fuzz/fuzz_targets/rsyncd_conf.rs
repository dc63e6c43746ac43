//! The `rsyncd.conf` parser: any text. `DaemonConfig::parse` must never
//! panic; a config it accepts renders (`to_conf_string`) to text that
//! parses again to the same modules and global section, unless the text
//! ends in a backslash (blanks and line breaks after it aside): the one
//! way to get a value ending in one, which no line of a rendered file can
//! hold (it would continue the line), so the renderer leaves it out and
//! the value may change.
#![no_main]

use ferrsync::daemon::config::DaemonConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok((cfg, _warnings)) = DaemonConfig::parse(&text) else {
        return;
    };
    // Only a backslash before the end of the text (blanks and line
    // breaks aside: each line break after one continues the line) can
    // end a value.
    if text
        .trim_end_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r'])
        .ends_with('\\')
    {
        return;
    }
    let again = cfg.to_conf_string();
    let (back, _) = DaemonConfig::parse(&again)
        .unwrap_or_else(|e| panic!("rendered config does not parse: {e}\n{again}"));
    assert_eq!(back.modules.len(), cfg.modules.len(), "{again}");
    for (a, b) in cfg.modules.iter().zip(&back.modules) {
        assert_eq!(a.name, b.name, "{again}");
        assert_eq!(a.path, b.path, "{again}");
    }
});
