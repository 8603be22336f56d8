//! A test backend over real HTTP implementing the control-plane contract
//! (CONTRACTS.md §1): `validate-session` for the gateway, `session` for devices.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// Largest request body the backend reads; the contract's bodies are tiny.
const MAX_BODY: usize = 64 * 1024;
/// Lifetime of minted session tokens, as `expires_at` reports it.
const SESSION_TTL: Duration = Duration::from_secs(600);

/// The Outline node a grant sends the gateway to (the `outline` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutlineNode {
    /// Backend id of the node.
    pub node_id: i64,
    /// Host the gateway dials.
    pub host: String,
    /// Port the gateway dials.
    pub port: u16,
    /// AEAD method.
    pub method: String,
    /// Shadowsocks password.
    pub password: String,
    /// Region label.
    pub region: String,
    /// Pool label.
    pub pool: String,
    /// Outline access key id.
    pub access_key_id: String,
    /// Outline access key (`ss://…`).
    pub access_url: String,
}

impl OutlineNode {
    /// A node with the fields tests care about; the labels get fixed test values.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        method: impl Into<String>,
        password: impl Into<String>,
    ) -> OutlineNode {
        OutlineNode {
            node_id: 1,
            host: host.into(),
            port,
            method: method.into(),
            password: password.into(),
            region: "test".into(),
            pool: "default".into(),
            access_key_id: "1".into(),
            access_url: String::new(),
        }
    }
}

/// What a valid session token unlocks: the device, its stream limit and its node
/// (`None` → `"outline": null`, which makes the gateway run direct mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Device the session belongs to.
    pub device_id: String,
    /// Streams the gateway allows at once.
    pub max_streams: u32,
    /// Upstream node, or none for direct mode.
    pub outline: Option<OutlineNode>,
}

#[derive(Debug, Clone)]
struct Device {
    token: String,
    grant: Grant,
    gateway_url: String,
}

/// Configures a [`TestBackend`] before it starts listening.
#[derive(Debug, Default)]
pub struct TestBackendBuilder {
    secret: Option<String>,
    sessions: HashMap<String, Grant>,
    devices: HashMap<String, Device>,
    reusable: bool,
    fail_with_status: Option<u16>,
    delay: Duration,
}

impl TestBackendBuilder {
    /// Requires `X-Internal-Secret: secret` on validate-session (else 401 `bad_secret`).
    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_string());
        self
    }

    /// Registers a session token the gateway may validate.
    pub fn session_token(mut self, token: &str, grant: Grant) -> Self {
        self.sessions.insert(token.to_string(), grant);
        self
    }

    /// Registers a device that can mint session tokens via `/api/v1/httvps/session`.
    /// The grant's `device_id` is set to `device_id`.
    pub fn device(
        mut self,
        device_id: &str,
        device_token: &str,
        mut grant: Grant,
        gateway_url: &str,
    ) -> Self {
        grant.device_id = device_id.to_string();
        self.devices.insert(
            device_id.to_string(),
            Device {
                token: device_token.to_string(),
                grant,
                gateway_url: gateway_url.to_string(),
            },
        );
        self
    }

    /// Whether a token is consumed by its first successful validation (default: true).
    pub fn single_use(mut self, single_use: bool) -> Self {
        self.reusable = !single_use;
        self
    }

    /// Makes every validate-session answer this status, for "backend down" tests.
    pub fn fail_with_status(mut self, status: Option<u16>) -> Self {
        self.fail_with_status = status;
        self
    }

    /// Slows every validate-session by `delay`, for timeout tests.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Binds 127.0.0.1:0 and serves until the returned backend is dropped.
    pub async fn start(self) -> TestBackend {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("test backend: binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("test backend: local_addr");
        let state = Arc::new(State {
            secret: self.secret,
            reusable: self.reusable,
            fail_with_status: self.fail_with_status,
            delay: self.delay,
            sessions: Mutex::new(self.sessions),
            devices: self.devices,
            validate_calls: AtomicUsize::new(0),
            session_calls: AtomicUsize::new(0),
            last_secret: Mutex::new(None),
            next_id: AtomicU64::new(1),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let state = shared.clone();
                        conns.spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let state = state.clone();
                                async move { Ok::<_, Infallible>(handle(&state, req).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tcp), service)
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        TestBackend { addr, state, task }
    }
}

struct State {
    secret: Option<String>,
    reusable: bool,
    fail_with_status: Option<u16>,
    delay: Duration,
    sessions: Mutex<HashMap<String, Grant>>,
    devices: HashMap<String, Device>,
    validate_calls: AtomicUsize,
    session_calls: AtomicUsize,
    last_secret: Mutex<Option<String>>,
    next_id: AtomicU64,
}

/// The control-plane backend the gateway and client talk to in tests. Counts
/// calls and remembers the last secret so tests can assert on the gateway's
/// behaviour. Shut down on drop.
pub struct TestBackend {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBackend")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestBackend {
    /// Starts configuring a backend.
    pub fn builder() -> TestBackendBuilder {
        TestBackendBuilder::default()
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many validate-session requests arrived (any outcome).
    pub fn validate_calls(&self) -> usize {
        self.state.validate_calls.load(Ordering::SeqCst)
    }

    /// How many device session requests arrived (any outcome).
    pub fn session_calls(&self) -> usize {
        self.state.session_calls.load(Ordering::SeqCst)
    }

    /// The `X-Internal-Secret` of the last validate-session, if it had one.
    pub fn last_secret_seen(&self) -> Option<String> {
        self.state
            .last_secret
            .lock()
            .expect("backend state lock")
            .clone()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}

fn reason(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        serde_json::json!({ "detail": { "reason": reason } }),
    )
}

async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Option<T> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&body).ok()
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/internal/httvps/validate-session") => validate_session(state, req).await,
        (&Method::POST, "/api/v1/httvps/session") => mint_session(state, req).await,
        (_, "/internal/httvps/validate-session" | "/api/v1/httvps/session") => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "detail": "Method Not Allowed" }),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "detail": "Not Found" }),
        ),
    }
}

#[derive(Deserialize)]
struct ValidateRequest {
    session_token: String,
}

async fn validate_session(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    state.validate_calls.fetch_add(1, Ordering::SeqCst);
    let secret = req
        .headers()
        .get("x-internal-secret")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    *state.last_secret.lock().expect("backend state lock") = secret.clone();
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    if let Some(code) = state.fail_with_status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return reason(status, "backend_failure");
    }
    if let Some(expected) = &state.secret
        && secret.as_deref() != Some(expected.as_str())
    {
        return reason(StatusCode::UNAUTHORIZED, "bad_secret");
    }
    let Some(body) = read_json::<ValidateRequest>(req).await else {
        return reason(StatusCode::UNPROCESSABLE_ENTITY, "bad_request");
    };
    let grant = {
        let mut sessions = state.sessions.lock().expect("backend state lock");
        if state.reusable {
            sessions.get(&body.session_token).cloned()
        } else {
            sessions.remove(&body.session_token)
        }
    };
    let Some(grant) = grant else {
        return reason(StatusCode::FORBIDDEN, "invalid_session");
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    json_response(
        StatusCode::OK,
        serde_json::json!({
            "session_id": format!("sess-{id}"),
            "device_id": grant.device_id,
            "max_streams": grant.max_streams,
            "outline": grant.outline,
        }),
    )
}

#[derive(Deserialize)]
struct SessionRequest {
    device_id: String,
    token: String,
}

async fn mint_session(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    state.session_calls.fetch_add(1, Ordering::SeqCst);
    let Some(body) = read_json::<SessionRequest>(req).await else {
        return reason(StatusCode::UNPROCESSABLE_ENTITY, "bad_request");
    };
    let Some(device) = state
        .devices
        .get(&body.device_id)
        .filter(|d| d.token == body.token)
    else {
        return reason(StatusCode::UNAUTHORIZED, "invalid_device");
    };
    let token = format!("st-{}", random_hex(state));
    state
        .sessions
        .lock()
        .expect("backend state lock")
        .insert(token.clone(), device.grant.clone());
    let expires = SystemTime::now() + SESSION_TTL;
    json_response(
        StatusCode::OK,
        serde_json::json!({
            "session_token": token,
            "expires_at": rfc3339(expires),
            "gateway_url": device.gateway_url,
            "max_streams": device.grant.max_streams,
        }),
    )
}

/// 128 unpredictable-enough bits for test tokens, from std's randomly keyed hasher.
fn random_hex(state: &State) -> String {
    use std::hash::BuildHasher;
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let a = std::collections::hash_map::RandomState::new().hash_one(n);
    let b = std::collections::hash_map::RandomState::new().hash_one(SystemTime::now());
    format!("{a:016x}{b:016x}")
}

/// Formats a time as RFC 3339 UTC with second precision, e.g. `2025-01-02T03:04:05Z`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (proleptic Gregorian), with days counted from 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http::request;

    fn grant(outline: Option<OutlineNode>) -> Grant {
        Grant {
            device_id: "dev-1".into(),
            max_streams: 8,
            outline,
        }
    }

    async fn validate(
        backend: &TestBackend,
        token: &str,
        secret: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::json!({ "session_token": token }).to_string();
        let mut headers = vec![("content-type", "application/json")];
        if let Some(s) = secret {
            headers.push(("x-internal-secret", s));
        }
        let resp = request(
            backend.addr(),
            "POST",
            "/internal/httvps/validate-session",
            &headers,
            body.into(),
        )
        .await;
        (resp.status, resp.json())
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_735_787_045)),
            "2025-01-02T03:04:05Z"
        );
    }

    #[tokio::test]
    async fn validate_session_follows_the_contract() {
        let node = OutlineNode::new("127.0.0.1", 8388, "aes-256-gcm", "pw");
        let backend = TestBackend::builder()
            .secret("s3cret")
            .session_token("tok-1", grant(Some(node.clone())))
            .session_token("tok-direct", grant(None))
            .start()
            .await;
        assert!(backend.url().starts_with("http://127.0.0.1:"));

        assert_eq!(
            validate(&backend, "tok-1", None).await,
            (401, serde_json::json!({"detail":{"reason":"bad_secret"}}))
        );
        assert_eq!(backend.last_secret_seen(), None);
        assert_eq!(validate(&backend, "tok-1", Some("nope")).await.0, 401);
        assert_eq!(backend.last_secret_seen().as_deref(), Some("nope"));

        let (status, body) = validate(&backend, "tok-1", Some("s3cret")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["device_id"], "dev-1");
        assert_eq!(body["max_streams"], 8);
        assert!(body["session_id"].as_str().is_some_and(|s| !s.is_empty()));
        let outline: OutlineNode =
            serde_json::from_value(body["outline"].clone()).expect("outline object");
        assert_eq!(outline, node);

        // Single use by default.
        assert_eq!(
            validate(&backend, "tok-1", Some("s3cret")).await,
            (
                403,
                serde_json::json!({"detail":{"reason":"invalid_session"}})
            )
        );
        assert_eq!(validate(&backend, "unknown", Some("s3cret")).await.0, 403);

        let (status, body) = validate(&backend, "tok-direct", Some("s3cret")).await;
        assert_eq!(status, 200);
        assert!(body["outline"].is_null());
        assert_eq!(backend.validate_calls(), 6);
        assert_eq!(backend.session_calls(), 0);
    }

    #[tokio::test]
    async fn reusable_tokens_and_no_secret() {
        let backend = TestBackend::builder()
            .single_use(false)
            .session_token("t", grant(None))
            .start()
            .await;
        for _ in 0..3 {
            assert_eq!(validate(&backend, "t", None).await.0, 200);
        }
    }

    #[tokio::test]
    async fn failure_status_and_delay() {
        let backend = TestBackend::builder()
            .session_token("t", grant(None))
            .fail_with_status(Some(503))
            .delay(Duration::from_millis(200))
            .start()
            .await;
        let started = std::time::Instant::now();
        assert_eq!(validate(&backend, "t", None).await.0, 503);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn device_mints_single_use_session_tokens() {
        let node = OutlineNode::new("127.0.0.1", 1, "aes-128-gcm", "pw");
        let backend = TestBackend::builder()
            .device(
                "dev-9",
                "device-token",
                grant(Some(node)),
                "wss://127.0.0.1:1/ws",
            )
            .start()
            .await;
        let mint = |token: &'static str| {
            let body = serde_json::json!({"device_id": "dev-9", "token": token, "region": "eu"})
                .to_string();
            request(
                backend.addr(),
                "POST",
                "/api/v1/httvps/session",
                &[("content-type", "application/json")],
                body.into(),
            )
        };
        let bad = mint("wrong").await;
        assert_eq!(
            (bad.status, bad.json()),
            (
                401,
                serde_json::json!({"detail":{"reason":"invalid_device"}})
            )
        );

        let ok = mint("device-token").await;
        assert_eq!(ok.status, 200);
        let body = ok.json();
        assert_eq!(body["gateway_url"], "wss://127.0.0.1:1/ws");
        assert_eq!(body["max_streams"], 8);
        let expires = body["expires_at"].as_str().expect("expires_at");
        assert!(expires.len() == 20 && expires.ends_with('Z'), "{expires}");
        let token = body["session_token"].as_str().expect("token").to_string();
        let other = mint("device-token").await.json()["session_token"]
            .as_str()
            .expect("token")
            .to_string();
        assert_ne!(token, other);

        let (status, v) = validate(&backend, &token, None).await;
        assert_eq!(status, 200);
        assert_eq!(v["device_id"], "dev-9");
        assert_eq!(v["outline"]["method"], "aes-128-gcm");
        assert_eq!(validate(&backend, &token, None).await.0, 403);
        assert_eq!(backend.session_calls(), 3);
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let backend = TestBackend::builder().start().await;
        assert_eq!(
            request(backend.addr(), "GET", "/nope", &[], Bytes::new())
                .await
                .status,
            404
        );
        assert_eq!(
            request(
                backend.addr(),
                "GET",
                "/api/v1/httvps/session",
                &[],
                Bytes::new()
            )
            .await
            .status,
            405
        );
    }
}
