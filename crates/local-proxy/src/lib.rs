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
//!  browser ──TCP──▶ LocalProxy ── first byte (peeked) ──┬─ 0x05   → SOCKS5 (RFC 1928/1929), hand-written codec
//!                                                        ├─ letter → HTTP/1 proxy on hyper (server connection)
//!                                                        └─ other  → closed (0x04 gets SOCKS4 "rejected")
//!                       │
//!                       ├── SOCKS5 CONNECT, HTTP CONNECT: Connector::connect(ConnectRequest{target, client, protocol})
//!                       │             ▼
//!                       │       BoxStream (tunnel stream) ◀══ copy both ways ══▶ client socket
//!                       │                                    (HTTP: taken back from hyper after the 200)
//!                       │
//!                       ├── HTTP http://host/…: Connector::connect, then a hyper client connection over the stream
//!                       │             ▼
//!                       │       request rewritten (origin form, Host, no hop-by-hop) ══ hyper re-frames ══▶ origin
//!                       │       response (bodies streamed both ways)                 ◀══════════════════
//!                       │
//!                       └── UDP ASSOCIATE: Connector::associate(AssociateRequest{client})
//!                                     ▼
//!                               BoxDatagrams ◀══ Datagram ══▶ relay UdpSocket ◀═ RSV FRAG ATYP addr port data ═▶ client UDP
//!                               (send / recv)                 (listener's IP, port 0; BND in the reply)
//! ```
//!
//! # Design
//!
//! - **hyper does HTTP/1.** Request heads, `Content-Length` and chunked
//!   bodies, keep-alive, pipelining and `Expect: 100-continue` are hyper's
//!   (its server towards the client, its client towards the origin); the
//!   proxy's own rules are pure functions over `http` types in [`http1`]
//!   (target, origin-form rewrite, hop-by-hop fields, error responses). A
//!   hand-written chunked scanner would be a request-smuggling surface: with
//!   hyper, `Content-Length` + `Transfer-Encoding` is read as chunked and the
//!   connection closed after the response (RFC 9112 §6.3), conflicting
//!   lengths and bad chunk sizes get 400, and the body the origin sees is
//!   framed anew by hyper, never passed through as the client wrote it.
//! - **SOCKS5 stays sans-IO and hand-written.** [`socks5`] is pure functions
//!   over byte slices (`Ok(None)` means "need more"), so it is unit-,
//!   property- and fuzz-testable; the async driver only owns sockets,
//!   buffers and timers. It is not taken from `fast-socks5`: that crate
//!   reads from the socket while it parses, which would leave the handshake
//!   timeout, the reply-code mapping and the "never resolve a domain
//!   locally" rule split between two places.
//! - **One byte path for tunnels.** After an HTTP CONNECT (or a forwarded
//!   protocol switch) the client socket is taken back from hyper's upgrade
//!   and relayed with the same code and buffers as SOCKS5; bytes hyper had
//!   already read go first.
//! - **No DNS leak.** Domain names travel to the connector as
//!   [`TargetAddr::Domain`]; nothing here resolves names. IP literals written
//!   as names (`"127.0.0.1"`) become [`TargetAddr::Ip`], which needs no lookup.
//! - **Bounded memory.** A SOCKS5 or tunnelled connection owns two buffers
//!   of at most [`ProxyConfig::copy_buffer`] bytes. An HTTP connection holds
//!   hyper's read and write buffers, each limited to the larger of
//!   `copy_buffer` and [`ProxyConfig::max_header_bytes`] (towards the
//!   origin, at least 64 KiB: response heads may be larger); request heads
//!   over `max_header_bytes` get 431, and bodies stream with backpressure,
//!   never collected. [`ProxyConfig::max_connections`] caps the number of
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
//! - **The PAC file.** `GET /proxy.pac` sent to the proxy port as an
//!   ordinary request (origin form, not a proxy request) is answered with
//!   [`ProxyConfig::rules`] as a proxy auto-config file
//!   ([`http1::pac_response`]), naming the address the client reached. It
//!   is served before the credentials check: browsers send no
//!   `Proxy-Authorization` when they fetch it. Applying the rules is the
//!   connector's job (the engine's connects `direct` targets itself).
//! - **HTTP keep-alive.** Plain `http://` requests are forwarded over one
//!   upstream per client connection, reused while requests go to the same
//!   `host:port` and replaced when the target changes or the origin closes
//!   it. hyper serves one request at a time per client connection, which is
//!   what browsers do anyway (they open several connections). Each request
//!   head must be complete within [`ProxyConfig::handshake_timeout`], and an
//!   idle keep-alive connection is closed after that long too (hyper's
//!   header timer runs while it waits for a head).
//!
//! # Error codes
//!
//! One `match` per protocol maps [`ConnectErrorKind`] to the wire:
//! [`socks5::Reply::from_connect_error`] and [`http1::status_for`] (with
//! the text from [`http1::connect_error_text`]). Timeouts become SOCKS reply
//! 0x06 "TTL expired", which curl and Chromium report as a timeout (0x04
//! "host unreachable" would also be allowed by RFC 1928).
//! [`ConnectErrorKind::Unsupported`] (a tunnel that carries no UDP) becomes
//! 0x07 "command not supported", the same answer as for BIND.

#![warn(missing_docs)]

mod config;
mod connector;
mod drive;
pub mod http1;
mod server;
pub mod socks5;

pub use config::{Credentials, ProxyConfig, beyond_loopback};
pub use connector::{
    AssociateFuture, AssociateRequest, BoxDatagrams, BoxFuture, BoxStream, ConnectError,
    ConnectErrorKind, ConnectFuture, ConnectRequest, Connector, DatagramChannel, ProxyProtocol,
    ProxyStream,
};
pub use net::{Datagram, TargetAddr};
pub use server::{LocalProxy, ProxyHandle};
