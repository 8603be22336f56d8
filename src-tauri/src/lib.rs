//! The httvps window: a thin Tauri shell, in its own process, over the
//! controller that runs in the tray process (`httvps-tray`, crates/desktop-tray).
//!
//! A launch reaches the tray over `app::remote` (starting it when it is not
//! running) and says what it wants: a plain launch shows the window (this
//! process hosts it, unless the app has one open already, which is then
//! focused), `--minimized` keeps the app in the tray (closing its window).
//! This process ends with its window; the tunnel and the tray stay.
//!
//! - `commands`: what the page may call, each forwarded to the controller.
//! - Events: what the tray pushes (`httvps://engine`, `httvps://app`) is
//!   emitted to the page as it came; the stream table goes over the
//!   `watch_streams` channel.
//! - `window`: the window, built at start from tauri.conf.json.

mod commands;
mod window;

use app::remote::client::{self, Opened, Push};
use tauri::{AppHandle, Emitter, Manager, WindowEvent};
use tokio::sync::mpsc::UnboundedReceiver;

/// Autostart's argument: the app in the tray, no window.
const MINIMIZED_ARG: &str = "--minimized";

/// With this argument and no profile configured, the app starts the embedded
/// demo at launch (scripts/run uses it: a newcomer sees a working tunnel at
/// once). Passed on to the tray process when this launch starts it.
const DEMO_ARG: &str = "--demo";

/// Overrides where the tray binary is (default: beside this one).
const TRAY_BIN_ENV: &str = "HTTVPS_TRAY_BIN";

/// Runs a launch: returns when the window is closed, or at once when the
/// tray did what the launch asked.
pub fn run() {
    window::prefer_software_drawing();
    // HTTVPS_LOG (default info), under net::log_filter's cap.
    net::log_filter::init_stderr("HTTVPS_LOG", "info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let minimized = args.iter().any(|a| a == MINIMIZED_ARG);
    // The tray we may start never opens a window itself: this launch does.
    let mut tray_args = vec![MINIMIZED_ARG];
    if args.iter().any(|a| a == DEMO_ARG) {
        tray_args.push(DEMO_ARG);
    }
    let socket = app::remote::default_socket();
    let opened = tauri::async_runtime::block_on(client::launch(
        &socket,
        &app::remote::sibling_binary(TRAY_BIN_ENV, "httvps-tray"),
        &tray_args,
        minimized,
    ));
    let (remote, pushes) = match opened {
        Ok(Opened::Host(remote, pushes)) => (remote, pushes),
        Ok(Opened::Done) => return,
        Err(e) => {
            tracing::error!("cannot reach the app's tray process: {e}");
            std::process::exit(1);
        }
    };
    let app = tauri::Builder::default()
        .manage(remote)
        .manage(commands::StreamFeed::default())
        .setup(move |app| {
            let handle = app.handle().clone();
            window::show(&handle);
            tauri::async_runtime::spawn(follow_the_tray(handle, pushes));
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::Destroyed = event {
                // The window is this process's only reason to run.
                window.app_handle().exit(0);
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
        .expect("error while building the httvps window");
    app.run(|_, _| {});
}

/// What the tray pushes, to the page and the window.
async fn follow_the_tray(app: AppHandle, mut pushes: UnboundedReceiver<Push>) {
    while let Some(push) = pushes.recv().await {
        match push {
            Push::Event { name, payload } => {
                let _ = app.emit(&name, payload);
            }
            Push::Streams(update) => {
                let feed = app.state::<commands::StreamFeed>();
                let feed = feed.0.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(channel) = feed.as_ref() {
                    let _ = channel.send(update);
                }
            }
            Push::Focus => window::show(&app),
            Push::Close => app.exit(0),
            Push::Gone => {
                tracing::info!("the tray process ended; closing the window");
                app.exit(0);
            }
        }
    }
}
