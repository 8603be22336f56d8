//! The proxy's settings, with the Go proxy's defaults (CONTRACTS.md §3).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the proxy needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address to listen on (`-listen`, default `:443`).
    pub listen: SocketAddr,
    /// TLS certificate chain, PEM (`-cert`, default `cert.pem`).
    pub cert: PathBuf,
    /// TLS private key, PEM (`-key`, default `key.pem`).
    pub key: PathBuf,
    /// The backend's base URL, `ws://` or `wss://`, without a path
    /// (`-backend`, default `ws://127.0.0.1:8080`).
    pub backend: String,
    /// Extra CA certificates (PEM) for a `wss://` backend, besides the
    /// system's (our addition).
    pub backend_ca: Option<PathBuf>,
    /// Paths served, as a regular expression matched against the request's
    /// path without its query (`-path`, default `^/ws$`).
    pub path: regex::Regex,
    /// Prometheus metrics listener (`-metrics`, off unless given).
    pub metrics: Option<SocketAddr>,
    /// The largest WebSocket frame (`-max-frame`, 1 MiB): a bigger one
    /// aborts the session.
    pub max_frame: usize,
    /// The largest WebSocket message (`-max-message`, 8 MiB): a bigger one
    /// closes the session with 1009.
    pub max_message: usize,
    /// Sessions at once (`-max-conns`, 2000); more get 503.
    pub max_conns: usize,
    /// How long either side may send nothing (`-read-timeout`, 120 s).
    pub read_timeout: Duration,
    /// How long one write may wait (`-write-timeout`, 15 s).
    pub write_timeout: Duration,
    /// Concurrent request streams one QUIC connection may open (ours).
    pub max_streams_per_connection: u32,
}

impl Config {
    /// The Go proxy's defaults.
    pub fn new() -> Config {
        Config {
            listen: "[::]:443".parse().expect("literal"),
            cert: "cert.pem".into(),
            key: "key.pem".into(),
            backend: "ws://127.0.0.1:8080".into(),
            backend_ca: None,
            path: regex::Regex::new("^/ws$").expect("literal"),
            metrics: None,
            max_frame: 1 << 20,
            max_message: 8 << 20,
            max_conns: 2000,
            read_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(15),
            max_streams_per_connection: 100,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// Parses a listen address the way Go writes them too: `:443` is every
/// interface.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = match text.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => text.to_owned(),
    };
    full.parse()
        .map_err(|e| format!("{text:?} is not an address with a port: {e}"))
}

/// Parses a duration as Go's `time.ParseDuration` writes them (`120s`,
/// `2m0s`, `1h30m`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_spellings_parse() {
        assert_eq!(parse_listen(":443").unwrap(), "[::]:443".parse().unwrap());
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(parse_listen("443").is_err());
        assert_eq!(parse_duration("2m0s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    }
}
