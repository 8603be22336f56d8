//! A new cycle after the engine gave up: when the last tunnel the user
//! started ended with `reconnect_failed` (the seed's attempts used up), the
//! next network change or wake-up connects it again, as the user would.
//! The same changes make the engine probe a live session (engine::netwatch).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine::NetworkChanges;

use super::Controller;
use crate::log::LogLevel;

impl Controller {
    /// Follows `changes` (the system's by default; tests feed their own):
    /// the engine probes and reconnects on them, and a tunnel the engine
    /// gave up on is connected again. `None` follows nothing.
    pub fn watch_network(&self, changes: Option<NetworkChanges>) {
        self.inner.engine.watch_network(changes.clone());
        let task = changes.map(|mut changes| {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                loop {
                    changes.changed().await;
                    let Some(inner) = weak.upgrade() else { return };
                    Controller { inner }.network_changed().await;
                }
            })
        });
        let previous = std::mem::replace(
            &mut *self
                .inner
                .network_task
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            task,
        );
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// Remembers that the engine gave up on the user's tunnel.
    pub(super) fn note_gave_up(&self) {
        let tunnel = matches!(
            &*self
                .inner
                .connection
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            Some(crate::view::Connection::Profile { .. })
        );
        if tunnel {
            self.inner.gave_up.store(true, Ordering::SeqCst);
        }
    }

    async fn network_changed(&self) {
        if !self.inner.gave_up.swap(false, Ordering::SeqCst) || self.inner.engine.is_running() {
            return;
        }
        self.log(
            LogLevel::Info,
            None,
            "The network changed: connecting again.",
        );
        if let Err(e) = self.connect().await {
            self.log(LogLevel::Error, Some(e.code.as_str()), e.message);
        }
    }
}
