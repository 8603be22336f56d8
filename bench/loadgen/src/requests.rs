//! Keep-alive HTTP/1.1 load, over TLS (`https://`) or plain TCP
//! (`http://`): [`run`] keeps N connections busy, each sending GETs one
//! after the other for a fixed time (or until a number of requests), and
//! reports requests/s and per-request latency; [`download`] fetches one
//! large body on one connection and reports MB/s.
//!
//! Unlike [`crate::streams`] (one GET per new connection through SOCKS5),
//! the connections are opened and their TLS handshakes done before the
//! clock starts, so the numbers are the server's request path alone: what
//! a busy site sees from browsers that keep their connections.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::streams::Percentiles;

/// Most distinct error messages kept in a report; the rest are counted under
/// one "other errors" key.
const MAX_ERROR_KINDS: usize = 16;

/// An `http://` or `https://` URL: scheme, host, port, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://`.
    pub tls: bool,
    /// Host name or address as written (IPv6 without its brackets); also
    /// the TLS server name.
    pub host: String,
    /// Port (80 or 443 when the URL has none).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port]/path` or `https://…`.
    pub fn parse(url: &str) -> Result<Url, String> {
        let (tls, plain) = match url.strip_prefix("https://") {
            Some(rest) => (true, format!("http://{rest}")),
            None => (false, url.to_owned()),
        };
        let mut target = crate::http::Target::parse(&plain).map_err(|e| {
            e.replace(&plain, url)
                .replace("only http://", "only http:// and https://")
        })?;
        if tls
            && !plain
                .trim_start_matches("http://")
                .split('/')
                .next()
                .is_some_and(has_port)
        {
            target.port = 443;
        }
        Ok(Url {
            tls,
            host: target.host,
            port: target.port,
            path: target.path,
        })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
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

/// Whether an authority (`host`, `host:port`, `[v6]`, `[v6]:port`) names a port.
fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(']') {
        Some((_, after)) => after.starts_with(':'),
        None => authority.contains(':'),
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// Why a run could not start or a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The URL is unusable.
    #[error("{0}")]
    Url(String),
    /// The TLS configuration (the CA file) is unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// No address of the host accepted a connection, or a connection's
    /// handshake failed before the run.
    #[error("connect: {0}")]
    Connect(String),
    /// The download failed.
    #[error("download: {0}")]
    Download(String),
}

/// How to reach the server: its address, and TLS if the URL says so.
#[derive(Clone)]
struct Dialer {
    addr: SocketAddr,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    timeout: Duration,
}

type Sender = SendRequest<Empty<Bytes>>;

impl Dialer {
    /// Resolves the host and opens the first connection, keeping the first
    /// address where that succeeds (`localhost` may resolve to `::1` first
    /// while the server listens on 127.0.0.1).
    async fn open(
        url: &Url,
        ca: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<(Dialer, Sender), LoadError> {
        let tls = if url.tls {
            let mut config = crate::ws::tls_config(ca).map_err(LoadError::Tls)?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| LoadError::Url(format!("{}: {e}", url.host)))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| LoadError::Connect(format!("resolving {}: {e}", url.host)))?
            .collect();
        let mut last = format!("{}: no address", url.host);
        for addr in addrs {
            let dialer = Dialer {
                addr,
                tls: tls.clone(),
                timeout,
            };
            match dialer.connect().await {
                Ok(sender) => return Ok((dialer, sender)),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(LoadError::Connect(last))
    }

    /// A new connection, its handshakes done, ready for requests.
    async fn connect(&self) -> Result<Sender, String> {
        let work = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("tcp: {e}"))?;
            tcp.set_nodelay(true).map_err(|e| format!("tcp: {e}"))?;
            match &self.tls {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("tls: {e}"))?;
                    handshake(tls).await
                }
                None => handshake(tcp).await,
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| "connect: timed out".to_owned())?
    }
}

async fn handshake<S>(io: S) -> Result<Sender, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("http: {e}"))?;
    // The connection's own task ends when the sender is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Why one GET failed.
enum GetError {
    /// A whole answer, but not 200: the connection can carry the next request.
    Status(u16),
    /// Anything else: the connection is no longer usable.
    Broken(String),
}

impl GetError {
    fn message(self) -> String {
        match self {
            GetError::Status(code) => format!("http status {code}"),
            GetError::Broken(e) => e,
        }
    }
}

/// One GET on `sender`: the body's size once it has all arrived with
/// status 200, or why not.
async fn get(sender: &mut Sender, url: &Url, authority: &str) -> Result<u64, GetError> {
    let broken = |what: &str, e: &dyn std::fmt::Display| GetError::Broken(format!("{what}: {e}"));
    sender.ready().await.map_err(|e| broken("connection", &e))?;
    let request = hyper::Request::get(url.path.as_str())
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "httvps-loadgen")
        .body(Empty::<Bytes>::new())
        .map_err(|e| broken("request", &e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| broken("request", &e))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| broken("body", &e))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    if status != hyper::StatusCode::OK {
        return Err(GetError::Status(status.as_u16()));
    }
    Ok(bytes)
}

/// What [`run`] does.
#[derive(Debug, Clone)]
pub struct RequestsOptions {
    /// What every request fetches.
    pub url: Url,
    /// CA certificate (PEM) the server's certificate must chain to (`https://`).
    pub ca: Option<PathBuf>,
    /// Connections, each with one request at a time.
    pub connections: usize,
    /// How long requests are measured.
    pub duration: Duration,
    /// Requests before the measured time, not counted: the server's
    /// first requests (pools filling, caches) stay out of the numbers.
    pub warmup: Duration,
    /// Stop the measured part after this many requests, if sooner.
    pub max_requests: Option<u64>,
    /// Deadline of each connect and each request.
    pub timeout: Duration,
}

/// The JSON the `requests` command prints.
#[derive(Debug, Clone, Serialize)]
pub struct RequestsReport {
    /// The URL fetched.
    pub url: String,
    /// The address connected to.
    pub addr: SocketAddr,
    /// Connections kept open.
    pub connections: usize,
    /// Measured requests answered 200 with their whole body.
    pub completed: u64,
    /// Measured requests that failed.
    pub failed: u64,
    /// Connections opened again after one failed or was closed.
    pub reconnects: u64,
    /// Requests answered during the warm-up (not counted elsewhere).
    pub warmup_requests: u64,
    /// From the end of the warm-up to the last measured answer, seconds.
    pub seconds: f64,
    /// `completed / seconds`.
    pub requests_per_s: f64,
    /// Body bytes of the completed requests.
    pub body_bytes: u64,
    /// Per-request time from sending it to its last body byte, completed
    /// requests only; `null` when none completed.
    pub latency_ms: Option<Percentiles>,
    /// Failures by message.
    pub errors: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    failed: u64,
    reconnects: u64,
    warmup: u64,
    body_bytes: u64,
    errors: BTreeMap<String, u64>,
    last_answer: Option<Instant>,
}

impl Tally {
    fn error(&mut self, e: String) {
        self.failed += 1;
        count_error(&mut self.errors, e);
    }
}

fn count_error(errors: &mut BTreeMap<String, u64>, e: String) {
    if errors.len() < MAX_ERROR_KINDS || errors.contains_key(&e) {
        *errors.entry(e).or_default() += 1;
    } else {
        *errors.entry("other errors".into()).or_default() += 1;
    }
}

/// Opens `connections` connections (all must succeed), then has each send
/// GETs one after another: during the warm-up unrecorded, then for
/// `duration` (or until `max_requests`) recorded. A request that fails is
/// counted and its connection opened again.
pub async fn run(opts: RequestsOptions) -> Result<RequestsReport, LoadError> {
    let (dialer, first) = Dialer::open(&opts.url, opts.ca.as_deref(), opts.timeout).await?;
    let mut opening = JoinSet::new();
    for _ in 1..opts.connections {
        let dialer = dialer.clone();
        opening.spawn(async move { dialer.connect().await });
    }
    let mut senders = Vec::with_capacity(opts.connections);
    senders.push(first);
    while let Some(joined) = opening.join_next().await {
        let sender = joined
            .map_err(|e| LoadError::Connect(e.to_string()))?
            .map_err(LoadError::Connect)?;
        senders.push(sender);
    }

    let authority: Arc<str> = opts.url.authority().into();
    let url = Arc::new(opts.url.clone());
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measured_from = start + opts.warmup;
    let end = measured_from + opts.duration;
    let mut workers = JoinSet::new();
    for mut sender in senders {
        let (dialer, url, authority, issued) = (
            dialer.clone(),
            url.clone(),
            authority.clone(),
            issued.clone(),
        );
        let (max, timeout) = (opts.max_requests, opts.timeout);
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let measured = t0 >= measured_from;
                if measured
                    && let Some(max) = max
                    && issued.fetch_add(1, Ordering::Relaxed) >= max
                {
                    break;
                }
                let result = tokio::time::timeout(timeout, get(&mut sender, &url, &authority))
                    .await
                    .unwrap_or_else(|_| Err(GetError::Broken("timed out".into())));
                let t1 = Instant::now();
                match result {
                    Ok(bytes) if measured => {
                        tally.latencies_ms.push((t1 - t0).as_secs_f64() * 1e3);
                        tally.body_bytes += bytes;
                        tally.last_answer = Some(t1);
                    }
                    Ok(_) => tally.warmup += 1,
                    Err(GetError::Status(code)) => {
                        if measured {
                            tally.error(GetError::Status(code).message());
                        }
                    }
                    Err(e) => {
                        if measured {
                            tally.error(e.message());
                        }
                        // The answer may be half read: start afresh.
                        tally.reconnects += 1;
                        match dialer.connect().await {
                            Ok(s) => sender = s,
                            Err(e) => {
                                tally.error(format!("reconnect: {e}"));
                                break;
                            }
                        }
                    }
                }
            }
            tally
        });
    }
    let mut all = Tally::default();
    while let Some(joined) = workers.join_next().await {
        let tally = joined.map_err(|e| LoadError::Connect(e.to_string()))?;
        all.latencies_ms.extend(tally.latencies_ms);
        all.failed += tally.failed;
        all.reconnects += tally.reconnects;
        all.warmup += tally.warmup;
        all.body_bytes += tally.body_bytes;
        all.last_answer = all.last_answer.max(tally.last_answer);
        for (e, n) in tally.errors {
            for _ in 0..n {
                count_error(&mut all.errors, e.clone());
            }
        }
    }
    let completed = all.latencies_ms.len() as u64;
    let seconds = all.last_answer.map_or(0.0, |t| {
        t.saturating_duration_since(measured_from).as_secs_f64()
    });
    Ok(RequestsReport {
        url: opts.url.to_string(),
        addr: dialer.addr,
        connections: opts.connections,
        completed,
        failed: all.failed,
        reconnects: all.reconnects,
        warmup_requests: all.warmup,
        seconds,
        requests_per_s: if seconds > 0.0 {
            completed as f64 / seconds
        } else {
            0.0
        },
        body_bytes: all.body_bytes,
        latency_ms: Percentiles::of(&mut all.latencies_ms),
        errors: all.errors,
    })
}

/// What [`download`] fetches.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// The large file.
    pub url: Url,
    /// CA certificate (PEM) the server's certificate must chain to (`https://`).
    pub ca: Option<PathBuf>,
    /// The body must have exactly this many bytes, if given.
    pub expect_bytes: Option<u64>,
    /// Deadline of the connect, and of the whole download.
    pub timeout: Duration,
}

/// The JSON the `download` command prints.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadReport {
    /// The URL fetched.
    pub url: String,
    /// Body bytes received.
    pub bytes: u64,
    /// From sending the request (on a connection already open) to the last
    /// body byte, seconds.
    pub seconds: f64,
    /// `bytes / seconds`, MB = 10^6 bytes, as curl counts.
    pub mb_per_s: f64,
}

/// One GET of a large body on a new connection (opened before the clock
/// starts); fails unless the answer is 200 with the whole body.
pub async fn download(opts: DownloadOptions) -> Result<DownloadReport, LoadError> {
    let (_, mut sender) = Dialer::open(&opts.url, opts.ca.as_deref(), opts.timeout).await?;
    let t0 = Instant::now();
    let bytes = tokio::time::timeout(
        opts.timeout,
        get(&mut sender, &opts.url, &opts.url.authority()),
    )
    .await
    .unwrap_or_else(|_| Err(GetError::Broken("timed out".into())))
    .map_err(|e| LoadError::Download(e.message()))?;
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(want) = opts.expect_bytes
        && bytes != want
    {
        return Err(LoadError::Download(format!("got {bytes} of {want} bytes")));
    }
    Ok(DownloadReport {
        url: opts.url.to_string(),
        bytes,
        seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("https://localhost:8443/b/1k.bin").unwrap();
        assert_eq!(
            u,
            Url {
                tls: true,
                host: "localhost".into(),
                port: 8443,
                path: "/b/1k.bin".into()
            }
        );
        assert_eq!(u.authority(), "localhost:8443");
        assert_eq!(u.to_string(), "https://localhost:8443/b/1k.bin");
        let u = Url::parse("https://example.org").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.authority().as_str()),
            (443, "/", "example.org")
        );
        let u = Url::parse("https://[::1]/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 443));
        let u = Url::parse("http://127.0.0.1/x").unwrap();
        assert_eq!(
            (u.tls, u.port, u.authority().as_str()),
            (false, 80, "127.0.0.1")
        );
        for bad in ["ftp://a/", "https://", "https://a:x/", "https://u@a/"] {
            let e = Url::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
