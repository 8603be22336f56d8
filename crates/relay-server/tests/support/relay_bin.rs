//! The `relay-server` binary as the tests start it: a child process with
//! a test certificate, an HS256 secret file and every flag filled in, and
//! tokens it accepts. Shared by tests/binary.rs and tests/data_plane.rs.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use testkit::{GatewayProcess, TestCert};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::control::{Control, WAIT};

/// The HS256 secret in the relay's secret file.
pub const SECRET: &str = "binary-test-secret-of-at-least-32-bytes";
pub const AUDIENCE: &str = "relay-binary-test";
pub const NETWORK: &str = "10.77.0.0/24";
pub const PUBLIC_HOST: &str = "relay.test";
pub const FIRST_PORT: u16 = 41_000;
pub const LAST_PORT: u16 = 41_099;

pub fn relay_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_relay-server"))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

/// A token the relay accepts, for `sub`.
pub fn token(sub: &str) -> String {
    hs256(
        &json!({"sub": sub, "exp": now() + 3600, "aud": AUDIENCE}),
        SECRET.as_bytes(),
    )
}

/// A relay-server child process, its certificate and its files.
pub struct RelayBin {
    pub process: GatewayProcess,
    pub cert: TestCert,
    /// The certificate, key and secret files, removed on drop.
    _dir: tempfile::TempDir,
}

impl RelayBin {
    /// Starts the binary at RUST_LOG=info with `extra` flags; the fixture's
    /// defaults fill in every flag `extra` leaves out.
    pub async fn start(extra: &[&str]) -> RelayBin {
        RelayBin::start_logging(extra, "info").await
    }

    pub async fn start_logging(extra: &[&str], rust_log: &str) -> RelayBin {
        let dir = tempfile::tempdir().unwrap();
        let cert = TestCert::generate(&["localhost"]);
        let args = base_args(dir.path(), &cert, extra);
        let process = GatewayProcess::spawn(relay_bin(), &args, &[("RUST_LOG", rust_log)])
            .await
            .expect("relay-server starts and logs `listening`");
        RelayBin {
            process,
            cert,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// A control connection past the relay's `hello`.
    pub async fn open(&self) -> Control {
        Control::open(self.addr(), &self.cert).await
    }

    /// A control connection signed in as `sub`.
    pub async fn signed_in(&self, sub: &str) -> Control {
        let mut control = self.open().await;
        control.sign_in(&token(sub)).await;
        control
    }

    /// The `wireguard listening` line's details.
    pub async fn wireguard(&self) -> Value {
        let line = self
            .process
            .wait_for_log("wireguard listening", WAIT)
            .await
            .unwrap();
        serde_json::from_str::<Value>(&line).unwrap()["details"].clone()
    }

    /// Every log line, once the process has logged `stopped` (its last).
    pub async fn logs_until_stopped(&self) -> Vec<String> {
        self.process
            .wait_for_log(r#""event":"stopped""#, WAIT)
            .await
            .unwrap();
        self.process.logs()
    }
}

/// Writes the certificate, key and JWT secret into `dir` and returns the
/// flags: the fixture's, except those `extra` gives itself.
pub fn base_args(dir: &Path, cert: &TestCert, extra: &[&str]) -> Vec<String> {
    let (cert_path, key_path) = cert.write_to(dir);
    let secret = dir.join("jwt.secret");
    // A trailing newline, as `echo` writes it, is not part of the secret.
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let ports = format!("{FIRST_PORT}-{LAST_PORT}");
    let defaults: [(&str, String); 13] = [
        ("--listen", "127.0.0.1:0".into()),
        ("--cert", path(&cert_path)),
        ("--key", path(&key_path)),
        ("--wg-listen", "127.0.0.1:0".into()),
        ("--public-host", PUBLIC_HOST.into()),
        ("--forward-ports", ports),
        ("--forward-bind", "127.0.0.1".into()),
        ("--network", NETWORK.into()),
        ("--jwt-secret-file", path(&secret)),
        ("--jwt-audience", AUDIENCE.into()),
        // Every test signs in from 127.0.0.1 several times; only the rate
        // limit tests keep the seed's small quotas.
        ("--auth-per-minute", "1000".into()),
        ("--tunnels-per-hour", "1000".into()),
        ("--detach-grace", "120s".into()),
    ];
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    for (flag, value) in defaults {
        let replaced = extra.contains(&flag)
            || (flag == "--jwt-secret-file" && extra.contains(&"--jwt-public-key"));
        if !replaced {
            args.push(flag.to_owned());
            args.push(value);
        }
    }
    args
}

pub fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// `GET path` over plain HTTP/1.1; the status line and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("the metrics answer in time")
        .unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

pub async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    body
}

/// The value of one series (`name{labels}` as rendered), if present.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.trim().parse().unwrap())
    })
}
