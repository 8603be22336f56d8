//! Who may open a session: the backend's validate-session call, a token file,
//! or an in-memory set.
//!
//! Tokens and the internal secret are never logged, nor are backend response
//! bodies: a body may echo the token back. A token is checked against a token
//! file or set in constant time (`subtle`), against every known token, so
//! that timing tells a prober neither how much of a guess matched nor which
//! entry it came near.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Deserialize;
use subtle::{Choice, ConstantTimeEq};
use tracing::{error, info};

use crate::GatewayError;
use crate::config::{AuthSource, OutlineNode};

/// A session the auth source allowed.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The session id sent in `ready`.
    pub session_id: String,
    /// The device the backend bound the session to, for logs.
    pub device_id: Option<String>,
    /// The backend's stream limit; the gateway's default applies when absent.
    pub max_streams: Option<u32>,
    /// The session's Outline node; `None` means the gateway's own mode.
    pub outline: Option<OutlineNode>,
}

/// Why a token did not open a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is unknown or the backend refused it (4xx).
    #[error("session token refused{}", status.map(|s| format!(" (backend answered {s})")).unwrap_or_default())]
    Rejected {
        /// The backend's status, when a backend answered.
        status: Option<u16>,
    },
    /// The backend could not be asked or answered nonsense (5xx, timeout, bad JSON).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

/// The validate-session answer (contract §1, handshake step 2). Unknown fields
/// are ignored; `outline` may be null or absent.
#[derive(Deserialize)]
struct ValidateResponse {
    session_id: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    max_streams: Option<u32>,
    #[serde(default)]
    outline: Option<OutlineJson>,
}

#[derive(Deserialize)]
struct OutlineJson {
    host: String,
    port: u16,
    method: String,
    password: String,
}

/// A set of tokens that can be swapped whole on reload.
#[derive(Clone, Default)]
pub struct TokenSet(Arc<RwLock<Arc<HashSet<String>>>>);

impl TokenSet {
    fn contains(&self, token: &str) -> bool {
        let set = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        is_known(&set, token)
    }

    fn replace(&self, set: HashSet<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }
}

/// The token file and what we last knew of it.
pub struct TokenFile {
    path: PathBuf,
    tokens: TokenSet,
    stamp: RwLock<Option<(SystemTime, u64)>>,
}

impl TokenFile {
    /// Reads the file once; a missing or unreadable file is a startup error.
    pub fn open(path: &Path) -> Result<Self, GatewayError> {
        let (set, stamp) = read_tokens(path).map_err(|source| GatewayError::TokenFile {
            path: path.to_owned(),
            source,
        })?;
        let tokens = TokenSet::default();
        info!(path = %path.display(), count = set.len(), "tokens loaded");
        tokens.replace(set);
        Ok(TokenFile {
            path: path.to_owned(),
            tokens,
            stamp: RwLock::new(stamp),
        })
    }

    /// Re-reads the file; on failure the old set stays and an error is logged.
    pub fn reload(&self, trigger: &str) {
        match read_tokens(&self.path) {
            Ok((set, stamp)) => {
                info!(path = %self.path.display(), count = set.len(), trigger, "tokens reloaded");
                self.tokens.replace(set);
                *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = stamp;
            }
            Err(e) => {
                error!(path = %self.path.display(), error = %e, trigger, "token file reload failed; keeping the previous tokens");
            }
        }
    }

    /// Reloads when the modification time or size changed since the last read.
    pub fn reload_if_changed(&self) {
        let now = file_stamp(&self.path);
        let last = *self.stamp.read().unwrap_or_else(|p| p.into_inner());
        if now.is_some() && now != last {
            self.reload("mtime");
        }
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Parses a token file: one token per line, `#` comments, blank lines ignored.
pub fn parse_tokens(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

type Stamped = (HashSet<String>, Option<(SystemTime, u64)>);

fn read_tokens(path: &Path) -> std::io::Result<Stamped> {
    let stamp = file_stamp(path);
    let text = std::fs::read_to_string(path)?;
    Ok((parse_tokens(&text), stamp))
}

/// The auth source, ready to answer.
pub enum Authenticator {
    /// Asks the backend.
    Backend {
        /// Shared HTTP client (connection pool).
        client: reqwest::Client,
        /// `{url}/internal/httvps/validate-session`.
        endpoint: String,
        /// The `X-Internal-Secret` value.
        secret: Option<String>,
    },
    /// Looks the token up in a file-backed set.
    File(Arc<TokenFile>),
    /// Looks the token up in a fixed set.
    Memory(HashSet<String>),
}

impl Authenticator {
    /// Prepares the auth source (reads the token file, builds the HTTP client).
    pub fn new(source: &AuthSource) -> Result<Self, GatewayError> {
        Ok(match source {
            AuthSource::Backend {
                url,
                secret,
                timeout,
            } => {
                let client = reqwest::Client::builder()
                    .timeout(*timeout)
                    .connect_timeout(*timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| GatewayError::Backend(e.to_string()))?;
                let endpoint = format!(
                    "{}/internal/httvps/validate-session",
                    url.trim_end_matches('/')
                );
                reqwest::Url::parse(&endpoint)
                    .map_err(|e| GatewayError::Backend(format!("bad backend URL {url:?}: {e}")))?;
                Authenticator::Backend {
                    client,
                    endpoint,
                    secret: secret.clone(),
                }
            }
            AuthSource::TokenFile(path) => Authenticator::File(Arc::new(TokenFile::open(path)?)),
            AuthSource::Tokens(set) => Authenticator::Memory(set.clone()),
        })
    }

    /// The token file, when this source has one (for reloads).
    pub fn token_file(&self) -> Option<Arc<TokenFile>> {
        match self {
            Authenticator::File(f) => Some(f.clone()),
            _ => None,
        }
    }

    /// Validates a session token.
    pub async fn validate(&self, token: &str) -> Result<Grant, AuthError> {
        let known = match self {
            Authenticator::Backend {
                client,
                endpoint,
                secret,
            } => return validate_backend(client, endpoint, secret.as_deref(), token).await,
            Authenticator::File(file) => file.tokens.contains(token),
            Authenticator::Memory(set) => is_known(set, token),
        };
        if !known {
            return Err(AuthError::Rejected { status: None });
        }
        Ok(Grant {
            session_id: uuid::Uuid::new_v4().to_string(),
            device_id: None,
            max_streams: None,
            outline: None,
        })
    }
}

async fn validate_backend(
    client: &reqwest::Client,
    endpoint: &str,
    secret: Option<&str>,
    token: &str,
) -> Result<Grant, AuthError> {
    let mut req = client
        .post(endpoint)
        .json(&serde_json::json!({ "session_token": token }));
    if let Some(secret) = secret {
        req = req.header("X-Internal-Secret", secret);
    }
    let resp = req.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "unreachable"
        } else {
            "request failed"
        };
        AuthError::Unavailable(what.to_owned())
    })?;
    let status = resp.status();
    if status.is_client_error() {
        return Err(AuthError::Rejected {
            status: Some(status.as_u16()),
        });
    }
    if status != reqwest::StatusCode::OK {
        return Err(AuthError::Unavailable(format!("answered {status}")));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|_| AuthError::Unavailable("body could not be read".into()))?;
    // The body is never logged: it may carry the token or the node password.
    let parsed: ValidateResponse = serde_json::from_slice(&body).map_err(|e| {
        AuthError::Unavailable(format!("unparsable answer ({})", e.classify_name()))
    })?;
    Ok(Grant {
        session_id: parsed.session_id,
        device_id: parsed.device_id,
        max_streams: parsed.max_streams,
        outline: parsed.outline.map(|o| OutlineNode {
            host: o.host,
            port: o.port,
            method: o.method,
            password: o.password,
        }),
    })
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "missing or mistyped field",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// Whether `token` is in `set`, comparing it with every entry in constant
/// time rather than hashing it into one bucket and comparing with `==`. The
/// cost grows with the set, which is fine for the hundreds of tokens a token
/// file holds and a check that runs once per session.
fn is_known(set: &HashSet<String>, token: &str) -> bool {
    let token = token.as_bytes();
    set.iter()
        .fold(Choice::from(0), |found, known| {
            found | known.as_bytes().ct_eq(token)
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_syntax() {
        let set = parse_tokens("# comment\n\n tok-a \ntok-b\n  # indented comment\n");
        assert_eq!(set, ["tok-a".to_owned(), "tok-b".to_owned()].into());
    }

    #[tokio::test]
    async fn session_ids_look_like_uuid_v4() {
        let auth = Authenticator::new(&AuthSource::Tokens(["t".to_owned()].into())).unwrap();
        let a = auth.validate("t").await.unwrap().session_id;
        let b = auth.validate("t").await.unwrap().session_id;
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert!(matches!(
            auth.validate("u").await,
            Err(AuthError::Rejected { status: None })
        ));
    }

    #[test]
    fn token_lookup_matches_whole_tokens_only() {
        let set: HashSet<String> = ["tok-alpha".to_owned(), "tok-beta".to_owned()].into();
        assert!(is_known(&set, "tok-alpha"));
        assert!(is_known(&set, "tok-beta"));
        for miss in ["", "tok-", "tok-alph", "tok-alphaa", "TOK-ALPHA"] {
            assert!(!is_known(&set, miss), "{miss}");
        }
        assert!(!is_known(&HashSet::new(), "tok-alpha"));
    }

    #[test]
    fn failed_reload_keeps_old_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "one\n").unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert!(file.tokens.contains("one"));
        std::fs::write(&path, "two\n").unwrap();
        file.reload("test");
        assert!(file.tokens.contains("two") && !file.tokens.contains("one"));
        std::fs::remove_file(&path).unwrap();
        file.reload("test");
        assert!(file.tokens.contains("two"));
        assert!(TokenFile::open(&path).is_err());
    }

    #[test]
    fn backend_answer_parses_with_null_outline() {
        let r: ValidateResponse = serde_json::from_str(
            r#"{"session_id":"s","device_id":"d","max_streams":4,"outline":null,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(r.max_streams, Some(4));
        assert!(r.outline.is_none());
        let r: ValidateResponse = serde_json::from_str(r#"{"session_id":"s"}"#).unwrap();
        assert!(r.outline.is_none() && r.max_streams.is_none());
    }
}
