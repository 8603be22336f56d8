//! The Relay server (seed 004, CONTRACTS.md §5): a machine behind NAT
//! publishes some of its local TCP ports through the relay. Clients speak
//! JSON lines over TLS on the control channel (authenticate with a JWT,
//! register a tunnel, heartbeat) and carry the data over WireGuard; the
//! relay opens one public TCP port per shared port.
//!
//! This crate holds the server's policy and state, the parts the control
//! channel driver and the data plane call:
//!
//! - [`jwt`]: token verification, the algorithm pinned by the configured
//!   key (HS256 secret, or an RSA / EC P-256 / Ed25519 public key), with
//!   errors sorted into the seed's AUTH_FAILED / INVALID_TOKEN /
//!   TOKEN_EXPIRED.
//! - [`registry`]: the tunnel registry (ids, owners, tunnel addresses,
//!   public ports, leases, reconnect tokens) behind one trait, in memory or
//!   in Redis so that several relays share it.
//! - [`limits`]: the seed's rate limits (auth attempts per source, tunnel
//!   creations per owner, heartbeats per tunnel).
//!
//! Errors here are this crate's own; the control channel maps them to wire
//! codes in one place (each error has a stable `reason()` label for
//! `details.reason`).
#![warn(missing_docs)]

pub mod config;
mod control;
pub mod jwt;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod tunnels;
