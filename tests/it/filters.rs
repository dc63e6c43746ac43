//! Filter rules against real rsync: for each rule set, `rsync -n -i -r`
//! and `ferrsync -n -i -r` run on the same generated tree, once into an
//! empty destination (which names are sent) and once with `--delete` into
//! a populated one (which names are deleted). Every (rule set, scenario,
//! path) is one case and both programs must agree on it.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

fn ferrsync_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrsync")
}

/// `(path, content)`; a path ending in `/` is a directory.
const SRC: &[(&str, &str)] = &[
    ("a.txt", "a"),
    ("b.o", "b"),
    ("c.c", "c"),
    ("core", "core"),
    (".hidden", "h"),
    ("keep.me", "keep, longer than the old one"),
    ("x.bak", "bak"),
    ("notes.TXT", "n"),
    ("foo.txt", "f"),
    ("sp ace.txt", "s"),
    ("[x].txt", "br"),
    ("-dash", "d"),
    (".rsync-filter", "- *.bak\n"),
    ("dir1/", ""),
    ("dir1/a.txt", "a"),
    ("dir1/b.o", "b"),
    ("dir1/foo", "file named foo"),
    ("dir1/keep.c", "k"),
    ("dir1/drop.c", "d"),
    ("dir1/local.txt", "l"),
    ("dir1/.rsync-filter", "+ keep.c\n- *.c\n- /local.txt\n"),
    ("dir1/sub/", ""),
    ("dir1/sub/deep.txt", "d"),
    ("dir1/sub/x.o", "x"),
    ("dir1/sub/local.txt", "l"),
    ("dir1/sub/y.c", "y"),
    ("dir1/sub/.rsync-filter", "- deep.txt\n"),
    ("dir2/", ""),
    ("dir2/a.c", "a"),
    ("dir2/.wlist", "a.c  bar.txt\n"),
    ("dir2/foo/", ""),
    ("dir2/foo/bar.txt", "b"),
    ("dir2/foo/baz.o", "z"),
    ("tmp/", ""),
    ("tmp/t.txt", "t"),
    ("CVS/", ""),
    ("CVS/Entries", "e"),
    ("lib/", ""),
    ("lib/x.so", "x"),
    ("lib/y.a", "y"),
    ("lib/z.h", "z"),
    ("lib/.cvsignore", "z.h\n"),
    ("food/", ""),
    ("food/in.txt", "i"),
];

/// Extra names in the destination for the `--delete` scenario.
const DST: &[(&str, &str)] = &[
    ("old.txt", "o"),
    ("old.o", "o"),
    ("keep.me", "k"),
    ("x.old", "x"),
    ("dir1/", ""),
    ("dir1/old.bak", "o"),
    ("dir1/gone.c", "g"),
    ("dir1/sub/", ""),
    ("dir1/sub/gone.txt", "g"),
    ("dir1/sub/gone.o", "g"),
    ("dir3/", ""),
    ("dir3/f.txt", "f"),
    ("dir3/p.keep", "p"),
    ("dir3/in/", ""),
    ("dir3/in/q.o", "q"),
    ("tmp/", ""),
    ("tmp/stale.txt", "s"),
    ("lib/", ""),
    ("lib/old.so", "o"),
];

/// Rule sets: arguments; `{R}` is the rules directory, `{ABS}` the
/// absolute source directory.
const SETS: &[&[&str]] = &[
    &["--exclude=*.o"],
    &["--exclude=/a.txt"],
    &["--exclude=dir1/"],
    &["--exclude=foo"],
    &["--exclude=foo/"],
    &["--include=*/", "--include=*.txt", "--exclude=*"],
    &["--exclude=dir1/*.o"],
    &["--exclude=**/sub"],
    &["--exclude=dir2/**"],
    &["--exclude=dir1/***"],
    &["--exclude=**.txt"],
    &["--exclude=d*/**/*.txt"],
    &["--exclude=*/"],
    &["--exclude=[ab].*"],
    &["--exclude=?.o"],
    &["--exclude=*.[ct]xt"],
    &["--exclude=sp ace.txt"],
    &["--exclude=\\[x\\].txt"],
    &["--exclude=[x].txt"],
    &["--exclude=sub/*.o"],
    &["--exclude=/dir1/sub/deep.txt"],
    &["--exclude=- *.c"],
    &["--exclude=+ *.c", "--exclude=*.c"],
    &["--include=- *.c", "--exclude=*.c"],
    &["-f", "-! */"],
    &["-f", "+ keep.me", "-f", "- k*"],
    &[
        "-f",
        "exclude *.o",
        "-f",
        "include foo.txt",
        "-f",
        "exclude foo*",
    ],
    &["-f", "-_*.o"],
    &["-f", "exclude,s *.c"],
    &["-f", "H *.txt"],
    &["-f", "S a.txt", "-f", "H *.txt"],
    &["-f", "show,! *.o", "-f", "hide *"],
    &["-f", "P old.*"],
    &["-f", "protect,! *.txt"],
    &["-f", "R dir3/p.keep", "-f", "P dir3/**"],
    &["-f", "risk x.old", "-f", "protect x.*"],
    &["-f", "-r *.o"],
    &["-f", "+s dir1/", "-f", "-s *.o"],
    &["--delete-excluded", "--exclude=*.o"],
    &["--delete-excluded", "--exclude=*.txt", "-f", "P old.txt"],
    &["-f", "-p p.keep"],
    &["-f", "- p.keep"],
    &["-f", "-p in/"],
    &["-F"],
    &["-F", "-F"],
    &["-f", ": .rsync-filter"],
    &["-f", ":e .rsync-filter"],
    &["-f", "dir-merge,n .rsync-filter"],
    &["-f", ":- .wlist"],
    &["-f", ":w- .wlist"],
    &["-f", "dir-merge,w+ .wlist", "-f", "- *.c"],
    &["-C"],
    &["-f", "-C"],
    &["-f", ":C"],
    &["--exclude-from={R}/ex.txt"],
    &["--include-from={R}/in.txt", "--exclude=*"],
    &["-f", "merge {R}/merge.txt"],
    &["-f", ". {R}/merge.txt", "-f", "- *"],
    &["-f", "-/ {ABS}/a.txt"],
    &["-f", "exclude,/ {ABS}/dir1/sub"],
    &["-f", "- *", "-f", "!", "-f", "- *.o"],
    &["-f", "- a.txt", "-f", "clear", "-f", "- b.o"],
    &["-f", "+ */", "-f", "+! *.o", "-f", "- *"],
    &["-f", "-x user.*"],
    &["-f", "-s *.txt", "-f", "-r *.c"],
    &["--exclude=dir1/sub/"],
    &["--exclude=/dir1/*"],
    &["--exclude=*/*/*"],
    &["--exclude=**/foo/**"],
    &["--exclude=dir?/*.[co]"],
    &["--exclude=*[[:upper:]]*"],
    &["--exclude=.*"],
];

fn write_tree(root: &Path, spec: &[(&str, &str)]) {
    fs::create_dir_all(root).unwrap();
    for (p, c) in spec {
        let path = root.join(p.trim_end_matches('/'));
        if p.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, c).unwrap();
        }
    }
}

/// Runs `prog -n -i -r ARGS src/ dst/` and returns (listed, deleted).
fn run(
    prog: &str,
    args: &[String],
    src: &Path,
    dst: &Path,
) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let out = Command::new(prog)
        .args(["-n", "-i", "-r"])
        .args(args)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .env("HOME", src.parent().unwrap())
        .env_remove("CVSIGNORE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut listed = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("*deleting   ") {
            deleted.insert(n.trim_end_matches('/').to_string());
        } else if line.len() > 12 && line.as_bytes()[11] == b' ' {
            let n = &line[12..];
            let n = n.split(" -> ").next().unwrap();
            let n = n.trim_end_matches('/');
            listed.insert(if n.is_empty() {
                ".".into()
            } else {
                n.to_string()
            });
        }
    }
    let diag = format!(
        "exit {:?}\n{text}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (listed, deleted, diag)
}

fn paths(spec: &[(&str, &str)]) -> Vec<String> {
    spec.iter()
        .map(|(p, _)| p.trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn rule_table_matches_rsync() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let src = base.join("src");
    let rules = base.join("rules");
    write_tree(&src, SRC);
    write_tree(&base.join("full"), DST);
    fs::create_dir_all(&rules).unwrap();
    fs::write(
        rules.join("ex.txt"),
        "*.o\n# a comment\n; another\n\n/tmp\n",
    )
    .unwrap();
    fs::write(rules.join("in.txt"), "*/\n*.c\n").unwrap();
    fs::write(rules.join("merge.txt"), "- *.txt\n+ *.c\n").unwrap();
    let universe: BTreeSet<String> = paths(SRC)
        .into_iter()
        .chain(paths(DST))
        .chain(std::iter::once(".".to_string()))
        .collect();
    let mut cases = 0usize;
    let mut failures = Vec::new();
    for set in SETS {
        let args: Vec<String> = set
            .iter()
            .map(|a| {
                a.replace("{R}", &rules.display().to_string())
                    .replace("{ABS}", &src.display().to_string())
            })
            .collect();
        for delete in [false, true] {
            let mut args = args.clone();
            let dst = if delete {
                args.push("--delete".into());
                base.join("full")
            } else {
                base.join("empty")
            };
            let (want_l, want_d, want_diag) = run("rsync", &args, &src, &dst);
            let (got_l, got_d, got_diag) = run(ferrsync_bin(), &args, &src, &dst);
            for p in &universe {
                cases += 1;
                let w = (want_l.contains(p), want_d.contains(p));
                let g = (got_l.contains(p), got_d.contains(p));
                if w != g {
                    failures.push(format!(
                        "{args:?} {p}: rsync (listed, deleted) = {w:?}, ferrsync = {g:?}\n--- rsync:\n{want_diag}--- ferrsync:\n{got_diag}"
                    ));
                }
            }
        }
    }
    eprintln!(
        "{cases} (rule set, scenario, path) cases over {} rule sets",
        SETS.len()
    );
    assert!(cases >= 150);
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ:\n{}\nfirst in full:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.lines().next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n"),
        failures.first().cloned().unwrap_or_default()
    );
}

/// The rsync binary on PATH is the one the cases were written for.
#[test]
fn rsync_is_3_5() {
    let out = Command::new("rsync").arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 3.5.0"));
}

/// Capture 19 (a pull at protocol 32 with `--include='sub/'
/// --include='sub/c.txt' --filter='H *.bak' --filter='P keep.me'
/// --filter='-p tmp/' --exclude='*.txt'`): the client's filter list bytes
/// are exactly what our client sends for the same options, and they parse
/// back into the rules a sending server applies.
#[test]
fn capture_19_filter_list_bytes() {
    use ferrsync::filter::{FilterArg, FilterList, Side};
    let tap = common::tap::load("19-rsh-pull-p32-filters.tap");
    let mut fl = FilterList::new(Side::Receiver);
    let args = [
        FilterArg::Include("sub/".into()),
        FilterArg::Include("sub/c.txt".into()),
        FilterArg::Filter("H *.bak".into()),
        FilterArg::Filter("P keep.me".into()),
        FilterArg::Filter("-p tmp/".into()),
        FilterArg::Exclude("*.txt".into()),
    ];
    for a in &args {
        fl.add_arg(a, &mut |_: &[u8]| Ok(None)).unwrap();
    }
    let rules = fl.wire_rules(false, 32).unwrap();
    let mut bytes = Vec::new();
    for r in &rules {
        bytes.extend_from_slice(&(r.len() as i32).to_le_bytes());
        bytes.extend_from_slice(r);
    }
    bytes.extend_from_slice(&0i32.to_le_bytes());
    assert!(
        tap.c2s.windows(bytes.len()).any(|w| w == bytes.as_slice()),
        "capture 19 does not hold {bytes:02x?}"
    );
    // The sending server's view of those rules.
    let mut server = FilterList::new(Side::Sender);
    for r in &rules {
        server.add_filter(r).unwrap();
    }
    for (name, dir, excluded) in [
        ("sub", true, false),
        ("sub/c.txt", false, false),
        ("a.txt", false, true),
        ("x.bak", false, true),
        ("keep.me", false, false),
        ("tmp", true, true),
        ("sub/d.txt", false, true),
    ] {
        assert_eq!(server.is_excluded(name.as_bytes(), dir), excluded, "{name}");
    }
}
