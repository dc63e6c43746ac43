//! `--chmod`, `incoming chmod` and `outgoing chmod` rules.
//!
//! Layer: fs (L3). Pure except [`current_umask`], which reads
//! `/proc/self/status`. Mirrors upstream chmod.c (`parse_chmod`,
//! `tweak_mode`).
//!
//! A rule string is comma-separated clauses. Each clause may start with `D`
//! (directories only) or `F` (files only), then either `[ugoa]*[-+=]` with
//! permission letters `rwxXst` (or one of `u`, `g`, `o` to copy those
//! bits), or an octal mode. Without `ugoa` the bits are masked by the umask,
//! as chmod(1) does. `X` sets execute only on directories and on files that
//! already have an execute bit.
//!
//! ```
//! use ferrsync::fs::chmod::ChmodRules;
//! let r = ChmodRules::parse_with_umask("Dg+s,ug+w,Fo-w,+X", 0o022).unwrap();
//! assert_eq!(r.apply(0o100644, false), 0o100664);
//! assert_eq!(r.apply(0o040755, true), 0o042775);
//! ```

/// Permission bits a rule may touch (rsync `CHMOD_BITS`).
const CHMOD_BITS: u32 = 0o7777;
/// The file-type bits of a mode.
const S_IFMT: u32 = 0o170_000;
/// Directory type.
const S_IFDIR: u32 = 0o040_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Eq,
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Only {
    #[default]
    Both,
    Dirs,
    Files,
}

/// One parsed clause, in rsync's AND/OR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clause {
    and: u32,
    or: u32,
    copy_src: u32,
    copy_dst: u32,
    copy_and: u32,
    op: Op,
    only: Only,
    x_keep: bool,
}

/// A parsed list of chmod clauses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChmodRules {
    clauses: Vec<Clause>,
    text: String,
}

/// The process umask as `/proc/self/status` reports it, else 0o022.
#[must_use]
pub fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// The set-id/sticky bits that a `=` with copied bits clears for `who`.
fn special_bits(who: u32) -> u32 {
    let mut bits = 0;
    if who & 0o100 != 0 {
        bits |= 0o4000;
    }
    if who & 0o010 != 0 {
        bits |= 0o2000;
    }
    if who & 0o001 != 0 {
        bits |= 0o1000;
    }
    bits
}

/// Clause parser state, as upstream's state machine.
#[derive(Default)]
struct Pending {
    who: u32,
    what: u32,
    op: Option<Op>,
    top_bits: u32,
    top_oct: u32,
    copy: u32,
    only: Only,
    x_keep: bool,
    in_perms: bool,
}

impl Pending {
    fn finish(&self, umask: u32) -> Result<Clause, String> {
        let op = self.op.ok_or("missing operator")?;
        let (who, bits, copy_and) = if self.who != 0 {
            (self.who, self.who * self.what, CHMOD_BITS)
        } else {
            (0o111, (0o111 * self.what) & !umask, !umask)
        };
        let (and, or, copy_src, copy_dst) = match op {
            Op::Add => (CHMOD_BITS, bits + self.top_oct, self.copy, who),
            Op::Sub => (CHMOD_BITS & !(bits | self.top_oct), 0, self.copy, who),
            Op::Eq => {
                let mut clear = who * 7;
                if self.top_oct != 0 {
                    clear |= self.top_bits;
                }
                if self.copy != 0 {
                    clear |= special_bits(who);
                }
                (CHMOD_BITS & !clear, bits + self.top_oct, self.copy, who)
            }
            Op::Set => (0, self.what, 0, 0),
        };
        Ok(Clause {
            and,
            or,
            copy_src,
            copy_dst,
            copy_and: if op == Op::Set { CHMOD_BITS } else { copy_and },
            op,
            only: self.only,
            x_keep: self.x_keep,
        })
    }

    fn feed(&mut self, c: char) -> Result<(), ()> {
        if self.op == Some(Op::Set) {
            let d = c.to_digit(8).ok_or(())?;
            self.what = self.what * 8 + d;
            return if self.what > CHMOD_BITS {
                Err(())
            } else {
                Ok(())
            };
        }
        if !self.in_perms {
            match c {
                'D' if self.only != Only::Files => self.only = Only::Dirs,
                'F' if self.only != Only::Dirs => self.only = Only::Files,
                'u' => {
                    self.who |= 0o100;
                    self.top_bits |= 0o4000;
                }
                'g' => {
                    self.who |= 0o010;
                    self.top_bits |= 0o2000;
                }
                'o' => self.who |= 0o001,
                'a' => {
                    self.who |= 0o111;
                    self.top_bits |= 0o6000;
                }
                '+' | '-' | '=' => {
                    self.op = Some(match c {
                        '+' => Op::Add,
                        '-' => Op::Sub,
                        _ => Op::Eq,
                    });
                    self.in_perms = true;
                }
                _ => {
                    let d = c.to_digit(8).ok_or(())?;
                    if self.who != 0 {
                        return Err(());
                    }
                    self.op = Some(Op::Set);
                    self.who = 1;
                    self.what = d;
                }
            }
            return Ok(());
        }
        let copying = self.copy != 0;
        match c {
            'r' | 'w' | 'x' | 'X' | 's' | 't' if copying => return Err(()),
            'r' => self.what |= 4,
            'w' => self.what |= 2,
            'x' => self.what |= 1,
            'X' => {
                self.x_keep = true;
                self.what |= 1;
            }
            's' => {
                self.top_oct |= if self.top_bits != 0 {
                    self.top_bits
                } else {
                    0o4000
                };
            }
            't' => self.top_oct |= 0o1000,
            'u' | 'g' | 'o' => {
                if self.what != 0 || self.top_oct != 0 || copying {
                    return Err(());
                }
                self.copy = match c {
                    'u' => 0o100,
                    'g' => 0o010,
                    _ => 0o001,
                };
            }
            _ => return Err(()),
        }
        Ok(())
    }
}

impl ChmodRules {
    /// Parses rules, masking `who`-less clauses with the process umask
    /// ([`current_umask`]), as rsync does.
    ///
    /// # Errors
    /// As [`ChmodRules::parse_with_umask`].
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_with_umask(s, current_umask())
    }

    /// Parses rules with an explicit umask for clauses without `ugoa`.
    ///
    /// # Errors
    /// `Invalid chmod rule: <s>` for any clause rsync would refuse.
    pub fn parse_with_umask(s: &str, umask: u32) -> Result<Self, String> {
        let bad = || format!("Invalid chmod rule: {s}");
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut p = Pending::default();
            for c in part.chars() {
                p.feed(c).map_err(|()| bad())?;
            }
            clauses.push(p.finish(umask & 0o777).map_err(|_| bad())?);
        }
        Ok(ChmodRules {
            clauses,
            text: s.to_owned(),
        })
    }

    /// The rules as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Applies the rules to `mode` (file-type bits are kept). `is_dir`
    /// selects `D`/`F` clauses and the `X` rule when `mode` carries no type.
    #[must_use]
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let non_perm = mode & !CHMOD_BITS;
        let dir = if non_perm & S_IFMT == 0 {
            is_dir
        } else {
            non_perm & S_IFMT == S_IFDIR
        };
        let had_x = mode & 0o111 != 0;
        let mut mode = mode & CHMOD_BITS;
        for c in &self.clauses {
            match c.only {
                Only::Dirs if !dir => continue,
                Only::Files if dir => continue,
                _ => {}
            }
            let mut copied = 0;
            if c.copy_src & 0o100 != 0 {
                copied |= (mode >> 6) & 7;
            }
            if c.copy_src & 0o010 != 0 {
                copied |= (mode >> 3) & 7;
            }
            if c.copy_src & 0o001 != 0 {
                copied |= mode & 7;
            }
            let copied = (c.copy_dst * copied) & c.copy_and;
            mode &= c.and;
            mode |= if c.x_keep && !had_x && !dir {
                c.or & !0o111
            } else {
                c.or
            };
            if c.op == Op::Sub {
                mode &= CHMOD_BITS & !copied;
            } else {
                mode |= copied;
            }
            mode &= CHMOD_BITS;
        }
        mode | non_perm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_table() {
        // (rules, umask, start mode, is_dir, result)
        let rows: &[(&str, u32, u32, bool, u32)] = &[
            ("u+x", 0o022, 0o644, false, 0o744),
            ("go-rwx", 0o022, 0o755, false, 0o700),
            ("a=r", 0o022, 0o755, false, 0o444),
            ("+w", 0o022, 0o444, false, 0o644),
            ("+w", 0o000, 0o444, false, 0o666),
            ("=r", 0o022, 0o777, false, 0o444),
            ("644", 0o022, 0o100_777, false, 0o100_644),
            ("D755,F644", 0o022, 0o040_700, true, 0o040_755),
            ("D755,F644", 0o022, 0o100_700, false, 0o100_644),
            ("D755,F644", 0o022, 0o700, true, 0o755),
            ("Dg+s", 0o022, 0o755, true, 0o2755),
            ("Dg+s", 0o022, 0o755, false, 0o755),
            ("a+X", 0o022, 0o644, false, 0o644),
            ("a+X", 0o022, 0o744, false, 0o755),
            ("a+X", 0o022, 0o600, true, 0o711),
            ("u+s,+t", 0o022, 0o755, false, 0o5755),
            ("a+s", 0o022, 0o755, false, 0o6755),
            ("ug=rwX,o=", 0o022, 0o640, false, 0o660),
            ("g=u", 0o022, 0o740, false, 0o770),
            ("o+g", 0o022, 0o650, false, 0o655),
            ("go-u", 0o022, 0o777, false, 0o700),
            ("u-s", 0o022, 0o4755, false, 0o755),
            ("0", 0o022, 0o7777, false, 0),
            ("1777", 0o022, 0o700, true, 0o1777),
        ];
        for &(rules, umask, mode, dir, want) in rows {
            let r = ChmodRules::parse_with_umask(rules, umask).unwrap();
            assert_eq!(
                r.apply(mode, dir),
                want,
                "{rules} on {mode:o} (dir {dir}): got {:o}",
                r.apply(mode, dir)
            );
        }
    }

    #[test]
    fn invalid_rules() {
        for bad in [
            "", "u", "u+q", "DF+x", "FD+x", "u7", "8", "17777", "g+ur", "g+rs,u", "+x,,", "u+gw",
        ] {
            assert!(
                ChmodRules::parse_with_umask(bad, 0o022).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(
            ChmodRules::parse_with_umask("u+x", 0).unwrap().as_str(),
            "u+x"
        );
        assert!(current_umask() <= 0o777);
    }
}
