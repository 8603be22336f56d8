//! The cell key a leash must offer: the key itself (from `--cell-key-file`,
//! compared in constant time) or a bcrypt hash of it (the Go config's
//! `connKey`). Never printed.

use proto_hlhv::queen::Secret;

/// How a leash's key is checked.
#[derive(Clone)]
pub enum CellKey {
    /// The key itself.
    Plain(Secret),
    /// A bcrypt hash (`$2a$…`, `$2b$…`, `$2y$…`), as the Go queen's config
    /// holds it.
    Bcrypt(String),
}

impl std::fmt::Debug for CellKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellKey::Plain(_) => f.write_str("CellKey::Plain(..)"),
            CellKey::Bcrypt(_) => f.write_str("CellKey::Bcrypt(..)"),
        }
    }
}

/// Why a key file or hash is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file holds nothing but whitespace.
    #[error("the cell key is empty")]
    Empty,
    /// The hash is not a bcrypt hash.
    #[error("connKey is not a bcrypt hash")]
    NotBcrypt,
}

impl CellKey {
    /// The key from a key file's text: one trailing newline (`\n` or
    /// `\r\n`) is not part of it.
    pub fn from_file_text(text: &str) -> Result<CellKey, KeyError> {
        let key = text
            .strip_suffix('\n')
            .map(|k| k.strip_suffix('\r').unwrap_or(k))
            .unwrap_or(text);
        if key.trim().is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(CellKey::Plain(Secret::new(key.as_bytes().to_vec())))
    }

    /// A bcrypt hash of the key.
    pub fn from_bcrypt(hash: &str) -> Result<CellKey, KeyError> {
        // Parsing the hash is what verify does first; check it now so a
        // typo fails at start-up rather than at the first login.
        if bcrypt::verify("", hash).is_err() {
            return Err(KeyError::NotBcrypt);
        }
        Ok(CellKey::Bcrypt(hash.to_owned()))
    }

    /// Whether `offered` is the key. bcrypt runs on the blocking pool (tens
    /// of milliseconds each), so logins in progress are not held up.
    pub async fn verify(&self, offered: String) -> bool {
        match self {
            CellKey::Plain(secret) => secret.matches(offered.as_bytes()),
            CellKey::Bcrypt(hash) => {
                let hash = hash.clone();
                tokio::task::spawn_blocking(move || bcrypt::verify(offered, &hash).unwrap_or(false))
                    .await
                    .unwrap_or(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_keys_lose_one_newline_and_bcrypt_hashes_verify() {
        let k = CellKey::from_file_text("s3cret\r\n").unwrap();
        assert!(k.verify("s3cret".into()).await);
        assert!(!k.verify("s3cret\n".into()).await);
        assert_eq!(CellKey::from_file_text(" \n").unwrap_err(), KeyError::Empty);
        let hash = bcrypt::hash("hunter2", 4).unwrap();
        let k = CellKey::from_bcrypt(&hash).unwrap();
        assert!(k.verify("hunter2".into()).await);
        assert!(!k.verify("hunter3".into()).await);
        assert!(!format!("{k:?}").contains(&hash));
        assert_eq!(
            CellKey::from_bcrypt("plaintext").unwrap_err(),
            KeyError::NotBcrypt
        );
    }
}
