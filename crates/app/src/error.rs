//! The one error type the UI gets from commands: a stable code it can branch
//! on and a sentence for people.

use serde::Serialize;
use ts_rs::TS;

/// Why a command failed. The serialized names are a contract with the UI
/// (and its generated types): add variants, never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CommandCode {
    /// The user typed something unusable.
    InvalidInput,
    /// No profile by that name.
    NotFound,
    /// Connect was asked with no profile.
    NoProfile,
    /// The profile has no secret in the keychain yet.
    NotSignedIn,
    /// The profile is in use.
    Busy,
    /// Connect while connected.
    AlreadyRunning,
    /// The local proxy could not listen.
    ListenFailed,
    /// Not possible here (protocol not built yet, no system proxy, …).
    Unsupported,
    /// The OS keychain failed.
    Keychain,
    /// The settings could not be saved.
    Settings,
    /// Start on login could not be changed.
    Autostart,
    /// The demo could not start.
    DemoFailed,
    /// The engine failed in another way.
    Engine,
    /// The app's background process (the tray, which runs the engine) does
    /// not answer the window.
    ServiceGone,
}

impl CommandCode {
    /// The serialized name (`invalid_input`, …), for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandCode::InvalidInput => "invalid_input",
            CommandCode::NotFound => "not_found",
            CommandCode::NoProfile => "no_profile",
            CommandCode::NotSignedIn => "not_signed_in",
            CommandCode::Busy => "busy",
            CommandCode::AlreadyRunning => "already_running",
            CommandCode::ListenFailed => "listen_failed",
            CommandCode::Unsupported => "unsupported",
            CommandCode::Keychain => "keychain",
            CommandCode::Settings => "settings",
            CommandCode::Autostart => "autostart",
            CommandCode::DemoFailed => "demo_failed",
            CommandCode::Engine => "engine",
            CommandCode::ServiceGone => "service_gone",
        }
    }
}

impl std::fmt::Display for CommandCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command failed: `{code, message}`, where `message` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message} ({code})")]
pub struct CommandError {
    /// Stable machine-readable code.
    pub code: CommandCode,
    /// Human sentence.
    pub message: String,
}

impl CommandError {
    /// An error with a code and a message.
    pub fn new(code: CommandCode, message: impl Into<String>) -> CommandError {
        CommandError {
            code,
            message: message.into(),
        }
    }

    /// The user typed something unusable.
    pub fn invalid(message: impl Into<String>) -> CommandError {
        CommandError::new(CommandCode::InvalidInput, message)
    }

    /// No profile by that name.
    pub fn no_profile(name: &str) -> CommandError {
        CommandError::new(
            CommandCode::NotFound,
            format!("there is no profile named {name:?}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_code_and_message() {
        let e = CommandError::new(CommandCode::NotSignedIn, "sign in first");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"not_signed_in","message":"sign in first"}"#
        );
        assert_eq!(
            serde_json::to_string(&CommandCode::AlreadyRunning).unwrap(),
            format!("\"{}\"", CommandCode::AlreadyRunning.as_str())
        );
    }
}
