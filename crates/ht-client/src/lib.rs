//! HT client: the chunked-HTTP tunnel (CONTRACTS.md §2, `docs/ht.md`) as an
//! engine transport.
//!
//! The protocol's rules live in `proto-ht`'s client machine
//! ([`proto_ht::client::Client`]); this crate is its tokio driver. A session
//! keeps `N` transport connections (each a full-duplex chunked
//! `POST {base}/ht/create.php`, over TLS for `https://`), replaces broken
//! ones with bounded retries, and offers what the engine asks of a tunnel:
//! TCP streams ([`HtStream`]), UDP associations and DNS lookups through the
//! server.
//!
//! - [`HtClientConfig`]: URL, key, trust, connections, windows, timeouts.
//! - [`HtTransport`]: `engine::Transport`; every connect is a new session
//!   with a new PHPSESSID.
//! - [`HtSession`]: `engine::TunnelSession` with datagrams and a resolver.
//! - [`HtProfile`] and [`launch`]: a saved profile and how the CLI and the
//!   app start it.
#![warn(missing_docs)]

mod config;
mod connection;
mod datagram;
mod error;
mod http;
pub mod launch;
#[cfg(test)]
mod loopback_tests;
pub mod profile;
mod session;
mod shared;
mod stream;
mod transport;

pub use client_kit::TlsOptions;
pub use config::{ConnectionRetry, HtClientConfig, ServerUrl};
pub use error::HtError;
pub use profile::{HT_KEY, HtProfile};
pub use proto_ht::Key;
pub use proto_ht::client::Config as WindowConfig;
pub use session::HtSession;
pub use stream::HtStream;
pub use transport::HtTransport;
