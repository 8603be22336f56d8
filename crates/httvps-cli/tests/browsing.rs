//! Browsing through the full stack with the gateway's default stream limit:
//! the `httvps` binary's local proxy, the `httvps-gateway` binary (real TLS,
//! direct mode, `--max-streams 8`) and HTTP/1.1 keep-alive servers on
//! loopback as the targets.
//!
//! Browsers keep idle HTTP/1.1 connections open for reuse, and every one of
//! them holds a tunnel stream. With 8 streams per session, eight idle
//! keep-alive connections must not make the ninth connection wait for a slot
//! (before the fix it waited the whole slot wait, 30 s, and failed): the
//! client closes the longest-idle streams when a connection waits, and frees
//! the slot of a closed connection at once. These tests hold it to that, with
//! raw sockets, curl and headless Chromium.
//!
//! Needs curl and Debian's chromium (`scripts/test` installs both).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::TestGateway;

mod cli;
use cli::{CHROMIUM, JsonClient, gateway_bin, headless_chromium};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

const TOKEN: &str = "browsing-token-8";
/// The gateway's default, given explicitly so these tests keep meaning the
/// same if the default changes.
const MAX_STREAMS: &str = "8";

/// A direct-mode gateway with 8 streams per session that may dial loopback.
async fn gateway() -> TestGateway {
    TestGateway::with_tokens(
        &gateway_bin(),
        &[TOKEN],
        &["--allow-private-targets", "--max-streams", MAX_STREAMS],
    )
    .await
    .expect("gateway starts")
}

// ---------------------------------------------------------------------------
// The client: `httvps connect --json`, the token in the environment.
// ---------------------------------------------------------------------------

/// `httvps connect` to `gateway`, its proxy on a free port, once the
/// session is active.
async fn connect(gateway: &TestGateway) -> JsonClient {
    let client = JsonClient::connect(&gateway.url(), gateway.ca(), TOKEN, &[], &[]).await;
    client.wait_state("active", Duration::from_secs(20)).await;
    client
}

/// What the stream events say so far, for failure messages: streams
/// opened (and the longest slot wait), streams closed by reason.
fn stream_summary(client: &JsonClient) -> String {
    let lines = client.lines();
    let opened: Vec<u64> = lines
        .iter()
        .filter(|v| v["type"] == "stream_opened")
        .map(|v| v["data"]["wait_ms"].as_u64().unwrap_or(0))
        .collect();
    let mut closed: BTreeMap<String, usize> = BTreeMap::new();
    for v in lines.iter().filter(|v| v["type"] == "stream_closed") {
        let reason = v["data"]["close_reason"].as_str().unwrap_or("closed");
        *closed.entry(reason.to_owned()).or_default() += 1;
    }
    format!(
        "client events: {} streams opened (longest slot wait {} ms), closed {:?}",
        opened.len(),
        opened.iter().max().copied().unwrap_or(0),
        closed
    )
}

// ---------------------------------------------------------------------------
// Origins: tiny HTTP/1.1 keep-alive servers. Each counts its connections and
// records the paths it served; every origin can serve the shared page.
// ---------------------------------------------------------------------------

/// Served by an origin for `/page` (set once all origins are up).
type Page = Arc<Mutex<Option<String>>>;

struct Origin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    served: Arc<Mutex<Vec<String>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Origin {
    /// An origin on 127.0.0.1:0. Images (`/img/…`) are answered after
    /// `image_delay`, as a real server takes a moment.
    async fn start(page: Page, image_delay: Duration) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (connections.clone(), served.clone());
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(
                    tcp,
                    addr,
                    page.clone(),
                    log.clone(),
                    image_delay,
                ));
            }
        });
        Origin {
            addr,
            connections,
            served,
            accept,
        }
    }

    fn served(&self) -> Vec<String> {
        self.served.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// One client connection: requests one after another (keep-alive, and
/// pipelined ones in order) until the peer closes or says `Connection: close`.
async fn serve_connection(
    mut tcp: TcpStream,
    me: SocketAddr,
    page: Page,
    served: Arc<Mutex<Vec<String>>>,
    image_delay: Duration,
) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let head = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let close = head.lines().skip(1).any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("connection:") && l.contains("close")
        });
        let (status, ctype, body) = match (method, path) {
            ("GET", "/page") => match page.lock().unwrap().clone() {
                Some(html) => ("200 OK", "text/html; charset=utf-8", html.into_bytes()),
                None => ("404 Not Found", "text/plain", b"no page\n".to_vec()),
            },
            ("GET", p) if p.starts_with("/img/") => {
                tokio::time::sleep(image_delay).await;
                ("200 OK", "image/svg+xml", svg(p).into_bytes())
            }
            ("GET", "/hello") => (
                "200 OK",
                "text/plain",
                format!("hello from {me}\n").into_bytes(),
            ),
            _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        };
        served.lock().unwrap().push(path.to_owned());
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        response.extend_from_slice(&body);
        if tcp.write_all(&response).await.is_err() || close {
            return;
        }
    }
}

/// A 16×16 square whose colour depends on the path.
fn svg(path: &str) -> String {
    let h = path.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"16\" height=\"16\">\
         <rect width=\"16\" height=\"16\" fill=\"#{:06x}\"/></svg>",
        h & 0xff_ffff
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// A client side by hand: SOCKS5 CONNECT or HTTP proxy requests on sockets the
// test keeps open, with a parser for Content-Length and chunked responses.
// ---------------------------------------------------------------------------

/// How a kept-open connection reaches the origin through the proxy.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    /// SOCKS5 CONNECT, then origin-form requests on the tunnel.
    Socks5,
    /// Absolute-form requests to the HTTP proxy.
    HttpProxy,
}

/// A keep-alive connection through the proxy, and its unread bytes.
struct KeptConnection {
    via: Via,
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// What became of a request on a connection.
#[derive(Debug)]
enum Outcome {
    /// A whole response, status and body.
    Response(u16, Vec<u8>),
    /// The connection was closed (EOF or reset) before any response byte.
    Closed,
}

impl KeptConnection {
    async fn open(via: Via, proxy: SocketAddr, target: SocketAddr) -> Result<Self, String> {
        let mut tcp = TcpStream::connect(proxy)
            .await
            .map_err(|e| format!("connect to the proxy: {e}"))?;
        tcp.set_nodelay(true).unwrap();
        if via == Via::Socks5 {
            socks5_handshake(&mut tcp, target).await?;
        }
        Ok(KeptConnection {
            via,
            tcp,
            buf: Vec::new(),
        })
    }

    /// GET `path` on `target` and read the whole response.
    async fn get(&mut self, target: SocketAddr, path: &str) -> Result<Outcome, String> {
        let line = match self.via {
            Via::Socks5 => format!("GET {path} HTTP/1.1\r\n"),
            Via::HttpProxy => format!("GET http://{target}{path} HTTP/1.1\r\n"),
        };
        let request = format!("{line}Host: {target}\r\nUser-Agent: browsing-test\r\n\r\n");
        if let Err(e) = self.tcp.write_all(request.as_bytes()).await {
            return match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    Ok(Outcome::Closed)
                }
                _ => Err(format!("write: {e}")),
            };
        }
        self.read_response().await
    }

    async fn fill(&mut self) -> Result<usize, String> {
        let mut chunk = [0u8; 8192];
        match self.tcp.read(&mut chunk).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(0),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    async fn read_response(&mut self) -> Result<Outcome, String> {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(Outcome::Closed)
                } else {
                    Err(format!(
                        "closed inside a response head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                };
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_ascii_lowercase())
            })
        };
        let body = if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| format!("bad length: {head:?}"))?;
            while self.buf.len() < len {
                if self.fill().await? == 0 {
                    return Err(format!("closed inside a body: {head:?}"));
                }
            }
            self.buf.drain(..len).collect()
        } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(e) = find(&self.buf, b"\r\n") {
                        break e;
                    }
                    if self.fill().await? == 0 {
                        return Err("closed inside a chunk size".into());
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| format!("bad chunk size {size_text:?}"))?;
                self.buf.drain(..line_end + 2);
                if size == 0 {
                    // No trailers from these origins: just the final CRLF.
                    while self.buf.len() < 2 {
                        if self.fill().await? == 0 {
                            return Err("closed after the last chunk".into());
                        }
                    }
                    self.buf.drain(..2);
                    break;
                }
                while self.buf.len() < size + 2 {
                    if self.fill().await? == 0 {
                        return Err("closed inside a chunk".into());
                    }
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
            }
            body
        } else {
            return Err(format!("a response with no length: {head:?}"));
        };
        Ok(Outcome::Response(status, body))
    }
}

/// SOCKS5, no authentication, CONNECT to an IPv4 `target`.
async fn socks5_handshake(tcp: &mut TcpStream, target: SocketAddr) -> Result<(), String> {
    let SocketAddr::V4(v4) = target else {
        unreachable!("origins are on 127.0.0.1")
    };
    tcp.write_all(&[5, 1, 0])
        .await
        .map_err(|e| format!("socks5 greeting: {e}"))?;
    let mut choice = [0u8; 2];
    tcp.read_exact(&mut choice)
        .await
        .map_err(|e| format!("socks5 method reply: {e}"))?;
    if choice != [5, 0] {
        return Err(format!("socks5 method reply {choice:?}"));
    }
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    tcp.write_all(&request)
        .await
        .map_err(|e| format!("socks5 request: {e}"))?;
    let mut reply = [0u8; 10];
    tcp.read_exact(&mut reply)
        .await
        .map_err(|e| format!("socks5 reply: {e}"))?;
    if reply[0] != 5 || reply[1] != 0 {
        return Err(format!("socks5 CONNECT refused, reply code {}", reply[1]));
    }
    if reply[3] != 1 {
        return Err(format!("socks5 reply address type {}", reply[3]));
    }
    Ok(())
}

/// Runs `what` with a deadline; the elapsed time, or an error naming it.
async fn timed<T>(
    limit: Duration,
    what: impl std::future::Future<Output = Result<T, String>>,
) -> (Duration, Result<T, String>) {
    let start = Instant::now();
    let result = match tokio::time::timeout(limit, what).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {limit:?}")),
    };
    (start.elapsed(), result)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One fetch by a new curl process through the proxy: wall time and body.
async fn curl_fetch(
    proxy_flag: &str,
    proxy: SocketAddr,
    url: &str,
) -> (Duration, Result<Vec<u8>, String>) {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "5"])
        .args([proxy_flag, &proxy.to_string(), url])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run curl (apt-get install curl)");
    let took = start.elapsed();
    if out.status.success() {
        (took, Ok(out.stdout))
    } else {
        (
            took,
            Err(format!(
                "curl exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        )
    }
}

// ---------------------------------------------------------------------------
// a. Idle keep-alive connections do not starve new ones.
// ---------------------------------------------------------------------------

/// Kept-open connections, opened one after another (half SOCKS5 CONNECT,
/// half HTTP proxy), four times the gateway's stream limit.
const KEPT: usize = 32;
/// The most a new connection may take while idle ones hold every slot. On
/// loopback a fetch takes a few milliseconds; waiting for a slot took 30 s.
const FAST: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connections_do_not_starve_new_ones() {
    let gateway = gateway().await;
    let client = connect(&gateway).await;
    let origin = Origin::start(Arc::new(Mutex::new(None)), Duration::ZERO).await;
    let target = origin.addr;
    let expected = format!("hello from {target}\n").into_bytes();
    let mut report = Vec::new();

    // 1. 32 keep-alive connections, one after another: each fetches once and
    //    then stays open and idle, as a browser keeps them for reuse. From
    //    the ninth on, every slot is held by an idle connection.
    let mut kept = Vec::new();
    for i in 0..KEPT {
        let via = if i % 2 == 0 {
            Via::Socks5
        } else {
            Via::HttpProxy
        };
        let (took, result) = timed(Duration::from_secs(3), async {
            let mut conn = KeptConnection::open(via, client.proxy, target).await?;
            let outcome = conn.get(target, "/hello").await?;
            Ok((conn, outcome))
        })
        .await;
        report.push(format!("kept connection {i:2} ({via:?}): {}", ms(took)));
        let (conn, outcome) = result.unwrap_or_else(|e| {
            panic!(
                "kept connection {i} ({via:?}), with {i} idle keep-alive connections \
                 open: {e} after {}\n{}\n{}",
                ms(took),
                report.join("\n"),
                stream_summary(&client)
            )
        });
        match outcome {
            Outcome::Response(200, body) if body == expected => {}
            other => panic!("kept connection {i} ({via:?}): {other:?}"),
        }
        assert!(
            took < FAST,
            "kept connection {i} ({via:?}) took {} with {i} idle connections open\n{}\n{}",
            ms(took),
            report.join("\n"),
            stream_summary(&client)
        );
        kept.push(conn);
    }

    // 2. New fetches by new curl processes while the 32 stay open: each must
    //    be as quick as on an idle tunnel.
    let url = format!("http://{target}/hello");
    let mut slow = Vec::new();
    for i in 0..8 {
        let flag = if i % 2 == 0 {
            "--socks5-hostname"
        } else {
            "-x"
        };
        let (took, result) = curl_fetch(flag, client.proxy, &url).await;
        report.push(format!("new fetch {i} (curl {flag}): {}", ms(took)));
        match result {
            Ok(body) => assert_eq!(body, expected, "new fetch {i}"),
            Err(e) => slow.push(format!("new fetch {i} (curl {flag}): {e}")),
        }
        if took >= FAST {
            slow.push(format!("new fetch {i} (curl {flag}) took {}", ms(took)));
        }
    }
    eprintln!("{}\n{}", report.join("\n"), stream_summary(&client));
    assert!(
        slow.is_empty(),
        "new fetches with {KEPT} idle keep-alive connections open:\n{}",
        slow.join("\n")
    );

    // 3. Every kept connection is still usable the way a browser uses it:
    //    a request on it gets its answer, or the connection is closed (a
    //    browser then retries on a new one). None may hang: a closed stream
    //    must close its client connection too.
    let (mut answered, mut closed) = (0, 0);
    for (i, conn) in kept.iter_mut().enumerate() {
        let via = conn.via;
        let (took, result) = timed(Duration::from_secs(2), conn.get(target, "/hello")).await;
        match result {
            Ok(Outcome::Response(200, body)) if body == expected => answered += 1,
            Ok(Outcome::Closed) => closed += 1,
            other => panic!(
                "reusing kept connection {i} ({via:?}) after {}: {other:?}\n{}",
                ms(took),
                stream_summary(&client)
            ),
        }
    }
    eprintln!(
        "reusing the {KEPT} kept connections: {answered} answered, {closed} closed\n{}",
        stream_summary(&client)
    );
    assert_eq!(answered + closed, KEPT);
}

// ---------------------------------------------------------------------------
// b. Chromium, 48 images from 8 origins, 8 streams.
// ---------------------------------------------------------------------------

const ORIGINS: usize = 8;
const IMAGES_PER_ORIGIN: usize = 6;
/// How long the page may take, from navigation start to its last image.
const PAGE_LIMIT_MS: f64 = 10_000.0;
/// How long Chromium may run at all (start-up included) before it is killed
/// and the test reports what the origins served by then.
const CHROMIUM_WATCHDOG: Duration = Duration::from_secs(20);

/// The page: every image reports load or error; on the window's load event
/// (which waits for all of them) the result is written into the DOM, which
/// `--dump-dom` prints.
fn page_html(origins: &[SocketAddr]) -> String {
    let mut imgs = String::new();
    for (o, addr) in origins.iter().enumerate() {
        for n in 0..IMAGES_PER_ORIGIN {
            imgs.push_str(&format!(
                "<img src=\"http://{addr}/img/{o}-{n}.svg\" width=\"16\" height=\"16\" \
                 onload=\"done(this, true)\" onerror=\"done(this, false)\">\n"
            ));
        }
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>48 images</title>
<script>
var loaded = 0, failed = [], last = 0;
function done(img, ok) {{
  if (ok) loaded++; else failed.push(img.src);
  last = performance.now();
}}
window.addEventListener("load", function () {{
  document.getElementById("result").textContent =
    "RESULT loaded=" + loaded + " failed=" + failed.length +
    " last_ms=" + last.toFixed(1) + " load_ms=" + performance.now().toFixed(1) +
    " failed_list=" + failed.join(",") + " END";
}});
</script></head><body>
<pre id="result">pending</pre>
{imgs}</body></html>
"#
    )
}

/// What the page wrote, parsed.
#[derive(Debug)]
struct PageResult {
    loaded: usize,
    failed: usize,
    last_ms: f64,
    load_ms: f64,
    failed_list: String,
}

fn parse_result(dom: &str) -> Option<PageResult> {
    // The <pre>'s text (the script's own source names the words too).
    let text = dom
        .split("<pre id=\"result\">")
        .nth(1)?
        .split("</pre>")
        .next()?;
    let start = text.find("RESULT ")?;
    let end = start + text[start..].find(" END")?;
    let mut fields = BTreeMap::new();
    for word in text[start + 7..end].split(' ') {
        if let Some((k, v)) = word.split_once('=') {
            fields.insert(k, v);
        }
    }
    Some(PageResult {
        loaded: fields.get("loaded")?.parse().ok()?,
        failed: fields.get("failed")?.parse().ok()?,
        last_ms: fields.get("last_ms")?.parse().ok()?,
        load_ms: fields.get("load_ms")?.parse().ok()?,
        failed_list: fields.get("failed_list").unwrap_or(&"").to_string(),
    })
}

/// Loads `url` in headless Chromium through `proxy` (`socks5://…` or
/// `http://…`): the dumped DOM and Chromium's wall time, or `None` when the
/// watchdog killed it.
async fn chromium_load(proxy: &str, url: &str) -> (Duration, Option<String>) {
    let profile = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let child = headless_chromium(profile.path(), proxy)
        .args([
            "--disable-extensions",
            "--disable-default-apps",
            // Chromium never proxies loopback unless told to. Its own
            // requests to Google's services go direct (and fail offline)
            // instead of taking tunnel streams from the page.
            "--proxy-bypass-list=<-loopback>;*.google.com;*.googleapis.com;*.gvt1.com;*.gstatic.com",
            // No --virtual-time-budget: virtual time would stop the page's
            // clock while the network is busy. --dump-dom prints the DOM once
            // the load event has run.
            "--dump-dom",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so the watchdog kills the renderers too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("run {CHROMIUM} (apt-get install chromium): {e}"));
    let pgid = child.id().expect("chromium's pid") as i32;
    let result = tokio::time::timeout(CHROMIUM_WATCHDOG, child.wait_with_output()).await;
    let took = start.elapsed();
    // Whatever is left of the group (a renderer that outlived the browser,
    // or everything after the watchdog).
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    match result {
        Ok(out) => (
            took,
            Some(String::from_utf8_lossy(&out.expect("chromium runs").stdout).into_owned()),
        ),
        Err(_) => (took, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_48_images_from_8_origins() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium (scripts/test does)"
    );
    let gateway = gateway().await;
    let mut failures = Vec::new();
    // The browser's two ways to use the proxy. A fresh client (a new session)
    // and fresh origins for each, so the loads do not share anything but the
    // gateway.
    for scheme in ["socks5", "http"] {
        let client = connect(&gateway).await;
        let page: Page = Arc::new(Mutex::new(None));
        let mut origins = Vec::new();
        for _ in 0..ORIGINS {
            // Each image takes the server 20 ms, so a connection stays busy
            // for a moment and the browser opens several per origin.
            origins.push(Origin::start(page.clone(), Duration::from_millis(20)).await);
        }
        let addrs: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
        *page.lock().unwrap() = Some(page_html(&addrs));
        let url = format!("http://{}/page", addrs[0]);
        let (took, dom) = chromium_load(&format!("{scheme}://{}", client.proxy), &url).await;

        let images_served: usize = origins
            .iter()
            .map(|o| o.served().iter().filter(|p| p.starts_with("/img/")).count())
            .sum();
        let per_origin: Vec<String> = origins
            .iter()
            .map(|o| {
                let imgs = o.served().iter().filter(|p| p.starts_with("/img/")).count();
                format!("{imgs} images/{} conns", o.connections())
            })
            .collect();
        let served_line = format!(
            "{scheme}: origins served {images_served}/{} images ({})",
            ORIGINS * IMAGES_PER_ORIGIN,
            per_origin.join(", ")
        );
        let Some(dom) = dom else {
            failures.push(format!(
                "{scheme}: Chromium had not finished the page after {} (killed)\n  {served_line}\n  {}",
                ms(took),
                stream_summary(&client)
            ));
            eprintln!("{}", failures.last().unwrap());
            continue;
        };
        let Some(result) = parse_result(&dom) else {
            let state = if dom.contains("<pre id=\"result\">pending</pre>") {
                "the page's load event had not run".to_owned()
            } else {
                format!(
                    "no result in the page: {}",
                    dom.chars().take(300).collect::<String>()
                )
            };
            failures.push(format!(
                "{scheme}: Chromium printed the DOM after {}, but {state}\n  {served_line}\n  {}",
                ms(took),
                stream_summary(&client)
            ));
            eprintln!("{}", failures.last().unwrap());
            continue;
        };
        eprintln!(
            "{scheme}: {} loaded, {} failed; last image at {:.0} ms, load event at {:.0} ms \
             (navigation start = 0); Chromium ran {}\n  {served_line}\n  {}",
            result.loaded,
            result.failed,
            result.last_ms,
            result.load_ms,
            ms(took),
            stream_summary(&client)
        );
        let total = ORIGINS * IMAGES_PER_ORIGIN;
        if result.loaded != total || result.failed != 0 {
            failures.push(format!(
                "{scheme}: {}/{total} images loaded, {} failed ({}); {served_line}",
                result.loaded, result.failed, result.failed_list
            ));
        }
        if result.load_ms > PAGE_LIMIT_MS {
            failures.push(format!(
                "{scheme}: the page took {:.0} ms (limit {PAGE_LIMIT_MS:.0} ms)",
                result.load_ms
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
