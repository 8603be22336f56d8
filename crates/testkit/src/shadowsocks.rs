//! Shadowsocks (AEAD) servers to stand in for an Outline node: Debian's real
//! `ss-server`, and a fast in-process one built on the `shadowsocks` crate.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::shadowsocks::ProxyListener;
use ::shadowsocks::config::{ServerConfig, ServerType};
use ::shadowsocks::context::Context;
use ::shadowsocks::crypto::CipherKind;
use ::shadowsocks::net::AcceptOpts;
use ::shadowsocks::relay::socks5::Address;
use anyhow::{Context as _, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::backend::OutlineNode;

/// How long a freshly spawned `ss-server` may take to accept TCP.
const SS_SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many free ports we try when `ss-server` loses a port race.
const SS_SERVER_BIND_ATTEMPTS: usize = 5;

fn parse_method(method: &str) -> anyhow::Result<CipherKind> {
    method
        .parse::<CipherKind>()
        .map_err(|e| anyhow::anyhow!("unsupported Shadowsocks method {method:?}: {e:?}"))
}

/// The Outline-style access key (`ss://BASE64URL(method:password)@host:port`).
/// Where a Shadowsocks server listens and how to talk to it; both test
/// servers expose it (through `Deref`).
#[derive(Debug, Clone)]
pub struct SsEndpoint {
    addr: SocketAddr,
    method: String,
    password: String,
}

impl SsEndpoint {
    /// Where the server listens (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The AEAD method, e.g. `chacha20-ietf-poly1305`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The password clients must use.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A client-side config for the `shadowsocks` crate pointing at this server.
    pub fn client_config(&self) -> ServerConfig {
        ServerConfig::new(
            self.addr,
            self.password.clone(),
            parse_method(&self.method).expect("method checked at start"),
        )
        .expect("server config checked at start")
    }

    /// The Outline-style access key for this server.
    pub fn ss_url(&self) -> String {
        self.client_config().to_url()
    }

    /// This server as the backend's Outline node, for grants in tests.
    pub fn outline_node(&self) -> OutlineNode {
        let mut node = OutlineNode::new(
            self.addr.ip().to_string(),
            self.addr.port(),
            &self.method,
            &self.password,
        );
        node.access_url = self.ss_url();
        node
    }
}

/// Debian's `ss-server` (shadowsocks-libev) as a real Outline-compatible node,
/// so the gateway is tested against an implementation that is not our own.
/// The process is killed when this value is dropped.
#[derive(Debug)]
pub struct SsServer {
    child: Child,
    endpoint: SsEndpoint,
    // Holds the config file (with the password) and the log; removed on drop.
    _dir: tempfile::TempDir,
    // Keeps other programs off the port (see `reserve_port`).
    _port_guard: socket2::Socket,
}

impl SsServer {
    /// Starts `ss-server` on 127.0.0.1 at a free port and waits until it accepts
    /// TCP. The password goes in a config file, not in argv.
    pub async fn start(method: &str, password: &str) -> anyhow::Result<SsServer> {
        parse_method(method)?;
        let dir = tempfile::tempdir().context("creating a temp dir for ss-server")?;
        let mut last_error = None;
        for _ in 0..SS_SERVER_BIND_ATTEMPTS {
            let (guard, port) = reserve_port().context("reserving a free port for ss-server")?;
            let config = serde_json::json!({
                "server": "127.0.0.1",
                "server_port": port,
                "password": password,
                "method": method,
                "timeout": 60,
                "mode": "tcp_only",
                "no_delay": true,
                "reuse_port": true,
            });
            let config_path = dir.path().join("ss-server.json");
            std::fs::write(&config_path, config.to_string())
                .with_context(|| format!("writing {}", config_path.display()))?;
            let log_path = dir.path().join("ss-server.log");
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let log_err = log
                .try_clone()
                .context("cloning the ss-server log handle")?;
            let mut child = match Command::new("ss-server")
                .arg("-c")
                .arg(&config_path)
                .arg("--no-delay")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "`ss-server` is not on PATH: install it with `apt-get install shadowsocks-libev`"
                ),
                Err(e) => return Err(e).context("spawning ss-server"),
            };
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match wait_ready(&mut child, addr).await {
                Ok(()) => {
                    return Ok(SsServer {
                        child,
                        endpoint: SsEndpoint {
                            addr,
                            method: method.to_string(),
                            password: password.to_string(),
                        },
                        _dir: dir,
                        _port_guard: guard,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let lost_port_race = log.contains("in use") || log.contains("bind");
                    let e = e.context(format!("ss-server log:\n{log}"));
                    if !lost_port_race {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt ran")).context(format!(
            "ss-server failed to bind {SS_SERVER_BIND_ATTEMPTS} times"
        ))
    }
}

impl std::ops::Deref for SsServer {
    type Target = SsEndpoint;
    fn deref(&self) -> &SsEndpoint {
        &self.endpoint
    }
}

impl std::ops::Deref for InProcessSsServer {
    type Target = SsEndpoint;
    fn deref(&self) -> &SsEndpoint {
        &self.endpoint
    }
}

impl Drop for SsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until `child` accepts TCP on `addr`, failing early if it exits.
async fn wait_ready(child: &mut Child, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SS_SERVER_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("polling ss-server")? {
            bail!("ss-server exited early with {status}");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("ss-server did not accept TCP on {addr} within {SS_SERVER_START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reserves a free loopback port for a program that cannot bind port 0: the
/// returned socket is bound with `SO_REUSEPORT` but not listening, so the program
/// (started with `reuse_port`) can bind it too, other programs cannot take it,
/// and no connection is ever queued on our socket.
fn reserve_port() -> std::io::Result<(socket2::Socket, u16)> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let port = socket
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| std::io::Error::other("reserved socket has no inet address"))?;
    Ok((socket, port))
}

/// A Shadowsocks AEAD server inside the test process (tokio), for fast tests
/// that need an Outline node without spawning a program. Stopped on drop.
#[derive(Debug)]
pub struct InProcessSsServer {
    endpoint: SsEndpoint,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl InProcessSsServer {
    /// Binds 127.0.0.1:0 and relays each client to the target address it names.
    pub async fn start(method: &str, password: &str) -> anyhow::Result<InProcessSsServer> {
        let kind = parse_method(method)?;
        let cfg = ServerConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), password, kind)
            .context("Shadowsocks server config")?;
        let context = Context::new_shared(ServerType::Server);
        let mut accept_opts = AcceptOpts::default();
        accept_opts.tcp.nodelay = true;
        let listener = ProxyListener::bind_with_opts(context, &cfg, accept_opts)
            .await
            .context("binding the in-process Shadowsocks server")?;
        let addr = listener.local_addr().context("in-process ss local_addr")?;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so aborting this task ends them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _peer)) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                            conns.spawn(relay(stream));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(InProcessSsServer {
            endpoint: SsEndpoint {
                addr,
                method: method.to_string(),
                password: password.to_string(),
            },
            connections,
            task,
        })
    }

    /// How many client connections were accepted, to check per-stream upstreams.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for InProcessSsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the target address, dials it and copies both ways until either side ends.
async fn relay(
    mut client: ::shadowsocks::relay::tcprelay::proxy_stream::server::ProxyServerStream<
        tokio::net::TcpStream,
    >,
) {
    let Ok(target) = client.handshake().await else {
        return;
    };
    let upstream = match target {
        Address::SocketAddress(sa) => tokio::net::TcpStream::connect(sa).await,
        Address::DomainNameAddress(host, port) => {
            tokio::net::TcpStream::connect((host.as_str(), port)).await
        }
    };
    let Ok(upstream) = upstream else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    // Not `copy_bidirectional`: after a pending write it may retry with a
    // longer buffer, and the crate's encrypting writer then reports the longer
    // length while having sent the shorter one, silently losing bytes. Plain
    // read + `write_all` loops hand every byte over exactly once.
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let up = async {
        pump(&mut client_read, &mut upstream_write).await;
        let _ = upstream_write.shutdown().await;
    };
    let down = async {
        pump(&mut upstream_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Copies until EOF or an error, one `write_all` per read.
async fn pump(from: &mut (impl AsyncRead + Unpin), to: &mut (impl AsyncWrite + Unpin)) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::{EchoServer, ServerFirst, pseudo_random_bytes};
    use ::shadowsocks::ProxyClientStream;
    use ::shadowsocks::net::ConnectOpts;

    const TIMEOUT: Duration = Duration::from_secs(20);

    /// Round trip through a Shadowsocks server with the crate's client, writing
    /// more than one AEAD chunk. The crate's first write must fit one chunk
    /// (it asserts in debug builds), so an empty write sends the header first.
    async fn round_trip(cfg: &ServerConfig, target: SocketAddr, len: usize) {
        let context = Context::new_shared(ServerType::Local);
        let mut opts = ConnectOpts::default();
        opts.tcp.nodelay = true;
        let mut stream = ProxyClientStream::connect_with_opts(context, cfg, target, &opts)
            .await
            .expect("connect through Shadowsocks");
        let n = stream.write(&[]).await.expect("send the address header");
        assert_eq!(n, 0);
        let payload = pseudo_random_bytes(7, len);
        let (mut r, mut w) = tokio::io::split(&mut stream);
        let expected = payload.clone();
        let writer = async move {
            w.write_all(&payload).await.expect("write through ss");
            w.flush().await.expect("flush");
        };
        let reader = async move {
            let mut got = vec![0u8; expected.len()];
            r.read_exact(&mut got).await.expect("read echo through ss");
            assert!(got == expected, "echoed bytes differ");
        };
        tokio::time::timeout(TIMEOUT, async { tokio::join!(writer, reader) })
            .await
            .expect("round trip timed out");
    }

    #[tokio::test]
    async fn in_process_server_relays_with_crate_client() {
        let echo = EchoServer::start().await;
        for method in ["chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"] {
            let ss = InProcessSsServer::start(method, "pw-in-process")
                .await
                .expect("start");
            round_trip(&ss.client_config(), echo.addr(), 300_000).await;
            assert_eq!(ss.connections(), 1);
            // The access key parses back to the same server.
            let parsed = ServerConfig::from_url(&ss.ss_url()).expect("parse ss url");
            assert_eq!(parsed.method().to_string(), method);
            assert_eq!(parsed.password(), "pw-in-process");
            assert_eq!(parsed.addr().to_string(), ss.addr().to_string());
        }
    }

    #[tokio::test]
    async fn in_process_server_passes_server_first_banner() {
        let banner = ServerFirst::start(b"SSH-2.0-test\r\n").await;
        let ss = InProcessSsServer::start("aes-128-gcm", "pw")
            .await
            .expect("start");
        let context = Context::new_shared(ServerType::Local);
        let mut stream = ProxyClientStream::connect(context, &ss.client_config(), banner.addr())
            .await
            .expect("connect");
        // The crate's client sends the address header with its first write; an
        // empty one opens the upstream without application bytes.
        let n = stream.write(&[]).await.expect("send the address header");
        assert_eq!(n, 0);
        let mut got = [0u8; 14];
        tokio::time::timeout(TIMEOUT, stream.read_exact(&mut got))
            .await
            .expect("timeout")
            .expect("read banner");
        assert_eq!(&got, b"SSH-2.0-test\r\n");
    }

    #[tokio::test]
    async fn wrong_password_gets_no_relay() {
        let echo = EchoServer::start().await;
        let ss = InProcessSsServer::start("aes-256-gcm", "right")
            .await
            .expect("start");
        let cfg = ServerConfig::new(ss.addr(), "wrong", CipherKind::AES_256_GCM).expect("cfg");
        let context = Context::new_shared(ServerType::Local);
        let mut stream = ProxyClientStream::connect(context, &cfg, echo.addr())
            .await
            .expect("tcp connect");
        let _ = stream.write_all(b"hello").await;
        let mut buf = [0u8; 5];
        let res = tokio::time::timeout(TIMEOUT, stream.read_exact(&mut buf))
            .await
            .expect("timeout");
        assert!(res.is_err(), "a wrong password must not relay");
    }

    #[tokio::test]
    async fn real_ss_server_relays_with_crate_client() {
        let echo = EchoServer::start().await;
        for method in ["chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"] {
            let ss = SsServer::start(method, "pw-libev")
                .await
                .expect("start ss-server");
            round_trip(&ss.client_config(), echo.addr(), 300_000).await;
            let node = ss.outline_node();
            assert_eq!(
                (node.host.as_str(), node.port),
                ("127.0.0.1", ss.addr().port())
            );
            assert!(ServerConfig::from_url(&ss.ss_url()).is_ok());
        }
    }

    #[tokio::test]
    async fn real_ss_server_is_killed_on_drop() {
        let ss = SsServer::start("aes-128-gcm", "pw")
            .await
            .expect("start ss-server");
        let addr = ss.addr();
        // The reserved port cannot be taken by another program meanwhile.
        assert!(std::net::TcpListener::bind(addr).is_err());
        drop(ss);
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn rejects_unknown_method() {
        let err = SsServer::start("rot13", "pw").await.expect_err("must fail");
        assert!(format!("{err:#}").contains("rot13"));
        assert!(InProcessSsServer::start("rot13", "pw").await.is_err());
    }
}
