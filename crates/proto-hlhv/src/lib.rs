//! The HLHV wire protocol, with no I/O.
//!
//! HLHV publishes a web app running on a "cell" (the user's machine) through
//! a public "queen" reverse proxy. The cell keeps one TLS connection to the
//! queen, the *leash*, for control (login, mount, requests for more
//! connections), and opens *bands*, further TLS connections that each carry
//! one HTTP request and its response at a time. The contract is
//! `CONTRACTS.md` §4; `docs/hlhv.md` describes it in the project's words.
//!
//! - [`fsock`]: the length-prefixed framing both connection kinds use, with
//!   a cap on the frame size (the original has none).
//! - [`frame`]: every frame as a plain type ([`Frame`]), parsed and written
//!   exactly as the public Go implementation does, including what it sends
//!   that the seed does not describe (empty fields, `null` maps);
//!   [`head_ref`]: the two heads on the hot path with borrowed text.
//!
//! Like the other `proto-*` crates, this one opens no socket and never reads
//! the clock: the cell (`hlhv-cell`) and the queen (`hlhv-queen`) are
//! drivers around it.
#![warn(missing_docs)]

pub mod cell;
pub mod frame;
pub mod fsock;
pub mod head_ref;
pub mod queen;
pub mod route;

pub use frame::{
    Accept, ConnKind, Frame, FrameError, IAm, Kind, Mount, NeedBand, ReqHead, ResHead, ResWant,
};
pub use fsock::{DEFAULT_MAX_FRAME, FrameReader};
pub use head_ref::{ReqHeadRef, ResHeadRef};
