//! Load generator for `bench/run`.
//!
//! Tools that curl cannot be: [`streams`] opens N connections at once
//! through a SOCKS5 proxy (or straight to the target), each fetching one small
//! file over HTTP/1.1, and keeps every one of them open until all have finished,
//! so the proxy really carries N streams at the same moment; [`sink`] is an
//! HTTP server that reads and discards request bodies and answers with the
//! number of bytes it read, so an upload benchmark can check that every byte
//! arrived; [`udp`] sends datagrams to a UDP echo server through a SOCKS5 UDP
//! association with a bounded number in flight, and counts datagrams per
//! second and loss (and [`udp::Echo`] is that echo server); [`delay`] is a
//! TCP and UDP relay that holds everything for a fixed time each way, a
//! network path's delay on loopback; [`cold`] starts a tunnel client and
//! times its first answer byte through it from a cold start; [`ws`] sends
//! WebSocket messages over HTTP/3 (or TCP) to an echo server with a bounded
//! number in flight (and [`ws::EchoServer`] is that echo server);
//! [`requests`] keeps N keep-alive HTTP/1.1 connections (over TLS or not)
//! busy with GETs and reports requests/s and latency, or times one large
//! download.
//!
//! They speak only the small subset of SOCKS5 and HTTP/1.1 a benchmark needs
//! (no auth, `CONNECT` by name like `curl --socks5-hostname`, `UDP ASSOCIATE`, one GET with a
//! `Content-Length` answer), parsed from buffers with checked reads. Every wait
//! has a deadline and every buffer a size limit.

#![warn(missing_docs)]

pub mod cold;
pub mod delay;
pub mod http;
pub mod requests;
pub mod sink;
pub mod socks5;
pub mod streams;
pub mod udp;
pub mod ws;

pub use http::Target;
pub use sink::{Sink, SinkOptions};
pub use streams::{Percentiles, Report, StreamsOptions};
