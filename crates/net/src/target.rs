//! Targets: the `host:port` text form (HTTVPS `stream_open`, HTTP `CONNECT`)
//! and the binary address header shared by SOCKS5 requests, Shadowsocks and
//! HTTVPS stream payloads.
//!
//! The header is SOCKS5's address form (RFC 1928 §5), which Shadowsocks reuses:
//! `0x01` + 4-byte IPv4 | `0x03` + length + name | `0x04` + 16-byte IPv6, then
//! the port as a big-endian u16.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// The longest header: a 255-byte name, its type and length bytes, and the port.
pub const MAX_HEADER_LEN: usize = 1 + 1 + 255 + 2;

/// Where a stream goes: an IP socket address or a domain name with a port.
///
/// Domain names are kept unresolved on purpose: resolving happens on the far
/// side of the tunnel, so the client leaks no DNS queries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetAddr {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A domain name (1 to 255 bytes) and port.
    Domain(String, u16),
}

/// Why a target or address header could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// The target text has no `:port`, or the port is not a number in 0..=65535.
    #[error("target {0:?} is not host:port")]
    BadTarget(String),
    /// A domain name is empty or longer than 255 bytes.
    #[error("domain name must be 1 to 255 bytes, got {0}")]
    BadDomainLength(usize),
    /// The header's first byte is not a known address type.
    #[error("unknown address type 0x{0:02x}")]
    UnknownAddressType(u8),
    /// The domain name in a header is not UTF-8.
    #[error("domain name is not UTF-8")]
    DomainNotUtf8,
}

impl TargetAddr {
    /// Builds a domain target, checking the 255-byte limit of the header.
    pub fn domain(name: impl Into<String>, port: u16) -> Result<Self, AddressError> {
        let name = name.into();
        if name.is_empty() || name.len() > 255 {
            return Err(AddressError::BadDomainLength(name.len()));
        }
        Ok(TargetAddr::Domain(name, port))
    }

    /// Parses `host:port`, `a.b.c.d:port` or `[v6]:port`.
    ///
    /// A host that parses as an IP address becomes [`TargetAddr::Ip`]; anything
    /// else is a domain name.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let bad = || AddressError::BadTarget(text.to_owned());
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = after.strip_prefix(':').ok_or_else(bad)?;
            let ip: Ipv6Addr = host.parse().map_err(|_| bad())?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            return Ok(TargetAddr::Ip(SocketAddr::new(IpAddr::V6(ip), port)));
        } else {
            text.rsplit_once(':').ok_or_else(bad)?
        };
        // A bare IPv6 address without brackets is ambiguous: refuse it.
        if host.contains(':') {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(TargetAddr::Ip(SocketAddr::new(IpAddr::V4(ip), port)));
        }
        TargetAddr::domain(host, port)
    }

    /// The port of the target.
    pub fn port(&self) -> u16 {
        match self {
            TargetAddr::Ip(sa) => sa.port(),
            TargetAddr::Domain(_, port) => *port,
        }
    }

    /// Number of bytes [`TargetAddr::encode`] writes.
    pub fn header_len(&self) -> usize {
        match self {
            TargetAddr::Ip(SocketAddr::V4(_)) => 1 + 4 + 2,
            TargetAddr::Ip(SocketAddr::V6(_)) => 1 + 16 + 2,
            TargetAddr::Domain(name, _) => 1 + 1 + name.len() + 2,
        }
    }

    /// Appends the Shadowsocks address header for this target to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TargetAddr::Ip(SocketAddr::V4(sa)) => {
                out.push(ATYP_IPV4);
                out.extend_from_slice(&sa.ip().octets());
            }
            TargetAddr::Ip(SocketAddr::V6(sa)) => {
                out.push(ATYP_IPV6);
                out.extend_from_slice(&sa.ip().octets());
            }
            TargetAddr::Domain(name, _) => {
                out.push(ATYP_DOMAIN);
                // Constructors check the length; a longer name cannot be encoded.
                let len = u8::try_from(name.len()).expect("domain length checked at construction");
                out.push(len);
                out.extend_from_slice(name.as_bytes());
            }
        }
        out.extend_from_slice(&self.port().to_be_bytes());
    }

    /// Reads an address header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` is a valid but incomplete prefix (read more),
    /// or the target and the number of header bytes consumed.
    pub fn decode(buf: &[u8]) -> Result<Option<(TargetAddr, usize)>, AddressError> {
        let Some(&atyp) = buf.first() else {
            return Ok(None);
        };
        let (addr_len, addr_start) = match atyp {
            ATYP_IPV4 => (4, 1),
            ATYP_IPV6 => (16, 1),
            ATYP_DOMAIN => match buf.get(1) {
                None => return Ok(None),
                Some(0) => return Err(AddressError::BadDomainLength(0)),
                Some(&n) => (usize::from(n), 2),
            },
            other => return Err(AddressError::UnknownAddressType(other)),
        };
        let total = addr_start + addr_len + 2;
        let Some(header) = buf.get(..total) else {
            return Ok(None);
        };
        let addr = &header[addr_start..addr_start + addr_len];
        let port = u16::from_be_bytes([header[total - 2], header[total - 1]]);
        let target = match atyp {
            ATYP_IPV4 => {
                let octets: [u8; 4] = addr.try_into().expect("length matched above");
                TargetAddr::Ip(SocketAddr::new(IpAddr::V4(octets.into()), port))
            }
            ATYP_IPV6 => {
                let octets: [u8; 16] = addr.try_into().expect("length matched above");
                TargetAddr::Ip(SocketAddr::new(IpAddr::V6(octets.into()), port))
            }
            _ => {
                let name = std::str::from_utf8(addr).map_err(|_| AddressError::DomainNotUtf8)?;
                TargetAddr::Domain(name.to_owned(), port)
            }
        };
        Ok(Some((target, total)))
    }
}

impl fmt::Display for TargetAddr {
    /// Writes the `stream_open` form: `host:port`, with IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetAddr::Ip(sa) => write!(f, "{sa}"),
            TargetAddr::Domain(name, port) => write!(f, "{name}:{port}"),
        }
    }
}

impl std::str::FromStr for TargetAddr {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TargetAddr::parse(s)
    }
}

impl From<SocketAddr> for TargetAddr {
    fn from(sa: SocketAddr) -> Self {
        TargetAddr::Ip(sa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            TargetAddr::parse("example.com:443").unwrap(),
            TargetAddr::Domain("example.com".into(), 443)
        );
        assert_eq!(
            TargetAddr::parse("10.0.0.1:80").unwrap(),
            TargetAddr::Ip("10.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            TargetAddr::parse("[::1]:443").unwrap(),
            TargetAddr::Ip("[::1]:443".parse().unwrap())
        );
        for bad in [
            "example.com",
            "::1:443",
            "[::1]443",
            "[zz]:1",
            "a:70000",
            ":80",
            "a:",
        ] {
            assert!(TargetAddr::parse(bad).is_err(), "{bad} should be refused");
        }
        let long = format!("{}:1", "a".repeat(256));
        assert_eq!(
            TargetAddr::parse(&long),
            Err(AddressError::BadDomainLength(256))
        );
    }

    #[test]
    fn display_matches_stream_open_form() {
        for text in ["example.com:443", "10.0.0.1:80", "[::1]:443"] {
            assert_eq!(TargetAddr::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn header_bytes_match_socks5_layout() {
        let mut out = Vec::new();
        TargetAddr::parse("1.2.3.4:258").unwrap().encode(&mut out);
        assert_eq!(out, [1, 1, 2, 3, 4, 1, 2]);
        out.clear();
        TargetAddr::parse("ab:80").unwrap().encode(&mut out);
        assert_eq!(out, [3, 2, b'a', b'b', 0, 80]);
    }

    #[test]
    fn truncated_header_needs_more_at_every_length() {
        for target in ["1.2.3.4:1", "[2001:db8::1]:2", "example.org:3"] {
            let t = TargetAddr::parse(target).unwrap();
            let mut out = Vec::new();
            t.encode(&mut out);
            for cut in 0..out.len() {
                assert_eq!(
                    TargetAddr::decode(&out[..cut]),
                    Ok(None),
                    "{target} cut at {cut}"
                );
            }
            assert_eq!(TargetAddr::decode(&out), Ok(Some((t, out.len()))));
        }
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            TargetAddr::decode(&[9, 0]),
            Err(AddressError::UnknownAddressType(9))
        );
        assert_eq!(
            TargetAddr::decode(&[3, 0, 0, 0]),
            Err(AddressError::BadDomainLength(0))
        );
        assert_eq!(
            TargetAddr::decode(&[3, 1, 0xff, 0, 1]),
            Err(AddressError::DomainNotUtf8)
        );
    }

    fn any_target() -> impl Strategy<Value = TargetAddr> {
        prop_oneof![
            (any::<IpAddr>(), any::<u16>())
                .prop_map(|(ip, p)| TargetAddr::Ip(SocketAddr::new(ip, p))),
            ("[a-z0-9.-]{1,255}", any::<u16>()).prop_map(|(n, p)| TargetAddr::Domain(n, p)),
        ]
    }

    proptest! {
        #[test]
        fn header_round_trips(t in any_target(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            t.encode(&mut out);
            prop_assert_eq!(out.len(), t.header_len());
            out.extend_from_slice(&tail);
            let (back, used) = TargetAddr::decode(&out).unwrap().unwrap();
            prop_assert_eq!(used, t.header_len());
            prop_assert_eq!(back, t);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = TargetAddr::decode(&bytes);
        }
    }
}
