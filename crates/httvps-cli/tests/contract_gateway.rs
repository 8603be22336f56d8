//! The `httvps` binary against an independent gateway that speaks only the
//! contract (`crates/testkit/peers/contract_gateway.py`, Python asyncio with
//! Debian's python3-websockets): JSON text frames, no extensions, a `ping`
//! every second, `max_streams` 2. The targets are a real nginx (Debian's
//! nginx-light, our own config) serving a 10 MiB file.
//!
//! Without `half_close` the client cannot tell the gateway that curl is done:
//! nginx keeps its keep-alive connection open, so each stream must end by the
//! client's linger (`half_close_linger`, 2 s) and hand its slot back. A stream
//! that never ends keeps its slot for good, and with two slots later
//! connections wait 30 s and fail. So every round checks not only that the
//! five parallel downloads arrive whole, but also that every stream gave its
//! slot back within the linger plus a margin; then three more downloads must
//! still work promptly. The rounds go through SOCKS5 and HTTP CONNECT, the
//! two proxy paths that relay raw bytes (and half-close).
//!
//! A second test pins the mechanism without curl or luck: a stream's reader
//! parked in one task must still end by the linger when another task shuts
//! the stream down for writing.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use httvps_client::{ClientConfig, Secret, TargetAddr, Tunnel};
use serde_json::Value;
use testkit::{TestCert, install_crypto_provider, pseudo_random_bytes, sha256_hex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

mod cli;
use cli::JsonClient;

/// Debian's interpreter, where python3-websockets is installed (a `python3`
/// earlier on PATH, e.g. pyenv's, may not have it).
const PYTHON: &str = "/usr/bin/python3";
/// Given to the gateway in a file and to the client in its environment.
const TOKEN: &str = "contract-gateway-test-token";

const FILE_LEN: usize = 10 * 1024 * 1024;
const PARALLEL: usize = 5;
const ROUNDS: usize = 3;
const AFTER: usize = 3;
const MAX_STREAMS: u32 = 2;
/// The client's default `half_close_linger`: how long a stream whose
/// application has finished writing waits for more reply bytes before it
/// ends, when the gateway cannot half-close.
const LINGER: Duration = Duration::from_secs(2);
/// What a stream may take beyond the linger to give its slot back.
const RELEASE_MARGIN: Duration = Duration::from_secs(4);
/// One curl download, including a wait for a slot: far below the proxy's
/// 30 s slot wait, far above the ~1 s a download takes.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Found from the package directory cargo gives the running test, not the
/// one compiled in: a test binary reused from another checkout of the same
/// code would look for the script in that checkout.
fn contract_gateway_script() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    package.join("../testkit/peers/contract_gateway.py")
}

/// nginx (nginx-light, `testkit::nginx`) serving `big.bin` on a loopback
/// socket that the test binds and hands over, so it accepts connections
/// from the first instant: no port race, no polling for readiness.
struct Nginx(testkit::nginx::Nginx);

impl Nginx {
    async fn start(body: &[u8]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let www = dir.path().join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("big.bin"), body).unwrap();
        let temp = dir.path().join("tmp");
        std::fs::create_dir(&temp).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // As root, nginx would hand its work to `nobody`, who cannot read
        // our private temp dir.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let d = dir.path().display();
        let t = temp.display();
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
    sendfile on;
    # nginx's default, spelled out: like real servers, nginx keeps the
    # connection open after a response (curl sends no Connection: close).
    keepalive_timeout 75s;
    client_body_temp_path {t}/client;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen {addr};
        root {d}/www;
    }}
}}
"
        );
        Nginx(testkit::nginx::Nginx::run(dir, &conf, listener))
    }

    fn url(&self) -> String {
        format!("http://{}/big.bin", self.0.addr)
    }
}

/// The Python gateway, with a fresh certificate and a token file.
struct ContractGateway {
    _child: Child,
    port: u16,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl ContractGateway {
    async fn start(token: &str) -> ContractGateway {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = TestCert::generate(&["localhost", "127.0.0.1"]).write_to(dir.path());
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("# test token\n{token}\n")).unwrap();
        let mut child = Command::new(PYTHON)
            .arg(contract_gateway_script())
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--tokens")
            .arg(&tokens)
            .args(["--max-streams", &MAX_STREAMS.to_string()])
            .args(["--ping-interval", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the contract gateway (apt-get install python3-websockets)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
            .await
            .expect("the contract gateway prints its port within 20 s")
            .unwrap()
            .expect(
                "the contract gateway exited before listening (is python3-websockets installed?)",
            );
        let port = line.trim().parse().expect("a port number");
        ContractGateway {
            _child: child,
            port,
            cert,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("wss://127.0.0.1:{}/ws", self.port)
    }
}

/// A running `httvps connect` with its JSON event lines collected.
/// `httvps connect` to the Python gateway (the token never on the command
/// line), once the session is active.
async fn connect(gateway: &ContractGateway, token: &str) -> JsonClient {
    let client = JsonClient::connect(&gateway.url(), &gateway.cert, token, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    client
}

/// Streams that got a tunnel stream and then ended.
fn closed_streams(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter(|v| v["type"] == "stream_closed" && v["data"]["stream_id"].is_string())
        .cloned()
        .collect()
}

/// Waits until `n` tunnel streams have ended in all.
async fn wait_closed(client: &JsonClient, n: usize, timeout: Duration) {
    client
        .wait_for(
            &format!("{n} ended streams (each gives its slot back)"),
            timeout,
            |lines| (closed_streams(lines).len() >= n).then_some(()),
        )
        .await;
}

/// The stream and error events, one per line, for failure messages.
fn streams_report(client: &JsonClient) -> String {
    let lines = client.lines();
    let opened: Vec<&Value> = lines
        .iter()
        .filter(|v| v["type"] == "stream_opened")
        .collect();
    let mut out = String::new();
    for v in lines
        .iter()
        .filter(|v| !matches!(v["type"].as_str(), Some("listening" | "state" | "streams")))
    {
        let d = &v["data"];
        out += &format!(
            "  {} {} {} down={} wait_ms={} reason={}\n",
            v["type"],
            d["stream_id"],
            d["target"],
            d["bytes_down"],
            d["wait_ms"],
            d["close_reason"]
        );
    }
    let closed: Vec<String> = closed_streams(&lines)
        .iter()
        .map(|v| v["data"]["stream_id"].as_str().unwrap().to_owned())
        .collect();
    let still_open: Vec<&str> = opened
        .iter()
        .filter_map(|v| v["data"]["stream_id"].as_str())
        .filter(|id| !closed.iter().any(|c| c == id))
        .collect();
    out += &format!("  still open: {still_open:?}");
    out
}

/// How curl reaches the target through the local proxy.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// `--socks5-hostname`.
    Socks5,
    /// `--proxytunnel -x http://…`: CONNECT, then raw bytes.
    HttpConnect,
}

/// One download through the proxy.
struct Download {
    exit: i32,
    len: usize,
    sha256: String,
    took: Duration,
    stderr: String,
}

async fn download(proxy: SocketAddr, via: Via, url: String) -> Download {
    let started = Instant::now();
    let proxy_args = match via {
        Via::Socks5 => vec!["--socks5-hostname".to_owned(), proxy.to_string()],
        Via::HttpConnect => vec![
            "--proxytunnel".to_owned(),
            "-x".to_owned(),
            format!("http://{proxy}"),
        ],
    };
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail"])
        .args(["--max-time", &DOWNLOAD_TIMEOUT.as_secs().to_string()])
        .args(proxy_args)
        .arg(&url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    Download {
        exit: out.status.code().unwrap_or(-1),
        len: out.stdout.len(),
        sha256: sha256_hex(&out.stdout),
        took: started.elapsed(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `n` downloads at once; each must arrive whole.
async fn downloads(client: &JsonClient, via: Via, url: &str, n: usize, sha256: &str, what: &str) {
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(download(client.proxy, via, url.to_owned()));
    }
    let mut failed = Vec::new();
    let mut took = Vec::new();
    while let Some(done) = set.join_next().await {
        let d = done.unwrap();
        took.push(d.took);
        if d.exit != 0 || d.len != FILE_LEN || d.sha256 != sha256 {
            failed.push(format!(
                "  curl exit {} after {:.1?}: {} bytes, sha256 {}: {}",
                d.exit,
                d.took,
                d.len,
                d.sha256,
                d.stderr.trim()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{what}: {} of {n} downloads failed:\n{}\nevents:\n{}",
        failed.len(),
        failed.join("\n"),
        streams_report(client)
    );
    eprintln!("{what} ({via:?}): {n} × {FILE_LEN} bytes, each in {took:.2?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_downloads_through_a_contract_only_gateway_release_their_slots() {
    let body = pseudo_random_bytes(0x00c0_ffee, FILE_LEN);
    let sha256 = sha256_hex(&body);
    let nginx = Nginx::start(&body).await;
    drop(body);
    let gateway = ContractGateway::start(TOKEN).await;
    let client = connect(&gateway, TOKEN).await;
    let url = nginx.url();
    let started = Instant::now();

    let mut ended = 0;
    for round in 1..=ROUNDS {
        let via = if round == ROUNDS {
            Via::HttpConnect
        } else {
            Via::Socks5
        };
        let what = format!("round {round}");
        downloads(&client, via, &url, PARALLEL, &sha256, &what).await;
        // curl is done with every stream of the round: each must end within
        // the linger (nginx keeps the connection open) and free its slot.
        ended += PARALLEL;
        wait_closed(&client, ended, LINGER + RELEASE_MARGIN).await;
    }

    // New connections are still served promptly: more than the slots, at once.
    downloads(
        &client,
        Via::Socks5,
        &url,
        AFTER,
        &sha256,
        "after the rounds",
    )
    .await;
    wait_closed(&client, ended + AFTER, LINGER + RELEASE_MARGIN).await;
    eprintln!("all rounds in {:.1?}", started.elapsed());
}

/// The mechanism behind a stream that never ends, deterministically: the
/// reader is parked (no byte to read: the target, like nginx between
/// keep-alive requests, neither sends nor closes) in its own task when
/// another task shuts the stream down for writing. The gateway cannot
/// half-close, so the stream must end by the linger; a linger timer that
/// only a later read would poll never fires, and the read waits until the
/// target closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_reader_ends_by_the_linger_after_a_shutdown_without_half_close() {
    install_crypto_provider();
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let (accepted_tx, accepted_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = target.accept().await.unwrap();
        let _ = accepted_tx.send(());
        // Reads what comes and never closes first.
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink).await;
    });
    let gateway = ContractGateway::start(TOKEN).await;
    let mut config = ClientConfig::new(gateway.url());
    config.tls.ca_file = Some(gateway.cert.clone());
    assert_eq!(config.half_close_linger, LINGER);
    let tunnel = Tunnel::connect(config, &Secret::new(TOKEN))
        .await
        .expect("connect to the contract gateway");
    let stream = tunnel.open(TargetAddr::Ip(target_addr)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), accepted_rx)
        .await
        .expect("the gateway dials the target")
        .unwrap();
    let (mut read, mut write) = tokio::io::split(stream);

    let (parked_tx, parked_rx) = oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let mut read_one = std::pin::pin!(read.read(&mut buf));
        let mut parked = Some(parked_tx);
        std::future::poll_fn(|cx| {
            let polled = read_one.as_mut().poll(cx);
            if polled.is_pending()
                && let Some(parked) = parked.take()
            {
                let _ = parked.send(());
            }
            polled
        })
        .await
    });
    parked_rx.await.expect("the reader parks: nothing to read");
    // This task is done writing; the reader's task is not woken by anything else.
    let shut = Instant::now();
    write.shutdown().await.unwrap();
    let read = tokio::time::timeout(LINGER + RELEASE_MARGIN, reader)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the parked read did not end within the linger ({LINGER:?}) + {RELEASE_MARGIN:?} \
                 after shutdown: the stream keeps its slot until the target closes"
            )
        })
        .unwrap();
    assert_eq!(read.unwrap(), 0, "a clean end of stream");
    let took = shut.elapsed();
    assert!(took >= LINGER, "ended by the linger, not before: {took:?}");
}
