//! HT client configuration. Every limit has a default and can be changed;
//! the CLI and the app build one from a profile.

use std::time::Duration;

use client_kit::TlsOptions;
use proto_ht::Key;
use proto_ht::client::Config as MachineConfig;
use url::Url;

use crate::error::HtError;

/// How to reach and trust an HT server, and the session's limits.
#[derive(Debug, Clone)]
pub struct HtClientConfig {
    /// The server's base URL, `https://host[:port][/base]`; connections
    /// post to `{base}/ht/create.php`. `http://` works but is warned about:
    /// HT's own cipher has no integrity (docs/ht.md, "Weaknesses").
    pub url: String,
    /// The pre-shared key (its `Debug` is redacted).
    pub key: Key,
    /// How the server's certificate is checked (`https://` only).
    pub tls: TlsOptions,
    /// Transport connections per session (the contract's N, default 4).
    pub connections: usize,
    /// Windows and stream limit of the session machine.
    pub machine: MachineConfig,
    /// Limit for TCP connect + TLS + the response head of one connection.
    pub connect_timeout: Duration,
    /// Limit for the server's answer to a stream open.
    pub open_timeout: Duration,
    /// Limit for the server's answer to a DNS lookup.
    pub lookup_timeout: Duration,
    /// How long a stream the application closed may wait for the server
    /// to acknowledge its last upload packets before it is closed anyway
    /// (what was not acknowledged is given up), so a target that stops
    /// reading cannot hold a stream slot forever.
    pub close_linger: Duration,
    /// How a broken connection of a live session is replaced.
    pub connection_retry: ConnectionRetry,
    /// Largest chunk accepted from the server: one answer (64 KiB payload)
    /// plus its header.
    pub max_chunk: usize,
    /// Largest response head accepted.
    pub max_head: usize,
    /// Datagrams from targets queued toward one UDP association's reader;
    /// past it new ones are dropped (UDP may lose packets, memory may not
    /// grow).
    pub datagram_queue: usize,
    /// Targets one UDP association talks to at once (one HT stream each);
    /// past it the oldest is closed.
    pub datagram_targets: usize,
}

/// Replacing a broken transport connection: `attempts` tries in a row at
/// most, waiting `initial_backoff`, doubling up to `max_backoff`. A slot
/// that runs out gives up; the session ends when every slot has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionRetry {
    /// Consecutive failed tries before a connection slot gives up.
    pub attempts: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for ConnectionRetry {
    fn default() -> Self {
        ConnectionRetry {
            attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl ConnectionRetry {
    /// The wait before retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl HtClientConfig {
    /// Defaults for a server URL and key.
    pub fn new(url: impl Into<String>, key: Key) -> Self {
        HtClientConfig {
            url: url.into(),
            key,
            tls: TlsOptions::default(),
            connections: 4,
            machine: MachineConfig::default(),
            connect_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(30),
            lookup_timeout: Duration::from_secs(10),
            close_linger: Duration::from_secs(30),
            connection_retry: ConnectionRetry::default(),
            max_chunk: proto_ht::query::MAX_PAYLOAD + 64,
            max_head: 16 * 1024,
            datagram_queue: 256,
            datagram_targets: 64,
        }
    }

    /// Checks every setting; the URL comes back parsed.
    pub fn validate(&self) -> Result<ServerUrl, HtError> {
        let url = ServerUrl::parse(&self.url)?;
        let bad = |what: &str| Err(HtError::InvalidConfig(what.to_owned()));
        if !(1..=64).contains(&self.connections) {
            return bad("connections must be 1 to 64");
        }
        if self.machine.download_window == 0 || self.machine.upload_window == 0 {
            return bad("windows must be at least 1 packet");
        }
        if self.max_chunk < proto_ht::query::MAX_PAYLOAD + 18 {
            return bad("max_chunk must hold a 64 KiB payload and its header");
        }
        if self.max_head < 256 {
            return bad("max_head must be at least 256 bytes");
        }
        if self.datagram_queue == 0 || self.datagram_targets == 0 {
            return bad("datagram limits must be at least 1");
        }
        if self.connection_retry.attempts == 0 {
            return bad("reconnect attempts must be at least 1");
        }
        Ok(url)
    }
}

/// A checked server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// `https` (TLS) or plain `http`.
    pub tls: bool,
    /// The host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// The port (default 443 or 80).
    pub port: u16,
    /// The base path without a trailing `/` (empty for the root).
    pub base: String,
}

impl ServerUrl {
    /// Parses `https://host[:port][/base]` or `http://…`; no credentials,
    /// query or fragment.
    pub fn parse(text: &str) -> Result<ServerUrl, HtError> {
        let bad = |reason| HtError::InvalidUrl {
            url: text.to_owned(),
            reason,
        };
        let url = Url::parse(text).map_err(|_| bad("not a URL"))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("the scheme must be https or http")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are not supported"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query or fragment is not allowed"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("no host")),
        };
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        let base = url.path().trim_end_matches('/').to_owned();
        Ok(ServerUrl {
            tls,
            host,
            port,
            base,
        })
    }

    /// The request target of a transport connection.
    pub fn create_path(&self) -> String {
        format!("{}/ht/create.php", self.base)
    }

    /// The `Host` header: the port only when it is not the scheme's
    /// default, IPv6 in brackets.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn urls_give_scheme_host_port_and_base() {
        let u = ServerUrl::parse("https://ht.example/").unwrap();
        assert_eq!((u.tls, u.port, u.base.as_str()), (true, 443, ""));
        assert_eq!(u.create_path(), "/ht/create.php");
        assert_eq!(u.host_header(), "ht.example");
        let u = ServerUrl::parse("http://127.0.0.1:8080/tunnel/").unwrap();
        assert_eq!((u.tls, u.port), (false, 8080));
        assert_eq!(u.create_path(), "/tunnel/ht/create.php");
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = ServerUrl::parse("https://[::1]:8443").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.host_header(), "[::1]:8443");
    }

    #[test]
    fn unusable_urls_are_refused_with_a_reason() {
        for (url, why) in [
            ("ftp://x", "scheme"),
            ("https://u:p@x", "credentials"),
            ("https://x/?a=1", "query"),
            ("not a url", "not a URL"),
        ] {
            let e = ServerUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn validation_checks_every_limit_and_debug_hides_the_key() {
        let ok = HtClientConfig::new("https://ht.example", key());
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.connections = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.machine.download_window = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.max_chunk = 100;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.connection_retry.attempts = 0;
        assert!(c.validate().is_err());
        let debug = format!("{ok:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("abab"),
            "{debug}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let p = ConnectionRetry::default();
        assert_eq!(p.backoff(0), Duration::from_millis(200));
        assert_eq!(p.backoff(1), Duration::from_millis(400));
        assert_eq!(p.backoff(40), Duration::from_secs(5));
    }
}
