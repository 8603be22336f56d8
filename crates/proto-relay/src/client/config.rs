//! What the client machine runs with: the tunnel it asks for, the timers,
//! the reconnect policy, and the tunnel it may resume.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::DEFAULT_MAX_LINE;
use crate::message::{ClientInfo, Token, TunnelConfig, TunnelInfo};
use crate::validate::TunnelLimits;

/// When to dial again after a failure (seed §6.1): 1 s, ×2, at most 30 s,
/// at most 10 attempts. No jitter: the machine has no randomness, and one
/// desktop client does not make a thundering herd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The wait before the first attempt.
    pub initial_delay: Duration,
    /// Each wait is this many times the previous one.
    pub factor: u32,
    /// No wait is longer.
    pub max_delay: Duration,
    /// Attempts after which the machine gives up (→ Disconnected).
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            factor: 2,
            max_delay: Duration::from_secs(30),
            max_attempts: 10,
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let growth = self
            .factor
            .checked_pow(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_delay
            .saturating_mul(growth)
            .min(self.max_delay)
    }
}

/// What survives a drop, to resume the tunnel (seed §6.2). A driver may
/// store it to resume after a restart too; the token makes it a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTunnel {
    /// The tunnel's id.
    pub tunnel_id: String,
    /// The settings the relay gave last.
    pub last_config: TunnelConfig,
    /// The secret that resumes it.
    pub reconnect_token: Token,
}

/// The client machine's settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The sign-in JWT.
    pub token: Token,
    /// Sent in `auth`; defaults to this OS and this crate's version.
    pub client_info: ClientInfo,
    /// The tunnel's name.
    pub name: String,
    /// The local ports to publish.
    pub ports: Vec<u16>,
    /// This machine's WireGuard public key, standard base64.
    pub public_key: String,
    /// Time between heartbeats while active (contract: 30 s).
    pub heartbeat_interval: Duration,
    /// How long any answer may take: `hello`, `auth_response`,
    /// `register_response`, `heartbeat_response` (contract: 5 s).
    pub answer_timeout: Duration,
    /// How long the driver may take to open the connection (TCP + TLS).
    pub dial_timeout: Duration,
    /// Unanswered heartbeats in a row that count as a lost connection (3).
    pub max_misses: u32,
    /// When to dial again.
    pub reconnect: ReconnectPolicy,
    /// The longest line accepted from the relay.
    pub max_line: usize,
    /// Checked before the first dial, as the relay would.
    pub limits: TunnelLimits,
    /// A tunnel to resume on the first connect (stored by an earlier run).
    pub resume: Option<SavedTunnel>,
}

impl ClientConfig {
    /// The contract's defaults around a tunnel.
    pub fn new(
        token: Token,
        name: impl Into<String>,
        ports: Vec<u16>,
        public_key: impl Into<String>,
    ) -> ClientConfig {
        ClientConfig {
            token,
            client_info: ClientInfo {
                os: std::env::consts::OS.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            name: name.into(),
            ports,
            public_key: public_key.into(),
            heartbeat_interval: Duration::from_secs(30),
            answer_timeout: Duration::from_secs(5),
            dial_timeout: Duration::from_secs(10),
            max_misses: 3,
            reconnect: ReconnectPolicy::default(),
            max_line: DEFAULT_MAX_LINE,
            limits: TunnelLimits::default(),
            resume: None,
        }
    }

    /// The `tunnel_info` of every `register`.
    pub fn tunnel_info(&self) -> TunnelInfo {
        TunnelInfo {
            name: self.name.clone(),
            protocol: "tcp".to_owned(),
            ports: self.ports.clone(),
            public_key: self.public_key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_backoff() {
        let p = ReconnectPolicy::default();
        let secs: Vec<u64> = (1..=10).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]);
        assert_eq!(p.delay(1000), Duration::from_secs(30), "no overflow");
    }

    #[test]
    fn the_token_is_not_printed() {
        let config = ClientConfig::new(Token::new("jwt-secret"), "pc", vec![22], "k");
        assert!(!format!("{config:?}").contains("jwt-secret"));
    }
}
