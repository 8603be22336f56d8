//! Flow control end to end: the client SDK against the `httvps-gateway`
//! binary, with real targets. A paused reader stalls only its own stream and
//! loses nothing; both directions saturated on many streams never deadlock;
//! peers without the `flow_control` extension keep the contract's bounded
//! behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use httvps_client::{Secret, TargetAddr, Tunnel};
use sha2::{Digest, Sha256};
use testkit::{EchoServer, HttpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod sdk;
use sdk::*;

/// This process's resident memory, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

/// Sends `GET /stream/len` on a new stream; returns it after the response head.
async fn start_download(tunnel: &Tunnel, http: &HttpServer, len: usize) -> httvps_client::Stream {
    let mut stream = tunnel.open(TargetAddr::Ip(http.addr())).await.unwrap();
    let request = format!("GET /stream/{len} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads the rest of an HTTP/1.1 response whose first bytes are in `first`;
/// returns (body sha256, body length). The body is chunked or delimited by
/// the close (hyper's streaming body without a length).
async fn finish_download(stream: &mut httvps_client::Stream, mut raw: Vec<u8>) -> (String, usize) {
    stream
        .read_to_end(&mut raw)
        .await
        .expect("the download ends cleanly");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
    let body = &raw[head_end..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (hex(&Sha256::digest(&body)), body.len())
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("size line");
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A paused 200 MB download: other streams stay fast during an 8 s pause,
/// every byte arrives after it, and the client's memory stays bounded by the
/// stream's window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_download_stalls_only_itself_and_loses_nothing() {
    const LEN: usize = 200 * 1024 * 1024;
    let gateway = Gateway::direct(&[]).await;
    let tunnel = gateway.tunnel().await;
    assert!(tunnel.flow_control(), "both sides speak flow_control");
    let http = HttpServer::start().await;
    let echo = EchoServer::start().await;
    let mut big = start_download(&tunnel, &http, LEN).await;
    // Read the first 8 MiB at full speed (the window grows), then pause.
    let mut raw = vec![0u8; 8 * 1024 * 1024];
    big.read_exact(&mut raw).await.unwrap();
    let rss_before = rss_bytes();
    let paused_at = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut fetches = 0;
    while paused_at.elapsed() < Duration::from_secs(8) {
        let started = Instant::now();
        let (sent, received) = tokio::time::timeout(
            Duration::from_secs(5),
            echo_round_trip(&tunnel, echo.addr(), 64 * 1024),
        )
        .await
        .expect("another stream is not stalled by the paused one");
        assert_eq!(sent, received);
        slowest = slowest.max(started.elapsed());
        fetches += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rss_paused = rss_bytes();
    eprintln!(
        "{fetches} fetches during the pause, slowest {slowest:?}; RSS {} MiB -> {} MiB",
        rss_before >> 20,
        rss_paused >> 20
    );
    assert!(
        slowest < Duration::from_secs(1),
        "slowest fetch {slowest:?}"
    );
    // What a paused stream may hold is its window (16 MiB at most by default)
    // plus what its reader had taken; allow the allocator its slack.
    assert!(
        rss_paused < rss_before + 48 * 1024 * 1024,
        "memory grew from {rss_before} to {rss_paused} during the pause"
    );
    let (hash, len) = finish_download(&mut big, raw).await;
    assert_eq!(len, LEN, "every byte arrived");
    assert_eq!(hash, testkit::bytes_sha256(LEN));
    assert!(tunnel.is_active());
}

/// Without the extension on the client side, the contract's bounded
/// behaviour holds: a reader slower than `stall_timeout` is ended, so it
/// cannot stall the other streams for longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_flow_control_a_slow_reader_is_ended_without_stalling_others() {
    let gateway = Gateway::direct(&[]).await;
    let mut config = gateway.config();
    config.flow_control = false;
    config.stall_timeout = Duration::from_millis(300);
    config.stream_buffer_frames = 4;
    let tunnel = Tunnel::connect(config, &Secret::from(TOKEN)).await.unwrap();
    assert!(!tunnel.flow_control());
    let http = HttpServer::start().await;
    let mut slow = start_download(&tunnel, &http, 50 * 1024 * 1024).await;
    // Never read `slow`; other streams keep working meanwhile, each within a
    // few stall bounds, until the driver ends the slow one.
    let echo = EchoServer::start().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.end().is_none() {
        assert!(Instant::now() < deadline, "the slow reader was never ended");
        let (sent, received) = tokio::time::timeout(
            Duration::from_secs(10),
            echo_round_trip(&tunnel, echo.addr(), 100_000),
        )
        .await
        .expect("not stalled");
        assert_eq!(sent, received);
    }
    // The slow stream was ended locally and says so once read.
    let mut sink = Vec::new();
    let err = slow.read_to_end(&mut sink).await.unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");
    assert!(tunnel.is_active());
}

/// A gateway started with `--no-flow-control` and our client: the session
/// works as before the extension, uploads and downloads intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_flow_control_still_works() {
    let gateway = Gateway::direct(&["--no-flow-control"]).await;
    let tunnel = gateway.tunnel().await;
    assert!(!tunnel.flow_control(), "the gateway did not accept it");
    let http = HttpServer::start().await;
    let (status, expected, got, len) = http_get(&tunnel, &http, "/bytes/3000000").await;
    assert_eq!((status, len), (200, 3_000_000));
    assert_eq!(expected, got);
    let echo = EchoServer::start().await;
    let (sent, received) = echo_round_trip(&tunnel, echo.addr(), 2_000_000).await;
    assert_eq!(sent, received);
}

/// One stream of the saturation test: writes a deterministic sequence and
/// checks the echo against it, counting progress.
async fn saturate(
    stream: httvps_client::Stream,
    seed: u64,
    until: Instant,
    progress: Arc<AtomicU64>,
) -> (u64, u64) {
    const CYCLE: usize = 256 * 1024;
    let pattern = Arc::new(testkit::pseudo_random_bytes(seed, CYCLE));
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = {
        let pattern = pattern.clone();
        async move {
            let mut sent = 0u64;
            let mut at = 0;
            while Instant::now() < until {
                let piece = &pattern[at..(at + 16 * 1024).min(CYCLE)];
                writer.write_all(piece).await.expect("write");
                sent += piece.len() as u64;
                at = (at + piece.len()) % CYCLE;
            }
            writer.shutdown().await.expect("shutdown");
            (sent, writer)
        }
    };
    let read = async move {
        let mut got = 0u64;
        let mut at = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).await.expect("read");
            if n == 0 {
                return got;
            }
            for &b in &buf[..n] {
                assert_eq!(b, pattern[at], "byte {got} of stream {seed} differs");
                at = (at + 1) % CYCLE;
                got += 1;
            }
            progress.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let ((sent, _writer), got) = tokio::join!(write, read);
    (sent, got)
}

/// Both directions saturated on 50 streams at once (`HTTVPS_SATURATE_SECS`,
/// 60 by default): every stream keeps moving, nothing errs, and every byte
/// comes back identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_streams_saturated_both_ways_never_stall() {
    const STREAMS: u64 = 50;
    let secs = std::env::var("HTTVPS_SATURATE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let gateway = Gateway::direct(&["--max-streams", "50"]).await;
    let tunnel = gateway.tunnel().await;
    let echo = EchoServer::start().await;
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    let mut counters = Vec::new();
    for seed in 0..STREAMS {
        let stream = tunnel.open(TargetAddr::Ip(echo.addr())).await.unwrap();
        let progress = Arc::new(AtomicU64::new(0));
        counters.push(progress.clone());
        tasks.push(tokio::spawn(saturate(stream, seed, until, progress)));
    }
    // Watchdog: every stream moves at least once in every 10 s window.
    let mut last: Vec<u64> = vec![0; counters.len()];
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10).min(until - Instant::now())).await;
        for (n, counter) in counters.iter().enumerate() {
            let now = counter.load(Ordering::Relaxed);
            assert!(now > last[n], "stream {n} made no progress in 10 s");
            last[n] = now;
        }
    }
    let mut total = 0;
    for task in tasks {
        let (sent, got) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the stream finishes after the deadline")
            .expect("no panic");
        assert_eq!(sent, got, "every byte came back");
        total += got;
    }
    eprintln!(
        "{} MiB echoed on {STREAMS} streams in {secs} s",
        total >> 20
    );
    assert!(tunnel.is_active());
}

/// Hundreds of streams ending at once: the gateway queues a `stream_close`
/// for each while the client is busy reading, and must not take that for a
/// client that stopped reading (it once ended the session past 192 queued
/// messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_streams_ending_together_keep_the_session() {
    const STREAMS: usize = 600;
    let gateway = Gateway::direct(&["--max-streams", "600"]).await;
    let tunnel = gateway.tunnel().await;
    let http = HttpServer::start().await;
    let mut tasks = Vec::new();
    for _ in 0..STREAMS {
        let tunnel = tunnel.clone();
        let addr = http.addr();
        tasks.push(tokio::spawn(async move {
            let mut stream = tunnel.open(TargetAddr::Ip(addr)).await.expect("opens");
            let request = "GET /bytes/2000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            stream
                .read_to_end(&mut raw)
                .await
                .expect("the answer ends cleanly");
            raw.len()
        }));
    }
    for task in tasks {
        let len = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("every stream ends")
            .unwrap();
        assert!(len > 2000, "a whole answer: {len} bytes");
    }
    assert!(tunnel.is_active(), "{:?}", tunnel.state().borrow().clone());
}

/// Many streams open at once whose upstreams stay open and quiet after a
/// short answer: each holds only what it read, never credit for a read that
/// has not come (300 waiting reads of 64 KiB once took the whole 16 MiB
/// session window, and stream 257 got nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_open_streams_do_not_hold_the_session_credit() {
    const STREAMS: usize = 300;
    let gateway = Gateway::direct(&["--max-streams", "600"]).await;
    let tunnel = gateway.tunnel().await;
    let echo = EchoServer::start().await;
    let mut open = Vec::new();
    for n in 0..STREAMS {
        let mut stream = tunnel.open(TargetAddr::Ip(echo.addr())).await.unwrap();
        let hello = format!("stream {n:04}");
        stream.write_all(hello.as_bytes()).await.unwrap();
        open.push((stream, hello));
    }
    // Every stream stays open while the others answer.
    for (stream, hello) in &mut open {
        let mut back = vec![0u8; hello.len()];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| panic!("{hello}: no echo while the others stay open"))
            .unwrap();
        assert_eq!(back, hello.as_bytes());
    }
}
