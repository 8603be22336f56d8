//! The protocol-neutral vocabulary every other crate shares, with no I/O.
//!
//! Five tunnel protocols (HTTVPS, HT, WebSocket over HTTP/3, HLHV, the Relay)
//! meet the local proxy, the engine and the app in the same few types; they
//! live here so that none of those layers has to depend on one protocol's
//! crate just to name a target or an error:
//!
//! - [`TargetAddr`]: where a stream or datagram goes (never resolved locally),
//!   with the SOCKS5 / Shadowsocks address header codec;
//! - [`Datagram`]: one UDP payload and its far-side address;
//! - [`Secret`]: a token or password that never reaches a log;
//! - [`ErrorCode`]: the stable code of the `{code, message}` the engine, the
//!   CLI's `--json` and the UI report;
//! - [`policy`]: which addresses a server refuses to dial (loopback, private,
//!   metadata…), one policy for every server we ship;
//! - `log_filter` (feature `log-filter`): the log filter every binary
//!   installs, which keeps wire payloads (and the token in the hello) out of
//!   the logs at any level;
//! - `sink` (feature `sink`): a WebSocket writer's flush without a stale
//!   waker (the HTTVPS client and gateway);
//! - [`read_size`]: how much a relay's next read asks for (small first,
//!   growing while reads come back full).
#![warn(missing_docs)]

pub mod code;
pub mod datagram;
#[cfg(feature = "log-filter")]
pub mod log_filter;
pub mod policy;
pub mod read_size;
pub mod secret;
#[cfg(feature = "sink")]
pub mod sink;
pub mod target;

pub use code::ErrorCode;
pub use datagram::Datagram;
pub use policy::TargetPolicy;
pub use secret::Secret;
pub use target::{AddressError, MAX_HEADER_LEN, TargetAddr};
