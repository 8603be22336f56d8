//! Which addresses a server refuses to dial: one policy for every server we
//! ship (the HTTVPS gateway's direct mode, the HT server, the Relay).
//!
//! A server that dials on behalf of remote clients must not become a way into
//! its own network: loopback, private, link-local, carrier-grade NAT,
//! multicast, reserved and cloud-metadata addresses are refused unless the
//! operator allows private targets (tests, trusted deployments, the loopback
//! demo). Servers resolve names first and check *every* resolved address
//! before dialing any, so a name that resolves to both a public and a private
//! address cannot reach the private one.

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
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4-mapped address reaches the IPv4 host: judge that host.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            refused_v6(v6)
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("carrier-grade NAT")
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
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        refused_range(s.parse().unwrap()).is_some()
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
}
