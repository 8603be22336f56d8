//! The seed's SDK: one session, driven frame by frame by its owner.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proto_httvps::client::Features;
use proto_httvps::{ClientStreams, ErrorCode, Frame, TargetAddr, decode_limited};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::config::ClientConfig;
use crate::connect::{WsStream, connect, machine_config};
use crate::error::ClientError;
use net::Secret;

/// A session driven by its owner: nothing happens between calls.
///
/// Use [`crate::Tunnel`] to run many streams concurrently with keepalives;
/// use `Session` when you want the frames themselves (tests, tools, other
/// language bindings that mirror the seed's API).
pub struct Session {
    ws: WsStream,
    session_id: String,
    streams: ClientStreams,
    config: ClientConfig,
}

impl Session {
    /// Connects, sends `hello` and waits for `ready` (`handshake_failed` after
    /// `config.handshake_timeout`, or with the gateway's code if it refused).
    pub async fn connect(config: ClientConfig, token: &Secret) -> Result<Session, ClientError> {
        // The seed API offers no extensions: the gateway behaves exactly per
        // contract. The machine runs the handshake; after `ready` this API
        // hands the application every frame itself.
        let offer = Features::default();
        let (ws, machine, _) = connect(&config, token, machine_config(&config, offer)).await?;
        let info = machine
            .session_info()
            .expect("the handshake ends only once ready arrived");
        Ok(Session {
            session_id: info.session_id.clone(),
            streams: ClientStreams::new(info.max_streams),
            ws,
            config,
        })
    }

    /// The id the gateway gave this session.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// How many streams may be open at once (from `ready`).
    pub fn max_streams(&self) -> u32 {
        self.streams.max_streams()
    }

    /// Opens a stream to `target` and sends its address header right away, so
    /// protocols where the server speaks first work. With `id` `None` the id is
    /// the next `sN`. Past `max_streams` this fails with `stream_limit` and
    /// sends nothing.
    pub async fn open_stream(
        &mut self,
        target: &TargetAddr,
        id: Option<&str>,
    ) -> Result<String, ClientError> {
        let id = self.streams.open(id)?;
        let open = Frame::StreamOpen {
            stream_id: id.as_str().into(),
            target: target.to_string().into(),
        };
        let mut header = Vec::with_capacity(target.header_len());
        target.encode(&mut header);
        self.send_frame(&open).await?;
        self.send_frame(&Frame::StreamData {
            stream_id: id.as_str().into(),
            data: header,
        })
        .await?;
        Ok(id)
    }

    /// Sends `data` on an open stream, split into frames under the size limit.
    /// On a stream that is not open: `unknown_stream`, nothing sent.
    pub async fn send_data(&mut self, stream_id: &str, data: &[u8]) -> Result<(), ClientError> {
        self.streams.check_open(stream_id)?;
        if data.is_empty() {
            return Ok(());
        }
        for piece in data.chunks(self.config.chunk_for(stream_id.len())) {
            // Each frame's text moves into its message, so there is no buffer to reuse.
            let mut text = String::new();
            proto_httvps::encode_stream_data(stream_id, piece, &mut text);
            self.ws
                .feed(Message::Text(Utf8Bytes::from(text)))
                .await
                .map_err(transport)?;
        }
        self.ws.flush().await.map_err(transport)
    }

    /// Closes a stream in both directions.
    pub async fn close_stream(
        &mut self,
        stream_id: &str,
        reason: Option<&str>,
    ) -> Result<(), ClientError> {
        self.streams.check_open(stream_id)?;
        self.streams.close(stream_id);
        self.send_frame(&Frame::StreamClose {
            stream_id: stream_id.into(),
            reason: reason.map(Into::into),
        })
        .await
    }

    /// Sends a `ping`; the gateway's `pong` comes back through [`Session::next_event`].
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        self.send_frame(&Frame::Ping).await
    }

    /// Sends any frame as is, bypassing the SDK's rules (for tests and tools).
    pub async fn send_raw(&mut self, text: impl Into<String>) -> Result<(), ClientError> {
        self.ws
            .send(Message::Text(Utf8Bytes::from(text.into())))
            .await
            .map_err(transport)
    }

    /// The next incoming frame, or `None` if none arrived within `timeout`.
    ///
    /// Every frame is returned (`stream_close` and `error` included) except
    /// `ping`, which is answered with `pong` here. A `stream_close` or a
    /// stream-scoped `error` also marks that stream closed. When the gateway
    /// closes the connection the result is [`ClientError::SessionClosed`].
    pub async fn next_event(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Frame<'static>>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(ClientError::SessionClosed("connection ended".into())),
                Ok(Some(Err(e))) => return Err(transport(e)),
                Ok(Some(Ok(m))) => m,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    let why = frame
                        .map(|f| format!("close code {} {}", u16::from(f.code), f.reason))
                        .unwrap_or_else(|| "closed without a code".into());
                    return Err(ClientError::SessionClosed(why));
                }
                Message::Binary(_) => {
                    return Ok(Some(Frame::Error {
                        code: ErrorCode::BadFrame,
                        message: "gateway sent a binary message".into(),
                        stream_id: None,
                        reason: None,
                    }));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            let frame = match decode_limited(&text, self.config.max_frame_len) {
                Ok(frame) => frame.into_owned(),
                Err(e) => {
                    return Ok(Some(Frame::Error {
                        code: e.code(),
                        message: format!("unreadable frame from gateway: {e}").into(),
                        stream_id: e.stream_id().map(|s| s.to_owned().into()),
                        reason: None,
                    }));
                }
            };
            match &frame {
                Frame::Ping => {
                    self.send_frame(&Frame::Pong).await?;
                    continue;
                }
                Frame::StreamClose { stream_id, .. }
                | Frame::Error {
                    stream_id: Some(stream_id),
                    ..
                } => {
                    self.streams.close(stream_id.as_ref());
                }
                _ => {}
            }
            return Ok(Some(frame));
        }
    }

    /// Ends the session with a WebSocket close.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await.map_err(transport)
    }

    async fn send_frame(&mut self, frame: &Frame<'_>) -> Result<(), ClientError> {
        let text = proto_httvps::frame::encode_to_string(frame);
        self.ws
            .send(Message::Text(Utf8Bytes::from(text)))
            .await
            .map_err(transport)
    }
}

fn transport(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}
