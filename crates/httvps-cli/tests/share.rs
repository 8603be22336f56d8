//! `httvps share` end to end with real peers: the `relay-server` binary
//! (TLS control channel, userspace WireGuard), a local web server shared
//! through it and curl as the colleague on the public side; and `httvps
//! demo --share` with no configuration.

mod cli;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cli::JsonClient;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;
use testkit::{GatewayProcess, HttpServer, TestCert, bytes_sha256};
use tokio::process::Command;

const SECRET: &str = "share-test-secret-of-at-least-32-bytes";
const WAIT: Duration = Duration::from_secs(30);

fn token(sub: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({ "sub": sub, "exp": exp });
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap()
}

async fn curl(url: &str) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60", url])
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    if !out.status.success() {
        eprintln!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// The first public forward once the share is active.
async fn shared(client: &JsonClient) -> String {
    let line: Value = client
        .wait_line("shared", |v| v["type"] == "shared", WAIT)
        .await;
    line["data"]["forwards"][0]["public"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_serves_a_local_port_through_the_relay_binary() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&["localhost", "127.0.0.1"]);
    let (cert_path, key_path) = cert.write_to(dir.path());
    let secret_file = dir.path().join("jwt.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let first = testkit::port_range_below_ephemeral(50) + 25;
    let bin = cli::sibling_bin("relay-server", "relay-server");
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--cert",
        &cert_path.display().to_string(),
        "--key",
        &key_path.display().to_string(),
        "--wg-listen",
        "127.0.0.1:0",
        "--public-host",
        "127.0.0.1",
        "--forward-bind",
        "127.0.0.1",
        "--forward-ports",
        &format!("{first}-{}", first + 20),
        "--jwt-secret-file",
        &secret_file.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let relay = GatewayProcess::spawn(&bin, &args, &[]).await.unwrap();
    let app = HttpServer::start().await;
    let token = token("alice");
    let client = JsonClient::spawn(
        &[
            "share",
            "--relay",
            &format!("localhost:{}", relay.addr().port()),
            "--ca",
            &cert_path.display().to_string(),
            "--name",
            "web",
            "--port",
            &app.addr().port().to_string(),
        ],
        &[
            ("HTTVPS_RELAY_TOKEN", token.as_str()),
            ("HTTVPS_KEYRING_SERVICE", "httvps-share-test"),
        ],
    );
    let public = shared(&client).await;
    let (code, body) = curl(&format!("http://{public}/bytes/3000001")).await;
    assert_eq!(code, 0);
    assert_eq!(testkit::sha256_hex(&body), bytes_sha256(3_000_001));
    // The connection appears in the live table as an inbound row.
    client
        .wait_line(
            "inbound stream",
            |v| v["type"] == "stream_closed" || v["type"] == "stream_opened",
            WAIT,
        )
        .await;
    // The JWT is in no output and no relay log line.
    let printed = serde_json::to_string(&client.lines()).unwrap();
    assert!(!printed.contains(&token), "the token was printed");
    assert!(
        relay.logs().iter().all(|l| !l.contains(&token)),
        "the relay logged the token"
    );
    assert!(
        relay
            .logs()
            .iter()
            .any(|l| l.contains("\"event\":\"tunnel registered\"") && l.contains("\"tunnel_id\"")),
        "seed-shaped log lines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_share_works_with_no_configuration() {
    let client = JsonClient::spawn(
        &["demo", "--share"],
        &[("HTTVPS_KEYRING_SERVICE", "httvps-share-test")],
    );
    let public = shared(&client).await;
    let (code, body) = curl(&format!("http://{public}/")).await;
    assert_eq!(code, 0);
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("It works."), "{page}");
}
