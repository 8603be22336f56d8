//! The controller following the engine: a log line for each state change
//! and error, a desktop notice when a tunnel, a publication or a share
//! drops or gives up, the system proxy once a tunnel is up, and the
//! wind-down when the engine ends a run on its own. (A share's own states
//! are followed from its status, in `share`.)

use std::sync::Arc;
use std::sync::atomic::Ordering;

use engine::{EngineEvent, SessionState};
use tokio::sync::broadcast::error::RecvError;

use super::Controller;
use crate::log::LogLevel;
use crate::notice::{for_publication_transition, for_share_end, for_transition};
use crate::view::AppEvent;

impl Controller {
    /// Follows the engine: log lines for state changes and errors, notices
    /// for drops, the system proxy while active.
    pub(super) fn spawn_watcher(&self) {
        let weak = Arc::downgrade(&self.inner);
        let mut events = self.inner.engine.subscribe();
        let mut previous = self.inner.engine.state();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                let this = Controller { inner };
                match event {
                    EngineEvent::State(state) => {
                        this.on_state(&previous, &state).await;
                        previous = state;
                    }
                    EngineEvent::Error { code, message } => {
                        if code == net::ErrorCode::ReconnectFailed {
                            this.note_gave_up();
                        }
                        this.log(LogLevel::Error, Some(code.as_str()), message);
                    }
                    _ => {}
                }
            }
        });
    }

    async fn on_state(&self, previous: &SessionState, state: &SessionState) {
        let user = self.inner.user_stopping.load(Ordering::SeqCst);
        // Read once: a wind-down spawned below may clear the record.
        let (publishing, sharing) = (self.is_publishing(), self.is_sharing());
        match state {
            SessionState::Authenticating { server } => {
                self.log(LogLevel::Info, None, format!("Signing in to {server}…"))
            }
            // The share's status says where it is reached, once per resume.
            SessionState::Active { .. } if sharing => {}
            SessionState::Active {
                session_id,
                gateway,
                ..
            } if publishing => {
                let endpoints = self.inner.engine.endpoints().join(", ");
                self.log(
                    LogLevel::Info,
                    None,
                    format!("Published at {endpoints} through the queen {gateway} (cell {session_id})."),
                );
            }
            SessionState::Active {
                session_id,
                gateway,
                ..
            } => {
                self.log(
                    LogLevel::Info,
                    None,
                    format!("Connected to {gateway} (session {session_id})."),
                );
                if self.settings().system_proxy {
                    self.apply_system_proxy().await;
                }
            }
            SessionState::Reconnecting {
                attempt,
                max_attempts,
                retry_in_secs,
                last_error,
            } => self.log(
                LogLevel::Warn,
                None,
                format!(
                    "{last_error}; reconnecting in {retry_in_secs:.1} s (attempt {attempt} of {max_attempts})."
                ),
            ),
            SessionState::Disconnected { reason } => {
                if !user {
                    if let Some(reason) = reason {
                        let what = if publishing {
                            "Publishing stopped"
                        } else if sharing {
                            "Sharing stopped"
                        } else {
                            "Disconnected"
                        };
                        self.log(LogLevel::Error, None, format!("{what}: {reason}."));
                    }
                    // The engine gave up on its own: the desktop must not keep
                    // pointing at a proxy with no tunnel behind it.
                    self.spawn_wind_down();
                }
            }
        }
        let notice = if sharing {
            let error = self.share_status().and_then(|s| s.error);
            for_share_end(state, error.as_deref(), user)
        } else if publishing {
            for_publication_transition(previous, state, user)
        } else {
            for_transition(previous, state, user)
        };
        if let Some(notice) = notice {
            let _ = self.inner.events.send(AppEvent::Notice(notice));
        }
    }
}
