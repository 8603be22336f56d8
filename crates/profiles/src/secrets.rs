//! Where secrets live: the OS keychain (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows), never the settings file, argv or logs.

use std::collections::HashMap;
use std::sync::Mutex;

use net::Secret;

/// The keychain "service" our entries are filed under.
pub const KEYRING_SERVICE: &str = "httvps";

/// A secret store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The keychain could not be reached or refused the operation.
    #[error(
        "the OS keychain is unavailable ({0}); on Linux a Secret Service such as gnome-keyring or KWallet must be running and unlocked"
    )]
    Unavailable(String),
}

/// Which secret of a profile. Each protocol names its own kinds (HTTVPS: a
/// session token or a device token; HT: a key; the Relay: a JWT), so that a
/// profile's secrets are filed per kind and this crate names no protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretKind(&'static str);

impl SecretKind {
    /// The local proxy's password, which every outbound profile may have.
    pub const PROXY_PASSWORD: SecretKind = SecretKind("proxy-password");

    /// A kind named `name` (lowercase words and dashes: the keychain account
    /// suffix, so never rename one that shipped).
    pub const fn new(name: &'static str) -> SecretKind {
        SecretKind(name)
    }

    /// The account suffix.
    pub fn name(self) -> &'static str {
        self.0
    }
}

/// The keychain account name for a profile's secret.
pub fn account(profile: &str, kind: SecretKind) -> String {
    format!("{profile}/{}", kind.name())
}

/// A place to keep secrets.
pub trait SecretStore: Send + Sync {
    /// Reads a secret; `None` when there is none.
    fn get(&self, account: &str) -> Result<Option<Secret>, SecretError>;
    /// Stores (or replaces) a secret.
    fn set(&self, account: &str, secret: &Secret) -> Result<(), SecretError>;
    /// Deletes a secret; returns whether one existed.
    fn delete(&self, account: &str) -> Result<bool, SecretError>;
}

/// The OS keychain, through the `keyring` crate.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    service: String,
}

impl KeyringStore {
    /// Entries filed under [`KEYRING_SERVICE`].
    pub fn new() -> Self {
        KeyringStore {
            service: KEYRING_SERVICE.to_owned(),
        }
    }

    /// Entries filed under another service name (tests, side-by-side installs).
    pub fn with_service(service: impl Into<String>) -> Self {
        KeyringStore {
            service: service.into(),
        }
    }

    fn entry(&self, account: &str) -> Result<keyring::Entry, SecretError> {
        keyring::Entry::new(&self.service, account)
            .map_err(|e| SecretError::Unavailable(e.to_string()))
    }
}

impl Default for KeyringStore {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretStore for KeyringStore {
    fn get(&self, account: &str) -> Result<Option<Secret>, SecretError> {
        match self.entry(account)?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(SecretError::Unavailable(e.to_string())),
        }
    }

    fn set(&self, account: &str, secret: &Secret) -> Result<(), SecretError> {
        self.entry(account)?
            .set_password(secret.expose())
            .map_err(|e| SecretError::Unavailable(e.to_string()))
    }

    fn delete(&self, account: &str) -> Result<bool, SecretError> {
        match self.entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(SecretError::Unavailable(e.to_string())),
        }
    }
}

/// An in-memory store, for tests and for the demo mode.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Secret>>,
}

impl SecretStore for MemoryStore {
    fn get(&self, account: &str) -> Result<Option<Secret>, SecretError> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .cloned())
    }

    fn set(&self, account: &str, secret: &Secret) -> Result<(), SecretError> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.to_owned(), secret.clone());
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<bool, SecretError> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account)
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract every store keeps; run against the memory store here and
    /// against the real Secret Service in `tests/keychain.rs`.
    pub(crate) fn exercise(store: &dyn SecretStore, prefix: &str) {
        let acct = account(prefix, SecretKind::new("device-token"));
        let _ = store.delete(&acct);
        assert!(store.get(&acct).unwrap().is_none());
        store.set(&acct, &Secret::from("first")).unwrap();
        assert_eq!(store.get(&acct).unwrap().unwrap().expose(), "first");
        store.set(&acct, &Secret::from("second")).unwrap();
        assert_eq!(store.get(&acct).unwrap().unwrap().expose(), "second");
        assert!(store.delete(&acct).unwrap());
        assert!(!store.delete(&acct).unwrap());
        assert!(store.get(&acct).unwrap().is_none());
    }

    #[test]
    fn memory_store_keeps_the_contract() {
        exercise(&MemoryStore::default(), "profile-a");
    }

    #[test]
    fn accounts_are_per_profile_and_kind() {
        assert_eq!(
            account("work", SecretKind::new("session-token")),
            "work/session-token"
        );
        assert_eq!(
            account("work", SecretKind::PROXY_PASSWORD),
            "work/proxy-password"
        );
        assert_ne!(
            account("a", SecretKind::PROXY_PASSWORD),
            account("b", SecretKind::PROXY_PASSWORD)
        );
    }
}
