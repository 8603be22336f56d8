//! Share this machine's TCP ports through a Relay (seed 004, CONTRACTS.md
//! §5): the control channel (`proto_relay::ClientMachine` over TLS 1.3),
//! userspace WireGuard (`wg_userspace`, no root, no TUN) listening on the
//! tunnel address for the shared ports only, and each connection carried
//! to `127.0.0.1:PORT`.
//!
//! - [`profile`]: the saved profile (no secrets in it) and the keychain kinds.
//! - [`launch`]: profile + JWT + device key → publisher and engine options.
//! - [`publisher`]: [`RelayPublisher`], the engine's view of a share.
//! - [`status`]: what the UI shows ([`ShareStatus`]).
#![warn(missing_docs)]

mod error;
mod forward;
pub mod launch;
pub mod profile;
pub mod publisher;
mod share;
pub mod status;

pub use error::ShareError;
pub use profile::{RELAY_TOKEN, RelayProfile, WIREGUARD_KEY};
pub use publisher::{RelayPublication, RelayPublisher, ShareConfig};
pub use status::{ForwardInfo, ShareStatus};
pub use wg_userspace::PrivateKey;
