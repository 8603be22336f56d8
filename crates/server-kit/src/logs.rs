//! JSON logs on stderr, filtered by `RUST_LOG` (default `info`): the format
//! the test fixtures parse (`listening` with `addr`).

/// Installs the process's JSON log subscriber. Global state, set once at
/// startup by a binary; a second call does nothing.
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .try_init();
}
