//! WireGuard's Curve25519 keys in the form every tool exchanges them: 32 bytes
//! in standard base64 (`wg genkey`, `wg pubkey`, the Relay's `public_key`).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use boringtun::x25519;

use crate::error::Error;

/// Length of a key in bytes.
const KEY_LEN: usize = 32;

/// Decodes standard base64 of exactly 32 bytes.
fn decode_key(text: &str) -> Result<[u8; KEY_LEN], Error> {
    // 32 bytes are 44 base64 characters; anything much longer is not a key,
    // and refusing it early bounds the work done on hostile input.
    let text = text.trim();
    if text.len() > 64 {
        return Err(Error::InvalidKey);
    }
    let bytes = STANDARD.decode(text).map_err(|_| Error::InvalidKey)?;
    bytes.try_into().map_err(|_| Error::InvalidKey)
}

/// This node's static secret. Zeroed when dropped (x25519-dalek's
/// `StaticSecret` zeroizes itself); `Debug` never shows it.
#[derive(Clone)]
pub struct PrivateKey(x25519::StaticSecret);

impl PrivateKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> PrivateKey {
        PrivateKey(x25519::StaticSecret::random_from_rng(rand_core::OsRng))
    }

    /// Parses standard base64 of 32 bytes (the `wg genkey` format).
    pub fn from_base64(text: &str) -> Result<PrivateKey, Error> {
        let mut bytes = decode_key(text)?;
        let key = PrivateKey(x25519::StaticSecret::from(bytes));
        // The copy on the stack is a secret too.
        bytes.fill(0);
        Ok(key)
    }

    /// The key as standard base64, for saving it; the caller owns the secret.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// The public half, which peers configure.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519::PublicKey::from(&self.0))
    }

    pub(crate) fn secret(&self) -> &x25519::StaticSecret {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl FromStr for PrivateKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        PrivateKey::from_base64(s)
    }
}

/// A peer's (or this node's) public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(x25519::PublicKey);

impl PublicKey {
    /// Parses standard base64 of 32 bytes (the `wg pubkey` format).
    pub fn from_base64(text: &str) -> Result<PublicKey, Error> {
        Ok(PublicKey::from_bytes(decode_key(text)?))
    }

    /// The key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> PublicKey {
        PublicKey(x25519::PublicKey::from(bytes))
    }

    /// The key as standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }

    pub(crate) fn x25519(&self) -> x25519::PublicKey {
        self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        PublicKey::from_base64(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        let key = PrivateKey::generate();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let back = PrivateKey::from_base64(&text).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let public = key.public_key();
        assert_eq!(PublicKey::from_base64(&public.to_string()).unwrap(), public);
    }

    #[test]
    fn known_vector_from_wg_pubkey() {
        // `echo 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=' | wg pubkey`
        // (the example key of wg(8)).
        let private =
            PrivateKey::from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=").unwrap();
        assert_eq!(
            private.public_key().to_base64(),
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
        );
    }

    #[test]
    fn rejects_bad_keys() {
        for bad in ["", "abc", "!!!!", &"A".repeat(43), &"A".repeat(100)] {
            assert!(PrivateKey::from_base64(bad).is_err(), "{bad:?}");
            assert!(PublicKey::from_base64(bad).is_err(), "{bad:?}");
        }
        // 31 and 33 bytes.
        assert!(PublicKey::from_base64(&STANDARD.encode([1u8; 31])).is_err());
        assert!(PublicKey::from_base64(&STANDARD.encode([1u8; 33])).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let key = PrivateKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_base64()));
        assert!(shown.contains("redacted"));
    }
}
