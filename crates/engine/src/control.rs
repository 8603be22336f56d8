//! A local control endpoint, so `httvps status` and `httvps streams` can read
//! the live table of a running instance.
//!
//! HTTP on 127.0.0.1 (random port), answering `GET /v1/snapshot` with the
//! engine's [`crate::Snapshot`] as JSON, and `POST /v1/streams/KEY/close`
//! by closing that row's connection ([`Engine::close_stream`]: 200 with the
//! row, 404 when it is not open). Every request must carry
//! `Authorization: Bearer TOKEN`; the address and the random token are written
//! to a file only this user can read (mode 0600, in a directory created 0700
//! under the user's runtime or state directory, never a shared temporary
//! directory), which is what authenticates a caller: whoever can read the file
//! may read the table.

use std::fmt;
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

/// What the control file holds. `Debug` leaves the token out.
#[derive(Clone, Serialize, Deserialize)]
pub struct ControlInfo {
    /// The endpoint's address.
    pub addr: SocketAddr,
    /// The bearer token.
    pub token: String,
    /// The serving process, for humans.
    pub pid: u32,
}

impl fmt::Debug for ControlInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlInfo")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .field("pid", &self.pid)
            .finish()
    }
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
    /// The instance has no open row with that key (`close_stream`).
    #[error("connection {0} is not open (it has ended already)")]
    StreamGone(u64),
}

/// The default control file, always in a directory of this user's own:
/// `$XDG_RUNTIME_DIR/httvps/control.json` when there is a runtime directory,
/// else the state directory (`$XDG_STATE_HOME/httvps`, by default
/// `~/.local/state/httvps`; the local data directory on macOS and Windows).
/// Never a shared temporary directory: a process with no home directory at
/// all gets `httvps-control.json` in its working directory and should pass
/// `--control-file`.
pub fn default_control_file() -> PathBuf {
    let dirs = directories::ProjectDirs::from("", "", "httvps");
    let dir = dirs.as_ref().and_then(|d| {
        d.runtime_dir()
            .or_else(|| d.state_dir())
            .map(Path::to_path_buf)
            .or_else(|| Some(d.data_local_dir().to_path_buf()))
    });
    match dir {
        Some(dir) => dir.join("control.json"),
        None => PathBuf::from("httvps-control.json"),
    }
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
        ("POST", path) => match close_path(path) {
            Some(key) => match engine.close_stream(key) {
                Ok(row) => reply(
                    StatusCode::OK,
                    serde_json::to_vec(&row).expect("row serializes"),
                ),
                Err(_) => reply(
                    StatusCode::NOT_FOUND,
                    br#"{"error":"stream not open"}"#.to_vec(),
                ),
            },
            None => reply(StatusCode::NOT_FOUND, br#"{"error":"not found"}"#.to_vec()),
        },
        _ => reply(StatusCode::NOT_FOUND, br#"{"error":"not found"}"#.to_vec()),
    }
}

/// The row key of `/v1/streams/KEY/close`.
fn close_path(path: &str) -> Option<u64> {
    path.strip_prefix("/v1/streams/")?
        .strip_suffix("/close")?
        .parse()
        .ok()
}

/// Writes `bytes` to `path`, readable by this user only: the file is created
/// 0600 (a file left there is removed first, so no older mode survives) and
/// the directories it needs are created 0700.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ControlError> {
    use std::io::Write;
    let io = |e: std::io::Error| ControlError::Io(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io)?;
    }
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    // create_new: never follows a symlink planted at the path.
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
    match request(file, hyper::Method::GET, "/v1/snapshot").await? {
        (status, body) if status.is_success() => serde_json::from_slice(&body)
            .map_err(|e| ControlError::Io(format!("bad snapshot: {e}"))),
        (status, _) => Err(ControlError::Io(format!(
            "control endpoint answered {status}"
        ))),
    }
}

/// Closes row `key` of the instance that wrote `file` and returns the row
/// as it was when asked.
pub async fn close_stream(file: &Path, key: u64) -> Result<serde_json::Value, ControlError> {
    match request(
        file,
        hyper::Method::POST,
        &format!("/v1/streams/{key}/close"),
    )
    .await?
    {
        (status, body) if status.is_success() => {
            serde_json::from_slice(&body).map_err(|e| ControlError::Io(format!("bad row: {e}")))
        }
        (StatusCode::NOT_FOUND, _) => Err(ControlError::StreamGone(key)),
        (status, _) => Err(ControlError::Io(format!(
            "control endpoint answered {status}"
        ))),
    }
}

/// One authenticated request to the instance that wrote `file`: the status
/// and the body.
async fn request(
    file: &Path,
    method: hyper::Method,
    path: &str,
) -> Result<(StatusCode, Bytes), ControlError> {
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
    let request = Request::builder()
        .method(method)
        .uri(path)
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
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_the_token_out() {
        let info = ControlInfo {
            addr: "127.0.0.1:4242".parse().unwrap(),
            token: "f00dfeedcafe1234".into(),
            pid: 7,
        };
        let shown = format!("{info:?} {info:#?}");
        assert!(!shown.contains("f00dfeedcafe1234"), "{shown}");
        assert!(shown.contains("127.0.0.1:4242") && shown.contains("<redacted>"));
    }

    /// Runs this test binary again with `envs` (and without the XDG and
    /// temp-dir variables) and returns the `default_control_file()` it
    /// printed: the environment of this process stays untouched.
    fn default_path_with(envs: &[(&str, &Path)]) -> PathBuf {
        const CHILD: &str = "HTTVPS_CONTROL_PATH_CHILD";
        let exe = std::env::current_exe().unwrap();
        let mut cmd = std::process::Command::new(exe);
        // libtest names tests by module path without the crate.
        let name = module_path!().split_once("::").unwrap().1;
        cmd.args([
            &format!("{name}::print_default_control_file"),
            "--exact",
            "--nocapture",
        ]);
        for var in [
            "XDG_RUNTIME_DIR",
            "XDG_STATE_HOME",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
            "XDG_CONFIG_HOME",
            "TMPDIR",
        ] {
            cmd.env_remove(var);
        }
        cmd.env(CHILD, "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("control-file="))
            .unwrap_or_else(|| panic!("no path printed: {stdout}"));
        PathBuf::from(line)
    }

    /// Helper of [`default_path_with`]: prints the default path when run as its child.
    #[test]
    fn print_default_control_file() {
        if std::env::var_os("HTTVPS_CONTROL_PATH_CHILD").is_some() {
            println!("control-file={}", default_control_file().display());
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn default_path_is_per_user_never_shared_temp() {
        // A throw-away HOME outside /tmp; nothing is written there.
        let home = Path::new("/nonexistent-httvps-test-home");
        let temp = tempfile::tempdir().unwrap();
        // No runtime directory: the state directory under HOME.
        let path = default_path_with(&[("HOME", home), ("TMPDIR", temp.path())]);
        assert_eq!(path, home.join(".local/state/httvps/control.json"));
        assert!(!path.starts_with("/tmp") && !path.starts_with(temp.path()));
        assert!(
            !path.starts_with(std::env::temp_dir()),
            "{}",
            path.display()
        );
        // With one: $XDG_RUNTIME_DIR/httvps.
        let run = tempfile::tempdir().unwrap();
        let path = default_path_with(&[("HOME", home), ("XDG_RUNTIME_DIR", run.path())]);
        assert_eq!(path, run.path().join("httvps/control.json"));
    }

    #[cfg(unix)]
    #[test]
    fn private_file_in_private_directories() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("run/httvps/control.json");
        write_private(&file, b"{}").unwrap();
        assert_eq!(mode(&root.path().join("run")), 0o700);
        assert_eq!(mode(&root.path().join("run/httvps")), 0o700);
        assert_eq!(mode(&file), 0o600);
        // A file already there with a loose mode is replaced, not reused.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"{\"a\":1}").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"a\":1}");
        // A symlink planted at the path is removed, never followed.
        let target = root.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&target, &file).unwrap();
        write_private(&file, b"{}").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&file).unwrap().is_symlink());
    }

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
