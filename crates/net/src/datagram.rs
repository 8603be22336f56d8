//! One UDP payload and the address on the far side of the tunnel.

use bytes::Bytes;

use crate::target::TargetAddr;

/// The longest UDP payload (65535 minus the IPv4 and UDP headers).
pub const MAX_DATAGRAM_LEN: usize = 65_507;

/// A datagram leaving for `target`, or one that came back from it.
///
/// The payload is a [`Bytes`] so a datagram can be queued and handed across
/// tasks without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where it goes (outbound) or where it came from (inbound). Domain names
    /// are resolved on the far side.
    pub target: TargetAddr,
    /// The UDP payload.
    pub payload: Bytes,
}

impl Datagram {
    /// A datagram for `target`.
    pub fn new(target: TargetAddr, payload: impl Into<Bytes>) -> Datagram {
        Datagram {
            target,
            payload: payload.into(),
        }
    }
}
