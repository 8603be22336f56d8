//! Remote access: this machine's TCP ports shared through a relay (seed
//! 004), from a saved Relay profile (its JWT from the keychain, this
//! device's WireGuard key from the keychain too) or as the demo (the demo
//! page's port shared through an embedded relay on loopback). A share takes
//! the engine's one run slot, as a tunnel and a publication do.
//!
//! The engine sees a share as one publication: authenticating until the
//! tunnel is Active, then active until the share ends (the protocol
//! resumes its tunnel itself, so the engine never reconnects it). The
//! seed's own states (registered, reconnecting with the same tunnel, …),
//! the forwards, the traffic and the WireGuard handshake are the
//! publisher's [`ShareStatus`], forwarded to the window as
//! [`AppEvent::Share`] and kept in the overview. Each connection through a
//! forward is a row of the live table (protocol `inbound`, service
//! `127.0.0.1:PORT`).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use demo::{DemoPage, DemoRelay};
use engine::{EngineError, PublishOptions, SessionState};
use profiles::account;
use proto_relay::TunnelState;
use relay_client::{RELAY_TOKEN, RelayProfile, RelayPublisher, ShareStatus, launch};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Controller, Demo};
use crate::error::{CommandCode, CommandError};
use crate::log::LogLevel;
use crate::notice::for_share_drop;
use crate::profile::Profile;
use crate::view::{AppEvent, Connection, Overview};

/// The demo share's tunnel name.
pub const DEMO_TUNNEL: &str = "demo";

/// How long stopping waits for the share to close its forwards and its
/// WireGuard node, so that the window's last status is the real one.
const DRIVER_STOP_WAIT: Duration = Duration::from_secs(5);

/// The share's status: its live feed while sharing, or the last status of
/// a share that ended on its own (kept for its error sentence).
#[derive(Default)]
pub(super) struct ShareSlot {
    run: Option<ShareRun>,
    ended: Option<ShareStatus>,
}

/// A running share's status and the task forwarding it to the window.
struct ShareRun {
    status: watch::Receiver<ShareStatus>,
    forwarder: JoinHandle<()>,
}

impl Controller {
    /// Shares a saved Relay profile's ports through its relay, with its
    /// JWT and this device's WireGuard key from the keychain (the key is
    /// made on first use). Refused when the profile is not signed in, is
    /// not a Relay profile, or while a tunnel or a publication runs.
    pub async fn share(&self, name: String) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        self.wind_down_finished().await;
        // Before the keychain: the answer does not depend on the token.
        if self.inner.engine.is_running() {
            return Err(self.slot_taken());
        }
        let relay = match self.find_profile(&name)? {
            Profile::Relay(relay) => relay,
            Profile::Hlhv(_) => {
                return Err(CommandError::invalid(format!(
                    "profile {name:?} publishes a web app (HLHV): start it from the Publish panel"
                )));
            }
            other => {
                return Err(CommandError::invalid(format!(
                    "profile {name:?} is an outbound {} profile: connect it from the Connect panel",
                    other.protocol().title()
                )));
            }
        };
        let account_name = account(&name, RELAY_TOKEN);
        let token = self
            .keychain(move |secrets| secrets.get(&account_name))
            .await?
            .ok_or_else(|| {
                CommandError::new(
                    CommandCode::NotSignedIn,
                    format!("sign in to {name:?} first: enter its relay token"),
                )
            })?;
        let key = self.keychain(|secrets| launch::device_key(secrets)).await?;
        let publisher = launch::publisher(&relay, token, key)
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        let connection = Connection::Share {
            name: Some(name),
            relay: relay.relay.clone(),
            tunnel: relay.tunnel.clone(),
            ports: relay.ports.clone(),
        };
        self.start_share(
            &publisher,
            launch::publish_options(publisher.clone()),
            connection,
        )
        .await?;
        Ok(self.overview().await)
    }

    /// Try the demo, sharing: an embedded relay on loopback (pinned
    /// certificate, its own JWT, userspace WireGuard) and `ports` shared
    /// through it; without ports, a demo page's port, so that the public
    /// forward serves "It works." at once.
    pub async fn share_demo(&self, ports: Option<Vec<u16>>) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        self.wind_down_finished().await;
        if self.inner.engine.is_running() {
            return Err(self.slot_taken());
        }
        if let Some(ports) = &ports {
            // The relay's rules, before starting anything.
            RelayProfile::new("demo", "localhost", DEMO_TUNNEL, ports.clone())
                .check()
                .map_err(|e| CommandError::invalid(e.to_string()))?;
        }
        let demo_error = |e: String| CommandError::new(CommandCode::DemoFailed, e);
        let relay = DemoRelay::start(Ipv4Addr::LOCALHOST.into())
            .await
            .map_err(|e| demo_error(format!("cannot start the demo relay: {e}")))?;
        let (ports, page) = match ports {
            Some(ports) => (ports, None),
            None => match DemoPage::start().await {
                Ok(page) => (vec![page.port()], Some(page)),
                Err(e) => {
                    relay.shutdown().await;
                    return Err(demo_error(format!("cannot serve the demo page: {e}")));
                }
            },
        };
        let (options, publisher) = match relay.publish_options(DEMO_TUNNEL, ports.clone()) {
            Ok(parts) => parts,
            Err(e) => {
                relay.shutdown().await;
                return Err(demo_error(e.to_string()));
            }
        };
        let connection = Connection::Share {
            name: None,
            relay: relay.addr().to_string(),
            tunnel: DEMO_TUNNEL.to_owned(),
            ports,
        };
        if let Err(e) = self.start_share(&publisher, options, connection).await {
            relay.shutdown().await;
            return Err(e);
        }
        *self.inner.demo.lock().await = Some(Demo::Share { relay, _page: page });
        Ok(self.overview().await)
    }

    /// Stops sharing (and the demo relay, if it was the demo): the public
    /// forwards close. A tunnel or a publication is left alone.
    pub async fn stop_share(&self) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        let connection = self.inner.connection.lock().unwrap().clone();
        match connection {
            Some(Connection::Share { .. }) => {
                self.inner.user_stopping.store(true, Ordering::SeqCst);
                self.wind_down().await;
                self.log(LogLevel::Info, None, "Stopped sharing.");
                self.inner.user_stopping.store(false, Ordering::SeqCst);
            }
            Some(Connection::Publish { .. }) => {
                return Err(CommandError::new(
                    CommandCode::Busy,
                    "a web app is being published, not this computer's ports: stop it from the Publish panel",
                ));
            }
            Some(_) => {
                return Err(CommandError::new(
                    CommandCode::Busy,
                    "a tunnel is connected, not a share: disconnect it from the Connect panel",
                ));
            }
            // Already ended on its own: the user has seen why; forget it.
            None => self.inner.share.lock().unwrap().ended = None,
        }
        Ok(self.overview().await)
    }

    /// The share's status for the overview and the tray.
    pub(super) fn share_status(&self) -> Option<ShareStatus> {
        let slot = self.inner.share.lock().unwrap();
        match &slot.run {
            Some(run) => Some(run.status.borrow().clone()),
            None => slot.ended.clone(),
        }
    }

    /// Takes the engine's slot for a share and records it. The record and
    /// the status feed go first, so that the watcher and the tray already
    /// tell the share's states from a tunnel's.
    async fn start_share(
        &self,
        publisher: &RelayPublisher,
        options: PublishOptions,
        connection: Connection,
    ) -> Result<(), CommandError> {
        let Connection::Share {
            name,
            relay,
            tunnel,
            ports,
        } = &connection
        else {
            unreachable!("start_share takes a share");
        };
        let what = match name {
            Some(name) => format!("profile {name:?}"),
            None => "the demo relay".to_owned(),
        };
        let shared: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let sentence = format!(
            "Sharing {} as tunnel {tunnel:?} through the relay {relay} with {what}…",
            shared.join(", ")
        );
        let status = publisher.status();
        let forwarder = self.spawn_share_forwarder(status.clone());
        *self.inner.share.lock().unwrap() = ShareSlot {
            run: Some(ShareRun { status, forwarder }),
            ended: None,
        };
        let previous = self.inner.connection.lock().unwrap().replace(connection);
        match self.inner.engine.publish(options) {
            Ok(()) => {
                self.log(LogLevel::Info, None, sentence);
                let _ = self.inner.events.send(AppEvent::Changed);
                if let Some(status) = self.share_status() {
                    let _ = self.inner.events.send(AppEvent::Share(status));
                }
                Ok(())
            }
            Err(e) => {
                *self.inner.connection.lock().unwrap() = previous;
                let run = self.inner.share.lock().unwrap().run.take();
                if let Some(run) = run {
                    run.forwarder.abort();
                }
                Err(match e {
                    EngineError::AlreadyRunning => self.slot_taken(),
                    other => CommandError::new(CommandCode::Engine, other.to_string()),
                })
            }
        }
    }

    /// After the engine stopped: the share's last status, sent to the
    /// window. A share the user stopped leaves nothing behind; one that
    /// ended on its own keeps its status (state disconnected, its error)
    /// until the next start. `was_active`: the engine held the share's
    /// publication, so its driver is closing and is waited for (briefly).
    pub(super) async fn end_share(&self, was_active: bool) {
        let run = self.inner.share.lock().unwrap().run.take();
        let Some(mut run) = run else { return };
        if was_active {
            let mut status = run.status.clone();
            let closed = status.wait_for(|s| s.state == TunnelState::Disconnected.as_str());
            let _ = tokio::time::timeout(DRIVER_STOP_WAIT, closed).await;
        }
        // Stopped for good before the last status goes out, so that no
        // older one can follow it.
        run.forwarder.abort();
        let _ = (&mut run.forwarder).await;
        let last = run.status.borrow().clone();
        let user = self.inner.user_stopping.load(Ordering::SeqCst);
        let reason = match self.inner.engine.state() {
            SessionState::Disconnected { reason } => reason,
            _ => None,
        };
        let ended = ended_status(last, user, reason);
        self.inner.share.lock().unwrap().ended = (!user).then(|| ended.clone());
        let _ = self.inner.events.send(AppEvent::Share(ended));
    }

    /// Forwards every status change to the window, with a log line for
    /// the seed's states and a notice when the tunnel drops. The share's
    /// end is not forwarded: [`Controller::end_share`] tells it, once, as
    /// the window keeps it.
    fn spawn_share_forwarder(&self, mut status: watch::Receiver<ShareStatus>) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let mut previous = status.borrow_and_update().clone();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().clone();
                if now.state == TunnelState::Disconnected.as_str() {
                    continue;
                }
                let Some(inner) = weak.upgrade() else { return };
                Controller { inner }.on_share_status(&previous, &now);
                previous = now;
            }
        })
    }

    fn on_share_status(&self, previous: &ShareStatus, now: &ShareStatus) {
        let _ = self.inner.events.send(AppEvent::Share(now.clone()));
        if let Some((level, line)) = share_log_line(previous, now) {
            self.log(level, None, line);
        }
        let user = self.inner.user_stopping.load(Ordering::SeqCst);
        if let Some(notice) = for_share_drop(previous, now, user) {
            let _ = self.inner.events.send(AppEvent::Notice(notice));
        }
    }
}

/// What the window keeps of a share once it is over: nothing of a share
/// the user stopped but the relay; of one that ended on its own, its
/// tunnel and why (the engine's reason when the share gave none). Its
/// forwards are closed, so they go.
fn ended_status(last: ShareStatus, user: bool, reason: Option<String>) -> ShareStatus {
    let disconnected = TunnelState::Disconnected.as_str().to_owned();
    if user {
        return ShareStatus {
            relay: last.relay,
            state: disconnected,
            ..ShareStatus::default()
        };
    }
    ShareStatus {
        state: disconnected,
        error: last.error.or(reason),
        forwards: Vec::new(),
        open_connections: 0,
        attempt: None,
        retry_in_secs: None,
        ..last
    }
}

/// The log line for a status change, if it deserves one: a tunnel
/// registered, the share active (with where each port is reached), each
/// reconnect attempt. Signing in and stopping are logged from the engine's
/// states.
fn share_log_line(previous: &ShareStatus, now: &ShareStatus) -> Option<(LogLevel, String)> {
    let id = now.tunnel_id.as_deref().unwrap_or("?");
    let entered = |state: TunnelState| now.state == state.as_str() && previous.state != now.state;
    if entered(TunnelState::Registered) {
        let address = now.address.as_deref().unwrap_or("?");
        return Some((
            LogLevel::Info,
            format!(
                "Tunnel {id} registered at the relay (address {address}); WireGuard handshake…"
            ),
        ));
    }
    if entered(TunnelState::Active) {
        let forwards: Vec<String> = now
            .forwards
            .iter()
            .map(|f| format!("127.0.0.1:{} at {}", f.port, f.public))
            .collect();
        return Some((
            LogLevel::Info,
            format!("Remote access on: {} (tunnel {id}).", forwards.join(", ")),
        ));
    }
    let retrying = now.state == TunnelState::Reconnecting.as_str()
        && (previous.state != now.state || previous.attempt != now.attempt);
    if let (true, Some(attempt)) = (retrying, now.attempt) {
        let why = now
            .error
            .as_deref()
            .unwrap_or("The connection to the relay dropped");
        let delay = now.retry_in_secs.unwrap_or_default();
        return Some((
            LogLevel::Warn,
            format!("{why}; reconnecting to the relay in {delay:.1} s (attempt {attempt})."),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_client::ForwardInfo;

    fn status(state: TunnelState) -> ShareStatus {
        ShareStatus {
            relay: "relay.example:443".into(),
            state: state.as_str().into(),
            tunnel_id: Some("t-1".into()),
            address: Some("10.0.0.7/32".into()),
            forwards: vec![ForwardInfo {
                port: 22,
                public: "relay.example:40022".into(),
            }],
            open_connections: 2,
            ..ShareStatus::default()
        }
    }

    #[test]
    fn the_seeds_states_are_logged_once_each() {
        let registered = status(TunnelState::Registered);
        let active = status(TunnelState::Active);
        let (_, line) = share_log_line(&status(TunnelState::Authenticating), &registered).unwrap();
        assert!(
            line.contains("t-1") && line.contains("10.0.0.7/32"),
            "{line}"
        );
        let (level, line) = share_log_line(&registered, &active).unwrap();
        assert_eq!(level, LogLevel::Info);
        assert_eq!(
            line,
            "Remote access on: 127.0.0.1:22 at relay.example:40022 (tunnel t-1)."
        );
        // Traffic alone is not a log line.
        let mut busier = active.clone();
        busier.bytes_in = 1000;
        assert_eq!(share_log_line(&active, &busier), None);

        let mut retry = status(TunnelState::Reconnecting);
        retry.attempt = Some(2);
        retry.retry_in_secs = Some(2.0);
        retry.error = Some("cannot reach the relay".into());
        let (level, line) = share_log_line(&active, &retry).unwrap();
        assert_eq!(level, LogLevel::Warn);
        assert_eq!(
            line,
            "cannot reach the relay; reconnecting to the relay in 2.0 s (attempt 2)."
        );
        assert_eq!(share_log_line(&retry, &retry), None);
        let mut next = retry.clone();
        next.attempt = Some(3);
        assert!(
            share_log_line(&retry, &next)
                .unwrap()
                .1
                .contains("attempt 3")
        );
    }

    #[test]
    fn an_ended_share_keeps_its_error_but_not_its_forwards() {
        let mut last = status(TunnelState::Reconnecting);
        last.attempt = Some(10);
        let ended = ended_status(
            last.clone(),
            false,
            Some("gave up after 10 attempts".into()),
        );
        assert_eq!(ended.state, "disconnected");
        assert_eq!(ended.error.as_deref(), Some("gave up after 10 attempts"));
        assert_eq!(ended.tunnel_id.as_deref(), Some("t-1"));
        assert!(ended.forwards.is_empty() && ended.open_connections == 0);
        assert_eq!(ended.attempt, None);
        last.error = Some("the relay token expired; sign in again".into());
        let ended = ended_status(last.clone(), false, Some("auth_failed: …".into()));
        assert_eq!(ended.error, last.error, "the share's own sentence first");
        let stopped = ended_status(last, true, None);
        assert_eq!(
            stopped,
            ShareStatus {
                relay: "relay.example:443".into(),
                state: "disconnected".into(),
                ..ShareStatus::default()
            }
        );
    }
}
