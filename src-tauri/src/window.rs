//! The main window, built when it is shown and destroyed when it is hidden.
//!
//! Why: the web view is most of the app's memory. Measured with the release
//! build idle under `--demo` (bench/README.md, "The quiet app"): with the
//! window open, its web process held 180 MiB resident and WebKit's network
//! process 61 MiB, against 82 MiB for the whole app started in the tray. So closing the window
//! (or autostart's `--minimized`) releases the web view and everything it
//! drew, as the lightweight modes of other proxy clients do; showing it
//! builds a fresh one from `tauri.conf.json` (`create: false` there), which
//! reads the whole state back from the controller (`overview`,
//! `watch_streams`): nothing the window showed lives only in the window.

use tauri::{AppHandle, Manager, WebviewWindow, WebviewWindowBuilder};

/// The window's label in `tauri.conf.json`.
pub const MAIN: &str = "main";

/// Shows, restores and focuses the main window, building it first when it
/// was released.
pub fn show(app: &AppHandle) {
    let window = match app.get_webview_window(MAIN) {
        Some(window) => window,
        None => match build(app) {
            Ok(window) => window,
            Err(e) => {
                tracing::error!("cannot open the window: {e}");
                return;
            }
        },
    };
    let _ = window.show();
    let _ = window.unminimize();
    let _ = window.set_focus();
}

/// Destroys the main window and its web view; the app keeps running in the
/// tray.
pub fn release(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN)
        && let Err(e) = window.destroy()
    {
        tracing::warn!("cannot close the window: {e}");
    }
}

/// After the window is gone (closed by the user or released): what it
/// alone needed goes too.
pub fn destroyed(app: &AppHandle) {
    #[cfg(target_os = "linux")]
    stop_network_process_later(app);
    #[cfg(not(target_os = "linux"))]
    let _ = app;
}

fn build(app: &AppHandle) -> tauri::Result<WebviewWindow> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == MAIN)
        .cloned()
        .ok_or_else(|| tauri::Error::WindowNotFound)?;
    WebviewWindowBuilder::from_config(app, &config)?.build()
}

/// Stops WebKit's network process once no web view is left, a moment after
/// the window is destroyed. WebKit keeps that process for the app's life
/// (tauri-runtime-wry keeps the web context alive on Linux for the same
/// reason) although it serves only the web views; it holds 62 MiB resident.
/// WebKit starts a new one with the next web view, as it does after a crash
/// of that process (the end-to-end test shows the window again after this).
#[cfg(target_os = "linux")]
fn stop_network_process_later(app: &AppHandle) {
    let app = app.clone();
    std::thread::spawn(move || {
        // The web view is torn down over the next turns of the event loop.
        std::thread::sleep(std::time::Duration::from_secs(1));
        if app.get_webview_window(MAIN).is_some() {
            return; // shown again meanwhile
        }
        for pid in children_named(std::process::id(), "WebKitNetworkPr") {
            // SAFETY: a plain kill(2) of our own child process.
            if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
                tracing::debug!(pid, "stopped WebKit's network process");
            }
        }
    });
}

/// Our child processes whose command name (`/proc/PID/comm`, at most 15
/// bytes) is `comm`.
#[cfg(target_os = "linux")]
fn children_named(parent: u32, comm: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map(|(_, n)| n);
            let ppid = tail
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            name == Some(comm) && ppid == Some(parent)
        })
        .collect()
}

/// Draws without OpenGL unless the user chose otherwise (either variable
/// set either way). The window is a few tables and forms: GPU compositing
/// buys it nothing visible and costs the most of anything idle. Measured
/// with the release app idle under `--demo` (bench/README.md, "The quiet
/// app"): with WebKit's compositing off, the web process held 294 → 184 MiB
/// and the app's idle CPU with the window open fell 4.7 % → 1.2 % of a core
/// (the rest went when the window stopped redrawing unchanged text, see
/// ui/src/dom.ts); with GTK's GL off, the app started in the tray holds 137
/// → 84 MiB (GTK otherwise loads Mesa and LLVM at start to choose a visual).
///
/// Must run before any thread starts (it writes the environment).
pub fn prefer_software_drawing() {
    #[cfg(target_os = "linux")]
    for (name, value) in [
        ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
        ("GDK_GL", "disable"),
    ] {
        if std::env::var_os(name).is_none() {
            // SAFETY: called first thing in `run`, while the process has
            // one thread, so nothing reads the environment concurrently.
            unsafe { std::env::set_var(name, value) };
        }
    }
}
