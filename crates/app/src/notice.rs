//! Desktop notifications: which state changes deserve one. Pure, so the
//! rules are tested without a notification daemon.

use engine::SessionState;
use proto_relay::TunnelState;
use relay_client::ShareStatus;
use serde::Serialize;
use ts_rs::TS;

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Notice {
    /// Title line.
    pub title: String,
    /// Body text.
    pub body: String,
}

/// The notice for a state change, if it deserves one: when the tunnel drops
/// (and starts reconnecting), and when it gives up or is refused. A
/// disconnect the user asked for (`user_initiated`) is silent.
pub fn for_transition(
    previous: &SessionState,
    next: &SessionState,
    user_initiated: bool,
) -> Option<Notice> {
    if user_initiated {
        return None;
    }
    match (previous, next) {
        (
            SessionState::Active { .. },
            SessionState::Reconnecting {
                last_error,
                max_attempts,
                ..
            },
        ) => Some(Notice {
            title: "Tunnel dropped".into(),
            body: format!("{last_error}. Reconnecting (up to {max_attempts} attempts)…"),
        }),
        (SessionState::Reconnecting { .. }, SessionState::Disconnected { reason }) => {
            Some(Notice {
                title: "Gave up reconnecting".into(),
                body: format!(
                    "{}. Press Connect to try again.",
                    reason
                        .as_deref()
                        .unwrap_or("The gateway could not be reached")
                ),
            })
        }
        (
            SessionState::Active { .. },
            SessionState::Disconnected {
                reason: Some(reason),
            },
        ) => Some(Notice {
            title: "Tunnel closed".into(),
            body: format!("{reason}."),
        }),
        _ => None,
    }
}

/// [`for_transition`] for a publication: the same moments, told as a
/// published app going offline rather than a tunnel dropping.
pub fn for_publication_transition(
    previous: &SessionState,
    next: &SessionState,
    user_initiated: bool,
) -> Option<Notice> {
    let notice = for_transition(previous, next, user_initiated)?;
    let (title, body) = match next {
        SessionState::Reconnecting { .. } => (
            "Publication dropped",
            notice
                .body
                .replacen("Reconnecting", "Reconnecting to the queen", 1),
        ),
        _ if matches!(previous, SessionState::Reconnecting { .. }) => (
            "Publishing stopped",
            notice
                .body
                .replace("Press Connect", "Press Publish")
                .replace("The gateway", "The queen"),
        ),
        _ => ("Publishing stopped", notice.body),
    };
    Some(Notice {
        title: title.into(),
        body,
    })
}

/// A share's tunnel dropped and the share is reconnecting on its own
/// (seed §6: the same tunnel and forwards come back). Told from the share's
/// status: the engine sees a share that resumes as still active.
pub fn for_share_drop(
    previous: &ShareStatus,
    next: &ShareStatus,
    user_initiated: bool,
) -> Option<Notice> {
    let active = TunnelState::Active.as_str();
    let reconnecting = TunnelState::Reconnecting.as_str();
    if user_initiated || previous.state != active || next.state != reconnecting {
        return None;
    }
    let why = next
        .error
        .as_deref()
        .unwrap_or("The connection to the relay dropped");
    Some(Notice {
        title: "Remote access dropped".into(),
        body: format!("{why}. Reconnecting to the relay; the public addresses stay the same…"),
    })
}

/// A share ended without the user asking (refused, gave up): `error` is the
/// share's own sentence when it has one, else the engine's reason.
pub fn for_share_end(
    next: &SessionState,
    error: Option<&str>,
    user_initiated: bool,
) -> Option<Notice> {
    let SessionState::Disconnected {
        reason: Some(reason),
    } = next
    else {
        return None;
    };
    if user_initiated {
        return None;
    }
    Some(Notice {
        title: "Remote access stopped".into(),
        body: format!(
            "{}. Press Start sharing to try again.",
            error.unwrap_or(reason).trim_end_matches('.')
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> SessionState {
        SessionState::Active {
            session_id: "s".into(),
            gateway: "wss://gw/ws".into(),
            max_streams: 8,
            since_unix: 0,
        }
    }

    fn reconnecting() -> SessionState {
        SessionState::Reconnecting {
            attempt: 1,
            max_attempts: 10,
            retry_in_secs: 1.0,
            last_error: "connection reset".into(),
        }
    }

    #[test]
    fn drops_and_giving_up_are_announced() {
        let drop = for_transition(&active(), &reconnecting(), false).unwrap();
        assert_eq!(drop.title, "Tunnel dropped");
        assert!(drop.body.contains("connection reset"));
        let gave_up = for_transition(
            &reconnecting(),
            &SessionState::Disconnected {
                reason: Some("10 attempts failed".into()),
            },
            false,
        )
        .unwrap();
        assert_eq!(gave_up.title, "Gave up reconnecting");
    }

    #[test]
    fn ordinary_progress_and_user_actions_are_silent() {
        let auth = SessionState::Authenticating { server: "x".into() };
        assert_eq!(for_transition(&auth, &active(), false), None);
        assert_eq!(for_transition(&reconnecting(), &active(), false), None);
        let off = SessionState::Disconnected { reason: None };
        assert_eq!(for_transition(&active(), &off, true), None);
        assert_eq!(for_transition(&active(), &reconnecting(), true), None);
        assert_eq!(
            for_publication_transition(&active(), &reconnecting(), true),
            None
        );
    }

    #[test]
    fn a_publication_is_announced_as_one() {
        let drop = for_publication_transition(&active(), &reconnecting(), false).unwrap();
        assert_eq!(drop.title, "Publication dropped");
        assert!(
            drop.body.contains("Reconnecting to the queen"),
            "{}",
            drop.body
        );
        let gave_up = for_publication_transition(
            &reconnecting(),
            &SessionState::Disconnected { reason: None },
            false,
        )
        .unwrap();
        assert_eq!(gave_up.title, "Publishing stopped");
        assert!(
            gave_up.body.contains("The queen could not be reached")
                && gave_up.body.contains("Press Publish"),
            "{}",
            gave_up.body
        );
    }

    #[test]
    fn a_share_tells_its_drops_and_its_end() {
        let status = |state: TunnelState| ShareStatus {
            state: state.as_str().into(),
            error: Some("cannot reach the relay".into()),
            ..ShareStatus::default()
        };
        let up = status(TunnelState::Active);
        let reconnecting = status(TunnelState::Reconnecting);
        let drop = for_share_drop(&up, &reconnecting, false).unwrap();
        assert_eq!(drop.title, "Remote access dropped");
        assert!(
            drop.body.starts_with("cannot reach the relay."),
            "{}",
            drop.body
        );
        assert_eq!(for_share_drop(&up, &reconnecting, true), None);
        assert_eq!(for_share_drop(&reconnecting, &reconnecting, false), None);
        assert_eq!(
            for_share_drop(&status(TunnelState::Registered), &up, false),
            None
        );

        let refused = SessionState::Disconnected {
            reason: Some("auth_failed: token expired".into()),
        };
        let end =
            for_share_end(&refused, Some("The token expired; sign in again."), false).unwrap();
        assert_eq!(end.title, "Remote access stopped");
        assert_eq!(
            end.body,
            "The token expired; sign in again. Press Start sharing to try again."
        );
        assert!(
            for_share_end(&refused, None, false)
                .unwrap()
                .body
                .starts_with("auth_failed")
        );
        assert_eq!(for_share_end(&refused, None, true), None);
        assert_eq!(
            for_share_end(&SessionState::Disconnected { reason: None }, None, false),
            None
        );
        assert_eq!(for_share_end(&active(), None, false), None);
    }
}
