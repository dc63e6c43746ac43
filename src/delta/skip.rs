//! `--skip-compress`: file suffixes whose data is not worth compressing
//! (rsync deflates those files at level 0).
//!
//! Layer: delta (pure). Mirrors upstream token.c `set_compression` and the
//! default suffix list of rsync 3.x (its `dont compress` default).

/// rsync's default list (used when no `--skip-compress` is given).
pub const DEFAULT_SKIP_COMPRESS: &str = "3g2/3gp/7z/aac/ace/apk/avi/bz2/deb/dmg/ear/f4v/flac/flv/gpg/gz/iso/jar/jpeg/jpg/lrz/lz/lz4/lzma/lzo/m1a/m1v/m2a/m2ts/m2v/m4a/m4b/m4p/m4r/m4v/mka/mkv/mov/mp1/mp2/mp3/mp4/mpa/mpeg/mpg/mpv/mts/odb/odf/odg/odi/odm/odp/ods/odt/oga/ogg/ogm/ogv/ogx/opus/otg/oth/otp/ots/ott/oxt/png/qt/rar/rpm/rz/rzip/spx/squashfs/sxc/sxd/sxg/sxm/sxw/sz/tbz/tbz2/tgz/tlz/ts/txz/tzo/vob/war/webm/webp/xz/z/zip/zst";

/// One character position of a suffix pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unit {
    Byte(u8),
    /// `[...]`: any of these bytes.
    Class(Vec<u8>),
}

/// A parsed suffix list: `gz/jpg/mp[34]`, case-insensitive. Daemon-style
/// entries (`*.gz`, space separated) are accepted too.
///
/// ```
/// use ferrsync::delta::SkipCompress;
/// let s = SkipCompress::new(Some("gz/mp[34]"));
/// assert!(s.matches(b"dir/a.GZ") && s.matches(b"song.mp3") && !s.matches(b"song.mp5"));
/// assert!(SkipCompress::new(None).matches(b"photo.jpg"));
/// assert!(!SkipCompress::new(Some("")).matches(b"photo.jpg"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct SkipCompress {
    suffixes: Vec<Vec<Unit>>,
}

impl SkipCompress {
    /// The list `spec` (`None`: rsync's default list; empty: nothing is
    /// skipped).
    #[must_use]
    pub fn new(spec: Option<&str>) -> Self {
        let spec = spec.unwrap_or(DEFAULT_SKIP_COMPRESS);
        let suffixes = spec
            .split(|c: char| c == '/' || c.is_whitespace())
            .map(|w| w.trim_start_matches('*').trim_start_matches('.'))
            .filter(|w| !w.is_empty())
            .map(parse)
            .collect();
        SkipCompress { suffixes }
    }

    /// Whether the file `name`'s suffix (after its last `.`) is listed.
    #[must_use]
    pub fn matches(&self, name: &[u8]) -> bool {
        let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
        let Some(dot) = base.iter().rposition(|&b| b == b'.') else {
            return false;
        };
        let suffix = base.get(dot + 1..).unwrap_or_default();
        self.suffixes.iter().any(|p| {
            p.len() == suffix.len()
                && p.iter().zip(suffix).all(|(u, &b)| {
                    let b = b.to_ascii_lowercase();
                    match u {
                        Unit::Byte(c) => *c == b,
                        Unit::Class(set) => set.contains(&b),
                    }
                })
        })
    }
}

fn parse(word: &str) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut rest = word.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'[' {
            if let Some(end) = tail.iter().position(|&b| b == b']') {
                let (set, after) = tail.split_at(end);
                units.push(Unit::Class(
                    set.iter().map(u8::to_ascii_lowercase).collect(),
                ));
                rest = after.get(1..).unwrap_or_default();
                continue;
            }
        }
        units.push(Unit::Byte(first.to_ascii_lowercase()));
        rest = tail;
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        let s = SkipCompress::new(Some("*.gz *.ZIP"));
        assert!(s.matches(b"x.gz") && s.matches(b"a/b.zip"));
        assert!(!s.matches(b"gz") && !s.matches(b"x.tgz") && !s.matches(b"x.gz/y"));
        let d = SkipCompress::new(None);
        assert!(d.matches(b"a.tar.xz") && d.matches(b"m.MP4") && !d.matches(b"notes.txt"));
    }
}
