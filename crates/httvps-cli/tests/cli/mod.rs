//! What the `httvps` end-to-end suites share: the binaries, and a running
//! `httvps … --json` whose event lines are collected and can be awaited.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

pub const HTTVPS: &str = env!("CARGO_BIN_EXE_httvps");

/// The gateway binary, built beside `httvps` (cargo builds every binary of the
/// workspace for `cargo test --workspace`; build it if this run did not).
pub fn gateway_bin() -> PathBuf {
    sibling_bin("httvps-gateway", "httvps-gateway")
}

/// Binary `bin` of workspace package `package`, built beside `httvps`
/// (built here if this run did not build it).
pub fn sibling_bin(package: &str, bin: &str) -> PathBuf {
    let path = Path::new(HTTVPS).with_file_name(bin);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", package, "--bin", bin])
            .status()
            .unwrap_or_else(|e| panic!("run cargo build for {bin}: {e}"));
        assert!(status.success(), "building {bin} failed");
    }
    path
}

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium with a throw-away profile in `profile`, through
/// `proxy` (`socks5://…` or `http://…`), without its own background traffic;
/// the caller adds its bypass list, page and how it waits.
pub fn headless_chromium(profile: &Path, proxy: &str) -> Command {
    let mut command = Command::new(CHROMIUM);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &format!("--user-data-dir={}", profile.display()),
        &format!("--proxy-server={proxy}"),
    ]);
    command
}

/// A running `httvps` process with its JSON event lines collected.
pub struct JsonClient {
    pub child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    /// Bumped on every line, so waiters wake up without polling.
    seen: watch::Receiver<usize>,
    /// The local proxy's address (from the `listening` event).
    pub proxy: SocketAddr,
    pub control_file: PathBuf,
    _home: tempfile::TempDir,
}

impl JsonClient {
    /// `httvps <args> --json` with its own settings and control file; token
    /// variables only as `envs` give them. Returns once it listens.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> JsonClient {
        let mut client = JsonClient::spawn(args, envs);
        let listening = client
            .wait_line(
                "listening",
                |v| v["type"] == "listening",
                Duration::from_secs(20),
            )
            .await;
        client.proxy = listening["data"]["proxy"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        client
    }

    /// [`start`](Self::start) without waiting for a local proxy (`publish`
    /// has none).
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> JsonClient {
        let home = tempfile::tempdir().unwrap();
        let control_file = home.path().join("control.json");
        let mut child = Command::new(HTTVPS)
            .args(args)
            .arg("--json")
            .env("HTTVPS_CONFIG", home.path().join("profiles.toml"))
            .env("HTTVPS_CONTROL_FILE", &control_file)
            .env_remove("HTTVPS_SESSION_TOKEN")
            .env_remove("HTTVPS_DEVICE_TOKEN")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start httvps");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (bump, seen) = watch::channel(0);
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                let value: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
                let mut lines = sink.lock().unwrap();
                lines.push(value);
                bump.send_replace(lines.len());
            }
        });
        JsonClient {
            child,
            lines,
            seen,
            proxy: "0.0.0.0:0".parse().unwrap(),
            control_file,
            _home: home,
        }
    }

    /// `httvps connect` to the gateway at `url` (trusting `ca`) with
    /// `token` in the environment, plus `extra` flags and `envs`; its proxy
    /// on a free port.
    pub async fn connect(
        url: &str,
        ca: &Path,
        token: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> JsonClient {
        let ca = ca.display().to_string();
        let mut args = vec![
            "connect",
            "--gateway",
            url,
            "--ca",
            &ca,
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let mut all_envs = vec![("HTTVPS_SESSION_TOKEN", token)];
        all_envs.extend_from_slice(envs);
        JsonClient::start(&args, &all_envs).await
    }

    /// The event lines so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until `check` finds what it wants in the event lines (seen
    /// before or after the call), woken by every new line.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = self.seen.clone();
        loop {
            let _ = seen.borrow_and_update();
            if let Some(found) = check(&self.lines.lock().unwrap()) {
                return found;
            }
            tokio::select! {
                changed = seen.changed() => {
                    assert!(changed.is_ok(), "httvps exited while waiting for {what}; events: {:?}", self.lines());
                }
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("no {what} within {timeout:?}; events: {:?}", self.lines());
                }
            }
        }
    }

    /// Waits for an event line matching `pred`.
    pub async fn wait_line(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        self.wait_for(what, timeout, |lines| {
            lines.iter().find(|v| pred(v)).cloned()
        })
        .await
    }

    /// Waits for the session state `state`.
    pub async fn wait_state(&self, state: &str, timeout: Duration) -> Value {
        self.wait_line(
            state,
            |v| v["type"] == "state" && v["data"]["state"] == state,
            timeout,
        )
        .await
    }

    /// The session states reported so far, in order.
    pub fn states(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|v| v["type"] == "state")
            .map(|v| v["data"]["state"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits for the process to exit; its exit code.
    pub async fn exit_code(mut self, timeout: Duration) -> i32 {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("httvps exits")
            .unwrap();
        status.code().unwrap_or(-1)
    }
}
