//! The client engine: everything the CLI and the desktop app do, with no UI.
//!
//! - [`Engine`] runs a local SOCKS5/HTTP proxy ([`local_proxy`]) over a tunnel
//!   session kept alive by a session manager (states of seed 004, reconnect
//!   with backoff), and keeps a live [`StreamTable`].
//! - Front-ends subscribe to [`EngineEvent`]s (state, streams, errors) or take
//!   a [`Snapshot`].
//! - A [`Transport`] is how the engine reaches the far side; [`HttvpsTransport`]
//!   is the first, and others plug in without touching the proxy or the UI.
//! - [`Profile`]s live in a TOML file; their secrets in a [`SecretStore`]
//!   (the OS keychain), never in the file.
//! - [`DemoGateway`] embeds a real gateway on loopback for the no-setup demo.
#![warn(missing_docs)]

pub mod backoff;
mod connector;
pub mod control;
pub mod demo;
mod engine;
pub mod events;
pub mod httvps;
pub mod launch;
pub mod profile;
pub mod secrets;
pub mod state;
pub mod table;
pub mod transport;
pub mod units;

pub use backoff::ReconnectPolicy;
pub use demo::DemoGateway;
pub use engine::{Engine, EngineError, Snapshot, StartOptions};
pub use events::EngineEvent;
pub use httvps::{HttvpsAuth, HttvpsTransport};
pub use profile::{Profile, ProfileStore, ProfilesFile};
pub use secrets::{KeyringStore, MemoryStore, SecretKind, SecretStore};
pub use state::SessionState;
pub use table::{StreamInfo, StreamTable, Totals};
pub use transport::{Transport, TransportError, TunnelSession};
