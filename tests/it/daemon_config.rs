//! The real `rsync --daemon` (3.5.0) accepts what `DaemonConfig::to_conf_string`
//! writes: it lists the listed modules, hides the unlisted one, serves a
//! file from a module's path and refuses a client that `hosts deny` names.
//! (Only for this test does a daemon run; it is killed when the test ends.)

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferrsync::daemon::config::{DaemonConfig, Module};
use ferrsync::daemon::hosts::HostList;
use ferrsync::daemon::secrets::parse_auth_users;

/// Kills the daemon when the test ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_daemon(conf: &Path, port: u16) -> Daemon {
    let child = Command::new("/usr/bin/rsync")
        .arg("--daemon")
        .arg("--no-detach")
        .arg(format!("--config={}", conf.display()))
        .arg(format!("--port={port}"))
        .arg("--address=127.0.0.1")
        .stdin(Stdio::null())
        .spawn()
        .expect("/usr/bin/rsync must be installed");
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rsync daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

fn rsync(args: &[&str]) -> Output {
    Command::new("/usr/bin/rsync")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn real_rsync_accepts_rendered_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let meta = fs::metadata(root).unwrap();
    let pub_dir = root.join("pub");
    fs::create_dir(&pub_dir).unwrap();
    fs::write(pub_dir.join("hello.txt"), "hello from the daemon\n").unwrap();
    fs::write(root.join("motd"), "Welcome to the rendered daemon.\n").unwrap();
    let secrets = root.join("secrets");
    fs::write(&secrets, "alice:s3cret\n").unwrap();
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600)).unwrap();

    let mut cfg = DaemonConfig::default();
    cfg.global.motd_file = Some(root.join("motd"));
    cfg.global.log_file = Some(root.join("rsyncd.log"));
    cfg.global.pid_file = Some(root.join("rsyncd.pid"));
    cfg.global.reverse_lookup = false;

    let mut m = Module::new("pub", &pub_dir);
    m.comment = "public read-only module".into();
    m.uid = Some(meta.uid().to_string());
    m.gid = Some(meta.gid().to_string());
    m.use_chroot = false;
    m.numeric_ids = true;
    m.max_connections = 5;
    m.lock_file = root.join("rsyncd.lock");
    m.hosts_allow = HostList::parse("127.0.0.1, ::1").unwrap();
    m.refuse_options = vec!["delete".into(), "checksum".into()];
    m.exclude = vec!["*.tmp".into()];
    m.filter = vec!["- *.bak".into()];
    m.dont_compress = vec!["*.gz".into(), "*.zip".into()];
    m.transfer_logging = true;
    m.log_format = "%o %h %f %l".into();
    m.outgoing_chmod = Some("Fgo-w,D755".into());
    m.munge_symlinks = Some(false);
    m.timeout = 60;
    cfg.modules.push(m);

    let mut up = Module::new("upload", root.join("upload"));
    up.comment = "authenticated upload".into();
    up.read_only = false;
    up.auth_users = parse_auth_users("alice:rw, @staff:ro, *:deny");
    up.secrets_file = Some(secrets.clone());
    up.auth_digest = Some("sha256".into());
    up.incoming_chmod = Some("Dg+s,ug+w,Fo-w,+X".into());
    up.strict_modes = true;
    cfg.modules.push(up);

    let mut hidden = Module::new("hidden", root.join("hidden"));
    hidden.list = false;
    hidden.extra.insert("temp dir".into(), "/tmp".into());
    cfg.modules.push(hidden);

    let mut blocked = Module::new("blocked", &pub_dir);
    blocked.hosts_deny = HostList::parse("10.0.0.0/8 127.0.0.0/255.0.0.0").unwrap();
    cfg.modules.push(blocked);

    let text = cfg.to_conf_string();
    let (back, _) = DaemonConfig::parse(&text).unwrap();
    assert_eq!(back, cfg, "{text}");
    let conf = root.join("rsyncd.conf");
    fs::write(&conf, &text).unwrap();

    let port = free_port();
    let _daemon = start_daemon(&conf, port);
    let base = format!("rsync://127.0.0.1:{port}/");

    let list = rsync(&[&base]);
    let stdout = String::from_utf8_lossy(&list.stdout);
    let log = fs::read_to_string(root.join("rsyncd.log")).unwrap_or_default();
    assert!(
        list.status.success(),
        "{list:?}\nconfig:\n{text}\nlog:\n{log}"
    );
    assert!(
        stdout.contains("Welcome to the rendered daemon."),
        "{stdout}"
    );
    assert!(
        stdout.contains("pub            \tpublic read-only module\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("upload         \tauthenticated upload\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("hidden"), "{stdout}");
    assert!(
        !log.contains("Unknown Parameter"),
        "rsync rejected a parameter we wrote:\n{log}"
    );

    // The module's path is honoured.
    let dest = root.join("dest");
    let pull = rsync(&[&format!("{base}pub/hello.txt"), &dest.display().to_string()]);
    assert!(pull.status.success(), "{pull:?}");
    assert_eq!(
        fs::read_to_string(&dest).unwrap(),
        "hello from the daemon\n"
    );

    // hosts deny is honoured; an unlisted module is still known (its
    // missing directory is what fails).
    let denied = rsync(&[
        &format!("{base}blocked/"),
        &root.join("d2").display().to_string(),
    ]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("@ERROR: access denied to blocked"),
        "{denied:?}"
    );
    let hidden = rsync(&[&format!("{base}hidden/")]);
    let hidden_err = String::from_utf8_lossy(&hidden.stderr);
    assert!(
        hidden_err.contains("@ERROR: ") && !hidden_err.contains("Unknown module"),
        "{hidden:?}"
    );
}
