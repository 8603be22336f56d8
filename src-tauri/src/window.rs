//! The main window, built when the process starts (`create: false` in
//! tauri.conf.json: this process is started to show it, see the crate doc).
//! Everything it shows is read back from the controller in the tray process
//! (`overview`, `watch_streams`), so closing it, which ends this process
//! and its WebKit processes, loses nothing.

use tauri::{AppHandle, Manager, WebviewWindow, WebviewWindowBuilder};

/// The window's label in `tauri.conf.json`.
pub const MAIN: &str = "main";

/// Shows, restores and focuses the main window, building it first.
pub fn show(app: &AppHandle) {
    let window = match app.get_webview_window(MAIN) {
        Some(window) => window,
        None => match build(app) {
            Ok(window) => window,
            Err(e) => {
                tracing::error!("cannot open the window: {e}");
                app.exit(1);
                return;
            }
        },
    };
    let _ = window.show();
    let _ = window.unminimize();
    let _ = window.set_focus();
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

/// Draws without OpenGL unless the user chose otherwise (either variable
/// set either way). The window is a few tables and forms: GPU compositing
/// buys it nothing visible and costs the most of anything idle. Measured
/// with the release app idle under `--demo` (bench/README.md, "The quiet
/// app"): with WebKit's compositing off, the web process held 294 → 184 MiB
/// and the app's idle CPU with the window open fell 4.7 % → 1.2 % of a core
/// (the rest went when the window stopped redrawing unchanged text, see
/// ui/src/dom.ts); with GTK's GL off, the single-process app started in the
/// tray held 137 → 84 MiB (GTK otherwise loads Mesa and LLVM at start to
/// choose a visual; this process still starts GTK before its window).
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
