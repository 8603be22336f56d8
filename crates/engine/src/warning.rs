//! Warnings about a run that works but exposes the tunnel: what the engine
//! logs (at warn level) when it starts, and keeps in its [`Snapshot`] for
//! the front-ends to show while the run lasts (the CLI on stderr, the
//! desktop app beside the proxy address, `httvps status`).
//!
//! [`Snapshot`]: crate::Snapshot

use std::net::SocketAddr;

use serde::Serialize;

/// What kind of exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum WarningCode {
    /// The local proxy listens beyond loopback and asks for no user name
    /// and password ([`local_proxy::ProxyConfig::open_to_network`]).
    OpenProxy,
    /// The DNS server listens beyond loopback (it has no authentication).
    OpenDns,
}

impl WarningCode {
    /// The code as serialized (`open_proxy`, `open_dns`).
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::OpenProxy => "open_proxy",
            WarningCode::OpenDns => "open_dns",
        }
    }
}

/// One warning: its code, the address concerned and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Warning {
    /// Stable code.
    pub code: WarningCode,
    /// The listening address it is about.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub addr: SocketAddr,
    /// Human sentence, without a remedy (front-ends name their own: a flag,
    /// a setting).
    pub message: String,
}

impl Warning {
    /// The local proxy on `addr` (beyond loopback) requires no credentials.
    pub fn open_proxy(addr: SocketAddr) -> Warning {
        Warning {
            code: WarningCode::OpenProxy,
            addr,
            message: format!(
                "the local proxy listens on {addr} without a user name and password: anyone who can reach this address can use your tunnel"
            ),
        }
    }

    /// The DNS server on `addr` is beyond loopback.
    pub fn open_dns(addr: SocketAddr) -> Warning {
        Warning {
            code: WarningCode::OpenDns,
            addr,
            message: format!(
                "the DNS server listens on {addr}: anyone who can reach this address can look up names through your tunnel"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_serialize_with_their_code_and_address() {
        let warning = Warning::open_proxy("0.0.0.0:1080".parse().unwrap());
        let json = serde_json::to_value(&warning).unwrap();
        assert_eq!(json["code"], "open_proxy");
        assert_eq!(json["addr"], "0.0.0.0:1080");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("anyone who can reach this address can use your tunnel")
        );
        assert_eq!(WarningCode::OpenDns.as_str(), "open_dns");
        assert_eq!(
            serde_json::to_value(WarningCode::OpenDns).unwrap(),
            "open_dns"
        );
    }
}
