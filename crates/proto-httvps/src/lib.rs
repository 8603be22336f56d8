//! The HTTVPS wire protocol, with no I/O.
//!
//! HTTVPS carries many TCP streams over one TLS WebSocket. Every WebSocket text
//! message holds one JSON frame (`hello`, `ready`, `stream_open`, `stream_data`,
//! `stream_close`, `ping`, `pong`, `error`); stream payloads travel base64-encoded
//! inside `stream_data`. The first payload bytes of each stream are a Shadowsocks
//! address header naming the target, so an Outline (Shadowsocks) node behind the
//! gateway can dial it.
//!
//! This crate is the protocol and nothing else: it opens no sockets, spawns no
//! tasks and never reads the clock, in the manner of `quinn-proto` and `rustls`.
//! The client SDK and the gateway are thin async drivers around it, and every
//! rule here is testable and fuzzable from plain bytes.
//!
//! ```text
//!   application bytes ──► encode_stream_data ──► text message ──► WebSocket
//!   WebSocket ──► text message ──► decode ──► Frame::StreamData { data } ──► application
//! ```
//!
//! Modules:
//! - [`frame`]: the typed frames, [`decode`] and [`encode`], and the fast path for
//!   `stream_data` (the only frame on the hot path).
//! - [`binary`]: the negotiated `binary_data` extension, `stream_data` as a
//!   binary WebSocket message with a raw payload.
//! - [`address`]: the Shadowsocks address header and `host:port` targets (the
//!   protocol-neutral [`net::target`], re-exported under its wire name).
//! - [`error`]: the contract's error codes and the decoder's typed errors.
//! - [`flow`]: the negotiated `flow_control` extension's credit windows.
//! - [`fair`]: the send queue both sides use: control frames first, then
//!   stream frames round-robin, one stream's frames in order.
//! - [`streams`]: the SDK's stream-id rules (auto ids, limit, unknown stream).
//! - [`client`]: the client side of a session as a state machine
//!   ([`client::Client`]): handshake, negotiation, stream rules, keepalive.
//! - [`server`]: the gateway side ([`server::Handshake`], [`server::Session`]):
//!   the hello check, stream table, violations, keepalive, idle and drain.
//!
//! The two machines follow `quinn-proto`'s `Connection`: inputs are
//! `handle_*` calls (a WebSocket message, an application command, the timer
//! with the current `Instant`), outputs are drained with `poll_*` after every
//! input (frames to send, events or actions for the driver, the next
//! deadline). They live side by side so that each is tested against the
//! other in memory, with simulated time, and fuzzed from raw bytes
//! (`fuzz/`); the tokio drivers in `httvps-client` and `httvps-gateway` only
//! move bytes and time in and out. The cost is a lock around the client
//! machine shared by its reader, writer and streams, where a fused design
//! would have each task own its part.
#![warn(missing_docs)]

/// Targets and the address header that starts each stream's payload.
pub use net::target as address;
pub mod binary;
pub mod client;
pub mod error;
pub mod fair;
pub mod flow;
pub mod frame;
pub mod server;
pub mod streams;
pub mod unmasked;

pub use address::{AddressError, TargetAddr};
pub use binary::{FEATURE_BINARY_DATA, decode_binary_frame, decode_binary_limited};
pub use error::{DecodeError, ErrorCode};
pub use frame::{
    FEATURE_FLOW_CONTROL, FEATURE_HALF_CLOSE, FEATURE_STREAM_READY, Frame, MAX_FRAME_LEN,
    PROTOCOL_VERSION, SessionToken, decode, decode_limited, encode, encode_stream_data,
    encode_to_string, max_payload_len,
};
pub use streams::{ClientStreams, StreamRuleError};
