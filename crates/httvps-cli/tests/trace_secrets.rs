//! Secrets never reach a log, even at `RUST_LOG=trace`: the real gateway
//! and the real `httvps` client (and `ht-server` with `httvps connect --ht`)
//! both run at TRACE while a request goes through the tunnel, and neither
//! process's log holds the session token (or the HT key), nor the bytes the
//! user sent. The WebSocket library prints every frame with its payload at
//! TRACE (the hello carries the token): `net::log_filter` caps it at DEBUG.

mod cli;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cli::{HTTVPS, gateway_bin, sibling_bin};
use serde_json::Value;
use testkit::{GatewayProcess, HttpServer, TestCert, TestGateway};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;

const TOKEN: &str = "trace-secrets-token-7f3a9c2e5b1d";
/// Sent in the request body: the user's traffic stays out of the logs too.
const BODY_MARKER: &str = "trace-secrets-body-4c8e1a6f";

/// A running `httvps … --json` with RUST_LOG=trace: its JSON events
/// (stdout) and its log (stderr) collected.
struct TracedClient {
    child: Child,
    events: watch::Receiver<Vec<Value>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: tokio::task::JoinHandle<()>,
    _home: tempfile::TempDir,
}

impl TracedClient {
    async fn start(args: &[&str], envs: &[(&str, &str)]) -> TracedClient {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(HTTVPS)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--json"])
            .env("HTTVPS_CONFIG", home.path().join("profiles.toml"))
            .env("HTTVPS_CONTROL_FILE", home.path().join("control.json"))
            .env_remove("HTTVPS_SESSION_TOKEN")
            .env_remove("HTTVPS_DEVICE_TOKEN")
            .env_remove("HTTVPS_HT_KEY")
            .env("RUST_LOG", "trace")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start httvps");
        let (tx, events) = watch::channel(Vec::new());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let value: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
                tx.send_modify(|all| all.push(value));
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        let stderr_done = tokio::spawn(async move {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        TracedClient {
            child,
            events,
            stderr,
            stderr_done,
            _home: home,
        }
    }

    /// The first event matching `pred`, waiting up to 20 s for it.
    async fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut events = self.events.clone();
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            events
                .wait_for(|all| all.iter().any(&pred))
                .await
                .map(|all| all.iter().find(|v| pred(v)).cloned())
        })
        .await;
        match found {
            Ok(Ok(Some(event))) => event,
            _ => panic!(
                "no {what} event; events: {:?}\nlog tail:\n{}",
                self.events.borrow(),
                tail(&self.log(), 40)
            ),
        }
    }

    /// Waits for the session to be active; the local proxy's address.
    async fn proxy_when_active(&self) -> String {
        self.wait_event("active state", |v| {
            v["type"] == "state" && v["data"]["state"] == "active"
        })
        .await;
        let listening = self
            .wait_event("listening", |v| v["type"] == "listening")
            .await;
        listening["data"]["proxy"].as_str().unwrap().to_owned()
    }

    /// Stops the client (SIGTERM, so that it also logs its goodbye) and
    /// returns its whole log, ANSI colours removed.
    async fn stop(mut self) -> String {
        if let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) has no memory-safety preconditions; the child
            // has not been reaped (`id()` is Some).
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.stderr_done).await;
        self.log()
    }

    fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(&self.stderr.lock().unwrap()))
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters… final byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Uploads a body holding [`BODY_MARKER`] to `http`'s `/upload` through the
/// HTTP proxy at `proxy` (a raw socket) and checks the answer: the request
/// went through the tunnel.
async fn upload_through(proxy: &str, http: &HttpServer) {
    let body = format!("{{\"note\":\"{BODY_MARKER}\"}}");
    let request = format!(
        "POST {}/upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        http.url(),
        http.addr(),
        body.len()
    );
    let mut socket = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer))
        .await
        .expect("answer within 30 s")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&testkit::sha256_hex(body.as_bytes())),
        "the target got the body: {answer}"
    );
}

/// Stops a server gracefully and waits until its last line is read.
async fn stop_server(process: &mut GatewayProcess) -> String {
    process.sigterm();
    process.wait_exit(Duration::from_secs(10)).await;
    let _ = process
        .wait_for_log("\"stopped\"", Duration::from_secs(5))
        .await;
    let lines = process.logs();
    assert!(
        lines.len() < 2000,
        "the fixture keeps the last 2000 lines only: the test must log fewer to see them all"
    );
    lines.join("\n")
}

/// What a TRACE log must show for this test to mean anything: many lines,
/// and `needles` (TRACE lines of a library, lines of our own code).
fn assert_traced(who: &str, log: &str, needles: &[&str]) {
    assert!(
        log.lines().count() > 15,
        "{who}: only {} log lines at RUST_LOG=trace:\n{log}",
        log.lines().count()
    );
    for needle in needles {
        assert!(
            log.contains(needle),
            "{who}: no {needle:?} in the log:\n{}",
            tail(log, 60)
        );
    }
}

/// Fails, naming every line, when a log holds any of `secrets`: each log
/// is (who wrote it, its text).
fn assert_clean(logs: &[(&str, &str)], secrets: &[&str]) {
    let mut leaks = Vec::new();
    for (who, log) in logs {
        for secret in secrets {
            for line in log.lines().filter(|l| l.contains(secret)) {
                let shown: String = line.chars().take(400).collect();
                leaks.push(format!("{who} logged {secret:?}: {shown}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_token_stays_out_of_trace_logs() {
    let http = HttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let tokens = tokens.display().to_string();
    let mut gateway = TestGateway::start(
        &gateway_bin(),
        &["--tokens", &tokens, "--allow-private-targets"],
        &[("RUST_LOG", "trace")],
    )
    .await
    .expect("gateway starts");
    let ca = gateway.ca().display().to_string();
    let url = gateway.url();
    let client = TracedClient::start(
        &["connect", "--gateway", &url, "--ca", &ca],
        &[("HTTVPS_SESSION_TOKEN", TOKEN)],
    )
    .await;
    let proxy = client.proxy_when_active().await;
    upload_through(&proxy, &http).await;

    let client_log = client.stop().await;
    let gateway_log = stop_server(gateway.process_mut()).await;

    // The logs are real TRACE logs, ours and the libraries' (rustls logs
    // through the `log` crate, as tungstenite does), and the request went
    // through: otherwise a clean log would prove nothing.
    assert_traced(
        "httvps",
        &client_log,
        &[" TRACE rustls::", " local_proxy::"],
    );
    assert_traced(
        "httvps-gateway",
        &gateway_log,
        &[
            "\"level\":\"TRACE\",\"fields\":{\"message\":\"sending server hello",
            "\"message\":\"stream open\"",
        ],
    );
    assert_clean(
        &[("httvps", &client_log), ("httvps-gateway", &gateway_log)],
        &[TOKEN, BODY_MARKER],
    );
}

/// `ht-server` under test with RUST_LOG=trace (testkit's `TestHtServer`
/// takes no environment): a key file of its own and a certificate, whose
/// path it returns with the process.
async fn traced_ht_server(dir: &Path, key_hex: &str) -> (GatewayProcess, PathBuf) {
    testkit::install_crypto_provider();
    let key_file = dir.join("ht.key");
    std::fs::write(&key_file, format!("{key_hex}\n")).unwrap();
    let (cert, key) = TestCert::generate(&["localhost", "127.0.0.1"]).write_to(dir);
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--allow-private-targets",
        "--key-file",
        &key_file.display().to_string(),
        "--cert",
        &cert.display().to_string(),
        "--key",
        &key.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let process = GatewayProcess::spawn(
        &sibling_bin("ht-server", "ht-server"),
        &args,
        &[("RUST_LOG", "trace")],
    )
    .await
    .expect("ht-server starts");
    (process, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ht_key_stays_out_of_trace_logs() {
    let http = HttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = testkit::pseudo_random_bytes(0x7ace_5ec7, 32);
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    // The key as bytes too, as a `{:?}` of them would print it.
    let key_debug = format!("{key:?}");
    let key_debug = &key_debug[1..key_debug.len() - 1];
    let (mut server, ca) = traced_ht_server(dir.path(), &key_hex).await;
    let url = format!("https://127.0.0.1:{}", server.addr().port());
    let ca = ca.display().to_string();
    let client = TracedClient::start(
        &["connect", "--ht", &url, "--ca", &ca],
        &[("HTTVPS_HT_KEY", &key_hex)],
    )
    .await;
    let proxy = client.proxy_when_active().await;
    upload_through(&proxy, &http).await;

    let client_log = client.stop().await;
    let server_log = stop_server(&mut server).await;

    assert_traced(
        "httvps --ht",
        &client_log,
        &[" TRACE rustls::", " ht_client::"],
    );
    assert_traced(
        "ht-server",
        &server_log,
        &[
            "\"level\":\"TRACE\",\"fields\":{\"message\":\"sending server hello",
            "\"target\":\"ht_server",
        ],
    );
    // Lower-cased too, for the key in upper-case hex.
    let (client_lower, server_lower) = (client_log.to_lowercase(), server_log.to_lowercase());
    assert_clean(
        &[
            ("httvps --ht", &client_log),
            ("ht-server", &server_log),
            ("httvps --ht", &client_lower),
            ("ht-server", &server_lower),
        ],
        &[&key_hex, key_debug, BODY_MARKER],
    );
}
