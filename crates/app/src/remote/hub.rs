//! The tray's side of the socket: one instance per user, and at most one
//! window connection, to which it forwards events and the stream feed.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::dispatch::{Request, dispatch};
use super::{RemoteError, ToTray, ToWindow, framed};
use crate::controller::Controller;
use crate::error::CommandError;

/// How long a new connection has to say what it wants.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages queued for the window. Events and stream updates beyond this
/// are dropped while the window does not read (a stream update is
/// superseded by the next anyway); replies wait for room.
const WINDOW_QUEUE: usize = 1024;

/// The outcome of [`bind`].
pub enum Bound {
    /// This process is the instance: serve the listener.
    Listening(Listener),
    /// Another process already serves the socket.
    AlreadyRunning,
}

/// The socket, removed when dropped.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    /// Our user: the socket file's owner.
    uid: u32,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket at `path` unless another instance answers there. A
/// file lock beside it makes "is anyone there? then bind" atomic between
/// two processes starting at once; a socket file nobody answers on (left
/// by a crash) is replaced. Must run inside a tokio runtime.
pub fn bind(path: &Path) -> io::Result<Bound> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))?;
    lock.lock()?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Ok(Bound::AlreadyRunning);
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!("replaced a socket left by an earlier run"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(path)?);
    listener.set_nonblocking(true)?;
    Ok(Bound::Listening(Listener {
        listener: UnixListener::from_std(listener)?,
        path: path.to_owned(),
        uid,
    }))
}

/// What the hub asks of its process.
pub trait WindowLauncher: Send + Sync + 'static {
    /// Starts the window binary (which connects back and opens its window).
    fn launch_window(&self) -> io::Result<()>;
}

struct WindowLink {
    id: u64,
    tx: mpsc::Sender<ToWindow>,
}

/// The tray's end: serves the socket, knows the window connection.
pub struct Hub {
    controller: Controller,
    launcher: Box<dyn WindowLauncher>,
    window: Mutex<Option<WindowLink>>,
    presence: tokio::sync::watch::Sender<bool>,
    next_id: AtomicU64,
}

impl Hub {
    /// A hub over `controller`, starting windows with `launcher`.
    pub fn new(controller: Controller, launcher: Box<dyn WindowLauncher>) -> Arc<Hub> {
        Arc::new(Hub {
            controller,
            launcher,
            window: Mutex::new(None),
            presence: tokio::sync::watch::Sender::new(false),
            next_id: AtomicU64::new(1),
        })
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: Listener) {
        loop {
            match listener.listener.accept().await {
                Ok((stream, _)) => {
                    // The file's mode already keeps other users out; the
                    // peer's credentials say so again (a command can read
                    // a secret back: `share_link` with the secret).
                    match stream.peer_cred() {
                        Ok(peer) if peer.uid() == listener.uid => {}
                        Ok(peer) => {
                            tracing::warn!(
                                uid = peer.uid(),
                                "refused a connection from another user"
                            );
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!("refused a connection without credentials: {e}");
                            continue;
                        }
                    }
                    let hub = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = hub.connection(stream).await {
                            tracing::warn!("window connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::error!("the app socket failed: {e}");
                    return;
                }
            }
        }
    }

    /// Follows whether a window is open.
    pub fn window_presence(&self) -> tokio::sync::watch::Receiver<bool> {
        self.presence.subscribe()
    }

    /// Whether a window is open.
    pub fn has_window(&self) -> bool {
        self.window.lock().unwrap().is_some()
    }

    /// Brings the window forward, or starts one.
    pub fn show_window(&self) {
        if self.send_window(ToWindow::Focus) {
            return;
        }
        if let Err(e) = self.launcher.launch_window() {
            tracing::error!("cannot open the window: {e}");
        }
    }

    /// Asks the window, if any, to close.
    pub fn close_window(&self) {
        self.send_window(ToWindow::Close);
    }

    /// Sends an event to the window, if any (dropped if it does not read).
    pub fn emit(&self, name: &str, payload: &impl Serialize) {
        if !self.has_window() {
            return;
        }
        match serde_json::to_value(payload) {
            Ok(payload) => {
                self.send_window(ToWindow::Event {
                    name: name.to_owned(),
                    payload,
                });
            }
            Err(e) => tracing::warn!("event {name} not sent: {e}"),
        }
    }

    /// Queues a message for the window; false when there is none.
    fn send_window(&self, message: ToWindow) -> bool {
        let window = self.window.lock().unwrap();
        match window.as_ref() {
            Some(link) => {
                let _ = link.tx.try_send(message);
                true
            }
            None => false,
        }
    }

    async fn connection(self: Arc<Self>, stream: UnixStream) -> Result<(), RemoteError> {
        let mut lines = framed(stream);
        let first = match tokio::time::timeout(OPEN_TIMEOUT, lines.next()).await {
            Err(_) => return Err(RemoteError::Protocol("no open message in time".into())),
            Ok(None) => return Ok(()),
            Ok(Some(line)) => line?,
        };
        let minimized = match serde_json::from_str::<ToTray>(&first) {
            Ok(ToTray::Open { minimized }) => minimized,
            Ok(ToTray::Call { .. }) => {
                return Err(RemoteError::Protocol("a call before open".into()));
            }
            Err(e) => return Err(RemoteError::Protocol(e.to_string())),
        };
        let (tx, rx) = mpsc::channel(WINDOW_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let host = {
            let mut window = self.window.lock().unwrap();
            match (minimized, window.as_ref()) {
                (true, Some(link)) => {
                    let _ = link.tx.try_send(ToWindow::Close);
                    false
                }
                (true, None) => false,
                (false, Some(link)) => {
                    let _ = link.tx.try_send(ToWindow::Focus);
                    false
                }
                (false, None) => {
                    *window = Some(WindowLink { id, tx: tx.clone() });
                    self.presence.send_replace(true);
                    true
                }
            }
        };
        send(&mut lines, &ToWindow::Opened { host }).await?;
        if !host {
            return Ok(());
        }
        tracing::debug!("a window opened");
        let result = self.serve_window(lines, tx, rx).await;
        let mut window = self.window.lock().unwrap();
        if window.as_ref().is_some_and(|link| link.id == id) {
            *window = None;
            self.presence.send_replace(false);
        }
        tracing::debug!("the window closed");
        result
    }

    /// The window's connection: its calls in, replies, events and the
    /// stream feed out. Calls run concurrently (a connect must not hold up
    /// the overview).
    async fn serve_window(
        &self,
        lines: tokio_util::codec::Framed<UnixStream, tokio_util::codec::LinesCodec>,
        tx: mpsc::Sender<ToWindow>,
        mut rx: mpsc::Receiver<ToWindow>,
    ) -> Result<(), RemoteError> {
        let (mut sink, mut source) = lines.split();
        let writer = async {
            while let Some(message) = rx.recv().await {
                let line = serde_json::to_string(&message)
                    .map_err(|e| RemoteError::Protocol(e.to_string()))?;
                sink.send(line).await?;
            }
            Ok::<(), RemoteError>(())
        };
        let reader = async {
            while let Some(line) = source.next().await {
                let (id, cmd, args) = match serde_json::from_str::<ToTray>(&line?) {
                    Ok(ToTray::Call { id, cmd, args }) => (id, cmd, args),
                    Ok(ToTray::Open { .. }) => {
                        return Err(RemoteError::Protocol("open twice".into()));
                    }
                    Err(e) => return Err(RemoteError::Protocol(e.to_string())),
                };
                if cmd == "watch_streams" {
                    self.watch_streams(&tx);
                    reply(&tx, id, Ok(serde_json::Value::Null)).await;
                    continue;
                }
                let controller = self.controller.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let result = match Request::parse(&cmd, args) {
                        Ok(request) => dispatch(&controller, request).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = &result {
                        tracing::debug!("command {cmd} failed: {e}");
                    }
                    reply(&tx, id, result).await;
                });
            }
            Ok(())
        };
        // Either direction ending ends the connection: the window is gone.
        tokio::select! {
            result = writer => result,
            result = reader => result,
        }
    }

    /// Feeds the stream table to the window until it is gone (a window
    /// loaded again replaces the feed).
    fn watch_streams(&self, tx: &mpsc::Sender<ToWindow>) {
        // tests/e2e/idle.mjs waits for this line to know a (rebuilt) window
        // loaded and reached the app.
        tracing::debug!("the window is loaded and follows the streams");
        let tx = tx.clone();
        self.controller.watch_streams(move |update| {
            let update = match serde_json::to_value(update) {
                Ok(update) => update,
                Err(_) => return true,
            };
            match tx.try_send(ToWindow::Streams { update }) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

async fn reply(
    tx: &mpsc::Sender<ToWindow>,
    id: u64,
    result: Result<serde_json::Value, CommandError>,
) {
    let message = match result {
        Ok(ok) => ToWindow::Reply {
            id,
            ok: Some(ok),
            err: None,
        },
        Err(e) => ToWindow::Reply {
            id,
            ok: None,
            err: serde_json::to_value(e).ok(),
        },
    };
    let _ = tx.send(message).await;
}

async fn send(
    lines: &mut tokio_util::codec::Framed<UnixStream, tokio_util::codec::LinesCodec>,
    message: &ToWindow,
) -> Result<(), RemoteError> {
    let line = serde_json::to_string(message).map_err(|e| RemoteError::Protocol(e.to_string()))?;
    lines.send(line).await?;
    Ok(())
}
