//! JSON logs on stderr, filtered by `RUST_LOG` (default `info`): the format
//! the test fixtures parse (`listening` with `addr`).
//!
//! The filter is [`net::log_filter`]'s: whatever `RUST_LOG` says, the
//! WebSocket library never logs above DEBUG, because at TRACE it prints
//! every frame's payload, the client's hello (with its session token)
//! included.

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the process's JSON log subscriber. Global state, set once at
/// startup by a binary; a second call does nothing.
pub fn init_json_logs() {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .with_filter(net::log_filter::from_env("RUST_LOG", "info"));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
