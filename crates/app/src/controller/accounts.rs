//! The profiles: saving, removing and choosing them, and their secrets in
//! the keychain (sign-in, sign-out). Secrets never pass through the
//! settings, the log or a command's answer.

use net::Secret;
use profiles::account;

use super::{Controller, MAX_TOKEN_LEN};
use crate::error::{CommandCode, CommandError};
use crate::log::LogLevel;
use crate::profile::Profile;
use crate::registry::Mode;
use crate::settings::ProfileInput;
use crate::view::{AppEvent, Overview};

impl Controller {
    /// Adds or replaces a profile (matched by name) and selects it.
    pub async fn save_profile(&self, input: ProfileInput) -> Result<Overview, CommandError> {
        self.update_settings(|settings| {
            let name = input.name.trim().to_owned();
            let previous = settings.profiles.iter().find(|p| p.name() == name);
            let profile = input.clone().into_profile(previous)?;
            // A publishing profile is started by name; Connect keeps its own.
            let outbound = profile.protocol().info().mode == Mode::Connect;
            settings.profiles.retain(|p| p.name() != profile.name());
            settings.profiles.push(profile);
            settings.profiles.sort_by(|a, b| a.name().cmp(b.name()));
            if outbound {
                settings.selected = Some(name);
            }
            Ok(())
        })
        .await?;
        self.log(
            LogLevel::Info,
            None,
            format!("Profile {:?} saved.", input.name.trim()),
        );
        Ok(self.overview().await)
    }

    /// Deletes a profile and its secrets from the keychain.
    pub async fn remove_profile(&self, name: String) -> Result<Overview, CommandError> {
        if self.connected_profile().as_deref() == Some(name.as_str()) {
            return Err(CommandError::new(
                CommandCode::Busy,
                "disconnect before removing the profile in use",
            ));
        }
        self.find_profile(&name)?;
        self.delete_secrets(&name).await?;
        self.update_settings(|settings| {
            settings.profiles.retain(|p| p.name() != name);
            if settings.selected.as_deref() == Some(name.as_str()) {
                settings.selected = settings.profiles.first().map(|p| p.name().to_owned());
            }
            Ok(())
        })
        .await?;
        self.log(LogLevel::Info, None, format!("Profile {name:?} removed."));
        Ok(self.overview().await)
    }

    /// Chooses the profile Connect uses.
    pub async fn select_profile(&self, name: String) -> Result<Overview, CommandError> {
        let profile = self.find_profile(&name)?;
        match profile.protocol().info().mode {
            Mode::Connect => {}
            Mode::Publish => {
                return Err(CommandError::invalid(format!(
                    "profile {name:?} publishes a web app ({}): start it from the Publish panel",
                    profile.protocol().title()
                )));
            }
            Mode::RemoteAccess => {
                return Err(CommandError::invalid(format!(
                    "profile {name:?} shares this computer's ports ({}): start it from the Remote access panel",
                    profile.protocol().title()
                )));
            }
        }
        self.update_settings(|settings| {
            settings.selected = Some(name.clone());
            Ok(())
        })
        .await?;
        Ok(self.overview().await)
    }

    /// Stores a profile's token in the keychain. The token is never kept
    /// anywhere else, logged, or returned.
    pub async fn sign_in(&self, name: String, token: String) -> Result<Overview, CommandError> {
        let profile = self.find_profile(&name)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CommandError::invalid("enter the token"));
        }
        if token.len() > MAX_TOKEN_LEN || token.chars().any(char::is_control) {
            return Err(CommandError::invalid(format!(
                "a token is at most {MAX_TOKEN_LEN} printable characters"
            )));
        }
        let kind = profile
            .token_kind()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        if kind == ht_client::HT_KEY && ht_client::Key::from_hex(token).is_err() {
            return Err(CommandError::invalid(
                "an HT key is 64 hexadecimal characters (32 bytes)",
            ));
        }
        let secret = Secret::new(token);
        let account_name = account(&name, kind);
        self.keychain(move |secrets| secrets.set(&account_name, &secret))
            .await?;
        self.log(
            LogLevel::Info,
            None,
            format!("Signed in to {name:?}; the token is in the system keychain."),
        );
        let _ = self.inner.events.send(AppEvent::Changed);
        Ok(self.overview().await)
    }

    /// Deletes a profile's tokens from the keychain.
    pub async fn sign_out(&self, name: String) -> Result<Overview, CommandError> {
        self.find_profile(&name)?;
        self.delete_secrets(&name).await?;
        self.log(LogLevel::Info, None, format!("Signed out of {name:?}."));
        let _ = self.inner.events.send(AppEvent::Changed);
        Ok(self.overview().await)
    }

    pub(super) fn find_profile(&self, name: &str) -> Result<Profile, CommandError> {
        self.settings()
            .profiles
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| CommandError::no_profile(name))
    }

    async fn delete_secrets(&self, name: &str) -> Result<(), CommandError> {
        let kinds = self.find_profile(name)?.secret_kinds();
        let name = name.to_owned();
        self.keychain(move |secrets| {
            for kind in kinds {
                secrets.delete(&account(&name, *kind))?;
            }
            Ok(())
        })
        .await
    }
}
