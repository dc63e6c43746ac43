//! `--files-from`: reading the list of names, cleaning each name, and
//! carrying the list over the connection to a sender on the other side.
//!
//! Layer: engine. Uses the multiplexed stream of [`super::io`].
//! Mirrors upstream io.c `read_line` / `forward_filesfrom_data`,
//! util1.c `sanitize_path` (with `SP_KEEP_DOT_DIRS`) and the
//! `filesfrom_fd` handling of main.c and flist.c.
//!
//! On the wire the names end with a NUL each and the list ends with an
//! empty name. At protocol 31 and later they travel as multiplexed data;
//! before that as plain bytes between multiplexed parts.

use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{MuxReader, MuxWriter};
use crate::error::{Error, Result};

/// The longest name accepted (rsync's `MAXPATHLEN`).
pub const MAX_NAME: usize = 4096;

/// The most names accepted from the other side.
pub const MAX_NAMES: usize = 10_000_000;

/// Splits a files-from text into names: at NUL with `from0`, else at CR
/// or LF. Empty names are skipped; with `comments` (a list read locally
/// by the sender) so are lines starting with `#` or `;`.
///
/// ```
/// use ferrsync::engine::files_from::split_names;
/// let n = split_names(b"a\n# c\n\nb/c\r\n", false, true);
/// assert_eq!(n, vec![b"a".to_vec(), b"b/c".to_vec()]);
/// assert_eq!(split_names(b"a\0b\0", true, true).len(), 2);
/// ```
#[must_use]
pub fn split_names(data: &[u8], from0: bool, comments: bool) -> Vec<Vec<u8>> {
    data.split(|&c| {
        if from0 {
            c == 0
        } else {
            c == b'\n' || c == b'\r'
        }
    })
    .filter(|l| !l.is_empty())
    .filter(|l| !(comments && matches!(l.first(), Some(b'#' | b';'))))
    .map(<[u8]>::to_vec)
    .collect()
}

/// rsync's `sanitize_path` for a files-from name: no leading or doubled
/// slashes, `..` never climbs above the start, `.` components kept when
/// `keep_dots` (`-R`, where `/./` marks the relative part), a trailing
/// slash kept; empty becomes `.`.
///
/// ```
/// use ferrsync::engine::files_from::sanitize_name;
/// assert_eq!(sanitize_name(b"/a//b/", true), b"a/b/");
/// assert_eq!(sanitize_name(b"../x/../y", true), b"y");
/// assert_eq!(sanitize_name(b"d/./e", true), b"d/./e");
/// assert_eq!(sanitize_name(b"d/./e", false), b"d/e");
/// assert_eq!(sanitize_name(b"..", true), b".");
/// ```
#[must_use]
pub fn sanitize_name(name: &[u8], keep_dots: bool) -> Vec<u8> {
    let mut p = name;
    if !keep_dots {
        while let Some(r) = p.strip_prefix(b"./") {
            p = r;
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'/' {
            i += 1;
            continue;
        }
        let end = p[i..]
            .iter()
            .position(|&c| c == b'/')
            .map_or(p.len(), |e| e + i);
        let comp = &p[i..end];
        if !keep_dots && comp == b"." {
            i = end;
            continue;
        }
        if comp == b".." {
            // Back up one level (to the slash before the last kept
            // component).
            if !out.is_empty() {
                out.pop();
                while out.last().is_some_and(|&c| c != b'/') {
                    out.pop();
                }
            }
            i = end;
            continue;
        }
        out.extend_from_slice(comp);
        if end < p.len() {
            out.push(b'/');
        }
        i = end;
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// The names of a local files-from list (`-` is standard input), as the
/// sending side reads them: comments and empty lines skipped, each name
/// cleaned.
///
/// # Errors
/// The file cannot be opened, with rsync's text.
pub fn read_local_names(file: &str, from0: bool, relative: bool) -> Result<Vec<Vec<u8>>> {
    Ok(cleaned_names(&read_list(file)?, from0, relative))
}

/// The names of a list read on the sending side, comments dropped and
/// each one cleaned.
fn cleaned_names(data: &[u8], from0: bool, relative: bool) -> Vec<Vec<u8>> {
    split_names(data, from0, true)
        .iter()
        .map(|n| sanitize_name(n, relative))
        .collect()
}

/// rsync's text for a files-from list that cannot be read.
fn open_error(file: &str, e: &std::io::Error) -> Error {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    Error::FileSelect(format!("failed to open files-from file {file}: {text}"))
}

/// A daemon's files-from list (`file` a path in the module), read
/// beneath the module's handle: a directory on the way that is, or is
/// swapped for, a symlink leading out of the module is never followed
/// out. Cleaned as [`read_local_names`].
///
/// # Errors
/// The file cannot be opened beneath the module, with rsync's text.
pub fn read_names_beneath(
    root: &crate::fs::beneath_read::ReadRoot,
    file: &str,
    from0: bool,
    relative: bool,
) -> Result<Vec<Vec<u8>>> {
    let data = root
        .read(std::path::Path::new(file))
        .map_err(|e| open_error(file, &e))?;
    Ok(cleaned_names(&data, from0, relative))
}

/// A local files-from list as bytes (`-` is standard input).
///
/// # Errors
/// The file cannot be opened, with rsync's text.
pub fn read_list(file: &str) -> Result<Vec<u8>> {
    let fail = |e: std::io::Error| open_error(file, &e);
    match super::filters::read_local(file.as_bytes()) {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(fail(std::io::Error::from(std::io::ErrorKind::NotFound))),
        Err(e) => Err(fail(e)),
    }
}

/// Sends a local list to the sender on the other side (rsync's
/// forwarding: the names are not cleaned and comments are not dropped
/// here; the sender does that with what it reads).
///
/// # Errors
/// A broken connection.
pub async fn forward<W: AsyncWrite + Unpin>(
    w: &mut MuxWriter<W>,
    data: &[u8],
    from0: bool,
    protocol: u8,
) -> Result<()> {
    let names = split_names(data, from0, false);
    let was_muxed = w.is_muxed();
    if protocol < 31 && was_muxed {
        w.flush().await?;
        w.set_muxed(false);
    }
    for n in &names {
        w.buf().extend_from_slice(n);
        w.buf().push(0);
        w.maybe_flush().await?;
    }
    // The empty name that ends the list.
    w.buf().push(0);
    w.flush().await?;
    if protocol < 31 && was_muxed {
        w.set_muxed(true);
    }
    Ok(())
}

/// [`forward`] while reading what the peer sends meanwhile into `r`'s
/// buffer (rsync forwards the list from its I/O loop): a sender that
/// answers each name with file-list bytes cannot block us, nor we it,
/// however long the list.
///
/// # Errors
/// A broken connection.
pub async fn forward_interleaved<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut MuxReader<R>,
    w: &mut MuxWriter<W>,
    data: &[u8],
    from0: bool,
    protocol: u8,
) -> Result<()> {
    // What may pile up unread: far more than a file list's bytes for
    // MAX_NAMES names would need before the sender reads on.
    const HOLD: usize = 1 << 30;
    let send = forward(w, data, from0, protocol);
    tokio::pin!(send);
    let mut reading = true;
    loop {
        tokio::select! {
            res = &mut send => return res,
            got = r.prefetch(HOLD), if reading => {
                // The end of the stream, or an error, shows again when
                // the list is read; stop looking until then.
                if !matches!(got, Ok(n) if n > 0) {
                    reading = false;
                }
            }
        }
    }
}

/// Reads the names the other side forwards, up to the empty name, each
/// cleaned as the sender cleans them.
///
/// # Errors
/// A name longer than [`MAX_NAME`], too many names, a broken connection.
pub async fn receive<R: AsyncRead + Unpin>(
    r: &mut MuxReader<R>,
    protocol: u8,
    relative: bool,
) -> Result<Vec<Vec<u8>>> {
    let unmux = protocol < 31 && r.is_muxed();
    if unmux {
        r.set_muxed(false);
    }
    let mut names = Vec::new();
    let mut cur = Vec::new();
    loop {
        let b = r.read_u8().await?;
        if b != 0 {
            if cur.len() >= MAX_NAME {
                return Err(Error::Protocol("files-from name too long".into()));
            }
            cur.push(b);
            continue;
        }
        if cur.is_empty() {
            break;
        }
        names.push(sanitize_name(&cur, relative));
        cur.clear();
        if names.len() > MAX_NAMES {
            return Err(Error::Protocol("too many files-from names".into()));
        }
    }
    if unmux {
        r.set_muxed(true);
    }
    Ok(names)
}
