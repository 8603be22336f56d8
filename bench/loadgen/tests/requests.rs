//! `loadgen requests` and `loadgen download`: keep-alive HTTPS against a
//! real nginx (TLS 1.3, the certificate trusted with `ca`), and failures
//! counted against testkit's plain HTTP server.

use std::path::Path;
use std::time::Duration;

use loadgen::requests::{DownloadOptions, RequestsOptions, Url};
use testkit::nginx::Nginx;
use testkit::{HttpServer, TestCert};

const BIG: usize = 3 << 20;

/// nginx serving `root` over TLS 1.3 (Debian's 1.22 offers it only when
/// asked) with `cert`, keep-alive without a request limit.
fn nginx(root: &Path, cert: &TestCert) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert.write_to(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let d = dir.path().display();
    let conf = format!(
        "{user}
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/client;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {addr} ssl;
        ssl_certificate {c};
        ssl_certificate_key {k};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {r};
    }}
}}
",
        c = c.display(),
        k = k.display(),
        r = root.display()
    );
    Nginx::run(dir, &conf, listener)
}

struct Site {
    nginx: Nginx,
    ca: std::path::PathBuf,
    _files: tempfile::TempDir,
}

fn site() -> Site {
    testkit::install_crypto_provider();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("1k.bin"), [7u8; 1024]).unwrap();
    std::fs::write(files.path().join("big.bin"), vec![9u8; BIG]).unwrap();
    let cert = TestCert::generate(&["localhost", "127.0.0.1"]);
    let (ca, _) = cert.write_to(files.path());
    let nginx = nginx(files.path(), &cert);
    Site {
        nginx,
        ca,
        _files: files,
    }
}

fn requests(url: &str, ca: Option<&Path>, max_requests: Option<u64>) -> RequestsOptions {
    RequestsOptions {
        url: Url::parse(url).unwrap(),
        ca: ca.map(Path::to_path_buf),
        connections: 8,
        duration: Duration::from_millis(400),
        warmup: Duration::from_millis(100),
        max_requests,
        timeout: Duration::from_secs(10),
    }
}

/// Runs `f` until nginx accepts (it starts a moment after the spawn).
async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, loadgen::requests::LoadError>>,
{
    for _ in 0..50 {
        match f().await {
            Ok(v) => return v,
            Err(loadgen::requests::LoadError::Connect(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("nginx never answered");
}

#[tokio::test]
async fn keep_alive_https_requests_are_counted_and_timed() {
    let site = site();
    // "localhost", as the bench asks the queen: the name the certificate
    // has, whichever address it resolves to first.
    let url = format!("https://localhost:{}/1k.bin", site.nginx.addr.port());
    let report = retry(|| loadgen::requests::run(requests(&url, Some(&site.ca), None))).await;
    assert_eq!(report.connections, 8);
    assert!(report.completed > 0, "{report:?}");
    assert_eq!((report.failed, report.reconnects), (0, 0), "{report:?}");
    assert_eq!(report.body_bytes, report.completed * 1024);
    assert!(report.warmup_requests > 0);
    assert!(report.seconds > 0.3 && report.seconds < 5.0, "{report:?}");
    assert!(report.requests_per_s > 0.0);
    let lat = report.latency_ms.expect("latencies");
    assert!(lat.min <= lat.p50 && lat.p50 <= lat.p99 && lat.p99 <= lat.max);

    // A request budget ends the run early, exactly.
    let mut opts = requests(&url, Some(&site.ca), Some(100));
    opts.duration = Duration::from_secs(30);
    let report = loadgen::requests::run(opts).await.unwrap();
    assert_eq!((report.completed, report.failed), (100, 0), "{report:?}");
    assert!(report.seconds < 10.0);
}

#[tokio::test]
async fn downloads_are_checked_and_timed() {
    let site = site();
    let url = format!("https://localhost:{}/big.bin", site.nginx.addr.port());
    let options = |expect_bytes| DownloadOptions {
        url: Url::parse(&url).unwrap(),
        ca: Some(site.ca.clone()),
        expect_bytes,
        timeout: Duration::from_secs(30),
    };
    let report = retry(|| loadgen::requests::download(options(Some(BIG as u64)))).await;
    assert_eq!(report.bytes, BIG as u64);
    assert!(report.seconds > 0.0 && report.mb_per_s > 0.0);
    let short = loadgen::requests::download(options(Some(BIG as u64 + 1))).await;
    assert!(short.unwrap_err().to_string().contains("of"));
    // Not our certificate: the handshake fails before anything is timed.
    let other = TestCert::generate(&["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let (other_ca, _) = other.write_to(dir.path());
    let mut opts = options(None);
    opts.ca = Some(other_ca);
    let refused = loadgen::requests::download(opts).await.unwrap_err();
    assert!(refused.to_string().contains("tls"), "{refused}");
}

#[tokio::test]
async fn failed_requests_are_counted_by_reason_over_plain_http() {
    let server = HttpServer::start().await;
    let ok = format!("{}/bytes/512", server.url());
    let report = loadgen::requests::run(requests(&ok, None, Some(40)))
        .await
        .unwrap();
    assert_eq!((report.completed, report.failed), (40, 0), "{report:?}");
    assert_eq!(report.body_bytes, 40 * 512);

    let missing = format!("{}/nothing-here", server.url());
    let report = loadgen::requests::run(requests(&missing, None, Some(30)))
        .await
        .unwrap();
    assert_eq!((report.completed, report.failed), (0, 30), "{report:?}");
    assert_eq!(report.errors.get("http status 404"), Some(&30));
    // A whole answer, even a 404, leaves the connection usable.
    assert_eq!(report.reconnects, 0);
    assert!(report.latency_ms.is_none());
    assert_eq!(report.requests_per_s, 0.0);
}
