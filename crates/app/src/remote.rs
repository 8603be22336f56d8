//! How the desktop app's two processes talk: `httvps-tray` (the controller,
//! the engine and the tray, always running) and `httvps-desktop` (the window,
//! only while it is open), over a Unix socket in the user's own runtime
//! directory.
//!
//! Why two processes: a process that has loaded GTK and WebKit keeps their
//! libraries resident after its last window is gone (82 MiB for the app
//! started in the tray, 169 MiB with the window closed again, measured in
//! bench/README.md "The quiet app"). The window process ends with its
//! window, and everything the window shows is read back from the controller
//! when it opens (`overview`, `watch_streams`), so nothing lives only there.
//!
//! The protocol: one JSON message per line, each at most [`MAX_MESSAGE`]
//! bytes. A connection starts with [`ToTray::Open`] (a launch of the window
//! binary); the tray answers [`ToWindow::Opened`]: `host: true` makes the
//! connection the window's, which then sends commands ([`ToTray::Call`],
//! answered by [`ToWindow::Reply`]) and receives events, the stream feed,
//! and focus and close requests. Commands and events carry the same JSON as
//! the Tauri commands and events (`bindings`), so the window forwards them
//! without knowing their types; the tray parses them ([`dispatch`]).
//!
//! - [`hub`]: the tray's side (single instance, the window connection).
//! - [`client`]: the window binary's side (start the tray if needed, call).
//! - [`dispatch`]: a command's JSON to a controller call.

pub mod client;
pub mod dispatch;
pub mod hub;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec};

/// The largest message either side accepts: a stream table of thousands of
/// rows fits many times over; a peer sending more is cut off.
pub const MAX_MESSAGE: usize = 16 << 20;

/// Overrides the socket's path (tests, or two app instances side by side).
pub const SOCKET_ENV: &str = "HTTVPS_APP_SOCKET";

/// The event the window receives for engine events (`bindings::EVENTS`).
pub const ENGINE_EVENT: &str = "httvps://engine";
/// The event the window receives for controller events.
pub const APP_EVENT: &str = "httvps://app";

/// The socket: `$HTTVPS_APP_SOCKET`, else `$XDG_RUNTIME_DIR/httvps/app.sock`,
/// else the user's local data directory (`~/.local/share/httvps`). Always a
/// directory of this user's own (made 0700), never a shared temporary one.
pub fn default_socket() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let dirs = directories::ProjectDirs::from("", "", "httvps");
    let dir = dirs.as_ref().map(|d| {
        d.runtime_dir()
            .unwrap_or_else(|| d.data_local_dir())
            .to_path_buf()
    });
    match dir {
        Some(dir) => dir.join("app.sock"),
        None => PathBuf::from("httvps-app.sock"),
    }
}

/// The app's other binary, `name` (`httvps-tray` or `httvps-desktop`): the
/// path in the environment variable `env` when set, else beside this
/// executable (both are built into one directory and installed into one).
pub fn sibling_binary(env: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// From the window binary to the tray.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToTray {
    /// The first message of a connection: the window binary was launched.
    /// With `minimized` (autostart, or a launch asking to hide the app) the
    /// tray closes its window, if any; else it focuses its window, or makes
    /// this connection the window's when it has none.
    Open {
        /// Whether the launch asks for the tray only.
        minimized: bool,
    },
    /// A command (`bindings::COMMANDS`), its arguments by name. Not `Debug`
    /// in logs: `sign_in` carries a token.
    Call {
        /// Matches the reply.
        id: u64,
        /// The command's name.
        cmd: String,
        /// Its arguments, an object.
        args: Value,
    },
}

/// From the tray to the window binary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWindow {
    /// The answer to [`ToTray::Open`]: whether this connection hosts the
    /// window (else the launch is done and exits).
    Opened {
        /// Whether to open the window.
        host: bool,
    },
    /// A command's result: `ok` or `err` (a `CommandError`).
    Reply {
        /// The call's id.
        id: u64,
        /// The result on success.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<Value>,
        /// The error otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        err: Option<Value>,
    },
    /// An event for the page ([`ENGINE_EVENT`], [`APP_EVENT`]).
    Event {
        /// The event's name.
        name: String,
        /// Its payload.
        payload: Value,
    },
    /// The live stream table (a `StreamsUpdate`), after `watch_streams`.
    Streams {
        /// The update.
        update: Value,
    },
    /// Bring the window to the front (a second launch, the tray's Show).
    Focus,
    /// Close the window (a launch with `--minimized`, or Quit).
    Close,
}

/// A connection framed as JSON lines of at most [`MAX_MESSAGE`] bytes.
pub(crate) fn framed(stream: UnixStream) -> Framed<UnixStream, LinesCodec> {
    Framed::new(stream, LinesCodec::new_with_max_length(MAX_MESSAGE))
}

/// Errors of the socket and its messages.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A message was not what the protocol allows (too long, not JSON, out
    /// of order).
    #[error("bad message from the other process: {0}")]
    Protocol(String),
    /// The tray did not start or answer in time.
    #[error("{0}")]
    NotStarted(String),
}

impl From<tokio_util::codec::LinesCodecError> for RemoteError {
    fn from(e: tokio_util::codec::LinesCodecError) -> Self {
        match e {
            tokio_util::codec::LinesCodecError::Io(e) => RemoteError::Io(e),
            tokio_util::codec::LinesCodecError::MaxLineLengthExceeded => {
                RemoteError::Protocol(format!("a message is over {MAX_MESSAGE} bytes"))
            }
        }
    }
}
