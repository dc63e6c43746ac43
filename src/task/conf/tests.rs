use super::*;

fn module(name: &str) -> Module {
    let mut m = Module::new(name, "/srv/data");
    m.user = "root".into();
    m.group = "root".into();
    m
}

#[test]
fn defaults() {
    let m = Module::default();
    assert_eq!((m.user.as_str(), m.group.as_str()), ("nobody", "nogroup"));
    assert_eq!(
        (m.access, m.max_connections, m.enabled),
        (Access::ReadOnly, 0, true)
    );
    let s = Service::default();
    assert_eq!((s.port, s.start_automatically), (873, false));
}

type Change = fn(&mut Module);

#[test]
fn module_validation_rules() {
    let rows: &[(&str, Change, &str)] = &[
        ("empty name", |m| m.name.clear(), "name"),
        ("slash in name", |m| m.name = "a/b".into(), "name"),
        ("bracket in name", |m| m.name = "a]b".into(), "name"),
        ("newline in name", |m| m.name = "a\nb".into(), "name"),
        ("global", |m| m.name = "Global".into(), "name"),
        ("no path", |m| m.path = PathBuf::new(), "path"),
        ("relative path", |m| m.path = "srv".into(), "path"),
        ("newline in path", |m| m.path = "/srv\n[x]".into(), "path"),
        (
            "comment injects a section",
            |m| m.comment = "hi\n[evil]\npath = /".into(),
            "comment",
        ),
        (
            "comment injects a parameter",
            |m| m.comment = "hi\r\nread only = no".into(),
            "comment",
        ),
        (
            "comment continues",
            |m| m.comment = "hi\\".into(),
            "comment",
        ),
        ("comment blanks", |m| m.comment = " hi".into(), "comment"),
        ("comment env", |m| m.comment = "%HOME%".into(), "comment"),
        ("no user", |m| m.user.clear(), "user"),
        (
            "unknown user",
            |m| m.user = "no-such-user-here".into(),
            "user",
        ),
        (
            "unknown group",
            |m| m.group = "no-such-group-here".into(),
            "group",
        ),
        (
            "host with blank",
            |m| m.hosts_allow = vec!["a b".into()],
            "hosts_allow[0]",
        ),
        (
            "bad host",
            |m| m.hosts_deny = vec!["10.0.0.0/99".into()],
            "hosts_deny[0]",
        ),
        (
            "unknown aux",
            |m| {
                m.auxiliary.insert("bogus".into(), "1".into());
            },
            "auxiliary.bogus",
        ),
        (
            "global aux",
            |m| {
                m.auxiliary.insert("port".into(), "1".into());
            },
            "auxiliary.port",
        ),
        (
            "field aux",
            |m| {
                m.auxiliary.insert("read only".into(), "no".into());
            },
            "auxiliary.read only",
        ),
        (
            "aux injects",
            |m| {
                m.auxiliary.insert("timeout".into(), "5\n[x]".into());
            },
            "auxiliary.timeout",
        ),
        (
            "aux bad value",
            |m| {
                m.auxiliary.insert("timeout".into(), "soon".into());
            },
            "auxiliary",
        ),
    ];
    for (what, change, field) in rows {
        let mut m = module("data");
        change(&mut m);
        let err = m.validate().expect_err(what);
        assert!(err.has(field), "{what}: {err}");
    }
    let mut ok = module("data");
    ok.comment = "a = b [c] 50% full".into();
    ok.hosts_allow = vec!["127.0.0.1".into(), "10.0.0.0/8".into()];
    ok.auxiliary.insert("timeout".into(), "600".into());
    ok.auxiliary
        .insert("refuse options".into(), "delete".into());
    ok.validate().unwrap();
}

#[test]
fn every_problem_at_once() {
    let mut m = Module::new("", "rel");
    m.user = "no-such-user-here".into();
    m.comment = "x\n".into();
    let err = m.validate().unwrap_err();
    for f in ["name", "path", "user", "comment"] {
        assert!(err.has(f), "{f}: {err}");
    }
}

#[test]
fn names_are_unique_ignoring_case_and_blanks() {
    let err = Service::validate_modules(&[module("Data"), module("data")]).unwrap_err();
    assert!(err.has("modules[1].name"), "{err}");
}

#[test]
fn render_and_parse_round_trip() {
    let mut svc = Service {
        port: 8730,
        ..Service::default()
    };
    svc.auxiliary.insert("motd file".into(), "/etc/motd".into());
    let mut a = module("data");
    a.comment = "the [data] = ours".into();
    a.access = Access::WriteOnly;
    a.max_connections = 4;
    a.hosts_allow = vec!["127.0.0.1".into()];
    a.hosts_deny = vec!["*".into()];
    a.auxiliary.insert("timeout".into(), "60".into());
    let mut b = module("pub");
    b.access = Access::ReadWrite;
    let mut off = module("off");
    off.enabled = false;
    let text = svc.to_conf_string(&[a.clone(), b.clone(), off]).unwrap();
    assert!(!text.contains("[off]"), "{text}");
    let (svc2, mods) = Service::parse_conf(&text).unwrap();
    assert_eq!(svc2, svc);
    assert_eq!(mods, vec![a.clone(), b]);
    let cfg = svc.daemon_config(&[a]).unwrap();
    let d = cfg.module("data").unwrap();
    assert!(!d.read_only && d.write_only);
    assert_eq!(d.comment, "the [data] = ours");
    assert_eq!(d.max_connections, 4);
    assert_eq!(d.uid.as_deref(), Some("root"));
}

#[test]
fn nothing_is_rendered_from_an_invalid_configuration() {
    let mut m = module("data");
    m.comment = "x\n[root]\npath = /\nread only = no".into();
    assert!(Service::default().to_conf_string(&[m]).is_err());
}

#[test]
fn parse_refuses_unknown_parameters() {
    let err = Service::parse_conf("[a]\npath = /srv\nbogus = 1\n").unwrap_err();
    assert!(err.has("line 3"), "{err}");
}

#[test]
fn serde_toml_and_json() {
    let mut m = module("data");
    m.access = Access::ReadWrite;
    m.auxiliary.insert("timeout".into(), "60".into());
    let t = toml::to_string(&m).unwrap();
    assert!(t.contains("access = \"readwrite\""), "{t}");
    assert_eq!(toml::from_str::<Module>(&t).unwrap(), m);
    let j = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<Module>(&j).unwrap(), m);
    let s: Service =
        toml::from_str("port = 8873\n[auxiliary]\n\"motd file\" = \"/etc/motd\"\n").unwrap();
    assert_eq!(s.port, 8873);
    s.validate().unwrap();
    assert!(toml::from_str::<Module>("nme = \"x\"").is_err());
}
