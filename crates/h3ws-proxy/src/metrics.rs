//! The proxy's metrics, named as the Go proxy names them (CONTRACTS.md §3),
//! so dashboards built for one work for the other.

use server_kit::metrics::Buckets;

pub const ACTIVE_SESSIONS: &str = "h3ws_proxy_active_sessions";
pub const ACCEPTED: &str = "h3ws_proxy_accepted_total";
pub const REJECTED: &str = "h3ws_proxy_rejected_total";
pub const ERRORS: &str = "h3ws_proxy_errors_total";
pub const BYTES: &str = "h3ws_proxy_bytes_total";
pub const MESSAGES: &str = "h3ws_proxy_messages_total";
pub const CONTROL_FRAMES: &str = "h3ws_proxy_control_frames_total";
pub const OVERSIZE_DROPS: &str = "h3ws_proxy_oversize_drops_total";
pub const FRAMES: &str = "h3ws_proxy_frames_total";
pub const MESSAGE_SIZE: &str = "h3ws_proxy_message_size_bytes";
pub const SESSION_DURATION: &str = "h3ws_proxy_session_duration_seconds";

/// Histogram buckets: message sizes from 64 B to 8 MiB, sessions from
/// 100 ms to a day.
pub const BUCKETS: [Buckets<'static>; 2] = [
    (
        MESSAGE_SIZE,
        &[
            64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
            8388608.0,
        ],
    ),
    (
        SESSION_DURATION,
        &[
            0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0,
        ],
    ),
];

/// Which way bytes or messages went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the HTTP/3 client to the HTTP/1.1 backend.
    H3ToH1,
    /// From the backend to the client.
    H1ToH3,
}

impl Dir {
    pub fn label(self) -> &'static str {
        match self {
            Dir::H3ToH1 => "h3_to_h1",
            Dir::H1ToH3 => "h1_to_h3",
        }
    }
}

/// Registers help texts, and makes the counters appear at zero.
pub fn describe() {
    metrics::describe_gauge!(ACTIVE_SESSIONS, "WebSocket sessions open now");
    metrics::describe_counter!(ACCEPTED, "extended CONNECT requests accepted");
    metrics::describe_counter!(REJECTED, "requests refused, by reason");
    metrics::describe_counter!(ERRORS, "session errors, by stage");
    metrics::describe_counter!(BYTES, "message payload bytes relayed, by direction");
    metrics::describe_counter!(MESSAGES, "messages relayed, by direction and type");
    metrics::describe_counter!(CONTROL_FRAMES, "ping, pong and close frames seen, by type");
    metrics::describe_counter!(
        OVERSIZE_DROPS,
        "sessions ended by an oversized frame or message"
    );
    metrics::describe_counter!(
        FRAMES,
        "frames written, by direction (one per message relayed)"
    );
    metrics::describe_histogram!(MESSAGE_SIZE, "sizes of relayed data messages");
    metrics::describe_histogram!(SESSION_DURATION, "how long sessions lasted");
    metrics::gauge!(ACTIVE_SESSIONS).set(0.0);
    metrics::counter!(ACCEPTED).absolute(0);
}

pub fn active_sessions(delta: f64) {
    metrics::gauge!(ACTIVE_SESSIONS).increment(delta);
}

pub fn accepted() {
    metrics::counter!(ACCEPTED).increment(1);
}

pub fn rejected(reason: &'static str) {
    metrics::counter!(REJECTED, "reason" => reason).increment(1);
}

pub fn error(stage: &'static str) {
    metrics::counter!(ERRORS, "stage" => stage).increment(1);
}

pub fn oversize(kind: &'static str) {
    metrics::counter!(OVERSIZE_DROPS, "kind" => kind).increment(1);
}

pub fn control(kind: &'static str) {
    metrics::counter!(CONTROL_FRAMES, "type" => kind).increment(1);
}

/// One message relayed in `dir`: `kind` is text, binary, ping, pong or
/// close, `len` its payload.
pub fn relayed(dir: Dir, kind: &'static str, len: usize) {
    metrics::counter!(MESSAGES, "dir" => dir.label(), "type" => kind).increment(1);
    metrics::counter!(FRAMES, "dir" => dir.label()).increment(1);
    metrics::counter!(BYTES, "dir" => dir.label()).increment(len as u64);
    if kind == "text" || kind == "binary" {
        metrics::histogram!(MESSAGE_SIZE).record(len as f64);
    }
}

pub fn session_ended(seconds: f64) {
    metrics::histogram!(SESSION_DURATION).record(seconds);
}
