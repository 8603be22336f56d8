//! The local proxy that browsers and apps point at: SOCKS5 and HTTP proxy on
//! one port, in front of any [`Connector`].
//!
//! This crate knows nothing about the tunnel. It accepts client connections,
//! finishes the proxy handshake, and asks the [`Connector`] (implemented by the
//! engine) for a byte stream to the target; then it copies bytes both ways.
//!
//! ```text
//!  browser ──TCP──▶ LocalProxy ── first byte ──┬─ 0x05   → SOCKS5 (RFC 1928/1929)
//!                                               ├─ letter → HTTP proxy (CONNECT or absolute URI)
//!                                               └─ other  → closed (0x04 gets SOCKS4 "rejected")
//!                       │
//!                       └── Connector::connect(ConnectRequest{target, client, protocol})
//!                                     ▼
//!                               BoxStream (tunnel stream) ◀══ copy both ways ══▶ client
//! ```
//!
//! # Design
//!
//! - **Sans-IO parsers.** [`socks5`] and [`http1`] are pure functions over byte
//!   slices (`Ok(None)` means "need more"), so they are unit-, property- and
//!   fuzz-testable; the async drivers only own sockets, buffers and timers. The
//!   SOCKS5 codec is hand-written rather than taken from `fast-socks5`: that
//!   crate reads from the socket while it parses, which would leave the
//!   handshake timeout, the reply-code mapping and the "never resolve a domain
//!   locally" rule split between two places.
//! - **No DNS leak.** Domain names travel to the connector as
//!   [`TargetAddr::Domain`]; nothing here resolves names. IP literals written
//!   as names (`"127.0.0.1"`) become [`TargetAddr::Ip`], which needs no lookup.
//! - **Bounded memory.** Every connection owns two buffers of at most
//!   [`ProxyConfig::copy_buffer`] bytes; only while a head is being read may
//!   one grow, up to [`ProxyConfig::max_header_bytes`] for requests and 64 KiB
//!   for response heads. [`ProxyConfig::max_connections`] caps the number of
//!   connections: past it new ones are closed at once.
//! - **HTTP keep-alive.** Plain `http://` requests are forwarded over one
//!   upstream per client connection, reused while requests go to the same
//!   `host:port` and replaced when the target changes. Bodies are framed
//!   exactly (Content-Length, chunked, or until close), so pipelined and
//!   keep-alive requests stay in step. The cost: one request at a time per
//!   client connection, which is what browsers do anyway (they open several
//!   connections).
//!
//! # Error codes
//!
//! One `match` per protocol maps [`ConnectErrorKind`] to the wire:
//! [`socks5::Reply::from_connect_error`] and [`http1::status_for`]. Timeouts
//! become SOCKS reply 0x06 "TTL expired", which curl and Chromium report as a
//! timeout (0x04 "host unreachable" would also be allowed by RFC 1928).

#![warn(missing_docs)]

mod config;
mod connector;
mod drive;
pub mod http1;
mod server;
pub mod socks5;

pub use config::{Credentials, ProxyConfig};
pub use connector::{
    BoxStream, ConnectError, ConnectErrorKind, ConnectFuture, ConnectRequest, Connector,
    ProxyProtocol, ProxyStream,
};
pub use proto_httvps::TargetAddr;
pub use server::{LocalProxy, ProxyHandle};
