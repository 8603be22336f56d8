//! Test helpers: a queen in-process, a small cell written with
//! `proto_hlhv` frames over tokio-rustls, and `curl` as the public client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hlhv_queen::{CellKey, Config, Queen, RunningQueen, TlsSource};
use proto_hlhv::{Accept, Frame, FrameReader, IAm, Mount, ResHead, ResWant};
use testkit::TestCert;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const CELL_KEY: &str = "the-cell-key-0123456789";

/// A queen on loopback with a fresh certificate.
pub struct TestQueen {
    pub queen: RunningQueen,
    pub cert: Arc<TestCert>,
    pub dir: tempfile::TempDir,
}

pub fn cert() -> TestCert {
    TestCert::generate(&["localhost", "127.0.0.1"])
}

pub async fn queen(tune: impl FnOnce(&mut Config)) -> TestQueen {
    let cert = Arc::new(cert());
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        TlsSource::Pem {
            cert_pem: cert.cert_pem.clone(),
            key_pem: cert.key_pem.clone(),
        },
        CellKey::from_file_text(CELL_KEY).unwrap(),
    );
    config.limits.band_wait = Duration::from_secs(5);
    tune(&mut config);
    let queen = Queen::bind(config).await.unwrap().spawn();
    TestQueen { queen, cert, dir }
}

impl TestQueen {
    pub fn cells(&self) -> SocketAddr {
        self.queen.cells_addr()
    }

    pub fn port(&self) -> u16 {
        self.queen.https_addr().port()
    }
}

/// A framed client connection to the queen's cells listener.
pub struct Framed {
    pub stream: TlsStream<TcpStream>,
    rbuf: BytesMut,
    reader: FrameReader,
}

pub async fn dial(addr: SocketAddr, cert: &TestCert) -> Framed {
    testkit::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    Framed {
        stream,
        rbuf: BytesMut::new(),
        reader: FrameReader::default(),
    }
}

impl Framed {
    pub async fn send(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.send_raw(&frame.to_bytes()).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next frame; `None` when the queen closed the connection.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.reader.decode(&mut self.rbuf).unwrap() {
                return Some(frame);
            }
            self.rbuf.reserve(64 * 1024);
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// Logs a leash in with `key`; the Accept, or `None` when refused.
pub async fn leash(addr: SocketAddr, cert: &TestCert, key: &str) -> (Framed, Option<Accept>) {
    let mut f = dial(addr, cert).await;
    f.send(&Frame::IAm(IAm {
        conn_kind: 0,
        uuid: String::new(),
        key: key.into(),
    }))
    .await
    .unwrap();
    let accept = match f.recv().await {
        Some(Frame::Accept(a)) => Some(a),
        Some(other) => panic!("unexpected {other:?}"),
        None => None,
    };
    (f, accept)
}

/// How a test cell answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// GET: a text page describing the head; POST: the body echoed.
    Echo,
    /// A response of this many pseudo-random bytes (seed 7).
    Big(usize),
    /// Bands log in with a wrong session key.
    WrongBandKey,
    /// NeedBand is ignored: no band ever comes.
    NoBands,
    /// The first answer announces a frame over any cap.
    Oversized,
    /// GET `/n/N.bin`: N pseudo-random bytes (seed N) with a `content-length`,
    /// head, body pieces and end in one write (as the cell sends a small
    /// response).
    OneWrite,
    /// As `Echo`, but each band closes after its first response, while
    /// the queen holds it as free.
    OneRequestPerBand,
    /// `/silent…`: no answer at all; `/stall…`: the head and a first piece
    /// of an unended body, then nothing; anything else as `Echo`.
    Stalling,
}

/// A cell serving one mount.
pub struct TestCell {
    pub name: String,
    pub accept: Accept,
    pub bands: Arc<AtomicUsize>,
    /// Bands this cell closed (their sockets dropped) so far.
    pub bands_closed: tokio::sync::watch::Receiver<usize>,
    pub requests: Arc<AtomicUsize>,
    /// NeedBand frames received so far.
    pub need_bands: tokio::sync::watch::Receiver<usize>,
    leash: tokio::task::JoinHandle<()>,
}

impl Drop for TestCell {
    fn drop(&mut self) {
        self.leash.abort();
    }
}

impl TestCell {
    pub async fn start(q: &TestQueen, name: &str, host: &str, path: &str, mode: Mode) -> TestCell {
        Self::start_at(q.cells(), q.cert.clone(), CELL_KEY, name, host, path, mode).await
    }

    pub async fn start_at(
        cells: SocketAddr,
        cert: Arc<TestCert>,
        key: &str,
        name: &str,
        host: &str,
        path: &str,
        mode: Mode,
    ) -> TestCell {
        let (mut f, accept) = leash(cells, &cert, key).await;
        let accept = accept.expect("leash accepted");
        f.send(&Frame::Mount(Mount {
            host: host.into(),
            path: path.into(),
        }))
        .await
        .unwrap();
        let bands = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (closed, bands_closed) = tokio::sync::watch::channel(0);
        let ctx = BandCtx {
            addr: cells,
            cert,
            uuid: accept.uuid.clone(),
            key: if mode == Mode::WrongBandKey {
                "wrong".into()
            } else {
                accept.key.clone()
            },
            name: name.into(),
            mode,
            bands: bands.clone(),
            closed: Arc::new(closed),
            requests: requests.clone(),
        };
        let (asked, need_bands) = tokio::sync::watch::channel(0);
        let leash = tokio::spawn(async move {
            while let Some(frame) = f.recv().await {
                if let Frame::NeedBand(_) = frame {
                    asked.send_modify(|n| *n += 1);
                    if mode != Mode::NoBands {
                        tokio::spawn(band(ctx.clone()));
                    }
                }
            }
        });
        TestCell {
            name: name.into(),
            accept,
            bands,
            bands_closed,
            requests,
            need_bands,
            leash,
        }
    }

    /// Closes the leash (as a cell that quits).
    pub fn quit(&self) {
        self.leash.abort();
    }
}

#[derive(Clone)]
struct BandCtx {
    addr: SocketAddr,
    cert: Arc<TestCert>,
    uuid: String,
    key: String,
    name: String,
    mode: Mode,
    bands: Arc<AtomicUsize>,
    closed: Arc<tokio::sync::watch::Sender<usize>>,
    requests: Arc<AtomicUsize>,
}

/// Runs a band; counts it closed once its socket is gone.
async fn band(ctx: BandCtx) {
    let closed = ctx.closed.clone();
    serve_band(ctx).await;
    closed.send_modify(|n| *n += 1);
}

async fn serve_band(ctx: BandCtx) {
    let mut f = dial(ctx.addr, &ctx.cert).await;
    f.send(&Frame::IAm(IAm {
        conn_kind: 1,
        uuid: ctx.uuid.clone(),
        key: ctx.key.clone(),
    }))
    .await
    .unwrap();
    match f.recv().await {
        Some(Frame::Accept(_)) => {}
        _ => return,
    }
    ctx.bands.fetch_add(1, Ordering::SeqCst);
    while let Some(frame) = f.recv().await {
        let Frame::ReqHead(head) = frame else {
            panic!("band got {frame:?}")
        };
        ctx.requests.fetch_add(1, Ordering::SeqCst);
        if serve(&ctx, &mut f, *head).await.is_err() || ctx.mode == Mode::OneRequestPerBand {
            return;
        }
    }
}

async fn serve(ctx: &BandCtx, f: &mut Framed, head: proto_hlhv::ReqHead) -> std::io::Result<()> {
    let body: Bytes = match ctx.mode {
        Mode::Big(n) => Bytes::from(testkit::pseudo_random_bytes(7, n)),
        Mode::Stalling if head.path.starts_with("/silent") => {
            return std::future::pending().await;
        }
        Mode::Stalling if head.path.starts_with("/stall") => {
            f.send(&Frame::ResHead(ResHead {
                status_code: 200,
                headers: Default::default(),
            }))
            .await?;
            f.send(&Frame::ResBody(Bytes::from_static(b"first")))
                .await?;
            return std::future::pending().await;
        }
        Mode::OneWrite => {
            let n: usize = head.path[3..].trim_end_matches(".bin").parse().unwrap();
            let body = testkit::pseudo_random_bytes(n as u64, n);
            let mut out = Frame::ResHead(ResHead {
                status_code: 200,
                headers: [("content-length".to_owned(), vec![n.to_string()])]
                    .into_iter()
                    .collect(),
            })
            .to_bytes()
            .to_vec();
            for piece in body.chunks(64 * 1024) {
                out.extend_from_slice(&Frame::ResBody(Bytes::copy_from_slice(piece)).to_bytes());
            }
            out.extend_from_slice(&Frame::ResEnd.to_bytes());
            return f.send_raw(&out).await;
        }
        Mode::Oversized => {
            // 64 MiB announced: over the cap, whatever it is in the test.
            return f.send_raw(&[0x04, 0, 0, 0, 0x39]).await;
        }
        _ if head.method == "POST" => {
            f.send(&Frame::ResWant(ResWant { max_size: 1 << 30 }))
                .await?;
            let mut body = Vec::new();
            loop {
                match f.recv().await {
                    Some(Frame::ReqBody(b)) => body.extend_from_slice(&b),
                    Some(Frame::ReqEnd) => break,
                    other => panic!("body: {other:?}"),
                }
            }
            Bytes::from(body)
        }
        _ => Bytes::from(format!(
            "cell={} path={} proto={} host={} port={} scheme={} query={:?} cookie={:?}",
            ctx.name,
            head.path,
            head.proto,
            head.host,
            head.port,
            head.scheme,
            head.query,
            head.cookies
        )),
    };
    let headers = [
        ("x-cell".to_owned(), vec![ctx.name.clone()]),
        ("connection".to_owned(), vec!["x-drop-me".to_owned()]),
        ("x-drop-me".to_owned(), vec!["1".to_owned()]),
    ]
    .into_iter()
    .collect();
    f.send(&Frame::ResHead(ResHead {
        status_code: 200,
        headers,
    }))
    .await?;
    for piece in body.chunks(64 * 1024) {
        f.send(&Frame::ResBody(Bytes::copy_from_slice(piece)))
            .await?;
    }
    f.send(&Frame::ResEnd).await
}

/// One curl run.
pub struct Curl {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: String,
}

/// `curl -k` to `https://{host}:{port}{path}` resolved to 127.0.0.1, with
/// `--http1.1` or `--http2`, optionally POSTing a file.
pub async fn curl(port: u16, host: &str, path: &str, h2: bool, post: Option<&Path>) -> Curl {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("body");
    let head: PathBuf = dir.path().join("head");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sk", "--max-time", "20", "-o"])
        .arg(&out)
        .arg("-D")
        .arg(&head)
        .args(["-w", "%{http_code}"])
        .arg(if h2 { "--http2" } else { "--http1.1" })
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}{path}"));
    if let Some(file) = post {
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
        cmd.args(["-H", "Content-Type: application/octet-stream"]);
    }
    let output = cmd.output().await.expect("curl runs");
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Curl {
        status,
        body: std::fs::read(&out).unwrap_or_default(),
        headers: std::fs::read_to_string(&head).unwrap_or_default(),
    }
}

impl Curl {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
