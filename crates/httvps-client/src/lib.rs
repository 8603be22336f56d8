//! HTTVPS client SDK.
//!
//! Two levels, both over one TLS WebSocket session with a gateway:
//!
//! - [`Session`] is the seed's SDK, frame by frame: `open_stream` (auto ids
//!   `s1`, `s2`, …), `send_data`, `close_stream` and `next_event(timeout)`,
//!   which returns every incoming frame but `ping` (answered automatically).
//! - [`Tunnel`] multiplexes: a background driver owns the socket, answers
//!   pings, sends keepalives and hands each [`Stream`] its bytes. A `Stream` is
//!   `AsyncRead + AsyncWrite`, so any tokio code (a SOCKS proxy, `copy`) can use
//!   one tunnelled connection like a `TcpStream`.
//!
//! [`ControlPlane`] turns device credentials into the short-lived, single-use
//! session tokens that `hello` needs; [`connect_with_device`] fetches a fresh
//! one for every (re)connect.
//!
//! [`HttvpsTransport`] is HTTVPS as an engine transport (what the local proxy
//! serves through), [`HttvpsProfile`] its saved settings, and [`launch`] the
//! one place the CLI and the app turn a profile into a running engine.
//!
//! The wire format and the stream-id rules live in `proto-httvps`; this crate
//! only drives them with tokio.
#![warn(missing_docs)]

mod carrier;
mod config;
mod connect;
mod control;
pub mod crypto;
mod error;
pub mod launch;
mod pool;
pub mod profile;
mod session;
mod stream;
pub mod transport;
mod tunnel;
mod upgrade;

pub use client_kit::spki_sha256;
pub use config::{ClientConfig, KeepaliveConfig, TlsOptions, Transport};
pub use control::{ControlPlane, DeviceCredentials, SessionGrant, connect_with_device};
pub use error::{ClientError, StreamEnd};
pub use net::Secret;
pub use profile::HttvpsProfile;
pub use proto_httvps::{ErrorCode, Frame, TargetAddr};
pub use session::Session;
pub use stream::Stream;
pub use transport::{HttvpsAuth, HttvpsTransport};
pub use tunnel::{CloseReason, Tunnel, TunnelState};
