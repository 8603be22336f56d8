//! What every protocol's saved profile shares: the default local proxy
//! address, the certificate pin's text form, and the local proxy settings
//! from a listen address and optional credentials.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use local_proxy::{Credentials, ProxyConfig};
use net::Secret;

/// The default local proxy address: loopback only.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1080);

/// Reads a hex SHA-256 pin (colons allowed, as certificate tools print them).
pub fn decode_pin(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return Err(format!(
            "pin_sha256 must be 64 hex digits (SHA-256), got {}",
            hex.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "pin_sha256 must be hexadecimal".to_owned())?;
    }
    Ok(out)
}

/// The local proxy has a user name but no password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the local proxy has a user name but no password")]
pub struct MissingProxyPassword;

/// Local proxy settings: `listen`, and username/password authentication
/// when the profile names a user (its password from the keychain).
pub fn proxy_config(
    listen: SocketAddr,
    username: Option<&str>,
    password: Option<Secret>,
) -> Result<ProxyConfig, MissingProxyPassword> {
    let auth = match (username, password) {
        (None, _) => None,
        (Some(user), Some(password)) => Some(Credentials::new(user.to_owned(), password.expose())),
        (Some(_), None) => return Err(MissingProxyPassword),
    };
    Ok(ProxyConfig {
        listen,
        auth,
        ..ProxyConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_64_hex_digits_with_optional_colons() {
        let pin = "ab".repeat(32);
        assert_eq!(decode_pin(&pin).unwrap(), [0xab; 32]);
        let colons: Vec<String> = (0..32).map(|_| "AB".to_owned()).collect();
        assert_eq!(decode_pin(&colons.join(":")).unwrap(), [0xab; 32]);
        assert!(decode_pin("ab").unwrap_err().contains("64 hex"));
        assert!(
            decode_pin(&"zz".repeat(32))
                .unwrap_err()
                .contains("hexadecimal")
        );
    }

    #[test]
    fn a_proxy_user_needs_a_password() {
        assert_eq!(
            proxy_config(DEFAULT_LISTEN, Some("me"), None).unwrap_err(),
            MissingProxyPassword
        );
        let config = proxy_config(DEFAULT_LISTEN, Some("me"), Some(Secret::new("pw"))).unwrap();
        assert!(config.auth.is_some());
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert!(
            proxy_config(DEFAULT_LISTEN, None, None)
                .unwrap()
                .auth
                .is_none()
        );
    }
}
