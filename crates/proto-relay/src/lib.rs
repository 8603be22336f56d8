//! The Relay's control protocol, with no I/O.
//!
//! A machine behind NAT publishes some of its local TCP ports through a
//! relay: it keeps one TLS connection to the relay for control (sign-in,
//! tunnel registration, heartbeats) and carries the traffic over WireGuard.
//! This crate is the control channel only: one JSON object per `\n`-ended
//! line, at most 1 MiB each. The contract is `CONTRACTS.md` §5 (from seed
//! `004_1e6a24b1dee2d7dc.txt`); where the contract is silent, the choices
//! are documented beside the code that makes them ([`client`], [`server`]).
//!
//! ```text
//!   client (ClientMachine)                        relay (ServerSession)
//!   ──────────────────────                        ─────────────────────
//!   Dial ─── TLS ───────────────────────────────▶ new()
//!        ◀──────────────────────────────────────  hello {version "1.0", features}
//!   auth {token, version, client_info} ─────────▶ Authenticate → driver verifies the JWT
//!        ◀──────────────────────────────────────  auth_response | error + close
//!   register {tunnel_info [, tunnel_id, reconnect_token]} ─▶ Register → driver allocates/resumes
//!        ◀──────────────────────────────────────  register_response {tunnel_id, config, reconnect_token}
//!   (WireGuard handshake) register_ack ─────────▶ RegisterAck → driver opens the forwards
//!   heartbeat every 30 s ───────────────────────▶ Heartbeat (at most one per 30 s)
//!        ◀──────────────────────────────────────  heartbeat_response {server_time}
//! ```
//!
//! The client's states are the seed's five (§3.1), with its edges plus the
//! few a real connection needs (a drop before WireGuard is up, a user's
//! disconnect at any time):
//!
//! ```text
//!                connect()            register_response          wireguard_up()
//!  Disconnected ──────────▶ Authenticating ──────────▶ Registered ──────────▶ Active
//!     ▲    ▲                 │   ↺ a failed attempt:          │                │
//!     │    │ refused,        │     retry with backoff         │ drop           │ drop
//!     │    └─ gave up ───────┘                                ▼                ▼
//!     │                                                  Reconnecting ◀────────┘
//!     │                                                   │   ↺ retry, resume
//!     └─────────────── refused, gave up ──────────────────┤
//!                                                         └──▶ Active  (resumed, then
//!                                                                       wireguard_up())
//!  disconnect(): any state → Disconnected
//! ```
//!
//! Modules:
//! - [`codec`]: the line framing ([`LineDecoder`], [`encode_line`]) and
//!   reading a line as a message.
//! - [`message`]: every line as a plain serde type.
//! - [`code`]: the seed's numeric error codes, with a sentence for the UI.
//! - [`validate`]: what a `register` may ask for.
//! - [`client`]: [`ClientMachine`], the desktop side.
//! - [`server`]: [`ServerSession`], the relay's side of one connection.
//!
//! Like the other `proto-*` crates, this one opens no socket, spawns no task
//! and never reads the clock: time comes in as an `Instant`, wall-clock
//! strings (`server_time`, `connected_since`) come from the driver, and
//! both machines follow `quinn-proto`'s shape (`handle_*` in, `poll_*` out).
//! `relay-client` and `relay-server` are the drivers. The cost: the driver
//! must drain `poll_transmit`, `poll_event` and `poll_timeout` after every
//! input, and must answer every server event with a verdict.
#![warn(missing_docs)]

pub mod client;
pub mod code;
pub mod codec;
pub mod message;
pub mod server;
pub mod validate;

pub use client::{
    ClientConfig, ClientError, ClientEvent, ClientMachine, ReconnectPolicy, Registration,
    SavedTunnel, ServerError, TunnelState,
};
pub use code::ErrorCode;
pub use codec::{
    DEFAULT_MAX_LINE, DecodeError, LineDecoder, LineTooLong, decode_client, decode_server,
    encode_line,
};
pub use message::{
    ClientMessage, PROTOCOL_VERSION, ServerMessage, Token, TunnelConfig, TunnelInfo,
};
pub use server::{
    Claims, Failure, Refusal, RegisterGrant, Resume, ServerConfig, ServerEvent, ServerSession,
    SessionError,
};
pub use validate::{InvalidTunnel, TunnelLimits, validate_tunnel_info};

/// Hooks for the fuzz target `relay_control` and the proptests that run
/// the same drives; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::client::fuzzing::drive as drive_client;
    pub use crate::server::fuzzing::drive as drive_server;

    /// Both machines from the same bytes.
    pub fn drive(data: &[u8]) {
        drive_server(data);
        drive_client(data);
    }
}
