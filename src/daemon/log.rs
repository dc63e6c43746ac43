//! The daemon's log: connections, refusals, errors, and per-file transfer
//! lines in the module's `log format` when `transfer logging` is on.
//!
//! Layer: daemon (L5). Mirrors upstream log.c (`log_formatted`, the `%`
//! escapes) for the escapes listed at [`format_transfer`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::Module;
use super::serve::PeerInfo;
use crate::engine::report::item;
use crate::engine::{Event, EventSink};

/// Where the daemon's log lines go (nowhere when no `log file` is set).
#[derive(Clone, Default)]
pub struct DaemonLog {
    file: Option<Arc<Mutex<File>>>,
}

impl std::fmt::Debug for DaemonLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonLog")
            .field("file", &self.file.is_some())
            .finish()
    }
}

impl DaemonLog {
    /// Opens (appends to) `path`; a file that cannot be opened means no log.
    #[must_use]
    pub fn open(path: Option<&Path>) -> Self {
        let file = path.and_then(|p| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
                .map(|f| Arc::new(Mutex::new(f)))
        });
        DaemonLog { file }
    }

    /// Writes one line with rsync's timestamp and pid prefix.
    pub fn line(&self, msg: &str) {
        let Some(f) = &self.file else { return };
        let text = format!(
            "{} [{}] {}\n",
            timestamp(SystemTime::now()),
            std::process::id(),
            msg.trim_end()
        );
        if let Ok(mut f) = f.lock() {
            let _ = f.write_all(text.as_bytes());
        }
    }

    /// An event sink that logs each transferred file in the module's log
    /// format, or `None` when the module does not log transfers.
    #[must_use]
    pub fn transfer_sink(
        &self,
        module: &Module,
        peer: &PeerInfo,
        user: &str,
        sending: bool,
    ) -> Option<EventSink> {
        if !module.transfer_logging || self.file.is_none() {
            return None;
        }
        let log = self.clone();
        let ctx = LogContext {
            module: module.name.clone(),
            format: module.log_format.clone(),
            host: peer.host.clone().unwrap_or_else(|| "UNKNOWN".into()),
            addr: peer
                .addr
                .map_or_else(|| "0.0.0.0".into(), |a| a.to_string()),
            user: user.to_string(),
            sending,
        };
        Some(Arc::new(move |ev: &Event| {
            if let Event::Itemize { flags, .. } = ev {
                if flags & item::TRANSFER != 0 {
                    log.line(&format_transfer(&ctx, ev));
                }
            }
        }))
    }
}

/// What a transfer line may mention.
#[derive(Debug, Clone)]
pub struct LogContext {
    /// Module name (`%m`).
    pub module: String,
    /// The module's `log format`.
    pub format: String,
    /// Client host name (`%h`).
    pub host: String,
    /// Client address (`%a`).
    pub addr: String,
    /// Authenticated user (`%u`).
    pub user: String,
    /// Whether the daemon sends (`%o` is `send`, else `recv`).
    pub sending: bool,
}

/// Formats one transfer line. Escapes: `%o` operation, `%h` host, `%a`
/// address, `%m` module, `%u` user, `%f`/`%n` file name (`%n` with a `/`
/// after directories), `%l` length, `%i` itemize string, `%p` pid, `%t`
/// time, `%%`. Unknown escapes are kept as they are.
#[must_use]
pub fn format_transfer(ctx: &LogContext, ev: &Event) -> String {
    let Event::Itemize {
        name, size, kind, ..
    } = ev
    else {
        return String::new();
    };
    let name = String::from_utf8_lossy(name);
    let mut out = String::new();
    let mut chars = ctx.format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('o') => out.push_str(if ctx.sending { "send" } else { "recv" }),
            Some('h') => out.push_str(&ctx.host),
            Some('a') => out.push_str(&ctx.addr),
            Some('m') => out.push_str(&ctx.module),
            Some('u') => out.push_str(&ctx.user),
            Some('f') => out.push_str(&name),
            Some('n') => {
                out.push_str(&name);
                if *kind == crate::engine::ItemKind::Dir {
                    out.push('/');
                }
            }
            Some('l') => out.push_str(&size.to_string()),
            Some('i') => out.push_str(&ev.itemize_string().unwrap_or_default()),
            Some('p') => out.push_str(&std::process::id().to_string()),
            Some('t') => out.push_str(&timestamp(SystemTime::now())),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// `YYYY/MM/DD HH:MM:SS` (UTC).
fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(
            timestamp(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400 + 3661)),
            "2000/02/29 01:01:01"
        );
    }

    #[test]
    fn formats() {
        let ctx = LogContext {
            module: "pub".into(),
            format: "%o %h [%a] %m (%u) %f %l %q%%".into(),
            host: "localhost".into(),
            addr: "127.0.0.1".into(),
            user: "alice".into(),
            sending: false,
        };
        let ev = Event::Itemize {
            flags: item::TRANSFER,
            kind: crate::engine::ItemKind::File,
            name: b"dir/file".to_vec(),
            extra: None,
            sending: false,
            times: true,
            known: true,
            size: 1234,
        };
        assert_eq!(
            format_transfer(&ctx, &ev),
            "recv localhost [127.0.0.1] pub (alice) dir/file 1234 %q%"
        );
    }
}
