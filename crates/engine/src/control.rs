//! A local control endpoint, so `httvps status` and `httvps streams` can read
//! the live table of a running instance.
//!
//! HTTP on 127.0.0.1 (random port), answering `GET /v1/snapshot` with the
//! engine's [`crate::Snapshot`] as JSON. Every request must carry
//! `Authorization: Bearer TOKEN`; the address and the random token are written
//! to a file only this user can read (mode 0600), which is what authenticates
//! a caller: whoever can read the file may read the table.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;

/// What the control file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlInfo {
    /// The endpoint's address.
    pub addr: SocketAddr,
    /// The bearer token.
    pub token: String,
    /// The serving process, for humans.
    pub pid: u32,
}

/// The control endpoint could not start or answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Reading or writing the control file, or the socket, failed.
    #[error("{0}")]
    Io(String),
    /// No running instance (no control file, or nothing answers).
    #[error("no running httvps instance found ({0})")]
    NotRunning(String),
}

/// The default control file: in the user's runtime directory when there is
/// one (`$XDG_RUNTIME_DIR/httvps/control.json`), else the cache directory.
pub fn default_control_file() -> PathBuf {
    let dirs = directories::ProjectDirs::from("", "", "httvps");
    let dir = dirs
        .as_ref()
        .and_then(|d| d.runtime_dir().map(Path::to_path_buf))
        .or_else(|| dirs.as_ref().map(|d| d.cache_dir().to_path_buf()))
        .unwrap_or_else(std::env::temp_dir);
    dir.join("control.json")
}

/// A running control endpoint; stops and removes its file when dropped.
pub struct ControlServer {
    info: ControlInfo,
    file: PathBuf,
    cancel: CancellationToken,
}

impl ControlServer {
    /// Serves `engine`'s snapshot and writes the control file at `file`.
    pub async fn start(engine: Engine, file: &Path) -> Result<ControlServer, ControlError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| ControlError::Io(format!("cannot listen for control requests: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ControlError::Io(e.to_string()))?;
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let info = ControlInfo {
            addr,
            token: token.clone(),
            pid: std::process::id(),
        };
        write_private(
            file,
            &serde_json::to_vec_pretty(&info).expect("plain struct serializes"),
        )?;

        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let (engine, token) = (engine.clone(), token.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let response = answer(&engine, &token, &req);
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(ControlServer {
            info,
            file: file.to_path_buf(),
            cancel,
        })
    }

    /// Address and token.
    pub fn info(&self) -> &ControlInfo {
        &self.info
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn answer(
    engine: &Engine,
    token: &str,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        // Compared in constant time: timing must not tell how much of a guess matched.
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())));
    if !authorized {
        return reply(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"unauthorized"}"#.to_vec(),
        );
    }
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/v1/snapshot") => reply(
            StatusCode::OK,
            serde_json::to_vec(&engine.snapshot()).expect("snapshot serializes"),
        ),
        _ => reply(StatusCode::NOT_FOUND, br#"{"error":"not found"}"#.to_vec()),
    }
}

/// Writes `bytes` to `path`, readable by this user only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ControlError> {
    use std::io::Write;
    let io = |e: std::io::Error| ControlError::Io(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)
}

/// Reads the snapshot of the instance that wrote `file`.
pub async fn fetch_snapshot(file: &Path) -> Result<serde_json::Value, ControlError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ControlError::NotRunning(format!("cannot read {}: {e}", file.display())))?;
    let info: ControlInfo = serde_json::from_str(&text)
        .map_err(|e| ControlError::Io(format!("bad control file {}: {e}", file.display())))?;
    let stream = tokio::net::TcpStream::connect(info.addr)
        .await
        .map_err(|e| {
            ControlError::NotRunning(format!(
                "process {} does not answer on {}: {e}",
                info.pid, info.addr
            ))
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ControlError::Io(e.to_string()))?;
    tokio::spawn(conn);
    let request = Request::get("/v1/snapshot")
        .header("host", info.addr.to_string())
        .header("authorization", format!("Bearer {}", info.token))
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("static request parts are valid");
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ControlError::Io(e.to_string()))?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|e| ControlError::Io(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(ControlError::Io(format!(
            "control endpoint answered {status}"
        )));
    }
    serde_json::from_slice(&body).map_err(|e| ControlError::Io(format!("bad snapshot: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_snapshot_to_token_holders_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("control.json");
        let engine = Engine::new();
        let server = ControlServer::start(engine, &file).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let snapshot = fetch_snapshot(&file).await.unwrap();
        assert_eq!(snapshot["state"]["state"], "disconnected");

        // Without the token: 401.
        let stream = tokio::net::TcpStream::connect(server.info().addr)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let token = &server.info().token;
        let near_misses = [
            "wrong".to_owned(),
            token[..token.len() - 1].to_owned(),
            format!("{token}0"),
            token.to_uppercase(),
        ];
        for guess in near_misses {
            let request = Request::get("/v1/snapshot")
                .header("authorization", format!("Bearer {guess}"))
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            assert_eq!(
                sender.send_request(request).await.unwrap().status(),
                401,
                "{guess}"
            );
        }

        drop(server);
        assert!(!file.exists());
        assert!(matches!(
            fetch_snapshot(&file).await,
            Err(ControlError::NotRunning(_))
        ));
    }
}
