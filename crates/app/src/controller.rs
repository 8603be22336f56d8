//! The desktop app's controller: every command the UI and the tray can give,
//! over one [`Engine`]. The desktop app only translates commands and events
//! (`remote`).
//!
//! The engine has one run slot: a tunnel (Connect, the demo), a
//! publication (Publish, its demo; `publish`) or a share (Remote access,
//! its demo; `share`), never two at once. The connection record says which
//! one holds it, so that each command can say what to stop first.

mod accounts;
pub mod links;
mod publish;
mod resume;
pub mod rules;
mod share;
pub mod streams;
mod system_proxy;
mod watcher;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use demo::{DemoGateway, DemoPage, DemoQueen, DemoRelay};
use engine::{DnsLimits, Engine, EngineError, EngineEvent, StartOptions};
use httvps_client::{Transport, launch};
use net::Secret;
use profiles::{SecretStore, account};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::error::{CommandCode, CommandError};
use crate::log::{LogBook, LogEntry, LogLevel};
use crate::profile::Profile;
use crate::registry::registry;
use crate::settings::{Preferences, ProfileView, Settings, SettingsStorage};
use crate::sysproxy::SystemProxy;
use crate::tray::TraySummary;
use crate::view::{AppEvent, Connection, Overview, StreamsUpdate};

/// The name the app sends in `hello`.
pub const CLIENT_NAME: &str = concat!("httvps-desktop/", env!("CARGO_PKG_VERSION"));

/// The longest token accepted from the sign-in form.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Events kept for a slow subscriber.
const APP_EVENT_BUFFER: usize = 256;

/// Turns "start on login" on or off (the tray process's login item).
pub trait Autostart: Send + Sync {
    /// Enables or disables.
    fn set(&self, enabled: bool) -> Result<(), String>;
}

/// Start options for a saved profile and its token; the preferences apply
/// to this copy only, never to the saved profile.
fn start_options(
    profile: &Profile,
    token: Secret,
    settings: &Settings,
) -> Result<StartOptions, CommandError> {
    let invalid = |e: launch::LaunchError| CommandError::invalid(e.to_string());
    let invalid_ht = |e: ht_client::launch::LaunchError| CommandError::invalid(e.to_string());
    match profile {
        Profile::Httvps(saved) => {
            let mut httvps = saved.clone();
            httvps.optimistic_open = settings.fast_connect;
            let transport = launch::transport(&httvps, token, CLIENT_NAME).map_err(invalid)?;
            let mut proxy = launch::proxy_config(&httvps, None).map_err(invalid)?;
            proxy.listen = settings.listen_for(Some(profile));
            Ok(launch::start_options(&httvps, transport, proxy, false))
        }
        Profile::Ht(ht) => {
            use ht_client::launch as ht_launch;
            let transport = ht_launch::transport(ht, token).map_err(invalid_ht)?;
            let mut proxy = ht_launch::proxy_config(ht, None).map_err(invalid_ht)?;
            proxy.listen = settings.listen_for(Some(profile));
            Ok(ht_launch::start_options(ht, transport, proxy, false))
        }
        Profile::Hlhv(p) => Err(CommandError::invalid(format!(
            "profile {:?} publishes a local web app (HLHV): it has no tunnel to connect",
            p.name
        ))),
        Profile::Relay(p) => Err(CommandError::invalid(format!(
            "profile {:?} shares this computer's ports (Relay): start it from the Remote access panel",
            p.name
        ))),
    }
}

/// A transport's name in log sentences ("connecting … over HTTP/3").
fn transport_title(transport: Transport) -> &'static str {
    match transport {
        Transport::H1 => "HTTP/1.1",
        Transport::H3 => "HTTP/3",
        Transport::Auto => "HTTP/3 or HTTP/1.1 (automatic)",
    }
}

/// An engine warning as a log sentence: capitalised, with how to keep the
/// address on this computer.
fn warning_sentence(warning: &engine::Warning) -> String {
    let mut chars = warning.message.chars();
    let message: String = chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    let remedy = match warning.code {
        engine::WarningCode::OpenProxy => {
            "Give the profile a 127.0.0.1 listen address (or none) to keep it on this computer"
        }
        engine::WarningCode::OpenDns => {
            "Set the profile's DNS address to 127.0.0.1 to keep it on this computer"
        }
    };
    format!("{message}. {remedy}.")
}

/// The demo's running parts: a gateway to connect to, a queen that
/// publishes the page, or a relay that shares its port.
enum Demo {
    /// Try the demo (Connect): the tunnel to an embedded gateway.
    Connect {
        /// Boxed: a gateway is much larger than a queen handle.
        gateway: Box<DemoGateway>,
        _page: DemoPage,
    },
    /// Try the demo (Publish): the page published through an embedded queen.
    Publish { queen: DemoQueen, _page: DemoPage },
    /// Try the demo (Remote access): ports shared through an embedded
    /// relay; the page when it is the port shared.
    Share {
        relay: DemoRelay,
        _page: Option<DemoPage>,
    },
}

impl Demo {
    async fn shutdown(self) {
        match self {
            Demo::Connect { gateway, .. } => gateway.shutdown().await,
            Demo::Publish { queen, .. } => queen.shutdown().await,
            Demo::Share { relay, .. } => relay.shutdown().await,
        }
    }
}

struct Inner {
    engine: Engine,
    storage: Arc<dyn SettingsStorage>,
    /// The settings in force. Locked only for a copy or a swap, never across
    /// an await; writers are serialised by `settings_writer`.
    settings: Mutex<Settings>,
    /// Held by the one settings writer (its read, change, save and swap),
    /// including while its save runs on the blocking pool.
    settings_writer: Arc<tokio::sync::Mutex<()>>,
    secrets: Arc<dyn SecretStore>,
    system_proxy: Option<Arc<dyn SystemProxy>>,
    /// Serialises changes to the desktop's proxy settings (apply, restore).
    system_proxy_lock: Arc<tokio::sync::Mutex<()>>,
    autostart: Option<Arc<dyn Autostart>>,
    log: LogBook,
    events: broadcast::Sender<AppEvent>,
    connection: Mutex<Option<Connection>>,
    /// The share's status feed while sharing, and the last status of one
    /// that ended on its own.
    share: Mutex<share::ShareSlot>,
    demo: tokio::sync::Mutex<Option<Demo>>,
    /// The task feeding the window's stream table; a new feed replaces it
    /// (the window reloaded).
    stream_feed: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Serialises connect/disconnect.
    lifecycle: tokio::sync::Mutex<()>,
    /// Set while the user disconnects, so that no notice is shown.
    user_stopping: AtomicBool,
    /// The engine gave up on the user's tunnel: the next network change
    /// connects it again (resume.rs).
    gave_up: AtomicBool,
    /// The task following network changes for that.
    network_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The controller. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

/// What the controller needs from its surroundings.
pub struct Parts {
    /// Where settings are persisted.
    pub storage: Box<dyn SettingsStorage>,
    /// Where tokens are kept (the OS keychain).
    pub secrets: Arc<dyn SecretStore>,
    /// This desktop's proxy settings, if they can be changed.
    pub system_proxy: Option<Box<dyn SystemProxy>>,
    /// Start on login, if the platform supports it.
    pub autostart: Option<Box<dyn Autostart>>,
}

impl Controller {
    /// Loads the settings, restores a system proxy left behind by a crash,
    /// and starts watching the engine. Must run inside a tokio runtime.
    pub fn new(parts: Parts) -> Controller {
        // Before any TLS configuration: the client's provider draws a
        // handshake's random numbers from the operating system, so the first
        // handshake does not wait 30–50 ms for aws-lc to seed its generator
        // (httvps_client::crypto). An existing default is kept.
        let _ = httvps_client::crypto::install_default_provider();
        let (events, _) = broadcast::channel(APP_EVENT_BUFFER);
        let log = LogBook::default();
        let settings = match parts.storage.load() {
            Ok(settings) => settings.unwrap_or_default(),
            Err(e) => {
                log.push(LogEntry::now(
                    LogLevel::Error,
                    Some("settings"),
                    format!("The settings could not be read ({e}); starting with defaults."),
                ));
                Settings::default()
            }
        };
        let controller = Controller {
            inner: Arc::new(Inner {
                engine: Engine::new(),
                storage: Arc::from(parts.storage),
                settings: Mutex::new(settings),
                settings_writer: Arc::new(tokio::sync::Mutex::new(())),
                secrets: parts.secrets,
                system_proxy: parts.system_proxy.map(Arc::from),
                system_proxy_lock: Arc::new(tokio::sync::Mutex::new(())),
                autostart: parts.autostart.map(Arc::from),
                log,
                events,
                connection: Mutex::new(None),
                share: Mutex::new(share::ShareSlot::default()),
                demo: tokio::sync::Mutex::new(None),
                stream_feed: Mutex::new(None),
                lifecycle: tokio::sync::Mutex::new(()),
                user_stopping: AtomicBool::new(false),
                gave_up: AtomicBool::new(false),
                network_task: Mutex::new(None),
            }),
        };
        controller.restore_system_proxy_at_start();
        controller.spawn_watcher();
        controller.watch_network(engine::NetworkChanges::system());
        controller
    }

    /// The engine (for the shell's event forwarding and the tray).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Feeds the live stream table to `sink`: the current table at once, then
    /// every coalesced update while streams move. Stops when `sink` returns
    /// false (the window is gone) or when another feed replaces this one.
    pub fn watch_streams(&self, sink: impl Fn(StreamsUpdate) -> bool + Send + 'static) {
        let engine = self.inner.engine.clone();
        let mut events = engine.subscribe();
        let task = tokio::spawn(async move {
            let snapshot = engine.snapshot();
            let first = StreamsUpdate {
                open: snapshot.open,
                totals: snapshot.totals,
            };
            if !sink(first) {
                return;
            }
            loop {
                let update = match events.recv().await {
                    Ok(EngineEvent::Streams { open, totals }) => StreamsUpdate { open, totals },
                    Ok(_) => continue,
                    // Missed updates are superseded by the next one.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                if !sink(update) {
                    return;
                }
            }
        });
        if let Some(previous) = self.inner.stream_feed.lock().unwrap().replace(task) {
            previous.abort();
        }
    }

    /// Controller events (log lines, notices, changes).
    pub fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.inner.events.subscribe()
    }

    /// A copy of the settings.
    pub fn settings(&self) -> Settings {
        self.inner.settings.lock().unwrap().clone()
    }

    /// Everything the window shows.
    pub async fn overview(&self) -> Overview {
        let settings = self.settings();
        let secrets = self.inner.secrets.clone();
        let profiles = settings.profiles.clone();
        // Keychain look-ups block on D-Bus: off the async threads.
        let views = tokio::task::spawn_blocking(move || {
            profiles
                .iter()
                .filter_map(|p| {
                    let signed_in = p
                        .token_kind()
                        .ok()
                        .and_then(|kind| secrets.get(&account(p.name(), kind)).ok().flatten())
                        .is_some();
                    ProfileView::of(p, signed_in)
                })
                .collect()
        })
        .await
        .unwrap_or_default();
        Overview {
            protocols: registry(),
            profiles: views,
            selected: settings.current_profile().map(|p| p.name().to_owned()),
            preferences: Preferences::of(&settings),
            system_proxy_available: self.inner.system_proxy.is_some(),
            snapshot: self.inner.engine.snapshot(),
            connection: self.inner.connection.lock().unwrap().clone(),
            share: self.share_status(),
            log: self.inner.log.entries(),
        }
    }

    /// Connects with the selected profile.
    pub async fn connect(&self) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        self.inner.gave_up.store(false, Ordering::SeqCst);
        self.wind_down_finished().await;
        let settings = self.settings();
        let profile = settings.current_profile().cloned().ok_or_else(|| {
            CommandError::new(
                CommandCode::NoProfile,
                "add a profile (or try the demo) first",
            )
        })?;
        let kind = profile
            .token_kind()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        let account_name = account(profile.name(), kind);
        let token = self
            .keychain(move |secrets| secrets.get(&account_name))
            .await?
            .ok_or_else(|| {
                CommandError::new(
                    CommandCode::NotSignedIn,
                    format!("sign in to {:?} first: enter its token", profile.name()),
                )
            })?;
        let options = start_options(&profile, token, &settings)?;
        self.start_engine(
            options,
            Connection::Profile {
                name: profile.name().to_owned(),
                transport: match &profile {
                    Profile::Httvps(p) => Some(p.transport),
                    Profile::Ht(_) | Profile::Hlhv(_) | Profile::Relay(_) => None,
                },
            },
        )
        .await?;
        if let Some(listen) = profile.dns_listen() {
            match self
                .inner
                .engine
                .serve_dns(listen, DnsLimits::default())
                .await
            {
                Ok(addr) => self.log(
                    LogLevel::Info,
                    None,
                    format!("DNS on {addr} (UDP and TCP), answered through the tunnel."),
                ),
                Err(e) => {
                    self.inner.engine.stop().await;
                    *self.inner.connection.lock().unwrap() = None;
                    return Err(CommandError::new(
                        CommandCode::ListenFailed,
                        format!("cannot serve DNS: {e}; change the profile's DNS address"),
                    ));
                }
            }
        }
        self.log_warnings();
        Ok(self.overview().await)
    }

    /// Starts the embedded demo gateway and connects to it.
    pub async fn start_demo(&self) -> Result<Overview, CommandError> {
        let _guard = self.inner.lifecycle.lock().await;
        self.wind_down_finished().await;
        let demo_error = |e: String| CommandError::new(CommandCode::DemoFailed, e);
        let gateway = DemoGateway::start(([127, 0, 0, 1], 0).into())
            .await
            .map_err(|e| demo_error(e.to_string()))?;
        let page = DemoPage::start()
            .await
            .map_err(|e| demo_error(format!("cannot serve the demo page: {e}")))?;
        let connection = Connection::Demo {
            gateway: format!("wss://{}/ws", gateway.addr()),
            page: page.url(),
        };
        let settings = self.settings();
        let options = gateway.start_options(settings.listen_for(None), settings.fast_connect);
        if let Err(e) = self.start_engine(options, connection).await {
            gateway.shutdown().await;
            return Err(e);
        }
        *self.inner.demo.lock().await = Some(Demo::Connect {
            gateway: Box::new(gateway),
            _page: page,
        });
        self.log_warnings();
        Ok(self.overview().await)
    }

    async fn start_engine(
        &self,
        options: StartOptions,
        connection: Connection,
    ) -> Result<(), CommandError> {
        match self.inner.engine.start(options).await {
            Ok(addr) => {
                let what = match &connection {
                    Connection::Profile {
                        name,
                        transport: None | Some(Transport::H1),
                    } => format!("profile {name:?}"),
                    Connection::Profile {
                        name,
                        transport: Some(transport),
                    } => format!("profile {name:?} over {}", transport_title(*transport)),
                    Connection::Demo { .. } => "the demo gateway".to_owned(),
                    Connection::Publish { .. } | Connection::Share { .. } => {
                        unreachable!("publications and shares do not start in `start_engine`")
                    }
                };
                *self.inner.connection.lock().unwrap() = Some(connection);
                self.log(
                    LogLevel::Info,
                    None,
                    format!("Local proxy on {addr} (SOCKS5 and HTTP); connecting with {what}."),
                );
                let _ = self.inner.events.send(AppEvent::Changed);
                Ok(())
            }
            Err(EngineError::AlreadyRunning) => Err(self.slot_taken()),
            Err(e @ EngineError::Listen { .. }) => Err(CommandError::new(
                CommandCode::ListenFailed,
                format!("{e}; choose another proxy port in Settings"),
            )),
            Err(e) => Err(CommandError::new(CommandCode::Engine, e.to_string())),
        }
    }

    /// Disconnects: closes the tunnel and the local proxy, puts the
    /// desktop's proxy settings back, stops the demo.
    pub async fn disconnect(&self) -> Overview {
        let _guard = self.inner.lifecycle.lock().await;
        self.inner.gave_up.store(false, Ordering::SeqCst);
        self.inner.user_stopping.store(true, Ordering::SeqCst);
        let was_connected = self.wind_down().await;
        if was_connected {
            self.log(LogLevel::Info, None, "Disconnected.");
        }
        self.inner.user_stopping.store(false, Ordering::SeqCst);
        self.overview().await
    }

    /// Stops the engine and what belongs to the connection; returns whether
    /// something was connected. Callers hold the lifecycle lock.
    async fn wind_down(&self) -> bool {
        // Whether a share's publication exists, so stopping ends its driver.
        let was_active = self.inner.engine.state().is_active();
        self.inner.engine.stop().await;
        self.restore_system_proxy().await;
        self.end_share(was_active).await;
        if let Some(demo) = self.inner.demo.lock().await.take() {
            demo.shutdown().await;
        }
        let was = self.inner.connection.lock().unwrap().take();
        let _ = self.inner.events.send(AppEvent::Changed);
        was.is_some()
    }

    /// If the engine ended the session on its own (refused, gave up; it has
    /// released its run and proxy port already), winds down what belongs to
    /// that connection: the system proxy, the demo, the connection record.
    /// The final state (and its reason) stays on display. Callers hold the
    /// lifecycle lock, so a run started meanwhile is never touched.
    async fn wind_down_finished(&self) {
        if self.inner.engine.is_running() {
            return;
        }
        let connected = self.inner.connection.lock().unwrap().is_some();
        if connected || self.inner.demo.lock().await.is_some() {
            self.wind_down().await;
        }
    }

    /// The engine ended the session on its own: wind the connection down
    /// promptly (Connect does it too, so it never has to wait for this).
    fn spawn_wind_down(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = this.inner.lifecycle.lock().await;
            this.wind_down_finished().await;
        });
    }

    /// Changes the preferences; system proxy and autostart take effect at
    /// once, the proxy port and fast connect at the next Connect.
    pub async fn set_preferences(&self, prefs: Preferences) -> Result<Overview, CommandError> {
        if prefs.proxy_port == 0 {
            return Err(CommandError::invalid("the proxy port must be 1–65535"));
        }
        if prefs.system_proxy && self.inner.system_proxy.is_none() {
            return Err(CommandError::new(
                CommandCode::Unsupported,
                "this desktop's proxy settings cannot be changed (no GNOME, KDE, macOS or Windows settings found)",
            ));
        }
        let before = Preferences::of(&self.settings());
        if prefs.autostart != before.autostart {
            match self.inner.autostart.clone() {
                Some(a) => {
                    let enabled = prefs.autostart;
                    blocking(move || a.set(enabled))
                        .await
                        .map_err(|e| CommandError::new(CommandCode::Autostart, e))?
                }
                None => {
                    return Err(CommandError::new(
                        CommandCode::Unsupported,
                        "start on login is not available here",
                    ));
                }
            }
        }
        self.update_settings(|s| {
            s.proxy_port = prefs.proxy_port;
            s.start_minimized = prefs.start_minimized;
            s.autostart = prefs.autostart;
            s.system_proxy = prefs.system_proxy;
            s.fast_connect = prefs.fast_connect;
            Ok(())
        })
        .await?;
        if self.inner.engine.state().is_active() {
            if prefs.system_proxy {
                self.apply_system_proxy().await;
            } else {
                self.restore_system_proxy().await;
            }
        }
        if prefs.proxy_port != before.proxy_port && self.inner.engine.proxy_addr().is_some() {
            self.log(
                LogLevel::Info,
                None,
                "The new proxy port applies at the next Connect.",
            );
        }
        if prefs.fast_connect != before.fast_connect && self.inner.engine.proxy_addr().is_some() {
            self.log(
                LogLevel::Info,
                None,
                "Fast connect applies at the next Connect.",
            );
        }
        Ok(self.overview().await)
    }

    /// On quit: disconnect and put the desktop's proxy settings back.
    pub async fn shutdown(&self) {
        self.disconnect().await;
    }

    /// The saved profile the engine's run belongs to (a tunnel's or a
    /// publication's).
    fn connected_profile(&self) -> Option<String> {
        match &*self.inner.connection.lock().unwrap() {
            Some(Connection::Profile { name, .. })
            | Some(Connection::Publish {
                name: Some(name), ..
            })
            | Some(Connection::Share {
                name: Some(name), ..
            }) => Some(name.clone()),
            _ => None,
        }
    }

    /// Whether the engine's run is a publication.
    fn is_publishing(&self) -> bool {
        self.inner
            .connection
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(Connection::is_publish)
    }

    /// Whether the engine's run is a share.
    fn is_sharing(&self) -> bool {
        self.inner
            .connection
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(Connection::is_share)
    }

    /// What the tray shows now: the engine's snapshot, as a tunnel, a
    /// publication or a share (with the share's own status).
    pub fn tray_summary(&self) -> TraySummary {
        let snapshot = self.inner.engine.snapshot();
        match self.share_status() {
            Some(status) if self.is_sharing() => TraySummary::of_share(&snapshot, &status),
            _ => TraySummary::for_run(&snapshot, self.is_publishing()),
        }
    }

    /// The error when the engine's one run slot is taken: what holds it
    /// and how to free it.
    fn slot_taken(&self) -> CommandError {
        let message = if self.is_publishing() {
            "a web app is being published; stop publishing first (the app runs one tunnel, publication or share at a time)"
        } else if self.is_sharing() {
            "this computer's ports are being shared; stop sharing first (the app runs one tunnel, publication or share at a time)"
        } else {
            "the tunnel is already running; disconnect first (the app runs one tunnel, publication or share at a time)"
        };
        CommandError::new(CommandCode::AlreadyRunning, message)
    }

    /// Runs a keychain call on the blocking pool (the Secret Service is a
    /// blocking D-Bus client); its failure is a `keychain` error.
    async fn keychain<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn SecretStore) -> Result<T, profiles::SecretError> + Send + 'static,
    ) -> Result<T, CommandError> {
        let secrets = self.inner.secrets.clone();
        let keychain_error = |e: String| CommandError::new(CommandCode::Keychain, e);
        tokio::task::spawn_blocking(move || call(secrets.as_ref()))
            .await
            .map_err(|e| keychain_error(e.to_string()))?
            .map_err(|e| keychain_error(e.to_string()))
    }

    /// Applies a change to the settings and persists it; nothing changes if
    /// `change` fails or the settings cannot be saved. The save runs on the
    /// blocking pool; writers queue on `settings_writer` (a tokio lock), and
    /// the std lock on the settings is only taken for a copy and the swap.
    async fn update_settings(
        &self,
        change: impl FnOnce(&mut Settings) -> Result<(), CommandError>,
    ) -> Result<(), CommandError> {
        let writer = self.inner.settings_writer.clone().lock_owned().await;
        let mut next = self.settings();
        change(&mut next)?;
        let inner = self.inner.clone();
        // The swap happens with the save, on the blocking thread, and the
        // writer lock moves there too: even if this future is dropped midway,
        // the saved and the in-memory settings agree and no writer overlaps.
        let saved = tokio::task::spawn_blocking(move || {
            let _writer = writer;
            inner.storage.save(&next)?;
            *inner.settings.lock().unwrap() = next;
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|saved| saved);
        saved.map_err(|e| {
            CommandError::new(
                CommandCode::Settings,
                format!("cannot save the settings: {e}"),
            )
        })?;
        let _ = self.inner.events.send(AppEvent::Changed);
        Ok(())
    }

    /// Logs what the new run exposes (a proxy or DNS server open to the
    /// network, see [`engine::Warning`]); the overview's snapshot keeps
    /// showing it while the run lasts.
    fn log_warnings(&self) {
        for warning in self.inner.engine.warnings() {
            self.log(
                LogLevel::Warn,
                Some(warning.code.as_str()),
                warning_sentence(&warning),
            );
        }
    }

    fn log(&self, level: LogLevel, code: Option<&str>, message: impl Into<String>) {
        let entry = LogEntry::now(level, code, message);
        self.inner.log.push(entry.clone());
        let _ = self.inner.events.send(AppEvent::Log(entry));
    }
}

/// Runs a blocking call (the desktop's settings, autostart) on the blocking
/// pool.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| e.to_string())
        .and_then(|result| result)
}
