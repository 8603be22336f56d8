//! One session: the client's WebSocket (over HTTP/3) and the backend's
//! (over HTTP/1.1), messages carried between them until either ends.
//!
//! Messages are relayed whole: tungstenite reassembles fragments and each
//! message goes out as one frame. Each side gets its own read deadline
//! (`read_timeout` of silence ends the session, as the Go proxy's per-read
//! deadlines do) and every write its `write_timeout`. Pings are answered by
//! tungstenite and also forwarded; the other side's pong comes back as a
//! message and is forwarded too. A close passes its code and reason to the
//! other side.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use h3ws::stream::H3Stream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::sleep_until;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::backend::Backend;
use crate::config::Config;
use crate::metrics::{self as m, Dir};

/// How a session ended, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame from one side, passed to the other.
    Closed { from: Dir, code: Option<u16> },
    /// One side's stream ended or failed without a close frame.
    Gone { from: Dir, why: String },
    /// A side sent nothing for `read_timeout`.
    Silent(Dir),
    /// A write did not finish within `write_timeout`.
    WriteTimeout(Dir),
    /// A frame over `max_frame`: the session was aborted.
    FrameTooBig(Dir),
    /// A message over `max_message`: both sides got close 1009.
    MessageTooBig(Dir),
    /// The backend could not be reached: the client got close 1011.
    BackendDown(String),
    /// The proxy is shutting down: both sides got close 1001.
    Shutdown,
}

fn ws_config(config: &Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_frame_size(Some(config.max_frame))
        .max_message_size(Some(config.max_message))
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Runs the session on `stream` (already answered 200) to its end.
pub async fn run(
    stream: H3Stream,
    path_and_query: &str,
    forwarded: Vec<(HeaderName, HeaderValue)>,
    backend: &Backend,
    config: &Config,
    stop: &CancellationToken,
) -> Ending {
    let started = Instant::now();
    let mut client =
        WebSocketStream::from_raw_socket(stream, Role::Server, Some(ws_config(config))).await;
    let dial = backend.dial(path_and_query, &forwarded, ws_config(config));
    let dialed = tokio::select! {
        r = tokio::time::timeout(config.write_timeout, dial) => r,
        _ = stop.cancelled() => Ok(Err(crate::backend::DialError::Tcp("shutdown".into(), std::io::ErrorKind::Interrupted.into()))),
    };
    let ending = match dialed {
        Ok(Ok(mut server)) => {
            let ending = pump(&mut client, &mut server, config, stop).await;
            if let Ending::FrameTooBig(_) = ending {
                client.get_mut().abort(proto_h3ws::Code::MessageError);
            }
            ending
        }
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            m::error("backend_dial");
            let msg = close(CloseCode::Error, "backend unavailable");
            let _ = tokio::time::timeout(config.write_timeout, client.send(msg)).await;
            let _ = tokio::time::timeout(config.write_timeout, client.close(None)).await;
            Ending::BackendDown(why)
        }
    };
    m::session_ended(started.elapsed().as_secs_f64());
    debug!(?ending, path = path_and_query, "session ended");
    ending
}

/// Which side a read came from.
enum From<T> {
    Client(T),
    Server(T),
}

async fn pump<A, B>(
    client: &mut WebSocketStream<A>,
    server: &mut WebSocketStream<B>,
    config: &Config,
    stop: &CancellationToken,
) -> Ending
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut client_deadline = tokio::time::Instant::now() + config.read_timeout;
    let mut server_deadline = client_deadline;
    loop {
        let read = tokio::select! {
            m = client.next() => From::Client(m),
            m = server.next() => From::Server(m),
            () = sleep_until(client_deadline) => return silent(client, server, config, Dir::H3ToH1).await,
            () = sleep_until(server_deadline) => return silent(client, server, config, Dir::H1ToH3).await,
            _ = stop.cancelled() => {
                let bye = || close(CloseCode::Away, "proxy shutting down");
                let wt = config.write_timeout;
                let _ = tokio::time::timeout(wt, client.send(bye())).await;
                let _ = tokio::time::timeout(wt, server.send(bye())).await;
                // The client's answer (bounded) says the close arrived: the
                // QUIC connection closes right after the sessions end, and
                // would take undelivered bytes with it.
                let _ = tokio::time::timeout(wt, async {
                    while let Some(Ok(m)) = client.next().await {
                        if m.is_close() {
                            break;
                        }
                    }
                })
                .await;
                return Ending::Shutdown;
            }
        };
        let now = tokio::time::Instant::now();
        let step = match read {
            From::Client(m) => {
                client_deadline = now + config.read_timeout;
                forward(m, server, client, config, Dir::H3ToH1).await
            }
            From::Server(m) => {
                server_deadline = now + config.read_timeout;
                forward(m, client, server, config, Dir::H1ToH3).await
            }
        };
        if let Some(ending) = step {
            return ending;
        }
    }
}

async fn silent<A, B>(
    client: &mut WebSocketStream<A>,
    server: &mut WebSocketStream<B>,
    config: &Config,
    side: Dir,
) -> Ending
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    m::error("read_timeout");
    let bye = || close(CloseCode::Away, "idle");
    let _ = tokio::time::timeout(config.write_timeout, client.send(bye())).await;
    let _ = tokio::time::timeout(config.write_timeout, server.send(bye())).await;
    Ending::Silent(side)
}

/// Carries what `from` produced to `to`; `Some` when the session ends.
async fn forward<F, T>(
    read: Option<Result<Message, WsError>>,
    to: &mut WebSocketStream<T>,
    from: &mut WebSocketStream<F>,
    config: &Config,
    dir: Dir,
) -> Option<Ending>
where
    F: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let wt = config.write_timeout;
    let msg = match read {
        Some(Ok(msg)) => msg,
        None => {
            m::error(read_stage(dir));
            let _ = tokio::time::timeout(wt, to.close(None)).await;
            return Some(Ending::Gone {
                from: dir,
                why: "ended without a close frame".into(),
            });
        }
        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { max_size, .. }))) => {
            let frame = max_size == config.max_frame && config.max_frame != config.max_message;
            if frame {
                m::oversize("frame");
                return Some(Ending::FrameTooBig(dir));
            }
            m::oversize("message");
            let too_big = || close(CloseCode::Size, "message too big");
            let _ = tokio::time::timeout(wt, from.send(too_big())).await;
            let _ = tokio::time::timeout(wt, to.send(too_big())).await;
            return Some(Ending::MessageTooBig(dir));
        }
        Some(Err(e)) => {
            m::error(read_stage(dir));
            let _ = tokio::time::timeout(wt, to.send(close(CloseCode::Error, "peer failed"))).await;
            return Some(Ending::Gone {
                from: dir,
                why: e.to_string(),
            });
        }
    };
    let (kind, len) = match &msg {
        Message::Text(t) => ("text", t.len()),
        Message::Binary(b) => ("binary", b.len()),
        Message::Ping(p) => ("ping", p.len()),
        Message::Pong(p) => ("pong", p.len()),
        Message::Close(_) => ("close", 0),
        Message::Frame(_) => return None,
    };
    if matches!(kind, "ping" | "pong" | "close") {
        m::control(kind);
    }
    m::relayed(dir, kind, len);
    if let Message::Close(frame) = msg {
        let code = frame.as_ref().map(|f| u16::from(f.code));
        // Pass the close on, wait (bounded) for the other side's answer,
        // then let tungstenite send its automatic answer to `from`.
        let _ = tokio::time::timeout(wt, to.send(Message::Close(frame))).await;
        let _ = tokio::time::timeout(wt, async {
            while let Some(Ok(m)) = to.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
        let _ = tokio::time::timeout(wt, from.flush()).await;
        return Some(Ending::Closed { from: dir, code });
    }
    match tokio::time::timeout(wt, to.send(msg)).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            m::error(write_stage(dir));
            Some(Ending::Gone {
                from: dir,
                why: format!("writing: {e}"),
            })
        }
        Err(_) => {
            m::error(write_stage(dir));
            Some(Ending::WriteTimeout(dir))
        }
    }
}

fn read_stage(dir: Dir) -> &'static str {
    match dir {
        Dir::H3ToH1 => "h3_read",
        Dir::H1ToH3 => "h1_read",
    }
}

fn write_stage(dir: Dir) -> &'static str {
    match dir {
        Dir::H3ToH1 => "h1_write",
        Dir::H1ToH3 => "h3_write",
    }
}
