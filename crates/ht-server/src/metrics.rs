//! The HT server's Prometheus metrics: names, and the one mapping from the
//! machine's events to them. The recorder and the `/metrics` listener are
//! `server-kit`'s (one per process, shared with a gateway in the same
//! process).

use metrics_exporter_prometheus::PrometheusHandle;
use proto_ht::Proto;
use proto_ht::server::{EndReason, Event};

/// Sessions alive (gauge).
pub const SESSIONS_ACTIVE: &str = "ht_server_sessions_active";
/// The prefix of every metric here, and of admission's
/// (`ht_server_connections_pending` and the rest, see `server_kit::admission`).
pub const PREFIX: &str = "ht_server";
/// Sessions created (counter).
pub const SESSIONS_TOTAL: &str = "ht_server_sessions_total";
/// Transport connections open (gauge).
pub const CONNECTIONS_ACTIVE: &str = "ht_server_connections_active";
/// Streams open, by `proto` (gauge).
pub const STREAMS_ACTIVE: &str = "ht_server_streams_active";
/// Queries answered, by `verb` and `result` (`ok` or `fail`) (counter).
pub const QUERIES_TOTAL: &str = "ht_server_queries_total";
/// Payload bytes by `dir` (`up` = client to target) (counter).
pub const BYTES_TOTAL: &str = "ht_server_bytes_total";
/// DNS questions asked of the resolver, by `type` and `result` (counter).
pub const DNS_TOTAL: &str = "ht_server_dns_queries_total";
/// Errors by `cause` (connections ended, dials failed) (counter).
pub const ERRORS_TOTAL: &str = "ht_server_errors_total";
/// First chunks refused, by HTTP `status` (counter).
pub const REFUSED_TOTAL: &str = "ht_server_refused_total";
/// UDP datagrams dropped from a full queue (counter).
pub const UDP_DROPPED_TOTAL: &str = "ht_server_udp_datagrams_dropped_total";

/// The process's Prometheus handle (see `server_kit::metrics`).
pub fn handle() -> PrometheusHandle {
    let handle = server_kit::metrics::handle(&[]);
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
    handle
}

fn describe() {
    metrics::describe_gauge!(SESSIONS_ACTIVE, "HT sessions alive");
    metrics::describe_counter!(SESSIONS_TOTAL, "HT sessions created");
    metrics::describe_gauge!(CONNECTIONS_ACTIVE, "HT transport connections open");
    metrics::describe_gauge!(STREAMS_ACTIVE, "HT streams open, by protocol");
    metrics::describe_counter!(QUERIES_TOTAL, "HT queries answered, by verb and result");
    metrics::describe_counter!(BYTES_TOTAL, "Payload bytes; up = client to target");
    metrics::describe_counter!(DNS_TOTAL, "DNS questions resolved, by type and result");
    metrics::describe_counter!(ERRORS_TOTAL, "Errors by cause");
    metrics::describe_counter!(REFUSED_TOTAL, "First chunks refused, by HTTP status");
    metrics::describe_counter!(UDP_DROPPED_TOTAL, "UDP datagrams dropped from full queues");
}

fn proto_label(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

/// Records one event of the machine.
pub fn record(event: &Event) {
    match event {
        Event::SessionOpened => {
            metrics::counter!(SESSIONS_TOTAL).increment(1);
            metrics::gauge!(SESSIONS_ACTIVE).increment(1.0);
        }
        Event::SessionReclaimed => metrics::gauge!(SESSIONS_ACTIVE).decrement(1.0),
        Event::ConnectionOpened => metrics::gauge!(CONNECTIONS_ACTIVE).increment(1.0),
        Event::ConnectionClosed => metrics::gauge!(CONNECTIONS_ACTIVE).decrement(1.0),
        // A shutdown ends connections without anything going wrong.
        Event::ConnectionEnded(EndReason::Shutdown) => {}
        Event::ConnectionEnded(reason) => {
            metrics::counter!(ERRORS_TOTAL, "cause" => reason.as_str()).increment(1);
        }
        Event::StreamOpened(p) => {
            metrics::gauge!(STREAMS_ACTIVE, "proto" => proto_label(*p)).increment(1.0);
        }
        Event::StreamClosed(p) => {
            metrics::gauge!(STREAMS_ACTIVE, "proto" => proto_label(*p)).decrement(1.0);
        }
        Event::Query { verb, ok } => {
            let result = if *ok { "ok" } else { "fail" };
            metrics::counter!(QUERIES_TOTAL, "verb" => *verb, "result" => result).increment(1);
        }
        Event::BytesUp(n) => metrics::counter!(BYTES_TOTAL, "dir" => "up").increment(*n as u64),
        Event::BytesDown(n) => {
            metrics::counter!(BYTES_TOTAL, "dir" => "down").increment(*n as u64);
        }
        Event::DatagramsDropped(n) => metrics::counter!(UDP_DROPPED_TOTAL).increment(*n),
        _ => {}
    }
}

/// Counts one error of the driver (a dial or a lookup that failed, …).
pub fn error(cause: &'static str) {
    metrics::counter!(ERRORS_TOTAL, "cause" => cause).increment(1);
}

/// Counts one DNS question of `kind` and its `result` (`ok` or `fail`).
pub fn counter_dns(kind: &'static str, result: &'static str) {
    metrics::counter!(DNS_TOTAL, "type" => kind, "result" => result).increment(1);
}

/// Counts one connection answered with an HTTP error `status`.
pub fn refused(status: u16) {
    let status = match status {
        403 => "403",
        503 => "503",
        _ => "404",
    };
    metrics::counter!(REFUSED_TOTAL, "status" => status).increment(1);
}
