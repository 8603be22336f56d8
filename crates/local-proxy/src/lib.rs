//! The local proxy that browsers and apps point at: SOCKS5 and HTTP proxy on
//! one port, in front of any [`Connector`].
//!
//! This crate knows nothing about the tunnel. It accepts client connections,
//! finishes the proxy handshake, and asks the [`Connector`] (implemented by the
//! engine) for a byte stream to the target; then it copies bytes both ways.
//! For SOCKS5 `UDP ASSOCIATE` it asks for a datagram channel instead and
//! relays datagrams between it and a local UDP socket.
//!
//! ```text
//!  browser ──TCP──▶ LocalProxy ── first byte ──┬─ 0x05   → SOCKS5 (RFC 1928/1929)
//!                                               ├─ letter → HTTP proxy (CONNECT or absolute URI)
//!                                               └─ other  → closed (0x04 gets SOCKS4 "rejected")
//!                       │
//!                       ├── CONNECT, HTTP: Connector::connect(ConnectRequest{target, client, protocol})
//!                       │             ▼
//!                       │       BoxStream (tunnel stream) ◀══ copy both ways ══▶ client
//!                       │
//!                       └── UDP ASSOCIATE: Connector::associate(AssociateRequest{client})
//!                                     ▼
//!                               BoxDatagrams ◀══ Datagram ══▶ relay UdpSocket ◀═ RSV FRAG ATYP addr port data ═▶ client UDP
//!                               (send / recv)                 (listener's IP, port 0; BND in the reply)
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
//!   connections: past it new ones are closed at once. A UDP association
//!   adds one receive buffer of [`ProxyConfig::udp_max_datagram`] bytes plus
//!   a header, and one for the way back; nothing is queued in the proxy.
//! - **UDP ASSOCIATE (RFC 1928 §4, §7).** The connector decides whether UDP
//!   can be carried: the default [`Connector::associate`] refuses, which the
//!   client sees as reply 0x07 "command not supported". On success the proxy
//!   binds one UDP socket per association on the IP the client reached it
//!   on (port 0), names it in the reply, and relays: datagrams from the
//!   client are decoded ([`socks5::decode_udp_datagram`]) and handed to
//!   [`DatagramChannel::send`]; datagrams from [`DatagramChannel::recv`] go
//!   back with the header naming their sender. Only the control
//!   connection's IP may send, and only from one port (DST.PORT of the
//!   request, else the first valid datagram's; a request naming another
//!   host as its source gets reply 0x02); fragments, malformed and
//!   oversized datagrams ([`ProxyConfig::udp_max_datagram`]) are dropped
//!   and counted in debug logs, never ending the association. It ends when
//!   the control connection closes, when `recv` returns `None`, or after
//!   [`ProxyConfig::udp_idle_timeout`] without traffic; the socket and the
//!   channel are dropped then. It runs in the control connection's task, so
//!   it holds one slot under [`ProxyConfig::max_connections`]. Target names
//!   stay names here too.
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
//! [`ConnectErrorKind::Unsupported`] (a tunnel that carries no UDP) becomes
//! 0x07 "command not supported", the same answer as for BIND.

#![warn(missing_docs)]

mod config;
mod connector;
mod drive;
pub mod http1;
mod server;
pub mod socks5;

pub use config::{Credentials, ProxyConfig};
pub use connector::{
    AssociateFuture, AssociateRequest, BoxDatagrams, BoxFuture, BoxStream, ConnectError,
    ConnectErrorKind, ConnectFuture, ConnectRequest, Connector, DatagramChannel, ProxyProtocol,
    ProxyStream,
};
pub use net::{Datagram, TargetAddr};
pub use server::{LocalProxy, ProxyHandle};
