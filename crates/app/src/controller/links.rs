//! Share links (docs/links.md): a saved profile as an `httvps://` link and
//! QR code, and a profile added from one. The secret comes out of the
//! keychain only when the user asks, and a secret in a link goes straight
//! into the keychain, never into the settings or the log.

use std::fmt;

use profiles::account;
use serde::Serialize;
use ts_rs::TS;

use super::Controller;
use crate::error::{CommandCode, CommandError};
use crate::link::{LinkContents, LinkError, ShareLink};
use crate::log::LogLevel;
use crate::registry::{Mode, Protocol};
use crate::view::Overview;

/// A profile's share link, for the Share dialog.
#[derive(Clone, Serialize, TS)]
pub struct LinkShare {
    /// The `httvps://add?…` link.
    pub link: String,
    /// The link as a QR code (an SVG document).
    pub qr_svg: String,
    /// Whether the link carries the profile's secret: then it is a
    /// password, and the window says so in red.
    pub contains_secret: bool,
    /// Fields of the profile that stayed out (`ca_file`; a `listen` or
    /// `dns_listen` open to the network), for the dialog to mention.
    pub left_out: Vec<String>,
}

impl fmt::Debug for LinkShare {
    /// Never prints a link that carries a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = if self.contains_secret {
            "<redacted: carries a secret>"
        } else {
            &self.link
        };
        f.debug_struct("LinkShare")
            .field("link", &link)
            .field("left_out", &self.left_out)
            .finish()
    }
}

/// What "Add from link" did.
#[derive(Debug, Clone, Serialize, TS)]
pub struct LinkAdded {
    /// The profile's name (the link's, or the one the user gave).
    pub name: String,
    /// Its protocol: which panel it belongs to.
    pub protocol: Protocol,
    /// Whether the link's secret went into the keychain (else the profile
    /// needs a sign-in).
    pub secret_saved: bool,
    /// Whether a profile of that name was replaced.
    pub replaced: bool,
    /// Everything the window shows, after the change.
    pub overview: Overview,
}

fn link_error(e: LinkError) -> CommandError {
    CommandError::invalid(e.to_string())
}

impl Controller {
    /// The share link and QR code of saved profile `name`; with its secret
    /// (read from the keychain) only when `include_secret`.
    pub async fn share_link(
        &self,
        name: String,
        include_secret: bool,
    ) -> Result<LinkShare, CommandError> {
        let profile = self.find_profile(&name)?;
        let secret = if include_secret {
            let kind = profile
                .token_kind()
                .map_err(|e| CommandError::invalid(e.to_string()))?;
            let account_name = account(&name, kind);
            let secret = self
                .keychain(move |secrets| secrets.get(&account_name))
                .await?
                .ok_or_else(|| {
                    CommandError::new(
                        CommandCode::NotSignedIn,
                        format!(
                            "the keychain has no secret for {name:?} to put in the link: sign in first, or share without it"
                        ),
                    )
                })?;
            Some(secret)
        } else {
            None
        };
        let link = ShareLink::create(&profile, secret.as_ref()).map_err(link_error)?;
        if link.contains_secret() {
            self.log(
                LogLevel::Warn,
                None,
                format!(
                    "A link to {name:?} with its secret was shown: whoever has it can sign in as you."
                ),
            );
        }
        Ok(LinkShare {
            qr_svg: link.qr_svg(),
            link: link.as_str().to_owned(),
            contains_secret: link.contains_secret(),
            left_out: link.left_out().to_vec(),
        })
    }

    /// Adds the profile a share link carries, under `name` if given, and
    /// files its secret (if the link has one) in the keychain. An existing
    /// profile of that name is replaced only when `replace`; its old
    /// secrets are deleted then, so that a link can never send a saved
    /// token to another server.
    pub async fn add_from_link(
        &self,
        link: String,
        name: Option<String>,
        replace: bool,
    ) -> Result<LinkAdded, CommandError> {
        let mut contents = LinkContents::parse(&link).map_err(link_error)?;
        if let Some(name) = name.as_deref().filter(|n| !n.trim().is_empty()) {
            contents = contents.renamed(name).map_err(link_error)?;
        }
        let LinkContents { profile, secret } = contents;
        let name = profile.name().to_owned();
        let protocol = profile.protocol();
        if !protocol.info().available {
            return Err(CommandError::new(
                CommandCode::Unsupported,
                format!("{} profiles are not available yet", protocol.title()),
            ));
        }
        let clash = |name: &str| {
            CommandError::invalid(format!(
                "a profile named {name:?} exists already: give the new one another name, or choose to replace it"
            ))
        };
        let replaced = self.find_profile(&name).is_ok();
        if replaced {
            if !replace {
                return Err(clash(&name));
            }
            if self.connected_profile().as_deref() == Some(name.as_str()) {
                return Err(CommandError::new(
                    CommandCode::Busy,
                    "disconnect before replacing the profile in use",
                ));
            }
            let old = self.find_profile(&name)?;
            let (kinds, old_name) = (old.secret_kinds(), name.clone());
            self.keychain(move |secrets| {
                for kind in kinds {
                    secrets.delete(&account(&old_name, *kind))?;
                }
                Ok(())
            })
            .await?;
        }
        let kind = profile
            .token_kind()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        let outbound = protocol.info().mode == Mode::Connect;
        self.update_settings(|settings| {
            if !replace && settings.profiles.iter().any(|p| p.name() == name) {
                return Err(clash(&name));
            }
            settings.profiles.retain(|p| p.name() != name);
            settings.profiles.push(profile);
            settings.profiles.sort_by(|a, b| a.name().cmp(b.name()));
            if outbound && settings.current_profile().is_none() {
                settings.selected = Some(name.clone());
            }
            Ok(())
        })
        .await?;
        let secret_saved = match secret {
            Some(secret) => {
                let account_name = account(&name, kind);
                self.keychain(move |secrets| secrets.set(&account_name, &secret))
                    .await
                    .map_err(|e| {
                        CommandError::new(
                            e.code,
                            format!(
                                "profile {name:?} was added, but its secret could not be filed: {}; sign in to it",
                                e.message
                            ),
                        )
                    })?;
                true
            }
            None => false,
        };
        self.log(
            LogLevel::Info,
            None,
            if secret_saved {
                format!("Profile {name:?} added from a link; its secret is in the system keychain.")
            } else {
                format!("Profile {name:?} added from a link; sign in to it to connect.")
            },
        );
        Ok(LinkAdded {
            name,
            protocol,
            secret_saved,
            replaced,
            overview: self.overview().await,
        })
    }
}

#[cfg(test)]
#[path = "links_tests.rs"]
mod tests;
