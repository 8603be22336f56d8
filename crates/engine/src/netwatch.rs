//! Notices when this machine's network changes under a running session (a
//! new default route or address, a link going down or up, as after a
//! wake-up from sleep or a move to another Wi-Fi), so the engine checks the
//! session at once instead of waiting out the keepalive.
//!
//! Linux: an rtnetlink socket subscribed to link, address and route
//! changes; the messages are not parsed (any change is worth a probe: a
//! probe of a live session costs one ping). Elsewhere no route changes are
//! watched yet, and sessions rely on their keepalive.
//!
//! Everywhere: a wake-up from sleep, noticed as the wall clock running
//! ahead of the monotonic one (which stands still while the machine
//! sleeps), checked every 30 s: one timer, no measurable work.

use std::time::Duration;

use tokio::sync::watch;

/// How long a burst of changes (an address, then its routes) is gathered
/// into one notice.
const SETTLE: Duration = Duration::from_millis(200);

/// Changes of the network, as a counter that grows with each burst.
#[derive(Debug, Clone)]
pub struct NetworkChanges {
    rx: watch::Receiver<u64>,
}

impl NetworkChanges {
    /// Changes fed by hand (tests, or a platform notification the caller
    /// receives itself): each `send_modify(|n| *n += 1)` is one change.
    pub fn manual() -> (watch::Sender<u64>, NetworkChanges) {
        let (tx, rx) = watch::channel(0);
        (tx, NetworkChanges { rx })
    }

    /// Watches this machine's network and its wake-ups (see the module
    /// docs). Call inside a tokio runtime.
    pub fn system() -> Option<NetworkChanges> {
        let (tx, rx) = watch::channel(0);
        if let Err(e) = platform::watch(tx.clone()) {
            tracing::debug!(error = %e, "route changes are not watched");
        }
        tokio::spawn(watch_wake_ups(tx));
        Some(NetworkChanges { rx })
    }

    /// Resolves at the next change after the last one seen; never when the
    /// watcher has stopped.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// How often the clocks are compared.
const WAKE_CHECK: Duration = Duration::from_secs(30);
/// How far the wall clock may run ahead of the monotonic one between two
/// checks before it counts as a sleep (a clock step by NTP is usually less;
/// a false alarm costs one probe).
const SLEEP_GAP: Duration = Duration::from_secs(5);

/// Whether the machine slept between two checks: the wall clock moved
/// `wall` while the monotonic clock moved `monotonic`.
fn slept(monotonic: Duration, wall: Duration) -> bool {
    wall > monotonic + SLEEP_GAP
}

async fn watch_wake_ups(tx: watch::Sender<u64>) {
    let mut last = (std::time::Instant::now(), std::time::SystemTime::now());
    loop {
        tokio::time::sleep(WAKE_CHECK).await;
        if tx.is_closed() {
            return;
        }
        let now = (std::time::Instant::now(), std::time::SystemTime::now());
        let wall = now.1.duration_since(last.1).unwrap_or_default();
        if slept(now.0 - last.0, wall) {
            tracing::info!("woke up from sleep: checking the session");
            tx.send_modify(|n| *n += 1);
        }
        last = now;
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use netlink_sys::protocols::NETLINK_ROUTE;
    use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
    use tokio::sync::watch;

    use super::SETTLE;

    // rtnetlink multicast groups (linux/rtnetlink.h).
    const RTMGRP_LINK: u32 = 0x1;
    const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    const RTMGRP_IPV4_ROUTE: u32 = 0x40;
    const RTMGRP_IPV6_IFADDR: u32 = 0x100;
    const RTMGRP_IPV6_ROUTE: u32 = 0x400;

    pub(super) fn watch(tx: watch::Sender<u64>) -> std::io::Result<()> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE;
        socket.socket_mut().bind(&SocketAddr::new(0, groups))?;
        tokio::spawn(async move {
            loop {
                if socket.recv_from_full().await.is_err() {
                    return;
                }
                // Gather the rest of the burst, then tell once.
                let _ = tokio::time::timeout(SETTLE, async {
                    while socket.recv_from_full().await.is_ok() {}
                })
                .await;
                tx.send_modify(|n| *n += 1);
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use tokio::sync::watch;

    pub(super) fn watch(_tx: watch::Sender<u64>) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "no network watcher on this platform yet",
        ))
    }
}

#[cfg(test)]
mod wake_tests {
    use std::time::Duration;

    use super::slept;

    #[test]
    fn a_wall_clock_far_ahead_of_the_monotonic_one_is_a_sleep() {
        let s = Duration::from_secs;
        assert!(!slept(s(30), s(30)), "awake");
        assert!(!slept(s(30), s(33)), "a small clock step");
        assert!(!slept(s(30), s(0)), "the wall clock set back");
        assert!(slept(s(30), s(600)), "ten minutes asleep");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    use super::NetworkChanges;

    // Here rather than among the engine's integration tests: the `ip`
    // children it forks would hold copies of their sockets for a moment,
    // which a test checking that a port is closed could see.
    /// The system watcher (rtnetlink on Linux) sees a real change: a veth pair
    /// (this kernel has no dummy links) added and removed by the test. Needs
    /// root (skipped otherwise).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_system_watcher_sees_a_link_come_and_go() {
        if !testkit::is_root() {
            println!("skipping: adding a link needs root");
            return;
        }
        let mut changes = NetworkChanges::system().expect("rtnetlink is watched");
        let name = format!("hnw{}", std::process::id() % 100_000);
        let peer = format!("{name}p");
        let ip = |args: &[&str]| {
            let status = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        let seen = tokio::time::timeout(Duration::from_secs(10), changes.changed()).await;
        ip(&["link", "del", &name]);
        seen.expect("the new link is noticed");
        tokio::time::timeout(Duration::from_secs(10), changes.changed())
            .await
            .expect("its removal too");
    }
}
