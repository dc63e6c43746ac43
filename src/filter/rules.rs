//! Filter rule records and the rule-text parser.
//!
//! Layer: filter (L2). Pure; no I/O.
//! Mirrors upstream exclude.c `parse_rule_tok`, `add_rule` (the pattern
//! bookkeeping) and `get_rule_prefix`.
//!
//! A rule is `<kind>[<modifiers>] <pattern>` (short form, `_` may stand for
//! the space) or `<word>[,<modifiers>] <pattern>` (long form):
//!
//! ```
//! use ferrsync::filter::rules::{parse_token, RuleFlags};
//! let (tok, used) = parse_token(b"-/ tmp/", RuleFlags::NONE, false, false).unwrap().unwrap();
//! assert!(tok.flags.contains(RuleFlags::ABS_PATH));
//! assert_eq!(tok.pattern, b"tmp/");
//! assert_eq!(used, 7);
//! ```

use std::fmt;

/// Bit set describing a rule (upstream `FILTRULE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RuleFlags(pub u32);

impl RuleFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// `+`: an include (else an exclude).
    pub const INCLUDE: Self = Self(1 << 0);
    /// Pattern ended in `/`: matches directories only.
    pub const DIRECTORY: Self = Self(1 << 1);
    /// Merge file whose lines carry no prefixes (`-` / `+` modifier).
    pub const NO_PREFIXES: Self = Self(1 << 2);
    /// Merge file split on whitespace (`w`).
    pub const WORD_SPLIT: Self = Self(1 << 3);
    /// Per-directory merge rules are not inherited (`n`).
    pub const NO_INHERIT: Self = Self(1 << 4);
    /// CVS-ignore semantics (`C`).
    pub const CVS_IGNORE: Self = Self(1 << 5);
    /// Match against the absolute path (`/`).
    pub const ABS_PATH: Self = Self(1 << 6);
    /// Negated match (`!`).
    pub const NEGATE: Self = Self(1 << 7);
    /// A merge rule (`.` or `:`).
    pub const MERGE_FILE: Self = Self(1 << 8);
    /// A per-directory merge rule (`:`).
    pub const PERDIR_MERGE: Self = Self(1 << 9);
    /// Exclude the merge file itself (`e`).
    pub const EXCLUDE_SELF: Self = Self(1 << 10);
    /// Sender side only (`s`, `hide`, `show`).
    pub const SENDER_SIDE: Self = Self(1 << 11);
    /// Receiver side only (`r`, `protect`, `risk`).
    pub const RECEIVER_SIDE: Self = Self(1 << 12);
    /// Ignored in directories being deleted (`p`).
    pub const PERISHABLE: Self = Self(1 << 13);
    /// An xattr-name rule (`x`).
    pub const XATTR: Self = Self(1 << 14);
    /// `!`: clears the list.
    pub const CLEAR_LIST: Self = Self(1 << 15);
    /// Pattern has `*`, `?` or `[`.
    pub const WILD: Self = Self(1 << 16);
    /// Pattern has `**`.
    pub const WILD2: Self = Self(1 << 17);
    /// Pattern starts with `**`.
    pub const WILD2_PREFIX: Self = Self(1 << 18);
    /// Pattern ends with `***`.
    pub const WILD3_SUFFIX: Self = Self(1 << 19);
    /// Both side bits.
    pub const SIDES: Self = Self(Self::SENDER_SIDE.0 | Self::RECEIVER_SIDE.0);
    /// What a rule read from a merge file inherits from the merge rule.
    pub const FROM_CONTAINER: Self = Self(
        Self::ABS_PATH.0
            | Self::INCLUDE.0
            | Self::DIRECTORY.0
            | Self::NEGATE.0
            | Self::PERISHABLE.0,
    );

    /// Whether every bit of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The bits of `self` that are also in `other`.
    #[must_use]
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }
}

impl std::ops::BitOr for RuleFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A rule that cannot be parsed; the text is rsync's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The rule kind is not known.
    #[error("Unknown filter rule: `{0}'")]
    UnknownRule(String),
    /// A modifier is not allowed here.
    #[error("invalid modifier '{ch}' at position {pos} in filter rule: {rule}")]
    InvalidModifier {
        /// The modifier.
        ch: char,
        /// Its offset in the rule.
        pos: usize,
        /// The rule text.
        rule: String,
    },
    /// `!` followed by more text.
    #[error("'!' rule has trailing characters: {0}")]
    ClearWithText(String),
    /// A rule without a pattern.
    #[error("unexpected end of filter rule: {0}")]
    NoPattern(String),
    /// A one-sided merge file with one-sided rules inside.
    #[error("specified-side merge file contains specified-side filter: {0}")]
    SidedInSided(String),
    /// A merge file could not be read.
    #[error("failed to open {kind}clude file {name}: {err}")]
    MergeFile {
        /// `in` or `ex`.
        kind: &'static str,
        /// The file name.
        name: String,
        /// Why.
        err: String,
    },
    /// Merge files nest too deeply.
    #[error("merge-file include depth limit exceeded at {0}")]
    TooDeep(String),
}

/// One parsed rule token: its flags and its pattern text (not yet
/// processed into a [`Rule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// Flags from the prefix, the modifiers and the template.
    pub flags: RuleFlags,
    /// The pattern text.
    pub pattern: &'a [u8],
}

fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// rsync's `isspace` in the C locale.
#[must_use]
pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Matches a long rule name at the start of `s`; returns the offset of the
/// last character consumed (upstream `rule_strcmp`: the caller then steps
/// past it), or `None`.
fn long_name(s: &[u8], word: &[u8]) -> Option<usize> {
    if !s.starts_with(word) {
        return None;
    }
    match s.get(word.len()) {
        None => Some(word.len() - 1),
        Some(&c) if is_space(c) || c == b'_' => Some(word.len() - 1),
        Some(b',') => Some(word.len()),
        Some(_) => None,
    }
}

/// Parses the next rule from `s` under a merge-file `template` (use
/// [`RuleFlags::NONE`] for `--filter`, [`RuleFlags::INCLUDE`] with
/// `old_prefixes` for `--include`). Returns the token and how many bytes
/// of `s` it used, or `None` at the end of the input.
///
/// `delete_excluded` turns plain includes/excludes into sender-side rules
/// as `--delete-excluded` does.
///
/// # Errors
/// An unknown rule kind, a bad modifier, or a rule without a pattern.
#[allow(clippy::too_many_lines)]
pub fn parse_token(
    s: &[u8],
    template: RuleFlags,
    old_prefixes: bool,
    delete_excluded: bool,
) -> Result<Option<(Token<'_>, usize)>, ParseError> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    if template.contains(RuleFlags::WORD_SPLIT) {
        while is_space(at(i)) {
            i += 1;
        }
    }
    let start = i;
    if at(i) == 0 {
        return Ok(None);
    }
    let rule_text = || lossy(s.get(start..).unwrap_or_default());
    let mut flags = template.and(RuleFlags::FROM_CONTAINER);
    if template.contains(RuleFlags::NO_PREFIXES) {
        if at(i) == b'!' && template.contains(RuleFlags::CVS_IGNORE) {
            flags.insert(RuleFlags::CLEAR_LIST);
        }
    } else if old_prefixes {
        if at(i) == b'-' && at(i + 1) == b' ' {
            flags.remove(RuleFlags::INCLUDE);
            i += 2;
        } else if at(i) == b'+' && at(i + 1) == b' ' {
            flags.insert(RuleFlags::INCLUDE);
            i += 2;
        } else if at(i) == b'!' {
            flags.insert(RuleFlags::CLEAR_LIST);
        }
    } else {
        let rest = s.get(i..).unwrap_or_default();
        let named: &[(&[u8], u8)] = &[
            (b"clear", b'!'),
            (b"dir-merge", b':'),
            (b"exclude", b'-'),
            (b"hide", b'H'),
            (b"include", b'+'),
            (b"merge", b'.'),
            (b"protect", b'P'),
            (b"risk", b'R'),
            (b"show", b'S'),
        ];
        let first = at(i);
        let ch = match named.iter().find(|(w, _)| w.first() == Some(&first)) {
            Some((word, ch)) => match long_name(rest, word) {
                Some(adv) => {
                    i += adv;
                    *ch
                }
                None => return Err(ParseError::UnknownRule(rule_text())),
            },
            None => {
                if at(i + 1) == b',' {
                    i += 1;
                }
                first
            }
        };
        let mut side_prefix = false;
        match ch {
            b':' => flags.insert(RuleFlags::PERDIR_MERGE | RuleFlags::MERGE_FILE),
            b'.' => flags.insert(RuleFlags::MERGE_FILE),
            b'+' => flags.insert(RuleFlags::INCLUDE),
            b'-' => {}
            b'S' | b'H' => {
                if ch == b'S' {
                    flags.insert(RuleFlags::INCLUDE);
                }
                flags.insert(RuleFlags::SENDER_SIDE);
                side_prefix = true;
            }
            b'R' | b'P' => {
                if ch == b'R' {
                    flags.insert(RuleFlags::INCLUDE);
                }
                flags.insert(RuleFlags::RECEIVER_SIDE);
                side_prefix = true;
            }
            b'!' => flags.insert(RuleFlags::CLEAR_LIST),
            _ => return Err(ParseError::UnknownRule(rule_text())),
        }
        if ch != b'!' {
            loop {
                i += 1;
                let c = at(i);
                if c == 0 || c == b' ' || c == b'_' {
                    break;
                }
                if template.contains(RuleFlags::WORD_SPLIT) && is_space(c) {
                    i -= 1;
                    break;
                }
                let invalid = || ParseError::InvalidModifier {
                    ch: char::from(c),
                    pos: i - start,
                    rule: rule_text(),
                };
                let merge = flags.contains(RuleFlags::MERGE_FILE);
                let no_pre = flags.contains(RuleFlags::NO_PREFIXES);
                match c {
                    b'-' | b'+' => {
                        if !merge || no_pre {
                            return Err(invalid());
                        }
                        flags.insert(RuleFlags::NO_PREFIXES);
                        if c == b'+' {
                            flags.insert(RuleFlags::INCLUDE);
                        }
                    }
                    b'/' => flags.insert(RuleFlags::ABS_PATH),
                    b'!' => {
                        if merge {
                            return Err(invalid());
                        }
                        flags.insert(RuleFlags::NEGATE);
                    }
                    b'C' => {
                        if no_pre || side_prefix {
                            return Err(invalid());
                        }
                        flags.insert(
                            RuleFlags::NO_PREFIXES
                                | RuleFlags::WORD_SPLIT
                                | RuleFlags::NO_INHERIT
                                | RuleFlags::CVS_IGNORE,
                        );
                    }
                    b'e' | b'n' | b'w' => {
                        if !merge {
                            return Err(invalid());
                        }
                        flags.insert(match c {
                            b'e' => RuleFlags::EXCLUDE_SELF,
                            b'n' => RuleFlags::NO_INHERIT,
                            _ => RuleFlags::WORD_SPLIT,
                        });
                    }
                    b'p' => flags.insert(RuleFlags::PERISHABLE),
                    b'r' | b's' => {
                        if side_prefix {
                            return Err(invalid());
                        }
                        flags.insert(if c == b'r' {
                            RuleFlags::RECEIVER_SIDE
                        } else {
                            RuleFlags::SENDER_SIDE
                        });
                    }
                    b'x' => flags.insert(RuleFlags::XATTR),
                    _ => return Err(invalid()),
                }
            }
        }
        if at(i) != 0 {
            i += 1;
        }
    }
    if template.intersects(RuleFlags::SIDES) {
        if flags.intersects(RuleFlags::SIDES) {
            return Err(ParseError::SidedInSided(rule_text()));
        }
        flags.insert(template.and(RuleFlags::SIDES));
    }
    let i = i.min(s.len());
    let len = if template.contains(RuleFlags::WORD_SPLIT) {
        s.get(i..)
            .unwrap_or_default()
            .iter()
            .position(|&c| is_space(c) || c == 0)
            .unwrap_or(s.len() - i)
    } else {
        s.get(i..)
            .unwrap_or_default()
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(s.len() - i)
    };
    if flags.contains(RuleFlags::CLEAR_LIST) {
        if !template.contains(RuleFlags::NO_PREFIXES) && !old_prefixes && len > 0 {
            return Err(ParseError::ClearWithText(rule_text()));
        }
        if len > 1 {
            flags.remove(RuleFlags::CLEAR_LIST);
        }
    } else if len == 0 && !flags.contains(RuleFlags::CVS_IGNORE) {
        return Err(ParseError::NoPattern(rule_text()));
    }
    if delete_excluded
        && !flags.intersects(RuleFlags::SIDES | RuleFlags::MERGE_FILE | RuleFlags::PERDIR_MERGE)
    {
        flags.insert(RuleFlags::SENDER_SIDE);
    }
    let pattern = s.get(i..i + len).unwrap_or_default();
    Ok(Some((Token { flags, pattern }, i + len)))
}

/// One include/exclude (or merge) rule with its pattern prepared for
/// matching (upstream `filter_rule` after `add_rule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The flags, including the `WILD*` bits computed from the pattern.
    pub flags: RuleFlags,
    /// The pattern without a trailing `/` (that sets
    /// [`RuleFlags::DIRECTORY`]).
    pub pattern: Vec<u8>,
    /// How many `/` the pattern has.
    pub slash_cnt: usize,
}

impl Rule {
    /// Prepares `pattern` as upstream `add_rule` does: a trailing `/`
    /// becomes [`RuleFlags::DIRECTORY`], the slashes are counted and the
    /// wildcard kind is noted.
    #[must_use]
    pub fn new(mut flags: RuleFlags, pattern: &[u8]) -> Self {
        let mut pat = pattern;
        if pat.len() > 1 && pat.last() == Some(&b'/') {
            pat = pat.get(..pat.len() - 1).unwrap_or_default();
            flags.insert(RuleFlags::DIRECTORY);
        }
        flags.remove(
            RuleFlags::WILD | RuleFlags::WILD2 | RuleFlags::WILD2_PREFIX | RuleFlags::WILD3_SUFFIX,
        );
        if pat.iter().any(|c| matches!(c, b'*' | b'[' | b'?')) {
            flags.insert(RuleFlags::WILD);
            if let Some(p) = pat.windows(2).position(|w| w == b"**") {
                flags.insert(RuleFlags::WILD2);
                if p == 0 {
                    flags.insert(RuleFlags::WILD2_PREFIX);
                }
                if pat.ends_with(b"***") {
                    flags.insert(RuleFlags::WILD3_SUFFIX);
                }
            }
        }
        Rule {
            flags,
            pattern: pat.to_vec(),
            slash_cnt: pat.iter().filter(|&&c| c == b'/').count(),
        }
    }

    /// Whether the rule includes (else excludes).
    #[must_use]
    pub fn is_include(&self) -> bool {
        self.flags.contains(RuleFlags::INCLUDE)
    }

    /// The rule's prefix text (upstream `get_rule_prefix`). With
    /// `for_xfer`, the prefix is the one sent at `protocol`; `None` when
    /// the rule cannot be said at that protocol.
    #[must_use]
    pub fn prefix(
        &self,
        for_xfer: bool,
        protocol: u8,
        am_sender: bool,
        delete_excluded: bool,
    ) -> Option<String> {
        let f = self.flags;
        let legal_len: usize = if for_xfer && protocol < 29 { 1 } else { 16 };
        let mut legal_len = legal_len;
        let mut op = String::new();
        if f.contains(RuleFlags::PERDIR_MERGE) {
            if legal_len == 1 {
                return None;
            }
            op.push(':');
        } else if f.contains(RuleFlags::INCLUDE) {
            op.push('+');
        } else if legal_len != 1
            || (matches!(self.pattern.first(), Some(b'-' | b'+'))
                && self.pattern.get(1) == Some(&b' '))
        {
            op.push('-');
        } else {
            legal_len = 0;
        }
        if f.contains(RuleFlags::ABS_PATH) {
            op.push('/');
        }
        if f.contains(RuleFlags::NEGATE) {
            op.push('!');
        }
        if f.contains(RuleFlags::CVS_IGNORE) {
            op.push('C');
        } else {
            if f.contains(RuleFlags::NO_INHERIT) {
                op.push('n');
            }
            if f.contains(RuleFlags::WORD_SPLIT) {
                op.push('w');
            }
            if f.contains(RuleFlags::NO_PREFIXES) {
                op.push(if f.contains(RuleFlags::INCLUDE) {
                    '+'
                } else {
                    '-'
                });
            }
        }
        if f.contains(RuleFlags::EXCLUDE_SELF) {
            op.push('e');
        }
        if f.contains(RuleFlags::XATTR) {
            op.push('x');
        }
        if f.contains(RuleFlags::SENDER_SIDE) && (!for_xfer || protocol >= 29) {
            op.push('s');
        }
        if f.contains(RuleFlags::RECEIVER_SIDE)
            && (!for_xfer || protocol >= 29 || (delete_excluded && am_sender))
        {
            op.push('r');
        }
        if f.contains(RuleFlags::PERISHABLE) {
            if !for_xfer || protocol >= 30 {
                op.push('p');
            } else if am_sender {
                return None;
            }
        }
        if op.len() > legal_len {
            return None;
        }
        if legal_len > 0 {
            op.push(' ');
        }
        Some(op)
    }

    /// The rule as `--filter` text (prefix, pattern, `/` for a
    /// directory-only rule).
    #[must_use]
    pub fn to_text(&self) -> Vec<u8> {
        let mut v = self
            .prefix(false, 32, false, false)
            .unwrap_or_default()
            .into_bytes();
        v.extend_from_slice(&self.pattern);
        if self.flags.contains(RuleFlags::DIRECTORY) {
            v.push(b'/');
        }
        v
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> (u32, String) {
        let (t, _) = parse_token(s.as_bytes(), RuleFlags::NONE, false, false)
            .unwrap()
            .unwrap();
        (t.flags.0, String::from_utf8_lossy(t.pattern).into_owned())
    }

    #[test]
    fn short_and_long_forms_agree() {
        let pairs = [
            ("- foo", "exclude foo"),
            ("+ foo", "include foo"),
            ("H foo", "hide foo"),
            ("S foo", "show foo"),
            ("P foo", "protect foo"),
            ("R foo", "risk foo"),
            (". f", "merge f"),
            (": f", "dir-merge f"),
            ("-/ foo", "exclude,/ foo"),
            ("-! foo", "exclude,! foo"),
            ("+s foo", "include,s foo"),
            ("-rp foo", "exclude,rp foo"),
            (":n- f", "dir-merge,n- f"),
            ("-_foo", "exclude_foo"),
            ("-,p foo", "exclude,p foo"),
        ];
        for (a, b) in pairs {
            assert_eq!(tok(a), tok(b), "{a} vs {b}");
        }
    }

    #[test]
    fn modifiers_set_flags() {
        let rows: &[(&str, RuleFlags)] = &[
            ("-/ x", RuleFlags::ABS_PATH),
            ("-! x", RuleFlags::NEGATE),
            ("-s x", RuleFlags::SENDER_SIDE),
            ("-r x", RuleFlags::RECEIVER_SIDE),
            ("-p x", RuleFlags::PERISHABLE),
            ("-x x", RuleFlags::XATTR),
            ("-C", RuleFlags::CVS_IGNORE),
            (":e f", RuleFlags::EXCLUDE_SELF),
            (":n f", RuleFlags::NO_INHERIT),
            (":w f", RuleFlags::WORD_SPLIT),
            (":- f", RuleFlags::NO_PREFIXES),
            (":+ f", RuleFlags::INCLUDE),
            ("H x", RuleFlags::SENDER_SIDE),
            ("P x", RuleFlags::RECEIVER_SIDE),
            ("!", RuleFlags::CLEAR_LIST),
        ];
        for (s, f) in rows {
            assert!(RuleFlags(tok(s).0).contains(*f), "{s}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "X foo",
            "-e foo",
            "-n foo",
            "-w foo",
            ".! f",
            "Hs foo",
            "Pr foo",
            "HC",
            "! x",
            "-",
            "+ ",
            "excludex foo",
            ":-+ f",
        ] {
            assert!(
                parse_token(bad.as_bytes(), RuleFlags::NONE, false, false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn old_prefixes() {
        let (t, _) = parse_token(b"+ foo", RuleFlags::NONE, true, false)
            .unwrap()
            .unwrap();
        assert!(t.flags.contains(RuleFlags::INCLUDE));
        let (t, _) = parse_token(b"-p foo", RuleFlags::INCLUDE, true, false)
            .unwrap()
            .unwrap();
        assert_eq!(t.pattern, b"-p foo");
        assert!(t.flags.contains(RuleFlags::INCLUDE));
    }

    #[test]
    fn prefixes_for_the_wire() {
        let rows: &[(&str, u8, bool, Option<&str>)] = &[
            ("+ sub/", 32, false, Some("+ sub/")),
            ("H *.bak", 32, false, Some("-s *.bak")),
            ("-p tmp/", 32, false, Some("-p tmp/")),
            ("-p tmp/", 29, false, Some("- tmp/")),
            ("-p tmp/", 29, true, None),
            ("- foo", 28, false, Some("foo")),
            ("+ foo", 28, false, Some("+ foo")),
            ("-/ foo", 28, false, None),
            (": .f", 28, false, None),
            (":n- .f", 32, false, Some(":n- .f")),
            ("-! x", 32, false, Some("-! x")),
        ];
        for (text, proto, am_sender, want) in rows {
            let (t, _) = parse_token(text.as_bytes(), RuleFlags::NONE, false, false)
                .unwrap()
                .unwrap();
            let r = Rule::new(t.flags, t.pattern);
            let got = r.prefix(true, *proto, *am_sender, false).map(|p| {
                let mut s = p;
                s.push_str(&String::from_utf8_lossy(&r.pattern));
                if r.flags.contains(RuleFlags::DIRECTORY) {
                    s.push('/');
                }
                s
            });
            assert_eq!(got.as_deref(), *want, "{text} at {proto}");
        }
    }
}
