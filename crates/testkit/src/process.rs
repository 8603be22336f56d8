//! Runs a server binary (the project's `httvps-gateway`) as a child process and
//! follows its JSON log lines to learn where it listens.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`GatewayProcess::spawn`] waits for the `listening` line.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Most log lines kept in memory.
const MAX_LOG_LINES: usize = 2000;
/// Longest log line kept; the rest of a longer line is dropped.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Log lines quoted in a startup error.
const ERROR_LOG_LINES: usize = 200;

/// What the reader tasks learned from the log, shared with the process handle.
struct Log {
    lines: Mutex<VecDeque<String>>,
    listen: Mutex<Option<SocketAddr>>,
    metrics: Mutex<Option<SocketAddr>>,
    h3: Mutex<Option<SocketAddr>>,
    /// Bumped on every line, so waiters wake up without polling.
    seen: watch::Sender<u64>,
}

impl Log {
    fn push(&self, line: String) {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
            let field = |name: &str| {
                value
                    .get("fields")
                    .and_then(|f| f.get(name))
                    // The relay's seed-shaped lines: `event` and `details`.
                    .or_else(|| value.get("details").and_then(|d| d.get(name)))
                    .or_else(|| value.get(name))
                    .and_then(|v| v.as_str())
            };
            let addr = field("addr").and_then(parse_addr);
            match (field("message").or_else(|| field("event")), addr) {
                (Some("listening"), Some(addr)) => {
                    *self.listen.lock().expect("log lock") = Some(addr)
                }
                (Some("metrics listening"), Some(addr)) => {
                    *self.metrics.lock().expect("log lock") = Some(addr)
                }
                (Some("h3 listening"), Some(addr)) => {
                    *self.h3.lock().expect("log lock") = Some(addr)
                }
                _ => {}
            }
        }
        {
            let mut lines = self.lines.lock().expect("log lock");
            if lines.len() >= MAX_LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
        self.seen.send_modify(|n| *n += 1);
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .cloned()
            .collect()
    }

    fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().expect("log lock");
        let skip = lines.len().saturating_sub(n);
        lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Accepts `127.0.0.1:1`, `[::1]:1`, and URL forms such as `ws://127.0.0.1:1/ws`.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split('/').next().unwrap_or(s);
    s.parse().ok()
}

/// Reads one line into `line` (at most `max` bytes kept); false at end of input.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    line.clear();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(!line.is_empty());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        reader.consume(take);
        if done {
            return Ok(true);
        }
    }
}

fn follow<R: AsyncRead + Unpin + Send + 'static>(stream: R, log: Arc<Log>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while let Ok(true) = read_line_bounded(&mut reader, &mut line, MAX_LINE_BYTES).await {
            let text = String::from_utf8_lossy(&line);
            log.push(text.trim_end_matches(['\n', '\r']).to_string());
        }
    })
}

/// A server binary under test, started with piped output whose JSON log lines
/// tell where it listens. Killed (with its process group) on drop.
pub struct GatewayProcess {
    child: Child,
    addr: SocketAddr,
    log: Arc<Log>,
    readers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for GatewayProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayProcess")
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl GatewayProcess {
    /// Starts `bin` and waits up to 20 s for its `listening` log line.
    pub async fn spawn(
        bin: &Path,
        args: &[String],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<GatewayProcess> {
        Self::spawn_with_timeout(bin, args, envs, LISTEN_TIMEOUT).await
    }

    /// Like [`GatewayProcess::spawn`] with a chosen startup timeout.
    pub async fn spawn_with_timeout(
        bin: &Path,
        args: &[String],
        envs: &[(&str, &str)],
        timeout: Duration,
    ) -> anyhow::Result<GatewayProcess> {
        let mut child = Command::new(bin)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group, so drop can also end anything the program started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let (seen, mut seen_rx) = watch::channel(0);
        let log = Arc::new(Log {
            lines: Mutex::new(VecDeque::new()),
            listen: Mutex::new(None),
            metrics: Mutex::new(None),
            h3: Mutex::new(None),
            seen,
        });
        let mut readers = Vec::new();
        // The tracing JSON logs go to stderr; stdout is followed too, in case.
        if let Some(stderr) = child.stderr.take() {
            readers.push(follow(stderr, log.clone()));
        }
        if let Some(stdout) = child.stdout.take() {
            readers.push(follow(stdout, log.clone()));
        }
        let mut process = GatewayProcess {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
            readers,
        };

        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            seen_rx.mark_unchanged();
            let listen = *process.log.listen.lock().expect("log lock");
            if let Some(addr) = listen {
                process.addr = addr;
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait().context("polling the child")? {
                // Let the readers drain what the program wrote before it died.
                for reader in process.readers.iter_mut() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
                }
                bail!(
                    "{} exited with {status} before logging \"listening\"; output:\n{}",
                    bin.display(),
                    process.log.tail(ERROR_LOG_LINES)
                );
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                bail!(
                    "{} did not log \"listening\" within {timeout:?}; output so far:\n{}",
                    bin.display(),
                    process.log.tail(ERROR_LOG_LINES)
                );
            }
            // Wake on a new line, or poll for exit every 50 ms.
            let wait = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(wait, seen_rx.changed()).await;
        }
    }

    /// The listener address from the `listening` line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP/3 (UDP) address from an `h3 listening` line, if one was
    /// logged (servers log it before `listening`).
    pub fn h3_addr(&self) -> Option<SocketAddr> {
        *self.log.h3.lock().expect("log lock")
    }

    /// The metrics address from a `metrics listening` line, if one was logged yet.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        *self.log.metrics.lock().expect("log lock")
    }

    /// Waits for the `metrics listening` line, which a program may log after
    /// `listening` (so it may not have been read when `spawn` returned).
    pub async fn wait_metrics_addr(&self, timeout: Duration) -> anyhow::Result<SocketAddr> {
        let mut seen = self.log.seen.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            seen.mark_unchanged();
            if let Some(addr) = self.metrics_addr() {
                return Ok(addr);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                bail!(
                    "no \"metrics listening\" line within {timeout:?}; output so far:\n{}",
                    self.log.tail(ERROR_LOG_LINES)
                );
            }
            let _ = tokio::time::timeout(deadline - now, seen.changed()).await;
        }
    }

    /// The child's pid while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The retained output lines (the last 2000), oldest first, so tests can
    /// check what was logged (and that secrets were not).
    pub fn logs(&self) -> Vec<String> {
        self.log.snapshot()
    }

    /// Waits until a retained line contains `needle` and returns that line.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let mut seen = self.log.seen.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            seen.mark_unchanged();
            if let Some(line) = self.log.snapshot().into_iter().find(|l| l.contains(needle)) {
                return Ok(line);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                bail!(
                    "no log line containing {needle:?} within {timeout:?}; output so far:\n{}",
                    self.log.tail(ERROR_LOG_LINES)
                );
            }
            let _ = tokio::time::timeout(deadline - now, seen.changed()).await;
        }
    }

    /// Asks for a graceful shutdown. A process already gone is not an error.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Asks the process to reload its configuration.
    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    fn signal(&self, signal: libc::c_int) {
        // `id()` is None once reaped, so a recycled pid is never signalled.
        if let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) has no memory-safety preconditions. The group id
            // is the child's pid (process_group(0)), alive until reaped.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// Polls until `addr` accepts TCP, for servers that signal readiness no other way.
pub async fn wait_for_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e)
                    .with_context(|| format!("{addr} did not accept TCP within {timeout:?}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENING: &str = r#"{"timestamp":"2025-01-01T00:00:00Z","level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:4433"},"target":"httvps_gateway"}"#;
    const METRICS: &str =
        r#"{"level":"INFO","fields":{"message":"metrics listening","addr":"127.0.0.1:9090"}}"#;

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".to_string(), script.to_string()]
    }

    #[tokio::test]
    async fn parses_listening_lines_and_keeps_logs() {
        let script = format!(
            "echo 'not json' 1>&2; echo '{METRICS}' 1>&2; echo '{LISTENING}' 1>&2; echo \"token=$SECRET_ENV\" 1>&2; exec sleep 30"
        );
        let gw = GatewayProcess::spawn(Path::new("sh"), &sh(&script), &[("SECRET_ENV", "abc")])
            .await
            .expect("spawn fake gateway");
        assert_eq!(gw.addr(), "127.0.0.1:4433".parse().expect("addr"));
        assert_eq!(
            gw.metrics_addr(),
            Some("127.0.0.1:9090".parse().expect("addr"))
        );
        gw.wait_for_log("token=abc", Duration::from_secs(5))
            .await
            .expect("env passed");
        let logs = gw.logs();
        assert_eq!(logs[0], "not json");
        assert!(logs.iter().any(|l| l == LISTENING));
    }

    #[tokio::test]
    async fn sigterm_and_wait_exit() {
        let script = format!(
            "trap 'echo got-term 1>&2; kill $! 2>/dev/null; exit 0' TERM; trap 'echo got-hup 1>&2' HUP; \
             echo '{LISTENING}' 1>&2; sleep 0.2; echo '{METRICS}' 1>&2; \
             sleep 30 & while :; do wait; done"
        );
        let mut gw = GatewayProcess::spawn(Path::new("sh"), &sh(&script), &[])
            .await
            .expect("spawn");
        // Logged after `listening`, as the real gateway does.
        let metrics = gw
            .wait_metrics_addr(Duration::from_secs(5))
            .await
            .expect("metrics line");
        assert_eq!(metrics.port(), 9090);
        gw.sighup();
        gw.wait_for_log("got-hup", Duration::from_secs(5))
            .await
            .expect("HUP trap ran");
        assert_eq!(gw.wait_exit(Duration::from_millis(100)).await, None);
        gw.sigterm();
        let status = gw.wait_exit(Duration::from_secs(10)).await.expect("exited");
        assert!(status.success(), "{status}");
        gw.wait_for_log("got-term", Duration::from_secs(5))
            .await
            .expect("trap ran");
    }

    #[tokio::test]
    async fn reports_early_exit_with_output() {
        let err = GatewayProcess::spawn(
            Path::new("sh"),
            &sh("echo 'config error: no backend' 1>&2; exit 3"),
            &[],
        )
        .await
        .expect_err("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("config error: no backend"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }

    #[tokio::test]
    async fn reports_timeout_with_output() {
        let err = GatewayProcess::spawn_with_timeout(
            Path::new("sh"),
            &sh("echo 'starting up' 1>&2; exec sleep 30"),
            &[],
            Duration::from_millis(500),
        )
        .await
        .expect_err("must time out");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("starting up") && msg.contains("did not log"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn drop_kills_the_process_group() {
        let script = format!("echo '{LISTENING}' 1>&2; sleep 30 & wait");
        let gw = GatewayProcess::spawn(Path::new("sh"), &sh(&script), &[])
            .await
            .expect("spawn");
        let pgid = libc::pid_t::try_from(gw.pid().expect("pid")).expect("pid fits");
        drop(gw);
        // Once every member is gone, signalling the group fails with ESRCH.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        // SAFETY: signal 0 only checks for existence.
        while unsafe { libc::kill(-pgid, 0) } == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "process group still alive"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn parses_address_forms() {
        assert_eq!(
            parse_addr("127.0.0.1:1"),
            Some(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
        assert_eq!(
            parse_addr("ws://127.0.0.1:2/ws"),
            Some(SocketAddr::from(([127, 0, 0, 1], 2)))
        );
        assert_eq!(parse_addr("[::1]:3").map(|a| a.port()), Some(3));
        assert_eq!(parse_addr("nope"), None);
    }

    #[tokio::test]
    async fn waits_for_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        wait_for_port(addr, Duration::from_secs(1))
            .await
            .expect("open port");
        drop(listener);
        assert!(
            wait_for_port(crate::closed_port(), Duration::from_millis(100))
                .await
                .is_err()
        );
    }
}
