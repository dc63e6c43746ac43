use super::*;
use crate::daemon::secrets::Access;

const REALISTIC: &str = r"# A realistic rsyncd.conf
; with both comment styles
port = 8873
address = 127.0.0.1
motd file = /etc/rsyncd.motd
pid file = /run/rsyncd.pid
log file = /var/log/rsyncd.log
reverse lookup = no
daemon chroot = /srv
Read Only = no
timeout = 600

[pub]
    path = /srv/pub/
    comment = public files # not a comment
    readonly = yes
    list = true
    uid = nobody
    gid = nogroup
    max connections = 10
    lock file = /run/rsyncd-pub.lock
    hosts allow = 10.0.0.0/8, 192.168.1.0/255.255.255.0 \
                  *.example.com
    hosts deny = *
    use chroot = false
    numeric ids = 1
    refuse options = checksum delete
    exclude = *.tmp .git/
    include = keep.tmp
    filter = - *.bak + */ - *
    dont compress = *.gz *.zip
    transfer logging = yes
    log format = %t %a %m %f %b
    munge symlinks = no
    fake super = yes
    outgoing chmod = Fgo-w,D755

[ upload ]
    path = /srv/upload
    comment = authenticated upload
    write only = yes
    auth users = alice, bob:ro @staff:rw *:deny
    secrets file = /etc/rsyncd.secrets
    strict modes = no
    auth digest = sha256
    incoming chmod = Dg+s,ug+w,Fo-w,+X
    pre-xfer exec = /usr/local/bin/check
    temp dir = /srv/tmp
    timeout = 0
";

#[test]
fn realistic_file() {
    let (cfg, warnings) = DaemonConfig::parse(REALISTIC).unwrap();
    let g = &cfg.global;
    assert_eq!(g.port, 8873);
    assert_eq!(g.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(g.motd_file, Some(PathBuf::from("/etc/rsyncd.motd")));
    assert_eq!(g.pid_file, Some(PathBuf::from("/run/rsyncd.pid")));
    assert_eq!(g.log_file, Some(PathBuf::from("/var/log/rsyncd.log")));
    assert!(!g.reverse_lookup);
    assert_eq!(
        g.extra.get("daemon chroot").map(String::as_str),
        Some("/srv")
    );
    assert_eq!(cfg.modules.len(), 2);

    let p = cfg.module("pub").unwrap();
    assert_eq!(p.path, PathBuf::from("/srv/pub"));
    assert_eq!(p.comment, "public files # not a comment");
    assert!(p.read_only && !p.write_only && p.list);
    assert_eq!(
        (p.uid.as_deref(), p.gid.as_deref()),
        (Some("nobody"), Some("nogroup"))
    );
    assert_eq!(p.max_connections, 10);
    assert_eq!(p.lock_file, PathBuf::from("/run/rsyncd-pub.lock"));
    assert!(p.hosts_allow.matches("10.9.8.7".parse().unwrap(), None));
    assert!(
        p.hosts_allow
            .matches("192.0.2.1".parse().unwrap(), Some("a.example.com"))
    );
    assert!(
        p.hosts_deny
            .matches("192.0.2.1".parse().unwrap(), Some("x"))
    );
    assert!(!p.use_chroot && p.numeric_ids);
    assert_eq!(p.refuse_options, ["checksum", "delete"]);
    assert_eq!(p.exclude, ["*.tmp", ".git/"]);
    assert_eq!(p.include, ["keep.tmp"]);
    assert_eq!(p.filter, ["- *.bak + */ - *"]);
    assert_eq!(p.dont_compress, ["*.gz", "*.zip"]);
    assert!(p.transfer_logging && p.fake_super);
    assert_eq!(p.log_format, "%t %a %m %f %b");
    assert_eq!(p.munge_symlinks, Some(false));
    assert_eq!(p.outgoing_chmod.as_deref(), Some("Fgo-w,D755"));
    assert_eq!(p.timeout, 600, "inherited from the global section");
    assert!(p.auth_users.is_empty());

    let u = cfg.module("upload").unwrap();
    assert_eq!(u.name, "upload");
    assert!(!u.read_only, "inherited from the global section");
    assert!(u.write_only && !u.strict_modes);
    assert_eq!(u.auth_users.len(), 4);
    assert_eq!(u.auth_users[1].access, Access::ReadOnly);
    assert!(u.auth_users[2].group);
    assert_eq!(u.secrets_file, Some(PathBuf::from("/etc/rsyncd.secrets")));
    assert_eq!(u.auth_digest.as_deref(), Some("sha256"));
    assert_eq!(u.incoming_chmod.as_deref(), Some("Dg+s,ug+w,Fo-w,+X"));
    assert_eq!(u.timeout, 0);
    assert_eq!(u.dont_compress, default_dont_compress());
    assert_eq!(u.extra.len(), 2);
    assert_eq!(u.extra["pre-xfer exec"], "/usr/local/bin/check");

    // daemon chroot, pre-xfer exec, temp dir: accepted but ignored.
    let ignored: Vec<_> = warnings
        .iter()
        .filter(|w| w.message.contains("ignored by ferrsync"))
        .map(|w| w.line)
        .collect();
    assert_eq!(ignored, [9, 47, 48], "{warnings:?}");
    assert_eq!(warnings.len(), 3, "{warnings:?}");
}

#[test]
fn round_trip() {
    let (cfg, _) = DaemonConfig::parse(REALISTIC).unwrap();
    let text = cfg.to_conf_string();
    let (back, warnings) = DaemonConfig::parse(&text).unwrap();
    assert_eq!(back, cfg, "{text}");
    assert_eq!(back.to_conf_string(), text);
    // Only the ignored parameters warn again.
    assert!(
        warnings
            .iter()
            .all(|w| w.message.contains("ignored by ferrsync"))
    );

    let mut built = DaemonConfig::default();
    let mut m = Module::new("data", "/srv/data");
    m.comment = "data; with = signs [and brackets]".into();
    m.uid = Some(String::new());
    m.dont_compress = Vec::new();
    m.lock_file = PathBuf::from("/tmp/x.lock");
    m.hosts_allow = HostList::parse("::1 127.0.0.1").unwrap();
    m.auth_users = parse_auth_users(", @domain users:ro, bob");
    m.munge_symlinks = Some(true);
    built.modules.push(m);
    built.modules.push(Module::new("second", "/"));
    built.global.reverse_lookup = false;
    let (back, _) = DaemonConfig::parse(&built.to_conf_string()).unwrap();
    assert_eq!(back, built, "{}", built.to_conf_string());
}

#[test]
fn global_defaults_apply_to_later_modules_only() {
    let text = "[a]\npath = /a\n[global]\nread only = false\nlist = no\n[b]\npath = /b\n\
                [c]\npath = /c\nlist = yes\n";
    let (cfg, _) = DaemonConfig::parse(text).unwrap();
    let flags: Vec<(bool, bool)> = cfg.modules.iter().map(|m| (m.read_only, m.list)).collect();
    assert_eq!(flags, [(true, true), (false, false), (false, true)]);
}

#[test]
fn keys_comments_continuations() {
    let text = "  # indented comment\n[m]\n\tPATH=/x\n  READ   ONLY = No \n  Strict Modes=0\n\
                comment = a \\\n  b\n;path = /y\n  write only = TRUE\r\n";
    let (cfg, warnings) = DaemonConfig::parse(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let m = cfg.module("m").unwrap();
    assert_eq!(m.path, PathBuf::from("/x"));
    assert!(!m.read_only && !m.strict_modes && m.write_only);
    assert_eq!(m.comment, "a   b");
    assert!(cfg.module("M").is_none());
}

#[test]
fn warnings() {
    let text = "frobnicate = 1\n[m]\npath = /m\nport = 99\nbogus line\nlog file = /l\n\
                [m]\ncomment = again\n[nopath]\n";
    let (cfg, warnings) = DaemonConfig::parse(text).unwrap();
    let texts: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "line 1: Unknown Parameter encountered: \"frobnicate\" (ignored)",
            "line 4: Global parameter port found in module section! (ignored)",
            "line 5: Ignoring badly formed line in config file: bogus line",
            "line 6: parameter \"log file\" is accepted but ignored by ferrsync",
            "line 0: module [nopath] has no path; clients asking for it get \"no path setting.\"",
        ]
    );
    assert_eq!(cfg.global.port, DEFAULT_PORT);
    assert_eq!(
        cfg.modules.len(),
        2,
        "a repeated section continues the first"
    );
    assert_eq!(cfg.module("m").unwrap().comment, "again");
    let e = cfg.module("nopath").unwrap().require_path().unwrap_err();
    assert_eq!(e.to_string(), "no path setting.");
    assert!(cfg.module("m").unwrap().require_path().is_ok());
}

#[test]
fn errors() {
    // (text, line, fragment of the message)
    let rows: &[(&str, usize, &str)] = &[
        ("port = 87x\n", 1, "\"port\""),
        ("port = 70000\n", 1, "\"port\""),
        ("\n[m]\nread only = maybe\n", 3, "yes/no"),
        ("[m]\nmax connections = -1\n", 2, "non-negative"),
        ("[m]\nhosts allow = 10.0.0.0/40\n", 2, "malformed mask"),
        ("[m]\nincoming chmod = u+q\n", 2, "Invalid chmod rule"),
        ("[m]\nauth digest = crc32\n", 2, "auth digest"),
        ("[m\npath = /x\n", 1, "section header"),
        ("[]\n", 1, "empty section"),
        ("[a/b]\n", 1, "invalid section name"),
        ("&include /etc/rsyncd.d\n", 1, "directives"),
        ("= x\n", 1, "Invalid parameter name"),
    ];
    for &(text, line, fragment) in rows {
        let e = DaemonConfig::parse(text).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("line {line}: ")),
            "{text:?}: {msg}"
        );
        assert!(msg.contains(fragment), "{text:?}: {msg}");
    }
    let e = DaemonConfig::load(Path::new("/nonexistent/rsyncd.conf")).unwrap_err();
    assert!(e.to_string().starts_with("unable to open config file"));
}

/// rsync trims C spaces after a value, then slashes off a `PATH` value:
/// `x  /` is the directory `x  ` (rsync 3.5.0 serves it so). The fuzz
/// find: `path ==  //` gave the path `=  `, written back as `=  ` and read
/// as `=`; a path ending in blanks is now written with one `/` after them.
#[test]
fn paths_ending_in_blanks_round_trip() {
    let text = "lock file = /run/l \t//\n[m]\npath = /srv/x  /\n[n]\npath ==  //\n";
    let (cfg, _) = DaemonConfig::parse(text).unwrap();
    assert_eq!(cfg.modules[0].path, PathBuf::from("/srv/x  "));
    assert_eq!(cfg.modules[0].lock_file, PathBuf::from("/run/l \t"));
    assert_eq!(cfg.modules[1].path, PathBuf::from("=  "));
    let again = cfg.to_conf_string();
    let (back, _) = DaemonConfig::parse(&again).unwrap();
    assert_eq!(back, cfg, "{again}");
    assert_eq!(back.to_conf_string(), again);
    // A path ending in a backslash (fuzz find): written as `x\/` so that
    // the backslash does not join the next line.
    let (cfg, _) = DaemonConfig::parse("[m]\npath = /srv/et\\/\n[n]\npath = /b\n").unwrap();
    assert_eq!(cfg.modules[0].path, PathBuf::from("/srv/et\\"));
    let again = cfg.to_conf_string();
    let (back, _) = DaemonConfig::parse(&again).unwrap();
    assert_eq!(back, cfg, "{again}");
    // Other Unicode spaces are not C spaces: rsync keeps them.
    let (cfg, _) = DaemonConfig::parse("[m]\npath = /srv/x\u{a0}\ncomment = c\u{3000}\n").unwrap();
    assert_eq!(cfg.modules[0].path, PathBuf::from("/srv/x\u{a0}"));
    assert_eq!(cfg.modules[0].comment, "c\u{3000}");
    let (back, _) = DaemonConfig::parse(&cfg.to_conf_string()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn every_parameter_is_found_in_any_case_and_spacing() {
    for &(name, class) in PARAMS {
        let squeezed: String = name.split(' ').collect();
        let shouting = format!(" {} ", name.to_uppercase().replace(' ', "\t "));
        for key in [name, squeezed.as_str(), shouting.as_str()] {
            assert_eq!(lookup(key), Some((name, class)), "{key:?}");
        }
    }
    assert_eq!(lookup("read onlyx"), None);
    assert_eq!(lookup("rea"), None);
    assert_eq!(lookup("-read only"), None);
    assert!(same_name("My Module", "mymodule") && same_name("GLOBAL", " glo bal"));
    assert!(!same_name("global", "globals") && !same_name("", "x"));
}

#[test]
fn a_trailing_backslash_continues_only_before_a_line_break() -> Result<(), ConfigError> {
    // At the end of the file it stays in the value, as params.c keeps it.
    let (cfg, _) = DaemonConfig::parse("[m]\npath = /x\ncomment = a\\")?;
    let missing = || ConfigError::Syntax {
        line: 0,
        message: "no module m".into(),
    };
    let m = cfg.module("m").ok_or_else(missing)?;
    assert_eq!(m.comment, "a\\");
    // Rendered, it must not swallow the next parameter: rsync cannot
    // express it, so it is left out.
    let mut m = m.clone();
    m.comment = "ends in \\ \\".into();
    m.hosts_allow =
        HostList::parse("127.0.0.1").map_err(|message| ConfigError::Syntax { line: 0, message })?;
    let again = DaemonConfig {
        modules: vec![m],
        ..cfg
    }
    .to_conf_string();
    let (back, _) = DaemonConfig::parse(&again)?;
    let b = back.module("m").ok_or_else(missing)?;
    assert_eq!(b.comment, "ends in", "{again}");
    assert_eq!(b.hosts_allow.as_str(), "127.0.0.1", "{again}");
    Ok(())
}
