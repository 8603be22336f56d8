//! What the tray shows, computed from an engine snapshot: the icon for the
//! state, a tooltip and status lines with the live stream count, the rates
//! and the busiest streams. Pure, so it is tested without a tray.

use engine::units::human_rate;
use engine::{SessionState, Snapshot, StreamInfo};
use serde::Serialize;
use ts_rs::TS;

/// How many streams the tray menu lists.
pub const BUSIEST_SHOWN: usize = 3;

/// The tray icon's four looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TrayIcon {
    /// Not connected.
    Disconnected,
    /// Signing in or reconnecting.
    Connecting,
    /// The tunnel is up.
    Connected,
    /// The last session ended with an error.
    Error,
}

/// The tray's contents.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct TraySummary {
    /// Which icon.
    pub icon: TrayIcon,
    /// One line for the tooltip and the menu's first (disabled) item.
    pub status: String,
    /// Rates and stream count, e.g. `3 streams · ↓ 1.2 MB/s ↑ 10 kB/s`.
    pub traffic: String,
    /// The busiest streams, one line each.
    pub busiest: Vec<String>,
    /// Whether Connect (rather than Disconnect) is offered.
    pub can_connect: bool,
    /// Whether the run is a publication (HLHV) rather than a tunnel: the
    /// menu then offers "Stop publishing".
    pub publishing: bool,
}

fn rate(stream: &StreamInfo) -> f64 {
    stream.rate_up + stream.rate_down
}

impl TraySummary {
    /// The summary of a tunnel's snapshot.
    pub fn of(snapshot: &Snapshot) -> TraySummary {
        TraySummary::for_run(snapshot, false)
    }

    /// The summary of a snapshot; `publishing` when the run is a
    /// publication, whose rows are requests served and whose status says
    /// where the app is published (the snapshot alone cannot tell a
    /// publication that is still connecting from a tunnel).
    pub fn for_run(snapshot: &Snapshot, publishing: bool) -> TraySummary {
        if publishing {
            return TraySummary::of_publication(snapshot);
        }
        let (icon, status) = match &snapshot.state {
            SessionState::Disconnected { reason: None } => {
                (TrayIcon::Disconnected, "Disconnected".to_owned())
            }
            SessionState::Disconnected {
                reason: Some(reason),
            } => (TrayIcon::Error, format!("Disconnected: {reason}")),
            SessionState::Authenticating { server } => {
                (TrayIcon::Connecting, format!("Connecting to {server}…"))
            }
            SessionState::Reconnecting {
                attempt,
                max_attempts,
                ..
            } => (
                TrayIcon::Connecting,
                format!("Reconnecting (attempt {attempt} of {max_attempts})…"),
            ),
            SessionState::Active { gateway, .. } => {
                (TrayIcon::Connected, format!("Connected to {gateway}"))
            }
        };
        let totals = &snapshot.totals;
        let count = snapshot.open.len();
        let traffic = format!(
            "{count} stream{} · ↓ {} ↑ {}",
            if count == 1 { "" } else { "s" },
            human_rate(totals.rate_down),
            human_rate(totals.rate_up)
        );
        let busiest = busiest(snapshot, |s| {
            format!("{} · ↓ {}", s.target, human_rate(s.rate_down))
        });
        TraySummary {
            icon,
            status,
            traffic,
            busiest,
            can_connect: matches!(snapshot.state, SessionState::Disconnected { .. }),
            publishing: false,
        }
    }

    /// A publication: where it is reached, the requests being served and
    /// the busiest responses.
    fn of_publication(snapshot: &Snapshot) -> TraySummary {
        let (icon, status) = match &snapshot.state {
            SessionState::Disconnected { reason: None } => {
                (TrayIcon::Disconnected, "Not publishing".to_owned())
            }
            SessionState::Disconnected {
                reason: Some(reason),
            } => (TrayIcon::Error, format!("Publishing stopped: {reason}")),
            SessionState::Authenticating { server } => (
                TrayIcon::Connecting,
                format!("Connecting to the queen {server}…"),
            ),
            SessionState::Reconnecting {
                attempt,
                max_attempts,
                ..
            } => (
                TrayIcon::Connecting,
                format!("Reconnecting to the queen (attempt {attempt} of {max_attempts})…"),
            ),
            SessionState::Active { gateway, .. } if snapshot.endpoints.is_empty() => {
                (TrayIcon::Connected, format!("Publishing through {gateway}"))
            }
            SessionState::Active { .. } => (
                TrayIcon::Connected,
                format!("Publishing {}", snapshot.endpoints.join(", ")),
            ),
        };
        let totals = &snapshot.totals;
        let count = snapshot.open.len();
        // A request's response is what goes up to the public client.
        let traffic = format!(
            "{count} request{} · ↑ {} ↓ {}",
            if count == 1 { "" } else { "s" },
            human_rate(totals.rate_up),
            human_rate(totals.rate_down)
        );
        let busiest = busiest(snapshot, |s| {
            format!("{} · ↑ {}", s.target, human_rate(s.rate_up))
        });
        TraySummary {
            icon,
            status,
            traffic,
            busiest,
            can_connect: matches!(snapshot.state, SessionState::Disconnected { .. }),
            publishing: true,
        }
    }

    /// The tooltip: status and traffic.
    pub fn tooltip(&self) -> String {
        if self.icon == TrayIcon::Connected {
            format!("httvps — {}\n{}", self.status, self.traffic)
        } else {
            format!("httvps — {}", self.status)
        }
    }
}

/// The busiest open rows, fastest first, as `line` writes them.
fn busiest(snapshot: &Snapshot, line: impl Fn(&StreamInfo) -> String) -> Vec<String> {
    let mut open: Vec<&StreamInfo> = snapshot.open.iter().collect();
    open.sort_by(|a, b| rate(b).total_cmp(&rate(a)).then(a.key.cmp(&b.key)));
    open.into_iter().take(BUSIEST_SHOWN).map(line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Totals;
    use engine::table::StreamState;

    fn stream(key: u64, target: &str, down: f64) -> StreamInfo {
        StreamInfo {
            key,
            stream_id: Some(format!("s{key}")),
            target: target.into(),
            client: "127.0.0.1:5000".into(),
            protocol: "socks5".into(),
            started_unix: 0,
            bytes_up: 0,
            bytes_down: 0,
            rate_up: 0.0,
            rate_down: down,
            state: StreamState::Open,
            close_reason: None,
            wait_ms: 0,
        }
    }

    fn snapshot(state: SessionState, open: Vec<StreamInfo>) -> Snapshot {
        let rate_down = open.iter().map(|s| s.rate_down).sum();
        Snapshot {
            state,
            proxy_addr: None,
            endpoints: vec![],
            warnings: vec![],
            open,
            closed: vec![],
            totals: Totals {
                rate_down,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn the_icon_follows_the_state() {
        let icon = |state| TraySummary::of(&snapshot(state, vec![])).icon;
        assert_eq!(
            icon(SessionState::Disconnected { reason: None }),
            TrayIcon::Disconnected
        );
        assert_eq!(
            icon(SessionState::Disconnected {
                reason: Some("auth_failed".into())
            }),
            TrayIcon::Error
        );
        assert_eq!(
            icon(SessionState::Authenticating { server: "x".into() }),
            TrayIcon::Connecting
        );
        assert_eq!(
            icon(SessionState::Reconnecting {
                attempt: 2,
                max_attempts: 10,
                retry_in_secs: 1.0,
                last_error: "e".into()
            }),
            TrayIcon::Connecting
        );
    }

    #[test]
    fn the_busiest_streams_come_first_and_are_capped() {
        let active = SessionState::Active {
            session_id: "abc".into(),
            gateway: "wss://gw/ws".into(),
            max_streams: 8,
            since_unix: 0,
        };
        let open = vec![
            stream(1, "a.example:443", 10.0),
            stream(2, "b.example:443", 2_500_000.0),
            stream(3, "c.example:443", 0.0),
            stream(4, "d.example:443", 30_000.0),
        ];
        let summary = TraySummary::of(&snapshot(active, open));
        assert_eq!(summary.icon, TrayIcon::Connected);
        assert!(!summary.can_connect);
        assert_eq!(summary.busiest.len(), BUSIEST_SHOWN);
        assert_eq!(summary.busiest[0], "b.example:443 · ↓ 2.5 MB/s");
        assert!(summary.busiest[1].starts_with("d.example:443"));
        assert!(
            summary.traffic.starts_with("4 streams · ↓ 2.5 MB/s"),
            "{}",
            summary.traffic
        );
        assert!(summary.tooltip().contains("4 streams"));
        assert!(!summary.publishing);
    }

    #[test]
    fn a_publication_says_where_it_is_published_and_counts_requests() {
        let active = SessionState::Active {
            session_id: "cell-uuid".into(),
            gateway: "queen.example:2001".into(),
            max_streams: 0,
            since_unix: 0,
        };
        let mut upload = stream(1, "POST /app/upload", 0.0);
        upload.rate_up = 10.0;
        let mut page = stream(2, "GET /app/", 0.0);
        page.rate_up = 2_000_000.0;
        let mut snap = snapshot(active, vec![upload, page]);
        snap.endpoints = vec!["https://demo.example/app/".into()];
        let summary = TraySummary::for_run(&snap, true);
        assert_eq!(summary.icon, TrayIcon::Connected);
        assert_eq!(summary.status, "Publishing https://demo.example/app/");
        assert!(summary.publishing && !summary.can_connect);
        assert!(
            summary.traffic.starts_with("2 requests"),
            "{}",
            summary.traffic
        );
        assert_eq!(summary.busiest[0], "GET /app/ · ↑ 2.0 MB/s");
        assert!(
            summary
                .tooltip()
                .contains("Publishing https://demo.example/app/")
        );

        let reconnecting = SessionState::Reconnecting {
            attempt: 3,
            max_attempts: 10,
            retry_in_secs: 2.0,
            last_error: "queen gone".into(),
        };
        let summary = TraySummary::for_run(&snapshot(reconnecting, vec![]), true);
        assert_eq!(summary.icon, TrayIcon::Connecting);
        assert!(
            summary.status.contains("queen (attempt 3 of 10)"),
            "{}",
            summary.status
        );
        // The same snapshot as a tunnel says so.
        assert!(!TraySummary::of(&snap).status.contains("Publishing"));
    }
}
