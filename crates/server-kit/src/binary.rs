//! What a server binary's `main` does around its real work, once for every
//! server: JSON logs, the process-wide rustls provider, a multi-threaded
//! runtime, and the exit code with the error chain logged and printed.

use std::future::Future;
use std::process::ExitCode;

use tracing::error;

/// Runs `run` to completion as program `name` (for messages).
pub fn run_server<F>(name: &str, run: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    crate::logs::init_json_logs();
    // One process-wide rustls provider (aws-lc-rs), for every TLS user.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // aws-lc seeds its random generator on first use (30–50 ms measured
    // here): done now, before the server listens, rather than in its first
    // client's handshake.
    let mut byte = [0u8; 1];
    let _ = rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut byte);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "{name} failed");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
