//! loadgen against real sockets: testkit's HTTP server as the target, and the
//! sink fed by a raw HTTP/1.1 client (chunked, with `Expect: 100-continue`).

use std::time::Duration;

use loadgen::{Sink, SinkOptions, StreamsOptions, Target};
use testkit::HttpServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn concurrent_streams_all_complete_and_stay_open_together() {
    let server = HttpServer::start().await;
    let report = loadgen::streams::run(StreamsOptions {
        proxy: None,
        target: Target::parse(&format!("{}/stream/1024", server.url())).unwrap(),
        streams: 64,
        timeout: Duration::from_secs(20),
        hold: Duration::from_millis(10),
        max_body: 1 << 20,
    })
    .await;
    assert_eq!(report.completed, 64, "{report:?}");
    assert_eq!(report.failed, 0);
    assert_eq!(report.open_at_peak, 64);
    assert_eq!(report.body_bytes, 64 * 1024);
    let lat = report.latency_ms.expect("latencies");
    assert!(lat.min <= lat.p50 && lat.p50 <= lat.p99 && lat.p99 <= lat.max);
}

#[tokio::test]
async fn failed_streams_are_counted_by_reason() {
    let server = HttpServer::start().await;
    let report = loadgen::streams::run(StreamsOptions {
        proxy: None,
        target: Target::parse(&format!("{}/no-such-path", server.url())).unwrap(),
        streams: 5,
        timeout: Duration::from_secs(20),
        hold: Duration::ZERO,
        max_body: 1 << 20,
    })
    .await;
    assert_eq!((report.completed, report.failed), (0, 5));
    assert_eq!(report.errors.get("http status 404"), Some(&5), "{report:?}");
    assert!(report.latency_ms.is_none());
}

async fn read_answer(tcp: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // The sink answers with a Content-Length; read until the JSON line ends.
    while !buf.ends_with(b"}\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("sink answered in time")
            .unwrap();
        assert!(
            n > 0,
            "sink closed early: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).unwrap()
}

#[tokio::test]
async fn sink_counts_every_body_byte() {
    let sink = Sink::start(SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body: 1 << 30,
        max_connections: 4,
        connection_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let mut tcp = TcpStream::connect(sink.addr()).await.unwrap();

    // Content-Length with Expect: 100-continue, as curl -T sends a big file.
    let len = 3 * 1024 * 1024 + 7;
    tcp.write_all(
        format!(
            "PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut cont = [0u8; 25];
    tcp.read_exact(&mut cont).await.unwrap();
    assert!(cont.starts_with(b"HTTP/1.1 100 Continue\r\n"), "{cont:?}");
    let body = vec![0xa5u8; len];
    tcp.write_all(&body).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(&format!("{{\"bytes\":{len}}}\n")),
        "{answer}"
    );

    // Chunked, on the same keep-alive connection.
    tcp.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.ends_with("{\"bytes\":8}\n"), "{answer}");
}

#[tokio::test]
async fn sink_refuses_bodies_over_the_limit() {
    let sink = Sink::start(SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body: 1000,
        max_connections: 4,
        connection_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let mut tcp = TcpStream::connect(sink.addr()).await.unwrap();
    tcp.write_all(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0u8; 5000]).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
