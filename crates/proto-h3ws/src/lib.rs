//! HTTP/3 as WebSockets over HTTP/3 need it (RFC 9114, RFC 9220), sans-IO.
//!
//! `h3` 0.0.8, the latest release of hyperium's HTTP/3 crate, refuses
//! `:protocol websocket`, and quiche would bring a second TLS stack
//! (BoringSSL, built with cmake) beside the rustls every other part of the
//! project uses for pins and roots. So the HTTP/3 layer is written here, as
//! small as RFC 9220 allows (docs/http3.md compares the choices): QUIC comes
//! from quinn in the driver, QPACK from the `qpack` crate without a dynamic
//! table (we advertise a table capacity of 0, so a peer must not use one),
//! and this crate holds the rest as plain types:
//!
//! - [`varint`]: QUIC variable-length integers (RFC 9000 §16);
//! - [`frame`]: frame headers and an incremental reader that streams DATA
//!   payloads without buffering them and bounds every other frame;
//! - [`settings`]: the SETTINGS frame, with `SETTINGS_ENABLE_CONNECT_PROTOCOL`;
//! - [`fields`]: field sections (QPACK) and the request/response pseudo-header
//!   rules of RFC 9114 §4.3;
//! - [`connect`]: the extended CONNECT checks, in the order the public proxy
//!   makes them (CONTRACTS.md §3);
//! - [`control`]: the control stream and unidirectional stream types;
//! - [`request`]: a request stream's frame sequence (HEADERS, DATA…,
//!   trailers);
//! - [`error`]: the HTTP/3 error codes.

pub mod connect;
pub mod control;
pub mod error;
pub mod fields;
pub mod frame;
pub mod request;
pub mod settings;
pub mod varint;

pub use error::{Code, H3Error};
