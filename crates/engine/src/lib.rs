//! The client engine: everything the CLI and the desktop app do, with no UI.
//!
//! - [`Engine`] runs a local SOCKS5/HTTP proxy ([`local_proxy`]) over a tunnel
//!   session kept alive by a session manager (states of seed 004, reconnect
//!   with backoff), and keeps a live [`StreamTable`].
//! - Front-ends subscribe to [`EngineEvent`]s (state, streams, errors) or take
//!   a [`Snapshot`], whose [`Warning`]s say what a run exposes (a proxy open
//!   to the network without credentials).
//! - A [`Transport`] is how the engine reaches the far side. The engine names
//!   no protocol: each protocol's client crate implements the traits of
//!   [`transport`] (streams, and optionally datagrams and a resolver), and
//!   the app layer picks one from a profile.
//! - A [`Publisher`] is the inbound counterpart ([`Engine::publish`]): the
//!   same supervision, with inbound connections in the same table.
#![warn(missing_docs)]

pub mod backoff;
mod connector;
pub mod control;
pub mod dns;
mod engine;
pub mod events;
pub mod netwatch;
pub mod publish;
pub mod state;
pub mod table;
pub mod transport;
pub mod units;
pub mod warning;

pub use backoff::ReconnectPolicy;
pub use dns::DnsLimits;
pub use engine::{Engine, EngineError, PublishOptions, Snapshot, StartOptions};
pub use events::EngineEvent;
pub use netwatch::NetworkChanges;
pub use publish::{Inbound, Publication, Publisher};
pub use state::SessionState;
pub use table::{StreamInfo, StreamTable, Totals};
pub use transport::{
    DatagramSession, DnsQuestion, DnsRecord, OpenedStream, Resolver, SlotStats, Transport,
    TransportError, TunnelSession,
};
pub use warning::{Warning, WarningCode};
