//! A gateway binary under test, with a fresh certificate in its own temporary
//! directory: the fixture the end-to-end suites share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::certs::{TestCert, install_crypto_provider};
use crate::process::GatewayProcess;

/// A running `httvps-gateway` (or any binary with its flags) and what a client
/// needs to reach it. Dropping it kills the process and removes its files.
pub struct TestGateway {
    process: Option<GatewayProcess>,
    bin: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    cert: PathBuf,
    key: PathBuf,
    dir: tempfile::TempDir,
}

impl TestGateway {
    /// Starts `bin` with `args` plus `--cert`/`--key` for a fresh certificate
    /// valid for `localhost` and `127.0.0.1`, and `--listen 127.0.0.1:0`
    /// unless `args` names a listener.
    pub async fn start(
        bin: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<TestGateway> {
        let dir = tempfile::tempdir().context("creating the gateway's directory")?;
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        TestGateway::launch(dir, bin, args, envs).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        bin: &Path,
        mut all: Vec<String>,
        envs: &[(&str, &str)],
    ) -> anyhow::Result<TestGateway> {
        install_crypto_provider();
        let (cert, key) = TestCert::generate(&["localhost", "127.0.0.1"]).write_to(dir.path());
        if !all.iter().any(|a| a == "--listen") {
            all.extend(["--listen".to_owned(), "127.0.0.1:0".into()]);
        }
        // The gateway writes its built-in decoy page to a temporary
        // directory; a gateway killed by the test cannot remove it, so it
        // goes into this fixture's directory, removed with the fixture.
        let tmpdir = (
            "TMPDIR".to_owned(),
            dir.path().to_string_lossy().into_owned(),
        );
        let mut gateway = TestGateway {
            process: None,
            bin: bin.to_path_buf(),
            args: all,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(std::iter::once(tmpdir))
                .collect(),
            cert,
            key,
            dir,
        };
        gateway.restart().await?;
        Ok(gateway)
    }

    /// Token-file mode: `tokens` written one per line to a file in its directory.
    pub async fn with_tokens(
        bin: &Path,
        tokens: &[&str],
        extra: &[&str],
    ) -> anyhow::Result<TestGateway> {
        let dir = tempfile::tempdir().context("creating the gateway's directory")?;
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("# test tokens\n{}\n", tokens.join("\n")))?;
        let mut args = vec!["--tokens".to_owned(), path.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        TestGateway::launch(dir, bin, args, &[]).await
    }

    /// Backend mode, with `secret` as `HTTVPS_INTERNAL_SECRET` when given.
    pub async fn with_backend(
        bin: &Path,
        backend_url: &str,
        secret: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<TestGateway> {
        let mut args = vec!["--backend", backend_url];
        args.extend_from_slice(extra);
        let envs: Vec<(&str, &str)> = secret
            .map(|s| ("HTTVPS_INTERNAL_SECRET", s))
            .into_iter()
            .collect();
        TestGateway::start(bin, &args, &envs).await
    }

    /// The running process. Panics after [`TestGateway::kill`].
    pub fn process(&self) -> &GatewayProcess {
        self.process.as_ref().expect("the gateway was killed")
    }

    /// The running process, mutably (to wait for its exit).
    pub fn process_mut(&mut self) -> &mut GatewayProcess {
        self.process.as_mut().expect("the gateway was killed")
    }

    /// The WebSocket listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.process().addr()
    }

    /// `wss://127.0.0.1:PORT/ws`.
    pub fn url(&self) -> String {
        format!("wss://127.0.0.1:{}/ws", self.addr().port())
    }

    /// The certificate (PEM), for clients to trust as a CA.
    pub fn ca(&self) -> &Path {
        &self.cert
    }

    /// The gateway's directory (certificate, key, token file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the process at once (SIGKILL: no close frames, no goodbye).
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts the binary (again) with the same flags and certificate.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process = None;
        let mut args = self.args.clone();
        args.extend([
            "--cert".to_owned(),
            self.cert.display().to_string(),
            "--key".into(),
            self.key.display().to_string(),
        ]);
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.process = Some(GatewayProcess::spawn(&self.bin, &args, &envs).await?);
        Ok(())
    }
}
