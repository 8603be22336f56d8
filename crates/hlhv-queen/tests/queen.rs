//! The queen over real TLS on loopback: test cells written with
//! `proto_hlhv` frames, curl as the public client (HTTP/1.1 and HTTP/2).

mod util;

use std::time::{Duration, Instant};

use proto_hlhv::{Frame, IAm};
use util::{Mode, TestCell, curl, dial, leash, queen};

#[tokio::test]
async fn routes_exact_prefix_aliases_and_redirects() {
    let q = queen(|_| {}).await;
    let _a = TestCell::start(&q, "a", "demo.example", "/a/", Mode::Echo).await;
    let _ab = TestCell::start(&q, "ab", "demo.example", "/a/b/", Mode::Echo).await;
    let _exact = TestCell::start(&q, "exact", "demo.example", "/a/page.html", Mode::Echo).await;
    let _local = TestCell::start(&q, "local", "localhost", "/", Mode::Echo).await;
    let port = q.port();
    for h2 in [false, true] {
        let r = curl(port, "demo.example", "/a/b/c.txt?x=1&x=2", h2, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        assert!(text.starts_with("cell=ab path=/c.txt"), "{text}");
        assert!(text.contains("host=demo.example") && text.contains(&format!("port={port}")));
        assert!(
            text.contains("scheme=https") && text.contains(r#""x": ["1", "2"]"#),
            "{text}"
        );
        let proto = if h2 { "HTTP/2.0" } else { "HTTP/1.1" };
        assert!(text.contains(&format!("proto={proto}")), "{text}");
        assert!(r.headers.to_ascii_lowercase().contains("x-cell: ab"));
        assert!(
            !r.headers.to_ascii_lowercase().contains("x-drop-me"),
            "headers named by Connection are dropped: {}",
            r.headers
        );
        let r = curl(port, "demo.example", "/a/x.js", h2, None).await;
        assert!(r.text().starts_with("cell=a path=/x.js"), "{}", r.text());
        let r = curl(port, "DEMO.example", "/a/page.html", h2, None).await;
        assert!(r.text().starts_with("cell=exact path=/ "), "{}", r.text());
        // The loopback names are one host, with any port.
        for host in ["127.0.0.1", "localhost"] {
            let r = curl(port, host, "/deep/file.css", h2, None).await;
            assert!(
                r.text().starts_with("cell=local path=/deep/file.css"),
                "{}",
                r.text()
            );
        }
        // No extension, no slash: 301 to path/, query kept.
        let r = curl(port, "demo.example", "/a/b?q=1", h2, None).await;
        assert_eq!(r.status, 301);
        assert!(
            r.headers
                .to_ascii_lowercase()
                .contains("location: /a/b/?q=1"),
            "{}",
            r.headers
        );
        let r = curl(port, "nothing.example", "/x.png", h2, None).await;
        assert_eq!(r.status, 404);
        assert!(r.text().contains("No cell is mounted"));
    }
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_bodies_arrive_whole_including_the_last_piece() {
    let q = queen(|c| c.limits.max_body_piece = 1024).await;
    let _cell = TestCell::start(&q, "echo", "demo.example", "/", Mode::Echo).await;
    for size in [0usize, 1, 1024, 1025, 100_003] {
        let data = testkit::pseudo_random_bytes(size as u64, size);
        let file = q.dir.path().join(format!("body-{size}"));
        std::fs::write(&file, &data).unwrap();
        for h2 in [false, true] {
            let r = curl(q.port(), "demo.example", "/upload.bin", h2, Some(&file)).await;
            assert_eq!(r.status, 200, "{size} bytes, h2={h2}");
            assert!(
                r.body == data,
                "{size} bytes, h2={h2}: got {} bytes",
                r.body.len()
            );
        }
    }
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_large_response_streams_byte_identical() {
    let q = queen(|_| {}).await;
    let size = 32 * 1024 * 1024;
    let _cell = TestCell::start(&q, "big", "demo.example", "/", Mode::Big(size)).await;
    let want = testkit::sha256_hex(&testkit::pseudo_random_bytes(7, size));
    for h2 in [false, true] {
        let r = curl(q.port(), "demo.example", "/big.bin", h2, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), size, "h2={h2}");
        assert_eq!(testkit::sha256_hex(&r.body), want, "h2={h2}");
    }
    q.queen.shutdown().await.unwrap();
}

/// A response whose head, body and end arrive in one read, with a
/// `content-length` (hyper stops reading the body there, before the end):
/// the queen takes the end with the last piece it passes on, and the band
/// goes back for the next request (one band serves every request in turn).
#[tokio::test]
async fn a_response_read_in_one_go_gives_its_band_back_at_once() {
    let q = queen(|_| {}).await;
    let cell = TestCell::start(&q, "one", "demo.example", "/", Mode::OneWrite).await;
    for size in [1usize, 1024, 65_536, 65_537, 200_000] {
        for h2 in [false, true] {
            let r = curl(
                q.port(),
                "demo.example",
                &format!("/n/{size}.bin"),
                h2,
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{size} bytes, h2={h2}");
            assert!(
                r.body == testkit::pseudo_random_bytes(size as u64, size),
                "{size} bytes, h2={h2}: got {} bytes",
                r.body.len()
            );
        }
    }
    let bands = cell.bands.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(bands, 1, "every request went to the band the first left");
    assert_eq!(cell.requests.load(std::sync::atomic::Ordering::SeqCst), 10);
    q.queen.shutdown().await.unwrap();
}

/// A cell that closes a band the queen holds as free: the next request
/// notices before sending anything on it, and gets a new band instead of a
/// 502.
#[tokio::test]
async fn a_free_band_the_cell_closed_is_not_used() {
    let q = queen(|_| {}).await;
    let cell = TestCell::start(&q, "once", "demo.example", "/", Mode::OneRequestPerBand).await;
    let mut closed = cell.bands_closed.clone();
    for i in 0..3 {
        for h2 in [false, true] {
            let r = curl(q.port(), "demo.example", &format!("/r{i}.txt"), h2, None).await;
            assert_eq!(r.status, 200, "request {i}, h2={h2}: {}", r.text());
            // The cell has closed the band (on loopback its FIN is at the
            // queen's socket once the close returns).
            let served = 2 * i + usize::from(h2) + 1;
            closed.wait_for(|n| *n >= served).await.unwrap();
        }
    }
    assert_eq!(cell.bands.load(std::sync::atomic::Ordering::SeqCst), 6);
    q.queen.shutdown().await.unwrap();
}

/// A cell that goes silent gets the response timeout, before the head
/// (504) and inside the body (a cut response), the same on every band and
/// every request, however long the bands have lived.
#[tokio::test]
async fn a_silent_cell_times_out_every_time() {
    let q = queen(|c| c.limits.response_timeout = Duration::from_millis(300)).await;
    let _cell = TestCell::start(&q, "stall", "demo.example", "/", Mode::Stalling).await;
    for round in 0..2 {
        let r = curl(q.port(), "demo.example", "/fine.txt", false, None).await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        let started = Instant::now();
        let r = curl(q.port(), "demo.example", "/silent.txt", false, None).await;
        assert_eq!(r.status, 504, "round {round}: {}", r.text());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "round {round}: {took:?}"
        );
        let started = Instant::now();
        let r = curl(q.port(), "demo.example", "/stall.txt", true, None).await;
        assert_eq!(r.text(), "first", "round {round}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "round {round}: {took:?}"
        );
        // Long enough for the first timers to have fired.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrent_requests_grow_the_bands() {
    let q = queen(|_| {}).await;
    let cell = TestCell::start(&q, "many", "demo.example", "/", Mode::Echo).await;
    let port = q.port();
    let runs: Vec<_> = (0..16)
        .map(|i| {
            tokio::spawn(async move {
                curl(
                    port,
                    "demo.example",
                    &format!("/r{i}.txt"),
                    i % 2 == 0,
                    None,
                )
                .await
            })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let r = run.await.unwrap();
        assert_eq!(r.status, 200, "request {i}");
        assert!(r.text().contains(&format!("path=/r{i}.txt")));
    }
    let bands = cell.bands.load(std::sync::atomic::Ordering::SeqCst);
    assert!(bands > 1, "NeedBand opened several bands, got {bands}");
    assert!(bands <= 16);
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_wrong_leash_key_and_unknown_conn_kinds_are_closed() {
    let q = queen(|_| {}).await;
    let (_, accept) = leash(q.cells(), &q.cert, "not-the-key").await;
    assert!(accept.is_none(), "refused without an Accept");
    let started = Instant::now();
    let mut f = dial(q.cells(), &q.cert).await;
    f.send(&Frame::IAm(IAm {
        conn_kind: 2,
        uuid: String::new(),
        key: util::CELL_KEY.into(),
    }))
    .await
    .unwrap();
    assert!(f.recv().await.is_none());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "closed at once"
    );
    // A band for a cell that does not exist.
    let mut f = dial(q.cells(), &q.cert).await;
    f.send(&Frame::IAm(IAm {
        conn_kind: 1,
        uuid: "nobody".into(),
        key: "x".into(),
    }))
    .await
    .unwrap();
    assert!(f.recv().await.is_none());
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_band_login_fails_the_request_fast() {
    let q = queen(|c| c.limits.band_wait = Duration::from_secs(10)).await;
    let _cell = TestCell::start(&q, "bad", "demo.example", "/", Mode::WrongBandKey).await;
    let started = Instant::now();
    let r = curl(q.port(), "demo.example", "/x.txt", false, None).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_closing_leash_fails_waiting_requests_fast() {
    let q = queen(|c| c.limits.band_wait = Duration::from_secs(10)).await;
    let cell = TestCell::start(&q, "mute", "demo.example", "/", Mode::NoBands).await;
    let port = q.port();
    let waiting =
        tokio::spawn(async move { curl(port, "demo.example", "/x.txt", true, None).await });
    // The request waits for a band once the queen has asked for one.
    let mut asked = cell.need_bands.clone();
    tokio::time::timeout(Duration::from_secs(5), asked.wait_for(|n| *n > 0))
        .await
        .expect("the queen asks for a band")
        .unwrap();
    let started = Instant::now();
    cell.quit();
    let r = waiting.await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The mount went with the leash.
    let r = curl(port, "demo.example", "/x.txt", false, None).await;
    assert_eq!(r.status, 404);
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_frame_closes_the_band_and_gives_502() {
    let q = queen(|c| c.limits.max_frame = 1024 * 1024).await;
    let cell = TestCell::start(&q, "huge", "demo.example", "/", Mode::Oversized).await;
    let r = curl(q.port(), "demo.example", "/x.txt", false, None).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("over the"), "{}", r.text());
    let r = curl(q.port(), "demo.example", "/y.txt", true, None).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        cell.bands.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the broken band was not reused"
    );
    q.queen.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_login_does_not_block_others_and_is_closed_after_the_timeout() {
    let q = queen(|_| {}).await;
    // Connected, TLS done, never says who it is.
    let mut silent = dial(q.cells(), &q.cert).await;
    let started = Instant::now();
    let (_, accept) = leash(q.cells(), &q.cert, util::CELL_KEY).await;
    assert!(accept.is_some());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(silent.recv().await.is_none(), "closed");
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(500) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    q.queen.shutdown().await.unwrap();
}

/// Malformed JSON, an unknown frame kind, a band with the wrong session key
/// and garbage on a leash each close only their own connection: a cell
/// that behaves keeps serving through all of it.
#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let q = queen(|_| {}).await;
    let good = TestCell::start(&q, "good", "demo.example", "/", Mode::Echo).await;
    let r = curl(q.port(), "demo.example", "/before.txt", false, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A login whose JSON does not parse.
    let mut f = dial(q.cells(), &q.cert).await;
    f.send_raw(b"\0\0\0\x06\x00{bad}").await.unwrap();
    assert!(f.recv().await.is_none(), "malformed JSON closes");
    // A frame kind HLHV does not have.
    let mut f = dial(q.cells(), &q.cert).await;
    f.send_raw(b"\0\0\0\x01\x7f").await.unwrap();
    assert!(f.recv().await.is_none(), "an unknown kind closes");
    // A band of the good cell with a wrong session key.
    let mut f = dial(q.cells(), &q.cert).await;
    f.send(&Frame::IAm(IAm {
        conn_kind: 1,
        uuid: good.accept.uuid.clone(),
        key: "not the session key".into(),
    }))
    .await
    .unwrap();
    assert!(f.recv().await.is_none(), "a wrong band key closes");
    // A second cell that sends garbage on its leash after logging in.
    let (mut rogue, accept) = leash(q.cells(), &q.cert, util::CELL_KEY).await;
    assert!(accept.is_some());
    rogue.send_raw(b"\0\0\0\x04\x10{{{").await.unwrap();
    assert!(
        rogue.recv().await.is_none(),
        "a malformed Mount closes its leash"
    );
    // The good cell never noticed.
    let r = curl(q.port(), "demo.example", "/after.txt", true, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("cell=good"), "{}", r.text());
    q.queen.shutdown().await.unwrap();
}

/// A large body sent where no cell is mounted: the queen answers without
/// it and reads it on the side, so the client (HTTP/2 too, where a body
/// left unread resets the stream) sees the 404 and the 301.
#[tokio::test]
async fn a_body_nobody_takes_still_gets_its_answer() {
    let q = queen(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    std::fs::write(&file, vec![7u8; 3 << 20]).unwrap();
    for h2 in [false, true] {
        let r = curl(q.port(), "demo.example", "/none.txt", h2, Some(&file)).await;
        assert_eq!(r.status, 404, "h2 {h2}: {}", r.text());
        let r = curl(q.port(), "demo.example", "/none", h2, Some(&file)).await;
        assert_eq!(r.status, 301, "h2 {h2}: {}", r.text());
    }
    q.queen.shutdown().await.unwrap();
}
