//! The desktop app's long-lived half, `httvps-tray`: the controller and its
//! engine, the tray icon (a StatusNotifierItem over D-Bus), notifications,
//! the settings file and the login item, in a process that links neither
//! GTK nor WebKit. The window (`src-tauri`, `httvps-desktop`) is a second
//! process, started when the user asks for it and gone when it is closed; it
//! reaches the controller over `app::remote`'s local socket.
//!
//! Why two processes: a process that has loaded GTK and WebKit's libraries
//! keeps them resident after its last window is gone. Measured with the
//! release build idle under `--demo` (bench/README.md, "The quiet app"): the
//! single-process app held 82 MiB started in the tray and 169 MiB with its
//! window closed again; the target is 60 MiB.

pub mod autostart;
pub mod notify;
pub mod storage;
pub mod tray;
