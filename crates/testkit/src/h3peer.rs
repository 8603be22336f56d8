//! The independent HTTP/3 peer: Python's aioquic with wsproto
//! (`peers/h3ws_peer.py`), in a virtualenv that `scripts/python-peers`
//! creates once. Three modes: an HTTP/1.1 WebSocket echo backend, an
//! RFC 9220 client driven by JSON commands on stdin, and an RFC 9220
//! server that relays to an HTTP/1.1 WebSocket backend. Each prints JSON
//! lines on stdout, which [`PeerProcess`] hands out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{OnceCell, mpsc};

static PYTHON: OnceCell<PathBuf> = OnceCell::const_new();

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The virtualenv's python, set up on first use (`scripts/python-peers`).
pub async fn python() -> anyhow::Result<PathBuf> {
    PYTHON
        .get_or_try_init(|| async {
            let out = Command::new(repo_root().join("scripts/python-peers"))
                .stderr(Stdio::inherit())
                .output()
                .await
                .context("running scripts/python-peers")?;
            if !out.status.success() {
                bail!("scripts/python-peers failed ({})", out.status);
            }
            let path = String::from_utf8(out.stdout)?.trim().to_owned();
            Ok(PathBuf::from(path))
        })
        .await
        .cloned()
}

/// A running `h3ws_peer.py`; killed on drop.
pub struct PeerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every line seen so far, for failure messages.
    pub seen: Vec<Value>,
}

impl PeerProcess {
    /// Starts the peer with `args` (the mode first).
    pub async fn spawn(args: &[&str]) -> anyhow::Result<PeerProcess> {
        let script = repo_root().join("crates/testkit/peers/h3ws_peer.py");
        let mut child = Command::new(python().await?)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning h3ws_peer.py")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Ok(PeerProcess {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// The next line that `want` accepts, within `timeout`; lines before it
    /// are kept in [`PeerProcess::seen`].
    pub async fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv()).await;
            match line {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return Ok(v);
                    }
                }
                Ok(None) => bail!("the peer exited before {what}; it said {:?}", self.seen),
                Err(_) => bail!(
                    "no {what} within {timeout:?}; the peer said {:?}",
                    self.seen
                ),
            }
        }
    }

    /// The next event named `name` (`{"event": name, …}`).
    pub async fn event(&mut self, name: &str, timeout: Duration) -> anyhow::Result<Value> {
        self.expect(name, timeout, |v| v["event"] == name).await
    }

    /// The address a server mode printed (`{"listening": "HOST:PORT"}`).
    pub async fn listening(&mut self) -> anyhow::Result<SocketAddr> {
        let v = self
            .expect("listening", Duration::from_secs(30), |v| {
                v.get("listening").is_some()
            })
            .await?;
        Ok(v["listening"].as_str().unwrap_or_default().parse()?)
    }

    /// Sends one command (client mode).
    pub async fn send(&mut self, command: Value) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        let mut line = serde_json::to_vec(&command)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Waits for the process to exit (after `quit` or the end of its work).
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.stdin.take();
        Ok(tokio::time::timeout(timeout, self.child.wait()).await??)
    }
}

/// Our `h3ws-proxy` binary (`bin`) on a free loopback UDP port with `cert`
/// and `key`, in front of `backend`, plus `extra` flags (Go-style single
/// dash, as operators write them).
pub async fn start_h3ws_proxy(
    bin: &Path,
    cert: &Path,
    key: &Path,
    backend: &str,
    extra: &[&str],
) -> anyhow::Result<crate::GatewayProcess> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut args: Vec<String> = vec![
        "-listen".into(),
        "127.0.0.1:0".into(),
        "-cert".into(),
        path(cert),
        "-key".into(),
        path(key),
        "-backend".into(),
        backend.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    crate::GatewayProcess::spawn(bin, &args, &[]).await
}
