//! The live cells: the mount table, each cell's band pool, and the hand-over
//! of band connections between the tasks that use them.
//!
//! `proto_hlhv::queen::BandPool` decides; this module carries its decisions
//! out. A free band's connection waits in its cell's state; a request takes
//! it there (no task hand-over: the per-request cost of the HLHV bench
//! row), after checking without waiting that the cell has neither closed
//! it nor sent anything on it, which a free band must not do; and gives it
//! back through a [`Lease`] that closes it unless the exchange ended
//! cleanly. A request that finds no free band waits for one through a
//! oneshot channel. The leash task of each cell runs the pool's timer and
//! sends its NeedBand frames ([`Cell::wake`] tells it when it has to).
//!
//! Locks are plain mutexes held for map and pool updates, never across an
//! await; oneshot sends under them never block.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use proto_hlhv::queen::{
    BandId, BandPool, Failure, LoginError, PoolAction, PoolLimits, Secret, WaiterId,
};
use proto_hlhv::route::{Aliases, MountError, MountTable, Route};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::conn::FrameConn;
use crate::metrics;

/// A band: its id in its cell's pool and its connection (boxed: a TLS
/// connection is large, and a band moves between the pool, a lease and
/// the request's futures at every request).
pub(crate) struct Band {
    pub id: BandId,
    pub conn: Box<FrameConn>,
}

type Grantee = oneshot::Sender<Result<Band, Failure>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the state consistent before anything can panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every connected cell and the mount table.
pub(crate) struct Hub {
    state: Mutex<HubState>,
    pool_limits: PoolLimits,
    next_id: AtomicU64,
}

struct HubState {
    routes: MountTable<u64>,
    cells: HashMap<u64, Arc<Cell>>,
    by_uuid: HashMap<String, Arc<Cell>>,
}

impl Hub {
    pub(crate) fn new(aliases: Aliases, pool_limits: PoolLimits) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(HubState {
                routes: MountTable::new(aliases),
                cells: HashMap::new(),
                by_uuid: HashMap::new(),
            }),
            pool_limits,
            next_id: AtomicU64::new(1),
        })
    }

    /// A fresh id for a cell or a band.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a cell that just logged in: a random uuid and a random
    /// 256-bit session key for its bands.
    pub(crate) fn register(&self, max_cells: usize) -> Result<Arc<Cell>, LoginError> {
        let mut key = [0u8; 32];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut key)
            .map_err(|_| LoginError::Full)?;
        let session: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let cell = Arc::new(Cell {
            id: self.next_id(),
            uuid: uuid::Uuid::new_v4().to_string(),
            session: Secret::new(session.into_bytes()),
            state: Mutex::new(CellState {
                pool: BandPool::new(self.pool_limits),
                free: HashMap::new(),
                waiters: HashMap::new(),
                need_band: 0,
                armed: None,
                next_waiter: 0,
            }),
            wake: Notify::new(),
            gone: CancellationToken::new(),
            band_wait: self.pool_limits.band_wait,
        });
        let mut st = lock(&self.state);
        if st.cells.len() >= max_cells {
            return Err(LoginError::Full);
        }
        st.cells.insert(cell.id, cell.clone());
        st.by_uuid.insert(cell.uuid.clone(), cell.clone());
        ::metrics::gauge!(metrics::CELLS).set(st.cells.len() as f64);
        Ok(cell)
    }

    pub(crate) fn cell_by_uuid(&self, uuid: &str) -> Option<Arc<Cell>> {
        lock(&self.state).by_uuid.get(uuid).cloned()
    }

    pub(crate) fn mount(&self, cell: &Cell, host: &str, path: &str) -> Result<String, MountError> {
        let mut st = lock(&self.state);
        let r = st.routes.mount(cell.id, host, path);
        ::metrics::gauge!(metrics::MOUNTS).set(st.routes.len() as f64);
        r
    }

    pub(crate) fn unmount(&self, cell: &Cell) -> Option<String> {
        let mut st = lock(&self.state);
        let r = st.routes.unmount(&cell.id);
        ::metrics::gauge!(metrics::MOUNTS).set(st.routes.len() as f64);
        r
    }

    /// The leash closed: the cell's mount goes, waiting requests fail, its
    /// bands close, and requests in flight on them end.
    pub(crate) fn remove(&self, cell: &Arc<Cell>) {
        {
            let mut st = lock(&self.state);
            st.routes.unmount(&cell.id);
            st.cells.remove(&cell.id);
            st.by_uuid.remove(&cell.uuid);
            ::metrics::gauge!(metrics::CELLS).set(st.cells.len() as f64);
            ::metrics::gauge!(metrics::MOUNTS).set(st.routes.len() as f64);
        }
        cell.close();
    }

    /// Routes a public request (see `proto_hlhv::route`).
    pub(crate) fn route(&self, host: &str, path: &str, query: Option<&str>) -> Route<Arc<Cell>> {
        let st = lock(&self.state);
        match st.routes.route(host, path, query) {
            Route::Cell {
                cell,
                path,
                pattern,
            } => match st.cells.get(&cell) {
                Some(cell) => Route::Cell {
                    cell: cell.clone(),
                    path,
                    pattern,
                },
                None => Route::NotFound { path },
            },
            Route::Redirect { location } => Route::Redirect { location },
            Route::NotFound { path } => Route::NotFound { path },
            Route::BadRequest => Route::BadRequest,
        }
    }

    /// Every cell (for shutdown).
    pub(crate) fn cells(&self) -> Vec<Arc<Cell>> {
        lock(&self.state).cells.values().cloned().collect()
    }
}

/// One connected cell.
pub(crate) struct Cell {
    pub id: u64,
    pub uuid: String,
    /// The key its bands log in with.
    pub session: Secret,
    state: Mutex<CellState>,
    /// Tells the leash task to send NeedBand frames and re-arm its timer.
    pub wake: Notify,
    /// Cancelled when the leash closes: exchanges in flight end.
    pub gone: CancellationToken,
    band_wait: Duration,
}

struct CellState {
    pool: BandPool,
    /// Free bands.
    free: HashMap<BandId, Band>,
    waiters: HashMap<WaiterId, Grantee>,
    /// NeedBand frames the leash task has yet to send.
    need_band: usize,
    /// When the leash task's timer is set for (the pool's timeout when it
    /// last looked): it is woken only for an earlier one.
    armed: Option<Instant>,
    next_waiter: WaiterId,
}

impl Cell {
    /// A band for one request: a free one at once, or one the cell opens
    /// (NeedBand), within the pool's bounds.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<Lease, Failure> {
        // A granted band that died just as it was handed over is retried:
        // nothing of the request was sent on it.
        for _ in 0..3 {
            let (id, rx) = loop {
                let taken = {
                    let mut st = lock(&self.state);
                    st.next_waiter += 1;
                    let id = st.next_waiter;
                    match st.pool.take(Instant::now(), id)? {
                        Some(band) => Ok((band, st.free.remove(&band))),
                        None => {
                            let (tx, rx) = oneshot::channel();
                            st.waiters.insert(id, tx);
                            self.settle(&mut st, None);
                            Err((id, rx))
                        }
                    }
                };
                let (band, dead) = match taken {
                    // Checked outside the lock: it may read the socket.
                    Ok((band, Some(mut free))) => {
                        if free.conn.is_open_and_silent() {
                            return Ok(Lease {
                                cell: self.clone(),
                                band: Some(free),
                            });
                        }
                        (band, Some(free))
                    }
                    Ok((band, None)) => (band, None),
                    Err(waiting) => break waiting,
                };
                // Closed by the cell while free (or speaking out of turn):
                // it goes, and the next free band is tried.
                debug!(cell = %self.uuid, band, "free band closed by the cell");
                drop(dead);
                let mut st = lock(&self.state);
                st.pool.handle_band_closed(Instant::now(), band);
                self.settle(&mut st, None);
            };
            let mut wait = Wait {
                cell: self.clone(),
                id,
                rx,
                received: false,
            };
            // The pool fails a waiter after band_wait; this bound only
            // guards against a leash task that stopped running the timer.
            let got =
                tokio::time::timeout(self.band_wait + Duration::from_secs(1), &mut wait.rx).await;
            let result = match got {
                Ok(Ok(result)) => {
                    wait.received = true;
                    result
                }
                Ok(Err(_)) => Err(Failure::CellGone),
                Err(_) => Err(Failure::BandWait),
            };
            let how = if result.is_ok() { "granted" } else { "failed" };
            ::metrics::counter!(metrics::BAND_WAITS, "result" => how).increment(1);
            match result {
                Ok(band) => {
                    return Ok(Lease {
                        cell: self.clone(),
                        band: Some(band),
                    });
                }
                Err(Failure::BandBroken) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Failure::BandBroken)
    }

    /// A band logged in: it serves a waiting request or becomes free.
    pub(crate) fn joined(self: &Arc<Self>, band: Band) -> Result<(), Failure> {
        let mut st = lock(&self.state);
        st.pool.handle_band_joined(Instant::now(), band.id)?;
        self.settle(&mut st, Some(band));
        Ok(())
    }

    /// A band of this cell failed its login.
    pub(crate) fn band_login_failed(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        st.pool.handle_band_login_failed(Instant::now());
        self.settle(&mut st, None);
    }

    fn release(self: &Arc<Self>, band: Band, reusable: bool) {
        let mut st = lock(&self.state);
        st.pool.release(Instant::now(), band.id, reusable);
        self.settle(&mut st, reusable.then_some(band));
    }

    /// For the leash task: the NeedBand frames to send now, and when the
    /// pool next has timed work (the leash's timer is set for it from now).
    pub(crate) fn leash_work(&self) -> (usize, Option<Instant>) {
        let mut st = lock(&self.state);
        let need = std::mem::take(&mut st.need_band);
        let timer = st.pool.poll_timeout();
        st.armed = timer;
        (need, timer)
    }

    /// Runs the pool's timed work (waits over, idle bands).
    pub(crate) fn handle_timeout(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        st.pool.handle_timeout(Instant::now());
        self.settle(&mut st, None);
    }

    fn close(self: &Arc<Self>) {
        self.gone.cancel();
        let mut st = lock(&self.state);
        st.pool.handle_leash_closed();
        self.settle(&mut st, None);
    }

    /// Carries out the pool's actions. `held` is a band whose connection
    /// the caller hands over (just joined or released): it goes to the
    /// request the pool grants it to, or to an idle task, or is closed.
    fn settle(self: &Arc<Self>, st: &mut CellState, mut held: Option<Band>) {
        while let Some(action) = st.pool.poll_action() {
            match action {
                PoolAction::NeedBand => st.need_band += 1,
                PoolAction::Grant { waiter, band } => {
                    let Some(conn) = held.take_if(|b| b.id == band) else {
                        debug!(band, "grant of a band not in hand");
                        st.pool.release(Instant::now(), band, false);
                        continue;
                    };
                    let sent = match st.waiters.remove(&waiter) {
                        Some(tx) => tx.send(Ok(conn)).map_err(|back| back.ok()),
                        None => Err(Some(conn)),
                    };
                    // The request went away: the band goes back (and may
                    // be granted to the next one in this same loop).
                    if let Err(Some(back)) = sent {
                        st.pool.release(Instant::now(), back.id, true);
                        held = Some(back);
                    }
                }
                PoolAction::Fail { waiter, failure } => {
                    if let Some(tx) = st.waiters.remove(&waiter) {
                        let _ = tx.send(Err(failure));
                    }
                }
                PoolAction::CloseBand(band) => {
                    // Closed politely (TLS close_notify) on the side;
                    // without a runtime (the process is exiting) just
                    // dropped.
                    if let Some(band) = st.free.remove(&band)
                        && let Ok(runtime) = tokio::runtime::Handle::try_current()
                    {
                        runtime.spawn(band.conn.close());
                    }
                }
            }
        }
        if let Some(band) = held
            && st.pool.is_free(band.id)
        {
            st.free.insert(band.id, band);
        }
        // The leash task is woken for NeedBand frames to send and for a
        // timer earlier than the one it has; not for every band taken or
        // given back.
        let earlier = match (st.pool.poll_timeout(), st.armed) {
            (Some(next), Some(armed)) => next < armed,
            (next, _) => next.is_some(),
        };
        if st.need_band > 0 || earlier {
            self.wake.notify_one();
        }
    }
}

/// A request waiting for a band; dropping it (the client went away) takes
/// it out of line and returns a band that arrived meanwhile.
struct Wait {
    cell: Arc<Cell>,
    id: WaiterId,
    rx: oneshot::Receiver<Result<Band, Failure>>,
    received: bool,
}

impl Drop for Wait {
    fn drop(&mut self) {
        if self.received {
            return;
        }
        let arrived = {
            let mut st = lock(&self.cell.state);
            st.pool.cancel(self.id);
            st.waiters.remove(&self.id);
            self.rx.try_recv()
        };
        if let Ok(Ok(band)) = arrived {
            self.cell.release(band, true);
        }
    }
}

/// A band taken for one request. Dropped without [`Lease::finish`] (an
/// error, a client that went away) the band is closed, never reused.
pub(crate) struct Lease {
    cell: Arc<Cell>,
    band: Option<Band>,
}

impl Lease {
    pub(crate) fn conn(&mut self) -> &mut FrameConn {
        &mut self
            .band
            .as_mut()
            .expect("a lease holds its band until finished")
            .conn
    }

    pub(crate) fn cell(&self) -> &Arc<Cell> {
        &self.cell
    }

    /// The exchange completed (ResEnd): the band serves the next request.
    pub(crate) fn finish(mut self) {
        if let Some(band) = self.band.take() {
            self.cell.release(band, true);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(band) = self.band.take() {
            self.cell.release(band, false);
        }
    }
}
