//! `hosts allow` / `hosts deny` lists and the access decision.
//!
//! Layer: config. Pure; no DNS, no sockets. Mirrors upstream access.c
//! (`access_match`, `match_address`, `match_hostname`, `allow_access`) and
//! the IPv4-mapped address handling of clientname.c.
//!
//! Differences from rsync, all because this module does no I/O:
//! * a plain host name is matched against the reverse-lookup name the caller
//!   passes, never by a forward lookup of the configured name
//!   (rsync's `forward lookup`), see [`HostList::plain_hostnames`];
//! * `@netgroup` entries never match (no `innetgr`);
//! * a malformed address entry (`10.0.0.0/33`, `1.2.3.999`, a scoped IPv6
//!   address) is a parse error instead of an entry that silently never
//!   matches.
//!
//! As in rsync, wildcard entries (`*.example.com`, also `10.0.0.*`) are
//! matched, case-insensitively, against the host name only; a caller whose
//! reverse lookup failed passes `Some("UNKNOWN")`, as rsync does, and one
//! with reverse lookups off passes `None`, which is matched as rsync's
//! `UNDETERMINED` (so `hosts deny = *` still refuses everyone).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::filter::iwildmatch;

/// The name rsync uses when reverse lookups are off.
const UNDETERMINED: &str = "UNDETERMINED";

/// One entry of a host list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// An address with the number of leading bits that must agree, or an
    /// explicit netmask.
    Net { addr: IpAddr, mask: Mask },
    /// A host name or host-name wildcard, lower-cased.
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mask {
    Bits(u32),
    Netmask(IpAddr),
}

/// A parsed `hosts allow` or `hosts deny` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostList {
    text: String,
    entries: Vec<Entry>,
}

/// `::ffff:a.b.c.d` as the IPv4 address rsync turns it into.
fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Whether a token is address-shaped (rsync: only digits and dots, or any
/// colon), judged on the part before a `/`.
fn looks_like_address(tok: &str) -> bool {
    let head = tok.split_once('/').map_or(tok, |(h, _)| h);
    head.contains(':') || head.bytes().all(|b| b == b'.' || b.is_ascii_digit())
}

fn parse_net(tok: &str) -> Result<Entry, String> {
    let (head, mask) = match tok.split_once('/') {
        Some((h, m)) => (h, Some(m)),
        None => (tok, None),
    };
    if head.contains('%') {
        return Err(format!(
            "scoped IPv6 address {tok:?} is not supported in a host list"
        ));
    }
    let addr: IpAddr = head
        .parse()
        .map_err(|_| format!("malformed address {tok:?} in host list"))?;
    let max_bits = if addr.is_ipv4() { 32 } else { 128 };
    let mask = match mask {
        None => Mask::Bits(max_bits),
        Some(m) => {
            let as_addr = if addr.is_ipv4() {
                m.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
            } else {
                m.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
            };
            match as_addr {
                Some(netmask) => Mask::Netmask(netmask),
                None => match m.parse::<u32>() {
                    Ok(bits) if bits <= max_bits => Mask::Bits(bits),
                    _ => return Err(format!("malformed mask in {tok:?}")),
                },
            }
        }
    };
    Ok(Entry::Net { addr, mask })
}

impl Entry {
    fn matches(&self, addr: IpAddr, hostname: Option<&str>) -> bool {
        match self {
            Entry::Name(pattern) => {
                let h = hostname.unwrap_or(UNDETERMINED);
                !h.is_empty() && iwildmatch(pattern.as_bytes(), h.as_bytes())
            }
            Entry::Net { addr: net, mask } => {
                if net.is_ipv4() != addr.is_ipv4() {
                    return false;
                }
                let a = octets(addr);
                let n = octets(*net);
                let m = match mask {
                    Mask::Netmask(m) => octets(*m),
                    Mask::Bits(bits) => (0..a.len())
                        .map(|i| {
                            let used = bits
                                .saturating_sub(8 * u32::try_from(i).unwrap_or(u32::MAX))
                                .min(8);
                            // A shift by 8 (no bits used) leaves nothing.
                            0xff_u8.checked_shl(8 - used).unwrap_or(0)
                        })
                        .collect(),
                };
                a.iter().zip(&n).zip(&m).all(|((x, y), k)| (x ^ y) & k == 0)
            }
        }
    }
}

impl HostList {
    /// Parses a list of entries separated by spaces, tabs and commas: IPv4 or
    /// IPv6 addresses, `addr/prefixlen`, `addr/netmask`, host names and
    /// host-name wildcards.
    ///
    /// ```
    /// use ferrsync::daemon::hosts::HostList;
    /// let l = HostList::parse("10.0.0.0/8, 192.168.1.0/255.255.255.0 *.example.com").unwrap();
    /// assert!(l.matches("10.1.2.3".parse().unwrap(), None));
    /// assert!(l.matches("::ffff:192.168.1.7".parse().unwrap(), None));
    /// assert!(l.matches("203.0.113.9".parse().unwrap(), Some("www.EXAMPLE.com")));
    /// assert!(!l.matches("203.0.113.9".parse().unwrap(), None));
    /// ```
    ///
    /// # Errors
    /// A message for an address entry that does not parse, or whose mask is
    /// out of range.
    pub fn parse(s: &str) -> Result<HostList, String> {
        let mut entries = Vec::new();
        for tok in s
            .split([' ', ',', '\t', '\r', '\n'])
            .filter(|t| !t.is_empty())
        {
            let tok = tok.to_ascii_lowercase();
            if looks_like_address(&tok) {
                entries.push(parse_net(&tok)?);
            } else {
                entries.push(Entry::Name(tok));
            }
        }
        Ok(HostList {
            // Only the separators: a Unicode blank kept at the end keeps
            // a backslash before it from ending the rendered line.
            text: s.trim_matches([' ', '\t', '\r', '\n']).to_owned(),
            entries,
        })
    }

    /// True when the list has no entries (rsync treats that as unset).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when some entry can only match a host name, so the caller must
    /// do a reverse lookup before [`HostList::matches`].
    #[must_use]
    pub fn needs_hostname(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::Name(_)))
    }

    /// The entries that are plain host names (no wildcards), which rsync
    /// would also resolve forward when `forward lookup` is on.
    pub fn plain_hostnames(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Name(n) if !n.contains(['*', '?', '[']) && !n.starts_with('@') => {
                Some(n.as_str())
            }
            _ => None,
        })
    }

    /// Whether any entry matches the client's address (an IPv4-mapped IPv6
    /// address counts as IPv4) or its reverse-lookup name.
    #[must_use]
    pub fn matches(&self, addr: IpAddr, hostname: Option<&str>) -> bool {
        let addr = unmap(addr);
        self.entries.iter().any(|e| e.matches(addr, hostname))
    }

    /// The list as written in the configuration (trimmed).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// rsync's access decision for a module: a match in `allow` admits; with an
/// allow list but no deny list everyone else is refused; a match in `deny`
/// refuses; anyone else is admitted.
///
/// ```
/// use ferrsync::daemon::hosts::{allow_access, HostList};
/// let allow = HostList::parse("127.0.0.1").unwrap();
/// let deny = HostList::parse("*").unwrap();
/// let ip = |s: &str| s.parse().unwrap();
/// assert!(allow_access(&allow, &deny, ip("127.0.0.1"), None));
/// assert!(!allow_access(&allow, &deny, ip("10.0.0.1"), Some("UNKNOWN")));
/// assert!(!allow_access(&allow, &HostList::default(), ip("10.0.0.1"), None));
/// ```
#[must_use]
pub fn allow_access(
    allow: &HostList,
    deny: &HostList,
    addr: std::net::IpAddr,
    hostname: Option<&str>,
) -> bool {
    if !allow.is_empty() {
        if allow.matches(addr, hostname) {
            return true;
        }
        if deny.is_empty() {
            return false;
        }
    }
    deny.is_empty() || !deny.matches(addr, hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn match_table() {
        // (list, address, host name, matches)
        let rows: &[(&str, &str, Option<&str>, bool)] = &[
            ("127.0.0.1", "127.0.0.1", None, true),
            ("127.0.0.1", "127.0.0.2", None, false),
            ("127.0.0.1", "::ffff:127.0.0.1", None, true),
            ("::ffff:127.0.0.1", "::ffff:127.0.0.1", None, false),
            ("10.0.0.0/8", "10.255.0.1", None, true),
            ("10.0.0.0/8", "11.0.0.1", None, false),
            ("10.1.2.3/0", "192.0.2.1", None, true),
            ("10.1.2.3/0", "2001:db8::1", None, false),
            ("192.168.1.0/255.255.255.0", "192.168.1.200", None, true),
            ("192.168.1.0/255.255.255.0", "192.168.2.1", None, false),
            ("192.168.0.0/17", "192.168.127.1", None, true),
            ("192.168.0.0/17", "192.168.128.1", None, false),
            ("2001:db8::/32", "2001:db8:ffff::1", None, true),
            ("2001:DB8::/32", "2001:db9::1", None, false),
            ("2001:db8::/ffff:ffff::", "2001:db8:1::1", None, true),
            ("::1", "::1", None, true),
            ("::1", "127.0.0.1", None, false),
            ("*.example.com", "192.0.2.1", Some("a.b.EXAMPLE.com"), true),
            ("*.example.com", "192.0.2.1", Some("example.com"), false),
            ("*.example.com", "192.0.2.1", None, false),
            ("*", "192.0.2.1", None, true),
            ("Host1", "192.0.2.1", Some("host1"), true),
            ("host[0-9]", "192.0.2.1", Some("HOST7"), true),
            ("unknown", "192.0.2.1", Some("UNKNOWN"), true),
            // As rsync: an address wildcard is a host-name pattern.
            ("10.0.0.*", "10.0.0.5", None, false),
            ("10.0.0.*", "10.0.0.5", Some("UNKNOWN"), false),
            ("@staff", "10.0.0.5", Some("host"), false),
            ("a, b ,c\t10.0.0.1", "10.0.0.1", None, true),
            ("", "10.0.0.1", Some("x"), false),
        ];
        for &(list, addr, host, want) in rows {
            let l = HostList::parse(list).unwrap();
            assert_eq!(l.matches(ip(addr), host), want, "{list:?} {addr} {host:?}");
        }
    }

    #[test]
    fn parse_errors_and_flags() {
        for bad in [
            "10.0.0.0/33",
            "1.2.3.999",
            "::1/129",
            "10.0.0.1/x",
            "fe80::1%eth0",
        ] {
            assert!(HostList::parse(bad).is_err(), "{bad}");
        }
        let l = HostList::parse(" 10.0.0.1, *.lan host.example ").unwrap();
        assert!(l.needs_hostname());
        assert_eq!(l.as_str(), "10.0.0.1, *.lan host.example");
        assert_eq!(l.plain_hostnames().collect::<Vec<_>>(), ["host.example"]);
        assert!(!HostList::parse("10.0.0.1 ::1").unwrap().needs_hostname());
        assert!(HostList::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn access_rules() {
        let list = |s: &str| HostList::parse(s).unwrap();
        let none = HostList::default();
        // (allow, deny, address, admitted)
        let rows: &[(&HostList, &HostList, &str, bool)] = &[
            (&none, &none, "10.0.0.1", true),
            (&list("10.0.0.1"), &none, "10.0.0.1", true),
            (&list("10.0.0.1"), &none, "10.0.0.2", false),
            (&none, &list("10.0.0.1"), "10.0.0.1", false),
            (&none, &list("10.0.0.1"), "10.0.0.2", true),
            (&list("10.0.0.1"), &list("10.0.0.0/24"), "10.0.0.1", true),
            (&list("10.0.0.1"), &list("10.0.0.0/24"), "10.0.0.2", false),
            (&list("10.0.0.1"), &list("10.0.0.0/24"), "10.0.1.2", true),
        ];
        for &(allow, deny, addr, want) in rows {
            assert_eq!(allow_access(allow, deny, ip(addr), None), want, "{addr}");
        }
    }
}
