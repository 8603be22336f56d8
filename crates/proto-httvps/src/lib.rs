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
//! - [`address`]: the Shadowsocks address header and `host:port` targets.
//! - [`error`]: the contract's error codes and the decoder's typed errors.
//! - [`streams`]: the SDK's stream-id rules (auto ids, limit, unknown stream).
#![warn(missing_docs)]

pub mod address;
pub mod binary;
pub mod error;
pub mod frame;
pub mod streams;

pub use address::{AddressError, TargetAddr};
pub use binary::{FEATURE_BINARY_DATA, decode_binary_frame, decode_binary_limited};
pub use error::{DecodeError, ErrorCode};
pub use frame::{
    FEATURE_HALF_CLOSE, FEATURE_STREAM_READY, Frame, MAX_FRAME_LEN, PROTOCOL_VERSION, SessionToken,
    decode, decode_limited, encode, encode_stream_data, encode_to_string, max_payload_len,
};
pub use streams::{ClientStreams, StreamRuleError};
