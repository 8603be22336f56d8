//! Helpers shared by the end-to-end suites that use the client SDK against
//! the `httvps-gateway` binary.
#![allow(dead_code)]

use http_body_util::{BodyExt, Empty};
use httvps_client::{ClientConfig, Secret, TargetAddr, Tunnel};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use testkit::{Grant, HttpServer, SsServer, TestBackend, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const GATEWAY: &str = env!("CARGO_BIN_EXE_httvps-gateway");
pub const TOKEN: &str = "tok-e2e-0123456789";

/// The gateway binary with its certificate (testkit's fixture), plus the
/// client settings to reach it.
pub struct Gateway(pub TestGateway);

impl std::ops::Deref for Gateway {
    type Target = TestGateway;
    fn deref(&self) -> &TestGateway {
        &self.0
    }
}

impl std::ops::DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut TestGateway {
        &mut self.0
    }
}

impl Gateway {
    /// Token-file mode (direct), with loopback targets allowed.
    pub async fn direct(extra: &[&str]) -> Gateway {
        let mut args = vec!["--allow-private-targets"];
        args.extend_from_slice(extra);
        Gateway(
            TestGateway::with_tokens(GATEWAY.as_ref(), &[TOKEN], &args)
                .await
                .expect("gateway starts"),
        )
    }

    /// Token-file mode with the default policy (private targets refused).
    pub async fn strict() -> Gateway {
        Gateway(
            TestGateway::with_tokens(GATEWAY.as_ref(), &[TOKEN], &[])
                .await
                .expect("gateway starts"),
        )
    }

    /// Backend mode: sessions validated by `backend`, secret from the environment.
    pub async fn with_backend(backend: &TestBackend, secret: &str, extra: &[&str]) -> Gateway {
        let mut args = vec!["--allow-private-targets"];
        args.extend_from_slice(extra);
        let secret = (!secret.is_empty()).then_some(secret);
        Gateway(
            TestGateway::with_backend(GATEWAY.as_ref(), &backend.url(), secret, &args)
                .await
                .expect("gateway starts"),
        )
    }

    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.url());
        config.tls.ca_file = Some(self.ca().to_path_buf());
        config
    }

    pub async fn tunnel(&self) -> Tunnel {
        Tunnel::connect(self.config(), &Secret::from(TOKEN))
            .await
            .expect("tunnel connects")
    }
}

pub fn outline_grant(ss: &SsServer, max_streams: u32) -> Grant {
    Grant {
        device_id: "dev-1".into(),
        max_streams,
        outline: Some(ss.outline_node()),
    }
}

/// Sends `len` pseudo-random bytes through an echo stream while reading the
/// echo concurrently; returns (sent hash, received hash).
pub async fn echo_round_trip(
    tunnel: &Tunnel,
    echo: std::net::SocketAddr,
    len: usize,
) -> (String, String) {
    let stream = tunnel
        .open(TargetAddr::Ip(echo))
        .await
        .expect("stream opens");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let data = testkit::pseudo_random_bytes(len as u64, len);
    let sent = testkit::sha256_hex(&data);
    let write = async move {
        for piece in data.chunks(100_000) {
            writer.write_all(piece).await.expect("write");
        }
        writer
    };
    let read = async move {
        let mut hasher = Sha256::new();
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while got < len {
            let n = reader.read(&mut buf).await.expect("read");
            assert!(n > 0, "echo ended early after {got} of {len} bytes");
            hasher.update(&buf[..n]);
            got += n;
        }
        hex(&hasher.finalize())
    };
    let (_writer, received) = tokio::join!(write, read);
    (sent, received)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// GET `path` from `http` through the tunnel with a real HTTP client; returns
/// (status, x-sha256 header, sha256 of the body, body length).
pub async fn http_get(
    tunnel: &Tunnel,
    http: &HttpServer,
    path: &str,
) -> (u16, String, String, usize) {
    let stream = tunnel
        .open(TargetAddr::Ip(http.addr()))
        .await
        .expect("stream opens");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header("host", http.addr().to_string())
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let expected = response
        .headers()
        .get("x-sha256")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut body = response.into_body();
    let mut hasher = Sha256::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            hasher.update(&data);
            len += data.len();
        }
    }
    (status, expected, hex(&hasher.finalize()), len)
}

/// SIGTERM with a download that cannot finish before the drain deadline:
/// the stream ends with the gateway's shutdown reason (not a clean end, not
/// a reset), the session with close 1001, and the gateway exits 0.
pub async fn sigterm_cuts_a_download_cleanly(gateway: &mut Gateway, tunnel: &Tunnel) {
    let http = HttpServer::start().await;
    let mut stream = tunnel.open(TargetAddr::Ip(http.addr())).await.unwrap();
    let request = format!("GET /stream/{} HTTP/1.1\r\nHost: x\r\n\r\n", 1u64 << 40);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    assert!(
        stream.read(&mut buf).await.unwrap() > 0,
        "the download started"
    );
    gateway.process().sigterm();
    let err = loop {
        match stream.read(&mut buf).await {
            Ok(0) => panic!("a cut download must not look like a clean end"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("shutdown"), "{err}");
    let reason = tokio::time::timeout(std::time::Duration::from_secs(10), tunnel.closed())
        .await
        .unwrap();
    assert!(
        matches!(
            reason,
            httvps_client::CloseReason::Gateway { code: 1001, .. }
        ),
        "{reason:?}"
    );
    let status = gateway
        .process_mut()
        .wait_exit(std::time::Duration::from_secs(10))
        .await
        .expect("gateway exits");
    assert!(status.success(), "{status:?}");
}
