//! Prometheus metrics: the gateway's names, and the process-wide recorder
//! and `/metrics` listener from `server-kit` (shared with the HT server;
//! its module doc says why the listener is ours and how the one recorder
//! per process is shared).

use metrics_exporter_prometheus::PrometheusHandle;

pub use server_kit::metrics::{bind, serve};

/// The prefix of every gateway metric (admission's too:
/// `httvps_gateway_connections_pending` and the rest, see
/// `server_kit::admission`).
pub const PREFIX: &str = "httvps_gateway";
/// Sessions currently open (gauge).
pub const SESSIONS_ACTIVE: &str = "httvps_gateway_sessions_active";
/// Sessions that reached `ready` (counter).
pub const SESSIONS_TOTAL: &str = "httvps_gateway_sessions_total";
/// Streams currently open (gauge).
pub const STREAMS_ACTIVE: &str = "httvps_gateway_streams_active";
/// Streams accepted (counter).
pub const STREAMS_TOTAL: &str = "httvps_gateway_streams_total";
/// Handshakes by `result` (counter).
pub const HANDSHAKES_TOTAL: &str = "httvps_gateway_handshakes_total";
/// Payload bytes by `dir` (`up` = client to target) (counter).
pub const BYTES_TOTAL: &str = "httvps_gateway_bytes_total";
/// `error` frames sent, by `code` (counter).
pub const ERRORS_TOTAL: &str = "httvps_gateway_errors_total";
/// Upstream connect time by `mode` (histogram).
pub const DIAL_SECONDS: &str = "httvps_gateway_upstream_dial_seconds";

/// The process's Prometheus handle, installing the recorder on first call.
pub fn handle() -> PrometheusHandle {
    let handle = server_kit::metrics::handle(&[(
        DIAL_SECONDS,
        &[
            0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    )]);
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
    handle
}

fn describe() {
    metrics::describe_gauge!(SESSIONS_ACTIVE, "Sessions currently open");
    metrics::describe_counter!(SESSIONS_TOTAL, "Sessions that reached ready");
    metrics::describe_gauge!(STREAMS_ACTIVE, "Streams currently open");
    metrics::describe_counter!(STREAMS_TOTAL, "Streams accepted");
    metrics::describe_counter!(HANDSHAKES_TOTAL, "Handshakes by result");
    metrics::describe_counter!(BYTES_TOTAL, "Payload bytes; up = client to target");
    metrics::describe_counter!(ERRORS_TOTAL, "Error frames sent, by code");
    metrics::describe_histogram!(DIAL_SECONDS, "Upstream connect time");
}

/// The handles a session's streams count into, looked up once per session.
///
/// `metrics::counter!(name, labels)` builds the key, hashes it and finds it
/// in the registry on every call; each new stream made five such lookups
/// (opened, active, dial time, bytes up and down): 2.4 % of the gateway's
/// CPU in a profile of sequential 1 KiB fetches through new streams, more
/// than its AES-GCM both ways (1.7 %); with the handles, 0.3 % is left. They
/// are made when the session starts, long after the recorder is installed.
pub(crate) struct StreamMetrics {
    /// [`STREAMS_TOTAL`].
    pub(crate) total: metrics::Counter,
    /// [`STREAMS_ACTIVE`].
    pub(crate) active: metrics::Gauge,
    /// [`DIAL_SECONDS`] of the session's mode.
    pub(crate) dial: metrics::Histogram,
    /// [`BYTES_TOTAL`], `dir` = `up`.
    pub(crate) bytes_up: metrics::Counter,
    /// [`BYTES_TOTAL`], `dir` = `down`.
    pub(crate) bytes_down: metrics::Counter,
}

impl StreamMetrics {
    /// The handles for a session whose upstreams are dialed in `mode`.
    pub(crate) fn new(mode: &'static str) -> StreamMetrics {
        StreamMetrics {
            total: metrics::counter!(STREAMS_TOTAL),
            active: metrics::gauge!(STREAMS_ACTIVE),
            dial: metrics::histogram!(DIAL_SECONDS, "mode" => mode),
            bytes_up: metrics::counter!(BYTES_TOTAL, "dir" => "up"),
            bytes_down: metrics::counter!(BYTES_TOTAL, "dir" => "down"),
        }
    }
}

/// Counts one handshake outcome.
pub fn handshake(result: &'static str) {
    metrics::counter!(HANDSHAKES_TOTAL, "result" => result).increment(1);
}

/// Counts one `error` frame sent.
pub fn error_sent(code: &str) {
    metrics::counter!(ERRORS_TOTAL, "code" => code.to_owned()).increment(1);
}
