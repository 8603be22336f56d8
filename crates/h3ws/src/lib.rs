//! WebSockets over HTTP/3 (RFC 9220) on quinn.
//!
//! The protocol lives in `proto-h3ws` as plain types; this crate drives it
//! over QUIC connections:
//!
//! - [`server`]: accept HTTP/3 connections, read each request's head, and
//!   answer it: a refusal, or `200` and the stream as bytes;
//! - [`client`]: open an HTTP/3 connection and an extended CONNECT on it;
//! - [`stream::H3Stream`]: a request stream as `AsyncRead + AsyncWrite`
//!   (the payload of its DATA frames), which is what a WebSocket runs on
//!   (RFC 9220 §3: RFC 6455 framing, as over TCP);
//! - [`quic`]: endpoint and transport settings both sides share (ALPN `h3`,
//!   TLS 1.3, idle timeout and keep-alive);
//! - [`udp`]: the UDP socket under quinn, its batched sends kept within
//!   what the kernel accepts.

pub mod client;
mod conn;
pub mod quic;
pub mod server;
pub mod stream;
pub mod udp;

pub use proto_h3ws::connect;
pub use proto_h3ws::fields::{Request, Response};
pub use proto_h3ws::{Code, H3Error};

/// Bounds of the HTTP/3 layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest field section (request or response head) accepted,
    /// advertised as `SETTINGS_MAX_FIELD_SECTION_SIZE`.
    pub max_field_section: u64,
    /// The largest frame accepted on a control stream.
    pub max_control_frame: usize,
    /// How long a new request stream may take to send its head.
    pub head_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_field_section: 16 * 1024,
            max_control_frame: 16 * 1024,
            head_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// An HTTP/3 error code as quinn wants it.
pub fn quic_code(c: Code) -> quinn::VarInt {
    quinn::VarInt::from_u64(c.value()).expect("HTTP/3 codes fit a varint")
}
