//! Local accounts: looking users and groups up, and running the calling
//! thread as one.
//!
//! Layer: task. Reads `/etc/passwd` and `/etc/group` (as the daemon's
//! `confine` does; no NSS), switches per-thread credentials with rustix.

/// A user's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
}

fn file_lines(path: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// Looks a user up by name or number.
pub(crate) fn lookup_user(name: &str) -> Option<Account> {
    let users = file_lines("/etc/passwd");
    let entry = users.iter().find(|f| {
        f.first().map(String::as_str) == Some(name)
            || (name.parse::<u32>().is_ok() && f.get(2).map(String::as_str) == Some(name))
    })?;
    let uid = entry.get(2)?.parse().ok()?;
    let gid = entry.get(3)?.parse().ok()?;
    let login = entry.first()?.clone();
    let mut groups = vec![gid];
    for g in file_lines("/etc/group") {
        let member = g.get(3).is_some_and(|m| m.split(',').any(|u| u == login));
        if member {
            if let Some(id) = g.get(2).and_then(|s| s.parse().ok()) {
                if !groups.contains(&id) {
                    groups.push(id);
                }
            }
        }
    }
    Some(Account { uid, gid, groups })
}

/// Whether a group exists (by name or number).
pub(crate) fn group_exists(name: &str) -> bool {
    name.parse::<u32>().is_ok()
        || file_lines("/etc/group")
            .iter()
            .any(|g| g.first().map(String::as_str) == Some(name))
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether the process already runs as `acct`.
pub(crate) fn is_current(acct: &Account) -> bool {
    rustix::process::geteuid().as_raw() == acct.uid
}

/// Switches the calling thread (only) to `acct`: groups, gid, uid, in
/// that order. Call it on a thread that runs nothing else.
pub(crate) fn become_user(acct: &Account) -> Result<(), String> {
    let groups: Vec<_> = acct
        .groups
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    rustix::thread::set_thread_groups(&groups).map_err(|e| format!("setgroups failed: {e}"))?;
    let g = rustix::process::Gid::from_raw(acct.gid);
    rustix::thread::set_thread_res_gid(g, g, g).map_err(|e| format!("setgid failed: {e}"))?;
    let u = rustix::process::Uid::from_raw(acct.uid);
    rustix::thread::set_thread_res_uid(u, u, u).map_err(|e| format!("setuid failed: {e}"))?;
    Ok(())
}
