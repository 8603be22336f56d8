//! The queen's Prometheus metrics. The recorder and the `/metrics` listener
//! are `server-kit`'s (one per process).

use metrics_exporter_prometheus::PrometheusHandle;

/// The prefix of every metric here and of admission's
/// (`hlhv_queen_cells_connections_pending`, `hlhv_queen_https_…`).
pub const PREFIX: &str = "hlhv_queen";
/// Cells whose leash is connected (gauge).
pub const CELLS: &str = "hlhv_queen_cells";
/// Mounts held (gauge).
pub const MOUNTS: &str = "hlhv_queen_mounts";
/// Bands logged in, free or busy (gauge).
pub const BANDS: &str = "hlhv_queen_bands";
/// Public requests answered, by status `class` (`2xx` … `5xx`) (counter).
pub const REQUESTS: &str = "hlhv_queen_requests_total";
/// Body bytes by `dir`: `up` = client to cell, `down` = cell to client.
pub const BYTES: &str = "hlhv_queen_bytes_total";
/// Requests that had to wait for a band, by `result` (`granted`, `failed`).
pub const BAND_WAITS: &str = "hlhv_queen_band_waits_total";
/// Requests the queen failed itself, by `reason` (`proto_hlhv::queen::Failure`).
pub const FAILURES: &str = "hlhv_queen_request_failures_total";
/// Connections closed at login, by `reason` (`LoginError::reason`).
pub const LOGIN_FAILURES: &str = "hlhv_queen_login_failures_total";
/// Seconds from a request's arrival to its response head (histogram).
pub const DURATION: &str = "hlhv_queen_request_duration_seconds";

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus handle (see `server_kit::metrics`).
pub fn handle() -> PrometheusHandle {
    let handle = server_kit::metrics::handle(&[(DURATION, DURATION_BUCKETS)]);
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
    handle
}

fn describe() {
    metrics::describe_gauge!(CELLS, "HLHV cells whose leash is connected");
    metrics::describe_gauge!(MOUNTS, "HLHV mounts held");
    metrics::describe_gauge!(BANDS, "HLHV bands logged in");
    metrics::describe_counter!(REQUESTS, "Public requests answered, by status class");
    metrics::describe_counter!(BYTES, "Body bytes; up = client to cell");
    metrics::describe_counter!(BAND_WAITS, "Requests that waited for a band, by result");
    metrics::describe_counter!(FAILURES, "Requests failed by the queen, by reason");
    metrics::describe_counter!(
        LOGIN_FAILURES,
        "Cell connections closed at login, by reason"
    );
    metrics::describe_histogram!(DURATION, "Seconds from request to response head");
}

/// The per-request metrics' handles, looked up once instead of at every
/// request and body piece (a registry lookup with its key allocations).
/// First used by a request, after [`handle`] installed the recorder.
struct Hot {
    /// By status class, `1xx` … `5xx`.
    requests: [metrics::Counter; 5],
    duration: metrics::Histogram,
    bytes_up: metrics::Counter,
    bytes_down: metrics::Counter,
}

fn hot() -> &'static Hot {
    static HOT: std::sync::OnceLock<Hot> = std::sync::OnceLock::new();
    HOT.get_or_init(|| Hot {
        requests: ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|class| metrics::counter!(REQUESTS, "class" => class)),
        duration: metrics::histogram!(DURATION),
        bytes_up: metrics::counter!(BYTES, "dir" => "up"),
        bytes_down: metrics::counter!(BYTES, "dir" => "down"),
    })
}

/// Counts one answered request.
pub fn request(status: u16, started: std::time::Instant) {
    let class = match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    };
    let hot = hot();
    hot.requests[class].increment(1);
    hot.duration.record(started.elapsed().as_secs_f64());
}

/// Counts body bytes; `up` is client to cell.
pub fn bytes(up: bool, n: usize) {
    let hot = hot();
    let counter = if up { &hot.bytes_up } else { &hot.bytes_down };
    counter.increment(n as u64);
}
