//! The one error type the UI gets from commands: a stable code it can test
//! for and a sentence for people.

use serde::Serialize;
use ts_rs::TS;

/// A command failed. `code` is stable (`invalid_input`, `not_signed_in`,
/// `keychain`, `listen_failed`, …); `message` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message} ({code})")]
pub struct CommandError {
    /// Stable machine-readable code.
    pub code: String,
    /// Human sentence.
    pub message: String,
}

impl CommandError {
    /// An error with a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> CommandError {
        CommandError {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The user typed something unusable.
    pub fn invalid(message: impl Into<String>) -> CommandError {
        CommandError::new("invalid_input", message)
    }

    /// No profile by that name.
    pub fn no_profile(name: &str) -> CommandError {
        CommandError::new("not_found", format!("there is no profile named {name:?}"))
    }
}
