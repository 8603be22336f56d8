//! Cell configuration. Every limit has a default and can be changed; the CLI
//! and the app build one from an [`HlhvProfile`](crate::HlhvProfile).

use std::time::Duration;

use client_kit::TlsOptions;
use net::Secret;
use proto_hlhv::DEFAULT_MAX_FRAME;
use proto_hlhv::cell::{DEFAULT_MAX_BODY, DEFAULT_MAX_PIECE};

use crate::error::HlhvError;

/// The queen's port when `queen` names none (the Go queen's default).
pub const DEFAULT_QUEEN_PORT: u16 = 2001;

/// What to publish, where, and the limits of serving it.
#[derive(Debug, Clone)]
pub struct CellConfig {
    /// The queen's cell port, `HOST:PORT` (`[v6]:PORT`; port 2001 when
    /// absent). Bands dial the same address.
    pub queen: String,
    /// How the queen's certificate is checked.
    pub tls: TlsOptions,
    /// Where to mount, `HOST/PATH` (`demo.example/app/`); a path ending in
    /// `/` takes everything below it.
    pub mount: String,
    /// The local app, `http://HOST:PORT`.
    pub to: String,
    /// The cell key (its `Debug` is redacted).
    pub key: Secret,
    /// The URL shown to people; default `https://HOST/PATH` of the mount.
    pub public_url: Option<String>,
    /// The largest request body passed to the local app; larger → 413.
    pub max_body: u64,
    /// The largest frame accepted from the queen.
    pub max_frame: usize,
    /// The largest response body piece sent per frame.
    pub max_piece: usize,
    /// Bands open at once at most; further `NeedBand`s are ignored (and
    /// logged), since each band is a TLS connection and a task.
    pub max_bands: usize,
    /// TCP connect + TLS handshake to the queen.
    pub connect_timeout: Duration,
    /// The queen's `Accept`, on the leash and on each band.
    pub login_timeout: Duration,
    /// Connecting to the local app and receiving its response head.
    pub local_timeout: Duration,
    /// Keep-alive connections to the local app kept for reuse between
    /// requests: each band keeps its own, as long as no more than this
    /// many are kept in all.
    pub local_idle: usize,
}

impl CellConfig {
    /// Defaults for a queen, a mount, a local app and a key.
    pub fn new(
        queen: impl Into<String>,
        mount: impl Into<String>,
        to: impl Into<String>,
        key: Secret,
    ) -> CellConfig {
        CellConfig {
            queen: queen.into(),
            tls: TlsOptions::default(),
            mount: mount.into(),
            to: to.into(),
            key,
            public_url: None,
            max_body: DEFAULT_MAX_BODY,
            max_frame: DEFAULT_MAX_FRAME,
            max_piece: DEFAULT_MAX_PIECE,
            max_bands: 64,
            connect_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(10),
            local_timeout: Duration::from_secs(120),
            // As many as bands can serve at once: fewer, and a busy cell
            // dialled the app again for every request past them.
            local_idle: 64,
        }
    }

    /// Checks every setting and returns them parsed.
    pub fn validate(&self) -> Result<Checked, HlhvError> {
        let bad = |what: String| Err(HlhvError::InvalidConfig(what));
        let (queen_host, queen_port) = parse_queen(&self.queen)?;
        let (mount_host, mount_path) = parse_mount(&self.mount)?;
        let local = LocalTarget::parse(&self.to)?;
        if self.key.expose().is_empty() {
            return bad("the cell key is empty".into());
        }
        if self.max_body == 0 || self.max_body > i64::MAX as u64 - 1 {
            return bad("max_body must be at least 1 byte".into());
        }
        if self.max_piece == 0 || self.max_piece + 5 > self.max_frame {
            return bad("max_piece must be at least 1 byte and fit in max_frame".into());
        }
        if self.max_frame < 1024 {
            return bad("max_frame must be at least 1024 bytes".into());
        }
        if !(1..=1024).contains(&self.max_bands) {
            return bad("max_bands must be 1 to 1024".into());
        }
        let public_url = match &self.public_url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => url.clone(),
            Some(url) => return bad(format!("public URL {url:?} must start with https://")),
            None => format!("https://{mount_host}{mount_path}"),
        };
        Ok(Checked {
            queen_host,
            queen_port,
            mount_host,
            mount_path,
            local,
            public_url,
        })
    }
}

/// A validated [`CellConfig`]'s parsed parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The queen's host (IPv6 without brackets).
    pub queen_host: String,
    /// The queen's port.
    pub queen_port: u16,
    /// The mount's host.
    pub mount_host: String,
    /// The mount's path, starting with `/`.
    pub mount_path: String,
    /// The local app.
    pub local: LocalTarget,
    /// The URL shown to people.
    pub public_url: String,
}

/// The local app's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    /// As configured, for messages (`http://127.0.0.1:3000`).
    pub url: String,
    /// The host to connect to (IPv6 without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// `host:port` as the `Host` header says it.
    pub authority: String,
}

impl LocalTarget {
    /// Parses `http://HOST[:PORT][/]`.
    pub fn parse(text: &str) -> Result<LocalTarget, HlhvError> {
        let bad = |why: &str| {
            Err(HlhvError::InvalidConfig(format!(
                "local app {text:?}: {why} (expected http://HOST:PORT)"
            )))
        };
        let Some(rest) = text.strip_prefix("http://") else {
            return bad("only http:// is supported");
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return bad("no path, query or credentials allowed");
        }
        let Some((host, port)) = split_host_port(authority, 80) else {
            return bad("bad host or port");
        };
        Ok(LocalTarget {
            url: format!("http://{authority}"),
            host,
            port,
            authority: authority.to_owned(),
        })
    }
}

fn parse_queen(text: &str) -> Result<(String, u16), HlhvError> {
    if text.contains("://") || text.contains('/') {
        return Err(HlhvError::InvalidConfig(format!(
            "queen {text:?}: give HOST:PORT, without a scheme or path"
        )));
    }
    split_host_port(text, DEFAULT_QUEEN_PORT)
        .ok_or_else(|| HlhvError::InvalidConfig(format!("queen {text:?}: expected HOST:PORT")))
}

fn parse_mount(text: &str) -> Result<(String, String), HlhvError> {
    let bad = |why: &str| {
        Err(HlhvError::InvalidConfig(format!(
            "mount {text:?}: {why} (expected HOST/PATH, e.g. demo.example/app/)"
        )))
    };
    if text.contains("://") {
        return bad("no scheme");
    }
    let (host, path) = match text.find('/') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "/"),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return bad("bad host");
    }
    if path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return bad("bad path");
    }
    Ok((host.to_ascii_lowercase(), path.to_owned()))
}

/// Splits `host[:port]` (`[v6][:port]`); `None` when malformed.
fn split_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return None,
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p != 0)?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CellConfig {
        CellConfig::new(
            "queen.example:2001",
            "demo.example/app/",
            "http://127.0.0.1:3000",
            Secret::new("k"),
        )
    }

    #[test]
    fn a_good_config_parses() {
        let checked = config().validate().unwrap();
        assert_eq!(
            (checked.queen_host.as_str(), checked.queen_port),
            ("queen.example", 2001)
        );
        assert_eq!(
            (checked.mount_host.as_str(), checked.mount_path.as_str()),
            ("demo.example", "/app/")
        );
        assert_eq!(checked.local.authority, "127.0.0.1:3000");
        assert_eq!(checked.public_url, "https://demo.example/app/");
        let mut other = config();
        other.queen = "[::1]".into();
        other.mount = "Demo.Example".into();
        other.to = "http://[::1]:8080/".into();
        other.public_url = Some("https://pretty.example/".into());
        let checked = other.validate().unwrap();
        assert_eq!(
            (checked.queen_host.as_str(), checked.queen_port),
            ("::1", 2001)
        );
        assert_eq!(
            (checked.mount_host.as_str(), checked.mount_path.as_str()),
            ("demo.example", "/")
        );
        assert_eq!(
            (checked.local.host.as_str(), checked.local.port),
            ("::1", 8080)
        );
        assert_eq!(checked.local.authority, "[::1]:8080");
        assert_eq!(checked.public_url, "https://pretty.example/");
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let err = |f: &dyn Fn(&mut CellConfig)| {
            let mut c = config();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(err(&|c| c.queen = "https://q:1".into()).contains("without a scheme"));
        assert!(err(&|c| c.queen = "q:0".into()).contains("HOST:PORT"));
        assert!(err(&|c| c.queen = "q:x".into()).contains("HOST:PORT"));
        assert!(err(&|c| c.mount = "/app/".into()).contains("bad host"));
        assert!(err(&|c| c.mount = "https://d/x".into()).contains("no scheme"));
        assert!(err(&|c| c.to = "https://127.0.0.1:1".into()).contains("only http://"));
        assert!(err(&|c| c.to = "http://127.0.0.1:1/app".into()).contains("no path"));
        assert!(err(&|c| c.key = Secret::new("")).contains("key is empty"));
        assert!(err(&|c| c.max_bands = 0).contains("max_bands"));
        assert!(err(&|c| c.max_body = 0).contains("max_body"));
        assert!(err(&|c| c.public_url = Some("demo".into())).contains("https://"));
    }
}
