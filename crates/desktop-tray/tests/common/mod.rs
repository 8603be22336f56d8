//! A private session bus for the D-Bus tests: a `dbus-daemon` child with a
//! minimal configuration (no service activation, so nothing of the host's
//! is started on it), stopped when dropped. Each test file uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running bus.
pub struct Bus {
    child: Child,
    /// Its address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    /// Starts a bus, or `None` (after saying why) when `dbus-daemon` is not
    /// installed.
    pub fn start() -> Option<Bus> {
        let Some(daemon) = find_program("dbus-daemon") else {
            eprintln!("skipped: dbus-daemon is not installed (package `dbus`)");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display()
            ),
        )
        .expect("the bus configuration is written");
        let mut child = Command::new(daemon)
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address=1", "--nofork", "--nopidfile"])
            .stdout(Stdio::piped())
            // It complains about file descriptor limits it may not raise.
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut address = String::new();
        BufReader::new(stdout)
            .read_line(&mut address)
            .expect("dbus-daemon prints its address");
        let address = address.trim().to_owned();
        assert!(address.starts_with("unix:"), "bus address {address:?}");
        Some(Bus {
            child,
            address,
            _dir: dir,
        })
    }

    /// A runtime for a test on this bus (two workers: the D-Bus tasks and
    /// the test's own run side by side).
    pub fn runtime(&self) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    }

    /// Makes this bus the session bus of the whole test process.
    ///
    /// Call it first thing in the file's only test, before any thread
    /// (the runtime's included) is started: the environment is
    /// process-global.
    pub fn make_session_bus(&self) {
        // SAFETY: the test binary runs one test, which calls this before
        // starting any other thread, so nothing reads the environment
        // concurrently.
        unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &self.address) };
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|path| path.is_file())
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
