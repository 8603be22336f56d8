//! The HLHV cell: publishes a local web app through a queen
//! (`CONTRACTS.md` §4, `docs/hlhv.md`) as an engine publisher.
//!
//! The protocol's rules live in `proto-hlhv`'s cell machines
//! ([`proto_hlhv::cell`]); this crate is their tokio driver. A publication
//! is one TLS *leash* to the queen (login with the cell key, mount) and
//! *bands*, further TLS connections opened the moment the queen asks
//! (`NeedBand`) and kept for reuse, each serving one request at a time from
//! the local app over HTTP/1.1. Requests run concurrently across bands;
//! response bodies stream through in bounded pieces, never buffered whole.
//! Request bodies are bounded and collected before the app sees them: a
//! body over the maximum must be refused with 413, which is impossible once
//! part of it has been passed on.
//!
//! - [`CellConfig`]: queen, trust, mount, local app, limits.
//! - [`HlhvPublisher`]: `engine::Publisher`; every connect is a new leash.
//! - [`HlhvProfile`], [`CELL_KEY`] and [`launch`]: a saved profile and how
//!   the CLI and the app start it.
#![warn(missing_docs)]

mod band;
mod config;
mod conn;
mod error;
pub mod launch;
mod leash;
mod local;
pub mod profile;
mod publisher;

pub use client_kit::TlsOptions;
pub use config::{CellConfig, Checked, DEFAULT_QUEEN_PORT, LocalTarget};
pub use error::HlhvError;
pub use profile::{CELL_KEY, HlhvProfile};
pub use publisher::{HlhvPublication, HlhvPublisher};
