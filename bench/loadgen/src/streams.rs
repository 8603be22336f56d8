//! N concurrent streams: every connection starts at once, fetches the target,
//! and stays open until all of them have finished (or failed), so at the peak
//! the proxy holds N streams at the same time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::http::{self, HeadError, Target};
use crate::socks5::{self, Socks5Error};

/// Most distinct error messages kept in a report; the rest are counted under
/// one "other errors" key.
const MAX_ERROR_KINDS: usize = 16;

/// What to run.
#[derive(Debug, Clone)]
pub struct StreamsOptions {
    /// The SOCKS5 proxy, or `None` to connect to the target directly.
    pub proxy: Option<SocketAddr>,
    /// What each stream fetches.
    pub target: Target,
    /// How many streams.
    pub streams: usize,
    /// Deadline of each stream, from its TCP connect to its last body byte.
    pub timeout: Duration,
    /// How long to keep every finished stream open once all are done.
    pub hold: Duration,
    /// Largest body accepted per stream.
    pub max_body: u64,
}

/// Latency percentiles, milliseconds (nearest-rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Fastest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (any order); `None` when empty.
    pub fn of(samples: &mut [f64]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            // Nearest rank: the smallest sample with at least p% at or below it.
            let idx = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[idx.clamp(1, samples.len()) - 1]
        };
        Some(Percentiles {
            min: samples[0],
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: samples[samples.len() - 1],
        })
    }
}

/// The JSON the `streams` command prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL fetched.
    pub target: String,
    /// The proxy, or `null` for direct connections.
    pub proxy: Option<SocketAddr>,
    /// Streams started.
    pub streams: usize,
    /// Streams that got the whole body with status 200.
    pub completed: usize,
    /// Streams that failed (`completed + failed == streams`).
    pub failed: usize,
    /// Completed streams still open together when all had finished.
    pub open_at_peak: usize,
    /// From the first connect to the last stream's end, milliseconds.
    pub wall_ms: f64,
    /// Body bytes received in all.
    pub body_bytes: u64,
    /// Per-stream time from TCP connect to the last body byte, completed
    /// streams only; `null` when none completed.
    pub latency_ms: Option<Percentiles>,
    /// Failures by message.
    pub errors: BTreeMap<String, usize>,
}

/// Why one stream failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error(transparent)]
    Socks5(#[from] Socks5Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error("http status {0}")]
    Status(u16),
    #[error("body of {0} bytes is over the limit")]
    BodyTooLarge(u64),
    #[error("closed before the end of the answer")]
    Eof,
    #[error("timed out")]
    Timeout,
}

/// One finished stream: its latency, body size and the still open socket.
type Finished = (Duration, u64, TcpStream);

async fn fetch(opts: &StreamsOptions, request: &[u8]) -> Result<Finished, Failure> {
    let started = Instant::now();
    let addr = match opts.proxy {
        Some(proxy) => proxy,
        None => tokio::net::lookup_host((opts.target.host.as_str(), opts.target.port))
            .await
            .map_err(Failure::Connect)?
            .next()
            .ok_or_else(|| Failure::Connect(std::io::ErrorKind::NotFound.into()))?,
    };
    let mut tcp = TcpStream::connect(addr).await.map_err(Failure::Connect)?;
    tcp.set_nodelay(true)?;
    if opts.proxy.is_some() {
        socks5::connect(&mut tcp, &opts.target.host, opts.target.port).await?;
    }
    tcp.write_all(request).await?;
    let mut buf = Vec::with_capacity(4096);
    let head = loop {
        if let Some(head) = http::parse_head(&buf)? {
            break head;
        }
        let n = tcp.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(Failure::Eof);
        }
    };
    if head.status != 200 {
        return Err(Failure::Status(head.status));
    }
    if head.content_length > opts.max_body {
        return Err(Failure::BodyTooLarge(head.content_length));
    }
    let mut have = (buf.len() - head.head_len) as u64;
    let mut chunk = [0u8; 16 * 1024];
    while have < head.content_length {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(Failure::Eof);
        }
        have += n as u64;
    }
    if have > head.content_length {
        // A keep-alive server sends nothing after the body until asked.
        return Err(Failure::Io(std::io::Error::other(
            "more bytes than the content-length",
        )));
    }
    Ok((started.elapsed(), have, tcp))
}

/// Runs the test and reports. Failures of single streams are in the report,
/// never an error: the caller decides what counts as broken.
pub async fn run(opts: StreamsOptions) -> Report {
    let request: std::sync::Arc<[u8]> = opts.target.get_request().into();
    let shared = std::sync::Arc::new(opts.clone());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..opts.streams {
        let (opts, request) = (shared.clone(), request.clone());
        tasks.spawn(async move {
            match tokio::time::timeout(opts.timeout, fetch(&opts, &request)).await {
                Ok(result) => result,
                Err(_) => Err(Failure::Timeout),
            }
        });
    }
    let mut open = Vec::with_capacity(opts.streams);
    let mut latencies = Vec::with_capacity(opts.streams);
    let mut errors = BTreeMap::new();
    let mut body_bytes = 0;
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((latency, bytes, tcp))) => {
                latencies.push(latency.as_secs_f64() * 1000.0);
                body_bytes += bytes;
                open.push(tcp);
            }
            Ok(Err(failure)) => {
                failed += 1;
                count_error(&mut errors, failure.to_string());
            }
            Err(join) => {
                failed += 1;
                count_error(&mut errors, format!("task: {join}"));
            }
        }
    }
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let open_at_peak = open.len();
    tokio::time::sleep(opts.hold).await;
    drop(open);
    Report {
        target: opts.target.to_string(),
        proxy: opts.proxy,
        streams: opts.streams,
        completed: latencies.len(),
        failed,
        open_at_peak,
        wall_ms,
        body_bytes,
        latency_ms: Percentiles::of(&mut latencies),
        errors,
    }
}

fn count_error(errors: &mut BTreeMap<String, usize>, message: String) {
    let key = if errors.len() < MAX_ERROR_KINDS || errors.contains_key(&message) {
        message
    } else {
        "other errors".to_owned()
    };
    *errors.entry(key).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(Percentiles::of(&mut []), None);
        let p = Percentiles::of(&mut [5.0]).unwrap();
        assert_eq!((p.min, p.p50, p.p99, p.max), (5.0, 5.0, 5.0, 5.0));
        let mut samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!(
            (p.min, p.p50, p.p90, p.p99, p.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        let p = Percentiles::of(&mut [1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((p.p50, p.p99), (2.0, 4.0));
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut errors = BTreeMap::new();
        for i in 0..100 {
            count_error(&mut errors, format!("e{}", i % 40));
        }
        assert_eq!(errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(errors.values().sum::<usize>(), 100);
    }
}
