//! The window binary's side: reach the tray (starting it when it is not
//! running), say what the launch wants, and, when it hosts the window,
//! forward the page's commands and receive what the tray pushes.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::{RemoteError, ToTray, ToWindow, framed};
use crate::error::{CommandCode, CommandError};

/// How long a tray we started has to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The argument that makes a tray started by the window binary print
/// [`READY_LINE`] on its standard output once it listens, so the launch
/// waits for that instead of polling the socket.
pub const READY_ARG: &str = "--print-ready";
/// What the tray prints (see [`READY_ARG`]).
pub const READY_LINE: &str = "httvps-tray ready";

/// What the tray pushes to the window.
#[derive(Debug)]
pub enum Push {
    /// An event for the page.
    Event {
        /// Its name.
        name: String,
        /// Its payload.
        payload: Value,
    },
    /// A stream table update.
    Streams(Value),
    /// Bring the window forward.
    Focus,
    /// Close the window.
    Close,
    /// The tray is gone (quit or crashed): the window closes too.
    Gone,
}

/// The outcome of a launch.
pub enum Opened {
    /// This process hosts the window: commands go through `Remote`, pushes
    /// arrive on the receiver.
    Host(Remote, mpsc::UnboundedReceiver<Push>),
    /// The tray did what the launch asked (focused its window, or closed
    /// it, or started in the tray): exit.
    Done,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, Value>>>>>;

/// Calls into the tray's controller.
#[derive(Clone)]
pub struct Remote {
    tx: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
}

/// The error a command gets when the tray does not answer.
fn gone() -> Value {
    serde_json::to_value(CommandError::new(
        CommandCode::ServiceGone,
        "the app's background process (httvps-tray) is not running",
    ))
    .unwrap_or(Value::Null)
}

impl Remote {
    /// Runs command `cmd` with `args` (an object) in the tray; its result
    /// or its `CommandError`, as JSON.
    pub async fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, done);
        let line = serde_json::to_string(&ToTray::Call {
            id,
            cmd: cmd.to_owned(),
            args,
        })
        .map_err(|_| gone())?;
        if self.tx.send(line).is_err() {
            self.pending.lock().unwrap().remove(&id);
            return Err(gone());
        }
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// Connects to the tray at `socket`, starting `tray_bin` with `tray_args`
/// first when nothing answers, then opens: see [`Opened`].
pub async fn launch(
    socket: &Path,
    tray_bin: &Path,
    tray_args: &[&str],
    minimized: bool,
) -> Result<Opened, RemoteError> {
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(_) => {
            start_tray(tray_bin, tray_args).await?;
            if minimized {
                // The tray was started in the tray: nothing more to ask.
                return Ok(Opened::Done);
            }
            UnixStream::connect(socket).await?
        }
    };
    open(stream, minimized).await
}

/// Starts the tray in its own process group (it outlives this launch) and
/// waits until it listens.
async fn start_tray(tray_bin: &Path, tray_args: &[&str]) -> Result<(), RemoteError> {
    use std::os::unix::process::CommandExt as _;
    let mut child = tokio::process::Command::from({
        let mut command = Command::new(tray_bin);
        command
            .args(tray_args)
            .arg(READY_ARG)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0);
        command
    })
    .spawn()
    .map_err(|e| RemoteError::NotStarted(format!("cannot start {}: {e}", tray_bin.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| RemoteError::NotStarted("no pipe to the tray".into()))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if line == READY_LINE {
                return Ok(true);
            }
        }
        Ok::<bool, io::Error>(false)
    })
    .await;
    match ready {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(RemoteError::NotStarted(format!(
            "{} exited before listening ({})",
            tray_bin.display(),
            child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default()
        ))),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(RemoteError::NotStarted(format!(
            "{} did not listen within {START_TIMEOUT:?}",
            tray_bin.display()
        ))),
    }
}

/// Says what this launch wants on a new connection and, when it hosts the
/// window, starts the connection's reader and writer.
pub async fn open(stream: UnixStream, minimized: bool) -> Result<Opened, RemoteError> {
    let mut lines = framed(stream);
    let open = serde_json::to_string(&ToTray::Open { minimized })
        .map_err(|e| RemoteError::Protocol(e.to_string()))?;
    lines.send(open).await?;
    let answer = match lines.next().await {
        Some(line) => line?,
        None => {
            return Err(RemoteError::Protocol(
                "the tray closed the connection".into(),
            ));
        }
    };
    match serde_json::from_str::<ToWindow>(&answer) {
        Ok(ToWindow::Opened { host: false }) => return Ok(Opened::Done),
        Ok(ToWindow::Opened { host: true }) => {}
        Ok(_) => return Err(RemoteError::Protocol("expected opened".into())),
        Err(e) => return Err(RemoteError::Protocol(e.to_string())),
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let pending: Pending = Arc::default();
    let (mut sink, mut source) = lines.split();
    let replies = pending.clone();
    // One task for both directions: when the last `Remote` is dropped the
    // connection closes, and the tray sees the window go.
    tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                out = out_rx.recv() => match out {
                    Some(line) => {
                        if sink.send(line).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    None => break,
                },
                incoming = source.next() => match incoming {
                    Some(Ok(line)) => line,
                    _ => break,
                },
            };
            let push = match serde_json::from_str::<ToWindow>(&line) {
                Ok(ToWindow::Reply { id, ok, err }) => {
                    let result = match err {
                        Some(err) => Err(err),
                        None => Ok(ok.unwrap_or(Value::Null)),
                    };
                    if let Some(done) = replies.lock().unwrap().remove(&id) {
                        let _ = done.send(result);
                    }
                    continue;
                }
                Ok(ToWindow::Event { name, payload }) => Push::Event { name, payload },
                Ok(ToWindow::Streams { update }) => Push::Streams(update),
                Ok(ToWindow::Focus) => Push::Focus,
                Ok(ToWindow::Close) => Push::Close,
                Ok(ToWindow::Opened { .. }) | Err(_) => {
                    tracing::warn!("a bad message from the tray; closing");
                    break;
                }
            };
            // Nobody follows the pushes any more: the window is gone.
            if push_tx.send(push).is_err() {
                break;
            }
        }
        // Calls in flight fail with "not running".
        replies.lock().unwrap().clear();
        let _ = push_tx.send(Push::Gone);
    });
    Ok(Opened::Host(
        Remote {
            tx: out_tx,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
        },
        push_rx,
    ))
}
