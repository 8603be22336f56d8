//! The decoy side by side with the real thing: Debian's nginx (nginx-light,
//! `server_tokens off`, no http2) and an in-process gateway serve the same
//! directory over TLS with the same certificate, and get the same raw
//! requests — well-formed, odd and broken, the WebSocket path without a
//! valid upgrade included. Their answers must be the same bytes, but for
//! the `Date` values, the listening port in redirects and the multipart
//! boundary number; and the connection must end the same way (closed, or
//! kept open). On failure the test prints a table of the cases that differ.
//!
//! The cases (`decoy_nginx/cases.rs`, `decoy_nginx/rules.rs`): the curated
//! probes (issue 17's findings among them: Range 206, If-None-Match 304,
//! bad or missing Host 400, a 9,000-byte path 414, 100 headers 200, header
//! names, order and case, garbage answered with nginx's HTML 400 and a
//! close, `/ws` without a valid upgrade answered like any missing path),
//! one or more cases for each rule the decoy follows, and the edges of
//! nginx's header buffers: all asserted, and none is a known difference.
//! Then seeded random mutations of valid requests (`DECOY_MUTATIONS`,
//! default 200; `DECOY_SEED`), informational only: their differences are
//! printed, not asserted.

#[path = "decoy_nginx/cases.rs"]
mod cases;
#[path = "decoy_nginx/rules.rs"]
mod rules;
mod util;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use httvps_gateway::{AuthSource, Gateway, GatewayConfig, RunningGateway, SiteSource, TlsSource};
use rustls::pki_types::ServerName;
use testkit::TestCert;
use testkit::nginx::Nginx;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use cases::H;

/// No byte for this long after the last one (and the last write): the
/// connection is kept open.
const IDLE: Duration = Duration::from_millis(500);
/// Cases in flight at once.
const CONCURRENT: usize = 128;
/// No byte at all for this long: no answer is coming.
const SILENCE: Duration = Duration::from_millis(2500);

/// The directory both serve.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("index.html"),
        "<!DOCTYPE html>\n<html><head><title>Home</title></head><body>home</body></html>\n",
    )
    .unwrap();
    std::fs::write(p.join("style.css"), "body{margin:0}\n").unwrap();
    std::fs::write(p.join("app.js"), "console.log(1)\n").unwrap();
    std::fs::write(p.join("data.json"), "{}\n").unwrap();
    std::fs::write(p.join("sp ace.txt"), "space\n").unwrap();
    std::fs::write(p.join("noext"), "x").unwrap();
    std::fs::write(p.join("big.bin"), testkit::pseudo_random_bytes(7, 100_000)).unwrap();
    std::fs::create_dir(p.join("sub")).unwrap();
    std::fs::write(p.join("sub/index.html"), "<p>sub</p>\n").unwrap();
    std::fs::create_dir(p.join("empty")).unwrap();
    std::fs::create_dir(p.join("sp dir")).unwrap();
    std::fs::write(p.join("sp dir/index.html"), "<p>sp</p>\n").unwrap();
    std::fs::write(p.join("empty.txt"), "").unwrap();
    dir
}

async fn start_gateway(root: &Path, cert: &TestCert) -> RunningGateway {
    util::init_logs();
    let tls = TlsSource::Pem {
        cert_pem: cert.cert_pem.clone(),
        key_pem: cert.key_pem.clone(),
    };
    let mut config = GatewayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        AuthSource::Tokens(["tok".to_owned()].into_iter().collect()),
    );
    config.site = SiteSource::Dir(root.to_owned());
    // Every probe comes from 127.0.0.1, all at once.
    config.limits.max_per_source = 4096;
    Gateway::bind(config).await.expect("gateway binds").spawn()
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// TLS close_notify, then EOF.
    Closed,
    /// Closed without close_notify, or reset.
    Broken(String),
    /// Still open after [`IDLE`] without a byte.
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    bytes: Vec<u8>,
    end: End,
}

/// Writes `parts` (each after its delay) and reads until the connection
/// ends or is idle.
async fn exchange(connector: &TlsConnector, addr: SocketAddr, parts: &[(u64, Vec<u8>)]) -> Outcome {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.set_nodelay(true);
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writing = async {
        for (delay, bytes) in parts {
            tokio::time::sleep(Duration::from_millis(*delay)).await;
            // The server may answer and close before it has read everything.
            if wr.write_all(bytes).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        // Keep the write half (dropping it would send close_notify).
        wr
    };
    let written_by: u64 = parts.iter().map(|(d, _)| d).sum();
    let reading = async {
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let start = Instant::now();
        let end = loop {
            let wait = if bytes.is_empty() { SILENCE } else { IDLE };
            let idle = wait + Duration::from_millis(written_by).saturating_sub(start.elapsed());
            match tokio::time::timeout(idle, rd.read(&mut buf)).await {
                Ok(Ok(0)) => break End::Closed,
                Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => break End::Broken(e.kind().to_string()),
                Err(_) => break End::Open,
            }
        };
        Outcome { bytes, end }
    };
    let (_wr, outcome) = tokio::join!(writing, reading);
    outcome
}

/// Replaces what may differ between the two: `Date` values, the port in
/// redirects, multipart boundary numbers (20 digits).
fn normalize(bytes: &[u8], port: u16) -> Vec<u8> {
    let date = b"\r\nDate: ";
    let port = format!(":{port}/").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(date) {
            out.extend_from_slice(b"\r\nDate: <date>");
            i += date.len();
            while i < bytes.len() && bytes[i] != b'\r' {
                i += 1;
            }
        } else if rest.starts_with(&port) {
            out.extend_from_slice(b":<port>/");
            i += port.len();
        } else if rest.len() >= 20
            && rest[..20].iter().all(u8::is_ascii_digit)
            && !rest.get(20).is_some_and(u8::is_ascii_digit)
            && !(i > 0 && bytes[i - 1].is_ascii_digit())
        {
            out.extend_from_slice(b"<boundary>");
            i += 20;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// A one-line account of the responses in `bytes`: status, header names,
/// body length.
fn summary(bytes: &[u8], end: &End) -> String {
    let mut out = String::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if !rest.starts_with(b"HTTP/") {
            let _ = write!(out, "[{} bytes, no head] ", rest.len());
            break;
        }
        let Some(head_len) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            let _ = write!(out, "[partial head] ");
            break;
        };
        let head = String::from_utf8_lossy(&rest[..head_len]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap_or("")
            .get(9..12)
            .unwrap_or("?")
            .to_owned();
        let mut names = Vec::new();
        let mut len = 0usize;
        for line in lines {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().unwrap_or(0);
            }
            names.push(name.to_owned());
        }
        rest = &rest[head_len + 4..];
        // A HEAD answer or 1xx/304 has no body: the next response follows.
        let body = if status.starts_with('1') || status == "304" || rest.starts_with(b"HTTP/1.1 ") {
            0
        } else {
            len.min(rest.len())
        };
        rest = &rest[body..];
        let _ = write!(out, "{status} [{}] body {body}; ", names.join(","));
    }
    let _ = write!(out, "{end:?}");
    out
}

/// Whether `request` is one WebSocket upgrade on `/ws` that HTTP allows
/// (RFC 9112: lines may end in a bare LF, whitespace is SP or HTAB, values
/// may hold obs-text), read independently of the gateway.
fn is_valid_upgrade(request: &[u8]) -> bool {
    let mut lines: Vec<&[u8]> = request
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    // The head ends with an empty line, and nothing follows it.
    if lines.pop() != Some(&b""[..]) || lines.pop() != Some(&b""[..]) {
        return false;
    }
    let mut lines = lines.into_iter();
    if lines.next() != Some(&b"GET /ws HTTP/1.1"[..]) {
        return false;
    }
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let mut fields: Vec<(Vec<u8>, &[u8])> = Vec::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let ok_value = value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80);
        if name.is_empty() || !name.iter().all(tchar) || !ok_value {
            return false;
        }
        fields.push((name.to_ascii_lowercase(), value));
    }
    let first = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| *v)
    };
    let has = |name: &str, token: &str| {
        fields
            .iter()
            .filter(|(n, _)| n == name.as_bytes())
            .any(|(_, v)| {
                v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
    };
    let key = first("sec-websocket-key").unwrap_or_default();
    first("host").is_some()
        && has("connection", "upgrade")
        && has("upgrade", "websocket")
        && first("sec-websocket-version") == Some(b"13")
        && key.len() == 24
        && key[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

fn connector(cert: &TestCert) -> TlsConnector {
    testkit::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// `name`'s value in the first response of `bytes`.
fn header_value(bytes: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decoy_answers_like_nginx() {
    let started = Instant::now();
    let root = site();
    let cert = TestCert::generate(&["localhost"]);
    let nginx = Nginx::start(root.path(), &cert);
    let gateway = start_gateway(root.path(), &cert).await;
    let connector = connector(&cert);
    let (n_addr, g_addr) = (nginx.addr, gateway.local_addr());

    // The validators of style.css, as nginx reports them.
    let first = exchange(
        &connector,
        n_addr,
        &[(0, cases::get("/style.css", "").into_bytes())],
    )
    .await;
    assert!(
        first.bytes.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "nginx: {first:?}"
    );
    let etag = header_value(&first.bytes, "ETag");
    let modified = header_value(&first.bytes, "Last-Modified");

    // The asserted cases, then the random ones (informational only: they
    // explore, and may find corners the asserted ones should then cover).
    let mut cases = cases::curated(&etag, &modified);
    cases.extend(rules::rules(&etag, &modified));
    cases.extend(cases::sizes());
    let asserted = cases.len();
    // DECOY_MUTATIONS and DECOY_SEED explore further than the default run.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    cases.extend(cases::mutations(
        env("DECOY_MUTATIONS", 200) as usize,
        env("DECOY_SEED", 0x9e37_79b9_7f4a_7c15),
    ));
    let runs = cases.iter().enumerate().map(|(i, c)| {
        let connector = &connector;
        async move {
            let (n, g) = tokio::join!(
                exchange(connector, n_addr, &c.parts),
                exchange(connector, g_addr, &c.parts)
            );
            (i, n, g)
        }
    });
    // Bounded (three descriptors a case, and CI's limit may be 1024), in
    // any order (a silent case must not hold up the rest).
    let mut results: Vec<_> = futures_util::stream::iter(runs)
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;
    results.sort_by_key(|(i, _, _)| *i);

    let (mut table, mut mutation_table) = (String::new(), String::new());
    let (mut mismatches, mut mutation_mismatches, mut tunnel) = (0, 0, 0);
    for (i, n, g) in &results {
        let c = &cases[*i];
        let n_norm = normalize(&n.bytes, n_addr.port());
        let g_norm = normalize(&g.bytes, g_addr.port());
        if n_norm == g_norm && n.end == g.end {
            continue;
        }
        // A mutation that left a valid upgrade reaches the tunnel.
        let request: Vec<u8> = c.parts.iter().flat_map(|(_, b)| b.clone()).collect();
        if g.bytes.starts_with(b"HTTP/1.1 101 ") && is_valid_upgrade(&request) {
            tunnel += 1;
            continue;
        }
        let (count, table) = if *i < asserted {
            (&mut mismatches, &mut table)
        } else {
            (&mut mutation_mismatches, &mut mutation_table)
        };
        *count += 1;
        describe(table, c, (&n_norm, &n.end), (&g_norm, &g.end));
    }
    eprintln!(
        "{asserted} cases and {} mutations in {:.1} s: {mismatches} mismatches, {mutation_mismatches} in mutations ({tunnel} valid upgrades)",
        cases.len() - asserted,
        started.elapsed().as_secs_f64()
    );
    if mutation_mismatches > 0 {
        eprintln!("mutations that differ (informational):\n{mutation_table}");
    }
    // The decoy follows Debian 12's nginx 1.22; another nginx may differ.
    assert!(
        mismatches == 0,
        "{mismatches} of {asserted} cases differ from {}:\n{table}",
        nginx.version()
    );
}

/// A row of the table of differences: the case, both answers in short,
/// and where they first differ.
fn describe(table: &mut String, c: &cases::Case, nginx: (&[u8], &End), gateway: (&[u8], &End)) {
    let (n, g) = (nginx.0, gateway.0);
    let at = n
        .iter()
        .zip(g)
        .position(|(a, b)| a != b)
        .unwrap_or(n.len().min(g.len()));
    let context = |b: &[u8]| {
        let from = at.saturating_sub(40);
        let to = (at + 60).min(b.len());
        format!("{:?}", String::from_utf8_lossy(&b[from.min(to)..to]))
    };
    let request: Vec<u8> = c
        .parts
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .take(160)
        .collect();
    let _ = writeln!(
        table,
        "{:<32} | request: {:?}\n{:<32} | nginx:   {}\n{:<32} | gateway: {}\n{:<32} | first difference at byte {at}: nginx {} / gateway {}",
        c.name,
        String::from_utf8_lossy(&request),
        "",
        summary(n, nginx.1),
        "",
        summary(g, gateway.1),
        "",
        context(n),
        context(g),
    );
}

/// A valid upgrade on the WebSocket path still reaches the tunnel, also
/// after decoy requests on the same connection.
#[tokio::test]
async fn a_valid_upgrade_still_reaches_the_tunnel() {
    let root = site();
    let cert = TestCert::generate(&["localhost"]);
    let gateway = start_gateway(root.path(), &cert).await;
    let connector = connector(&cert);
    let request = format!(
        "GET /nope HTTP/1.1\r\n{H}\r\nGET /ws HTTP/1.1\r\n{H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let out = exchange(
        &connector,
        gateway.local_addr(),
        &[(0, request.into_bytes())],
    )
    .await;
    let text = String::from_utf8_lossy(&out.bytes);
    let upgraded = text.find("HTTP/1.1 101 Switching Protocols\r\n");
    assert!(
        text.starts_with("HTTP/1.1 404 Not Found\r\n") && upgraded.is_some(),
        "{text}"
    );
    assert!(
        text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the RFC 6455 example's accept key: {text}"
    );
    // And the tunnel speaks: a client says hello with its token.
    let mut client = util::Client::connect(gateway.local_addr(), &cert).await;
    let reply = client.hello("tok").await;
    assert_eq!(reply["type"], "ready", "{reply}");
}
