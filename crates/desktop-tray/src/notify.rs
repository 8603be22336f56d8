//! Desktop notifications over D-Bus (`org.freedesktop.Notifications`).
//!
//! One `Notify` call on the session bus through zbus 5, the D-Bus library
//! the tray (ksni) already links, rather than notify-rust: notify-rust 4.19
//! brings zbus 6, a second D-Bus stack in a process meant to stay small.

use std::collections::HashMap;
use std::time::Duration;

use zbus::zvariant::Value;

/// The name notifications are shown under.
const APP_NAME: &str = "httvps";
/// How long a notification service may take to answer (one that is
/// D-Bus-activated starts first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a notification was not shown.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No session bus to send it on.
    #[error("no session bus: {0}")]
    Bus(zbus::Error),
    /// No notification service, or it refused.
    #[error("the notification service refused: {0}")]
    Service(zbus::Error),
    /// The service did not answer in time.
    #[error("the notification service did not answer within {0:?}")]
    Timeout(Duration),
}

/// Shows a desktop notification without waiting for it: the call runs on
/// the current tokio runtime (or, called outside one, on a short-lived
/// thread of its own). Without a notification service it logs at debug
/// level and does nothing else.
pub fn notify(title: &str, body: &str) {
    let (title, body) = (title.to_owned(), body.to_owned());
    let show = async move {
        if let Err(e) = show(&title, &body).await {
            tracing::debug!("notification not shown: {e}");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(show);
        }
        Err(_) => {
            let spawned = std::thread::Builder::new()
                .name("notify".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime.block_on(show),
                        Err(e) => tracing::debug!("notification not shown: {e}"),
                    }
                });
            if let Err(e) = spawned {
                tracing::debug!("notification not shown: {e}");
            }
        }
    }
}

/// Shows a notification and waits for the service's answer ([`notify`]
/// without waiting is what the app uses).
pub async fn show(title: &str, body: &str) -> Result<(), NotifyError> {
    let call = async {
        let bus = zbus::Connection::session()
            .await
            .map_err(NotifyError::Bus)?;
        let hints: HashMap<&str, Value<'_>> = HashMap::new();
        let actions: &[&str] = &[];
        // Notify(app_name, replaces_id, app_icon, summary, body, actions,
        // hints, expire_timeout): -1 lets the server choose how long.
        bus.call_method(
            Some("org.freedesktop.Notifications"),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.Notifications"),
            "Notify",
            &(APP_NAME, 0u32, "", title, body, actions, hints, -1i32),
        )
        .await
        .map_err(NotifyError::Service)?;
        Ok(())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, call)
        .await
        .map_err(|_| NotifyError::Timeout(ANSWER_TIMEOUT))?
}
