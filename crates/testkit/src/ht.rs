//! An `ht-server` binary under test: a fresh key file (and, for TLS, a
//! fresh certificate) in its own temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

use crate::certs::{TestCert, install_crypto_provider};
use crate::process::GatewayProcess;
use crate::servers::pseudo_random_bytes;

/// A running `ht-server` and what a client needs to reach it. Dropping it
/// kills the process and removes its files.
pub struct TestHtServer {
    process: GatewayProcess,
    key_hex: String,
    cert: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl TestHtServer {
    /// Starts `bin` on `127.0.0.1:0` with a new key, over TLS (a certificate
    /// for `localhost` and `127.0.0.1`) when `tls`, plus `extra` flags.
    pub async fn start(bin: &Path, tls: bool, extra: &[&str]) -> anyhow::Result<TestHtServer> {
        let dir = tempfile::tempdir().context("creating the server's directory")?;
        // A key of its own per server: tests never share one by accident.
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let seed = (u64::from(std::process::id()) << 32) | SERVERS.fetch_add(1, Ordering::Relaxed);
        let key_hex: String = pseudo_random_bytes(seed ^ 0x4854, 32)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key_file = dir.path().join("ht.key");
        std::fs::write(&key_file, format!("{key_hex}\n")).context("writing the key file")?;
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--key-file".into(),
            key_file.display().to_string(),
        ];
        let cert = if tls {
            install_crypto_provider();
            let (cert, key) = TestCert::generate(&["localhost", "127.0.0.1"]).write_to(dir.path());
            args.extend([
                "--cert".into(),
                cert.display().to_string(),
                "--key".into(),
                key.display().to_string(),
            ]);
            Some(cert)
        } else {
            None
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = GatewayProcess::spawn(bin, &args, &[]).await?;
        Ok(TestHtServer {
            process,
            key_hex,
            cert,
            dir,
        })
    }

    /// The running process (logs, metrics address).
    pub fn process(&self) -> &GatewayProcess {
        &self.process
    }

    /// The running process, mutably (to signal it and wait for its exit).
    pub fn process_mut(&mut self) -> &mut GatewayProcess {
        &mut self.process
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// `https://127.0.0.1:PORT` or `http://…`, the base URL clients take.
    pub fn url(&self) -> String {
        let scheme = if self.cert.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr().port())
    }

    /// The key as 64 hex characters (what `HTTVPS_HT_KEY` holds).
    pub fn key_hex(&self) -> &str {
        &self.key_hex
    }

    /// The certificate (PEM) to trust as a CA, when over TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.cert.as_deref()
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
