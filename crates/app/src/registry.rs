//! The protocol registry: every protocol the app knows, what it is for (its
//! modes) and whether this build can use it yet. The UI builds its
//! navigation and its profile forms from this list instead of matching on
//! protocol names, and the controller asks it before starting anything.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A tunnel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// JSON frames over a TLS WebSocket, multiplexed streams (seed 000).
    Httvps,
    /// The chunked-HTTP tunnel with Salsa20: TCP, UDP and DNS (seed 003).
    Ht,
    /// A cell publishing a local web app through a queen (seed 001).
    Hlhv,
    /// Remote access to this machine's ports over WireGuard (seed 004).
    Relay,
}

/// What a protocol lets the user do; one panel of the window each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Outbound: apps use the local SOCKS5/HTTP proxy through the tunnel.
    Connect,
    /// Inbound: a local web app is published through a server.
    Publish,
    /// Inbound: colleagues reach this machine's ports through a relay.
    RemoteAccess,
}

/// What the tunnel carries in connect mode, so the proxy can say what works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct Carries {
    /// TCP streams (SOCKS5 CONNECT, HTTP proxy).
    pub streams: bool,
    /// UDP datagrams (SOCKS5 UDP ASSOCIATE).
    pub datagrams: bool,
    /// DNS resolved on the far side.
    pub dns: bool,
}

/// One registry entry, as the UI gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ProtocolInfo {
    /// The protocol.
    pub id: Protocol,
    /// Its name for people.
    pub title: String,
    /// What it is, in one line.
    pub summary: String,
    /// The panel it belongs to.
    pub mode: Mode,
    /// What it carries (connect mode).
    pub carries: Carries,
    /// Whether this build can create and use its profiles.
    pub available: bool,
}

impl Protocol {
    /// Every protocol, in the order the UI lists them.
    pub const ALL: [Protocol; 4] = [
        Protocol::Httvps,
        Protocol::Ht,
        Protocol::Hlhv,
        Protocol::Relay,
    ];

    /// The serialized name (`httvps`, …), as in `protocol = "…"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Httvps => "httvps",
            Protocol::Ht => "ht",
            Protocol::Hlhv => "hlhv",
            Protocol::Relay => "relay",
        }
    }

    /// The name people see.
    pub fn title(self) -> &'static str {
        match self {
            Protocol::Httvps => "HTTVPS",
            Protocol::Ht => "HT",
            Protocol::Hlhv => "HLHV",
            Protocol::Relay => "Relay",
        }
    }

    /// The registry entry.
    pub fn info(self) -> ProtocolInfo {
        let (summary, mode, carries, available) = match self {
            Protocol::Httvps => (
                "Multiplexed streams over a WebSocket to a gateway, on HTTP/1.1 (TCP) or HTTP/3 (QUIC)",
                Mode::Connect,
                Carries {
                    streams: true,
                    datagrams: false,
                    dns: false,
                },
                true,
            ),
            Protocol::Ht => (
                "Chunked-HTTP tunnel: TCP, UDP and DNS",
                Mode::Connect,
                Carries {
                    streams: true,
                    datagrams: true,
                    dns: true,
                },
                true,
            ),
            Protocol::Hlhv => (
                "Publish a local web app through a queen",
                Mode::Publish,
                Carries {
                    streams: false,
                    datagrams: false,
                    dns: false,
                },
                true,
            ),
            Protocol::Relay => (
                "Let colleagues reach this machine's ports over WireGuard",
                Mode::RemoteAccess,
                Carries {
                    streams: false,
                    datagrams: false,
                    dns: false,
                },
                true,
            ),
        };
        ProtocolInfo {
            id: self,
            title: self.title().to_owned(),
            summary: summary.to_owned(),
            mode,
            carries,
            available,
        }
    }
}

/// The whole registry, in display order.
pub fn registry() -> Vec<ProtocolInfo> {
    Protocol::ALL.iter().map(|p| p.info()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_every_mode_has_a_protocol() {
        for protocol in Protocol::ALL {
            let json = serde_json::to_string(&protocol).unwrap();
            assert_eq!(json, format!("\"{}\"", protocol.as_str()));
        }
        for mode in [Mode::Connect, Mode::Publish, Mode::RemoteAccess] {
            assert!(registry().iter().any(|p| p.mode == mode), "{mode:?}");
        }
        let available: Vec<_> = registry()
            .into_iter()
            .filter(|p| p.available)
            .map(|p| p.id)
            .collect();
        assert_eq!(available, Protocol::ALL, "every protocol is built");
    }
}
