//! Session states, as in seed 004 §3.1:
//! Disconnected → Authenticating → Active → Reconnecting → Active | Disconnected.

use std::time::SystemTime;

use serde::Serialize;

/// Where the session manager is. Serialized with a `state` tag for the UI.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum SessionState {
    /// Not connected, and not trying to be.
    Disconnected {
        /// Why the last session ended, when it ended on its own.
        reason: Option<String>,
    },
    /// Getting a session token and performing the handshake.
    Authenticating {
        /// The gateway or control plane being contacted.
        server: String,
    },
    /// The tunnel is up: the local proxy serves through it.
    Active {
        /// The gateway's session id.
        session_id: String,
        /// The gateway URL.
        gateway: String,
        /// The session's stream limit.
        max_streams: u32,
        /// When the session became active (seconds since the Unix epoch).
        since_unix: u64,
    },
    /// The session was lost; waiting before the next attempt.
    Reconnecting {
        /// The attempt about to be made (1-based).
        attempt: u32,
        /// The policy's limit; 0 when it keeps trying without one.
        max_attempts: u32,
        /// Seconds until the attempt.
        retry_in_secs: f64,
        /// Why the previous session or attempt failed.
        last_error: String,
    },
}

impl SessionState {
    /// The state's name, as events and logs print it.
    pub fn name(&self) -> &'static str {
        match self {
            SessionState::Disconnected { .. } => "disconnected",
            SessionState::Authenticating { .. } => "authenticating",
            SessionState::Active { .. } => "active",
            SessionState::Reconnecting { .. } => "reconnecting",
        }
    }

    /// Whether new proxy connections can be served now.
    pub fn is_active(&self) -> bool {
        matches!(self, SessionState::Active { .. })
    }
}

/// Seconds since the Unix epoch, for serializable timestamps.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
