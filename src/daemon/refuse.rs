//! `refuse options`: which of the client's options a module refuses, named
//! as rsync names them in its error (`--checksum (-c)`).
//!
//! Layer: daemon (L5). Uses filter (wildmatch). Mirrors upstream options.c
//! `set_refuse_options`.

use crate::filter::wildmatch::wildmatch;

/// Short option letters the server may see and their long names.
const SHORT: &[(char, &str)] = &[
    ('v', "verbose"),
    ('q', "quiet"),
    ('n', "dry-run"),
    ('l', "links"),
    ('L', "copy-links"),
    ('k', "copy-dirlinks"),
    ('K', "keep-dirlinks"),
    ('d', "dirs"),
    ('O', "omit-dir-times"),
    ('J', "omit-link-times"),
    ('W', "whole-file"),
    ('H', "hard-links"),
    ('o', "owner"),
    ('g', "group"),
    ('D', "devices"),
    ('t', "times"),
    ('U', "atimes"),
    ('N', "crtimes"),
    ('p', "perms"),
    ('E', "executability"),
    ('A', "acls"),
    ('X', "xattrs"),
    ('r', "recursive"),
    ('R', "relative"),
    ('c', "checksum"),
    ('I', "ignore-times"),
    ('u', "update"),
    ('b', "backup"),
    ('x', "one-file-system"),
    ('S', "sparse"),
    ('z', "compress"),
    ('C', "cvs-exclude"),
    ('y', "fuzzy"),
    ('m', "prune-empty-dirs"),
    ('i', "itemize-changes"),
    ('s', "secluded-args"),
    ('P', "partial"),
    ('B', "block-size"),
    ('T', "temp-dir"),
];

/// The first option in `words` that `patterns` refuse, as rsync prints it
/// (`--checksum (-c)`, `--delete`). A pattern `delete` refuses every
/// `--delete*` option, and `a`/`archive` patterns match the long name.
#[must_use]
pub fn first_refused(patterns: &[String], words: &[String]) -> Option<String> {
    if patterns.is_empty() {
        return None;
    }
    let refused = |long: &str, short: Option<char>| {
        patterns.iter().any(|p| {
            let p = p.trim_start_matches('-');
            let neg = p.starts_with('!');
            if neg {
                return false;
            }
            wildmatch(p.as_bytes(), long.as_bytes())
                || (p == "delete" && long.starts_with("delete"))
                || short.is_some_and(|c| p.len() == 1 && p.starts_with(c))
        })
    };
    let mut after_dot = false;
    for w in words {
        if after_dot {
            break;
        }
        if w == "." {
            after_dot = true;
            continue;
        }
        if let Some(long) = w.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            if matches!(name, "server" | "sender" | "daemon") {
                continue;
            }
            let short = SHORT.iter().find(|(_, l)| *l == name).map(|(c, _)| *c);
            if refused(name, short) {
                return Some(match short {
                    Some(c) => format!("--{name} (-{c})"),
                    None => format!("--{name}"),
                });
            }
        } else if let Some(cluster) = w.strip_prefix('-') {
            for c in cluster.chars() {
                if c == 'e' {
                    // The capability string follows.
                    break;
                }
                if let Some((_, long)) = SHORT.iter().find(|(s, _)| *s == c) {
                    if refused(long, Some(c)) {
                        return Some(format!("--{long} (-{c})"));
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn refusals() {
        let words = w(&[
            "--server",
            "-vlogDtprce.LfxCvu",
            "--delete-after",
            ".",
            "m/",
        ]);
        assert_eq!(
            first_refused(&w(&["checksum"]), &words).as_deref(),
            Some("--checksum (-c)")
        );
        assert_eq!(
            first_refused(&w(&["delete"]), &words).as_deref(),
            Some("--delete-after")
        );
        assert_eq!(first_refused(&w(&["hard-links"]), &words), None);
        assert_eq!(
            first_refused(&w(&["t*"]), &words).as_deref(),
            Some("--times (-t)")
        );
        assert_eq!(first_refused(&[], &words), None);
    }
}
