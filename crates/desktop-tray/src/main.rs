//! `httvps-tray`: the desktop app's long-lived process (see the crate doc).
//!
//! Usage: `httvps-tray [--minimized] [--demo]`. Started by the window binary
//! (`httvps-desktop`) when it finds no tray running, by the login item with
//! `--minimized`, or by hand. `--demo` starts the embedded demo when no
//! profile is configured. A second launch shows the running app's window
//! (with `--minimized`, it does nothing) and exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::remote::hub::{self, Bound, Hub, WindowLauncher};
use app::remote::{APP_EVENT, ENGINE_EVENT, client};
use app::{AppEvent, Controller, Parts};
use desktop_tray::autostart::LoginItem;
use desktop_tray::notify::notify;
use desktop_tray::storage::FileStorage;
use desktop_tray::tray::{self, TrayShell};
use engine::EngineEvent;
use profiles::{KeyringStore, SecretStore};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

/// The argument autostart launches us with: no window.
const MINIMIZED_ARG: &str = "--minimized";
/// Start the embedded demo when no profile is configured.
const DEMO_ARG: &str = "--demo";
/// Overrides where the window binary is (default: beside this one).
const WINDOW_BIN_ENV: &str = "HTTVPS_WINDOW_BIN";
/// How often the tray's rates may be redrawn.
const TRAY_REFRESH: Duration = Duration::from_secs(1);

fn main() -> std::process::ExitCode {
    // HTTVPS_LOG (default info), under net::log_filter's cap: the
    // WebSocket library never above DEBUG (at TRACE it logs the token).
    net::log_filter::init_stderr("HTTVPS_LOG", "info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    for arg in &args {
        if ![MINIMIZED_ARG, DEMO_ARG, client::READY_ARG].contains(&arg.as_str()) {
            eprintln!(
                "httvps-tray: unknown argument {arg:?}\nusage: httvps-tray [--minimized] [--demo]"
            );
            return std::process::ExitCode::from(2);
        }
    }
    let options = Options {
        minimized: flag(MINIMIZED_ARG),
        demo: flag(DEMO_ARG),
        print_ready: flag(client::READY_ARG),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("httvps-tray: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Options {
    minimized: bool,
    demo: bool,
    print_ready: bool,
}

fn ready(options: &Options) {
    if options.print_ready {
        println!("{}", client::READY_LINE);
    }
}

async fn run(options: Options) -> Result<(), String> {
    let socket = app::remote::default_socket();
    let listener = match hub::bind(&socket) {
        Ok(Bound::Listening(listener)) => listener,
        Ok(Bound::AlreadyRunning) => {
            // A second launch: the running app shows its window (a plain
            // launch) or stays as it is (`--minimized`).
            ready(&options);
            if !options.minimized {
                WindowBinary::beside_this_exe()
                    .launch_window()
                    .map_err(|e| format!("cannot open the window: {e}"))?;
            }
            tracing::info!("httvps is already running");
            return Ok(());
        }
        Err(e) => return Err(format!("cannot listen on {}: {e}", socket.display())),
    };
    let storage: Box<dyn app::SettingsStorage> = match FileStorage::open_default() {
        Ok(storage) => Box::new(storage),
        Err(e) => {
            tracing::error!("{e}; settings will not be saved this run");
            Box::new(app::MemoryStorage::default())
        }
    };
    let autostart: Option<Box<dyn app::Autostart>> = match LoginItem::for_this_exe() {
        Ok(item) => Some(Box::new(item)),
        Err(e) => {
            tracing::warn!("start on login unavailable: {e}");
            None
        }
    };
    let controller = Controller::new(Parts {
        storage,
        secrets: keychain(),
        system_proxy: app::sysproxy::detect(),
        autostart,
    });
    let hub = Hub::new(
        controller.clone(),
        Box::new(WindowBinary::beside_this_exe()),
    );
    tokio::spawn(hub.clone().serve(listener));
    ready(&options);

    let quit = Arc::new(Notify::new());
    let shell = Arc::new(Shell {
        hub: hub.clone(),
        quit: quit.clone(),
    });
    let tray = match tray::spawn(controller.clone(), shell).await {
        Ok(tray) => Some(tray),
        Err(e) => {
            tracing::warn!("no tray icon: {e}");
            None
        }
    };
    forward_events(&controller, &hub, tray.clone());
    if options.demo && controller.settings().profiles.is_empty() {
        let demo = controller.clone();
        tokio::spawn(async move {
            if let Err(e) = demo.start_demo().await {
                tracing::error!("the demo did not start: {e}");
            }
        });
    }
    let start_minimized = options.minimized || controller.settings().start_minimized;
    // Without a tray the window is the only way in: it is shown, and the
    // app ends with it.
    if tray.is_none() || !start_minimized {
        hub.show_window();
    }
    let mut windows = hub.window_presence();
    let window_gone_without_tray = async {
        if tray.is_some() {
            return std::future::pending().await;
        }
        let _ = windows.wait_for(|open| *open).await;
        let _ = windows.wait_for(|open| !*open).await;
    };
    tokio::select! {
        _ = quit.notified() => tracing::info!("quit"),
        _ = window_gone_without_tray => tracing::info!("the window closed and there is no tray: quitting"),
        _ = terminated() => tracing::info!("terminated"),
    }
    hub.close_window();
    // Close the tunnel and put the system proxy back.
    controller.shutdown().await;
    if let Some(tray) = tray {
        tray.shutdown().await;
    }
    Ok(())
}

/// SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn keychain() -> Arc<dyn SecretStore> {
    let service = std::env::var("HTTVPS_KEYRING_SERVICE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| profiles::KEYRING_SERVICE.to_owned());
    Arc::new(KeyringStore::with_service(service))
}

/// What the tray menu's Show and Quit do.
struct Shell {
    hub: Arc<Hub>,
    quit: Arc<Notify>,
}

impl TrayShell for Shell {
    fn show_window(&self) {
        self.hub.show_window();
    }

    fn quit(&self) {
        self.quit.notify_one();
    }
}

/// The window binary, `httvps-desktop`, beside this one (or
/// `$HTTVPS_WINDOW_BIN`).
struct WindowBinary(PathBuf);

impl WindowBinary {
    fn beside_this_exe() -> WindowBinary {
        WindowBinary(app::remote::sibling_binary(
            WINDOW_BIN_ENV,
            "httvps-desktop",
        ))
    }
}

impl WindowLauncher for WindowBinary {
    fn launch_window(&self) -> std::io::Result<()> {
        let mut child = std::process::Command::new(&self.0)
            .stdin(std::process::Stdio::null())
            .spawn()?;
        // Reaped when it ends (no zombie while the tray runs on).
        std::thread::spawn(move || child.wait());
        Ok(())
    }
}

/// Forwards engine and controller events to the window, the tray and the
/// notification service.
fn forward_events(controller: &Controller, hub: &Arc<Hub>, tray: Option<tray::Tray>) {
    let mut engine_events = controller.engine().subscribe();
    let (to_window, to_tray) = (hub.clone(), tray.clone());
    tokio::spawn(async move {
        let mut last_tray = Instant::now() - TRAY_REFRESH;
        loop {
            let event = match engine_events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let urgent = !matches!(event, EngineEvent::Streams { .. });
            if urgent {
                // Stream counters reach the window through its feed.
                to_window.emit(ENGINE_EVENT, &event);
            }
            if urgent || last_tray.elapsed() >= TRAY_REFRESH {
                last_tray = Instant::now();
                if let Some(tray) = &to_tray {
                    tray.refresh();
                }
            }
        }
    });
    let mut app_events = controller.subscribe();
    let to_window = hub.clone();
    tokio::spawn(async move {
        loop {
            let event = match app_events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            to_window.emit(APP_EVENT, &event);
            match &event {
                AppEvent::Notice(notice) => notify(&notice.title, &notice.body),
                // The share's state and traffic: the tray shows them.
                AppEvent::Changed | AppEvent::Share(_) => {
                    if let Some(tray) = &tray {
                        tray.refresh();
                    }
                }
                AppEvent::Log(_) => {}
            }
        }
    });
}
