//! Routing rules (split tunnelling), with no I/O: which connections go
//! through the tunnel, which go straight from this machine, and which are
//! refused.
//!
//! ```text
//!  RuleSet (serde, TOML)  ──compile()──▶  Router  ──decide(target)──▶  Decision { action, rule }
//!  default + [rules…]       validation:             first rule that        tunnel | direct | block
//!                           RuleError names         matches wins; else     + which rule (or the
//!                           the rule                the default            default) matched
//!                                                  ──pac(proxy addr)──▶ FindProxyForURL(url, host)
//! ```
//!
//! # Design
//!
//! - **Names are matched as names.** A domain target is judged by its name
//!   only; nothing here (or in the caller, before the decision) resolves it,
//!   so routing never leaks a DNS query for a name the user wants tunnelled.
//!   The price: an IP rule (`ip`, `private`) never matches a domain target on
//!   this side. What such a name resolves to is the tunnel side's business
//!   (the gateway's own private-target policy applies there). Numeric
//!   spellings that resolvers read as IPv4 addresses (`127.1`, `0x7f.1`,
//!   `2130706433`) are judged as the addresses they are, via
//!   [`net::policy::parse_ipv4_lenient`], and `localhost` (with its
//!   subdomains, RFC 6761) counts as a private network.
//! - **The stored form is what the user wrote.** [`Rule`] keeps its value as
//!   text so that a profile with a bad rule still loads, shows, and can be
//!   fixed in the app; [`RuleSet::compile`] validates and reports the first
//!   bad rule by position and content ([`RuleError`]).
//! - **One private set.** The `private` rule uses
//!   [`net::policy::refused_range`], the set every server refuses to dial, so
//!   "private" means the same thing on both sides.
//! - **The PAC file never resolves either.** [`Router::pac`] writes the
//!   rules as JavaScript; IP rules apply only to hosts that are IP literals
//!   (no `dnsResolve`, no `isInNet` on names). Where JavaScript cannot judge
//!   exactly (IPv6 CIDR rules), it sends the connection to the local proxy,
//!   which applies the same rules exactly; `block` goes to the proxy too, so
//!   one place refuses and logs it.
#![warn(missing_docs)]

mod matcher;
mod pac;
mod rule;

pub use matcher::{Decision, Router};
pub use rule::{Action, Rule, RuleError, RuleKind, RuleSet};
