//! One public request carried over a band: the driver of
//! `proto_hlhv::queen::Exchange`.
//!
//! Up to the response head everything happens in the request's task; the
//! response body is then [`BandBody`], which reads the next ResBody frame
//! from the band only when hyper asks for the next piece, so a slow client
//! slows the cell down instead of filling the queen's memory.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame as BodyFrame, Incoming, SizeHint};
use proto_hlhv::queen::{Exchange, Failure, Step};
use proto_hlhv::{Frame, Kind, ReqHeadRef, ResHeadRef};
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

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

/// The cell's next frame's body (kind byte and payload), within the idle
/// bound (the band's own timer, not one per request).
async fn next_frame(lease: &mut Lease, idle: Duration) -> Result<Bytes, Failure> {
    let conn = lease.conn();
    conn.deadline.set(Instant::now() + idle);
    poll_fn(|cx| match conn.poll_raw_frame(cx) {
        Poll::Ready(Ok(Some(frame))) => Poll::Ready(Ok(frame)),
        Poll::Ready(Ok(None)) => Poll::Ready(Err(Failure::BandBroken)),
        Poll::Ready(Err(e)) => Poll::Ready(Err(read_failure(e))),
        Poll::Pending if conn.deadline.poll_expired(cx) => Poll::Ready(Err(Failure::Timeout)),
        Poll::Pending => Poll::Pending,
    })
    .await
}

/// Runs the exchange up to the response head. On error the lease is
/// dropped, which closes the band.
pub(crate) async fn exchange(
    mut lease: Lease,
    head: &ReqHeadRef<'_>,
    body: Incoming,
    limits: RelayLimits,
) -> Result<(ResponseHead, BandBody), Failure> {
    let gone = lease.cell().gone.clone();
    let work = async {
        let mut exchange = Exchange::begin(limits.max_piece);
        lease
            .conn()
            .write_with(|out| head.write_frame(out))
            .await
            .map_err(|_| Failure::BandBroken)?;
        let mut body = Some(body);
        loop {
            let frame = next_frame(&mut lease, limits.idle).await?;
            // The response head is read borrowing the frame's bytes and
            // turned into the response's headers at once (the HLHV bench
            // row, issue 14: an owned head, a string and a list for every
            // header, was ~8 % of the queen's CPU per request).
            if frame.first() == Some(&(Kind::ResHead as u8)) {
                let head = ResHeadRef::parse(&frame[1..]).map_err(Failure::BadFrame)?;
                exchange.handle_res_head(head.status_code)?;
                let head = ResponseHead::new(
                    head.status_code,
                    head.headers
                        .iter()
                        .map(|(n, vs)| (&**n, vs.iter().map(|v| &**v))),
                );
                return Ok((head, exchange));
            }
            let frame = Frame::parse(frame).map_err(Failure::BadFrame)?;
            match exchange.handle_frame(frame)? {
                Step::SendBody { .. } => {
                    let body = body
                        .take()
                        .ok_or(Failure::Unexpected(proto_hlhv::Kind::ResWant))?;
                    send_body(&mut lease, &mut exchange, body, limits.idle).await?;
                }
                // (Read above instead.)
                Step::Head(head) => {
                    let head = ResponseHead::new(
                        head.status_code,
                        head.headers
                            .iter()
                            .map(|(n, vs)| (n.as_str(), vs.iter().map(String::as_str))),
                    );
                    return Ok((head, exchange));
                }
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
        next: None,
        exchange,
        idle: limits.idle,
        gone: None,
    };
    Ok((head, body))
}

/// Response headers that belong to one connection, not to the response
/// (RFC 9110 §7.6.1), and that HTTP/2 forbids.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// The cell's response head as the public response's status and headers.
pub(crate) struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl ResponseHead {
    /// From the head's status and headers (names in order, each with its
    /// values): a status that is none is 502; hop-by-hop headers, those the
    /// `Connection` header names, and names or values `http` refuses are
    /// left out.
    fn new<'a, V: Iterator<Item = &'a str>>(
        status: i64,
        headers: impl Iterator<Item = (&'a str, V)> + Clone,
    ) -> ResponseHead {
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        let mut connection_named: Vec<&str> = Vec::new();
        let mut names = 0;
        for (name, values) in headers.clone() {
            names += 1;
            if name.eq_ignore_ascii_case("connection") {
                connection_named.extend(values.flat_map(|v| v.split(',')).map(str::trim));
            }
        }
        let mut out = HeaderMap::with_capacity(names);
        for (name, values) in headers {
            let hop = |named: &str| name.eq_ignore_ascii_case(named);
            if HOP_BY_HOP.iter().copied().any(hop) || connection_named.iter().copied().any(hop) {
                continue;
            }
            // Lower-cased by `HeaderName` itself.
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            for value in values {
                if let Ok(value) = HeaderValue::from_str(value) {
                    out.append(name.clone(), value);
                }
            }
        }
        ResponseHead {
            status,
            headers: out,
        }
    }
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
    /// A body piece (or the failure) read ahead, after the one before it.
    next: Option<Result<Bytes, Failure>>,
    exchange: Exchange,
    /// The bound on the cell's silence, counted by the band's deadline
    /// from the head and from each piece.
    idle: Duration,
    /// The leash's end, waited on only once the body has to wait for the
    /// cell (a small response is all there at once).
    gone: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
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
        match this.next.take() {
            Some(Ok(data)) => {
                this.look_ahead();
                return this.data(data);
            }
            Some(Err(failure)) => return this.fail(failure),
            None => {}
        }
        loop {
            let Some(lease) = this.lease.as_mut() else {
                return Poll::Ready(None);
            };
            if lease.cell().gone.is_cancelled() {
                return this.fail(Failure::BandBroken);
            }
            let frame = match lease.conn().poll_frame(cx) {
                Poll::Ready(Ok(Some(frame))) => frame,
                Poll::Ready(Ok(None)) => return this.fail(Failure::BandBroken),
                Poll::Ready(Err(e)) => return this.fail(read_failure(e)),
                Poll::Pending => {
                    let gone = this.gone.get_or_insert_with(|| {
                        Box::pin(lease.cell().gone.clone().cancelled_owned())
                    });
                    if gone.as_mut().poll(cx).is_ready() {
                        return this.fail(Failure::BandBroken);
                    }
                    if lease.conn().deadline.poll_expired(cx) {
                        return this.fail(Failure::Timeout);
                    }
                    return Poll::Pending;
                }
            };
            match this.exchange.handle_frame(frame) {
                Ok(Step::Data(data)) => {
                    let due = Instant::now() + this.idle;
                    if let Some(lease) = this.lease.as_mut() {
                        lease.conn().deadline.set(due);
                    }
                    if data.is_empty() {
                        continue;
                    }
                    this.look_ahead();
                    return this.data(data);
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
        self.lease.is_none() && self.next.is_none()
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
    fn data(&mut self, data: Bytes) -> Poll<Option<Result<BodyFrame<Bytes>, BodyError>>> {
        metrics::bytes(false, data.len());
        Poll::Ready(Some(Ok(BodyFrame::data(data))))
    }

    /// Takes the frames after a body piece that are already read: a small
    /// response comes with its ResEnd in the same read, and hyper stops
    /// asking at `content-length`, before it. Seen here, the ResEnd gives
    /// the band back at once (and the body reports its end), instead of a
    /// drain task reading it later; a further piece is kept for the next
    /// poll. Nothing more is read from the socket for this.
    fn look_ahead(&mut self) {
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        loop {
            let frame = match lease.conn().buffered_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => {
                    self.broke(read_failure(e));
                    return;
                }
            };
            match self.exchange.handle_frame(frame) {
                Ok(Step::Data(data)) if data.is_empty() => continue,
                Ok(Step::Data(data)) => self.next = Some(Ok(data)),
                Ok(Step::End) => {
                    if let Some(lease) = self.lease.take() {
                        lease.finish();
                    }
                }
                Ok(_) => self.broke(Failure::Unexpected(proto_hlhv::Kind::ResHead)),
                Err(e) => self.broke(e),
            }
            return;
        }
    }

    /// The cell broke the exchange after a piece still to be passed on:
    /// the band closes now, the client sees the failure at its next read.
    fn broke(&mut self, failure: Failure) {
        self.lease = None;
        self.next = Some(Err(failure));
    }

    fn fail(&mut self, failure: Failure) -> Poll<Option<Result<BodyFrame<Bytes>, BodyError>>> {
        ::metrics::counter!(metrics::FAILURES, "reason" => failure.reason()).increment(1);
        tracing::debug!(reason = failure.reason(), "response body broke off");
        // Dropping the lease closes the band.
        self.lease = None;
        Poll::Ready(Some(Err(BodyError(failure))))
    }
}
