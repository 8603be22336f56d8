//! What a `register` may ask for. The relay answers anything else with
//! INVALID_CONFIG and the reason below; the client checks its own settings
//! the same way before it dials, so a typo never costs a round trip.
//!
//! | rule                                             | `details.reason`       |
//! |--------------------------------------------------|------------------------|
//! | name: 1 to 64 of `[A-Za-z0-9._-]`                | `invalid_name`         |
//! | protocol: `"tcp"`                                | `unsupported_protocol` |
//! | ports: at least one                              | `no_ports`             |
//! | ports: 1..=65535                                 | `invalid_port`         |
//! | ports: no port twice                             | `duplicate_port`       |
//! | ports: at most `max_ports` (16 by default)       | `too_many_ports`       |
//! | public_key: standard base64 of exactly 32 bytes  | `invalid_public_key`   |

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::message::TunnelInfo;

/// The longest tunnel name.
pub const MAX_NAME_LEN: usize = 64;

/// The default cap on ports per tunnel.
pub const DEFAULT_MAX_PORTS: usize = 16;

/// Limits on one tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelLimits {
    /// Ports one tunnel may publish.
    pub max_ports: usize,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        TunnelLimits {
            max_ports: DEFAULT_MAX_PORTS,
        }
    }
}

/// A `tunnel_info` the relay refuses (INVALID_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidTunnel {
    /// The `details.reason` (see the module's table).
    pub reason: &'static str,
    /// What is wrong, for logs and the error's `message`.
    pub message: String,
}

impl InvalidTunnel {
    fn new(reason: &'static str, message: impl Into<String>) -> InvalidTunnel {
        InvalidTunnel {
            reason,
            message: message.into(),
        }
    }
}

/// Checks a tunnel against the rules; gives the decoded WireGuard key.
pub fn validate_tunnel_info(
    info: &TunnelInfo,
    limits: &TunnelLimits,
) -> Result<[u8; 32], InvalidTunnel> {
    check_name(&info.name)?;
    if info.protocol != "tcp" {
        return Err(InvalidTunnel::new(
            "unsupported_protocol",
            "only the \"tcp\" protocol is forwarded",
        ));
    }
    check_ports(&info.ports, limits)?;
    decode_public_key(&info.public_key)
}

fn check_name(name: &str) -> Result<(), InvalidTunnel> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidTunnel::new(
            "invalid_name",
            format!("the name must be 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 . _ -"),
        ))
    }
}

fn check_ports(ports: &[u16], limits: &TunnelLimits) -> Result<(), InvalidTunnel> {
    if ports.is_empty() {
        return Err(InvalidTunnel::new(
            "no_ports",
            "at least one port is needed",
        ));
    }
    if ports.len() > limits.max_ports {
        return Err(InvalidTunnel::new(
            "too_many_ports",
            format!("at most {} ports per tunnel", limits.max_ports),
        ));
    }
    if ports.contains(&0) {
        return Err(InvalidTunnel::new("invalid_port", "ports are 1 to 65535"));
    }
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(InvalidTunnel::new(
            "duplicate_port",
            format!("port {} is listed twice", pair[0]),
        ));
    }
    Ok(())
}

/// A WireGuard public key: standard base64 (padded, canonical) of 32 bytes.
pub fn decode_public_key(text: &str) -> Result<[u8; 32], InvalidTunnel> {
    let invalid = || {
        InvalidTunnel::new(
            "invalid_public_key",
            "the public key must be 32 bytes in standard base64",
        )
    };
    // 32 bytes are 44 characters: refuse longer input before decoding it.
    if text.len() != 44 {
        return Err(invalid());
    }
    let bytes = STANDARD.decode(text).map_err(|_| invalid())?;
    bytes.try_into().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn info(name: &str, protocol: &str, ports: &[u16], key: &str) -> TunnelInfo {
        TunnelInfo {
            name: name.into(),
            protocol: protocol.into(),
            ports: ports.to_vec(),
            public_key: key.into(),
        }
    }

    fn reason(i: &TunnelInfo) -> &'static str {
        validate_tunnel_info(i, &TunnelLimits::default())
            .unwrap_err()
            .reason
    }

    #[test]
    fn a_good_tunnel_gives_its_key() {
        let key = validate_tunnel_info(
            &info("office-pc_1.lan", "tcp", &[3389, 22], KEY),
            &TunnelLimits::default(),
        )
        .unwrap();
        assert_eq!(key, std::array::from_fn(|i| i as u8));
        let long = "a".repeat(64);
        assert!(
            validate_tunnel_info(
                &info(&long, "tcp", &[1, 65535], KEY),
                &TunnelLimits::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn names() {
        for bad in ["", "a b", "név", "a/b", &"a".repeat(65)] {
            assert_eq!(
                reason(&info(bad, "tcp", &[22], KEY)),
                "invalid_name",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn protocol_and_ports() {
        assert_eq!(
            reason(&info("a", "udp", &[22], KEY)),
            "unsupported_protocol"
        );
        assert_eq!(
            reason(&info("a", "TCP", &[22], KEY)),
            "unsupported_protocol"
        );
        assert_eq!(reason(&info("a", "tcp", &[], KEY)), "no_ports");
        assert_eq!(reason(&info("a", "tcp", &[22, 0], KEY)), "invalid_port");
        assert_eq!(
            reason(&info("a", "tcp", &[22, 80, 22], KEY)),
            "duplicate_port"
        );
        let many: Vec<u16> = (1..=17).collect();
        assert_eq!(reason(&info("a", "tcp", &many, KEY)), "too_many_ports");
        assert!(
            validate_tunnel_info(
                &info("a", "tcp", &many, KEY),
                &TunnelLimits { max_ports: 17 }
            )
            .is_ok()
        );
    }

    #[test]
    fn keys() {
        for bad in [
            "",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", // no padding
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==", // 45 chars
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-=", // URL-safe alphabet
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=", // non-canonical last bits
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8x", // 33 bytes worth
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",    // 30 bytes
        ] {
            assert_eq!(
                reason(&info("a", "tcp", &[22], bad)),
                "invalid_public_key",
                "{bad:?}"
            );
        }
    }
}
