//! `Service` and `Module`: the rendered `rsyncd.conf` is accepted and
//! served as configured by real `rsync --daemon` (3.5.0), and
//! `Service::start` applies module changes without dropping transfers in
//! flight.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::daemon::RealDaemon;

use ferrsync::task::{Access, Direction, Module, RunStatus, Service, Task};

fn real_daemon(conf_file: &Path) -> RealDaemon {
    common::daemon::start("rsync", conf_file, "127.0.0.1")
}

fn rsync(args: &[&str]) -> Output {
    Command::new("rsync").args(args).output().unwrap()
}

fn module(name: &str, path: &Path, access: Access) -> Module {
    let mut m = Module::new(name, path);
    m.access = access;
    m.user = "root".into();
    m.group = "root".into();
    m.auxiliary.insert("use chroot".into(), "no".into());
    m
}

#[test]
fn rendered_conf_is_served_as_configured_by_real_rsync() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for d in ["ro", "rw", "wo", "deny", "off", "src"] {
        fs::create_dir_all(t.join(d)).unwrap();
    }
    fs::write(t.join("ro/file"), b"read me\n").unwrap();
    fs::write(t.join("wo/file"), b"secret\n").unwrap();
    fs::write(t.join("src/up"), b"uploaded\n").unwrap();
    let mut ro = module("ro", &t.join("ro"), Access::ReadOnly);
    ro.comment = "read = only [really]".into();
    let rw = module("rw", &t.join("rw"), Access::ReadWrite);
    let wo = module("wo", &t.join("wo"), Access::WriteOnly);
    let mut deny = module("deny", &t.join("deny"), Access::ReadWrite);
    deny.hosts_deny = vec!["127.0.0.1".into()];
    let mut hidden = module("hidden", &t.join("ro"), Access::ReadOnly);
    hidden.auxiliary.insert("list".into(), "no".into());
    let mut off = module("off", &t.join("off"), Access::ReadWrite);
    off.enabled = false;
    let modules = vec![ro, rw, wo, deny, hidden, off];
    let mut svc = Service::default();
    svc.auxiliary.insert("reverse lookup".into(), "no".into());
    let text = svc.to_conf_string(&modules).unwrap();
    let conf = t.join("rsyncd.conf");
    fs::write(&conf, &text).unwrap();
    // Read back: the same service and the enabled modules.
    let (svc2, back) = Service::parse_conf(&text).unwrap();
    assert_eq!(svc2, svc);
    let enabled: Vec<Module> = modules.iter().filter(|m| m.enabled).cloned().collect();
    assert_eq!(back, enabled);

    let d = real_daemon(&conf);
    let url = |rest: &str| format!("rsync://127.0.0.1:{}/{rest}", d.port);
    let list = rsync(&[&url("")]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{list:?}");
    assert!(
        listing.contains("ro") && listing.contains("read = only [really]"),
        "{listing}"
    );
    for name in ["rw", "wo", "deny"] {
        assert!(listing.lines().any(|l| l.starts_with(name)), "{listing}");
    }
    assert!(
        !listing.contains("hidden") && !listing.contains("off"),
        "{listing}"
    );
    let dst = t.join("got");
    fs::create_dir_all(&dst).unwrap();
    let dst_s = format!("{}/", dst.display());
    let up = format!("{}/up", t.join("src").display());
    // read only: pull works, push is refused.
    assert!(rsync(&["-r", &url("ro/"), &dst_s]).status.success());
    assert_eq!(fs::read(dst.join("file")).unwrap(), b"read me\n");
    assert!(!rsync(&[&up, &url("ro/")]).status.success());
    // read write: both.
    assert!(rsync(&[&up, &url("rw/")]).status.success());
    assert!(t.join("rw/up").exists());
    // write only: push works, pull is refused.
    assert!(rsync(&[&up, &url("wo/")]).status.success());
    assert!(!rsync(&["-r", &url("wo/"), &dst_s]).status.success());
    // hosts deny.
    let denied = rsync(&[&up, &url("deny/")]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("access denied"),
        "{denied:?}"
    );
    // disabled: not there at all.
    assert!(!rsync(&[&up, &url("off/")]).status.success());
    assert!(!t.join("off/up").exists());
    // Our client against it through a Task.
    let mut task = Task::default();
    task.path = t.join("got2");
    fs::create_dir_all(&task.path).unwrap();
    task.direction = Direction::Pull;
    task.remote_host = "127.0.0.1".into();
    task.remote_port = Some(d.port);
    task.remote_module = "hidden".into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(task.run_now().unwrap().wait());
    assert!(r.is_success(), "{r:?}");
    assert!(task.path.join("file").exists());
}

#[test]
fn injection_attempts_never_reach_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = module("ok", tmp.path(), Access::ReadOnly);
    for evil in [
        "x\n[root]\npath = /\nread only = no",
        "x\rread only = no",
        "x\\",
    ] {
        m.comment = evil.into();
        assert!(
            Service::default().to_conf_string(&[m.clone()]).is_err(),
            "{evil:?}"
        );
    }
    m.comment = "ok".into();
    m.name = "a]\n[root".into();
    assert!(Service::default().to_conf_string(&[m]).is_err());
}

#[test]
fn live_module_changes_keep_transfers_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for d in ["a", "b"] {
        fs::create_dir_all(t.join(d)).unwrap();
    }
    let big: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    fs::write(t.join("a/big.bin"), &big).unwrap();
    fs::write(t.join("b/small"), b"b\n").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut svc = Service::default();
        svc.port = 0;
        svc.auxiliary.insert("address".into(), "127.0.0.1".into());
        let running = svc
            .start(vec![module("a", &t.join("a"), Access::ReadOnly)])
            .await
            .unwrap();
        let port = running.local_addr().port();
        let pull = |module: &str, dest: &Path| {
            fs::create_dir_all(dest).unwrap();
            let mut task = Task::default();
            task.path = dest.to_path_buf();
            task.direction = Direction::Pull;
            task.remote_host = "127.0.0.1".into();
            task.remote_port = Some(port);
            task.remote_module = module.into();
            task.compress = false;
            task.extra = vec!["--bwlimit=2048".into()];
            task.run_now().unwrap()
        };
        // A slow pull of `a` is under way...
        let slow = pull("a", &t.join("slow"));
        let mut rx = slow.progress();
        while rx.changed().await.is_ok() {
            if rx.borrow().current_done > 0 {
                break;
            }
        }
        assert_eq!(running.active_connections(), 1);
        // ...while `b` is added and `a` removed.
        running
            .put_module(module("b", &t.join("b"), Access::ReadOnly))
            .unwrap();
        assert!(running.remove_module("a").unwrap());
        assert!(!running.remove_module("a").unwrap());
        let names: Vec<String> = running.modules().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["b"]);
        let b = pull("b", &t.join("gotb")).wait().await;
        assert!(b.is_success(), "{b:?}");
        let gone = pull("a", &t.join("gota")).wait().await;
        assert_eq!(gone.status, RunStatus::Failed, "{gone:?}");
        assert!(gone.error.unwrap_or_default().contains("Unknown module"));
        let done = slow.wait().await;
        assert!(done.is_success(), "{done:?}");
        assert_eq!(fs::read(t.join("slow/big.bin")).unwrap(), big);
        // An invalid change is refused whole and changes nothing.
        let mut bad = module("c", &t.join("b"), Access::ReadOnly);
        bad.comment = "x\n[y]".into();
        assert!(running.put_module(bad).is_err());
        assert_eq!(running.modules().len(), 1);
        running.stop().await.unwrap();
    });
}

/// `start_automatically`: `Service::autostart` (what a host calls at boot)
/// starts the daemon when it is true, serving what real rsync then lists
/// and pulls, and binds nothing when it is false; a broken configuration
/// is reported either way.
#[test]
fn autostart_follows_start_automatically() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("data")).unwrap();
    fs::write(t.join("data/file"), b"served\n").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = common::daemon::free_port();
    // The saved configuration, as a host keeps it.
    let saved = format!(
        "port = {port}\nstart_automatically = false\n\
         [auxiliary]\naddress = \"127.0.0.1\"\n"
    );
    let off: Service = toml::from_str(&saved).unwrap();
    let modules = vec![module("data", &t.join("data"), Access::ReadOnly)];
    let r = rt.block_on(off.autostart(modules.clone())).unwrap();
    assert!(r.is_none());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens when start_automatically is false"
    );
    let mut broken = modules.clone();
    broken[0].comment = "x\n[y]".into();
    assert!(rt.block_on(off.autostart(broken.clone())).is_err());

    let on: Service = toml::from_str(&saved.replace("= false", "= true")).unwrap();
    assert!(on.start_automatically);
    assert!(rt.block_on(on.autostart(broken)).is_err());
    let running = rt
        .block_on(on.autostart(modules))
        .unwrap()
        .expect("started");
    assert_eq!(running.local_addr().port(), port);
    let url = format!("rsync://127.0.0.1:{port}/");
    let list = rsync(&[&url]);
    assert!(list.status.success(), "{list:?}");
    assert!(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|l| l.starts_with("data")),
        "{list:?}"
    );
    let dst = t.join("got");
    let got = rsync(&["-r", &format!("{url}data/"), dst.to_str().unwrap()]);
    assert!(got.status.success(), "{got:?}");
    assert_eq!(fs::read(dst.join("file")).unwrap(), b"served\n");
    rt.block_on(running.stop()).unwrap();
}
