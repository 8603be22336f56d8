//! `httvps publish` end to end with real peers: the `hlhv-queen` binary, a
//! local web app, and curl as the public client over HTTP/1.1 and HTTP/2;
//! and `httvps demo --publish` with no configuration.

mod cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cli::JsonClient;
use serde_json::Value;
use testkit::{GatewayProcess, HttpServer, TestCert, bytes_sha256};
use tokio::process::Command;

const CELL_KEY: &str = "publish-test-cell-key";

/// The queen binary with a test certificate for `localhost`; returns it
/// with its cells and HTTPS addresses and the certificate to trust.
async fn queen(dir: &Path) -> (GatewayProcess, SocketAddr, SocketAddr, PathBuf) {
    let cert = TestCert::generate(&["localhost", "127.0.0.1"]);
    let (cert_path, key_path) = cert.write_to(dir);
    let key_file = dir.join("cell.key");
    std::fs::write(&key_file, format!("{CELL_KEY}\n")).unwrap();
    let bin = cli::sibling_bin("hlhv-queen", "hlhv-queen");
    let args: Vec<String> = [
        "--cells",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--cert",
        &cert_path.display().to_string(),
        "--key",
        &key_path.display().to_string(),
        "--cell-key-file",
        &key_file.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let process = GatewayProcess::spawn(&bin, &args, &[]).await.unwrap();
    let line = process
        .wait_for_log("cells listening", Duration::from_secs(10))
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let cells: SocketAddr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
    let https = process.addr();
    (process, cells, https, cert_path)
}

/// curl to the queen's public side as `localhost`, trusting `ca`.
async fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), out.stdout)
}

async fn published(client: &JsonClient) -> String {
    let line = client
        .wait_line(
            "published",
            |v| v["type"] == "published",
            Duration::from_secs(20),
        )
        .await;
    line["data"]["endpoints"][0].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_serves_a_local_app_through_the_queen() {
    let dir = tempfile::tempdir().unwrap();
    let (_queen, cells, https, ca) = queen(dir.path()).await;
    let app = HttpServer::start().await;
    let cells = format!("127.0.0.1:{}", cells.port());
    let client = JsonClient::spawn(
        &[
            "publish",
            "--queen",
            &cells,
            "--ca",
            &ca.display().to_string(),
            "--sni",
            "localhost",
            "--mount",
            "localhost/app/",
            "--to",
            &app.url(),
        ],
        &[("HTTVPS_CELL_KEY", CELL_KEY)],
    );
    client.wait_state("active", Duration::from_secs(20)).await;
    assert_eq!(published(&client).await, "https://localhost/app/");
    let base = format!("https://localhost:{}/app", https.port());
    let ca = ca.display().to_string();
    for version in ["--http1.1", "--http2"] {
        // `--location`: the queen redirects a path without a slash or an
        // extension to `path/`, as the Go queen does.
        let url = format!("{base}/bytes/3000001");
        let (code, body) = curl(&[version, "--location", "--cacert", &ca, &url]).await;
        assert_eq!(code, 0, "{version}");
        assert_eq!(
            testkit::sha256_hex(&body),
            bytes_sha256(3_000_001),
            "{version}"
        );
    }
    // A request body arrives whole (the Go queen dropped its last piece).
    let upload = dir.path().join("upload.bin");
    let data = testkit::pseudo_random_bytes(7, 1_000_003);
    std::fs::write(&upload, &data).unwrap();
    let (code, body) = curl(&[
        "--cacert",
        &ca,
        "--data-binary",
        &format!("@{}", upload.display()),
        &format!("{base}/upload/"),
    ])
    .await;
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["len"], 1_000_003);
    assert_eq!(answer["sha256"], testkit::sha256_hex(&data));
    // The local app saw the paths without the mount prefix.
    assert!(
        app.requests().iter().any(|p| p == "/upload/"),
        "{:?}",
        app.requests()
    );
    // Each request is a row of the live table, closed with its status.
    let closed = client
        .wait_line(
            "a closed request row",
            |v| {
                v["type"] == "stream_closed"
                    && v["data"]["target"] == "POST /upload/"
                    && v["data"]["close_reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("200 in "))
            },
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(closed["data"]["protocol"], "inbound_http");
    assert_eq!(closed["data"]["bytes_down"], 1_000_003);
    // Outside the mount: the queen's 404.
    let (code, _) = curl(&[
        "--cacert",
        &ca,
        "--fail",
        &format!("https://localhost:{}/other/", https.port()),
    ])
    .await;
    assert_eq!(code, 22, "curl --fail exits 22 on 404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cell_key_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (_queen, cells, _, ca) = queen(dir.path()).await;
    let cells = format!("127.0.0.1:{}", cells.port());
    let client = JsonClient::spawn(
        &[
            "publish",
            "--queen",
            &cells,
            "--ca",
            &ca.display().to_string(),
            "--mount",
            "localhost/app/",
            "--to",
            "http://127.0.0.1:9",
        ],
        &[("HTTVPS_CELL_KEY", "not the key")],
    );
    let code = client.exit_code(Duration::from_secs(20)).await;
    assert_eq!(code, 1, "a refused key ends the command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_demo_works_with_no_configuration() {
    let client = JsonClient::spawn(&["demo", "--publish"], &[]);
    client.wait_state("active", Duration::from_secs(20)).await;
    let url = published(&client).await;
    assert!(url.starts_with("https://localhost:"), "{url}");
    let (code, body) = curl(&["--insecure", &url]).await;
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&body).contains("It works."));
}
