//! What both sides of an HTTP/3 connection do besides requests: open their
//! control stream with SETTINGS, and read the peer's unidirectional streams
//! (its control stream; QPACK streams, which carry nothing with a table of
//! capacity 0; anything else is ignored).

use proto_h3ws::control::{ControlEvent, ControlStream, UniKind, control_stream_closed};
use proto_h3ws::settings::Settings;
use proto_h3ws::{Code, H3Error, varint};
use tokio::sync::watch;
use tracing::debug;

use crate::{Limits, quic_code as code};

/// What the peer's control stream said so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PeerState {
    /// Its SETTINGS, once they arrived.
    pub settings: Option<Settings>,
    /// GOAWAY: the first request stream id it will not process.
    pub goaway: Option<u64>,
}

/// Starts HTTP/3 on a QUIC connection: our control stream with our
/// SETTINGS (extended CONNECT offered by a server), and a task reading the
/// peer's unidirectional streams. The control stream must stay open for the
/// connection's life, so it is returned to be kept.
pub(crate) async fn start(
    conn: &quinn::Connection,
    limits: Limits,
    server: bool,
) -> Result<(quinn::SendStream, watch::Receiver<PeerState>), quinn::ConnectionError> {
    let settings = Settings {
        enable_connect_protocol: server,
        max_field_section_size: Some(limits.max_field_section),
        qpack_max_table_capacity: 0,
    };
    let control = open_control(conn, settings).await?;
    let (tx, rx) = watch::channel(PeerState::default());
    tokio::spawn(read_uni_streams(conn.clone(), limits.max_control_frame, tx));
    Ok((control, rx))
}

/// Opens our control stream and sends `settings`. The stream must stay
/// open for the connection's life, so it is returned to be kept.
async fn open_control(
    conn: &quinn::Connection,
    settings: Settings,
) -> Result<quinn::SendStream, quinn::ConnectionError> {
    let mut send = conn.open_uni().await?;
    let mut bytes = UniKind::Control.preface();
    bytes.extend_from_slice(&settings.frame());
    if send.write_all(&bytes).await.is_err() {
        debug!("could not write SETTINGS");
    }
    Ok(send)
}

/// Reads the peer's unidirectional streams until the connection ends,
/// publishing its control stream's news on `state`. A protocol error closes
/// the connection with its code.
async fn read_uni_streams(
    conn: quinn::Connection,
    max_frame: usize,
    state: watch::Sender<PeerState>,
) {
    let mut control_seen = false;
    loop {
        let Ok(mut recv) = conn.accept_uni().await else {
            return;
        };
        let kind = match read_stream_type(&mut recv).await {
            Some(v) => UniKind::of(v),
            None => continue,
        };
        match kind {
            UniKind::Control if control_seen => {
                let e = H3Error::new(Code::StreamCreationError, "a second control stream");
                conn.close(code(e.code), e.reason.as_bytes());
                return;
            }
            UniKind::Control => {
                control_seen = true;
                let (conn, state) = (conn.clone(), state.clone());
                tokio::spawn(async move {
                    if let Err(e) = read_control(recv, max_frame, &state).await {
                        debug!(error = %e, "closing the connection");
                        conn.close(code(e.code), e.reason.as_bytes());
                    }
                });
            }
            UniKind::Push => {
                // We never sent MAX_PUSH_ID, so no push may come (§4.6).
                let e = H3Error::new(Code::IdError, "a push stream without MAX_PUSH_ID");
                conn.close(code(e.code), e.reason.as_bytes());
                return;
            }
            UniKind::QpackEncoder | UniKind::QpackDecoder => {
                // With a table of capacity 0 an encoder stream may carry
                // nothing that matters, and a decoder stream only
                // acknowledgements: read and dropped.
                tokio::spawn(async move {
                    while let Ok(Some(_)) = recv.read_chunk(4096, true).await {}
                });
            }
            UniKind::Unknown(_) => {
                let _ = recv.stop(code(Code::StreamCreationError));
            }
        }
    }
}

async fn read_stream_type(recv: &mut quinn::RecvStream) -> Option<u64> {
    let mut buf = Vec::with_capacity(8);
    loop {
        if let Some((v, _)) = varint::peek(&buf) {
            return Some(v);
        }
        let mut byte = [0u8; 1];
        match recv.read(&mut byte).await {
            Ok(Some(1)) => buf.push(byte[0]),
            _ => return None,
        }
    }
}

async fn read_control(
    mut recv: quinn::RecvStream,
    max_frame: usize,
    state: &watch::Sender<PeerState>,
) -> Result<(), H3Error> {
    let mut control = ControlStream::new(max_frame);
    loop {
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => {
                for event in control.push(&chunk.bytes)? {
                    state.send_modify(|s| match event {
                        ControlEvent::Settings(settings) => s.settings = Some(settings),
                        ControlEvent::GoAway(id) => s.goaway = Some(id),
                    });
                }
            }
            Ok(None) => return Err(control_stream_closed()),
            // The connection ended: nothing to report.
            Err(quinn::ReadError::ConnectionLost(_)) => return Ok(()),
            Err(_) => return Err(control_stream_closed()),
        }
    }
}
