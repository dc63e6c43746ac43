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

use crate::filter::FilterList;
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
    /// The client's filter rules as the sender applies them: a listed
    /// name they exclude is refused too.
    sender_rules: Option<FilterList>,
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
        self.any || self.sender_rules.is_some()
    }

    /// Also refuses names that `rules` (the client's rules as the sender
    /// parses them off the wire) exclude: rsync 3.2.5+'s "rejecting
    /// excluded file-list name" check.
    pub fn set_sender_rules(&mut self, rules: FilterList) {
        self.sender_rules = Some(rules);
    }

    /// Whether the sender listed `name` although the rules it was given
    /// exclude it. `.` (the transfer root) is never excluded.
    #[must_use]
    pub fn excluded(&self, name: &[u8], is_dir: bool) -> bool {
        if matches!(name, b"." | b"/.") {
            return false;
        }
        self.sender_rules
            .as_ref()
            .is_some_and(|f| f.is_excluded(name, is_dir))
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
        self.leaf_match(name) || (is_dir && self.dir_match(name))
    }

    /// Whether `name` is a directory the pull only asked for as the parent
    /// of something (a `-R` parent), never as content: rsync 3.5.0's
    /// `is_implied_parent_dir`. The receiver then treats it as an implied
    /// directory whatever the sender flagged, so `--delete` cannot sweep
    /// its other entries. `.` is one unless the pull asked for the whole
    /// top (`host:dir/` with `-r` or `--dirs`).
    #[must_use]
    pub fn is_implied_parent(&self, name: &[u8]) -> bool {
        let name = name.strip_prefix(b"/").unwrap_or(name);
        if !self.any {
            return false;
        }
        if name == b"." || name.is_empty() {
            let top: &[u8] = b"";
            return !(self.below.contains(top) || self.children.contains(top));
        }
        self.dir_match(name) && !self.leaf_match(name)
    }

    /// A rule for the name itself or what contains it (rsync's include
    /// rules without the directory-only flag).
    fn leaf_match(&self, name: &[u8]) -> bool {
        if self.exact.contains(name) || self.below.contains(b"".as_slice()) {
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
            .any(|(pat, dir_only)| !dir_only && wildmatch(pat, name))
    }

    /// A directory-only rule (a parent of a `-R` argument) for the name.
    fn dir_match(&self, name: &[u8]) -> bool {
        self.dirs.contains(name)
            || self
                .wild
                .iter()
                .any(|(pat, dir_only)| *dir_only && wildmatch(pat, name))
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

    #[test]
    fn implied_parents_are_the_relative_parents_only() {
        let r = req(&["/srv/./a/b/c"], true, true, false);
        assert!(r.is_implied_parent(b"a") && r.is_implied_parent(b"a/b"));
        assert!(r.is_implied_parent(b"."), "the top is a parent only");
        assert!(!r.is_implied_parent(b"a/b/c"), "the argument itself");
        assert!(!r.is_implied_parent(b"a/b/c/d"), "below the argument");
        assert!(!r.is_implied_parent(b"x"));
        // Asked for as well as a parent: content.
        let r = req(&["/srv/./a/b", "/srv/./a"], true, true, false);
        assert!(!r.is_implied_parent(b"a"));
        // The whole top asked for: "." is content.
        let r = req(&["/srv/"], false, true, false);
        assert!(!r.is_implied_parent(b"."));
        let r = req(&["/srv/"], false, false, true);
        assert!(!r.is_implied_parent(b"."));
        let r = req(&["/srv/f"], false, true, false);
        assert!(r.is_implied_parent(b".") && !r.is_implied_parent(b"f"));
        // Wildcard parents.
        let r = req(&["/srv/./d*/x"], true, false, false);
        assert!(r.is_implied_parent(b"dir") && !r.is_implied_parent(b"dir/x"));
        assert!(!Requested::new().is_implied_parent(b"a"));
    }

    #[test]
    fn names_the_senders_rules_exclude_are_caught() -> Result<(), crate::filter::ParseError> {
        let mut fl = FilterList::new(crate::filter::Side::Sender);
        fl.add_exclude(b"*.secret")?;
        let mut r = Requested::new();
        assert!(!r.is_active());
        r.set_sender_rules(fl);
        assert!(r.is_active());
        assert!(r.excluded(b"x.secret", false) && r.excluded(b"d/y.secret", true));
        assert!(!r.excluded(b"x.txt", false) && !r.excluded(b".", true));
        assert!(
            r.allows(b"anything", false),
            "no requested names: all allowed"
        );
        Ok(())
    }
}
