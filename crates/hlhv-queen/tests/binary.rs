//! The `hlhv-queen` binary: flags, the Go config file with a bcrypt
//! connKey, metrics, keys kept out of the logs, a graceful SIGTERM.

mod util;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use testkit::GatewayProcess;
use util::{Mode, TestCell, curl, leash};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hlhv-queen"))
}

/// The address in the `cells listening` log line, on loopback.
async fn cells_addr(p: &GatewayProcess) -> SocketAddr {
    let line = p
        .wait_for_log("cells listening", Duration::from_secs(10))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr: SocketAddr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

async fn stops_on_sigterm(mut p: GatewayProcess) -> Vec<String> {
    p.sigterm();
    let status = p.wait_exit(Duration::from_secs(15)).await.expect("exits");
    assert!(status.success(), "{status:?}");
    p.logs()
}

#[tokio::test]
async fn a_go_config_with_a_bcrypt_conn_key() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Arc::new(util::cert());
    let (cert_path, key_path) = cert.write_to(dir.path());
    let hash = bcrypt::hash(util::CELL_KEY, 4).unwrap();
    let conf = dir.path().join("hlhv.conf");
    std::fs::write(
        &conf,
        format!(
            "# test queen\nkeyPath {}\ncertPath {}\nconnKey {hash}\nportHlhv 0\nportHttps 0\n\
             alias www.demo.example -> demo.example\ngardenFreq 120",
            key_path.display(),
            cert_path.display()
        ),
    )
    .unwrap();
    let p = GatewayProcess::spawn(
        bin(),
        &["--conf-path".into(), conf.display().to_string()],
        &[("RUST_LOG", "debug")],
    )
    .await
    .unwrap();
    let cells = cells_addr(&p).await;
    let port = p.addr().port();
    let (_, refused) = leash(cells, &cert, "wrong key").await;
    assert!(refused.is_none());
    let cell = TestCell::start_at(
        cells,
        cert.clone(),
        util::CELL_KEY,
        "conf",
        "demo.example",
        "/",
        Mode::Echo,
    )
    .await;
    let r = curl(port, "www.demo.example", "/hello.txt", true, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("cell=conf path=/hello.txt"));
    p.wait_for_log("config keys ignored", Duration::from_secs(1))
        .await
        .unwrap();
    let logs = stops_on_sigterm(p).await.join("\n");
    assert!(
        !logs.contains(util::CELL_KEY),
        "the cell key is never logged"
    );
    assert!(!logs.contains(&cell.accept.key), "nor the session key");
    assert!(
        logs.contains("wrong_key"),
        "the refusal is logged by reason"
    );
}

#[tokio::test]
async fn flags_metrics_and_no_key_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Arc::new(util::cert());
    let (cert_path, key_path) = cert.write_to(dir.path());
    let key_file = dir.path().join("cell.key");
    std::fs::write(&key_file, format!("{}\n", util::CELL_KEY)).unwrap();
    let args: Vec<String> = [
        "--cells",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--cert",
        &cert_path.display().to_string(),
        "--key",
        &key_path.display().to_string(),
        "--cell-key-file",
        &key_file.display().to_string(),
        "--alias",
        "alias.example=demo.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let p = GatewayProcess::spawn(bin(), &args, &[("RUST_LOG", "debug")])
        .await
        .unwrap();
    let cells = cells_addr(&p).await;
    let metrics = p.wait_metrics_addr(Duration::from_secs(5)).await.unwrap();
    let cell = TestCell::start_at(
        cells,
        cert.clone(),
        util::CELL_KEY,
        "flags",
        "demo.example",
        "/app/",
        Mode::Echo,
    )
    .await;
    let file = dir.path().join("up");
    std::fs::write(&file, b"hello").unwrap();
    let r = curl(
        p.addr().port(),
        "alias.example",
        "/app/x.bin",
        false,
        Some(&file),
    )
    .await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let out = tokio::process::Command::new("curl")
        .args(["-s", &format!("http://{metrics}/metrics")])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "hlhv_queen_cells 1",
        "hlhv_queen_bands 1",
        "hlhv_queen_requests_total{class=\"2xx\"} 1",
        "hlhv_queen_bytes_total{dir=\"up\"} 5",
        "hlhv_queen_band_waits_total{result=\"granted\"} 1",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let logs = stops_on_sigterm(p).await.join("\n");
    assert!(!logs.contains(util::CELL_KEY));
    assert!(!logs.contains(&cell.accept.key));
}
