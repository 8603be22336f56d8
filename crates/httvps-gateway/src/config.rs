//! Typed configuration of a gateway, with the defaults of the brief.
//!
//! [`GatewayConfig::new`] takes the three things a gateway cannot guess (where
//! to listen, which certificate, who may log in) and fills every limit with its
//! default; callers then adjust the public fields. The binary's flags map onto
//! these fields one to one (see `main.rs`).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto_httvps::MAX_FRAME_LEN;

use crate::GatewayError;

/// Everything a gateway needs to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Address of the TLS WebSocket listener (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Certificate chain and private key.
    pub tls: TlsSource,
    /// Who may open sessions.
    pub auth: AuthSource,
    /// The one path that upgrades to WebSocket; every other path is the decoy site.
    pub ws_path: String,
    /// What the decoy site serves.
    pub site: SiteSource,
    /// Address of the Prometheus listener, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// UDP address of the HTTP/3 listener, if any: the same WebSocket on
    /// `ws_path` by extended CONNECT (RFC 9220), with the same certificate.
    pub h3_listen: Option<SocketAddr>,
    /// Fixed Outline node for token modes; `None` means direct mode.
    pub outline: Option<OutlineNode>,
    /// Let direct mode dial loopback, private, link-local and metadata addresses.
    pub allow_private_targets: bool,
    /// Accept the `binary_data` extension when a client offers it: stream
    /// bytes as raw binary messages instead of base64 in JSON (on by default;
    /// clients that do not offer it always get the contract's JSON).
    pub binary_data: bool,
    /// Accept the `flow_control` extension when a client offers it: credit
    /// windows per stream and per session, so a paused reader stalls only
    /// its own stream (on by default; without it the `stall` bound applies).
    pub flow_control: bool,
    /// Accept unmasked client frames from clients that offer the
    /// `x-httvps-unmasked` WebSocket extension (on by default; others send
    /// masked frames, as RFC 6455 says).
    pub unmasked_frames: bool,
    /// Size limits.
    pub limits: Limits,
    /// Time limits.
    pub timeouts: Timeouts,
}

impl GatewayConfig {
    /// A configuration with every limit at its default.
    pub fn new(listen: SocketAddr, tls: TlsSource, auth: AuthSource) -> Self {
        GatewayConfig {
            listen,
            tls,
            auth,
            ws_path: "/ws".to_owned(),
            site: SiteSource::BuiltIn,
            metrics_listen: None,
            h3_listen: None,
            outline: None,
            allow_private_targets: false,
            binary_data: true,
            flow_control: true,
            unmasked_frames: true,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
        }
    }
}

pub use server_kit::tls::TlsSource;

/// Who validates session tokens.
#[derive(Clone)]
pub enum AuthSource {
    /// The control-plane backend (`POST {url}/internal/httvps/validate-session`).
    Backend {
        /// Base URL of the backend, without the path.
        url: String,
        /// Sent as `X-Internal-Secret` when set.
        secret: Option<String>,
        /// How long one validation may take before the session fails.
        timeout: Duration,
    },
    /// A file with one token per line; re-read on change and on [`crate::Reloader::reload`].
    TokenFile(PathBuf),
    /// A fixed set of tokens, for an embedded demo gateway.
    Tokens(HashSet<String>),
}

impl fmt::Debug for AuthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthSource::Backend {
                url,
                secret,
                timeout,
            } => f
                .debug_struct("Backend")
                .field("url", url)
                .field("secret", &secret.as_ref().map(|_| "<redacted>"))
                .field("timeout", timeout)
                .finish(),
            AuthSource::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
            AuthSource::Tokens(set) => write!(f, "Tokens(<{} redacted>)", set.len()),
        }
    }
}

/// What the decoy website serves on paths other than the WebSocket path.
#[derive(Debug, Clone)]
pub enum SiteSource {
    /// A bland built-in page at `/` (written to a private temporary
    /// directory at start and served like any other file).
    BuiltIn,
    /// Static files from a directory (a directory serves its `index.html`;
    /// hidden files, symlinks that lead out and files over 8 MiB are 404).
    Dir(PathBuf),
}

/// An Outline (Shadowsocks AEAD) node that carries a session's streams.
#[derive(Clone, PartialEq, Eq)]
pub struct OutlineNode {
    /// Host name or IP address of the node.
    pub host: String,
    /// TCP port of the node.
    pub port: u16,
    /// AEAD method, such as `chacha20-ietf-poly1305` or `aes-256-gcm`.
    pub method: String,
    /// The shared password.
    pub password: String,
}

impl OutlineNode {
    /// Parses an Outline access key (`ss://BASE64(method:password)@host:port`,
    /// or SIP002 forms that `shadowsocks` understands).
    pub fn from_url(url: &str) -> Result<Self, GatewayError> {
        let cfg = shadowsocks::ServerConfig::from_url(url)
            .map_err(|e| GatewayError::BadOutline(format!("not a usable ss:// URL: {e:?}")))?;
        let (host, port) = match cfg.addr() {
            shadowsocks::config::ServerAddr::SocketAddr(sa) => (sa.ip().to_string(), sa.port()),
            shadowsocks::config::ServerAddr::DomainName(name, port) => (name.clone(), *port),
        };
        Ok(OutlineNode {
            host,
            port,
            method: cfg.method().to_string(),
            password: cfg.password().to_owned(),
        })
    }

    /// Reads an access key from a file (`--outline-file`): the one `ss://`
    /// line, with blank lines and `#` comments around it allowed. Like an ssh
    /// key, the file must be readable by its owner only: one that group or
    /// others may read is refused, since it holds the node's password.
    /// Errors name the file, never its contents.
    pub fn from_file(path: &Path) -> Result<Self, GatewayError> {
        use std::io::Read as _;
        let bad = |what: String| GatewayError::BadOutline(format!("{}: {what}", path.display()));
        let mut file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        // The mode of the file actually opened, not of whatever the path names later.
        let meta = file
            .metadata()
            .map_err(|e| bad(format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".to_owned()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "the file holds the Shadowsocks password but is readable by group or \
                     others (mode {mode:04o}); like an ssh private key it must be private \
                     to its owner: chmod 600 {}",
                    path.display()
                )));
            }
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        match (lines.next(), lines.next()) {
            (Some(url), None) => Self::from_url(url).map_err(|e| match e {
                GatewayError::BadOutline(why) => bad(why),
                other => other,
            }),
            (None, _) => Err(bad("no ss:// URL in the file".to_owned())),
            (Some(_), Some(_)) => Err(bad(
                "more than one line besides comments; give one ss:// URL".to_owned(),
            )),
        }
    }
}

impl fmt::Debug for OutlineNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlineNode")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("method", &self.method)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Size and count limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Concurrent authenticated sessions. A place is taken only once the
    /// token is valid, so unauthenticated clients never hold one; an upgrade
    /// while all are taken is answered 503.
    pub max_sessions: usize,
    /// Connections not yet in a session (TLS handshakes, decoy visitors,
    /// upgrades waiting for their hello). When full, the one that
    /// progressed least recently is closed to make room for the newest
    /// (`server_kit::admission`).
    pub max_connections: usize,
    /// Connections from one client address (IPv4 address, IPv6 /64), in
    /// sessions or not; past it new ones are closed at accept.
    pub max_per_source: usize,
    /// Bytes the WebSocket layer may hold toward one client that does not
    /// read (its pongs included); past it the session ends. At least the
    /// frame limit plus 128 KiB.
    pub max_write_buffer: usize,
    /// How many pings (WebSocket or JSON; frames of unknown types too) a
    /// client may send: a burst, then a rate. Past it each is a violation,
    /// and before the hello, past the burst the connection is closed.
    pub pings: proto_httvps::server::PingLimit,
    /// Streams per session when the backend does not say (default 8).
    pub max_streams: u32,
    /// Largest WebSocket message accepted, and sent (contract: 256 KiB).
    pub max_frame_len: usize,
    /// Protocol violations tolerated per session before it is closed.
    pub max_violations: u32,
    /// Without `flow_control`: bytes queued toward one stream's upstream
    /// before the reader waits (with it, the stream's window bounds them).
    pub stream_buffer_bytes: usize,
    /// Without `flow_control`: chunks queued toward one stream's upstream
    /// before the reader waits.
    pub stream_buffer_frames: usize,
    /// How far the receive windows may grow (`flow_control`): what one
    /// stream, and one session, may buffer toward upstreams at most.
    pub windows: proto_httvps::flow::WindowLimits,
    /// Upstream read buffer per stream (the payload of one `stream_data`).
    pub read_buffer: usize,
    /// Messages queued toward the client's socket: each stream may queue
    /// its share (`out_queue / max_streams`, at least 2); control messages
    /// piling up past twice this mean the client stopped reading, and end
    /// the session.
    pub out_queue: usize,
    /// How many recently closed stream ids a session remembers.
    pub recently_closed: usize,
    /// Longest stream id accepted, in bytes.
    pub max_stream_id_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1024,
            max_connections: 4096,
            max_per_source: 64,
            max_write_buffer: 1024 * 1024,
            pings: proto_httvps::server::PingLimit::default(),
            max_streams: 8,
            max_frame_len: MAX_FRAME_LEN,
            max_violations: 16,
            stream_buffer_bytes: 1024 * 1024,
            stream_buffer_frames: 32,
            windows: proto_httvps::flow::WindowLimits::default(),
            read_buffer: 64 * 1024,
            out_queue: 64,
            recently_closed: 1024,
            max_stream_id_len: 128,
        }
    }
}

/// Time limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Timeouts {
    /// From upgrade to `hello` (absolute: nothing the client sends extends it).
    pub hello: Duration,
    /// A session that receives nothing this long is closed.
    pub idle: Duration,
    /// On shutdown, how long open streams may run before they are cut.
    pub drain: Duration,
    /// How long the session reader waits for room in one stream's buffer.
    pub stall: Duration,
    /// Upstream connect (DNS included).
    pub dial: Duration,
    /// Direct mode's Happy Eyeballs connection attempt delay (RFC 8305 §5:
    /// the next address is tried this long after the previous one unless
    /// it failed first; clamped to 100 ms..2 s).
    pub attempt_delay: Duration,
    /// A write to the client's socket that makes no progress this long ends the session.
    pub write: Duration,
    /// After our Close frame, how long we wait for the peer's.
    pub close: Duration,
    /// The TLS handshake, and then each HTTP request head (a kept-alive
    /// decoy visitor that sends nothing is closed after it). Traffic does
    /// not extend either: a slow-loris head gets no more time.
    pub handshake: Duration,
    /// How often the token file's modification time is checked (`None`: never).
    pub tokens_poll: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            hello: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            drain: Duration::from_secs(10),
            stall: Duration::from_secs(2),
            dial: Duration::from_secs(10),
            attempt_delay: crate::dial::DEFAULT_ATTEMPT_DELAY,
            write: Duration::from_secs(60),
            close: Duration::from_secs(2),
            handshake: Duration::from_secs(10),
            tokens_poll: Some(Duration::from_secs(2)),
        }
    }
}

/// Longest duration a flag takes (about 31 years), far from where adding it
/// to an `Instant` could overflow.
const MAX_DURATION: Duration = Duration::from_secs(1_000_000_000);

/// Parses a duration: plain seconds (`10`, `0.5`, as the flags always took)
/// or [`humantime`]'s forms (`500ms`, `2s`, `2m`, `1h30m`, `1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{text:?} is not a duration of zero or more seconds"))?,
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            format!("{text:?} is not a duration: {e} (try 10 for seconds, or 500ms, 2m, 1h30m)")
        })?,
    };
    if duration > MAX_DURATION {
        return Err(format!(
            "{text:?} is out of range (at most 1000000000 seconds)"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_plain_seconds() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 120 "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["-1", "NaN", "inf", "1e30"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("zero or more seconds"), "{bad}: {e}");
        }
        assert!(parse_duration("2e9").unwrap_err().contains("out of range"));
    }

    #[test]
    fn durations_in_humantime_form() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m 5s"), Ok(Duration::from_secs(5405)));
        assert!(parse_duration("100y").unwrap_err().contains("out of range"));
        for bad in ["soon", "10 parsecs", "", "-2s"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("is not a duration") && e.contains("1h30m"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn outline_url_parses_and_debug_redacts() {
        // SIP002: base64url("chacha20-ietf-poly1305:pw")
        let node = OutlineNode::from_url("ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwdw@127.0.0.1:8388")
            .unwrap();
        assert_eq!(node.host, "127.0.0.1");
        assert_eq!(node.port, 8388);
        assert_eq!(node.method, "chacha20-ietf-poly1305");
        assert_eq!(node.password, "pw");
        assert!(!format!("{node:?}").contains("pw\""));
        assert!(OutlineNode::from_url("http://x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn outline_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outline");
        std::fs::write(
            &path,
            "# node\nss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwdw@127.0.0.1:8388\n\n",
        )
        .unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = OutlineNode::from_file(&path).unwrap_err().to_string();
            assert!(
                e.contains("readable by group or others") && e.contains("chmod 600"),
                "{e}"
            );
            assert!(!e.contains("Y2hh"), "{e}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let node = OutlineNode::from_file(&path).unwrap();
            assert_eq!((node.port, node.password.as_str()), (8388, "pw"));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "ss://not-base64-secretish@h:1\n").unwrap();
        let e = OutlineNode::from_file(&path).unwrap_err().to_string();
        assert!(!e.contains("secretish"), "{e}");
        std::fs::write(&path, "ss://a@h:1\nss://b@h:2\n").unwrap();
        assert!(OutlineNode::from_file(&path).is_err());
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(OutlineNode::from_file(&path).is_err());
        assert!(OutlineNode::from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn auth_debug_redacts() {
        let a = AuthSource::Backend {
            url: "http://b".into(),
            secret: Some("s3cret".into()),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{a:?}").contains("s3cret"));
        let t = AuthSource::Tokens(["tok-1".to_owned()].into());
        assert!(!format!("{t:?}").contains("tok-1"));
    }
}
