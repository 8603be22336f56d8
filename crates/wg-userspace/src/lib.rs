//! WireGuard without root and without a TUN device: boringtun's `noise::Tunn`
//! runs the WireGuard sessions and smoltcp is the TCP/IP stack, both driven
//! by one tokio task over one UDP socket. The Relay's client listens on its
//! tunnel address with it; the Relay's server dials clients' addresses.
//!
//! ```text
//!   WgStream / WgListener          Node (peers, stats, listen, connect)
//!        │  copy into/out of             │
//!        ▼  socket ring buffers          ▼
//!   ┌──────────── Stack (mutex) ──────────────┐   ┌── PeerTable (mutex) ──┐
//!   │ smoltcp Interface + TCP sockets + Device │   │ Tunn per peer, routes │
//!   └───────────────▲──────────────────────────┘   └──────────▲────────────┘
//!                   │ IP packets                              │ datagrams
//!                   └──────────── driver task ────────────────┘
//!                                     │
//!                                UDP socket
//! ```
//!
//! Design choices and their costs:
//! - Streams copy straight into smoltcp's socket buffers under the stack's
//!   lock instead of talking to the driver over channels: one copy each way
//!   and TCP's own flow control as backpressure, at the price of a mutex
//!   shared with the driver (held only for buffer copies and polls).
//! - Crypto runs outside the stack's lock, so streams keep copying while
//!   the driver encrypts; datagrams are sent with no lock held.
//! - IPv4 only, TCP only: what the Relay carries.
//! - One driver task: a node's throughput is bounded by one core doing
//!   ChaCha20-Poly1305 and TCP for every peer (fine for a desktop client; a
//!   relay serving many busy clients can run several nodes).

#![warn(missing_docs)]

mod ack_rescue;
mod config;
mod device;
mod driver;
mod error;
mod keys;
mod node;
mod outbox;
mod peers;
mod stack;
mod tcp;

pub use config::{AllowedIp, CongestionControl, NodeConfig, PeerConfig};
pub use error::{Error, Result};
pub use keys::{PrivateKey, PublicKey};
pub use node::{Node, NodeStats};
pub use peers::PeerStats;
pub use tcp::{WgListener, WgStream};
