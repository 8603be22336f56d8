//! Notifications reach an `org.freedesktop.Notifications` service on a real
//! (private) session bus, from a tokio task and from a plain thread; without
//! a service, `notify` is quiet.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use desktop_tray::notify::{NotifyError, notify, show};
use tokio::sync::mpsc;
use zbus::zvariant::OwnedValue;

/// What the service was asked to show: app name, summary, body.
type Shown = (String, String, String);

/// A notification service that records what it is asked to show.
struct Service(mpsc::UnboundedSender<Shown>);

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Service {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let _ = self.0.send((app_name, summary, body));
        7
    }
}

#[test]
fn notifications_reach_the_service() {
    let Some(bus) = common::Bus::start() else {
        return;
    };
    bus.make_session_bus();
    let runtime = bus.runtime();
    runtime.block_on(async {
        // No service yet: an error (which `notify` logs at debug level).
        let error = show("Nobody", "is listening").await.unwrap_err();
        assert!(matches!(error, NotifyError::Service(_)), "{error}");

        let (sender, mut shown) = mpsc::unbounded_channel();
        let _service = zbus::connection::Builder::session()
            .unwrap()
            .name("org.freedesktop.Notifications")
            .unwrap()
            .serve_at("/org/freedesktop/Notifications", Service(sender))
            .unwrap()
            .build()
            .await
            .unwrap();

        notify("Cannot connect", "the gateway refused the token");
        let received = tokio::time::timeout(Duration::from_secs(10), shown.recv())
            .await
            .expect("the notification arrives")
            .unwrap();
        assert_eq!(
            received,
            (
                "httvps".to_owned(),
                "Cannot connect".to_owned(),
                "the gateway refused the token".to_owned()
            )
        );

        // Outside any runtime too.
        std::thread::spawn(|| notify("From a thread", "still shown"))
            .join()
            .unwrap();
        let received = tokio::time::timeout(Duration::from_secs(10), shown.recv())
            .await
            .expect("the notification arrives")
            .unwrap();
        assert_eq!(received.1, "From a thread");
        // Nothing else was shown.
        assert!(shown.try_recv().is_err());
    });
}
