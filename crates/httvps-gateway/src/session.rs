//! The per-session protocol rules, re-exported from [`proto_httvps::server`].
//!
//! The sans-IO machines (the hello [`Handshake`] and the established
//! [`Session`]) live in `proto-httvps` beside the client's, so that the two
//! sides are tested against each other in memory and fuzzed from raw bytes
//! there. This module keeps the gateway's paths (`crate::session::…`) for the
//! driver, the stream tasks and embedders.

pub use proto_httvps::server::{
    Action, CloseReason, Handshake, HandshakeReject, Hello, Session, SessionParams, StreamEnd,
    StreamId, check_hello, close_code,
};
