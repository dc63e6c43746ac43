//! rsync's shell-style wildcard matcher.
//!
//! Layer: filter (L2). Pure; no I/O. Mirrors upstream lib/wildmatch.c
//! (`wildmatch`, `iwildmatch`): `*` matches within one path component, `**`
//! across `/`, `?` one character other than `/`, `[...]` a set (with `!` or
//! `^` negation, ranges, `[:class:]` names and backslash escapes; a set never
//! matches `/`), and `\` makes the next character literal. Bytes are compared
//! as bytes; classes use the C locale.
//!
//! ```
//! use ferrsync::filter::wildmatch;
//! assert!(wildmatch(b"*.txt", b"notes.txt"));
//! assert!(!wildmatch(b"*.txt", b"dir/notes.txt"));
//! assert!(wildmatch(b"**.txt", b"dir/notes.txt"));
//! ```

/// How one attempt ended. The two aborts prune the search the way upstream
/// does, which keeps patterns like `*a*b*c*` from going exponential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NoMatch,
    Match,
    /// The text ran out: no later start position can match either.
    AbortAll,
    /// A single `*` hit a `/`: only an outer `**` may try further.
    AbortToStarStar,
}

/// The byte at `i`, or 0 past the end (upstream's NUL terminator).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn fold(c: u8, on: bool) -> u8 {
    if on { c.to_ascii_lowercase() } else { c }
}

/// Whether `c` is in the named C-locale class; `None` for an unknown name.
fn in_class(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// Matches a `[...]` set starting just after the `[` at `*pi` against
/// `t_ch`; leaves `*pi` on the closing `]`. `Err` carries an abort.
fn match_set(p: &[u8], pi: &mut usize, t_ch: u8, ci: bool) -> Result<bool, Outcome> {
    let mut p_ch = at(p, *pi);
    if p_ch == b'^' {
        p_ch = b'!';
    }
    let negated = p_ch == b'!';
    if negated {
        *pi += 1;
        p_ch = at(p, *pi);
    }
    let mut prev_ch = 0u8;
    let mut matched = false;
    loop {
        if p_ch == 0 {
            return Err(Outcome::AbortAll);
        }
        if p_ch == b'\\' {
            *pi += 1;
            p_ch = fold(at(p, *pi), ci);
            if p_ch == 0 {
                return Err(Outcome::AbortAll);
            }
            matched |= t_ch == p_ch;
        } else if p_ch == b'-' && prev_ch != 0 && !matches!(at(p, *pi + 1), 0 | b']') {
            *pi += 1;
            p_ch = at(p, *pi);
            if p_ch == b'\\' {
                *pi += 1;
                p_ch = at(p, *pi);
                if p_ch == 0 {
                    return Err(Outcome::AbortAll);
                }
            }
            let hi = fold(p_ch, ci);
            matched |= (prev_ch..=hi).contains(&t_ch);
            // A range end cannot start another range.
            p_ch = 0;
        } else if p_ch == b'[' && at(p, *pi + 1) == b':' {
            let start = *pi + 2;
            let mut end = start;
            while !matches!(at(p, end), 0 | b']') {
                end += 1;
            }
            if at(p, end) == 0 {
                return Err(Outcome::AbortAll);
            }
            if end == start || at(p, end - 1) != b':' {
                // No ":]": the '[' is an ordinary member.
                matched |= t_ch == b'[';
                p_ch = b'[';
            } else {
                let name = p.get(start..end - 1).unwrap_or_default();
                matched |= in_class(name, t_ch).ok_or(Outcome::AbortAll)?;
                *pi = end;
                p_ch = 0;
            }
        } else {
            p_ch = fold(p_ch, ci);
            matched |= t_ch == p_ch;
        }
        prev_ch = p_ch;
        *pi += 1;
        p_ch = at(p, *pi);
        if p_ch == b']' {
            break;
        }
    }
    Ok(matched != negated && t_ch != b'/')
}

fn dowild(p: &[u8], mut pi: usize, t: &[u8], mut ti: usize, ci: bool) -> Outcome {
    loop {
        let p_ch = at(p, pi);
        if p_ch == 0 {
            break;
        }
        let t_ch = fold(at(t, ti), ci);
        if t_ch == 0 && p_ch != b'*' {
            return Outcome::AbortAll;
        }
        match p_ch {
            b'?' => {
                if t_ch == b'/' {
                    return Outcome::NoMatch;
                }
            }
            b'*' => {
                pi += 1;
                let double = at(p, pi) == b'*';
                while at(p, pi) == b'*' {
                    pi += 1;
                }
                if at(p, pi) == 0 {
                    // A trailing "**" matches all; a trailing "*" only
                    // within the last component.
                    let rest = t.get(ti..).unwrap_or_default();
                    return if double || !rest.contains(&b'/') {
                        Outcome::Match
                    } else {
                        Outcome::NoMatch
                    };
                }
                while let Some(&c) = t.get(ti) {
                    match dowild(p, pi, t, ti, ci) {
                        Outcome::NoMatch => {
                            if !double && c == b'/' {
                                return Outcome::AbortToStarStar;
                            }
                        }
                        Outcome::AbortToStarStar if double => {}
                        other => return other,
                    }
                    ti += 1;
                }
                return Outcome::AbortAll;
            }
            b'[' => {
                pi += 1;
                match match_set(p, &mut pi, t_ch, ci) {
                    Ok(true) => {}
                    Ok(false) => return Outcome::NoMatch,
                    Err(abort) => return abort,
                }
            }
            _ => {
                let lit = if p_ch == b'\\' {
                    pi += 1;
                    at(p, pi)
                } else {
                    p_ch
                };
                if t_ch != fold(lit, ci) {
                    return Outcome::NoMatch;
                }
            }
        }
        pi += 1;
        ti += 1;
    }
    if ti >= t.len() {
        Outcome::Match
    } else {
        Outcome::NoMatch
    }
}

/// Whether `pattern` matches the whole of `text` under rsync's rules.
#[must_use]
pub fn wildmatch(pattern: &[u8], text: &[u8]) -> bool {
    dowild(pattern, 0, text, 0, false) == Outcome::Match
}

/// [`wildmatch`] ignoring ASCII case on both sides (upstream `iwildmatch`,
/// used for host names in `hosts allow`/`hosts deny`).
#[must_use]
pub fn iwildmatch(pattern: &[u8], text: &[u8]) -> bool {
    dowild(pattern, 0, text, 0, true) == Outcome::Match
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (matches, text, pattern)
    const CASES: &[(bool, &str, &str)] = &[
        // literals, ?, *
        (true, "foo", "foo"),
        (false, "foo", "bar"),
        (true, "", ""),
        (false, "foo", ""),
        (true, "foo", "???"),
        (false, "foo", "??"),
        (true, "foo", "*"),
        (true, "foo", "f*"),
        (false, "foo", "*f"),
        (true, "foo", "*foo*"),
        (true, "foobar", "*ob*a*r*"),
        (true, "aaaaaaabababab", "*ab"),
        (false, "aaabbb", "b*a"),
        (false, "aabcaa", "*ba*"),
        // backslash
        (true, "foo*", "foo\\*"),
        (false, "foobar", "foo\\*bar"),
        (true, "f\\oo", "f\\\\oo"),
        (true, "abc", "\\a\\b\\c"),
        (true, "?a?b", "\\??\\?b"),
        (false, "", "\\"),
        (false, "\\", "\\"),
        (true, "[ab]", "\\[ab]"),
        // sets
        (true, "ball", "*[al]?"),
        (false, "ten", "[ten]"),
        (true, "ten", "**[!te]"),
        (false, "ten", "**[!ten]"),
        (true, "ten", "t[a-g]n"),
        (false, "ten", "t[!a-g]n"),
        (true, "ton", "t[!a-g]n"),
        (true, "ton", "t[^a-g]n"),
        (true, "a]b", "a[]]b"),
        (true, "a-b", "a[]-]b"),
        (false, "aab", "a[]-]b"),
        (true, "aab", "a[]a-]b"),
        (true, "]", "]"),
        (false, "acrt", "a[c-c]st"),
        (true, "acrt", "a[c-c]rt"),
        (false, "]", "[!]-]"),
        (true, "a", "[!]-]"),
        (true, "-", "[-]"),
        (false, "-", "[a-"),
        (false, "ab", "[!"),
        (false, "ab", "ab["),
        (true, "-", "[--A]"),
        (true, "5", "[--A]"),
        (false, "j", "[a-e-n]"),
        (true, "-", "[a-e-n]"),
        (true, "^", "[a^bc]"),
        (true, "-b]", "[a-]b]"),
        (true, "\\", "[\\\\]"),
        (false, "\\", "[!\\\\]"),
        (true, "G", "[A-\\\\]"),
        (true, "2", "[\\1-\\3]"),
        (false, "4", "[\\1-\\3]"),
        (true, "[", "[[-\\]]"),
        (true, "]", "[[-\\]]"),
        (false, "-", "[[-\\]]"),
        // classes
        (true, "a1B", "[[:alpha:]][[:digit:]][[:upper:]]"),
        (false, "a", "[[:digit:][:upper:][:space:]]"),
        (true, "A", "[[:digit:][:upper:][:space:]]"),
        (true, " ", "[[:digit:][:upper:][:space:]]"),
        (false, "1", "[[:digit:][:upper:][:spaci:]]"),
        (true, ".", "[[:digit:][:punct:][:space:]]"),
        (true, "f", "[[:xdigit:]]"),
        (true, "y", "[a-c[:digit:]x-z]"),
        (false, "q", "[a-c[:digit:]x-z]"),
        (true, "[ab]", "[[:]ab]"),
        (false, "[ab]", "[[::]ab]"),
        (true, "[ab]", "[[:digit]ab]"),
        // slashes
        (false, "foo/baz/bar", "foo*bar"),
        (true, "foo/baz/bar", "foo**bar"),
        (false, "foo/bar", "foo?bar"),
        (false, "foo/bar", "foo[/]bar"),
        (false, "foo/bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r"),
        (true, "foo-bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r"),
        (false, "foo", "**/foo"),
        (true, "/foo", "**/foo"),
        (true, "bar/baz/foo", "**/foo"),
        (false, "bar/baz/foo", "*/foo"),
        (false, "foo/bar/baz", "**/bar*"),
        (true, "deep/foo/bar/baz", "**/bar/*"),
        (false, "deep/foo/bar/baz/", "**/bar/*"),
        (true, "deep/foo/bar/baz/", "**/bar/**"),
        (true, "foo/bar/baz", "**/bar**"),
        (true, "foo/bar/baz/x", "*/bar/**"),
        (false, "deep/foo/bar/baz/x", "*/bar/**"),
        (true, "deep/foo/bar/baz/x", "**/bar/*/*"),
        (true, "foo/bar/baz/to", "**/t[o]"),
        (true, "/\\", "*/\\\\"),
        (false, "/\\", "*/\\"),
        // the abort paths
        (
            true,
            "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1",
            "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
        ),
        (
            false,
            "-adobe-courier-bold-o-normal--12-120-75-75-/-70-iso8859-1",
            "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
        ),
        (
            true,
            "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt",
            "**/*a*b*g*n*t",
        ),
        (
            false,
            "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz",
            "**/*a*b*g*n*t",
        ),
    ];

    #[test]
    fn table() {
        for &(want, text, pattern) in CASES {
            assert_eq!(
                wildmatch(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn case_folding() {
        assert!(iwildmatch(b"*.EXAMPLE.com", b"Host.example.COM"));
        assert!(iwildmatch(b"[A-C]x", b"bX"));
        assert!(!wildmatch(b"*.EXAMPLE.com", b"host.example.com"));
    }

    #[test]
    fn long_star_runs_stay_fast() {
        let text = vec![b'a'; 2000];
        let mut pattern = b"*a".repeat(40);
        pattern.extend_from_slice(b"b");
        assert!(!wildmatch(&pattern, &text));
    }
}
