use super::*;
use crate::filter::FilterArg;

fn module_task() -> Task {
    Task {
        path: std::env::temp_dir(),
        remote_host: "backup.example.net".into(),
        remote_module: "tank".into(),
        ..Task::default()
    }
}

fn ssh_task() -> Task {
    Task {
        path: std::env::temp_dir(),
        mode: Mode::Ssh,
        remote_host: "backup.example.net".into(),
        remote_user: "me".into(),
        remote_path: "/backup".into(),
        private_key_file: Some("/root/.ssh/id_ed25519".into()),
        known_hosts_file: Some("/root/.ssh/known_hosts".into()),
        ..Task::default()
    }
}

#[test]
fn defaults() {
    let t = Task::default();
    assert_eq!((t.mode, t.direction), (Mode::Module, Direction::Push));
    assert_eq!(t.schedule, "0 * * * *");
    assert!(t.recursive && t.times && t.compress && t.delay_updates && t.enabled);
    assert!(!t.archive && !t.delete && !t.quiet && !t.preserve_permissions && !t.preserve_xattrs);
    assert_eq!(module_task().port(), 873);
    assert_eq!(ssh_task().port(), 22);
    assert_eq!(ssh_task().connect_timeout, None);
}

#[test]
fn mapping_to_options() {
    let o = module_task().options().unwrap();
    assert!(o.recursive && o.times && o.compress && o.delay_updates);
    assert_eq!(o.compress_choice, None, "negotiated, not pinned to zlib");
    assert!(!o.perms && !o.links && o.delete.is_none() && !o.quiet);
    let t = Task {
        archive: true,
        delete: true,
        quiet: true,
        preserve_permissions: true,
        recursive: false,
        times: false,
        compress: false,
        delay_updates: false,
        ..module_task()
    };
    let o = t.options().unwrap();
    let a = Options::archive();
    assert!(o.recursive && o.links && o.perms && o.times && o.group && o.owner && o.devices);
    assert_eq!(o.delete, Some(DeleteTiming::Delay));
    assert!(o.quiet && !o.compress && !o.delay_updates);
    assert_eq!(a.specials, o.specials);
    let args = o.server_args(false);
    assert!(args.contains(&"--delete-delay".to_string()), "{args:?}");
}

#[test]
fn extra_entries() {
    let t = Task {
        extra: vec![
            "--exclude='*.txt'".into(),
            "--exclude=*.log".into(),
            "--include=\"keep me\"".into(),
            "-z".into(),
            "--bwlimit=100".into(),
            "--delete-after".into(),
        ],
        delete: true,
        ..module_task()
    };
    let o = t.options().unwrap();
    assert_eq!(
        o.filters,
        vec![
            FilterArg::Exclude("*.txt".into()),
            FilterArg::Exclude("*.log".into()),
            FilterArg::Include("keep me".into()),
        ]
    );
    assert_eq!(o.compress_choice, None, "an extra -z is not -zz");
    assert_eq!(o.bwlimit, Some(100 * 1024));
    assert_eq!(o.delete, Some(DeleteTiming::After), "extra wins");
}

#[test]
fn extra_refusals_name_the_entry() {
    let rows: &[(Mode, &str)] = &[
        (Mode::Module, "--no-such-option"),
        (Mode::Module, "--max-size=lots"),
        (Mode::Module, "--exclude"),
        (Mode::Module, "--exclude *.txt"),
        (Mode::Module, "--rsync-path=/tmp/evil"),
        (Mode::Module, "-e"),
        (Mode::Module, "-essh"),
        (Mode::Module, "--rsh=ssh"),
        (Mode::Ssh, "--rsh=ssh"),
        (Mode::Module, "--port=874"),
        (Mode::Module, "--password-file=/x"),
        (Mode::Module, "--daemon"),
        (Mode::Module, "--server"),
        (Mode::Module, "--help"),
        (Mode::Module, "/etc"),
        (Mode::Module, "-"),
    ];
    for (mode, entry) in rows {
        let mut t = if *mode == Mode::Module {
            module_task()
        } else {
            ssh_task()
        };
        t.extra = vec!["-v".into(), (*entry).into()];
        let err = t.validate().expect_err(entry);
        assert!(err.has("extra[1]"), "{entry}: {err}");
        assert!(!err.has("extra[0]"), "{entry}: {err}");
        assert!(err.to_string().contains(entry), "{entry}: {err}");
    }
}

#[test]
fn preserve_xattrs_maps_to_x() {
    let t = Task {
        preserve_xattrs: true,
        ..module_task()
    };
    assert!(t.validate().is_ok());
    assert_eq!(t.options().unwrap().xattrs, 1);
    assert_eq!(module_task().options().unwrap().xattrs, 0);
}

#[test]
fn acls_come_from_extra_and_imply_perms() {
    // `preserve_permissions` stays `-p`; `-A` in `extra` keeps ACLs.
    let t = Task {
        extra: vec!["-A".into()],
        ..module_task()
    };
    assert!(t.validate().is_ok());
    let o = t.options().unwrap();
    assert!(o.acls && o.perms);
    let o = Task {
        preserve_permissions: true,
        ..module_task()
    }
    .options()
    .unwrap();
    assert!(o.perms && !o.acls);
}

type Row = (fn() -> Task, fn(&mut Task), &'static str);

#[test]
fn validation_rules() {
    module_task().validate().unwrap();
    ssh_task().validate().unwrap();
    let rows: &[Row] = &[
        (module_task, |t| t.path = PathBuf::new(), "path"),
        (module_task, |t| t.path = "/no/such/dir/here".into(), "path"),
        (module_task, |t| t.user = "no-such-user-here".into(), "user"),
        (
            module_task,
            |t| t.schedule = "61 * * * *".into(),
            "schedule",
        ),
        (module_task, |t| t.schedule = "* * *".into(), "schedule"),
        (
            module_task,
            |t| t.schedule = "@sometimes".into(),
            "schedule",
        ),
        (module_task, |t| t.remote_host.clear(), "remote_host"),
        (module_task, |t| t.remote_port = Some(0), "remote_port"),
        (module_task, |t| t.remote_module.clear(), "remote_module"),
        (
            module_task,
            |t| t.remote_module = "a/b".into(),
            "remote_module",
        ),
        (module_task, |t| t.remote_user = "me".into(), "remote_user"),
        (module_task, |t| t.remote_path = "/x".into(), "remote_path"),
        (
            module_task,
            |t| t.private_key_file = Some("/k".into()),
            "private_key_file",
        ),
        (
            module_task,
            |t| t.private_key = Some(Secret("k".into())),
            "private_key",
        ),
        (
            module_task,
            |t| t.known_host_keys = vec!["k".into()],
            "known_host_keys",
        ),
        (
            module_task,
            |t| t.known_hosts_file = Some("/k".into()),
            "known_hosts_file",
        ),
        (
            module_task,
            |t| t.connect_timeout = Some(5),
            "connect_timeout",
        ),
        (
            module_task,
            |t| t.validate_remote_path = true,
            "validate_remote_path",
        ),
        (
            module_task,
            |t| t.password_env = Some("NO_SUCH_VAR_FERRSYNC".into()),
            "password_env",
        ),
        (
            module_task,
            |t| {
                t.password = Some(Secret("a".into()));
                t.password_file = Some("/p".into());
            },
            "password",
        ),
        (ssh_task, |t| t.remote_module = "m".into(), "remote_module"),
        (
            ssh_task,
            |t| t.password = Some(Secret("a".into())),
            "password",
        ),
        (
            ssh_task,
            |t| t.password_file = Some("/p".into()),
            "password_file",
        ),
        (ssh_task, |t| t.remote_user.clear(), "remote_user"),
        (ssh_task, |t| t.remote_path.clear(), "remote_path"),
        (ssh_task, |t| t.private_key_file = None, "private_key_file"),
        (
            ssh_task,
            |t| t.private_key = Some(Secret("k".into())),
            "private_key",
        ),
        (
            ssh_task,
            |t| {
                t.known_hosts_file = None;
            },
            "known_host_keys",
        ),
        (ssh_task, |t| t.connect_timeout = Some(0), "connect_timeout"),
    ];
    for (i, (base, change, field)) in rows.iter().enumerate() {
        let mut t = base();
        change(&mut t);
        let err = t.validate().expect_err(&format!("row {i}"));
        assert!(err.has(field), "row {i} ({field}): {err}");
    }
}

#[test]
fn all_problems_at_once() {
    let t = Task {
        path: "/no/such/dir/here".into(),
        schedule: "nope".into(),
        remote_user: "x".into(),
        extra: vec!["--bogus".into()],
        ..Task::default()
    };
    let err = t.validate().unwrap_err();
    for f in [
        "path",
        "schedule",
        "remote_host",
        "remote_module",
        "remote_user",
        "extra[0]",
    ] {
        assert!(err.has(f), "{f}: {err}");
    }
}

#[test]
fn schedules_and_shortcuts() {
    for s in [
        "0 3 * * *",
        "*/15 * * * 1-5",
        "@daily",
        "@hourly",
        "@weekly",
        "0 0 1 jan *",
    ] {
        let t = Task {
            schedule: s.into(),
            ..module_task()
        };
        t.validate().unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    let t = Task {
        schedule: "0 0 3 * * *".into(),
        ..module_task()
    };
    assert!(
        t.validate().is_err(),
        "six fields (seconds) are not cron's five"
    );
}

#[test]
fn toml_file_shape() {
    let text = format!(
        r#"
path = "{}"
user = "root"
mode = "module"
direction = "push"
remote_host = "backup.example.net"
remote_port = 873
remote_module = "tank"
schedule = "0 3 * * *"
delete = true
extra = ["--exclude=*.tmp"]
"#,
        std::env::temp_dir().display()
    );
    let t = Task::from_toml(&text).unwrap();
    assert_eq!(
        (t.mode, t.direction, t.remote_port),
        (Mode::Module, Direction::Push, Some(873))
    );
    let back = toml::to_string(&t).unwrap();
    assert_eq!(toml::from_str::<Task>(&back).unwrap(), t);
    let j = serde_json::to_string(&t).unwrap();
    assert_eq!(Task::from_json(&j).unwrap(), t);
    assert!(Task::from_toml("mode = \"Module\"").is_err(), "lower case");
    assert!(Task::from_toml("pth = \"/\"").is_err(), "unknown field");
    assert!(
        Task::from_toml("path = \"/no/such\"").is_err(),
        "validated on load"
    );
}

#[test]
fn secrets_stay_out_of_debug() {
    let t = Task {
        password: Some(Secret("hunter2".into())),
        ..module_task()
    };
    assert!(!format!("{t:?}").contains("hunter2"));
}

#[test]
fn daemon_urls() {
    let mut t = module_task();
    t.remote_host = "alice@[::1]".into();
    t.remote_port = Some(8873);
    let u = t.daemon_url();
    assert_eq!(
        (u.user.as_deref(), u.host.as_str(), u.port),
        (Some("alice"), "::1", 8873)
    );
    assert_eq!(u.path_word(), "tank/");
    t.remote_host = "fe80::1".into();
    assert_eq!(t.daemon_url().host, "fe80::1");
}
