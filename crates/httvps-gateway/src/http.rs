//! TLS, HTTP/1.1, the WebSocket upgrade and the decoy website.
//!
//! A prober that is not a client in the know should see a small, dull
//! website served like any static web server: GET and HEAD, ranges,
//! `ETag`/`Last-Modified` validators, nginx's 404 and 405 pages (see
//! [`Site`]). Only a well-formed WebSocket upgrade on the configured path
//! reaches the tunnel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use headers::{ETag, HeaderMapExt, IfNoneMatch, IfRange, LastModified};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use percent_encoding::percent_decode_str;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tower_http::services::ServeFile;
use tracing::debug;

use crate::config::SiteSource;
use crate::{GatewayError, Shared, driver};

/// The body of every response: a page, a file, or nothing.
type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Extra room over the frame limit for tungstenite's own accounting, so that
/// a message just over the limit still reaches our decoder, which answers it
/// with a `bad_frame` error rather than a bare capacity failure.
const WS_SLACK: usize = 16 * 1024;

/// Most bytes tungstenite asks TLS for per read. tungstenite zero-fills this
/// much before every read attempt, even one that finds nothing; its default
/// of 128 KiB cost ~0.8 MB of memset per short stream (88% of the gateway's
/// instructions for a 1 KiB fetch). One TLS record (16 KiB) is the most a
/// read yields anyway.
const WS_READ_BUFFER: usize = 16 * 1024;

/// The WebSocket settings of a session: message and frame size capped near
/// the frame limit; no extensions (no permessage-deflate) are negotiated.
pub fn ws_config(max_frame_len: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max_frame_len + WS_SLACK))
        .max_frame_size(Some(max_frame_len + WS_SLACK))
}

/// Runs one accepted TCP connection: TLS, then HTTP until it ends or upgrades.
pub async fn serve_connection(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let handshake = shared.config.timeouts.handshake;
    let accepted = tokio::select! {
        r = tokio::time::timeout(handshake, shared.tls.accept(tcp)) => r,
        _ = shared.shutdown.cancelled() => return,
    };
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let svc_shared = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, Infallible>(route(req, shared, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake)
        .serve_connection(TokioIo::new(tls), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "HTTP connection ended with an error") },
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(shared.config.timeouts.close, conn).await;
        }
    }
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>, peer: SocketAddr) -> Response<Body> {
    if req.uri().path() == shared.config.ws_path && wants_websocket(req.headers()) {
        return upgrade(req, shared, peer);
    }
    shared.site.respond(req).await
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// The extension token under which clients send unmasked frames (the
/// client's `upgrade` module explains why).
pub const UNMASKED_EXTENSION: &str = "x-httvps-unmasked";

/// Whether `Sec-WebSocket-Extensions` offers `name` (parameters ignored).
fn extension_offered(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            e.split(';')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
}

fn upgrade(req: Request<Incoming>, shared: Arc<Shared>, peer: SocketAddr) -> Response<Body> {
    let headers = req.headers();
    // RFC 6455 §4.2.1: GET, version 13, and a key of 16 base64-encoded bytes.
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| k.len() == 24)
        .map(|k| derive_accept_key(k.as_bytes()));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(accept) = key.filter(|_| req.method() == Method::GET) else {
        return plain(StatusCode::BAD_REQUEST, "Bad Request");
    };
    if !version_ok {
        let mut resp = plain(StatusCode::UPGRADE_REQUIRED, "Upgrade Required");
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    // Choice: over the session limit (or while shutting down) the upgrade is
    // refused with 503 before any WebSocket exists.
    let permit = match shared.sessions.clone().try_acquire_owned() {
        Ok(p) if !shared.shutdown.is_cancelled() => p,
        _ => {
            let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    // Unmasked client frames (the client's `x-httvps-unmasked` extension):
    // inside TLS masking protects nothing and costs a pass over every byte.
    let unmasked =
        shared.config.unmasked_frames && extension_offered(req.headers(), UNMASKED_EXTENSION);
    let on_upgrade = hyper::upgrade::on(req);
    let ws_shared = shared.clone();
    shared.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let cfg = ws_config(ws_shared.config.limits.max_frame_len)
                    .accept_unmasked_frames(unmasked);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(cfg),
                )
                .await;
                driver::run_session(ws, ws_shared, peer).await;
            }
            Err(e) => debug!(%peer, error = %e, "upgrade failed"),
        }
        drop(permit);
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    if unmasked {
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(UNMASKED_EXTENSION),
        );
    }
    resp
}

/// The `Server` header of every decoy response.
const SERVER: &str = "nginx";

/// The page a gateway without `--site-dir` serves at `/`.
const BUILT_IN_PAGE: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>Welcome</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto;color:#333}</style>
</head>
<body>
<h1>Welcome</h1>
<p>This site is under construction. Please check back later.</p>
</body>
</html>
";

/// Largest file the decoy site serves; a larger one is answered 404.
const MAX_SITE_FILE: u64 = 8 * 1024 * 1024;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// An error page in nginx's words.
fn plain(status: StatusCode, title: &str) -> Response<Body> {
    let body = format!(
        "<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {title}</h1></center>\r\n<hr><center>{SERVER}</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static(SERVER));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

/// The decoy website: static files under one root, served the way a common
/// web server serves them.
///
/// `tower-http`'s [`ServeFile`] does the serving proper: GET and HEAD,
/// `Content-Type` from the extension, `Last-Modified` and
/// `If-Modified-Since`, single `Range` requests (206, or 416 with
/// `Content-Range`), streamed bodies. Around it this type adds what that
/// crate leaves out: mapping the URL into the root so that nothing outside it
/// is reachable (no `..`, no hidden files, no symlink that leads out, nothing
/// over [`MAX_SITE_FILE`]), a `/dir` → `/dir/` redirect and `index.html` for
/// directories, and an nginx-style `ETag` with `If-None-Match` and `If-Range`
/// (parsed and compared by the `headers` crate). `ServeDir` would map the
/// URL itself, but it follows symlinks wherever they lead and serves files
/// of any size; so the mapping is ours, and `ServeFile` serves exactly the
/// file that was checked.
///
/// The built-in page is one such file in a private temporary directory
/// (under `$TMPDIR`), so it gets the same headers, its `Last-Modified` being
/// the moment the gateway started. The directory goes when the gateway does;
/// a process killed outright leaves it to the system's temp cleaner.
pub struct Site(Root);

enum Root {
    /// `--site-dir`, canonical.
    Dir(PathBuf),
    /// The built-in page's directory.
    BuiltIn(Mutex<BuiltIn>),
}

/// A private temporary directory (mode 0700, removed on drop) holding the
/// built-in page as `index.html`.
struct BuiltIn {
    _dir: tempfile::TempDir,
    /// The directory's canonical path.
    root: PathBuf,
}

impl BuiltIn {
    fn write() -> Result<BuiltIn, GatewayError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("httvps-site-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = builder.tempdir().map_err(|source| GatewayError::Site {
            path: std::env::temp_dir(),
            source,
        })?;
        let page = dir.path().join("index.html");
        std::fs::write(&page, BUILT_IN_PAGE)
            .map_err(|source| GatewayError::Site { path: page, source })?;
        let root = std::fs::canonicalize(dir.path()).map_err(|source| GatewayError::Site {
            path: dir.path().to_owned(),
            source,
        })?;
        Ok(BuiltIn { _dir: dir, root })
    }
}

/// Where a URL path leads inside the site.
#[derive(Debug)]
enum Target {
    /// A servable file.
    File(PathBuf, std::fs::Metadata),
    /// A directory named without its trailing slash.
    AddSlash,
    /// Nothing that may be served.
    Missing,
}

impl Site {
    /// A site from the configuration: checks the directory, or writes the
    /// built-in page to a fresh private directory.
    pub fn new(source: &SiteSource) -> Result<Self, GatewayError> {
        Ok(Site(match source {
            SiteSource::BuiltIn => Root::BuiltIn(Mutex::new(BuiltIn::write()?)),
            SiteSource::Dir(dir) => {
                let site_error = |source| GatewayError::Site {
                    path: dir.clone(),
                    source,
                };
                let root = std::fs::canonicalize(dir).map_err(site_error)?;
                if !root.is_dir() {
                    return Err(site_error(std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "not a directory",
                    )));
                }
                Root::Dir(root)
            }
        }))
    }

    /// Answers one request for a path other than the WebSocket's.
    pub async fn respond<B>(&self, req: Request<B>) -> Response<Body> {
        let (parts, _body) = req.into_parts();
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Not Allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let (path, meta) = match self.resolve(parts.uri.path()).await {
            Target::File(path, meta) => (path, meta),
            Target::AddSlash => return redirect_with_slash(&parts.uri),
            Target::Missing => return plain(StatusCode::NOT_FOUND, "Not Found"),
        };
        let last_modified = meta.modified().ok().map(LastModified::from);
        let etag = entity_tag(&meta);
        let mut headers = parts.headers;
        // RFC 9110 §13.2.2: If-None-Match first; when present, If-Modified-Since is ignored.
        if let Some(if_none_match) = headers.typed_get::<IfNoneMatch>() {
            if !if_none_match.precondition_passes(&etag) {
                let mut resp = Response::new(empty());
                *resp.status_mut() = StatusCode::NOT_MODIFIED;
                return finish(resp, &etag, last_modified);
            }
            headers.remove(header::IF_MODIFIED_SINCE);
        }
        // A range of a version the client no longer has would splice two versions.
        if headers
            .typed_get::<IfRange>()
            .is_some_and(|r| r.is_modified(Some(&etag), last_modified.as_ref()))
        {
            headers.remove(header::RANGE);
        }
        let mut inner = Request::new(Empty::<Bytes>::new());
        *inner.method_mut() = parts.method;
        *inner.headers_mut() = headers;
        match ServeFile::new(&path).try_call(inner).await {
            Ok(resp) => {
                let resp = resp.map(BodyExt::boxed_unsync);
                if resp.status().is_client_error() || resp.status().is_server_error() {
                    // The crate's error bodies are empty; a web server's are not.
                    let mut page = plain(
                        resp.status(),
                        resp.status().canonical_reason().unwrap_or("Error"),
                    );
                    if let Some(range) = resp.headers().get(header::CONTENT_RANGE) {
                        page.headers_mut()
                            .insert(header::CONTENT_RANGE, range.clone());
                    }
                    return page;
                }
                finish(resp, &etag, last_modified)
            }
            Err(e) => {
                debug!(path = %path.display(), error = %e, "decoy file unreadable");
                plain(StatusCode::NOT_FOUND, "Not Found")
            }
        }
    }

    /// The site's root. The built-in page is written anew, to a fresh
    /// private directory, if something removed it (a `/tmp` cleaner after
    /// days without a visitor); never again to the old path, which another
    /// user could have taken meanwhile.
    async fn root(&self) -> PathBuf {
        let cell = match &self.0 {
            Root::Dir(root) => return root.clone(),
            Root::BuiltIn(cell) => cell,
        };
        let lock = || cell.lock().unwrap_or_else(|p| p.into_inner());
        let current = lock().root.clone();
        if tokio::fs::metadata(current.join("index.html"))
            .await
            .is_ok()
        {
            return current;
        }
        let mut built_in = lock();
        if built_in.root == current {
            match BuiltIn::write() {
                Ok(fresh) => *built_in = fresh,
                Err(e) => debug!(error = %e, "cannot write the built-in page again"),
            }
        }
        built_in.root.clone()
    }

    /// Maps a URL path into the root. Refuses anything that could leave it:
    /// `..`, absolute parts, hidden files, and symlinks whose target lies
    /// outside the root or is hidden.
    async fn resolve(&self, url_path: &str) -> Target {
        let root = self.root().await;
        let Some(rel) = url_path.strip_prefix('/') else {
            return Target::Missing;
        };
        let Ok(rel) = percent_decode_str(rel).decode_utf8() else {
            return Target::Missing;
        };
        let mut path = root.clone();
        for comp in Path::new(&*rel).components() {
            match comp {
                Component::Normal(part) if !part.as_encoded_bytes().starts_with(b".") => {
                    path.push(part)
                }
                Component::CurDir => {}
                _ => return Target::Missing,
            }
        }
        let Some((path, meta)) = inside(&root, &path).await else {
            return Target::Missing;
        };
        let (path, meta) = if meta.is_dir() {
            if !url_path.ends_with('/') {
                return Target::AddSlash;
            }
            match inside(&root, &path.join("index.html")).await {
                Some(found) => found,
                None => return Target::Missing,
            }
        } else {
            (path, meta)
        };
        if meta.is_file() && meta.len() <= MAX_SITE_FILE {
            Target::File(path, meta)
        } else {
            Target::Missing
        }
    }
}

/// The canonical form of `path` and its metadata, if it lies under `root`
/// and no part of it below `root` is hidden.
async fn inside(root: &Path, path: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let real = tokio::fs::canonicalize(path).await.ok()?;
    let below = real.strip_prefix(root).ok()?;
    let visible = below.components().all(
        |c| matches!(c, Component::Normal(part) if !part.as_encoded_bytes().starts_with(b".")),
    );
    if !visible {
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    Some((real, meta))
}

/// nginx's entity tag: modification time (seconds) and length, in hex.
fn entity_tag(meta: &std::fs::Metadata) -> ETag {
    let secs = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!("\"{secs:x}-{:x}\"", meta.len())
        .parse()
        .expect("a quoted hex pair is a valid entity tag")
}

/// Adds the validators and the `Server` header to a file's response.
fn finish(
    mut resp: Response<Body>,
    etag: &ETag,
    last_modified: Option<LastModified>,
) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static(SERVER));
    h.typed_insert(etag.clone());
    if let Some(lm) = last_modified {
        h.typed_insert(lm);
    }
    resp
}

/// `301` to the same path with a trailing slash, as a web server answers a
/// directory named without one.
fn redirect_with_slash(uri: &http::Uri) -> Response<Body> {
    let location = match uri.query() {
        Some(q) => format!("{}/?{q}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    let mut resp = plain(StatusCode::MOVED_PERMANENTLY, "Moved Permanently");
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(files: &[(&str, &str)]) -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let site = Site::new(&SiteSource::Dir(dir.path().to_owned())).unwrap();
        (dir, site)
    }

    fn served(target: Target) -> Option<String> {
        match target {
            Target::File(path, _) => Some(std::fs::read_to_string(path).unwrap()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn site_paths_stay_inside() {
        let (dir, site) = site(&[
            ("index.html", "root"),
            ("a/b.css", "css"),
            ("a/index.html", "a"),
            ("sp ace.txt", "space"),
            (".git/config", "secret"),
            ("big.bin", ""),
        ]);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("big.bin"))
            .unwrap()
            .set_len(MAX_SITE_FILE + 1)
            .unwrap();
        assert_eq!(served(site.resolve("/").await).as_deref(), Some("root"));
        assert_eq!(
            served(site.resolve("/a/b.css").await).as_deref(),
            Some("css")
        );
        assert_eq!(served(site.resolve("/a/").await).as_deref(), Some("a"));
        assert_eq!(
            served(site.resolve("/./a/./b.css").await).as_deref(),
            Some("css")
        );
        assert_eq!(
            served(site.resolve("/sp%20ace.txt").await).as_deref(),
            Some("space")
        );
        assert!(matches!(site.resolve("/a").await, Target::AddSlash));
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/a/../b.css",
            "/%2e%2e/x",
            "/a%2f..%2f..%2fx",
            "/.git/config",
            "/%2egit/config",
            "/big.bin",
            "/nope",
            "/%ff",
            "/a%00",
            "x",
        ] {
            assert!(matches!(site.resolve(bad).await, Target::Missing), "{bad}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_may_not_lead_out_or_to_hidden_files() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        let (dir, site) = site(&[("page.html", "inside"), (".env", "hidden")]);
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap()
        };
        link(&outside.path().join("secret"), "out-file");
        link(outside.path(), "out-dir");
        link(&dir.path().join(".env"), "env");
        link(&dir.path().join("page.html"), "alias.html");
        assert_eq!(
            served(site.resolve("/alias.html").await).as_deref(),
            Some("inside")
        );
        for bad in ["/out-file", "/out-dir/secret", "/out-dir/", "/env"] {
            assert!(matches!(site.resolve(bad).await, Target::Missing), "{bad}");
        }
    }

    #[tokio::test]
    async fn built_in_page_lives_in_a_private_dir_and_comes_back() {
        let site = Site::new(&SiteSource::BuiltIn).unwrap();
        let dir = site.root().await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        assert_eq!(
            served(site.resolve("/").await).as_deref(),
            Some(BUILT_IN_PAGE)
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            served(site.resolve("/index.html").await).as_deref(),
            Some(BUILT_IN_PAGE)
        );
        let fresh = site.root().await;
        assert_ne!(fresh, dir, "the page comes back in a new directory");
        assert!(!dir.exists());
        drop(site);
        assert!(!fresh.exists());
    }

    #[test]
    fn entity_tags_look_like_nginx() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 300]).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let secs = meta
            .modified()
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut h = HeaderMap::new();
        h.typed_insert(entity_tag(&meta));
        assert_eq!(h[header::ETAG], format!("\"{secs:x}-12c\"").as_str());
    }

    #[test]
    fn upgrade_detection_is_token_based() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(wants_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!wants_websocket(&h));
    }
}
