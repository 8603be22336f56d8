//! How a failed command reports itself: the whole chain on stderr for people
//! and, under `--json`, one `{"type":"error","data":{"code","message"}}` line
//! on stdout whose code is stable (the app's command codes, which the desktop
//! UI branches on too), so scripts need not parse sentences.

use app::CommandCode;
use engine::EngineError;
use engine::control::ControlError;
use httvps_client::launch::LaunchError;
use profiles::{ProfileError, SecretError};

/// No secret was found for a profile (keychain, environment or stdin).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MissingSecret(pub String);

/// The stable code of a failure: the first cause in the chain we know, in
/// one `match` per error type.
pub fn code_of(error: &anyhow::Error) -> CommandCode {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<ProfileError>() {
            return match e {
                ProfileError::NotFound(_) => CommandCode::NotFound,
                ProfileError::Io { .. } | ProfileError::NoConfigDir => CommandCode::Settings,
                _ => CommandCode::InvalidInput,
            };
        }
        if cause.is::<LaunchError>() {
            return CommandCode::InvalidInput;
        }
        if cause.is::<SecretError>() {
            return CommandCode::Keychain;
        }
        if cause.is::<MissingSecret>() {
            return CommandCode::NotSignedIn;
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return match e {
                EngineError::AlreadyRunning => CommandCode::AlreadyRunning,
                EngineError::Listen { .. } => CommandCode::ListenFailed,
                _ => CommandCode::Engine,
            };
        }
        if let Some(ControlError::StreamGone(_)) = cause.downcast_ref::<ControlError>() {
            return CommandCode::NotFound;
        }
    }
    CommandCode::Engine
}

/// The JSON line for a failure.
pub fn json_line(error: &anyhow::Error) -> serde_json::Value {
    serde_json::json!({
        "type": "error",
        "data": { "code": code_of(error), "message": format!("{error:#}") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_causes_get_their_code_anywhere_in_the_chain() {
        let missing = anyhow::Error::from(ProfileError::NotFound("work".into()))
            .context("loading the profile");
        assert_eq!(code_of(&missing), CommandCode::NotFound);
        let no_token = anyhow::Error::from(MissingSecret("no token".into()));
        assert_eq!(code_of(&no_token), CommandCode::NotSignedIn);
        let other = anyhow::anyhow!("something else");
        assert_eq!(code_of(&other), CommandCode::Engine);
        let line = json_line(&missing);
        assert_eq!(line["type"], "error");
        assert_eq!(line["data"]["code"], "not_found");
        assert!(
            line["data"]["message"]
                .as_str()
                .unwrap()
                .contains("loading the profile: no profile named \"work\"")
        );
    }
}
