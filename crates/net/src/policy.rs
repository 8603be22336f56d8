//! Which addresses a server refuses to dial: one policy for every server we
//! ship (the HTTVPS gateway's direct mode, the HT server, the Relay).
//!
//! A server that dials on behalf of remote clients must not become a way into
//! its own network: loopback, private, link-local, carrier-grade NAT,
//! multicast, broadcast, reserved, documentation, benchmarking and
//! cloud-metadata addresses are refused unless the operator allows private
//! targets (tests, trusted deployments, the loopback demo). Servers resolve
//! names first and check *every* resolved address before dialing any, so a
//! name that resolves to both a public and a private address cannot reach the
//! private one.
//!
//! # IPv6 addresses that carry an IPv4 address
//!
//! Several IPv6 forms reach an IPv4 host, through the host's own stack or a
//! translator on the path; [`refused_range`] judges the embedded IPv4 address
//! exactly as it judges that address given directly (so `64:ff9b::7f00:1` is
//! `loopback`, and `64:ff9b::808:808` is as public as `8.8.8.8`):
//!
//! - IPv4-mapped `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2);
//! - IPv4-compatible `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated; `::` and
//!   `::1` stay the IPv6 unspecified and loopback addresses);
//! - IPv4-translated `::ffff:0:a.b.c.d` (SIIT, RFC 2765, obsolete);
//! - NAT64 well-known prefix `64:ff9b::/96` (RFC 6052) and the local-use
//!   prefix `64:ff9b:1::/48` (RFC 8215): the IPv4 address is the last 32 bits
//!   (the `/96` format; an operator using another RFC 6052 prefix length
//!   inside the local-use block should deny that block in its firewall);
//! - 6to4 `2002::/16` (RFC 3056): the IPv4 address is bits 16..48.
//!
//! # Special-purpose ranges
//!
//! The ranges come from the IANA IPv4 and IPv6 Special-Purpose Address
//! Registries (RFC 6890 and updates). Besides everything those registries
//! mark as not globally reachable, the policy refuses some blocks they list
//! as reachable because a dial there is never a legitimate client target and
//! may reach the operator's own equipment:
//!
//! - IPv4 `192.0.0.0/24` (IETF protocol assignments) as a whole, including
//!   the PCP and TURN anycast addresses `192.0.0.9` and `192.0.0.10`, which
//!   are answered by the nearest PCP server or relay — often the operator's
//!   own router;
//! - IPv4 `192.88.99.0/24` (6to4 relay anycast, deprecated by RFC 7526);
//! - IPv6 `2001::/23` (IETF protocol assignments) as a whole: Teredo
//!   `2001::/32` (RFC 4380; the far end is a Teredo client behind a NAT,
//!   reached through whatever relay is nearest, and its obfuscated IPv4
//!   address may be private), benchmarking `2001:2::/48` (RFC 5180), the
//!   PCP/TURN anycast addresses `2001:1::1` and `2001:1::2`, AMT
//!   `2001:3::/32`, AS112 `2001:4:112::/48`, ORCHID `2001:10::/28`
//!   (RFC 4843, deprecated), ORCHIDv2 `2001:20::/28` (RFC 7343: identifiers,
//!   not routable locators) and drone DETs `2001:30::/28` (RFC 9374);
//! - IPv6 discard-only `100::/64` (RFC 6666), documentation `2001:db8::/32`
//!   and `3fff::/20` (RFC 3849, RFC 9637), SRv6 SIDs `5f00::/16` (RFC 9602)
//!   and the deprecated site-local `fec0::/10` (RFC 3879);
//! - all other unicast outside `2000::/3`, which the IANA IPv6 Address Space
//!   registry lists as reserved by the IETF.
//!
//! IPv6 has no broadcast; its multicast (`ff00::/8`, which includes the
//! all-nodes groups) is refused, as are IPv4 multicast and the limited
//! broadcast `255.255.255.255` in every wrapper above.
//!
//! # Numbers that look like names
//!
//! Many resolvers and URL parsers read a host such as `2130706433`,
//! `0177.0.0.1`, `0x7f.1` or `127.1` as an IPv4 address, following BSD
//! `inet_aton` (glibc's `getaddrinfo` does, and so does the WHATWG URL
//! parser), while Rust's `Ipv4Addr::from_str` accepts dotted quads only. A
//! server that takes such a host for a name would apply its name rules to
//! it, log it as a name, and leave the real address to whichever resolver
//! runs (the system's turns it into `127.0.0.1`, a DNS-over-HTTPS one fails
//! or asks a server that may answer anything). [`parse_ipv4_lenient`]
//! recognises these spellings so a server can judge such a host as the
//! address it really is, before any resolver sees it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A server's target policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback and private targets.
    pub allow_private: bool,
}

/// A target refused by the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} ({ip}) is a {range} address")]
pub struct Refused {
    /// The target as the client named it.
    pub target: String,
    /// The resolved address that was refused.
    pub ip: IpAddr,
    /// The kind of range (`loopback`, `private`, …).
    pub range: &'static str,
}

impl TargetPolicy {
    /// Checks every resolved address of `target`; the first refused one is
    /// the error.
    pub fn check(
        &self,
        target: &dyn std::fmt::Display,
        addrs: impl IntoIterator<Item = IpAddr>,
    ) -> Result<(), Refused> {
        if self.allow_private {
            return Ok(());
        }
        for ip in addrs {
            if let Some(range) = refused_range(ip) {
                return Err(Refused {
                    target: target.to_string(),
                    ip,
                    range,
                });
            }
        }
        Ok(())
    }
}

/// Why a server refuses to dial `ip` unless private targets are allowed:
/// `Some(the kind of range)`, or `None` for a public address.
///
/// An IPv6 address that carries an IPv4 address (mapped, compatible, NAT64,
/// 6to4; see the module doc) is judged by that IPv4 address.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // 6to4 of a public IPv4 address is a public IPv6 address.
            Some(v4) => refused_v4(v4),
            None => refused_v6(v6),
        },
    }
}

/// The IPv4 host an IPv6 address reaches through the stack or a translator.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last32 = || Ipv4Addr::from(u128::from(ip) as u32);
    match s {
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        // IPv4-compatible `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated).
        [0, 0, 0, 0, 0, 0, _, _] => Some(last32()),
        // IPv4-mapped `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last32()),
        // IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765, obsolete).
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last32()),
        // NAT64 well-known prefix `64:ff9b::/96` (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last32()),
        // NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215), `/96` format.
        [0x64, 0xff9b, 1, _, _, _, _, _] => Some(last32()),
        // 6to4 `2002:AABB:CCDD::/48` (RFC 3056).
        [0x2002, hi, lo, _, _, _, _, _] => {
            Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
        }
        _ => None,
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if o[0] == 0 {
        // 0.0.0.0/8, "this network" (RFC 791); Linux dials 0.0.0.0 as loopback.
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("carrier-grade NAT")
    } else if o[..3] == [192, 0, 0] {
        Some("IETF protocol assignments")
    } else if matches!(o[..3], [192, 0, 2] | [198, 51, 100] | [203, 0, 113]) {
        Some("documentation")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else if o[..3] == [192, 88, 99] {
        Some("6to4 relay anycast")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if o[0] >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique local")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Some("site-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[..4] == [0x100, 0, 0, 0] {
        Some("discard-only")
    } else if s[..2] == [0x2001, 0] {
        Some("Teredo")
    } else if s[0] == 0x2001 && s[1] < 0x200 {
        Some("IETF protocol assignments")
    } else if s[..2] == [0x2001, 0xdb8] || (s[0] == 0x3fff && s[1] < 0x1000) {
        Some("documentation")
    } else if s[0] == 0x5f00 {
        Some("segment routing")
    } else if (s[0] & 0xe000) != 0x2000 {
        // Unicast outside `2000::/3` is reserved by the IETF (IANA IPv6
        // Address Space), including what of `::/8` and `64:ff9b::/32` is not
        // one of the IPv4 wrappers: nothing the Internet routes.
        Some("reserved")
    } else {
        None
    }
}

/// Reads `text` as an IPv4 address the way BSD `inet_aton` does, so a host
/// that resolvers and URL parsers would take for an address is judged as one.
///
/// Accepted: one to four parts separated by dots (one trailing dot allowed,
/// as the WHATWG URL parser does); each part decimal, octal with a leading
/// `0` or hexadecimal with `0x`/`0X`; the last part fills the remaining bytes
/// (`a` is 32 bits, `a.b` is 8.24, `a.b.c` is 8.8.16). So `2130706433`,
/// `0177.0.0.1`, `0x7f.0.0.1`, `0x7f000001` and `127.1` are all `127.0.0.1`,
/// as are plain dotted quads. Anything else — a name with a letter outside a
/// hex part, an empty part, a value too large for its bytes, more than four
/// parts — is `None`.
///
/// Why: glibc's resolver and the WHATWG URL parser accept these spellings,
/// and `Ipv4Addr::from_str` does not; see the module doc.
pub fn parse_ipv4_lenient(text: &str) -> Option<Ipv4Addr> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    let mut parts = [0u32; 4];
    let mut n = 0;
    for part in text.split('.') {
        if n == 4 {
            return None;
        }
        parts[n] = parse_part(part)?;
        n += 1;
    }
    let (head, last) = (&parts[..n - 1], parts[n - 1]);
    if head.iter().any(|&p| p > 0xff) {
        return None;
    }
    // Bits left for the last part: 32 minus 8 per leading part.
    let last_bits = 32 - 8 * (n as u32 - 1);
    if last_bits < 32 && last >> last_bits != 0 {
        return None;
    }
    let value = head
        .iter()
        .enumerate()
        .fold(last, |acc, (i, &p)| acc | (p << (24 - 8 * i as u32)));
    Some(Ipv4Addr::from(value))
}

/// One `inet_aton` number: `0x…` hex, `0…` octal, decimal; `None` when it
/// is not one or does not fit in 32 bits.
fn parse_part(part: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            // "0x" alone is zero for the WHATWG URL parser.
            if hex.is_empty() {
                return Some(0);
            }
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    // `from_str_radix` would accept a sign; a part never has one.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    //! Pure-function tests: nothing here resolves or dials.

    use super::*;

    fn range(s: &str) -> Option<&'static str> {
        refused_range(s.parse().unwrap())
    }

    fn refused(s: &str) -> bool {
        range(s).is_some()
    }

    #[test]
    fn policy_refuses_internal_ranges() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn policy_allows_public_addresses() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    /// Each range with its label, its first and last address, and the
    /// public neighbours just outside it (where the neighbour is public).
    #[test]
    fn every_v4_range_with_both_boundaries() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            ("unspecified", "0.0.0.0", "0.255.255.255", &["1.0.0.0"]),
            (
                "private",
                "10.0.0.0",
                "10.255.255.255",
                &["9.255.255.255", "11.0.0.0"],
            ),
            (
                "carrier-grade NAT",
                "100.64.0.0",
                "100.127.255.255",
                &["100.63.255.255", "100.128.0.0"],
            ),
            (
                "loopback",
                "127.0.0.0",
                "127.255.255.255",
                &["126.255.255.255", "128.0.0.0"],
            ),
            (
                "link-local",
                "169.254.0.0",
                "169.254.255.255",
                &["169.253.255.255", "169.255.0.0"],
            ),
            (
                "private",
                "172.16.0.0",
                "172.31.255.255",
                &["172.15.255.255", "172.32.0.0"],
            ),
            (
                "IETF protocol assignments",
                "192.0.0.0",
                "192.0.0.255",
                &["191.255.255.255", "192.0.1.0"],
            ),
            (
                "documentation",
                "192.0.2.0",
                "192.0.2.255",
                &["192.0.1.255", "192.0.3.0"],
            ),
            (
                "6to4 relay anycast",
                "192.88.99.0",
                "192.88.99.255",
                &["192.88.98.255", "192.88.100.0"],
            ),
            (
                "private",
                "192.168.0.0",
                "192.168.255.255",
                &["192.167.255.255", "192.169.0.0"],
            ),
            (
                "benchmarking",
                "198.18.0.0",
                "198.19.255.255",
                &["198.17.255.255", "198.20.0.0"],
            ),
            (
                "documentation",
                "198.51.100.0",
                "198.51.100.255",
                &["198.51.99.255", "198.51.101.0"],
            ),
            (
                "documentation",
                "203.0.113.0",
                "203.0.113.255",
                &["203.0.112.255", "203.0.114.0"],
            ),
            (
                "multicast",
                "224.0.0.0",
                "239.255.255.255",
                &["223.255.255.255"],
            ),
            ("reserved", "240.0.0.0", "255.255.255.254", &[]),
            ("broadcast", "255.255.255.255", "255.255.255.255", &[]),
        ];
        for &(label, first, last, outside) in cases {
            assert_eq!(range(first), Some(label), "{first}");
            assert_eq!(range(last), Some(label), "{last}");
            for ip in outside {
                assert_eq!(range(ip), None, "{ip} is public");
            }
        }
        assert_eq!(range("169.254.169.254"), Some("cloud metadata"));
        assert_eq!(
            range("192.0.0.9"),
            Some("IETF protocol assignments"),
            "PCP anycast"
        );
    }

    #[test]
    fn every_v6_range_with_both_boundaries() {
        let cases: &[(&str, &str, &str)] = &[
            ("unspecified", "::", "::"),
            ("loopback", "::1", "::1"),
            ("reserved", "1::", "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("discard-only", "100::", "100::ffff:ffff:ffff:ffff"),
            (
                "reserved",
                "100:0:0:1::",
                "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            ("Teredo", "2001::", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff"),
            (
                "IETF protocol assignments",
                "2001:1::",
                "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            ("IETF protocol assignments", "2001:1::1", "2001:1::2"),
            ("IETF protocol assignments", "2001:2::", "2001:2:0:ffff::1"),
            (
                "IETF protocol assignments",
                "2001:10::",
                "2001:3f:ffff:ffff::1",
            ),
            (
                "documentation",
                "2001:db8::",
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "documentation",
                "3fff::",
                "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "reserved",
                "4000::",
                "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "segment routing",
                "5f00::",
                "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "reserved",
                "5f01::",
                "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "unique local",
                "fc00::",
                "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "reserved",
                "fe00::",
                "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "link-local",
                "fe80::",
                "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "site-local",
                "fec0::",
                "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                "multicast",
                "ff00::",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
        ];
        for &(label, first, last) in cases {
            assert_eq!(range(first), Some(label), "{first}");
            assert_eq!(range(last), Some(label), "{last}");
        }
        assert_eq!(range("fd00:ec2::254"), Some("cloud metadata"));
        for ip in [
            "2000::",
            "2001:200::",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2003::",
            "2606:4700::1111",
            "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "3fff:1000::",
        ] {
            assert_eq!(range(ip), None, "{ip} is public");
        }
    }

    /// Every way an IPv6 address can carry an IPv4 one, around a private,
    /// a loopback, a multicast, the broadcast and a public IPv4 address.
    #[test]
    fn wrappers_are_judged_by_the_embedded_ipv4_address() {
        let wraps: [fn(Ipv4Addr) -> Ipv6Addr; 6] = [
            |v4| v4.to_ipv6_mapped(),
            |v4| v4.to_ipv6_compatible(),
            |v4| {
                let [a, b] = split(v4);
                Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, a, b)
            },
            |v4| {
                let [a, b] = split(v4);
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, a, b)
            },
            |v4| {
                let [a, b] = split(v4);
                Ipv6Addr::new(0x64, 0xff9b, 1, 0xab, 0, 0, a, b)
            },
            |v4| {
                let [a, b] = split(v4);
                Ipv6Addr::new(0x2002, a, b, 0x1234, 0, 0, 0, 1)
            },
        ];
        for wrap in wraps {
            for (v4, label) in [
                ("127.0.0.1", Some("loopback")),
                ("10.0.0.1", Some("private")),
                ("192.168.255.255", Some("private")),
                ("169.254.169.254", Some("cloud metadata")),
                ("100.64.0.1", Some("carrier-grade NAT")),
                ("0.0.0.0", Some("unspecified")),
                ("198.18.0.1", Some("benchmarking")),
                ("203.0.113.7", Some("documentation")),
                ("224.0.0.1", Some("multicast")),
                ("255.255.255.255", Some("broadcast")),
                ("8.8.8.8", None),
                ("1.1.1.1", None),
            ] {
                let v6 = wrap(v4.parse().unwrap());
                assert_eq!(refused_range(IpAddr::V6(v6)), label, "{v6} wraps {v4}");
            }
        }
        // Written out, for the reader.
        assert_eq!(range("64:ff9b::7f00:1"), Some("loopback"));
        assert_eq!(range("64:ff9b::10.0.0.1"), Some("private"));
        assert_eq!(range("64:ff9b:1::a9fe:a9fe"), Some("cloud metadata"));
        assert_eq!(range("2002:7f00:1::"), Some("loopback"));
        assert_eq!(range("2002:c0a8:101::1"), Some("private"));
        assert_eq!(range("::10.0.0.1"), Some("private"));
        assert_eq!(range("::127.0.0.1"), Some("loopback"));
        assert_eq!(range("::ffff:0:7f00:1"), Some("loopback"));
        assert_eq!(range("64:ff9b::808:808"), None);
        assert_eq!(range("2002:808:808::1"), None);
        assert_eq!(range("::8.8.8.8"), None);
        // Just outside the wrappers: not unwrapped, and reserved anyway.
        assert_eq!(range("64:ff9b:0:1::808:808"), Some("reserved"));
        assert_eq!(range("64:ff9b:2::808:808"), Some("reserved"));
        assert_eq!(range("::1:0:808:808"), Some("reserved"));
        // Just outside 6to4: public, not unwrapped.
        assert_eq!(range("2001:ffff:7f00:1::"), None);
        assert_eq!(range("2003:7f00:1::"), None);
    }

    /// The three IPv4-carrying forms of issue 17, written out: 6to4
    /// `2002::/16`, IPv4-compatible `::/96` and IPv4-translated
    /// `::ffff:0:0:0/96`, each around a private and a public IPv4 address,
    /// at the edges of its block, and through [`TargetPolicy::check`].
    #[test]
    fn six_to_four_compatible_and_translated_forms_written_out() {
        for (ip, label) in [
            // 6to4: bits 16..48 are the IPv4 address, whatever follows.
            ("2002:a00:1::", Some("private")),
            ("2002:c0a8:101:ffff:ffff:ffff:ffff:ffff", Some("private")),
            ("2002:ac10:1::1", Some("private")),
            ("2002:a9fe:a9fe::1", Some("cloud metadata")),
            ("2002::", Some("unspecified")),
            ("2002:ffff:ffff::", Some("broadcast")),
            ("2002:808:808::", None),
            ("2002:101:101:1234:5678::1", None),
            // IPv4-compatible ::a.b.c.d (`::` and `::1` are IPv6's own).
            ("::10.0.0.1", Some("private")),
            ("::192.168.0.1", Some("private")),
            ("::0.0.0.2", Some("unspecified")),
            ("::255.255.255.255", Some("broadcast")),
            ("::1.1.1.1", None),
            ("::8.8.4.4", None),
            // IPv4-translated ::ffff:0:a.b.c.d.
            ("::ffff:0:10.0.0.1", Some("private")),
            ("::ffff:0:172.16.5.4", Some("private")),
            ("::ffff:0:127.0.0.1", Some("loopback")),
            ("::ffff:0:0.0.0.0", Some("unspecified")),
            ("::ffff:0:255.255.255.255", Some("broadcast")),
            ("::ffff:0:8.8.8.8", None),
            ("::ffff:0:1.1.1.1", None),
            // Next to the translated block: not a wrapper, reserved.
            ("::ffff:1:808:808", Some("reserved")),
            ("::fffe:0:808:808", Some("reserved")),
        ] {
            assert_eq!(range(ip), label, "{ip}");
            let parsed: IpAddr = ip.parse().unwrap();
            let checked = TargetPolicy::default().check(&ip, [parsed]);
            assert_eq!(checked.err().map(|e| e.range), label, "check {ip}");
            assert!(
                TargetPolicy {
                    allow_private: true
                }
                .check(&ip, [parsed])
                .is_ok()
            );
        }
    }

    fn split(v4: Ipv4Addr) -> [u16; 2] {
        let [a, b, c, d] = v4.octets();
        [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])]
    }

    #[test]
    fn check_names_the_first_refused_address_unless_allowed() {
        let addrs = ["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        let err = TargetPolicy::default()
            .check(&"example.com:80", addrs)
            .unwrap_err();
        assert_eq!(err.range, "private");
        assert_eq!(
            err.to_string(),
            "example.com:80 (10.0.0.1) is a private address"
        );
        let open = TargetPolicy {
            allow_private: true,
        };
        assert!(open.check(&"example.com:80", addrs).is_ok());
    }

    #[test]
    fn check_refuses_a_nat64_wrapper() {
        let addrs = ["64:ff9b::a00:1".parse().unwrap()];
        let err = TargetPolicy::default().check(&"x:80", addrs).unwrap_err();
        assert_eq!(err.range, "private");
    }

    #[test]
    fn lenient_spellings_are_the_address_and_refused() {
        for (spellings, expected, label) in [
            (
                &[
                    "127.0.0.1",
                    "2130706433",
                    "0x7f000001",
                    "017700000001",
                    "0177.0.0.1",
                    "0177.0000.0000.0001",
                    "0x7f.0.0.1",
                    "0X7F.0x0.0x0.0x1",
                    "0x7f.1",
                    "127.1",
                    "127.0.1",
                    "127.0.0.1.",
                    "0177.1",
                ][..],
                Ipv4Addr::new(127, 0, 0, 1),
                "loopback",
            ),
            (
                &[
                    "10.0.0.1",
                    "167772161",
                    "0xa000001",
                    "012.0.0.1",
                    "0xa.0.0.1",
                    "10.1",
                    "10.0.1",
                    "012.1",
                    "0xa.1",
                ][..],
                Ipv4Addr::new(10, 0, 0, 1),
                "private",
            ),
        ] {
            for text in spellings {
                let ip = parse_ipv4_lenient(text);
                assert_eq!(ip, Some(expected), "{text}");
                assert_eq!(refused_range(IpAddr::V4(expected)), Some(label), "{text}");
            }
        }
        assert_eq!(parse_ipv4_lenient("0"), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(parse_ipv4_lenient("0x"), Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(parse_ipv4_lenient("4294967295"), Some(Ipv4Addr::BROADCAST));
        assert_eq!(
            parse_ipv4_lenient("8.8.8.8"),
            Some(Ipv4Addr::new(8, 8, 8, 8))
        );
        assert_eq!(
            parse_ipv4_lenient("1.65535"),
            Some(Ipv4Addr::new(1, 0, 255, 255))
        );
    }

    #[test]
    fn lenient_parse_leaves_names_and_nonsense_alone() {
        for text in [
            "",
            ".",
            "example.com",
            "localhost",
            "127.0.0.1.1",
            "1.2.3.4.5",
            "127..1",
            ".127.0.0.1",
            "127.0.0.1..",
            "256.0.0.1",
            "127.256.0.1",
            "127.0.0.256",
            "127.16777216",
            "1.2.65536",
            "4294967296",
            "0x100000000",
            "08.0.0.1",
            "0x7g.0.0.1",
            "+1.2.3.4",
            "-1",
            "1.2.3.-4",
            " 127.0.0.1",
            "127.0.0.1 ",
            "0x7f.0.0.1x",
            "1e3",
        ] {
            assert_eq!(parse_ipv4_lenient(text), None, "{text:?}");
        }
    }
}
