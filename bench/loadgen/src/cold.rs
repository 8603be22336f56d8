//! Cold connect to first byte: start a tunnel client process, and as soon
//! as it says its local proxy listens, fetch a URL through that proxy
//! (SOCKS5); report how long the first byte of the answer took.
//!
//! The client (`httvps connect --json`) prints `{"type":"listening",…}`
//! right after it has started its first connection attempt, and a state
//! line `{"type":"state","data":{"state":"active",…}}` once the tunnel is
//! up. Its local proxy holds a request that arrives before then until the
//! tunnel is up, so fetching at once, as an application does, needs no
//! polling and measures the whole of: the transport's handshakes, the
//! session's, opening the stream, and the request and its first answer byte.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

use crate::http::{self, Target};
use crate::socks5;

/// Longest line read from the client's output.
const MAX_LINE: usize = 64 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct ColdOptions {
    /// The client command and its arguments (it inherits our environment).
    pub command: Vec<OsString>,
    /// What to fetch through its proxy (sent to the proxy by name).
    pub target: Target,
    /// Longest the whole measurement may take.
    pub timeout: Duration,
}

/// The JSON the `cold-connect` command prints; times in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct ColdReport {
    /// The URL fetched.
    pub target: String,
    /// From starting the process to its `listening` line (process start,
    /// configuration, binding the proxy).
    pub spawn_to_listening_ms: f64,
    /// From the `listening` line (the connection attempt has started) to
    /// the first byte of the answer: the measure.
    pub listening_to_first_byte_ms: f64,
    /// From the `listening` line to the `active` state line; `null` when it
    /// was not seen before the answer was complete.
    pub listening_to_active_ms: Option<f64>,
    /// From the `listening` line to the last byte of the answer.
    pub listening_to_last_byte_ms: f64,
    /// From starting the process to the first byte of the answer.
    pub spawn_to_first_byte_ms: f64,
    /// Body bytes received.
    pub body_bytes: u64,
}

/// Why the measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColdError {
    /// No command given.
    #[error("no client command")]
    NoCommand,
    /// The process could not be started.
    #[error("starting the client: {0}")]
    Spawn(std::io::Error),
    /// The client's output ended or said it failed.
    #[error("the client: {0}")]
    Client(String),
    /// The fetch through the proxy failed.
    #[error("fetch: {0}")]
    Fetch(String),
    /// Everything took longer than the timeout.
    #[error("not done within {0:?}")]
    Timeout(Duration),
}

/// Runs the client, measures, and stops the client again (SIGTERM, then
/// SIGKILL after 5 s).
pub async fn run(opts: ColdOptions) -> Result<ColdReport, ColdError> {
    let (program, args) = opts.command.split_first().ok_or(ColdError::NoCommand)?;
    let spawned = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ColdError::Spawn)?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped"));
    let result = tokio::time::timeout(opts.timeout, measure(&mut lines, &opts, spawned)).await;
    // Keep reading its output while it stops: a client that prints its
    // last events into a closed pipe fails on the way out.
    let drain = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut lines, &mut tokio::io::sink()).await;
    });
    stop(&mut child).await;
    drain.abort();
    result.map_err(|_| ColdError::Timeout(opts.timeout))?
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet
        // (we hold the Child), so it cannot name another process.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// What a line of the client's output says.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Listening(SocketAddr),
    Active,
    Failed(String),
    Other,
}

fn classify(line: &str) -> Line {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Line::Other;
    };
    match v["type"].as_str() {
        Some("listening") => match v["data"]["proxy"].as_str().and_then(|a| a.parse().ok()) {
            Some(addr) => Line::Listening(addr),
            None => Line::Failed(format!("a listening line without a proxy address: {line}")),
        },
        Some("state") => match v["data"]["state"].as_str() {
            Some("active") => Line::Active,
            Some("disconnected") => Line::Failed(format!("disconnected: {line}")),
            _ => Line::Other,
        },
        Some("error") => Line::Failed(line.to_owned()),
        _ => Line::Other,
    }
}

async fn next_line(lines: &mut BufReader<ChildStdout>) -> Result<String, ColdError> {
    let mut line = Vec::new();
    let n = (&mut *lines)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| ColdError::Client(format!("reading its output: {e}")))?;
    if n == 0 {
        return Err(ColdError::Client("its output ended (it exited)".into()));
    }
    Ok(String::from_utf8_lossy(&line).trim().to_owned())
}

async fn measure(
    lines: &mut BufReader<ChildStdout>,
    opts: &ColdOptions,
    spawned: Instant,
) -> Result<ColdReport, ColdError> {
    let mut active_early = false;
    let (proxy, listening) = loop {
        match classify(&next_line(lines).await?) {
            Line::Listening(addr) => break (addr, Instant::now()),
            Line::Active => active_early = true,
            Line::Failed(why) => return Err(ColdError::Client(why)),
            Line::Other => {}
        }
    };
    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1000.0;
    // Watch for `active` while the fetch runs.
    let watch = async {
        if active_early {
            return Ok(Instant::now());
        }
        loop {
            match classify(&next_line(lines).await?) {
                Line::Active => return Ok(Instant::now()),
                Line::Failed(why) => return Err(ColdError::Client(why)),
                _ => {}
            }
        }
    };
    let fetch = fetch(proxy, &opts.target);
    tokio::pin!(watch, fetch);
    let mut active: Option<Instant> = None;
    let (first, last, body) = loop {
        tokio::select! {
            got = &mut fetch => break got?,
            seen = &mut watch, if active.is_none() => active = Some(seen?),
        }
    };
    Ok(ColdReport {
        target: opts.target.to_string(),
        spawn_to_listening_ms: ms(spawned, listening),
        listening_to_first_byte_ms: ms(listening, first),
        listening_to_active_ms: active.map(|a| ms(listening, a)),
        listening_to_last_byte_ms: ms(listening, last),
        spawn_to_first_byte_ms: ms(spawned, first),
        body_bytes: body,
    })
}

/// GET through the SOCKS5 proxy: the time of the first answer byte, of
/// the last, and the body's size.
async fn fetch(proxy: SocketAddr, target: &Target) -> Result<(Instant, Instant, u64), ColdError> {
    let fail = |what: &str, e: String| ColdError::Fetch(format!("{what}: {e}"));
    let mut tcp = TcpStream::connect(proxy)
        .await
        .map_err(|e| fail("connecting to the proxy", e.to_string()))?;
    tcp.set_nodelay(true)
        .map_err(|e| fail("nodelay", e.to_string()))?;
    socks5::connect(&mut tcp, &target.host, target.port)
        .await
        .map_err(|e| fail("socks5", e.to_string()))?;
    tcp.write_all(&target.get_request())
        .await
        .map_err(|e| fail("sending the request", e.to_string()))?;
    let mut buf = Vec::with_capacity(4096);
    let mut first = None;
    let head = loop {
        if let Some(head) = http::parse_head(&buf).map_err(|e| fail("answer", e.to_string()))? {
            break head;
        }
        let n = tcp
            .read_buf(&mut buf)
            .await
            .map_err(|e| fail("reading the answer", e.to_string()))?;
        if n == 0 {
            return Err(fail("answer", "closed before its head ended".into()));
        }
        first.get_or_insert_with(Instant::now);
    };
    let first = first.expect("a head needs bytes");
    if head.status != 200 {
        return Err(fail("answer", format!("status {}", head.status)));
    }
    let mut have = (buf.len() - head.head_len) as u64;
    let mut chunk = [0u8; 16 * 1024];
    while have < head.content_length {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| fail("reading the body", e.to_string()))?;
        if n == 0 {
            return Err(fail(
                "body",
                format!("closed after {have} of {} bytes", head.content_length),
            ));
        }
        have += n as u64;
    }
    Ok((first, Instant::now(), have))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_lines() {
        assert_eq!(
            classify(r#"{"type":"listening","data":{"proxy":"127.0.0.1:1080","dns":null}}"#),
            Line::Listening("127.0.0.1:1080".parse().unwrap())
        );
        assert_eq!(
            classify(r#"{"type":"state","data":{"state":"active","session_id":"s"}}"#),
            Line::Active
        );
        assert_eq!(
            classify(r#"{"type":"state","data":{"state":"authenticating","server":"x"}}"#),
            Line::Other
        );
        assert!(matches!(
            classify(r#"{"type":"error","data":{"code":"x","message":"y"}}"#),
            Line::Failed(_)
        ));
        assert!(matches!(
            classify(r#"{"type":"state","data":{"state":"disconnected","reason":"r"}}"#),
            Line::Failed(_)
        ));
        assert_eq!(classify("not json"), Line::Other);
    }
}
