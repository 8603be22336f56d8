//! The httvps desktop app: a thin Tauri shell over `app::Controller`.
//!
//! - `commands`: what the window may call, one line each into the controller.
//! - Events: engine events are emitted as `httvps://engine`, controller
//!   events as `httvps://app` (types generated into `ui/src/bindings.ts`);
//!   the high-rate stream table goes over the `watch_streams` channel instead.
//! - `tray`: the tray icon and menu. Closing the window releases it
//!   (`window`); the app keeps running in the tray until Quit.
//! - Plugins: store (settings), single instance (a second launch focuses the
//!   first), autostart, notifications.

mod commands;
mod storage;
mod tray;
mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::{AppEvent, Autostart, Controller, Parts};
use engine::EngineEvent;
use profiles::{KeyringStore, SecretStore};
use tauri::{AppHandle, Emitter, Manager, RunEvent, WindowEvent};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;

/// The argument autostart launches us with.
const MINIMIZED_ARG: &str = "--minimized";

/// With this argument and no profile configured, the app starts the embedded
/// demo at launch (scripts/run uses it: a newcomer sees a working tunnel at
/// once).
const DEMO_ARG: &str = "--demo";

/// The event names (`app::bindings::EVENTS`).
const ENGINE_EVENT: &str = "httvps://engine";
const APP_EVENT: &str = "httvps://app";

/// How often the tray's rates may be redrawn.
const TRAY_REFRESH: Duration = Duration::from_secs(1);

/// Shows a desktop notification (quietly does nothing without a
/// notification service).
pub fn notify(app: &AppHandle, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!("notification not shown: {e}");
    }
}

/// Start on login through tauri-plugin-autostart.
struct PluginAutostart(AppHandle);

impl Autostart for PluginAutostart {
    fn set(&self, enabled: bool) -> Result<(), String> {
        let launcher = self.0.autolaunch();
        let result = if enabled {
            launcher.enable()
        } else {
            launcher.disable()
        };
        result.map_err(|e| e.to_string())
    }
}

fn keychain() -> Arc<dyn SecretStore> {
    let service = std::env::var("HTTVPS_KEYRING_SERVICE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| profiles::KEYRING_SERVICE.to_owned());
    Arc::new(KeyringStore::with_service(service))
}

/// Forwards engine and controller events to the window, the tray and the
/// notification service.
fn forward_events(app: &AppHandle, controller: &Controller) {
    let mut engine_events = controller.engine().subscribe();
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut last_tray = Instant::now() - TRAY_REFRESH;
        loop {
            let event = match engine_events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let urgent = !matches!(event, EngineEvent::Streams { .. });
            if urgent {
                // Stream counters reach the window through its channel.
                let _ = handle.emit(ENGINE_EVENT, &event);
            }
            if urgent || last_tray.elapsed() >= TRAY_REFRESH {
                last_tray = Instant::now();
                tray::refresh(&handle);
            }
        }
    });
    let mut app_events = controller.subscribe();
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = match app_events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let _ = handle.emit(APP_EVENT, &event);
            match &event {
                AppEvent::Notice(notice) => notify(&handle, &notice.title, &notice.body),
                // The share's state and traffic: the tray shows them.
                AppEvent::Changed | AppEvent::Share(_) => tray::refresh(&handle),
                AppEvent::Log(_) => {}
            }
        }
    });
}

/// Logs on stderr, filtered by `HTTVPS_LOG` (default `info`) under
/// [`net::log_filter`]'s cap: the WebSocket library never logs above DEBUG,
/// since at TRACE it prints every frame, the hello with the session token
/// included.
fn init_logging() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(net::log_filter::from_env("HTTVPS_LOG", "info"));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Runs the app until Quit.
pub fn run() {
    window::prefer_software_drawing();
    init_logging();
    let minimized_arg = std::env::args().any(|a| a == MINIMIZED_ARG);
    let demo_arg = std::env::args().any(|a| a == DEMO_ARG);
    let app = tauri::Builder::default()
        // First, so that a second launch exits before doing anything else.
        // A second launch shows this one's window, or with `--minimized`
        // sends it to the tray.
        .plugin(tauri_plugin_single_instance::init(|app, args, _cwd| {
            if args.iter().any(|a| a == MINIMIZED_ARG) && app.tray_by_id(tray::TRAY_ID).is_some() {
                window::release(app);
            } else {
                window::show(app);
            }
        }))
        .plugin(tauri_plugin_store::Builder::default().build())
        .plugin(tauri_plugin_autostart::init(
            MacosLauncher::LaunchAgent,
            Some(vec![MINIMIZED_ARG]),
        ))
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            let handle = app.handle().clone();
            let storage: Box<dyn app::SettingsStorage> = match storage::PluginStorage::open(&handle)
            {
                Ok(storage) => Box::new(storage),
                Err(e) => {
                    tracing::error!("{e}; settings will not be saved this run");
                    Box::new(app::MemoryStorage::default())
                }
            };
            let parts = Parts {
                storage,
                secrets: keychain(),
                system_proxy: app::sysproxy::detect(),
                autostart: Some(Box::new(PluginAutostart(handle.clone()))),
            };
            // The controller spawns its watcher on Tauri's tokio runtime.
            let controller = tauri::async_runtime::block_on(async { Controller::new(parts) });
            let start_minimized = minimized_arg || controller.settings().start_minimized;
            app.manage(controller.clone());
            forward_events(&handle, &controller);
            if demo_arg && controller.settings().profiles.is_empty() {
                let demo = controller.clone();
                tauri::async_runtime::spawn(async move {
                    if let Err(e) = demo.start_demo().await {
                        tracing::error!("the demo did not start: {e}");
                    }
                });
            }
            // The window is built only when shown (`window`): started
            // minimized, the app never loads a web view until asked.
            if let Err(e) = tray::create(&handle) {
                // Without a tray the window is the only way in: never hide it.
                tracing::warn!("no tray icon: {e}");
                window::show(&handle);
            } else if !start_minimized {
                window::show(&handle);
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::Destroyed = event {
                window::destroyed(window.app_handle());
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::overview,
            commands::save_profile,
            commands::remove_profile,
            commands::select_profile,
            commands::sign_in,
            commands::sign_out,
            commands::connect,
            commands::start_demo,
            commands::disconnect,
            commands::publish,
            commands::start_publish_demo,
            commands::stop_publishing,
            commands::share,
            commands::share_demo,
            commands::stop_share,
            commands::set_preferences,
            commands::share_link,
            commands::add_from_link,
            commands::routing_rules,
            commands::save_routing_rules,
            commands::test_route,
            commands::close_stream,
            commands::export_log,
            commands::watch_streams,
        ])
        .build(tauri::generate_context!())
        .expect("error while building the httvps app");
    app.run(|app, event| match event {
        // Closing the window destroys it (and its web view, see `window`);
        // with a tray the app, the tunnel and the tray stay. Quit asks to
        // exit with a code and goes through.
        RunEvent::ExitRequested {
            code: None, api, ..
        } if app.tray_by_id(tray::TRAY_ID).is_some() => {
            api.prevent_exit();
            tracing::info!("the window is closed; running in the tray");
        }
        RunEvent::Exit => {
            // Quit: close the tunnel and put the system proxy back.
            let controller = app.state::<Controller>().inner().clone();
            tauri::async_runtime::block_on(controller.shutdown());
        }
        _ => {}
    });
}
