//! HT's encryption, exactly as the seed has it: Salsa20 (20 rounds) with a
//! 32-byte pre-shared key; the 8-byte nonce is `sha1(PHPSESSID)[0..8]` from
//! client to server and `[8..16]` from server to client. Each direction of
//! each connection is one keystream from block 0, running on across its
//! chunks; chunk lengths are not encrypted.
//!
//! Known weaknesses, kept on purpose (the contract says so) and documented:
//! there is no integrity (a flipped ciphertext bit flips the plaintext bit),
//! and every connection of a session reuses the same keystream. TLS outside
//! is what protects users.

use crate::salsa::Keystream;
use sha1::{Digest, Sha1};

/// The pre-shared key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// A key that is not 64 hexadecimal characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an HT key is 64 hexadecimal characters (32 bytes); got {0} characters")]
pub struct KeyError(pub usize);

impl Key {
    /// Reads the key's 64 hexadecimal characters (surrounding whitespace
    /// ignored, as in a key file).
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError(text.chars().count()));
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| KeyError(64))?;
        }
        Ok(Key(key))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A session's PHPSESSID: 26 characters of `[a-z0-9]`, chosen by the client.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// The id's length.
    pub const LEN: usize = 26;

    /// Checks a PHPSESSID from a cookie; `None` unless 26 of `[a-z0-9]`.
    pub fn parse(text: &str) -> Option<SessionId> {
        (text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        .then(|| SessionId(text.to_owned()))
    }

    /// A new id from 26 random bytes (the caller's randomness: this crate
    /// has no source of its own).
    pub fn from_random(random: [u8; Self::LEN]) -> SessionId {
        const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        // 256 is not a multiple of 36: the first 4 letters come a little more
        // often. The id names a session, it is not a secret.
        SessionId(
            random
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
                .collect(),
        )
    }

    /// The id as sent in the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn nonce(&self, direction: Direction) -> [u8; 8] {
        let digest = Sha1::digest(self.0.as_bytes());
        let at = match direction {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 8,
        };
        digest[at..at + 8].try_into().expect("sha1 is 20 bytes")
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

/// Which way a keystream runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Queries.
    ClientToServer,
    /// Answers.
    ServerToClient,
}

/// One direction of one connection: a keystream applied to chunk after
/// chunk, in order.
pub struct ChunkCipher {
    stream: Keystream,
}

impl std::fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkCipher")
    }
}

impl ChunkCipher {
    /// The keystream of `direction` for a new connection of `session`.
    pub fn new(key: &Key, session: &SessionId, direction: Direction) -> ChunkCipher {
        let nonce = session.nonce(direction);
        ChunkCipher {
            stream: Keystream::new(key.as_bytes(), &nonce),
        }
    }

    /// Encrypts or decrypts one chunk in place (the same operation), moving
    /// the keystream on by its length.
    pub fn apply(&mut self, chunk: &mut [u8]) {
        self.stream.apply(chunk);
    }

    /// Appends `plain`, encrypted, to `out`, moving the keystream on by its
    /// length: [`ChunkCipher::apply`] on a copy, in one pass instead of a
    /// copy and then the cipher.
    pub fn apply_extend(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        self.stream.apply_extend(plain, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_hex(&"0f".repeat(32)).unwrap()
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert!(Key::from_hex(&format!("  {}\n", "aB".repeat(32))).is_ok());
        assert_eq!(Key::from_hex("abc"), Err(KeyError(3)));
        assert!(Key::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{:?}", key()), "Key(<redacted>)");
    }

    #[test]
    fn session_ids_are_26_lowercase_alphanumerics() {
        let id = SessionId::from_random([200; 26]);
        assert_eq!(id.as_str().len(), 26);
        assert!(SessionId::parse(id.as_str()).is_some());
        assert!(SessionId::parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ").is_none());
        assert!(SessionId::parse("short").is_none());
    }

    #[test]
    fn a_keystream_runs_on_across_chunks_and_directions_differ() {
        let id = SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        let mut up = ChunkCipher::new(&key(), &id, Direction::ClientToServer);
        let mut down = ChunkCipher::new(&key(), &id, Direction::ServerToClient);
        let mut a = *b"hello world";
        let mut b = *b"hello world";
        up.apply(&mut a);
        down.apply(&mut b);
        assert_ne!(a, b, "each direction has its own nonce");
        // Two chunks through one keystream equal one chunk of both.
        let mut whole = *b"0123456789";
        ChunkCipher::new(&key(), &id, Direction::ClientToServer).apply(&mut whole);
        let mut split = ChunkCipher::new(&key(), &id, Direction::ClientToServer);
        let (mut first, mut second) = (*b"0123", *b"456789");
        split.apply(&mut first);
        split.apply(&mut second);
        assert_eq!([&first[..], &second[..]].concat(), whole);
        // Decryption is the same operation.
        let mut back = whole;
        ChunkCipher::new(&key(), &id, Direction::ClientToServer).apply(&mut back);
        assert_eq!(&back, b"0123456789");
    }

    /// The nonces come from sha1 of the PHPSESSID: the known-answer check
    /// ties this crate to the seed's construction (sha1 of the id, first
    /// 8 bytes one way, next 8 the other).
    #[test]
    fn nonces_are_halves_of_the_ids_sha1() {
        let id = SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        let digest = Sha1::digest(b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(id.nonce(Direction::ClientToServer), digest[0..8]);
        assert_eq!(id.nonce(Direction::ServerToClient), digest[8..16]);
        // sha1("abcdefghijklmnopqrstuvwxyz") = 32d10c7b8cf96570ca04ce37f2a19d84240d3a89
        assert_eq!(digest[0], 0x32);
        assert_eq!(digest[8], 0xca);
    }
}
