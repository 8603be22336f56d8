//! The controller's part in the desktop's proxy settings: pointing them at
//! the local proxy while a tunnel is up, and putting them back (on
//! disconnect, and at the next start after a crash). Apart from the
//! controller's commands because it is its own small state machine around
//! `Settings::saved_system_proxy`.

use std::sync::Arc;

use super::{Controller, blocking};
use crate::log::LogLevel;
use crate::sysproxy::restore_saved;

impl Controller {
    /// Points the desktop at the local proxy (the calls to the desktop run on
    /// the blocking pool) and records what to put back.
    pub(super) async fn apply_system_proxy(&self) {
        let (Some(system), Some(addr)) = (
            self.inner.system_proxy.clone(),
            self.inner.engine.proxy_addr(),
        ) else {
            return;
        };
        let _system_lock = self.inner.system_proxy_lock.lock().await;
        if self.settings().saved_system_proxy.is_some() {
            return; // already ours
        }
        let apply = system.clone();
        match blocking(move || apply.apply(addr).map_err(|e| e.to_string())).await {
            Ok(saved) => {
                let result = self
                    .update_settings(|s| {
                        s.saved_system_proxy = Some(saved.clone());
                        Ok(())
                    })
                    .await;
                if let Err(e) = result {
                    // Without a record we could not undo it after a crash.
                    let _ =
                        blocking(move || system.restore(&saved).map_err(|e| e.to_string())).await;
                    self.log(LogLevel::Error, Some(e.code.as_str()), e.message);
                } else {
                    self.log(
                        LogLevel::Info,
                        None,
                        format!("The system proxy now points at {addr}."),
                    );
                }
            }
            Err(e) => self.log(LogLevel::Error, Some("system_proxy"), e),
        }
    }

    /// Puts the desktop's proxy settings back, if ours are in place.
    pub(super) async fn restore_system_proxy(&self) {
        let _system_lock = self.inner.system_proxy_lock.lock().await;
        let Some(saved) = self.settings().saved_system_proxy else {
            return;
        };
        match blocking(move || restore_saved(&saved).map_err(|e| e.to_string())).await {
            Ok(()) => {
                let _ = self
                    .update_settings(|s| {
                        s.saved_system_proxy = None;
                        Ok(())
                    })
                    .await;
                self.log(
                    LogLevel::Info,
                    None,
                    "The system proxy settings are restored.",
                );
            }
            Err(e) => self.log(LogLevel::Error, Some("system_proxy"), e),
        }
    }

    /// [`Self::restore_system_proxy`] for [`Controller::new`], which is not
    /// async and already reads the settings in place (at startup, before any
    /// command or connection).
    pub(super) fn restore_system_proxy_at_start(&self) {
        if self.settings().saved_system_proxy.is_none() {
            return;
        }
        // Taken now, before anything else can run: a Connect meanwhile
        // waits for the restore instead of taking the record for its own.
        let Ok(system_lock) = self.inner.system_proxy_lock.clone().try_lock_owned() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        // The desktop calls block (gsettings, kwriteconfig): on the blocking
        // pool, not on the thread that builds the controller.
        tokio::spawn(async move {
            let _system_lock = system_lock;
            let Some(inner) = weak.upgrade() else { return };
            let this = Controller { inner };
            let Some(saved) = this.settings().saved_system_proxy else {
                return;
            };
            match blocking(move || restore_saved(&saved).map_err(|e| e.to_string())).await {
                Ok(()) => {
                    let forgot = this
                        .update_settings(|s| {
                            s.saved_system_proxy = None;
                            Ok(())
                        })
                        .await;
                    match forgot {
                        Ok(()) => this.log(
                            LogLevel::Info,
                            None,
                            "The system proxy settings are restored.",
                        ),
                        Err(e) => this.log(LogLevel::Error, Some(e.code.as_str()), e.message),
                    }
                }
                Err(e) => this.log(LogLevel::Error, Some("system_proxy"), e),
            }
        });
    }
}
