//! Wildcards in daemon path words (rsync's `glob_expand_module`): a word
//! with `*`, `?` or `[` is expanded against the module's files; a word that
//! matches nothing is kept as it is.
//!
//! Layer: daemon (L5). Uses filter (wildmatch) and std::fs.

use std::path::Path;

use crate::filter::wildmatch::wildmatch;

const MAX_MATCHES: usize = 100_000;

fn has_wild(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands `rel` (sanitized, relative to `root`) into the matching paths,
/// sorted; `[rel]` when it has no wildcard or matches nothing.
#[must_use]
pub fn expand(root: &Path, rel: &str) -> Vec<String> {
    if !has_wild(rel) {
        return vec![rel.to_string()];
    }
    let trailing = rel.ends_with('/');
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let mut found: Vec<String> = vec![String::new()];
    for part in &parts {
        let mut next = Vec::new();
        for prefix in &found {
            if has_wild(part) {
                let dir = root.join(prefix);
                let Ok(rd) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                    .filter(|n| wildmatch(part.as_bytes(), n.as_bytes()))
                    .collect();
                names.sort();
                for n in names {
                    next.push(join(prefix, &n));
                }
            } else {
                next.push(join(prefix, part));
            }
            if next.len() > MAX_MATCHES {
                break;
            }
        }
        found = next;
    }
    if found.is_empty() {
        return vec![rel.to_string()];
    }
    if trailing {
        for f in &mut found {
            f.push('/');
        }
    }
    found
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_keeps_literals() {
        let t = tempfile::tempdir().unwrap();
        for n in ["a1", "a2", "b1"] {
            std::fs::create_dir_all(t.path().join("d").join(n)).unwrap();
        }
        assert_eq!(expand(t.path(), "d/a*"), vec!["d/a1", "d/a2"]);
        assert_eq!(expand(t.path(), "d/?1/"), vec!["d/a1/", "d/b1/"]);
        assert_eq!(expand(t.path(), "d/z*"), vec!["d/z*"]);
        assert_eq!(expand(t.path(), "plain"), vec!["plain"]);
    }
}
