//! An HTTP/1.1 server that reads every request body to the end, throws it
//! away and answers `200 {"bytes":N}` with the number of body bytes it read.
//!
//! nginx can discard a body too, but when a location answers before reading
//! it (`return 200`), nginx replies at once and discards in the background,
//! and curl then stops sending: the upload would not be measured. Answering
//! only after the last byte, with the count, lets the benchmark check that the
//! whole file went through. hyper answers `Expect: 100-continue` as the body
//! is polled, and reads `Content-Length` and chunked bodies alike.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// How the sink listens and what it allows.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Where to listen; port 0 picks one.
    pub listen: SocketAddr,
    /// Largest body read; a larger one gets 413 once the limit is passed.
    pub max_body: u64,
    /// Most simultaneous connections; more are closed at once.
    pub max_connections: usize,
    /// Longest life of one connection.
    pub connection_timeout: Duration,
}

/// A running sink; dropping it stops accepting.
pub struct Sink {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Sink {
    /// Binds and starts accepting.
    pub async fn start(opts: SinkOptions) -> io::Result<Sink> {
        let listener = TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, Arc::new(opts)));
        Ok(Sink { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    pub async fn run_forever(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, opts: Arc<SinkOptions>) {
    let limiter = Arc::new(Semaphore::new(opts.max_connections));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // EMFILE and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = limiter.clone().try_acquire_owned() else {
            continue; // over the limit: dropping the socket closes it
        };
        let _ = tcp.set_nodelay(true);
        let opts = opts.clone();
        tokio::spawn(async move {
            let max_body = opts.max_body;
            let service = hyper::service::service_fn(move |req| async move {
                Ok::<_, Infallible>(discard(req, max_body).await)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(opts.connection_timeout, conn).await;
            drop(permit);
        });
    }
}

async fn discard(req: Request<Incoming>, max_body: u64) -> Response<Full<Bytes>> {
    let mut body = req.into_body();
    let mut bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                    if bytes > max_body {
                        return answer(StatusCode::PAYLOAD_TOO_LARGE, bytes);
                    }
                }
            }
            Err(_) => return answer(StatusCode::BAD_REQUEST, bytes),
        }
    }
    answer(StatusCode::OK, bytes)
}

fn answer(status: StatusCode, bytes: u64) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{{\"bytes\":{bytes}}}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
