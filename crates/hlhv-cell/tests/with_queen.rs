//! Our cell with our queen (both in this process) and curl as the public
//! client over HTTP/1.1 and HTTP/2: pages and 10 MiB each way, 50 parallel
//! requests (bands grow, then shrink when idle), two cells on nested
//! prefixes, unknown hosts, a local app that is down, and a queen restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Engine, PublishOptions, ReconnectPolicy, SessionState};
use hlhv_cell::{CellConfig, HlhvPublisher};
use hlhv_queen::{CellKey, Config, Limits, Queen, RunningQueen, TlsSource};
use net::Secret;
use serde_json::Value;
use testkit::{HttpServer, TestCert, bytes_sha256, closed_port, pseudo_random_bytes, sha256_hex};
use tokio::process::Command;

const KEY: &str = "with-queen-cell-key";

/// A queen's certificate (written out for curl) and its limits.
struct Site {
    cert: TestCert,
    cert_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let cert = TestCert::generate(&["localhost", "127.0.0.1", "other.example"]);
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, _) = cert.write_to(dir.path());
        Site {
            cert,
            cert_path,
            _dir: dir,
        }
    }

    async fn queen(&self, cells: SocketAddr, https: SocketAddr, limits: Limits) -> RunningQueen {
        let mut config = Config::new(
            cells,
            https,
            TlsSource::Pem {
                cert_pem: self.cert.cert_pem.clone(),
                key_pem: self.cert.key_pem.clone(),
            },
            CellKey::from_file_text(KEY).unwrap(),
        );
        config.limits = limits;
        Queen::bind(config).await.expect("queen binds").spawn()
    }

    fn cell(&self, queen: &RunningQueen, mount: &str, to: &str) -> HlhvPublisher {
        let mut config =
            CellConfig::new(queen.cells_addr().to_string(), mount, to, Secret::new(KEY));
        config.tls.pin_sha256 = Some(self.cert.spki_sha256());
        // 10 MiB uploads (the default is 8 MiB; 413 beyond is the cell's
        // own tests' business).
        config.max_body = 16 << 20;
        HlhvPublisher::new(config).expect("a valid cell config")
    }

    /// curl trusting the queen, `args` then the URL path on `localhost`.
    async fn curl(&self, queen: &RunningQueen, args: &[&str], path: &str) -> (i32, Vec<u8>) {
        let url = format!("https://localhost:{}{path}", queen.https_addr().port());
        curl(&self.cert_path, args, &[url]).await
    }
}

/// The start of a body, for a failure message.
fn text_head(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

async fn curl(ca: &Path, args: &[&str], urls: &[String]) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(args)
        .args(urls)
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code().unwrap_or(-1), out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_each_way_over_http1_and_http2() {
    let site = Site::new();
    let queen = site.queen(LOOPBACK, LOOPBACK, Limits::default()).await;
    let app = HttpServer::start().await;
    let publication = site
        .cell(&queen, "localhost/a/", &app.url())
        .connect_cell(None)
        .await
        .unwrap();
    let upload = tempfile::NamedTempFile::new().unwrap();
    let data = pseudo_random_bytes(3, 10 << 20);
    std::fs::write(upload.path(), &data).unwrap();
    let upload_arg = format!("@{}", upload.path().display());
    for version in ["--http1.1", "--http2"] {
        // `--location`: the queen redirects a path without a slash or an
        // extension to `path/`, as the Go queen does.
        let (code, body) = site
            .curl(&queen, &[version, "--location"], "/a/bytes/10485760")
            .await;
        assert_eq!(code, 0, "{version}");
        assert_eq!(sha256_hex(&body), bytes_sha256(10 << 20), "{version}");
        let (code, body) = site
            .curl(
                &queen,
                &[version, "--data-binary", &upload_arg],
                "/a/upload/",
            )
            .await;
        assert_eq!(code, 0, "{version}");
        let answer: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{version}: {e}: {}", text_head(&body)));
        assert_eq!(answer["len"], 10 << 20, "{version}");
        assert_eq!(answer["sha256"], sha256_hex(&data), "{version}");
    }
    let (code, body) = site.curl(&queen, &["--http2"], "/a/").await;
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&body).contains("testkit HTTP server"));
    drop(publication);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_requests_grow_the_bands_which_close_when_idle() {
    let site = Site::new();
    let limits = Limits {
        band_idle: Duration::from_millis(500),
        ..Limits::default()
    };
    let queen = site.queen(LOOPBACK, LOOPBACK, limits).await;
    let app = HttpServer::start().await;
    let publication = site
        .cell(&queen, "localhost/a/", &app.url())
        .connect_cell(None)
        .await
        .unwrap();
    let urls: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "https://localhost:{}/a/stream/{}/",
                queen.https_addr().port(),
                200_000 + i
            )
        })
        .collect();
    // Every URL with its own `--output`: curl applies one to one URL.
    let mut args: Vec<&str> = vec![
        "--http1.1",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "50",
        "--write-out",
        "%{http_code} %{size_download}\\n",
    ];
    for url in &urls {
        args.extend(["--output", "/dev/null", url.as_str()]);
    }
    let (code, out) = curl(&site.cert_path, &args, &[]).await;
    assert_eq!(code, 0);
    let out = String::from_utf8_lossy(&out).into_owned();
    let mut sizes: Vec<u64> = out
        .lines()
        .map(|line| {
            let (status, size) = line.split_once(' ').unwrap();
            assert_eq!(status, "200", "{line}");
            size.parse().unwrap()
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, (0..50).map(|i| 200_000 + i).collect::<Vec<u64>>());
    let grown = publication.bands();
    assert!(grown > 1, "50 parallel requests opened {grown} band(s)");
    // Free bands are closed after --band-idle; nothing signals it to this
    // side but the count, so it is polled, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while publication.bands() >= grown && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        publication.bands() < grown,
        "idle bands stay open: {} of {grown}",
        publication.bands()
    );
    // And the cell still serves, opening a band again if it needs one.
    let (code, _) = site.curl(&queen, &["--location"], "/a/bytes/1000").await;
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_prefix_wins_and_strangers_get_404_and_502() {
    let site = Site::new();
    let queen = site.queen(LOOPBACK, LOOPBACK, Limits::default()).await;
    let (outer, inner) = (HttpServer::start().await, HttpServer::start().await);
    let _outer = site
        .cell(&queen, "localhost/a/", &outer.url())
        .connect_cell(None)
        .await
        .unwrap();
    let _inner = site
        .cell(&queen, "localhost/a/b/", &inner.url())
        .connect_cell(None)
        .await
        .unwrap();
    let down = site
        .cell(
            &queen,
            "localhost/down/",
            &format!("http://{}", closed_port()),
        )
        .connect_cell(None)
        .await
        .unwrap();
    let (code, _) = site.curl(&queen, &["--fail"], "/a/b/x.txt").await;
    assert_eq!(code, 22, "the inner app answers 404 for x.txt");
    assert_eq!(inner.requests(), ["/x.txt"]);
    let (code, _) = site.curl(&queen, &["--fail"], "/a/y.txt").await;
    assert_eq!(code, 22);
    assert_eq!(outer.requests(), ["/y.txt"]);
    // A host nobody mounted: the queen's own 404, no cell asked.
    let port = queen.https_addr().port();
    let (code, body) = curl(
        &site.cert_path,
        &["--resolve", &format!("other.example:{port}:127.0.0.1")],
        &[format!("https://other.example:{port}/a/y.txt")],
    )
    .await;
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&body).contains("404"), "{body:?}");
    assert_eq!(outer.requests().len(), 1);
    // A local app that is down: 502 and a page that says so.
    let (code, body) = site
        .curl(
            &queen,
            &["--write-out", "\\n%{http_code}"],
            "/down/page.html",
        )
        .await;
    assert_eq!(code, 0);
    let text = String::from_utf8_lossy(&body);
    assert!(text.ends_with("\n502"), "{text}");
    assert!(text.contains("not answering"), "{text}");
    drop(down);
}

/// Waits for the engine's state to satisfy `what`.
async fn wait_state(engine: &Engine, what: impl Fn(&SessionState) -> bool, timeout: Duration) {
    let mut states = engine.watch_state();
    tokio::time::timeout(timeout, async {
        loop {
            if what(&states.borrow_and_update()) {
                return;
            }
            states.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("state still {:?}", engine.state()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_queen_serves_again_within_seconds() {
    let site = Site::new();
    let queen = site.queen(LOOPBACK, LOOPBACK, Limits::default()).await;
    let (cells, https) = (queen.cells_addr(), queen.https_addr());
    let app = HttpServer::start().await;
    let engine = Engine::new();
    engine
        .publish(PublishOptions {
            publisher: Arc::new(site.cell(&queen, "localhost/a/", &app.url())),
            reconnect: ReconnectPolicy {
                initial_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
                ..ReconnectPolicy::default()
            },
            retry_initial: true,
        })
        .unwrap();
    let active = |s: &SessionState| matches!(s, SessionState::Active { .. });
    wait_state(&engine, active, Duration::from_secs(10)).await;
    let (code, _) = site.curl(&queen, &["--location"], "/a/bytes/100").await;
    assert_eq!(code, 0);
    queen.shutdown().await.unwrap();
    let reconnecting = |s: &SessionState| matches!(s, SessionState::Reconnecting { .. });
    wait_state(&engine, reconnecting, Duration::from_secs(10)).await;
    let restarted = Instant::now();
    let queen = site.queen(cells, https, Limits::default()).await;
    wait_state(&engine, active, Duration::from_secs(10)).await;
    let (code, body) = site.curl(&queen, &["--location"], "/a/bytes/100").await;
    assert_eq!(code, 0);
    assert_eq!(sha256_hex(&body), bytes_sha256(100));
    assert!(
        restarted.elapsed() < Duration::from_secs(5),
        "served again {:?} after the restart",
        restarted.elapsed()
    );
    engine.stop().await;
}
