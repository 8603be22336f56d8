//! The cells' listener: TLS, then the login (`proto_hlhv::queen::Login`),
//! then a leash (the cell's control connection, driven here) or a band
//! (handed to the cell's pool).
//!
//! Each connection is its own task, so a slow login never holds up
//! another (the Go queen logs cells in one at a time, on its accept loop).
//! The login deadline covers the TLS handshake and the IAm frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_hlhv::queen::{Claim, Login, LoginError};
use proto_hlhv::{Accept, Frame, NeedBand};
use server_kit::admission::{Progress, Ticket};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::conn::{FrameConn, ReadError};
use crate::hub::{Band, Cell, Hub};
use crate::key::CellKey;
use crate::metrics;

/// What every cell connection task needs.
pub(crate) struct CellsCtx {
    pub hub: Arc<Hub>,
    pub tls: TlsAcceptor,
    pub key: Arc<CellKey>,
    pub login_timeout: Duration,
    pub max_frame: usize,
    pub max_cells: usize,
    /// Cancelled at shutdown: leashes close.
    pub stop: CancellationToken,
}

fn failed(peer: SocketAddr, e: &LoginError) {
    ::metrics::counter!(metrics::LOGIN_FAILURES, "reason" => e.reason()).increment(1);
    info!(%peer, reason = e.reason(), "cell connection refused");
}

/// Serves one connection from a cell, from TLS handshake to close.
pub(crate) async fn serve(ctx: Arc<CellsCtx>, tcp: TcpStream, peer: SocketAddr, ticket: Ticket) {
    let _ = tcp.set_nodelay(true);
    let started = Instant::now();
    let login = Login::new(started, ctx.login_timeout);
    let deadline = tokio::time::Instant::from_std(login.poll_timeout());
    let evicted = ticket.eviction();
    let claimed = tokio::select! {
        r = tokio::time::timeout_at(deadline, first_frame(&ctx, tcp, ticket)) => match r {
            Ok(Ok((conn, frame))) => login.handle_frame(Instant::now(), frame).map(|c| (conn, c)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LoginError::Timeout),
        },
        _ = evicted.cancelled() => Err(LoginError::Full),
        _ = ctx.stop.cancelled() => return,
    };
    let (mut conn, claim) = match claimed {
        Ok(x) => x,
        Err(e) => return failed(peer, &e),
    };
    if let Some(t) = conn.ticket_mut() {
        t.progressed(Progress::Claimed);
    }
    let result = match claim {
        Claim::Leash { key } => {
            if !ctx.key.verify(key).await {
                Err(LoginError::WrongKey)
            } else {
                leash(&ctx, conn, peer).await;
                Ok(())
            }
        }
        Claim::Band { uuid, key } => band(&ctx, conn, &uuid, &key).await,
    };
    if let Err(e) = result {
        failed(peer, &e);
    }
}

/// TLS handshake, then the first frame (or why there is none).
async fn first_frame(
    ctx: &CellsCtx,
    tcp: TcpStream,
    mut ticket: Ticket,
) -> Result<(FrameConn, Result<Frame, proto_hlhv::FrameError>), LoginError> {
    let stream = ctx.tls.accept(tcp).await.map_err(|_| LoginError::Closed)?;
    ticket.progressed(Progress::Secured);
    let mut conn = FrameConn::new(stream, ctx.max_frame, ticket);
    let frame = match conn.read_frame().await {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) | Err(ReadError::Io(_)) => return Err(LoginError::Closed),
        Err(ReadError::Frame(e)) => Err(e),
    };
    Ok((conn, frame))
}

/// A band logging in for the cell `uuid`.
async fn band(
    ctx: &CellsCtx,
    mut conn: FrameConn,
    uuid: &str,
    key: &str,
) -> Result<(), LoginError> {
    let cell = ctx.hub.cell_by_uuid(uuid).ok_or(LoginError::UnknownCell)?;
    if !cell.session.matches(key.as_bytes()) {
        // The band its cell opened for a waiting request will not come:
        // that request fails now (the Go queen leaves it hanging).
        cell.band_login_failed();
        return Err(LoginError::WrongSessionKey);
    }
    if conn.ticket_mut().is_some_and(|t| t.promote().is_err()) {
        cell.band_login_failed();
        return Err(LoginError::Full);
    }
    let accept = Frame::Accept(Accept {
        uuid: uuid.to_owned(),
        key: String::new(),
    });
    if conn.write_frame(&accept).await.is_err() {
        cell.band_login_failed();
        return Err(LoginError::Closed);
    }
    ::metrics::gauge!(metrics::BANDS).increment(1.0);
    conn.on_drop(|| ::metrics::gauge!(metrics::BANDS).decrement(1.0));
    let id = ctx.hub.next_id();
    if let Err(e) = cell.joined(Band {
        id,
        conn: Box::new(conn),
    }) {
        debug!(cell = %cell.uuid, reason = e.reason(), "band refused after login");
        return Err(LoginError::Full);
    }
    debug!(cell = %cell.uuid, band = id, "band joined");
    Ok(())
}

/// A leash: Accept, then Mount/Unmount frames in, NeedBand frames out and
/// the pool's timer, until it closes.
async fn leash(ctx: &CellsCtx, mut conn: FrameConn, peer: SocketAddr) {
    if conn.ticket_mut().is_some_and(|t| t.promote().is_err()) {
        return failed(peer, &LoginError::Full);
    }
    let cell = match ctx.hub.register(ctx.max_cells) {
        Ok(cell) => cell,
        Err(e) => return failed(peer, &e),
    };
    let accept = Frame::Accept(Accept {
        uuid: cell.uuid.clone(),
        key: String::from_utf8_lossy(cell.session.expose()).into_owned(),
    });
    if conn.write_frame(&accept).await.is_ok() {
        info!(%peer, cell = %cell.uuid, "cell connected");
        let why = drive_leash(ctx, &cell, &mut conn).await;
        info!(%peer, cell = %cell.uuid, reason = why, "cell disconnected");
    }
    ctx.hub.remove(&cell);
    conn.close().await;
}

async fn drive_leash(ctx: &CellsCtx, cell: &Arc<Cell>, conn: &mut FrameConn) -> &'static str {
    loop {
        let (need, timer) = cell.leash_work();
        if need > 0 {
            let frames = vec![Frame::NeedBand(NeedBand { count: 1 }); need];
            if conn.write_frames(&frames).await.is_err() {
                return "write failed";
            }
        }
        let sleep = async {
            match timer {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = conn.read_frame() => match frame {
                Ok(Some(frame)) => if let Err(why) = handle_leash_frame(ctx, cell, frame) {
                    return why;
                },
                Ok(None) => return "closed",
                Err(ReadError::Io(_)) => return "read failed",
                Err(ReadError::Frame(e)) => {
                    warn!(cell = %cell.uuid, error = %e, "bad frame on the leash");
                    return "bad frame";
                }
            },
            _ = cell.wake.notified() => {}
            _ = sleep => cell.handle_timeout(),
            _ = ctx.stop.cancelled() => return "shutdown",
        }
    }
}

fn handle_leash_frame(ctx: &CellsCtx, cell: &Arc<Cell>, frame: Frame) -> Result<(), &'static str> {
    match frame {
        Frame::Mount(m) => match ctx.hub.mount(cell, &m.host, &m.path) {
            Ok(pattern) => {
                info!(cell = %cell.uuid, %pattern, "mounted");
                Ok(())
            }
            // As the Go queen: a refused mount ends the leash, which the
            // cell sees and reports.
            Err(e) => {
                warn!(cell = %cell.uuid, error = %e, "mount refused");
                Err("mount refused")
            }
        },
        Frame::Unmount => {
            if let Some(pattern) = ctx.hub.unmount(cell) {
                info!(cell = %cell.uuid, %pattern, "unmounted");
            }
            Ok(())
        }
        other => {
            warn!(cell = %cell.uuid, kind = ?other.kind(), "unexpected frame on the leash");
            Err("unexpected frame")
        }
    }
}
