//! Publish mode: a local web app published through an HLHV queen, from a
//! saved profile (its cell key from the keychain) or as the demo (the demo
//! page through an embedded queen). A publication takes the engine's one
//! run slot, as a tunnel does: while one runs the other is refused with a
//! sentence that says what to stop first. Its state is the engine's
//! (authenticating, active, reconnecting after the queen restarts), its
//! public URL the snapshot's `endpoints`, and each request it serves a row
//! of the live table (`engine::publish::REQUEST_PROTOCOL`).

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use demo::{DEMO_MOUNT, DemoPage, DemoQueen};
use engine::{EngineError, PublishOptions};
use hlhv_cell::{CELL_KEY, launch};
use profiles::account;

use super::{Controller, Demo};
use crate::error::{CommandCode, CommandError};
use crate::log::LogLevel;
use crate::profile::Profile;
use crate::view::{AppEvent, Connection, Overview};

impl Controller {
    /// Publishes a saved HLHV profile's local app through its queen, with
    /// the cell key from the keychain. Refused when the profile is not
    /// signed in, is not an HLHV profile, or while a tunnel runs.
    pub async fn publish(&self, name: String) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        self.wind_down_finished().await;
        // Before the keychain: the answer does not depend on the key.
        if self.inner.engine.is_running() {
            return Err(self.slot_taken());
        }
        let profile = self.find_profile(&name)?;
        let hlhv = match profile {
            Profile::Hlhv(hlhv) => hlhv,
            Profile::Relay(_) => {
                return Err(CommandError::invalid(format!(
                    "profile {name:?} shares this computer's ports (Relay): start it from the Remote access panel"
                )));
            }
            other => {
                return Err(CommandError::invalid(format!(
                    "profile {name:?} is an outbound {} profile: connect it from the Connect panel",
                    other.protocol().title()
                )));
            }
        };
        let account_name = account(&name, CELL_KEY);
        let key = self
            .keychain(move |secrets| secrets.get(&account_name))
            .await?
            .ok_or_else(|| {
                CommandError::new(
                    CommandCode::NotSignedIn,
                    format!("sign in to {name:?} first: enter its cell key"),
                )
            })?;
        let publisher =
            launch::publisher(&hlhv, key).map_err(|e| CommandError::invalid(e.to_string()))?;
        // A failed first connect is a clear error at once (wrong key, no
        // queen there), not a silent retry loop.
        let options = launch::publish_options(&hlhv, publisher, false);
        let connection = Connection::Publish {
            name: Some(name),
            queen: hlhv.queen.clone(),
            mount: hlhv.mount.clone(),
            to: hlhv.to.clone(),
        };
        self.start_publication(options, connection).await?;
        Ok(self.overview().await)
    }

    /// Try the demo, publishing: an embedded queen on loopback and the
    /// demo page published through it, reached at the queen's public URL.
    pub async fn start_publish_demo(&self) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        self.wind_down_finished().await;
        if self.inner.engine.is_running() {
            return Err(self.slot_taken());
        }
        let demo_error = |e: String| CommandError::new(CommandCode::DemoFailed, e);
        let queen = DemoQueen::start(Ipv4Addr::LOCALHOST.into())
            .await
            .map_err(|e| demo_error(format!("cannot start the demo queen: {e}")))?;
        let page = match DemoPage::start().await {
            Ok(page) => page,
            Err(e) => {
                queen.shutdown().await;
                return Err(demo_error(format!("cannot serve the demo page: {e}")));
            }
        };
        let options = match queen.publish_options(&page.url()) {
            Ok(options) => options,
            Err(e) => {
                queen.shutdown().await;
                return Err(demo_error(e.to_string()));
            }
        };
        let connection = Connection::Publish {
            name: None,
            queen: queen.cells_addr().to_string(),
            mount: DEMO_MOUNT.to_owned(),
            to: page.url(),
        };
        if let Err(e) = self.start_publication(options, connection).await {
            queen.shutdown().await;
            return Err(e);
        }
        *self.inner.demo.lock().await = Some(Demo::Publish { queen, _page: page });
        Ok(self.overview().await)
    }

    /// Stops publishing (and the demo queen, if it was the demo). A tunnel
    /// is left alone: it is disconnected from the Connect panel.
    pub async fn stop_publishing(&self) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        let connection = self.inner.connection.lock().unwrap().clone();
        match connection {
            Some(Connection::Publish { .. }) => {
                self.inner.user_stopping.store(true, Ordering::SeqCst);
                self.wind_down().await;
                self.log(LogLevel::Info, None, "Stopped publishing.");
                self.inner.user_stopping.store(false, Ordering::SeqCst);
            }
            Some(Connection::Share { .. }) => {
                return Err(CommandError::new(
                    CommandCode::Busy,
                    "this computer's ports are being shared, not a web app: stop sharing from the Remote access panel",
                ));
            }
            Some(_) => {
                return Err(CommandError::new(
                    CommandCode::Busy,
                    "a tunnel is connected, not a publication: disconnect it from the Connect panel",
                ));
            }
            // Already stopped (the engine gave up meanwhile): nothing to do.
            None => {}
        }
        Ok(self.overview().await)
    }

    /// Takes the engine's slot for a publication and records it. The
    /// record goes first, so the watcher already tells the publication's
    /// states from a tunnel's.
    async fn start_publication(
        &self,
        options: PublishOptions,
        connection: Connection,
    ) -> Result<(), CommandError> {
        let Connection::Publish {
            name, mount, to, ..
        } = &connection
        else {
            unreachable!("start_publication takes a publication");
        };
        let what = match name {
            Some(name) => format!("profile {name:?}"),
            None => "the demo queen".to_owned(),
        };
        let sentence = format!("Publishing {to} at {mount} with {what}…");
        let previous = self.inner.connection.lock().unwrap().replace(connection);
        match self.inner.engine.publish(options) {
            Ok(()) => {
                self.log(LogLevel::Info, None, sentence);
                let _ = self.inner.events.send(AppEvent::Changed);
                Ok(())
            }
            Err(e) => {
                *self.inner.connection.lock().unwrap() = previous;
                Err(match e {
                    EngineError::AlreadyRunning => self.slot_taken(),
                    other => CommandError::new(CommandCode::Engine, other.to_string()),
                })
            }
        }
    }
}
