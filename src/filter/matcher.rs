//! The filter list: rules in order, first match wins, with per-directory
//! merge files and the CVS-ignore list.
//!
//! Layer: filter (L2). Reads merge files only through a caller-supplied
//! [`MergeReader`]; does no I/O itself.
//! Mirrors upstream exclude.c (`parse_filter_str`, `parse_filter_file`,
//! `push_local_filters`, `rule_matches`, `check_filter`, `send_rules`,
//! `send_filter_list`, `recv_filter_list`) and wildmatch.c
//! `wildmatch_array`.
//!
//! ```
//! use ferrsync::filter::{FilterList, Side};
//! let mut fl = FilterList::new(Side::Sender);
//! fl.add_filter(b"+ *.rs").unwrap();
//! fl.add_filter(b"- *").unwrap();
//! assert!(!fl.is_excluded(b"src/lib.rs", false));
//! assert!(fl.is_excluded(b"README", false));
//! ```

use super::rules::{ParseError, Rule, RuleFlags, is_space, parse_token};
use super::wildmatch::wildmatch;

/// Reads a merge file by name: `Ok(None)` when it does not exist.
pub type MergeReader<'a> = &'a mut dyn FnMut(&[u8]) -> std::io::Result<Option<Vec<u8>>>;

/// rsync's default CVS-ignore patterns (`DEFAULT_CVSIGNORE`).
pub const DEFAULT_CVSIGNORE: &str = "RCS SCCS CVS CVS.adm RCSLOG cvslog.* tags TAGS .make.state \
.nse_depinfo *~ #* .#* ,* _$* *$ *.old *.bak *.BAK *.orig *.rej .del-* *.a *.olb *.o *.obj \
*.so *.exe *.Z *.elc *.ln core .svn/ .git/ .hg/ .bzr/";

const MAX_MERGE_DEPTH: usize = 20;

/// Which side of the transfer applies the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sender: decides what is listed (hide/show apply).
    Sender,
    /// The receiver: decides what `--delete` may touch (protect/risk
    /// apply).
    Receiver,
}

/// One element of a filter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An include or exclude.
    Rule(Rule),
    /// A per-directory merge rule and the rules in effect for the current
    /// directory (its own file's rules, then the inherited ones).
    PerDir {
        /// The `:` rule; its pattern is the file name.
        rule: Rule,
        /// The rules now in effect.
        rules: Vec<Entry>,
    },
    /// A `-C` rule: the CVS-ignore list is consulted here.
    Cvs(Rule),
}

/// How text is read into a list (upstream `xflags` and globals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ctx {
    side: Side,
    delete_excluded: bool,
    protocol: u8,
    /// Lines end in NUL instead of newline (`--from0`).
    from0: bool,
    /// A daemon module's rules: a pattern with a slash is anchored and a
    /// directory exclude also covers the contents (upstream
    /// `XFLG_ABS_IF_SLASH | XFLG_DIR2WILD3`).
    daemon: bool,
}

/// An ordered filter list with rsync's first-match semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterList {
    entries: Vec<Entry>,
    cvs: Option<Vec<Rule>>,
    ctx: Ctx,
    /// Absolute path of the transfer root, for `/`-modified rules.
    root: Option<Vec<u8>>,
    /// Ignore perishable rules (inside a directory being deleted).
    pub ignore_perishable: bool,
}

/// The result of checking a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An include rule matched first.
    Include,
    /// An exclude rule matched first.
    Exclude,
    /// No rule matched.
    NoMatch,
}

impl FilterList {
    /// An empty list applied by `side`.
    #[must_use]
    pub fn new(side: Side) -> Self {
        FilterList {
            entries: Vec::new(),
            cvs: None,
            ctx: Ctx {
                side,
                delete_excluded: false,
                protocol: 32,
                from0: false,
                daemon: false,
            },
            root: None,
            ignore_perishable: false,
        }
    }

    /// Sets `--delete-excluded` (call before adding rules).
    #[must_use]
    pub fn with_delete_excluded(mut self, on: bool) -> Self {
        self.ctx.delete_excluded = on;
        self
    }

    /// Marks the list as a daemon module's (see [`FilterList::add_daemon_arg`]).
    #[must_use]
    pub fn for_daemon(mut self) -> Self {
        self.ctx.daemon = true;
        self
    }

    /// Adds a daemon module parameter the way rsyncd does: `filter`,
    /// `include` and `exclude` values are split into words, a pattern with
    /// a slash is anchored to the root and an excluded directory's
    /// contents are excluded too.
    ///
    /// # Errors
    /// A rule does not parse or a file cannot be read.
    pub fn add_daemon_arg(
        &mut self,
        arg: &FilterArg,
        read: MergeReader<'_>,
    ) -> Result<(), ParseError> {
        self.ctx.daemon = true;
        let ws = RuleFlags::WORD_SPLIT;
        match arg {
            FilterArg::Filter(t) => self.add_with(t.as_bytes(), ws, false, read),
            FilterArg::Exclude(t) => self.add_with(t.as_bytes(), ws, true, read),
            FilterArg::Include(t) => {
                self.add_with(t.as_bytes(), ws | RuleFlags::INCLUDE, true, read)
            }
            FilterArg::ExcludeFrom(_) | FilterArg::IncludeFrom(_) => self.add_arg(arg, read),
        }
    }

    /// Sets the protocol (CVS defaults are perishable from 30 on).
    #[must_use]
    pub fn with_protocol(mut self, protocol: u8) -> Self {
        self.ctx.protocol = protocol;
        self
    }

    /// Merge files have NUL-terminated lines (`--from0`).
    #[must_use]
    pub fn with_from0(mut self, on: bool) -> Self {
        self.ctx.from0 = on;
        self
    }

    /// The absolute path of the transfer root (for `/`-modified rules).
    #[must_use]
    pub fn with_root(mut self, root: Option<Vec<u8>>) -> Self {
        self.root = root;
        self
    }

    /// The transfer root given with [`FilterList::with_root`].
    #[must_use]
    pub fn root(&self) -> Option<&[u8]> {
        self.root.as_deref()
    }

    /// Which side applies the list.
    #[must_use]
    pub fn side(&self) -> Side {
        self.ctx.side
    }

    /// Changes the side (a list parsed before the role was known).
    pub fn set_side(&mut self, side: Side) {
        self.ctx.side = side;
    }

    /// The entries in order.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether there are no rules at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any per-directory merge rule is present.
    #[must_use]
    pub fn has_per_dir(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::PerDir { .. }))
    }

    /// Adds `--filter` text (one rule).
    ///
    /// # Errors
    /// The rule does not parse, or it merges a file (use
    /// [`FilterList::add_with`] to give a reader).
    pub fn add_filter(&mut self, text: &[u8]) -> Result<(), ParseError> {
        self.add_with(text, RuleFlags::NONE, false, &mut no_files)
    }

    /// Adds `--exclude` text.
    ///
    /// # Errors
    /// The rule does not parse.
    pub fn add_exclude(&mut self, text: &[u8]) -> Result<(), ParseError> {
        self.add_with(text, RuleFlags::NONE, true, &mut no_files)
    }

    /// Adds `--include` text.
    ///
    /// # Errors
    /// The rule does not parse.
    pub fn add_include(&mut self, text: &[u8]) -> Result<(), ParseError> {
        self.add_with(text, RuleFlags::INCLUDE, true, &mut no_files)
    }

    /// Adds rule text under a template (upstream `parse_filter_str`):
    /// [`RuleFlags::NONE`] and `old_prefixes == false` for `--filter`,
    /// `old_prefixes` for `--exclude`, plus [`RuleFlags::INCLUDE`] for
    /// `--include`. `.` merge files are read with `read`.
    ///
    /// # Errors
    /// A rule does not parse or a merge file cannot be read.
    pub fn add_with(
        &mut self,
        text: &[u8],
        template: RuleFlags,
        old_prefixes: bool,
        read: MergeReader<'_>,
    ) -> Result<(), ParseError> {
        let ctx = self.ctx;
        let mut cvs = self.cvs.take();
        let mut entries = std::mem::take(&mut self.entries);
        let r = parse_str(
            &mut entries,
            &mut cvs,
            &ctx,
            text,
            template,
            old_prefixes,
            None,
            read,
            0,
        );
        self.entries = entries;
        self.cvs = cvs;
        r
    }

    /// Adds the rules of a file's text, one per line (`--exclude-from`,
    /// `--include-from`): empty lines and lines starting with `;` or `#`
    /// are skipped.
    ///
    /// # Errors
    /// A rule does not parse.
    pub fn add_file_text(
        &mut self,
        data: &[u8],
        template: RuleFlags,
        old_prefixes: bool,
        read: MergeReader<'_>,
    ) -> Result<(), ParseError> {
        let ctx = self.ctx;
        let mut cvs = self.cvs.take();
        let mut entries = std::mem::take(&mut self.entries);
        let r = parse_file(
            &mut entries,
            &mut cvs,
            &ctx,
            data,
            template,
            old_prefixes,
            None,
            read,
            0,
        );
        self.entries = entries;
        self.cvs = cvs;
        r
    }

    /// The rules as the client sends them to the server (upstream
    /// `send_rules`): one text per rule, in order. `am_sender` is the
    /// client's role.
    ///
    /// # Errors
    /// A rule that the protocol cannot express: "filter rules are too
    /// modern for remote rsync."
    pub fn wire_rules(&self, am_sender: bool, protocol: u8) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        for e in &self.entries {
            let rule = match e {
                Entry::Rule(r) | Entry::Cvs(r) | Entry::PerDir { rule: r, .. } => r,
            };
            let f = rule.flags;
            let (local, remote) = (1u8, 2u8);
            let mut elide = 0u8;
            if f.contains(RuleFlags::SENDER_SIDE) {
                elide = if am_sender { local } else { remote };
            }
            if f.contains(RuleFlags::RECEIVER_SIDE) {
                elide = if elide != 0 {
                    0
                } else if am_sender {
                    remote
                } else {
                    local
                };
            } else if self.ctx.delete_excluded
                && elide == 0
                && (!f.contains(RuleFlags::PERDIR_MERGE) || f.contains(RuleFlags::NO_PREFIXES))
            {
                elide = if am_sender { local } else { remote };
            }
            if elide == local {
                continue;
            }
            if let Entry::Cvs(_) = e {
                if am_sender || protocol < 29 {
                    for r in self.cvs.as_deref().unwrap_or_default() {
                        push_wire(&mut out, r, am_sender, protocol, self.ctx.delete_excluded)?;
                    }
                    continue;
                }
            }
            push_wire(
                &mut out,
                rule,
                am_sender,
                protocol,
                self.ctx.delete_excluded,
            )?;
        }
        Ok(out)
    }

    /// Checks `name` (a path relative to the transfer root, as in the file
    /// list) against the list.
    #[must_use]
    pub fn check(&self, name: &[u8], is_dir: bool) -> Decision {
        let m = Matching {
            side: self.ctx.side,
            root: self.root.as_deref(),
            ignore_perishable: self.ignore_perishable,
            cvs: self.cvs.as_deref().unwrap_or_default(),
        };
        m.check(&self.entries, name, is_dir)
    }

    /// Whether `name` is excluded.
    #[must_use]
    pub fn is_excluded(&self, name: &[u8], is_dir: bool) -> bool {
        self.check(name, is_dir) == Decision::Exclude
    }

    /// The list in effect inside directory `dir` (its name relative to the
    /// transfer root, `.` for the root): each per-directory merge rule
    /// reads its file there with `read` (given the file's name relative to
    /// `dir`) and puts its rules before the inherited ones.
    ///
    /// # Errors
    /// A rule in a merge file does not parse.
    pub fn enter_dir(&self, dir: &[u8], read: MergeReader<'_>) -> Result<FilterList, ParseError> {
        let mut child = self.clone();
        if !self.has_per_dir() {
            return Ok(child);
        }
        let ctx = self.ctx;
        let mut cvs = child.cvs.take();
        enter_entries(&mut child.entries, &mut cvs, &ctx, dir, read, 0)?;
        child.cvs = cvs;
        Ok(child)
    }

    /// rsync's parent-directory scan (exclude.c `setup_merge_file`): each
    /// per-directory merge rule whose file name starts with `/` (as `-F`'s
    /// `: /.rsync-filter`) also reads its file in every directory from
    /// that name's directory down to the parent of `first_dir`, the
    /// absolute path of the first directory the transfer enters. Rules of
    /// deeper files come first; a `/`-anchored rule in such a file is
    /// anchored at that file's directory. `read` gets the file's absolute
    /// path.
    ///
    /// # Errors
    /// A rule in one of the files does not parse.
    pub fn enter_parents(
        &self,
        first_dir: &[u8],
        read: MergeReader<'_>,
    ) -> Result<FilterList, ParseError> {
        let mut out = self.clone();
        if !self.has_per_dir() || first_dir.first() != Some(&b'/') {
            return Ok(out);
        }
        let ctx = self.ctx;
        let mut cvs = out.cvs.take();
        for e in &mut out.entries {
            let Entry::PerDir { rule, rules } = e else {
                continue;
            };
            if rule.pattern.first() != Some(&b'/') {
                continue;
            }
            let Some(slash) = rule.pattern.iter().rposition(|&c| c == b'/') else {
                continue;
            };
            let Some((head, tail)) = rule.pattern.split_at_checked(slash) else {
                continue;
            };
            let start = if slash == 0 { b"/".as_slice() } else { head };
            let base = tail.get(1..).unwrap_or_default().to_vec();
            if !(first_dir.starts_with(start)
                && (start == b"/" || first_dir.get(start.len()).is_none_or(|c| *c == b'/')))
            {
                continue;
            }
            // The parents of first_dir at or below `start`.
            let mut parents: Vec<Vec<u8>> = Vec::new();
            for (i, c) in first_dir.iter().enumerate() {
                if *c == b'/' && i >= start.len().saturating_sub(1) {
                    parents.push(if i == 0 {
                        b"/".to_vec()
                    } else {
                        first_dir.get(..i).unwrap_or_default().to_vec()
                    });
                }
            }
            for p in parents {
                let mut file = p.clone();
                if !file.ends_with(b"/") {
                    file.push(b'/');
                }
                file.extend_from_slice(&base);
                let Ok(Some(data)) = read(&file) else {
                    continue;
                };
                let mut local = Vec::new();
                parse_file(
                    &mut local,
                    &mut cvs,
                    &ctx,
                    &data,
                    rule.flags,
                    false,
                    Some(b"."),
                    &mut no_files,
                    1,
                )?;
                let dir = if p == b"/" { Vec::new() } else { p.clone() };
                for l in &mut local {
                    if let Entry::Rule(r) = l {
                        if r.pattern.first() == Some(&b'/')
                            && !r.flags.contains(RuleFlags::ABS_PATH)
                        {
                            let mut pat = dir.clone();
                            pat.extend_from_slice(&r.pattern);
                            let mut f = r.flags;
                            f.insert(RuleFlags::ABS_PATH);
                            *r = Rule::new(f, &pat);
                        }
                    }
                }
                local.append(rules);
                *rules = local;
            }
        }
        out.cvs = cvs;
        Ok(out)
    }

    /// `--cvs-exclude` as rsync's client adds it after sending its list
    /// (`:C` then `-C`), or as a sending server adds it after receiving.
    ///
    /// # Errors
    /// Never in practice (the rules are fixed).
    pub fn add_cvs_exclude(&mut self, per_dir: bool, defaults: bool) -> Result<(), ParseError> {
        if per_dir {
            self.add_filter(b":C")?;
        }
        if defaults {
            self.add_filter(b"-C")?;
        }
        Ok(())
    }
}

/// One filter option as the user gave it, kept in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterArg {
    /// `--filter=RULE` / `-f RULE`.
    Filter(String),
    /// `--exclude=PATTERN`.
    Exclude(String),
    /// `--include=PATTERN`.
    Include(String),
    /// `--exclude-from=FILE`.
    ExcludeFrom(String),
    /// `--include-from=FILE`.
    IncludeFrom(String),
}

impl FilterList {
    /// Adds one command-line filter option; `read` reads `.` merge files
    /// and the `*-from` files.
    ///
    /// # Errors
    /// A rule does not parse or a file cannot be read.
    pub fn add_arg(&mut self, arg: &FilterArg, read: MergeReader<'_>) -> Result<(), ParseError> {
        match arg {
            FilterArg::Filter(t) => self.add_with(t.as_bytes(), RuleFlags::NONE, false, read),
            FilterArg::Exclude(t) => self.add_with(t.as_bytes(), RuleFlags::NONE, true, read),
            FilterArg::Include(t) => self.add_with(t.as_bytes(), RuleFlags::INCLUDE, true, read),
            FilterArg::ExcludeFrom(f) | FilterArg::IncludeFrom(f) => {
                let (template, kind) = if matches!(arg, FilterArg::IncludeFrom(_)) {
                    (RuleFlags::INCLUDE, "in")
                } else {
                    (RuleFlags::NONE, "ex")
                };
                let data = read(f.as_bytes())
                    .map_err(|e| e.to_string())
                    .and_then(|d| d.ok_or_else(|| "No such file or directory (2)".to_string()))
                    .map_err(|err| ParseError::MergeFile {
                        kind,
                        name: f.clone(),
                        err,
                    })?;
                self.add_file_text(&data, template, true, read)
            }
        }
    }
}

/// The user's list and a daemon module's list, checked together: the
/// daemon's rules come first and a client rule cannot undo them (upstream
/// `name_is_excluded` with `daemon_filter_list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSet {
    /// The transfer's own rules.
    pub user: FilterList,
    /// A daemon module's `filter` / `exclude` / `include` rules.
    pub daemon: Option<FilterList>,
}

impl FilterSet {
    /// Whether either list excludes `name`.
    #[must_use]
    pub fn is_excluded(&self, name: &[u8], is_dir: bool) -> bool {
        self.daemon
            .as_ref()
            .is_some_and(|d| d.is_excluded(name, is_dir))
            || self.user.is_excluded(name, is_dir)
    }

    /// Whether `name` is hidden by the daemon's rules (they apply even
    /// where the user's do not, e.g. to top-level names).
    #[must_use]
    pub fn daemon_excludes(&self, name: &[u8], is_dir: bool) -> bool {
        self.daemon
            .as_ref()
            .is_some_and(|d| d.is_excluded(name, is_dir))
    }

    /// Both lists as they are inside directory `dir`.
    ///
    /// # Errors
    /// A per-directory merge file does not parse.
    pub fn enter_dir(&self, dir: &[u8], read: MergeReader<'_>) -> Result<Self, ParseError> {
        Ok(FilterSet {
            user: self.user.enter_dir(dir, read)?,
            daemon: match &self.daemon {
                Some(d) => Some(d.enter_dir(dir, read)?),
                None => None,
            },
        })
    }

    /// Both lists after [`FilterList::enter_parents`] (the daemon's rules
    /// have no per-directory files to scan).
    ///
    /// # Errors
    /// A per-directory merge file does not parse.
    pub fn enter_parents(
        &self,
        first_dir: &[u8],
        read: MergeReader<'_>,
    ) -> Result<Self, ParseError> {
        Ok(FilterSet {
            user: self.user.enter_parents(first_dir, read)?,
            daemon: self.daemon.clone(),
        })
    }

    /// Ignore perishable rules (inside a directory being deleted).
    pub fn set_ignore_perishable(&mut self, on: bool) {
        self.user.ignore_perishable = on;
        if let Some(d) = &mut self.daemon {
            d.ignore_perishable = on;
        }
    }

    /// Whether there is nothing to check.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.user.is_empty() && self.daemon.as_ref().is_none_or(FilterList::is_empty)
    }
}

fn push_wire(
    out: &mut Vec<Vec<u8>>,
    rule: &Rule,
    am_sender: bool,
    protocol: u8,
    delete_excluded: bool,
) -> Result<(), String> {
    let p = rule
        .prefix(true, protocol, am_sender, delete_excluded)
        .ok_or_else(|| "filter rules are too modern for remote rsync.".to_string())?;
    let mut v = p.into_bytes();
    v.extend_from_slice(&rule.pattern);
    if rule.flags.contains(RuleFlags::DIRECTORY) {
        v.push(b'/');
    }
    if !v.is_empty() {
        out.push(v);
    }
    Ok(())
}

fn no_files(name: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    Err(std::io::Error::other(format!(
        "no reader for {}",
        String::from_utf8_lossy(name)
    )))
}

fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// A per-directory context: the directory whose merge file is being read
/// (its rules anchor there and rules for the other side are dropped).
type DirCtx<'a> = Option<&'a [u8]>;

fn merge_basename(p: &[u8]) -> &[u8] {
    p.rsplit(|&c| c == b'/').next().unwrap_or(p)
}

fn has_per_dir_named(entries: &[Entry], name: &[u8]) -> bool {
    entries.iter().any(|e| match e {
        Entry::PerDir { rule, rules } => {
            merge_basename(&rule.pattern) == name || has_per_dir_named(rules, name)
        }
        _ => false,
    })
}

#[allow(clippy::too_many_arguments)]
fn parse_str(
    list: &mut Vec<Entry>,
    cvs: &mut Option<Vec<Rule>>,
    ctx: &Ctx,
    text: &[u8],
    template: RuleFlags,
    old_prefixes: bool,
    dir: DirCtx<'_>,
    read: MergeReader<'_>,
    depth: usize,
) -> Result<(), ParseError> {
    let mut rest = text;
    while let Some((tok, used)) = parse_token(rest, template, old_prefixes, ctx.delete_excluded)? {
        let flags = tok.flags;
        let pat = tok.pattern.to_vec();
        rest = rest.get(used..).unwrap_or_default();
        if flags.contains(RuleFlags::CLEAR_LIST) {
            list.clear();
            continue;
        }
        if flags.contains(RuleFlags::MERGE_FILE) {
            let pat: Vec<u8> = if pat.is_empty() {
                b".cvsignore".to_vec()
            } else {
                pat
            };
            let mut flags = flags;
            if flags.contains(RuleFlags::EXCLUDE_SELF) {
                // A name ending in `/` has no basename; rsync would add an
                // empty rule that no peer can parse, so none is added.
                let base = merge_basename(&pat);
                if !base.is_empty() {
                    add_rule(list, ctx, RuleFlags::NONE, base, dir);
                }
                flags.remove(RuleFlags::EXCLUDE_SELF);
            }
            if flags.contains(RuleFlags::PERDIR_MERGE) {
                if has_per_dir_named(list, merge_basename(&pat)) {
                    continue;
                }
                list.push(Entry::PerDir {
                    rule: Rule::new(flags, &pat),
                    rules: Vec::new(),
                });
            } else {
                if depth >= MAX_MERGE_DEPTH {
                    return Err(ParseError::TooDeep(lossy(&pat)));
                }
                let kind = if flags.contains(RuleFlags::INCLUDE) {
                    "in"
                } else {
                    "ex"
                };
                let data = match read(&pat) {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        return Err(ParseError::MergeFile {
                            kind,
                            name: lossy(&pat),
                            err: "No such file or directory (2)".into(),
                        });
                    }
                    Err(e) => {
                        return Err(ParseError::MergeFile {
                            kind,
                            name: lossy(&pat),
                            err: e.to_string(),
                        });
                    }
                };
                parse_file(list, cvs, ctx, &data, flags, false, dir, read, depth + 1)?;
            }
            continue;
        }
        if flags.contains(RuleFlags::CVS_IGNORE) {
            if cvs.is_none() {
                let mut l = Vec::new();
                let mut none = None;
                let t = flags
                    | if ctx.protocol >= 30 {
                        RuleFlags::PERISHABLE
                    } else {
                        RuleFlags::NONE
                    };
                let mut entries = Vec::new();
                parse_str(
                    &mut entries,
                    &mut none,
                    ctx,
                    DEFAULT_CVSIGNORE.as_bytes(),
                    t,
                    false,
                    None,
                    &mut no_files,
                    depth + 1,
                )?;
                if let Ok(v) = std::env::var("CVSIGNORE") {
                    parse_str(
                        &mut entries,
                        &mut none,
                        ctx,
                        v.as_bytes(),
                        flags,
                        false,
                        None,
                        &mut no_files,
                        depth + 1,
                    )?;
                }
                for e in entries {
                    if let Entry::Rule(r) = e {
                        l.push(r);
                    }
                }
                *cvs = Some(l);
            }
            list.push(Entry::Cvs(Rule::new(flags, &pat)));
            continue;
        }
        add_rule(list, ctx, flags, &pat, dir);
    }
    Ok(())
}

/// Upstream `add_rule` for an include/exclude: in a per-directory file,
/// rules for the other side are dropped and a leading `/` anchors the
/// pattern to that directory.
fn add_rule(list: &mut Vec<Entry>, ctx: &Ctx, flags: RuleFlags, pat: &[u8], dir: DirCtx<'_>) {
    let Some(dir) = dir else {
        let mut rule = Rule::new(flags, pat);
        if ctx.daemon {
            if !rule
                .flags
                .intersects(RuleFlags::ABS_PATH | RuleFlags::MERGE_FILE)
                && rule.slash_cnt > 0
            {
                rule.flags.insert(RuleFlags::ABS_PATH);
            }
            if rule.flags.contains(RuleFlags::DIRECTORY) && !rule.is_include() {
                let mut p = rule.pattern.clone();
                p.extend_from_slice(b"/***");
                let mut f = rule.flags;
                f.remove(RuleFlags::DIRECTORY);
                rule = Rule::new(f, &p);
            }
        }
        list.push(Entry::Rule(rule));
        return;
    };
    let other = match ctx.side {
        Side::Sender => RuleFlags::RECEIVER_SIDE,
        Side::Receiver => RuleFlags::SENDER_SIDE,
    };
    if flags.and(RuleFlags::SIDES) == other {
        return;
    }
    if pat.first() == Some(&b'/') && !flags.contains(RuleFlags::ABS_PATH) && dir != b"." {
        let mut p = b"/".to_vec();
        p.extend_from_slice(dir.strip_prefix(b"./").unwrap_or(dir));
        p.extend_from_slice(pat);
        list.push(Entry::Rule(Rule::new(flags, &p)));
    } else {
        list.push(Entry::Rule(Rule::new(flags, pat)));
    }
}

#[allow(clippy::too_many_arguments)]
fn parse_file(
    list: &mut Vec<Entry>,
    cvs: &mut Option<Vec<Rule>>,
    ctx: &Ctx,
    data: &[u8],
    template: RuleFlags,
    old_prefixes: bool,
    dir: DirCtx<'_>,
    read: MergeReader<'_>,
    depth: usize,
) -> Result<(), ParseError> {
    let word_split = template.contains(RuleFlags::WORD_SPLIT);
    let mut line = Vec::new();
    let mut iter = data.iter().copied().peekable();
    loop {
        let ch = iter.next();
        let end = match ch {
            None => true,
            Some(c) if word_split && is_space(c) => true,
            Some(c) if ctx.from0 => c == 0,
            Some(b'\r') => {
                if iter.peek() == Some(&b'\n') {
                    iter.next();
                }
                true
            }
            Some(b'\n') => true,
            Some(_) => false,
        };
        if !end {
            if let Some(c) = ch {
                line.push(c);
            }
            continue;
        }
        let skip = line.is_empty() || (!word_split && matches!(line.first(), Some(b';' | b'#')));
        if !skip {
            parse_str(
                list,
                cvs,
                ctx,
                &line,
                template,
                old_prefixes,
                dir,
                read,
                depth,
            )?;
        }
        line.clear();
        if ch.is_none() {
            return Ok(());
        }
    }
}

fn enter_entries(
    entries: &mut [Entry],
    cvs: &mut Option<Vec<Rule>>,
    ctx: &Ctx,
    dir: &[u8],
    read: MergeReader<'_>,
    depth: usize,
) -> Result<(), ParseError> {
    if depth > MAX_MERGE_DEPTH {
        return Err(ParseError::TooDeep(lossy(dir)));
    }
    for e in entries.iter_mut() {
        let Entry::PerDir { rule, rules } = e else {
            continue;
        };
        let name = rule.pattern.strip_prefix(b"/").unwrap_or(&rule.pattern);
        let mut local = Vec::new();
        // A missing file is `Ok(None)`; an error is one the reader refuses
        // to treat as absent (a file reached by leaving the destination).
        let found = read(name).map_err(|e| ParseError::MergeFile {
            kind: if rule.flags.contains(RuleFlags::INCLUDE) {
                "in"
            } else {
                "ex"
            },
            name: lossy(name),
            err: e.to_string(),
        })?;
        if let Some(data) = found {
            parse_file(
                &mut local,
                cvs,
                ctx,
                &data,
                rule.flags,
                false,
                Some(dir),
                read,
                depth + 1,
            )?;
        }
        // A `!` in the local file clears the inherited rules too.
        let cleared = local_clears(&rule.flags, read, name);
        let mut inherited = if rule.flags.contains(RuleFlags::NO_INHERIT) || cleared {
            Vec::new()
        } else {
            std::mem::take(rules)
        };
        enter_entries(&mut inherited, cvs, ctx, dir, read, depth + 1)?;
        // Nested per-directory rules from this directory's file start here.
        enter_entries(&mut local, cvs, ctx, dir, read, depth + 1)?;
        local.extend(inherited);
        *rules = local;
    }
    Ok(())
}

/// Whether a merge file has a `!` line (it clears what it inherits).
fn local_clears(flags: &RuleFlags, read: MergeReader<'_>, name: &[u8]) -> bool {
    let Ok(Some(data)) = read(name) else {
        return false;
    };
    if flags.contains(RuleFlags::NO_PREFIXES) && !flags.contains(RuleFlags::CVS_IGNORE) {
        return false;
    }
    let ws = flags.contains(RuleFlags::WORD_SPLIT);
    data.split(|&c| c == b'\n' || c == b'\r' || c == 0 || (ws && is_space(c)))
        .any(|l| l == b"!")
}

struct Matching<'a> {
    side: Side,
    root: Option<&'a [u8]>,
    ignore_perishable: bool,
    cvs: &'a [Rule],
}

impl Matching<'_> {
    fn check(&self, entries: &[Entry], name: &[u8], is_dir: bool) -> Decision {
        for e in entries {
            match e {
                Entry::Rule(r) => {
                    if self.ignore_perishable && r.flags.contains(RuleFlags::PERISHABLE) {
                        continue;
                    }
                    if !applies(r.flags, self.side) {
                        continue;
                    }
                    if rule_matches(r, name, is_dir, self.root) {
                        return if r.is_include() {
                            Decision::Include
                        } else {
                            Decision::Exclude
                        };
                    }
                }
                Entry::PerDir { rules, .. } => {
                    let d = self.check(rules, name, is_dir);
                    if d != Decision::NoMatch {
                        return d;
                    }
                }
                Entry::Cvs(r) => {
                    if self.ignore_perishable && r.flags.contains(RuleFlags::PERISHABLE) {
                        continue;
                    }
                    for c in self.cvs {
                        if self.ignore_perishable && c.flags.contains(RuleFlags::PERISHABLE) {
                            continue;
                        }
                        if applies(c.flags, self.side) && rule_matches(c, name, is_dir, self.root) {
                            return if c.is_include() {
                                Decision::Include
                            } else {
                                Decision::Exclude
                            };
                        }
                    }
                }
            }
        }
        Decision::NoMatch
    }
}

/// Whether a rule with these side bits is used by `side`.
fn applies(flags: RuleFlags, side: Side) -> bool {
    match (
        flags.contains(RuleFlags::SENDER_SIDE),
        flags.contains(RuleFlags::RECEIVER_SIDE),
    ) {
        (true, false) => side == Side::Sender,
        (false, true) => side == Side::Receiver,
        _ => true,
    }
}

/// Upstream `rule_matches`.
#[must_use]
pub fn rule_matches(rule: &Rule, fname: &[u8], is_dir: bool, root: Option<&[u8]>) -> bool {
    let f = rule.flags;
    let ret_match = !f.contains(RuleFlags::NEGATE);
    let mut name = fname.strip_prefix(b"/").unwrap_or(fname);
    if name.is_empty() || f.contains(RuleFlags::XATTR) {
        return false;
    }
    let mut strings: Vec<&[u8]> = Vec::with_capacity(4);
    if rule.slash_cnt == 0 && !f.contains(RuleFlags::WILD2) {
        if let Some(p) = name.iter().rposition(|&c| c == b'/') {
            name = name.get(p + 1..).unwrap_or_default();
        }
    } else if let Some(r) = root.filter(|r| f.contains(RuleFlags::ABS_PATH) && r.len() > 1) {
        strings.push(r.strip_prefix(b"/").unwrap_or(r));
        strings.push(b"/");
    } else if f.contains(RuleFlags::WILD2_PREFIX) {
        strings.push(b"/");
    }
    strings.push(name);
    if is_dir {
        if f.contains(RuleFlags::WILD3_SUFFIX) {
            strings.push(b"/");
        }
    } else if f.contains(RuleFlags::DIRECTORY) {
        return !ret_match;
    }
    let mut pattern: &[u8] = &rule.pattern;
    let anchored = pattern.first() == Some(&b'/');
    if anchored {
        pattern = pattern.get(1..).unwrap_or_default();
    }
    let slash_handling: isize = if !anchored && rule.slash_cnt > 0 && !f.contains(RuleFlags::WILD2)
    {
        isize::try_from(rule.slash_cnt + 1).unwrap_or(isize::MAX)
    } else if !anchored && !f.contains(RuleFlags::WILD2_PREFIX) && f.contains(RuleFlags::WILD2) {
        -1
    } else {
        0
    };
    let matched = if f.contains(RuleFlags::WILD) || strings.len() > 1 {
        let text = strings.concat();
        let wild = f.contains(RuleFlags::WILD);
        match_array(pattern, &text, slash_handling, wild)
    } else if anchored {
        name == pattern
    } else {
        let (l1, l2) = (name.len(), pattern.len());
        l2 <= l1 && name.ends_with(pattern) && (l1 == l2 || name.get(l1 - l2 - 1) == Some(&b'/'))
    };
    if matched { ret_match } else { !ret_match }
}

/// Upstream `wildmatch_array` / `litmatch_array` on the joined text:
/// `where_ > 0` matches the last `where_` path elements, `< 0` tries after
/// every slash, `0` only at the start.
fn match_array(pattern: &[u8], text: &[u8], where_: isize, wild: bool) -> bool {
    let m = |t: &[u8]| {
        if wild {
            wildmatch(pattern, t)
        } else {
            pattern == t
        }
    };
    if where_ > 0 {
        let mut count = where_;
        let mut i = text.len();
        while i > 0 {
            i -= 1;
            if text.get(i) == Some(&b'/') {
                count -= 1;
                if count == 0 {
                    return m(text.get(i + 1..).unwrap_or_default());
                }
            }
        }
        return count == 1 && m(text);
    }
    if m(text) {
        return true;
    }
    if where_ < 0 {
        for (i, &c) in text.iter().enumerate() {
            if c == b'/' && m(text.get(i + 1..).unwrap_or_default()) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> FilterList {
        let mut fl = FilterList::new(Side::Sender);
        for r in rules {
            fl.add_filter(r.as_bytes()).unwrap();
        }
        fl
    }

    #[test]
    fn first_match_wins() {
        // (rules, name, is_dir, excluded)
        let rows: &[(&[&str], &str, bool, bool)] = &[
            (&["- *.o"], "a.o", false, true),
            (&["- *.o"], "d/a.o", false, true),
            (&["+ a.o", "- *.o"], "a.o", false, false),
            (&["- /a"], "a", false, true),
            (&["- /a"], "d/a", false, false),
            (&["- d/"], "d", false, false),
            (&["- d/"], "d", true, true),
            (&["- d/a"], "x/d/a", false, true),
            (&["- d/a"], "xd/a", false, false),
            (&["- d/*"], "x/d/a", false, true),
            (&["- d/**"], "x/d/a/b", false, true),
            (&["- /d/**"], "x/d/a/b", false, false),
            (&["- **/a"], "a", false, true),
            (&["- **/a"], "x/y/a", false, true),
            (&["- d/***"], "d", true, true),
            (&["- d/***"], "d/e/f", false, true),
            (&["-! *.c"], "a.c", false, false),
            (&["-! *.c"], "a.h", false, true),
            (&["- a?c"], "abc", false, true),
            (&["- a?c"], "a/c", false, false),
            (&["- [ab]*"], "bx", false, true),
            (&["- [!ab]*"], "bx", false, false),
            (&["H x"], "x", false, true),
            (&["P x"], "x", false, false),
            (&["- x", "!"], "x", false, false),
            (&["- a", "clear", "- b"], "a", false, false),
            (&["- a", "clear", "- b"], "b", false, true),
            (&["- sub"], "sub", true, true),
            (&["- sub/x"], "sub/x", false, true),
            (&["-x *"], "a", false, false),
        ];
        for (rules, name, dir, ex) in rows {
            let fl = list(rules);
            assert_eq!(
                fl.is_excluded(name.as_bytes(), *dir),
                *ex,
                "{rules:?} {name} dir={dir}"
            );
        }
    }

    #[test]
    fn sides() {
        let mut fl = list(&["P keep", "H hid", "- both"]);
        assert!(fl.is_excluded(b"hid", false));
        assert!(!fl.is_excluded(b"keep", false));
        fl.set_side(Side::Receiver);
        assert!(!fl.is_excluded(b"hid", false));
        assert!(fl.is_excluded(b"keep", false));
        assert!(fl.is_excluded(b"both", false));
    }

    #[test]
    fn wire_form_like_capture_19() {
        let mut fl = FilterList::new(Side::Receiver);
        fl.add_include(b"sub/").unwrap();
        fl.add_include(b"sub/c.txt").unwrap();
        fl.add_filter(b"H *.bak").unwrap();
        fl.add_filter(b"P keep.me").unwrap();
        fl.add_filter(b"-p tmp/").unwrap();
        fl.add_exclude(b"*.txt").unwrap();
        let w = fl.wire_rules(false, 32).unwrap();
        let want: Vec<&[u8]> = vec![
            b"+ sub/",
            b"+ sub/c.txt",
            b"-s *.bak",
            b"-p tmp/",
            b"- *.txt",
        ];
        assert_eq!(w, want);
        // A pushing client keeps the hide rule and sends the protect rule.
        let w = fl.wire_rules(true, 32).unwrap();
        let want: Vec<&[u8]> = vec![
            b"+ sub/",
            b"+ sub/c.txt",
            b"-r keep.me",
            b"-p tmp/",
            b"- *.txt",
        ];
        assert_eq!(w, want);
        assert!(fl.wire_rules(true, 29).is_err());
    }

    #[test]
    fn daemon_rules_win_over_the_client() {
        let mut user = FilterList::new(Side::Sender);
        user.add_include(b"*.o").unwrap();
        user.add_include(b"secret/").unwrap();
        let mut d = FilterList::new(Side::Sender).for_daemon();
        d.add_daemon_arg(&FilterArg::Exclude("*.o secret/".into()), &mut no_files)
            .unwrap();
        d.add_daemon_arg(&FilterArg::Exclude("sub/x".into()), &mut no_files)
            .unwrap();
        let set = FilterSet {
            user,
            daemon: Some(d),
        };
        assert!(set.is_excluded(b"a.o", false));
        assert!(set.is_excluded(b"secret", true));
        // A directory exclude covers the contents (`/***`).
        assert!(set.is_excluded(b"secret/f", false));
        // A pattern with a slash matches the path's trailing elements
        // (rsync adds the module-relative directory in front).
        assert!(set.is_excluded(b"sub/x", false));
        assert!(set.is_excluded(b"a/sub/x", false));
        assert!(!set.is_excluded(b"b/x", false));
        assert!(!set.is_excluded(b"a.c", false));
    }

    #[test]
    fn per_dir_merge() {
        let fl = list(&[": .f", "- *.x"]);
        fn files_get(k: &[u8]) -> Option<Vec<u8>> {
            match k {
                b"top/.f" => Some(b"+ a.x\n- /b\n# c\n".to_vec()),
                b"top/sub/.f" => Some(b"- c\n".to_vec()),
                _ => None,
            }
        }
        let rd = |dir: &[u8]| {
            let d = dir.to_vec();
            move |n: &[u8]| -> std::io::Result<Option<Vec<u8>>> {
                let mut k = d.clone();
                k.push(b'/');
                k.extend_from_slice(n);
                Ok(files_get(&k))
            }
        };
        let top = fl.enter_dir(b"top", &mut rd(b"top")).unwrap();
        assert!(!top.is_excluded(b"top/a.x", false));
        assert!(top.is_excluded(b"top/b", false));
        assert!(!top.is_excluded(b"top/sub/b", false));
        assert!(top.is_excluded(b"top/q.x", false));
        let sub = top.enter_dir(b"top/sub", &mut rd(b"top/sub")).unwrap();
        assert!(sub.is_excluded(b"top/sub/c", false));
        assert!(!sub.is_excluded(b"top/sub/a.x", false));
        assert!(!top.is_excluded(b"top/c", false));
    }
}
