//! Listener settings and client credentials.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use routing::Router;

/// How the local proxy listens and what it allows.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where to listen. Default `127.0.0.1:1080`: loopback only, so other
    /// machines cannot use the tunnel.
    pub listen: SocketAddr,
    /// Required credentials (SOCKS5 username/password and HTTP Basic), or none.
    pub auth: Option<Credentials>,
    /// How long a client may take to finish its handshake (SOCKS5 greeting,
    /// auth and request, or the first HTTP request head, counted from
    /// accept). Also the limit for each later HTTP request head, and for an
    /// idle keep-alive HTTP connection to start its next one. Default 10 s.
    pub handshake_timeout: Duration,
    /// Most simultaneous client connections; past it new ones are closed at
    /// once. A SOCKS5 UDP association counts as the one connection that
    /// carries its control channel. Default 1024.
    pub max_connections: usize,
    /// Largest HTTP request head accepted; larger gets 431. Default 16 KiB.
    /// hyper's buffers on an HTTP connection are limited to the larger of
    /// this and [`ProxyConfig::copy_buffer`] (and at least 8 KiB).
    pub max_header_bytes: usize,
    /// Size of each of the two copy buffers of a connection. Default 64 KiB:
    /// the tunnel hands over up to 64 KiB at a time, and copying it in one
    /// piece (one read, one `send` to the client) took 15% less client CPU
    /// per MiB than 16 KiB pieces (issue 5). A busy connection holds at most
    /// twice this much.
    pub copy_buffer: usize,
    /// A SOCKS5 UDP association with no datagram relayed either way for this
    /// long is closed (its UDP socket, tunnel channel and control connection).
    /// Default 120 s: DNS, QUIC and games send more often than that, and a
    /// client that forgot its association should not hold it forever.
    pub udp_idle_timeout: Duration,
    /// Largest UDP payload relayed, either way; larger datagrams are dropped.
    /// Default 65 507 bytes, the most an IPv4 UDP datagram can carry. Each
    /// association holds one receive buffer of this size plus a header.
    pub udp_max_datagram: usize,
    /// The routing rules (split tunnelling) of the running profile. The
    /// proxy serves them as a PAC file at `GET /proxy.pac`; applying them is
    /// the [`Connector`](crate::Connector)'s job (the engine's does), since
    /// it is what can connect directly. Default: everything through the
    /// tunnel.
    pub rules: Arc<Router>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 1080)),
            auth: None,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            copy_buffer: 64 * 1024,
            udp_idle_timeout: Duration::from_secs(120),
            udp_max_datagram: net::datagram::MAX_DATAGRAM_LEN,
            rules: Arc::default(),
        }
    }
}

/// Whether a listener on `ip` can be reached from other machines: anything
/// but loopback (`127.0.0.0/8`, `::1`, and `::ffff:127.0.0.0/104`, which
/// is IPv4 loopback). The unspecified addresses `0.0.0.0` and `::` listen
/// on every interface; LAN, link-local and public addresses on one that
/// others reach.
pub fn beyond_loopback(ip: IpAddr) -> bool {
    !ip.to_canonical().is_loopback()
}

impl ProxyConfig {
    /// Whether anyone who can reach the proxy over the network may use it:
    /// it listens [beyond loopback](beyond_loopback) and asks for no
    /// credentials. Front-ends warn about it (it opens the tunnel to the
    /// network); with [`ProxyConfig::auth`] set, it is the user's choice.
    pub fn open_to_network(&self) -> bool {
        self.auth.is_none() && beyond_loopback(self.listen.ip())
    }

    /// Checks the values that would make the proxy useless or unbounded.
    pub(crate) fn validate(&self) -> io::Result<()> {
        let bad = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()));
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.copy_buffer == 0 {
            return bad("copy_buffer must be at least 1 byte");
        }
        // A request line plus a Host header hardly fits in less.
        if self.max_header_bytes < 256 {
            return bad("max_header_bytes must be at least 256");
        }
        if self.handshake_timeout.is_zero() {
            return bad("handshake_timeout must not be zero");
        }
        if self.udp_idle_timeout.is_zero() {
            return bad("udp_idle_timeout must not be zero");
        }
        // No UDP datagram is larger than 65 535 bytes, headers included.
        if !(1..=usize::from(u16::MAX)).contains(&self.udp_max_datagram) {
            return bad("udp_max_datagram must be 1 to 65535 bytes");
        }
        Ok(())
    }
}

/// A username and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username (RFC 1929 allows 1 to 255 bytes).
    pub username: String,
    /// The password; never logged.
    pub password: String,
}

impl Credentials {
    /// Builds credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Whether `username`/`password` match, in time that depends only on the
    /// lengths, so a local attacker cannot guess byte by byte.
    pub(crate) fn matches(&self, username: &[u8], password: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let user_ok = self.username.as_bytes().ct_eq(username);
        let pass_ok = self.password.as_bytes().ct_eq(password);
        (user_ok & pass_ok).into()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let c = Credentials::new("alice", "hunter2");
        let text = format!("{c:?}");
        assert!(text.contains("alice"));
        assert!(!text.contains("hunter2"));
        let cfg = ProxyConfig {
            auth: Some(c),
            ..ProxyConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn matches_exactly() {
        let c = Credentials::new("u", "p");
        assert!(c.matches(b"u", b"p"));
        assert!(!c.matches(b"u", b"q"));
        assert!(!c.matches(b"u", b"pp"));
        assert!(!c.matches(b"", b"p"));
    }

    #[test]
    fn only_loopback_stays_on_this_machine() {
        for ip in [
            "0.0.0.0",
            "::",
            "::ffff:0.0.0.0",
            "192.168.1.20",
            "10.0.0.5",
            "172.16.0.1",
            "100.64.0.1",
            "169.254.10.1",
            "8.8.8.8",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            // IPv4-compatible, not mapped: not IPv4 loopback.
            "::127.0.0.1",
        ] {
            assert!(beyond_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "127.0.0.2",
            "127.255.255.254",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!beyond_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn open_to_network_means_beyond_loopback_without_credentials() {
        let listen = |addr: &str| ProxyConfig {
            listen: addr.parse().unwrap(),
            ..ProxyConfig::default()
        };
        assert!(!ProxyConfig::default().open_to_network());
        assert!(!listen("127.0.0.1:0").open_to_network());
        assert!(!listen("[::1]:1080").open_to_network());
        assert!(listen("0.0.0.0:1080").open_to_network());
        assert!(listen("[::]:1080").open_to_network());
        assert!(listen("192.168.1.20:1080").open_to_network());
        let with_auth = ProxyConfig {
            auth: Some(Credentials::new("u", "p")),
            ..listen("0.0.0.0:1080")
        };
        assert!(!with_auth.open_to_network());
    }

    #[test]
    fn default_is_loopback_and_valid() {
        let cfg = ProxyConfig::default();
        assert!(cfg.listen.ip().is_loopback());
        assert_eq!(cfg.listen.port(), 1080);
        cfg.validate().unwrap();
        let bad = ProxyConfig {
            max_connections: 0,
            ..ProxyConfig::default()
        };
        assert!(bad.validate().is_err());
        for bad in [
            ProxyConfig {
                udp_max_datagram: 0,
                ..ProxyConfig::default()
            },
            ProxyConfig {
                udp_max_datagram: 70_000,
                ..ProxyConfig::default()
            },
            ProxyConfig {
                udp_idle_timeout: Duration::ZERO,
                ..ProxyConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
