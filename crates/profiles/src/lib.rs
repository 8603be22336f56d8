//! Where profiles and their secrets live, for every protocol.
//!
//! - [`ProfileStore`] reads and writes the TOML profiles file
//!   (`~/.config/httvps/profiles.toml`), generic over the profile type: the
//!   app layer's `Profile` enum (one variant per protocol) plugs in through
//!   [`StoredProfile`], so this crate names no protocol.
//! - [`SecretStore`] keeps tokens, keys and passwords in the OS keychain
//!   (Secret Service on Linux, Keychain on macOS, Credential Manager on
//!   Windows), filed as `profile/kind`; never in the file, argv or logs.
#![warn(missing_docs)]

pub mod secrets;
pub mod store;

pub use secrets::{
    KEYRING_SERVICE, KeyringStore, MemoryStore, SecretError, SecretKind, SecretStore, account,
};
pub use store::{ProfileError, ProfileStore, ProfilesFile, StoredProfile, check_name};
