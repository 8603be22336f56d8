//! The relay's Prometheus metrics, named after seed 004 §7.1
//! (`connection_time`, `bytes_transferred`, `active_tunnels`, `error_rate`)
//! plus WireGuard handshakes and forwards. The recorder and the `/metrics`
//! listener are `server-kit`'s (one per process). `error_rate` is a rate,
//! which Prometheus computes from the counter:
//! `rate(relay_errors_total[5m])`.

use metrics_exporter_prometheus::PrometheusHandle;

/// The prefix of every metric here and of admission's
/// (`relay_control_connections_pending`, …).
pub const PREFIX: &str = "relay";
/// Seconds from accepting a control connection to its tunnel being active
/// (register_ack) (histogram; the seed's `connection_time`).
pub const CONNECTION_TIME: &str = "relay_connection_time_seconds";
/// Bytes carried through public forwards, by `direction`: `in` = from the
/// public side toward the client's machine, `out` = back (counter; the
/// seed's `bytes_transferred`).
pub const BYTES: &str = "relay_bytes_transferred_total";
/// Tunnels whose client holds a control connection here (gauge; the
/// seed's `active_tunnels`).
pub const ACTIVE_TUNNELS: &str = "relay_active_tunnels";
/// `error` lines sent, by `code` (counter; the seed's `error_rate` is its
/// rate).
pub const ERRORS: &str = "relay_errors_total";
/// Completed WireGuard handshakes with clients (counter).
pub const HANDSHAKES: &str = "relay_wireguard_handshakes_total";
/// Connections through public forwards, by `result` (`ok`,
/// `refused`: the client's side refused or timed out, `full`) (counter).
pub const FORWARDS: &str = "relay_forward_connections_total";
/// Connections open through public forwards (gauge).
pub const FORWARDS_OPEN: &str = "relay_forward_connections_open";
/// Tunnels registered, by `kind` (`created`, `resumed`) (counter).
pub const REGISTRATIONS: &str = "relay_registrations_total";

const CONNECTION_TIME_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's Prometheus handle (see `server_kit::metrics`).
pub fn handle() -> PrometheusHandle {
    let handle = server_kit::metrics::handle(&[(CONNECTION_TIME, CONNECTION_TIME_BUCKETS)]);
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
    handle
}

fn describe() {
    metrics::describe_histogram!(
        CONNECTION_TIME,
        "Seconds from a control connection to its tunnel being active"
    );
    metrics::describe_counter!(BYTES, "Bytes through public forwards, by direction");
    metrics::describe_gauge!(ACTIVE_TUNNELS, "Tunnels whose client is connected here");
    metrics::describe_counter!(ERRORS, "Error lines sent to clients, by code");
    metrics::describe_counter!(HANDSHAKES, "Completed WireGuard handshakes with clients");
    metrics::describe_counter!(FORWARDS, "Connections through public forwards, by result");
    metrics::describe_gauge!(FORWARDS_OPEN, "Connections open through public forwards");
    metrics::describe_counter!(REGISTRATIONS, "Tunnels registered, by kind");
}
