//! What the Remote access panel and `httvps share` show about a share: the
//! seed's state, the tunnel, its forwards, traffic and the WireGuard
//! handshake. Published on a `watch` channel by the share's driver.

use serde::Serialize;

/// One public forward: people reach `public`, which lands on
/// `127.0.0.1:port` here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ForwardInfo {
    /// The local port.
    pub port: u16,
    /// Where people connect, `host:port`.
    pub public: String,
}

/// A share's state, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ShareStatus {
    /// The relay, `host:port`.
    pub relay: String,
    /// Seed 004 §3.1: `disconnected`, `authenticating`, `registered`,
    /// `active`, `reconnecting`.
    #[cfg_attr(
        feature = "ts",
        ts(
            type = "\"disconnected\" | \"authenticating\" | \"registered\" | \"active\" | \"reconnecting\""
        )
    )]
    pub state: String,
    /// The tunnel's id, once registered.
    pub tunnel_id: Option<String>,
    /// This machine's tunnel address (`10.0.0.7/32`).
    pub address: Option<String>,
    /// The public forwards.
    pub forwards: Vec<ForwardInfo>,
    /// WireGuard bytes received from the relay.
    pub bytes_in: u64,
    /// WireGuard bytes sent to the relay.
    pub bytes_out: u64,
    /// The last completed WireGuard handshake (seconds since the Unix epoch).
    pub last_handshake_unix: Option<u64>,
    /// Connections open through the forwards now.
    pub open_connections: u64,
    /// The next reconnect attempt (1-based) while reconnecting.
    pub attempt: Option<u32>,
    /// Seconds until that attempt.
    pub retry_in_secs: Option<f64>,
    /// The last error, in words for people (an expired sign-in says to
    /// sign in again).
    pub error: Option<String>,
}
