//! The live stream table: one row per proxied connection, with byte counters
//! updated on the data path by atomics (no lock per read or write).
//!
//! Rates are measured by one sampler ([`StreamTable::sample`], called by the
//! engine's stats ticker on its own cadence) and stored in the rows; every
//! reader ([`StreamTable::snapshot`], events) sees the same numbers and
//! changes nothing, so what one front-end shows never depends on when
//! another one looked.
//!
//! A row can be closed on request ([`StreamTable::request_close`], the app's
//! × and `httvps streams --close`): the request is a flag in the row's
//! [`Counters`], which its [`Counted`] wrapper checks on every read and
//! write and which wakes the task parked on it, so that the copy loop that
//! drives the stream fails at once and drops both ends. The cost is a
//! relaxed atomic load per I/O call, and a short lock only when the inner
//! stream is not ready (to leave the waker). A copy loop that is blocked on
//! the other side only (a client that reads nothing and sends nothing)
//! notices when it next touches the stream.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::state::unix_now;

/// Closed streams kept for the UI's history, newest last.
const CLOSED_HISTORY: usize = 200;

/// The close reason of a row closed on request ([`StreamTable::request_close`]).
pub const CLOSED_ON_REQUEST: &str = "closed from the app";

/// A stream's state in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum StreamState {
    /// Waiting for a free slot or the gateway's answer.
    Opening,
    /// Bytes flow.
    Open,
    /// Ended.
    Closed,
}

/// One row of the table, as the UI sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StreamInfo {
    /// Engine-wide row id (unique across sessions).
    pub key: u64,
    /// The tunnel's stream id (`s1`, …) once open.
    pub stream_id: Option<String>,
    /// `host:port`.
    pub target: String,
    /// The local client (browser, app) address.
    pub client: String,
    /// `socks5`, `http_connect` or `http_forward`.
    pub protocol: String,
    /// Seconds since the Unix epoch when the connection arrived.
    pub started_unix: u64,
    /// Seconds since the Unix epoch when it closed (`None` while open): a
    /// closed row's age is how long it lived, which no longer changes.
    pub ended_unix: Option<u64>,
    /// Client → target bytes.
    pub bytes_up: u64,
    /// Target → client bytes.
    pub bytes_down: u64,
    /// Current upload rate, bytes per second.
    pub rate_up: f64,
    /// Current download rate, bytes per second.
    pub rate_down: f64,
    /// State.
    pub state: StreamState,
    /// Why it closed (`eof`, an error code and text, …).
    pub close_reason: Option<String>,
    /// Milliseconds spent waiting for a slot or the tunnel before opening.
    pub wait_ms: u64,
    /// Where the routing rules sent this connection (`tunnel`, `direct`,
    /// `block`); `None` for rows the rules do not judge (DNS, inbound).
    pub route: Option<routing::Action>,
    /// Which rule decided, as the user wrote it (`rule 2: domain-suffix
    /// corp.example → direct`), or `default → tunnel`.
    pub rule: Option<String>,
}

/// Totals across all streams of the engine's life.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Totals {
    /// Streams ever opened.
    pub streams_total: u64,
    /// Streams open now.
    pub streams_open: u64,
    /// Bytes up, all streams.
    pub bytes_up: u64,
    /// Bytes down, all streams.
    pub bytes_down: u64,
    /// Current total upload rate.
    pub rate_up: f64,
    /// Current total download rate.
    pub rate_down: f64,
    /// Connections the current session uses (a pool may hold several).
    pub connections: u32,
    /// Opens of the current session that had to wait for a free slot.
    pub slot_waits: u64,
    /// Idle streams the current session closed to free a slot.
    pub evictions: u64,
}

/// Counters shared between a row and its stream wrapper, and the row's
/// close request.
#[derive(Debug, Default)]
pub struct Counters {
    up: AtomicU64,
    down: AtomicU64,
    /// Set once the row was asked to close.
    closing: AtomicBool,
    /// The tasks waiting on the stream, by [`Waiter`]: woken by a close
    /// request.
    wakers: Mutex<[Option<Waker>; 3]>,
}

/// Who waits on a row's close request: a stream's reads, its writes, or
/// something else (the open in progress, a datagram association).
#[derive(Debug, Clone, Copy)]
pub enum Waiter {
    /// A read that is not ready.
    Read = 0,
    /// A write that is not ready.
    Write = 1,
    /// Anything else (one at a time).
    Other = 2,
}

impl Counters {
    /// Whether the row was asked to close.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Asks the row's stream to end: sets the flag and wakes the tasks
    /// waiting on it.
    pub fn request_close(&self) {
        self.closing.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Whether the row was asked to close; if not, `cx` is woken when it
    /// is. The waker is stored before the flag is read again, and
    /// [`Counters::request_close`] sets the flag before it takes the
    /// wakers (both under the same lock), so no request is missed.
    pub fn poll_closing(&self, cx: &mut Context<'_>, waiter: Waiter) -> bool {
        if self.is_closing() {
            return true;
        }
        {
            let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut wakers[waiter as usize];
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        self.is_closing()
    }

    /// Resolves once the row is asked to close.
    pub async fn closing(&self) {
        std::future::poll_fn(|cx| {
            if self.poll_closing(cx, Waiter::Other) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Counts `n` bytes sent towards the target.
    pub fn add_up(&self, n: usize) {
        self.up.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` bytes received from the target.
    pub fn add_down(&self, n: usize) {
        self.down.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Row {
    info: StreamInfo,
    counters: Arc<Counters>,
    /// Counter values and time at the previous sample, for rates.
    last: (u64, u64, Instant),
}

#[derive(Debug, Default)]
struct Inner {
    next_key: u64,
    open: BTreeMap<u64, Row>,
    closed: VecDeque<StreamInfo>,
    streams_total: u64,
    /// Bytes of streams no longer in `open`.
    closed_up: u64,
    closed_down: u64,
}

/// The table. Cheap to clone; all clones see the same rows.
#[derive(Debug, Clone, Default)]
pub struct StreamTable {
    inner: Arc<Mutex<Inner>>,
    /// Told when a row opens, so an idle sampler can sleep until then.
    opened: Arc<tokio::sync::Notify>,
}

impl StreamTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once a row has opened since the last call returned (a row
    /// opened meanwhile counts: no opening is missed).
    pub async fn row_opened(&self) {
        self.opened.notified().await;
    }

    /// How many rows are open.
    pub fn open_count(&self) -> usize {
        self.lock().open.len()
    }

    /// Adds a row for a connection that is being opened.
    pub fn insert(&self, target: String, client: String, protocol: &str) -> (u64, Arc<Counters>) {
        self.opened.notify_one();
        let mut inner = self.lock();
        inner.next_key += 1;
        let key = inner.next_key;
        let counters = Arc::new(Counters::default());
        let info = StreamInfo {
            key,
            stream_id: None,
            target,
            client,
            protocol: protocol.to_owned(),
            started_unix: unix_now(),
            ended_unix: None,
            bytes_up: 0,
            bytes_down: 0,
            rate_up: 0.0,
            rate_down: 0.0,
            state: StreamState::Opening,
            close_reason: None,
            wait_ms: 0,
            route: None,
            rule: None,
        };
        inner.open.insert(
            key,
            Row {
                info,
                counters: counters.clone(),
                last: (0, 0, Instant::now()),
            },
        );
        (key, counters)
    }

    /// Records the routing decision of a row (before it opens, so that a
    /// blocked or failed connection keeps it in the history).
    pub fn route(&self, key: u64, action: routing::Action, rule: String) {
        if let Some(row) = self.lock().open.get_mut(&key) {
            row.info.route = Some(action);
            row.info.rule = Some(rule);
        }
    }

    /// Marks a row open with its tunnel stream id.
    pub fn opened(&self, key: u64, stream_id: &str, wait_ms: u64) -> Option<StreamInfo> {
        let mut inner = self.lock();
        let row = inner.open.get_mut(&key)?;
        row.info.stream_id = Some(stream_id.to_owned());
        row.info.state = StreamState::Open;
        row.info.wait_ms = wait_ms;
        inner.streams_total += 1;
        Some(inner.open.get(&key)?.info.clone())
    }

    /// Closes a row, moving it to the history.
    pub fn close(&self, key: u64, reason: String) -> Option<StreamInfo> {
        let mut inner = self.lock();
        let mut row = inner.open.remove(&key)?;
        let (up, down) = (
            row.counters.up.load(Ordering::Relaxed),
            row.counters.down.load(Ordering::Relaxed),
        );
        row.info.bytes_up = up;
        row.info.bytes_down = down;
        row.info.rate_up = 0.0;
        row.info.rate_down = 0.0;
        row.info.state = StreamState::Closed;
        row.info.close_reason = Some(reason);
        row.info.ended_unix = Some(unix_now());
        inner.closed_up += up;
        inner.closed_down += down;
        if inner.closed.len() == CLOSED_HISTORY {
            inner.closed.pop_front();
        }
        inner.closed.push_back(row.info.clone());
        Some(row.info)
    }

    /// Asks open row `key` to close: its stream fails with
    /// [`CLOSED_ON_REQUEST`] at its next read or write (at once if it
    /// waits on one), which ends the connection both ways, and the row
    /// closes with that reason. A row still opening gives up its wait.
    /// Returns the row as it is now; `None` if no open row has that key.
    pub fn request_close(&self, key: u64) -> Option<StreamInfo> {
        let (counters, info) = {
            let inner = self.lock();
            let row = inner.open.get(&key)?;
            (row.counters.clone(), row.info.clone())
        };
        counters.request_close();
        Some(info)
    }

    /// Measures every open row's rates since the previous sample and stores
    /// them. Only the sampler (the engine's stats ticker) calls this; readers
    /// take [`StreamTable::snapshot`].
    pub fn sample(&self) {
        self.sample_at(Instant::now());
    }

    fn sample_at(&self, now: Instant) {
        let mut inner = self.lock();
        for row in inner.open.values_mut() {
            let up = row.counters.up.load(Ordering::Relaxed);
            let down = row.counters.down.load(Ordering::Relaxed);
            let (last_up, last_down, at) = row.last;
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs <= 0.0 {
                continue;
            }
            row.info.rate_up = up.saturating_sub(last_up) as f64 / secs;
            row.info.rate_down = down.saturating_sub(last_down) as f64 / secs;
            row.last = (up, down, now);
        }
    }

    /// Current rows (open first, then recent closed ones) and totals: byte
    /// counts as of now, rates as of the last [`StreamTable::sample`]. Reads
    /// only; any number of callers see the same rates.
    pub fn snapshot(&self) -> (Vec<StreamInfo>, Vec<StreamInfo>, Totals) {
        let inner = self.lock();
        let mut totals = Totals {
            streams_total: inner.streams_total,
            bytes_up: inner.closed_up,
            bytes_down: inner.closed_down,
            ..Totals::default()
        };
        let mut open = Vec::with_capacity(inner.open.len());
        for row in inner.open.values() {
            let mut info = row.info.clone();
            info.bytes_up = row.counters.up.load(Ordering::Relaxed);
            info.bytes_down = row.counters.down.load(Ordering::Relaxed);
            totals.bytes_up += info.bytes_up;
            totals.bytes_down += info.bytes_down;
            totals.rate_up += info.rate_up;
            totals.rate_down += info.rate_down;
            if info.state == StreamState::Open {
                totals.streams_open += 1;
            }
            open.push(info);
        }
        let closed = inner.closed.iter().cloned().collect();
        (open, closed, totals)
    }
}

/// Called once when a [`Counted`] stream is dropped, with how it ended.
type OnClose = Box<dyn FnOnce(String) + Send>;

/// Wraps a stream, counts the bytes that cross it into a table row, and
/// reports how it ended (`eof`, the first I/O error, or closed by the client)
/// when dropped.
pub struct Counted<S> {
    inner: S,
    counters: Arc<Counters>,
    /// `eof` once a read returned no bytes, or the first I/O error.
    outcome: Option<String>,
    on_close: Option<OnClose>,
}

impl<S> Counted<S> {
    /// Counts `inner`'s traffic into `counters`: reads are "down", writes "up".
    pub fn new(inner: S, counters: Arc<Counters>) -> Self {
        Counted {
            inner,
            counters,
            outcome: None,
            on_close: None,
        }
    }

    /// Calls `f` with the stream's outcome when it is dropped.
    pub fn on_close(mut self, f: impl FnOnce(String) + Send + 'static) -> Self {
        self.on_close = Some(Box::new(f));
        self
    }

    fn note<T>(&mut self, result: &Poll<io::Result<T>>) {
        if let Poll::Ready(Err(e)) = result {
            self.outcome.get_or_insert_with(|| e.to_string());
        }
    }

    /// The error every I/O call returns once the row was asked to close;
    /// the request is the outcome, whatever came before (an `eof` one way).
    fn closed_on_request<T>(&mut self) -> Poll<io::Result<T>> {
        self.outcome = Some(CLOSED_ON_REQUEST.to_owned());
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            CLOSED_ON_REQUEST,
        )))
    }

    /// Checks the close request around an I/O call: before it, and, when
    /// the call is not ready, again with the waker left (so that a request
    /// wakes the task).
    fn guarded<T>(
        &mut self,
        cx: &mut Context<'_>,
        waiter: Waiter,
        io: impl FnOnce(&mut S, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.counters.is_closing() {
            return self.closed_on_request();
        }
        let result = io(&mut self.inner, cx);
        if result.is_pending() && self.counters.poll_closing(cx, waiter) {
            return self.closed_on_request();
        }
        result
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = self.guarded(cx, Waiter::Read, |inner, cx| {
            Pin::new(inner).poll_read(cx, buf)
        });
        let n = buf.filled().len() - before;
        self.counters.add_down(n);
        if matches!(result, Poll::Ready(Ok(()))) && n == 0 && buf.remaining() > 0 {
            self.outcome.get_or_insert_with(|| "eof".to_owned());
        }
        self.note(&result);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = self.guarded(cx, Waiter::Write, |inner, cx| {
            Pin::new(inner).poll_write(cx, buf)
        });
        if let Poll::Ready(Ok(n)) = &result {
            self.counters.add_up(*n);
        }
        self.note(&result);
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guarded(cx, Waiter::Write, |inner, cx| {
            Pin::new(inner).poll_flush(cx)
        })
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        if let Some(on_close) = self.on_close.take() {
            on_close(
                self.outcome
                    .take()
                    .unwrap_or_else(|| "closed by the client".to_owned()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_idle_sampler_wakes_for_each_opened_row() {
        let table = StreamTable::default();
        let waiting = tokio::time::timeout(Duration::from_millis(50), table.row_opened()).await;
        assert!(waiting.is_err(), "nothing opened: no wake-up");
        // Opened before anyone waits: the next wait returns at once.
        table.insert("a.example:443".into(), "127.0.0.1:1".into(), "socks5");
        tokio::time::timeout(Duration::from_secs(5), table.row_opened())
            .await
            .expect("the opened row wakes the sampler");
        assert_eq!(table.open_count(), 1);
        // And while one waits.
        let waiter = {
            let table = table.clone();
            tokio::spawn(async move { table.row_opened().await })
        };
        tokio::task::yield_now().await;
        table.insert("b.example:443".into(), "127.0.0.1:2".into(), "socks5");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }

    #[tokio::test]
    async fn counts_bytes_and_keeps_history() {
        let table = StreamTable::default();
        let (key, counters) =
            table.insert("example.com:80".into(), "127.0.0.1:5000".into(), "socks5");
        table.opened(key, "s1", 3).unwrap();
        let (a, mut b) = tokio::io::duplex(1024);
        let mut counted = Counted::new(a, counters);
        counted.write_all(b"hello").await.unwrap();
        b.write_all(b"worlds!").await.unwrap();
        let mut buf = [0u8; 7];
        counted.read_exact(&mut buf).await.unwrap();
        let (open, closed, totals) = table.snapshot();
        assert_eq!(open.len(), 1);
        assert!(closed.is_empty());
        assert_eq!((open[0].bytes_up, open[0].bytes_down), (5, 7));
        assert_eq!(
            (totals.bytes_up, totals.bytes_down, totals.streams_open),
            (5, 7, 1)
        );
        let info = table.close(key, "eof".into()).unwrap();
        assert_eq!(info.state, StreamState::Closed);
        let (open, closed, totals) = table.snapshot();
        assert!(open.is_empty());
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (totals.bytes_up, totals.bytes_down, totals.streams_total),
            (5, 7, 1)
        );
    }

    #[test]
    fn rates_come_from_the_sampler_and_reading_changes_nothing() {
        let table = StreamTable::default();
        let (key, counters) =
            table.insert("example.com:443".into(), "127.0.0.1:5000".into(), "socks5");
        table.opened(key, "s1", 0).unwrap();
        let start = table.lock().open[&key].last.2;
        counters.add_up(1_000);
        counters.add_down(4_000);

        // Bytes show at once; rates wait for the sampler, however often
        // anyone reads.
        let (open, _, totals) = table.snapshot();
        assert_eq!((open[0].bytes_up, open[0].bytes_down), (1_000, 4_000));
        assert_eq!((open[0].rate_up, open[0].rate_down), (0.0, 0.0));
        assert_eq!((totals.rate_up, totals.rate_down), (0.0, 0.0));

        table.sample_at(start + Duration::from_secs(2));
        let first = table.snapshot();
        let second = table.snapshot();
        assert_eq!(first, second, "two snapshots in a row agree");
        assert_eq!((first.0[0].rate_up, first.0[0].rate_down), (500.0, 2_000.0));
        assert_eq!((first.2.rate_up, first.2.rate_down), (500.0, 2_000.0));

        // The next sample measures from the previous one.
        counters.add_down(1_000);
        table.sample_at(start + Duration::from_secs(3));
        let (open, _, totals) = table.snapshot();
        assert_eq!((open[0].rate_up, open[0].rate_down), (0.0, 1_000.0));
        assert_eq!(open[0].bytes_down, 5_000);
        assert_eq!(totals.rate_down, 1_000.0);
        assert_eq!(table.snapshot().0, open);
    }

    #[tokio::test]
    async fn a_close_request_wakes_a_waiting_read_and_is_the_outcome() {
        let table = StreamTable::default();
        let (key, counters) =
            table.insert("example.com:80".into(), "127.0.0.1:5000".into(), "socks5");
        table.opened(key, "s1", 0).unwrap();
        let (a, mut b) = tokio::io::duplex(64);
        let closer = table.clone();
        let mut counted =
            Counted::new(a, counters.clone()).on_close(move |r| drop(closer.close(key, r)));
        // One way ends first: the request still names the outcome.
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(counted.read(&mut buf).await.unwrap(), 2);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let err = counted.read(&mut buf).await.unwrap_err();
            (err, counted)
        });
        // The read parks on the empty pipe (the test runtime has one thread).
        tokio::task::yield_now().await;
        assert!(!reader.is_finished());
        assert_eq!(table.request_close(key).unwrap().key, key);
        let (err, mut counted) = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the read was woken")
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(err.to_string(), CLOSED_ON_REQUEST);
        // Every later call fails the same way, writes included.
        assert!(counted.write_all(b"more").await.is_err());
        assert!(table.snapshot().1.is_empty(), "closed only when dropped");
        drop(counted);
        let (open, closed, _) = table.snapshot();
        assert!(open.is_empty());
        assert_eq!(closed[0].close_reason.as_deref(), Some(CLOSED_ON_REQUEST));
        assert_eq!(closed[0].bytes_down, 2);
        assert!(table.request_close(key).is_none(), "no open row any more");
    }

    #[tokio::test]
    async fn closing_resolves_on_request() {
        let counters = Arc::new(Counters::default());
        let waiter = counters.clone();
        let task = tokio::spawn(async move { waiter.closing().await });
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        counters.request_close();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("woken")
            .unwrap();
        assert!(counters.is_closing());
    }

    #[tokio::test]
    async fn reports_how_the_stream_ended() {
        let (a, b) = tokio::io::duplex(64);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut counted = Counted::new(a, Arc::default()).on_close(move |r| tx.send(r).unwrap());
        drop(b);
        let mut buf = [0u8; 8];
        assert_eq!(counted.read(&mut buf).await.unwrap(), 0);
        drop(counted);
        assert_eq!(rx.recv().unwrap(), "eof");

        let (a, _b) = tokio::io::duplex(64);
        let (tx, rx) = std::sync::mpsc::channel();
        drop(Counted::new(a, Arc::default()).on_close(move |r| tx.send(r).unwrap()));
        assert_eq!(rx.recv().unwrap(), "closed by the client");
    }
}
