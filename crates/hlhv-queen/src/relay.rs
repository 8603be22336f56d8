//! One public request carried over a band: the driver of
//! `proto_hlhv::queen::Exchange`.
//!
//! Up to the response head everything happens in the request's task; the
//! response body is then [`BandBody`], which reads the next ResBody frame
//! from the band only when hyper asks for the next piece, so a slow client
//! slows the cell down instead of filling the queen's memory.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame as BodyFrame, Incoming, SizeHint};
use proto_hlhv::queen::{Exchange, Failure, Step};
use proto_hlhv::{Frame, ReqHead, ResHead};
use tokio::time::Sleep;

use crate::conn::ReadError;
use crate::hub::Lease;
use crate::metrics;

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayLimits {
    /// Largest ReqBody frame payload.
    pub max_piece: usize,
    /// Longest wait for the cell's next frame, and for the client's next
    /// body piece.
    pub idle: Duration,
}

fn read_failure(e: ReadError) -> Failure {
    match e {
        ReadError::Io(_) => Failure::BandBroken,
        ReadError::Frame(e) => Failure::BadFrame(e),
    }
}

/// The cell's next frame, within the idle bound.
async fn next_frame(lease: &mut Lease, idle: Duration) -> Result<Frame, Failure> {
    match tokio::time::timeout(idle, lease.conn().read_frame()).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Ok(Some(frame))) => Ok(frame),
        Ok(Ok(None)) => Err(Failure::BandBroken),
        Ok(Err(e)) => Err(read_failure(e)),
    }
}

/// Runs the exchange up to the response head. On error the lease is
/// dropped, which closes the band.
pub(crate) async fn exchange(
    mut lease: Lease,
    head: ReqHead,
    body: Incoming,
    limits: RelayLimits,
) -> Result<(ResHead, BandBody), Failure> {
    let gone = lease.cell().gone.clone();
    let work = async {
        let (mut exchange, first) = Exchange::start(head, limits.max_piece);
        lease
            .conn()
            .write_frame(&first)
            .await
            .map_err(|_| Failure::BandBroken)?;
        let mut body = Some(body);
        loop {
            let frame = next_frame(&mut lease, limits.idle).await?;
            match exchange.handle_frame(frame)? {
                Step::SendBody { .. } => {
                    let body = body
                        .take()
                        .ok_or(Failure::Unexpected(proto_hlhv::Kind::ResWant))?;
                    send_body(&mut lease, &mut exchange, body, limits.idle).await?;
                }
                Step::Head(head) => return Ok((head, exchange)),
                // The machine yields data and end only after a head.
                Step::Data(_) | Step::End => {
                    return Err(Failure::Unexpected(proto_hlhv::Kind::ResBody));
                }
            }
        }
    };
    let (head, exchange) = tokio::select! {
        r = work => r?,
        _ = gone.cancelled() => return Err(Failure::BandBroken),
    };
    let body = BandBody {
        lease: Some(lease),
        exchange,
        idle: limits.idle,
        sleep: Box::pin(tokio::time::sleep(limits.idle)),
        gone: Box::pin(gone.cancelled_owned()),
    };
    Ok((head, body))
}

/// Streams the client's body to the cell in ReqBody pieces, then ReqEnd.
async fn send_body(
    lease: &mut Lease,
    exchange: &mut Exchange,
    mut body: Incoming,
    idle: Duration,
) -> Result<(), Failure> {
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| Failure::ClientBody)?;
        let Some(frame) = next else { break };
        let frame = frame.map_err(|_| Failure::ClientBody)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let more = exchange.handle_body_data(data, &mut frames);
        let sent: usize = frames
            .iter()
            .map(|f| match f {
                Frame::ReqBody(b) => b.len(),
                _ => 0,
            })
            .sum();
        lease
            .conn()
            .write_frames(&frames)
            .await
            .map_err(|_| Failure::BandBroken)?;
        metrics::bytes(true, sent);
        frames.clear();
        if !more {
            break;
        }
    }
    let end = exchange.handle_body_end();
    lease
        .conn()
        .write_frame(&end)
        .await
        .map_err(|_| Failure::BandBroken)
}

/// The response body, read from the band frame by frame on demand. At
/// ResEnd the band goes back to its pool; dropped earlier (the client went
/// away, a HEAD request) or failed, the band is closed.
pub(crate) struct BandBody {
    lease: Option<Lease>,
    exchange: Exchange,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    gone: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

/// Why a response body ended early (the client sees a cut response).
#[derive(Debug, thiserror::Error)]
#[error("response from the cell broke off: {0}")]
pub(crate) struct BodyError(pub Failure);

impl Body for BandBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            let Some(lease) = this.lease.as_mut() else {
                return Poll::Ready(None);
            };
            if this.gone.as_mut().poll(cx).is_ready() {
                return this.fail(Failure::BandBroken);
            }
            let frame = match lease.conn().poll_frame(cx) {
                Poll::Ready(Ok(Some(frame))) => frame,
                Poll::Ready(Ok(None)) => return this.fail(Failure::BandBroken),
                Poll::Ready(Err(e)) => return this.fail(read_failure(e)),
                Poll::Pending => {
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        return this.fail(Failure::Timeout);
                    }
                    return Poll::Pending;
                }
            };
            match this.exchange.handle_frame(frame) {
                Ok(Step::Data(data)) => {
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.sleep.as_mut().reset(deadline);
                    if data.is_empty() {
                        continue;
                    }
                    metrics::bytes(false, data.len());
                    return Poll::Ready(Some(Ok(BodyFrame::data(data))));
                }
                Ok(Step::End) => {
                    if let Some(lease) = this.lease.take() {
                        lease.finish();
                    }
                    return Poll::Ready(None);
                }
                Ok(_) => return this.fail(Failure::Unexpected(proto_hlhv::Kind::ResHead)),
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.lease.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// How much of a response body the queen still reads, after its client
/// stopped reading (hyper stops at `content-length`, before the ResEnd
/// that follows; a HEAD request reads nothing), to see the ResEnd and keep
/// the band: past this the band is closed instead.
const DRAIN_LIMIT: usize = 256 * 1024;

/// How long that drain waits for the cell.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

impl Drop for BandBody {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        // Without a runtime (the process is exiting) the band just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(lease, self.exchange.clone()));
        }
    }
}

/// Reads what is left of a response nobody takes, up to [`DRAIN_LIMIT`]:
/// at its ResEnd the band goes back to the pool; otherwise dropping the
/// lease closes it.
async fn drain(mut lease: Lease, mut exchange: Exchange) {
    let mut left = DRAIN_LIMIT;
    let drained = tokio::time::timeout(DRAIN_WAIT, async {
        loop {
            let frame = match lease.conn().read_frame().await {
                Ok(Some(frame)) => frame,
                _ => return false,
            };
            match exchange.handle_frame(frame) {
                Ok(Step::End) => return true,
                Ok(Step::Data(data)) if data.len() <= left => left -= data.len(),
                _ => return false,
            }
        }
    })
    .await;
    if drained == Ok(true) {
        lease.finish();
    }
}

impl BandBody {
    fn fail(&mut self, failure: Failure) -> Poll<Option<Result<BodyFrame<Bytes>, BodyError>>> {
        ::metrics::counter!(metrics::FAILURES, "reason" => failure.reason()).increment(1);
        tracing::debug!(reason = failure.reason(), "response body broke off");
        // Dropping the lease closes the band.
        self.lease = None;
        Poll::Ready(Some(Err(BodyError(failure))))
    }
}
