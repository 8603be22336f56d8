//! Every control line as a plain type (CONTRACTS.md §5).
//!
//! Both enums are tagged by `type` in snake case. Fields a peer adds that we
//! do not know are ignored (the contract: "clients ignore unknown fields";
//! the relay does the same). Optional fields we send are left out when
//! empty rather than sent as `null`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::code::ErrorCode;

/// The protocol version both sides send (`hello.version`, `auth.version`).
pub const PROTOCOL_VERSION: &str = "1.0";

/// The `status` of a successful `auth_response` or `register_response`.
pub const STATUS_SUCCESS: &str = "success";

/// The `status` of a `heartbeat_response`.
pub const STATUS_OK: &str = "ok";

/// A bearer secret: the sign-in JWT or a `reconnect_token`. `Debug` never
/// shows it, so a message or config can be logged whole.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// The secret itself, for the wire or a verifier only. A driver that
    /// compares one with a stored token should do it in constant time.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Lines the client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The sign-in, after the relay's `hello`.
    Auth(Auth),
    /// Create a tunnel, or resume one after a drop.
    Register(Register),
    /// The WireGuard handshake completed: the relay may open the forwards.
    RegisterAck(RegisterAck),
    /// Liveness and traffic counters, every 30 s while active.
    Heartbeat(Heartbeat),
}

/// Lines the relay sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The relay's first line on every connection.
    Hello(Hello),
    /// The sign-in was accepted.
    AuthResponse(AuthResponse),
    /// The tunnel exists: its id, the WireGuard settings, the forwards.
    RegisterResponse(RegisterResponse),
    /// The answer to a heartbeat.
    HeartbeatResponse(HeartbeatResponse),
    /// A refusal or failure, by code.
    Error(ErrorMessage),
}

/// `auth`: `{"type":"auth","token":JWT,"version":"1.0","client_info":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// The JWT the relay verifies; its `sub` owns the tunnels.
    pub token: Token,
    /// The protocol version the client speaks. The seed's own example
    /// (§8.1) sends none, so a missing one reads as `""`, taken as 1.0.
    #[serde(default)]
    pub version: String,
    /// What the client runs on, for the relay's logs.
    #[serde(default)]
    pub client_info: ClientInfo,
}

/// `auth.client_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientInfo {
    /// The operating system (`windows`, `linux`, `macos`).
    pub os: String,
    /// The client's own version.
    pub version: String,
}

/// `register`: the tunnel wanted, plus `tunnel_id` and `reconnect_token`
/// when resuming one after a drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// Name, protocol, ports and WireGuard key.
    pub tunnel_info: TunnelInfo,
    /// The tunnel to resume (with `reconnect_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_id: Option<String>,
    /// The token the relay gave with that tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_token: Option<Token>,
}

/// `register.tunnel_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    /// 1 to 64 of `[A-Za-z0-9._-]`; unique per owner while live.
    pub name: String,
    /// `"tcp"`, the only one the relay forwards.
    pub protocol: String,
    /// The local ports to publish.
    pub ports: Vec<u16>,
    /// The client's WireGuard public key: 32 bytes, standard base64.
    pub public_key: String,
}

/// `register_ack`: sent once the WireGuard handshake has completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAck {
    /// The tunnel the relay registered on this connection.
    pub tunnel_id: String,
}

/// `heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The tunnel this connection registered.
    pub tunnel_id: String,
    /// The client's counters.
    pub stats: Stats,
}

/// `heartbeat.stats`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Bytes received through the tunnel.
    pub bytes_in: u64,
    /// Bytes sent through the tunnel.
    pub bytes_out: u64,
    /// When the tunnel came up, as the client's driver wrote it (RFC 3339).
    pub connected_since: String,
}

/// `hello`: `{"type":"hello","version":"1.0","features":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version; the client refuses another major version.
    pub version: String,
    /// What the relay offers, for information.
    #[serde(default)]
    pub features: Vec<String>,
}

/// `auth_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// `"success"`; a refusal comes as an `error` line instead.
    pub status: String,
    /// The relay's software version and features.
    #[serde(default)]
    pub server_info: ServerInfo,
}

/// `auth_response.server_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// The relay's software version.
    pub version: String,
    /// What the relay offers.
    pub features: Vec<String>,
}

/// `register_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// `"success"`; a refusal comes as an `error` line instead.
    pub status: String,
    /// The tunnel's id (a UUID).
    pub tunnel_id: String,
    /// What the client's WireGuard side needs.
    pub config: TunnelConfig,
    /// The secret that resumes this tunnel after a drop. Optional when
    /// read: without it the client simply cannot resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_token: Option<Token>,
}

/// `register_response.config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelConfig {
    /// The relay's WireGuard UDP endpoint, `host:port`.
    pub endpoint: String,
    /// The relay's WireGuard public key, standard base64.
    pub public_key: String,
    /// The networks routed through the tunnel.
    pub allowed_ips: Vec<String>,
    /// The client's tunnel address, `10.0.0.7/32`.
    pub address: String,
    /// The public address of each published port.
    #[serde(default)]
    pub forwards: Vec<Forward>,
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The client's local port.
    pub port: u16,
    /// Where the public reaches it, `relay.example:40022`.
    pub public: String,
}

/// `heartbeat_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// `"ok"`.
    pub status: String,
    /// The relay's clock, RFC 3339.
    #[serde(default)]
    pub server_time: String,
}

/// `error`: `{"type":"error","code":N,"message":…,"details":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The seed's code.
    pub code: ErrorCode,
    /// Text for logs (not for end users: see [`ErrorCode::sentence`]).
    #[serde(default)]
    pub message: String,
    /// The machine-readable reason and the wait.
    #[serde(default)]
    pub details: ErrorDetails,
}

/// `error.details`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// A snake_case reason (`invalid_token`, `heartbeat_too_early`…).
    #[serde(default)]
    pub reason: String,
    /// Seconds to wait before trying again (RATE_LIMIT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ClientMessage {
    /// The wire `type`, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Auth(_) => "auth",
            ClientMessage::Register(_) => "register",
            ClientMessage::RegisterAck(_) => "register_ack",
            ClientMessage::Heartbeat(_) => "heartbeat",
        }
    }
}

impl ServerMessage {
    /// The wire `type`, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Hello(_) => "hello",
            ServerMessage::AuthResponse(_) => "auth_response",
            ServerMessage::RegisterResponse(_) => "register_response",
            ServerMessage::HeartbeatResponse(_) => "heartbeat_response",
            ServerMessage::Error(_) => "error",
        }
    }
}

/// The `type`s each side knows, to tell an unknown type from a malformed line.
pub(crate) const CLIENT_KINDS: [&str; 4] = ["auth", "register", "register_ack", "heartbeat"];
pub(crate) const SERVER_KINDS: [&str; 5] = [
    "hello",
    "auth_response",
    "register_response",
    "heartbeat_response",
    "error",
];

/// Whether a `version` is one this crate speaks: major 1, or none given.
pub fn version_supported(version: &str) -> bool {
    let major = version.split('.').next().unwrap_or("");
    major.is_empty() || major == "1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let auth = ClientMessage::Auth(Auth {
            token: Token::new("eyJ.secret.sig"),
            version: PROTOCOL_VERSION.into(),
            client_info: ClientInfo::default(),
        });
        let text = format!("{auth:?}");
        assert!(
            text.contains("<redacted>") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn the_seeds_examples_parse() {
        // §8.1: an auth with only a token.
        let auth: ClientMessage = serde_json::from_str(r#"{"type":"auth","token":"t"}"#).unwrap();
        let ClientMessage::Auth(auth) = auth else {
            panic!("{auth:?}")
        };
        assert_eq!(auth.version, "");
        assert_eq!(auth.token.expose(), "t");
        // §4.2, with a field of a later version.
        let error: ServerMessage = serde_json::from_str(
            r#"{"type":"error","code":1001,"message":"Authentication failed","details":{"reason":"invalid_token","retry_after":60},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            error,
            ServerMessage::Error(ErrorMessage {
                code: ErrorCode::AuthFailed,
                message: "Authentication failed".into(),
                details: ErrorDetails {
                    reason: "invalid_token".into(),
                    retry_after: Some(60)
                },
            })
        );
    }

    #[test]
    fn versions() {
        assert!(version_supported("1.0"));
        assert!(version_supported("1.7"));
        assert!(version_supported("1"));
        assert!(version_supported(""));
        assert!(!version_supported("2.0"));
        assert!(!version_supported("10.0"));
        assert!(!version_supported("v1"));
    }
}
