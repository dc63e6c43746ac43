//! What a pull asked for, as a check on the names a sender lists
//! (CVE-2022-29154: a malicious server sending files the client did not
//! request).
//!
//! Layer: engine. Pure. Mirrors rsync 3.2.5+ exclude.c
//! `add_implied_include` and the `implied_filter_list` check of flist.c
//! `recv_file_entry`: each source argument of a pull (and each name of a
//! local `--files-from` list forwarded to the sender) becomes an anchored
//! include rule (its last component, or with `-R` the part after `/./`,
//! with its parent directories), with `/**` appended for `-r` or `/*` for
//! `--dirs`; a listed name matching none of them is refused. Exact names
//! are kept in sets so that a list of many names checks quickly.

use std::collections::HashSet;

use crate::filter::wildmatch::wildmatch;

/// The names a pull may receive.
#[derive(Debug, Clone, Default)]
pub struct Requested {
    /// Names allowed exactly (files or directories).
    exact: HashSet<Vec<u8>>,
    /// Directories allowed exactly (the parents of a `-R` argument).
    dirs: HashSet<Vec<u8>>,
    /// Everything below these is allowed (`-r`); `""` is the top.
    below: HashSet<Vec<u8>>,
    /// The direct children of these are allowed (`--dirs`).
    children: HashSet<Vec<u8>>,
    /// Wildcard rules: the pattern (without its leading `/`) and whether
    /// it only matches directories.
    wild: Vec<(Vec<u8>, bool)>,
    /// Whether any rule was added (no rule: nothing is checked).
    any: bool,
}

impl Requested {
    /// An empty set: nothing is checked until a rule is added.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether names are checked at all.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.any
    }

    /// Adds one requested argument (`skip_module`: a daemon path, whose
    /// first component is the module). `relative` is `-R`; `recurse` is
    /// `-r`; `dirs` is `--dirs` (or `--files-from`'s implied one).
    pub fn add(
        &mut self,
        arg: &[u8],
        skip_module: bool,
        relative: bool,
        recurse: bool,
        dirs: bool,
    ) {
        let mut arg = arg;
        if skip_module {
            arg = match arg.iter().position(|&c| c == b'/') {
                Some(p) => arg.get(p + 1..).unwrap_or_default(),
                None => b"",
            };
        }
        if relative {
            if let Some(p) = arg.windows(3).position(|w| w == b"/./") {
                arg = arg.get(p + 3..).unwrap_or_default();
            }
        } else if let Some(p) = arg.iter().rposition(|&c| c == b'/') {
            arg = arg.get(p + 1..).unwrap_or_default();
        }
        let wild = arg.iter().any(|c| matches!(c, b'*' | b'[' | b'?'));
        let name = clean(arg);
        if !name.is_empty() {
            self.any = true;
            if wild {
                self.wild.push((name.clone(), false));
            } else {
                self.exact.insert(name.clone());
            }
            if relative {
                // The parent directories, each a directory-only rule.
                let mut p = name.as_slice();
                while let Some(cut) = p.iter().rposition(|&c| c == b'/') {
                    p = p.get(..cut).unwrap_or_default();
                    let pw = wild && p.iter().any(|c| matches!(c, b'*' | b'[' | b'?' | b'\\'));
                    if pw {
                        self.wild.push((p.to_vec(), true));
                    } else {
                        self.dirs.insert(p.to_vec());
                    }
                }
            }
        }
        if recurse || dirs {
            self.any = true;
            if wild {
                let mut pat = name;
                pat.extend_from_slice(if recurse { b"/**" } else { b"/*" });
                self.wild.push((pat, false));
            } else if recurse {
                self.below.insert(name);
            } else {
                self.children.insert(name);
            }
        }
    }

    /// Whether the sender may list `name` (a directory if `is_dir`).
    /// `.` (the transfer root) is always allowed.
    #[must_use]
    pub fn allows(&self, name: &[u8], is_dir: bool) -> bool {
        let name = name.strip_prefix(b"/").unwrap_or(name);
        if !self.any || name == b"." || name.is_empty() {
            return true;
        }
        if self.exact.contains(name) || (is_dir && self.dirs.contains(name)) {
            return true;
        }
        if self.below.contains(b"".as_slice()) {
            return true;
        }
        let parent = match name.iter().rposition(|&c| c == b'/') {
            Some(p) => name.get(..p).unwrap_or_default(),
            None => b"",
        };
        if self.children.contains(parent) {
            return true;
        }
        // Every ancestor of the name (below-rules cover all depths).
        let mut p = name;
        while let Some(cut) = p.iter().rposition(|&c| c == b'/') {
            p = p.get(..cut).unwrap_or_default();
            if self.below.contains(p) {
                return true;
            }
        }
        self.wild
            .iter()
            .any(|(pat, dir_only)| (is_dir || !dir_only) && wildmatch(pat, name))
    }
}

/// An argument as a list name: no leading, doubled or trailing slashes,
/// no `.` components.
fn clean(arg: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(arg.len());
    for comp in arg.split(|&c| c == b'/') {
        if comp.is_empty() || comp == b"." {
            continue;
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(comp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str], relative: bool, recurse: bool, dirs: bool) -> Requested {
        let mut r = Requested::new();
        for a in args {
            r.add(a.as_bytes(), false, relative, recurse, dirs);
        }
        r
    }

    #[test]
    fn a_file_argument_allows_only_that_name() {
        let r = req(&["/srv/data/f.txt"], false, true, false);
        assert!(r.allows(b"f.txt", false));
        assert!(r.allows(b"f.txt/x", false), "-r: below the name");
        assert!(!r.allows(b"evil", false));
        assert!(!r.allows(b"data/f.txt", false));
    }

    #[test]
    fn trailing_slash_and_dot_allow_everything_with_r_only() {
        let r = req(&["/srv/data/"], false, true, false);
        assert!(r.allows(b"any/deep/name", false));
        let r = req(&["/srv/data/"], false, false, false);
        assert!(!r.is_active());
        let r = req(&["/srv/data/", "/srv/f"], false, false, false);
        assert!(r.allows(b".", true));
        assert!(!r.allows(b"other", false));
    }

    #[test]
    fn relative_allows_the_parents_as_directories() {
        let r = req(&["/srv/./a/b/c"], true, false, false);
        assert!(r.allows(b"a", true));
        assert!(r.allows(b"a/b", true));
        assert!(!r.allows(b"a/b", false));
        assert!(r.allows(b"a/b/c", false));
        assert!(!r.allows(b"a/x", false));
        assert!(!r.allows(b"a/b/c/d", false), "no -r");
    }

    #[test]
    fn wildcards_the_server_expands() {
        let r = req(&["/srv/*.txt"], false, true, false);
        assert!(r.allows(b"a.txt", false));
        assert!(r.allows(b"d.txt/inner", false));
        assert!(!r.allows(b"a.log", false));
        let r = req(&["/srv/d"], false, false, true);
        assert!(r.allows(b"d/x", false));
        assert!(!r.allows(b"d/x/y", false));
    }

    #[test]
    fn daemon_paths_skip_the_module() {
        let mut r = Requested::new();
        r.add(b"mod/sub", true, false, true, false);
        assert!(r.allows(b"sub/x", false));
        assert!(!r.allows(b"other", false));
        let mut r = Requested::new();
        r.add(b"mod", true, false, true, false);
        assert!(r.allows(b"anything", false));
    }
}
