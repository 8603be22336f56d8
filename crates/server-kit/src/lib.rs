//! What the project's servers (the HTTVPS gateway, the HT server) share, so
//! each rule lives once:
//!
//! - [`direct`]: from a client-named target to a socket under the target
//!   policy — resolve, check *every* address, then connect (TCP races the
//!   addresses with [`dial`]'s Happy Eyeballs; UDP connects one socket).
//! - [`dial`]: the resolver and RFC 8305 racing.
//! - [`tls`]: a rustls server configuration from PEM.
//! - [`metrics`]: the process-wide Prometheus recorder and its listener.
//! - [`decoy`]: the decoy website, answering every request as a stock nginx
//!   serving a static directory would.
//! - [`admission`] and [`accept`]: admission in stages (pending, admitted,
//!   per source) and the accept loop that applies it.
//! - [`logs`] and [`signal`]: JSON logs and the shutdown signals of a binary;
//!   [`binary`]: what a server binary's `main` does around its `run`.
#![warn(missing_docs)]

pub mod accept;
pub mod admission;
pub mod binary;
pub mod decoy;
pub mod dial;
pub mod direct;
pub mod logs;
pub mod metrics;
pub mod signal;
pub mod tls;
