//! What the tray shows, computed from an engine snapshot: the icon for the
//! state, a tooltip and status lines with the live stream count, the rates
//! and the busiest streams. Pure, so it is tested without a tray.

use engine::units::{human_bytes, human_rate};
use engine::{SessionState, Snapshot, StreamInfo};
use proto_relay::TunnelState;
use relay_client::ShareStatus;
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
    /// Whether the run is a share (Relay, Remote access): the menu then
    /// offers "Stop sharing".
    pub sharing: bool,
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
            "{} · ↓ {} ↑ {}",
            counted(count as u64, "stream"),
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
            sharing: false,
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
            "{} · ↑ {} ↓ {}",
            counted(count as u64, "request"),
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
            sharing: false,
        }
    }

    /// A share: its seed state (from the share's own status: the engine
    /// sees a share that resumes as still active), where the first port is
    /// reached, the connections through the forwards and the WireGuard
    /// traffic.
    pub fn of_share(snapshot: &Snapshot, share: &ShareStatus) -> TraySummary {
        let state = |s: TunnelState| share.state == s.as_str();
        let (icon, status) = if state(TunnelState::Active) {
            let status = match share.forwards.split_first() {
                Some((first, [])) => {
                    format!("Sharing port {} at {}", first.port, first.public)
                }
                Some((first, rest)) => format!(
                    "Sharing port {} at {} and {} more",
                    first.port,
                    first.public,
                    rest.len()
                ),
                None => format!("Sharing through {}", share.relay),
            };
            (TrayIcon::Connected, status)
        } else if state(TunnelState::Reconnecting) {
            let attempt = share
                .attempt
                .map(|a| format!(" (attempt {a})"))
                .unwrap_or_default();
            (
                TrayIcon::Connecting,
                format!("Reconnecting to the relay{attempt}…"),
            )
        } else if state(TunnelState::Disconnected) {
            match &share.error {
                Some(error) => (TrayIcon::Error, format!("Sharing stopped: {error}")),
                None => (TrayIcon::Disconnected, "Not sharing".to_owned()),
            }
        } else {
            (
                TrayIcon::Connecting,
                format!("Connecting to the relay {}…", share.relay),
            )
        };
        let count = share.open_connections;
        let traffic = format!(
            "{} · ↓ {} ↑ {}",
            counted(count, "connection"),
            human_bytes(share.bytes_in),
            human_bytes(share.bytes_out)
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
            publishing: false,
            sharing: true,
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

/// "1 stream", "3 streams".
fn counted(count: u64, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
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
            ended_unix: None,
            bytes_up: 0,
            bytes_down: 0,
            rate_up: 0.0,
            rate_down: down,
            state: StreamState::Open,
            close_reason: None,
            wait_ms: 0,
            route: None,
            rule: None,
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

    #[test]
    fn a_share_says_where_its_ports_are_reached() {
        let active = SessionState::Active {
            session_id: "t-1".into(),
            gateway: "relay.example:443".into(),
            max_streams: 0,
            since_unix: 0,
        };
        let mut row = stream(1, "127.0.0.1:22", 0.0);
        row.protocol = "inbound".into();
        row.rate_up = 1_500.0;
        let snap = snapshot(active, vec![row]);
        let mut share = ShareStatus {
            relay: "relay.example:443".into(),
            state: "active".into(),
            forwards: vec![relay_client::ForwardInfo {
                port: 22,
                public: "relay.example:40022".into(),
            }],
            open_connections: 1,
            bytes_in: 2_000_000,
            bytes_out: 3_000,
            ..ShareStatus::default()
        };
        let summary = TraySummary::of_share(&snap, &share);
        assert_eq!(summary.icon, TrayIcon::Connected);
        assert_eq!(summary.status, "Sharing port 22 at relay.example:40022");
        assert!(summary.sharing && !summary.publishing && !summary.can_connect);
        assert_eq!(summary.traffic, "1 connection · ↓ 2.0 MB ↑ 3.0 kB");
        assert_eq!(summary.busiest, ["127.0.0.1:22 · ↑ 1.5 kB/s"]);

        share.forwards.push(relay_client::ForwardInfo {
            port: 3389,
            public: "relay.example:43389".into(),
        });
        assert!(
            TraySummary::of_share(&snap, &share)
                .status
                .ends_with("and 1 more")
        );
        share.state = "reconnecting".into();
        share.attempt = Some(3);
        let summary = TraySummary::of_share(&snap, &share);
        assert_eq!(summary.icon, TrayIcon::Connecting);
        assert_eq!(summary.status, "Reconnecting to the relay (attempt 3)…");
        share.state = "disconnected".into();
        share.error = Some("gave up".into());
        let summary = TraySummary::of_share(&snap, &share);
        assert_eq!(
            (summary.icon, summary.status.as_str()),
            (TrayIcon::Error, "Sharing stopped: gave up")
        );
    }
}
