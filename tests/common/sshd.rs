//! A real OpenSSH `sshd` on a free 127.0.0.1 port with its own config,
//! a generated host key and generated user keys; killed on drop.
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Runs `ssh-keygen` for a new key without a passphrase unless given.
pub fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "ferrsync-test",
        "-f",
    ])
    .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let st = cmd.status().expect("ssh-keygen must be installed");
    assert!(st.success(), "ssh-keygen -t {kind} failed");
}

/// The public half of a key file, one line.
pub fn public_line(key: &Path) -> String {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    fs::read_to_string(PathBuf::from(p))
        .unwrap()
        .trim()
        .to_string()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the port.
pub fn wait_listening(port: u16) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// Keys of a test user and of a host.
pub struct Keys {
    pub dir: PathBuf,
    /// The host's private key.
    pub host: PathBuf,
    /// The user's ed25519 key, authorized.
    pub user: PathBuf,
    /// Another ed25519 key, not authorized.
    pub stranger: PathBuf,
    /// `known_hosts` with the right host key for the port.
    pub known_hosts: PathBuf,
    /// `authorized_keys` with the user's key.
    pub authorized: PathBuf,
}

impl Keys {
    pub fn new(dir: &Path) -> Keys {
        fs::create_dir_all(dir).unwrap();
        let host = dir.join("host_ed25519");
        let user = dir.join("id_ed25519");
        let stranger = dir.join("stranger_ed25519");
        keygen(&host, "ed25519", "");
        keygen(&user, "ed25519", "");
        keygen(&stranger, "ed25519", "");
        let authorized = dir.join("authorized_keys");
        fs::write(&authorized, format!("{}\n", public_line(&user))).unwrap();
        Keys {
            dir: dir.to_path_buf(),
            host,
            user,
            stranger,
            known_hosts: dir.join("known_hosts"),
            authorized,
        }
    }

    /// Writes `known_hosts` naming `[127.0.0.1]:port` with the host key.
    pub fn trust(&self, port: u16) {
        let line = public_line(&self.host);
        let mut w = line.split_whitespace();
        let (kind, b64) = (w.next().unwrap(), w.next().unwrap());
        fs::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{port} {kind} {b64}\n"),
        )
        .unwrap();
    }

    /// Authorizes one more public key.
    pub fn authorize(&self, key: &Path) {
        let mut s = fs::read_to_string(&self.authorized).unwrap();
        s.push_str(&public_line(key));
        s.push('\n');
        fs::write(&self.authorized, s).unwrap();
    }

    /// OpenSSH client options for `rsync -e`: this port, the user key, our
    /// `known_hosts` strictly, no agent, no config.
    pub fn ssh_command(&self, port: u16) -> String {
        format!(
            "ssh -F /dev/null -p {port} -i {} -o IdentitiesOnly=yes -o IdentityAgent=none \
             -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes \
             -o LogLevel=ERROR",
            self.user.display(),
            self.known_hosts.display()
        )
    }
}

/// OpenSSH's sshd, running until dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
}

impl Sshd {
    /// Starts sshd with `keys` (host key, authorized keys).
    pub fn start(keys: &Keys) -> Sshd {
        Sshd::start_with(keys, "")
    }

    /// [`Sshd::start`] with extra `sshd_config` lines (they come first, and
    /// sshd keeps the first value of each keyword).
    pub fn start_with(keys: &Keys, extra: &str) -> Sshd {
        fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let config = keys.dir.join(format!("sshd_config_{port}"));
        fs::write(
            &config,
            format!(
                "{extra}ListenAddress 127.0.0.1:{port}\n\
                 HostKey {}\n\
                 AuthorizedKeysFile {}\n\
                 PidFile none\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\n\
                 LogLevel ERROR\n",
                keys.host.display(),
                keys.authorized.display()
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-f"])
            .arg(&config)
            // The log goes to a file: our readiness probe would otherwise
            // print a line per test.
            .arg("-E")
            .arg(keys.dir.join(format!("sshd_{port}.log")))
            .stdin(Stdio::null())
            .spawn()
            .expect("OpenSSH sshd must be installed");
        let mut s = Sshd { child, port };
        wait_listening(port);
        if let Ok(Some(st)) = s.child.try_wait() {
            panic!("sshd exited at once: {st}");
        }
        keys.trust(port);
        s
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a path exists (a socket being created).
pub fn wait_for_path(p: &Path) {
    let until = Instant::now() + Duration::from_secs(10);
    while !p.exists() {
        assert!(Instant::now() < until, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(25));
    }
}
