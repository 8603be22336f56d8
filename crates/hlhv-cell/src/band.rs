//! A band's driver: dial, log in, then serve requests one at a time until
//! the queen closes the band (it prunes idle ones) or the leash ends.
//!
//! A request goes to the local app as soon as its body is complete; the
//! response head goes back as soon as the app sends it, and the body
//! follows piece by piece, each written and flushed before the next is
//! read from the app. A slow public client therefore slows the app down
//! (TLS and TCP buffers are the only buffers) instead of filling memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::Inbound;
use engine::publish::InboundRequest;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use proto_hlhv::cell::map::{client_ip_str, encode_path, encode_query};
use proto_hlhv::cell::{Band, BandEvent, Request, Session};
use proto_hlhv::frame::Multimap;
use tokio_util::sync::CancellationToken;

use crate::conn::FrameStream;
use crate::error::HlhvError;
use crate::local::{AppHead as _, AppLink, LocalError, MappedHead, bad_gateway_page, error_page};
use crate::publisher::Shared;

/// What every band of one publication shares.
pub(crate) struct Bands {
    pub shared: Arc<Shared>,
    pub session: Session,
    pub inbound: Option<Inbound>,
    /// Bands dialling, logging in or serving now.
    pub live: Arc<AtomicUsize>,
    /// Bands the queen asked for while `max_bands` were open: each is
    /// opened when a band closes. The queen counts every band it asked for
    /// as on its way (the Go cell opens one per NeedBand), and would not ask
    /// again for a request that waits on one we never open.
    deferred: AtomicUsize,
    next_id: AtomicU64,
    /// Cancelled when the publication ends; every band stops with it.
    cancel: CancellationToken,
}

impl Bands {
    pub fn new(
        shared: Arc<Shared>,
        session: Session,
        inbound: Option<Inbound>,
        cancel: CancellationToken,
    ) -> Bands {
        Bands {
            shared,
            session,
            inbound,
            live: Arc::new(AtomicUsize::new(0)),
            deferred: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            cancel,
        }
    }

    /// Opens `count` bands now (the queen has a request waiting), within
    /// the configured maximum.
    pub fn open(self: &Arc<Self>, count: u32) {
        let max = self.shared.config.max_bands;
        for opened in 0..count {
            if self.live.load(Ordering::SeqCst) >= max {
                tracing::warn!(
                    max_bands = max,
                    "the queen asks for another band, but max_bands are open; it opens when one closes"
                );
                let left = (count - opened) as usize;
                self.deferred.fetch_add(left, Ordering::SeqCst);
                return;
            }
            self.spawn_band();
        }
    }

    fn spawn_band(self: &Arc<Self>) {
        self.live.fetch_add(1, Ordering::SeqCst);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(run(self.clone(), format!("band{id}")));
    }

    /// A band closed: opens one the queen asked for earlier, if any.
    fn closed(self: &Arc<Self>) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        if self.cancel.is_cancelled() {
            return;
        }
        let owed = self
            .deferred
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if owed.is_ok() {
            self.spawn_band();
        }
    }
}

/// Runs one band until it ends, then frees its place.
async fn run(bands: Arc<Bands>, name: String) {
    let result = tokio::select! {
        _ = bands.cancel.cancelled() => Ok(()),
        result = serve(&bands, &name) => result,
    };
    bands.closed();
    match result {
        Ok(()) => tracing::debug!(band = %name, "band closed"),
        Err(e) => tracing::warn!(band = %name, error = %e, "band ended"),
    }
}

async fn serve(bands: &Bands, name: &str) -> Result<(), HlhvError> {
    let shared = &bands.shared;
    let mut stream = shared.dialer.dial().await?;
    let mut band = Band::new(Instant::now(), &bands.session, shared.band_config());
    // This band's own connection to the local app.
    let mut app = AppLink::new(&shared.local);
    let mut logged_in = false;
    loop {
        flush(&mut stream, &mut band).await?;
        while let Some(event) = band.poll_event() {
            match event {
                BandEvent::LoggedIn => {
                    logged_in = true;
                    tracing::debug!(band = %name, "band logged in");
                }
                BandEvent::Request(request) => {
                    serve_request(bands, name, &mut stream, &mut band, &mut app, request).await?;
                }
                BandEvent::Refused {
                    head,
                    status,
                    received,
                    sent,
                } => {
                    tracing::info!(band = %name, status, received, "request refused by the cell");
                    let line = request_line(&head);
                    if let Some(record) = record(bands, &head, &line, name) {
                        record.add_received(received as usize);
                        record.add_sent(sent as usize);
                        record.finish(status);
                    }
                }
            }
        }
        // The queued refusal (if any) goes out before the next read.
        flush(&mut stream, &mut band).await?;
        let frame = match band.poll_timeout() {
            Some(deadline) => tokio::select! {
                frame = stream.read_frame() => frame?,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    band.handle_timeout(Instant::now())?;
                    continue;
                }
            },
            // Waiting for a request drives the app connection too: an app
            // closing an idle connection is seen before the next request.
            None => app.drive(stream.read_frame()).await?,
        };
        match frame {
            Some(frame) => band.handle_frame(frame)?,
            // The queen prunes idle bands by closing them.
            None if logged_in => return Ok(()),
            None => return Err(HlhvError::BandRefused),
        }
    }
}

/// `METHOD /path?query` as the local app sees it, for the request log.
fn request_line(head: &proto_hlhv::ReqHead) -> String {
    let query = encode_query(&head.query);
    let sep = if query.is_empty() { "" } else { "?" };
    format!("{} {}{sep}{query}", head.method, encode_path(&head.path))
}

fn record(
    bands: &Bands,
    head: &proto_hlhv::ReqHead,
    line: &str,
    band: &str,
) -> Option<InboundRequest> {
    let peer = client_ip_str(head).unwrap_or("-");
    Some(bands.inbound.as_ref()?.request(peer, line, band))
}

/// How long a response head waits for the first piece of its body, to go
/// out in the same write; an app that streams (server-sent events) gets its
/// head out this much later at most.
const HEAD_WAIT: Duration = Duration::from_millis(5);

/// Writes whatever the machine has queued.
async fn flush(stream: &mut FrameStream, band: &mut Band) -> Result<(), HlhvError> {
    if let Some(bytes) = band.poll_transmit() {
        stream.write(&bytes).await?;
    }
    Ok(())
}

/// One request: to the local app, and its response back to the queen.
async fn serve_request(
    bands: &Bands,
    name: &str,
    stream: &mut FrameStream,
    band: &mut Band,
    app: &mut AppLink<'_>,
    request: Request,
) -> Result<(), HlhvError> {
    let shared = &bands.shared;
    let Request { head, body } = request;
    let body_len = body.as_ref().map(Bytes::len);
    let local = MappedHead::new(&head, body_len.map(|n| n as u64), &shared.forwarding);
    let line = format!("{} {}", local.method(), local.target);
    let record = record(bands, &head, &line, name);
    if let Some(record) = &record {
        record.add_received(body_len.unwrap_or(0));
    }
    let response = match app.send(&local, body.unwrap_or_default()).await {
        Ok(response) => response,
        Err(e) => {
            let url = app.url();
            tracing::warn!(band = %name, request = %line, error = %e, "local app did not answer");
            let (status, page) = match &e {
                LocalError::BadRequest(why) => (400, error_page(400, "Bad Request", why)),
                LocalError::Timeout(_) => (
                    504,
                    error_page(
                        504,
                        "Gateway Timeout",
                        &format!("the local app at {url} gave no response in time ({e})"),
                    ),
                ),
                _ => (502, bad_gateway_page(url, &e.to_string())),
            };
            return answer_page(stream, band, status, &page, record).await;
        }
    };
    let (parts, mut incoming) = response.into_parts();
    let status = parts.status.as_u16();
    if status < 200 {
        // Upgrade is hop-by-hop and never reaches the app; one that switches
        // protocols anyway cannot be carried (and the Go queen turns any
        // status below 200 into 502 itself).
        let why = format!("it answered {status}, which cannot be passed on");
        let page = bad_gateway_page(app.url(), &why);
        app.close();
        return answer_page(stream, band, 502, &page, record).await;
    }
    // Copied only when a value is not UTF-8 (then made so, lossily).
    let headers: Vec<(&str, std::borrow::Cow<'_, str>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    band.send_app_head(status, headers.iter().map(|(n, v)| (*n, v.as_ref())))?;
    // What is queued goes out before each wait for more of the body, so a
    // stream flows as the app produces it; but a small page that is all
    // there goes out with its head and end in one write (one TLS record
    // instead of three writes here and three reads at the queen: the HLHV
    // bench row). The head waits [`HEAD_WAIT`] at most for the first piece.
    let mut waited_for_first = false;
    while !incoming.is_end_stream() {
        let next = if !waited_for_first {
            waited_for_first = true;
            match tokio::time::timeout(HEAD_WAIT, app.drive(incoming.frame())).await {
                Ok(next) => next,
                Err(_) => {
                    flush(stream, band).await?;
                    app.drive(incoming.frame()).await
                }
            }
        } else {
            flush(stream, band).await?;
            app.drive(incoming.frame()).await
        };
        let Some(frame) = next else {
            break;
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // The status goes out (with what came of the body): closing
                // the band is the only way left to tell the queen the body
                // is incomplete.
                let _ = flush(stream, band).await;
                if let Some(record) = record {
                    record.fail(&format!("the local app broke off: {e}"));
                }
                return Err(HlhvError::LocalApp(e.to_string()));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: HLHV has no frame for them
        };
        if data.is_empty() {
            continue;
        }
        band.send_body(&data)?;
        if let Some(record) = &record {
            record.add_sent(data.len());
        }
    }
    band.send_end()?;
    flush(stream, band).await?;
    app.done();
    tracing::debug!(band = %name, request = %line, status, "served");
    if let Some(record) = record {
        record.finish(status);
    }
    Ok(())
}

/// Answers with a small HTML page.
async fn answer_page(
    stream: &mut FrameStream,
    band: &mut Band,
    status: u16,
    page: &str,
    record: Option<InboundRequest>,
) -> Result<(), HlhvError> {
    let headers: Multimap = [
        ("content-type", "text/html; charset=utf-8".to_owned()),
        ("content-length", page.len().to_string()),
        ("cache-control", "no-store".to_owned()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), vec![v]))
    .collect();
    band.respond(status, headers, page.as_bytes())?;
    flush(stream, band).await?;
    if let Some(record) = record {
        record.add_sent(page.len());
        record.finish(status);
    }
    Ok(())
}
