//! Confining a connection to its module: a per-thread `chroot` and a
//! per-thread uid/gid switch when the daemon runs as root, and path checks
//! (through symlinks) when it does not.
//!
//! Layer: daemon (L5). Uses rustix. Mirrors upstream clientserver.c
//! (`rsync_module`: chroot, setgid/setgroups/setuid).
//!
//! Linux keeps the root directory, the working directory and the
//! credentials per thread at the system-call level, so the thread that
//! serves one connection can chroot and drop privileges while the accept
//! loop and other connections keep theirs. The daemon runs each connection
//! on its own thread for this reason.

use std::path::{Path, PathBuf};

use super::config::Module;

/// How a connection is confined.
#[derive(Debug, Clone)]
pub struct Confined {
    chrooted: bool,
}

impl Confined {
    /// No confinement by the kernel (path checks only).
    #[must_use]
    pub fn none() -> Self {
        Confined { chrooted: false }
    }

    /// Whether this thread is chrooted into the module.
    #[must_use]
    pub fn is_chrooted(&self) -> bool {
        self.chrooted
    }

    /// The module's root as this thread sees it.
    #[must_use]
    pub fn root(&self, module_path: &Path) -> PathBuf {
        if self.chrooted {
            PathBuf::from("/")
        } else {
            module_path.to_path_buf()
        }
    }
}

/// Whether we run with root's powers.
#[must_use]
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Looks a user up in `/etc/passwd`: (uid, primary gid).
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    if let Ok(n) = name.parse::<u32>() {
        let gid = passwd_lines()
            .into_iter()
            .find(|f| f.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(n))
            .and_then(|f| f.get(3).and_then(|g| g.parse().ok()))
            .unwrap_or(n);
        return Some((n, gid));
    }
    passwd_lines().into_iter().find_map(|f| {
        (f.first().map(String::as_str) == Some(name)).then(|| {
            let uid = f.get(2)?.parse().ok()?;
            let gid = f.get(3)?.parse().ok()?;
            Some((uid, gid))
        })?
    })
}

fn passwd_lines() -> Vec<Vec<String>> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// Looks a group up in `/etc/group`.
fn lookup_group(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1)?.parse().ok())?
        })
}

/// Confines the calling thread to `module`: when root, chroot (if the
/// module wants it) and switch to the module's uid/gid (rsync's defaults:
/// `nobody` and its group). Must be called on a thread that serves only
/// this connection.
///
/// # Errors
/// The text for `@ERROR`-style reporting (e.g. `invalid uid nosuchuser`,
/// `chroot failed`).
pub fn enter(module: &Module) -> Result<Confined, String> {
    if !is_root() {
        return Ok(Confined::none());
    }
    let uid_name = module.uid.clone().unwrap_or_else(|| "nobody".into());
    let (uid, user_gid) =
        lookup_user(&uid_name).ok_or_else(|| format!("invalid uid {uid_name}"))?;
    let gid = match &module.gid {
        Some(g) => lookup_group(g).ok_or_else(|| format!("invalid gid {g}"))?,
        None => lookup_group("nogroup")
            .or_else(|| lookup_group("nobody"))
            .unwrap_or(user_gid),
    };
    let mut chrooted = false;
    if module.use_chroot {
        enter_chroot(&module.path)
            .map_err(|e| format!("chroot {} failed: {e}", module.path.display()))?;
        chrooted = true;
    }
    let g = rustix::process::Gid::from_raw(gid);
    rustix::thread::set_thread_groups(&[g]).map_err(|e| format!("setgroups failed: {e}"))?;
    rustix::thread::set_thread_res_gid(g, g, g).map_err(|e| format!("setgid failed: {e}"))?;
    let u = rustix::process::Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(u, u, u).map_err(|e| format!("setuid failed: {e}"))?;
    Ok(Confined { chrooted })
}

#[allow(unsafe_code)]
fn enter_chroot(path: &Path) -> std::io::Result<()> {
    // SAFETY: unsharing only the file-system attributes (root, cwd, umask)
    // gives this thread its own copy of them; no file descriptor table is
    // unshared, so no descriptor becomes invisible to another thread,
    // which is the hazard `unshare_unsafe` documents.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
    rustix::process::chdir(path)?;
    rustix::process::chroot(".")?;
    rustix::process::chdir("/")?;
    Ok(())
}

/// Checks that `full` (a path under `module_path`, possibly not existing
/// yet) stays inside the module when symlinks are resolved. For a sender
/// a final component that is a symlink named without a trailing slash is
/// sent as a link, so only its parent must resolve inside.
///
/// # Errors
/// A message for the client.
pub fn check_inside(module_path: &Path, full: &Path, sender: bool) -> Result<(), String> {
    let root = module_path.canonicalize().map_err(|e| {
        format!(
            "ERROR: module path {} is not usable: {e}",
            module_path.display()
        )
    })?;
    let text = full.to_string_lossy();
    let trailing = text.ends_with('/');
    let mut probe = full.to_path_buf();
    if sender && !trailing {
        if let Ok(md) = std::fs::symlink_metadata(&probe) {
            if md.file_type().is_symlink() {
                probe.pop();
            }
        }
    }
    // The nearest existing ancestor decides (the rest is created by us,
    // without following links).
    loop {
        match probe.canonicalize() {
            Ok(real) => {
                if real.starts_with(&root) {
                    return Ok(());
                }
                return Err(format!(
                    "ERROR: {} leads outside the module",
                    full.strip_prefix(module_path).unwrap_or(full).display()
                ));
            }
            Err(_) => {
                if !probe.pop() {
                    return Err("ERROR: bad path".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_out_of_the_module_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("mod");
        let out = t.path().join("outside");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&out, m.join("esc")).unwrap();
        assert!(check_inside(&m, &m.join("sub/"), true).is_ok());
        assert!(check_inside(&m, &m.join("new/deeper"), false).is_ok());
        assert!(check_inside(&m, &m.join("esc/"), true).is_err());
        assert!(check_inside(&m, &m.join("esc/x"), false).is_err());
        // A link named without a slash is sent as a link.
        assert!(check_inside(&m, &m.join("esc"), true).is_ok());
    }

    #[test]
    fn users_resolve() {
        assert_eq!(lookup_user("root").map(|u| u.0), Some(0));
        assert_eq!(lookup_user("0").map(|u| u.0), Some(0));
        assert_eq!(lookup_group("root"), Some(0));
        assert!(lookup_user("no-such-user-here").is_none());
    }
}
