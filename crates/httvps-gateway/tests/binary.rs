//! The `httvps-gateway` binary as a process: flags, signals (SIGHUP reload,
//! SIGTERM drain), the metrics listener, JSON logs without secrets.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use testkit::{EchoServer, GatewayProcess, TestBackend, TestCert};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{Client, Event};

const BIN: &str = env!("CARGO_BIN_EXE_httvps-gateway");

struct Setup {
    dir: tempfile::TempDir,
    cert: TestCert,
    cert_path: PathBuf,
    key_path: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&["localhost"]);
    let (cert_path, key_path) = cert.write_to(dir.path());
    Setup {
        dir,
        cert,
        cert_path,
        key_path,
    }
}

impl Setup {
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--cert",
            self.cert_path.to_str().unwrap(),
            "--key",
            self.key_path.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Starts the binary with its temporary files (the built-in site's page)
    /// in this setup's directory, so that killing it leaves nothing behind.
    async fn spawn(&self, args: &[String], envs: &[(&str, &str)]) -> GatewayProcess {
        let tmp = self.dir.path().to_str().unwrap();
        let mut all = vec![("TMPDIR", tmp)];
        all.extend_from_slice(envs);
        GatewayProcess::spawn(Path::new(BIN), args, &all)
            .await
            .unwrap()
    }

    fn tokens_file(&self, content: &str) -> PathBuf {
        let path = self.dir.path().join("tokens");
        write_atomically(&path, content);
        path
    }
}

/// Replaces a file the way an operator's tooling would (write, then rename).
fn write_atomically(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn hello(gw: &GatewayProcess, cert: &TestCert, token: &str) -> (Client, serde_json::Value) {
    let mut c = Client::connect(gw.addr(), cert).await;
    let reply = c.hello(token).await;
    (c, reply)
}

fn assert_no_secrets(gw: &GatewayProcess, secrets: &[&str]) {
    let logs = gw.logs();
    assert!(!logs.is_empty());
    for line in &logs {
        for secret in secrets {
            assert!(
                !line.contains(secret),
                "secret {secret:?} in log line: {line}"
            );
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sighup_reloads_the_token_file_and_a_failed_reload_keeps_the_old_set() {
    let s = setup();
    let tokens = s.tokens_file("# test tokens\ntok-alpha-7781\n");
    let args = s.args(&["--tokens", tokens.to_str().unwrap(), "--tokens-poll", "0"]);
    let gw = s.spawn(&args, &[]).await;
    assert_eq!(
        hello(&gw, &s.cert, "tok-alpha-7781").await.1["type"],
        "ready"
    );
    let (mut c, reply) = hello(&gw, &s.cert, "tok-beta-9924").await;
    assert_eq!(reply["code"], "auth_failed");
    assert_eq!(c.close_code().await, Some(1008));

    write_atomically(&tokens, "tok-alpha-7781\n\ntok-beta-9924\n");
    gw.sighup();
    gw.wait_for_log("tokens reloaded", WAIT).await.unwrap();
    assert_eq!(
        hello(&gw, &s.cert, "tok-beta-9924").await.1["type"],
        "ready"
    );

    // A reload that fails keeps what was loaded.
    std::fs::remove_file(&tokens).unwrap();
    gw.sighup();
    gw.wait_for_log("reload failed", WAIT).await.unwrap();
    assert_eq!(
        hello(&gw, &s.cert, "tok-beta-9924").await.1["type"],
        "ready"
    );
    assert_no_secrets(&gw, &["tok-alpha-7781", "tok-beta-9924"]);
}

#[tokio::test]
async fn token_file_change_is_picked_up_without_a_signal() {
    let s = setup();
    let tokens = s.tokens_file("tok-one\n");
    let args = s.args(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--tokens-poll",
        "200ms",
    ]);
    let gw = s.spawn(&args, &[]).await;
    write_atomically(&tokens, "tok-two\n");
    gw.wait_for_log("tokens reloaded", WAIT).await.unwrap();
    assert_eq!(hello(&gw, &s.cert, "tok-two").await.1["type"], "ready");
    assert_eq!(
        hello(&gw, &s.cert, "tok-one").await.1["code"],
        "auth_failed"
    );
}

#[tokio::test]
async fn missing_token_file_is_a_startup_error() {
    let s = setup();
    let missing = s.dir.path().join("nope");
    let stderr = refused(s.args(&["--tokens", missing.to_str().unwrap()]), &[]).await;
    assert!(stderr.contains("token file"), "{stderr}");
}

#[tokio::test]
async fn durations_take_plain_seconds_or_units() {
    let s = setup();
    let tokens = s.tokens_file("tok-dur\n");
    // Units (humantime) and plain seconds side by side; a hello timeout of
    // 300ms (not the default 10 s) shows the unit was read.
    let args = s.args(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--hello-timeout",
        "300ms",
        "--idle-timeout",
        "1h30m",
        "--drain-timeout",
        "2",
        "--dial-timeout",
        "0.5",
        "--tokens-poll",
        "1m 30s",
    ]);
    let gw = s.spawn(&args, &[]).await;
    let mut c = Client::connect(gw.addr(), &s.cert).await;
    tokio::time::timeout(
        Duration::from_secs(5),
        c.expect_error_then_close("bad_hello", 1008),
    )
    .await
    .expect("the 300ms hello timeout applies");

    for (flag, bad) in [("--idle-timeout", "soon"), ("--hello-timeout", "-3")] {
        let args = s.args(&[
            "--tokens",
            tokens.to_str().unwrap(),
            &format!("{flag}={bad}"),
        ]);
        let stderr = refused(args, &[]).await;
        assert!(
            stderr.contains(flag) && stderr.contains(&format!("{bad:?}")),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn unusable_site_dir_is_a_startup_error() {
    let s = setup();
    let tokens = s.tokens_file("tok\n");
    for site in [s.dir.path().join("nope"), tokens.clone()] {
        let args = s.args(&[
            "--tokens",
            tokens.to_str().unwrap(),
            "--site-dir",
            site.to_str().unwrap(),
        ]);
        let stderr = refused(args, &[]).await;
        assert!(stderr.contains("decoy site"), "{stderr}");
    }
}

#[tokio::test]
async fn help_lists_the_flags() {
    let out = tokio::process::Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--cert",
        "--key",
        "--backend",
        "--tokens",
        "--max-streams",
        "--allow-private-targets",
        "--metrics",
        "--outline-file",
        "HTTVPS_OUTLINE",
        "--ws-path",
        "--hello-timeout",
        "--idle-timeout",
        "--drain-timeout",
        "--max-sessions",
        "--stall-timeout",
        "--max-frame-bytes",
        "--stream-buffer",
        "--backend-timeout",
        "HTTVPS_INTERNAL_SECRET",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[tokio::test]
async fn sigterm_drains_streams_closes_1001_and_exits_zero() {
    let s = setup();
    let echo = EchoServer::start().await;
    let tokens = s.tokens_file("tok-term\n");
    let args = s.args(&[
        "--tokens",
        tokens.to_str().unwrap(),
        "--allow-private-targets",
        "--drain-timeout",
        "500ms",
    ]);
    let mut gw = s.spawn(&args, &[]).await;
    let (mut c, reply) = hello(&gw, &s.cert, "tok-term").await;
    assert_eq!(reply["type"], "ready");
    c.open("s1", echo.addr()).await;
    c.data("s1", b"ping").await;
    assert_eq!(c.read_exact("s1", 4).await, b"ping");
    gw.sigterm();
    let mut closes = Vec::new();
    let code = loop {
        match c.event().await {
            Event::Frame(f) if f["type"] == "stream_close" => closes.push(f),
            Event::Frame(f) => panic!("unexpected frame {f}"),
            Event::Close(code) => break code,
            Event::Ended(e) => panic!("no Close frame: {e}"),
        }
    };
    assert_eq!(
        closes,
        vec![json!({"type":"stream_close","stream_id":"s1","reason":"shutdown"})]
    );
    assert_eq!(code, Some(1001));
    drop(c);
    let status = gw.wait_exit(WAIT).await.expect("gateway exits");
    assert!(status.success(), "{status:?}");
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn backend_mode_metrics_and_logs_without_secrets() {
    let s = setup();
    let echo = EchoServer::start().await;
    let ss = testkit::SsServer::start("chacha20-ietf-poly1305", "node-pass-5512")
        .await
        .unwrap();
    let backend = TestBackend::builder()
        .secret("internal-secret-3318")
        .session_token(
            "tok-session-4471",
            testkit::Grant {
                device_id: "dev-9".into(),
                max_streams: 5,
                outline: Some(ss.outline_node()),
            },
        )
        .start()
        .await;
    // The echo target lives on loopback.
    let args = s.args(&[
        "--backend",
        &backend.url(),
        "--metrics",
        "127.0.0.1:0",
        "--allow-private-targets",
    ]);
    let gw = s
        .spawn(
            &args,
            &[
                ("HTTVPS_INTERNAL_SECRET", "internal-secret-3318"),
                ("RUST_LOG", "debug"),
            ],
        )
        .await;
    let metrics_addr = gw.wait_metrics_addr(WAIT).await.unwrap();

    let (mut c, reply) = hello(&gw, &s.cert, "tok-session-4471").await;
    assert_eq!(reply["type"], "ready", "{reply}");
    assert_eq!(reply["max_streams"], 5);
    assert_eq!(
        backend.last_secret_seen().as_deref(),
        Some("internal-secret-3318")
    );
    c.open("s1", echo.addr()).await;
    c.data("s1", b"metrics!").await;
    assert_eq!(c.read_exact("s1", 8).await, b"metrics!");
    let (_, refused) = hello(&gw, &s.cert, "tok-unknown-0001").await;
    assert_eq!(refused["code"], "auth_failed");

    let text = http_get(metrics_addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for line in [
        "httvps_gateway_sessions_active 1",
        "httvps_gateway_sessions_total 1",
        "httvps_gateway_streams_active 1",
        "httvps_gateway_streams_total 1",
        "httvps_gateway_handshakes_total{result=\"ok\"} 1",
        "httvps_gateway_handshakes_total{result=\"auth_failed\"} 1",
        "httvps_gateway_bytes_total{dir=\"up\"} 8",
        "httvps_gateway_bytes_total{dir=\"down\"} 8",
        "httvps_gateway_errors_total{code=\"auth_failed\"} 1",
        "httvps_gateway_upstream_dial_seconds_count{mode=\"outline\"} 1",
    ] {
        assert!(text.contains(line), "metrics lack {line:?}:\n{text}");
    }
    assert!(
        http_get(metrics_addr, "/other")
            .await
            .starts_with("HTTP/1.1 404")
    );

    // When the client goes away, the gauges come back to zero.
    drop(c);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = http_get(metrics_addr, "/metrics").await;
        if text.contains("httvps_gateway_sessions_active 0")
            && text.contains("httvps_gateway_streams_active 0")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gauges stuck:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_no_secrets(
        &gw,
        &[
            "tok-session-4471",
            "tok-unknown-0001",
            "internal-secret-3318",
            "node-pass-5512",
        ],
    );
}

/// The gateway's argv as `ps` shows it to every user.
fn cmdline(gw: &GatewayProcess) -> String {
    let pid = gw.pid().expect("gateway runs");
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// Writes the access key to a file of the given mode.
fn outline_file(s: &Setup, url: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = s.dir.path().join("outline.key");
    std::fs::write(&path, format!("# Outline node\n{url}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// One token-file gateway in Outline mode, through a real `ss-server`, with the
/// access key from a 0600 file or from HTTVPS_OUTLINE: an echo on loopback
/// answers (direct mode would refuse loopback, so the node carried it), and
/// neither argv nor the logs hold the password.
#[tokio::test]
async fn outline_key_from_a_private_file_or_the_environment() {
    let echo = EchoServer::start().await;
    let password = "node-pass-argv-6630";
    let ss = testkit::SsServer::start("chacha20-ietf-poly1305", password)
        .await
        .unwrap();
    let url = ss.ss_url();
    // The access key carries the password base64-encoded (SIP002): look for both.
    let userinfo = url
        .strip_prefix("ss://")
        .and_then(|u| u.split('@').next())
        .unwrap()
        .to_owned();
    for from_env in [false, true] {
        let s = setup();
        let tokens = s.tokens_file("tok-node\n");
        let key = outline_file(&s, &url, 0o600);
        // The echo target lives on loopback.
        let mut extra = vec![
            "--tokens",
            tokens.to_str().unwrap(),
            "--allow-private-targets",
        ];
        let mut envs = vec![("RUST_LOG", "debug")];
        if from_env {
            envs.push(("HTTVPS_OUTLINE", url.as_str()));
        } else {
            extra.extend(["--outline-file", key.to_str().unwrap()]);
        }
        let gw = s.spawn(&s.args(&extra), &envs).await;
        let argv = cmdline(&gw);
        assert!(argv.contains("--tokens"), "{argv}");
        for secret in [password, url.as_str(), userinfo.as_str()] {
            assert!(!argv.contains(secret), "argv shows {secret:?}: {argv}");
        }
        let (mut c, reply) = hello(&gw, &s.cert, "tok-node").await;
        assert_eq!(reply["type"], "ready", "{reply}");
        c.open("s1", echo.addr()).await;
        c.data("s1", b"via the node").await;
        assert_eq!(c.read_exact("s1", 12).await, b"via the node");
        assert_no_secrets(&gw, &[password, &userinfo]);
    }
}

/// Runs the gateway with `args` and `envs`, which it must refuse to start
/// with; returns its stderr.
async fn refused(args: Vec<String>, envs: &[(&str, &str)]) -> String {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn outline_key_file_readable_by_others_is_refused() {
    let s = setup();
    let tokens = s.tokens_file("tok\n");
    let url = "ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpzM2NyZXQ@127.0.0.1:8388";
    for mode in [0o644, 0o640] {
        let key = outline_file(&s, url, mode);
        let stderr = refused(
            s.args(&[
                "--tokens",
                tokens.to_str().unwrap(),
                "--outline-file",
                key.to_str().unwrap(),
            ]),
            &[],
        )
        .await;
        for needle in [
            key.to_str().unwrap(),
            "readable by group or others",
            &format!("{mode:04o}"),
            "chmod 600",
        ] {
            assert!(stderr.contains(needle), "lacks {needle:?}: {stderr}");
        }
        assert!(!stderr.contains("Y2hh"), "{stderr}");
    }
    // A broken URL in the environment: named, not quoted.
    let stderr = refused(
        s.args(&["--tokens", tokens.to_str().unwrap()]),
        &[("HTTVPS_OUTLINE", "ss://bm90LWEta2V5-secret7@")],
    )
    .await;
    assert!(stderr.contains("HTTVPS_OUTLINE"), "{stderr}");
    assert!(!stderr.contains("secret7"), "{stderr}");
}

#[tokio::test]
async fn outline_on_the_command_line_is_refused_without_echoing_it() {
    let s = setup();
    let tokens = s.tokens_file("tok\n");
    let url = "ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpzM2NyZXQ@127.0.0.1:8388";
    for flag in [
        vec!["--outline".to_owned(), url.to_owned()],
        vec![format!("--outline={url}")],
    ] {
        let mut args = s.args(&["--tokens", tokens.to_str().unwrap()]);
        args.extend(flag);
        let stderr = refused(args, &[]).await;
        assert!(
            stderr.contains("--outline-file") && stderr.contains("HTTVPS_OUTLINE"),
            "{stderr}"
        );
        assert!(!stderr.contains("Y2hh"), "{stderr}");
    }
    // Both sources at once is ambiguous.
    let key = outline_file(&s, url, 0o600);
    let stderr = refused(
        s.args(&[
            "--tokens",
            tokens.to_str().unwrap(),
            "--outline-file",
            key.to_str().unwrap(),
        ]),
        &[("HTTVPS_OUTLINE", url)],
    )
    .await;
    assert!(stderr.contains("not both"), "{stderr}");
    assert!(!stderr.contains("Y2hh"), "{stderr}");
    // --help with the variable set never shows its value.
    let out = tokio::process::Command::new(BIN)
        .arg("--help")
        .env("HTTVPS_OUTLINE", url)
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("HTTVPS_OUTLINE"), "{help}");
    assert!(!help.contains("Y2hh"), "{help}");
}
