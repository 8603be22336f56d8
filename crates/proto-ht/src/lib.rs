//! The HT wire protocol, with no I/O.
//!
//! HT carries streams over long-lived chunked `POST /ht/create.php`
//! requests: every HTTP chunk holds exactly one query (client → server) or
//! one answer (server → client), encrypted with Salsa20 under a pre-shared
//! key. The contract is `CONTRACTS.md` §2; `docs/ht.md` describes it in the
//! project's words, weaknesses included.
//!
//! - [`query`]: the plaintext of a chunk as typed values ([`Query`] from the
//!   client, [`Answer`] from the server), read and written exactly.
//! - [`cipher`]: the per-connection, per-direction keystream
//!   ([`ChunkCipher`]) and the session id rules.
//! - [`client`]: the client's session machine (query ids, windows,
//!   acknowledgements, resuming batches across connections).
//! - [`packets`]: a stream's download packets kept until acknowledged, what
//!   a windowed batch may send, and when upload packets are acknowledged.
//! - [`server`]: the server's sessions, connections and streams as one
//!   sans-IO machine ([`server::Server`]).
//! - [`chunked`]: HTTP/1.1 chunked coding that keeps chunk boundaries (one
//!   query per chunk), for both sides.
//!
//! Like `proto-httvps`, this crate opens no socket and never reads the
//! clock; the client and the server are drivers around it.
#![warn(missing_docs)]

pub mod chunked;
pub mod cipher;
pub mod client;
pub mod packets;
pub mod query;
mod salsa;
pub mod server;

pub use cipher::{ChunkCipher, Direction, Key, KeyError, SessionId};
pub use query::{Answer, DecodeError, DnsType, Proto, Query};
