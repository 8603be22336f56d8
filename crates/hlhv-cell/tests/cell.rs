//! The cell against a Go-like queen (tests/support/queen.rs) and a real
//! local web app, over real TLS on loopback.

mod support;

use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, Publication, PublishOptions, ReconnectPolicy, SessionState};
use hlhv_cell::HlhvError;
use proto_hlhv::Frame;
use support::{KEY, LocalApp, PublicRequest, TestQueen, config, published, publisher, queen_cert};

/// Bounds every test: a hang is a failure, not a stuck CI run.
async fn bounded<T>(what: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), what)
        .await
        .expect("the test finishes in time")
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON from the app")
}

/// The values of `name` among the app's `[name, value]` header pairs.
fn seen(inspect: &serde_json::Value, name: &str) -> Vec<String> {
    inspect["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_bodies_arrive_byte_identical_in_bounded_pieces() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let app = LocalApp::start().await;
        let cell = publisher(config(&queen, &cert, &app.url()));
        let publication = cell.connect_cell(None).await.unwrap();
        let (uuid, mount) = queen.mounted().await;
        assert_eq!(publication.uuid(), uuid);
        assert_eq!(
            (mount.host.as_str(), mount.path.as_str()),
            ("demo.example", "/app/")
        );
        assert_eq!(publication.endpoints(), ["https://demo.example/app/"]);

        for len in [1, 1024 * 1024, 50 * 1024 * 1024] {
            let response = queen
                .request(PublicRequest::get(&format!("/app/bytes/{len}")))
                .await;
            assert_eq!(response.status, 200, "{len}");
            assert!(response.complete);
            assert_eq!(response.asked_body, None, "no ResWant for a GET");
            assert_eq!(response.header("content-length"), [len.to_string()]);
            assert_eq!(response.body.len(), len);
            assert_eq!(
                testkit::sha256_hex(&response.body),
                testkit::bytes_sha256(len),
                "{len} bytes arrive identical"
            );
            assert!(
                response.largest_piece <= 64 * 1024,
                "{}",
                response.largest_piece
            );
        }
        // One band served all three, one after another.
        assert_eq!(queen.bands_bound(), 1);
    })
    .await
}

#[tokio::test]
async fn responses_stream_before_the_app_has_finished() {
    bounded(async {
        let (queen, app, _publication) = published().await;
        let mut exchange = queen.open(PublicRequest::get("/app/gated")).await;
        assert_eq!(exchange.status, 200);
        // The first piece arrives while the app still holds the rest.
        assert_eq!(exchange.next_piece().await.unwrap(), "first");
        app.open_gate();
        let rest = exchange.body().await;
        assert!(rest.complete);
        assert_eq!(rest.text(), " and the rest");
    })
    .await
}

#[tokio::test]
async fn post_bodies_reach_the_app_whole() {
    bounded(async {
        let (queen, _app, _publication) = published().await;
        for len in [0, 1, 1025, 1024 * 1024] {
            let body = testkit::pseudo_random_bytes(7, len);
            let response = queen
                .request(PublicRequest::post("/app/echo", body.clone()))
                .await;
            assert_eq!(response.status, 200, "{len}");
            assert_eq!(response.body, body, "{len} bytes echoed");
            // Content-Length 0 needs no round trip for the body.
            let asked = if len == 0 {
                None
            } else {
                Some(8 * 1024 * 1024 + 1)
            };
            assert_eq!(response.asked_body, asked, "{len}");
        }
        // Chunked over HTTP/1.1 (Go drops Transfer-Encoding from the map)
        // and HTTP/2 without a length: the cell asks anyway.
        let body = testkit::pseudo_random_bytes(8, 3000);
        let chunked = PublicRequest::new("PUT", "/app/echo")
            .header("Transfer-Encoding", "chunked")
            .body(body.clone());
        let response = queen.request(chunked).await;
        assert_eq!((response.status, &response.body), (200, &body));
        let h2 = PublicRequest::new("POST", "/app/echo")
            .http2()
            .body(body.clone());
        let response = queen.request(h2).await;
        assert_eq!((response.status, &response.body), (200, &body));
    })
    .await
}

#[tokio::test]
async fn bodies_over_the_maximum_get_413_and_the_band_goes_on() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let app = LocalApp::start().await;
        let mut config = config(&queen, &cert, &app.url());
        config.max_body = 4096;
        let _publication = publisher(config).connect_cell(None).await.unwrap();

        let at_max = queen
            .request(PublicRequest::post("/app/echo", vec![1u8; 4096]))
            .await;
        assert_eq!((at_max.status, at_max.body.len()), (200, 4096));

        let announced = queen
            .request(PublicRequest::post("/app/echo", vec![1u8; 4097]))
            .await;
        assert_eq!(announced.status, 413);
        assert_eq!(announced.asked_body, None, "refused without fetching");
        assert!(
            announced.text().contains("4096 bytes"),
            "{}",
            announced.text()
        );

        let unannounced = queen
            .request(
                PublicRequest::new("POST", "/app/echo")
                    .header("Transfer-Encoding", "chunked")
                    .body(vec![2u8; 100_000]),
            )
            .await;
        assert_eq!(unannounced.status, 413);
        assert_eq!(unannounced.asked_body, Some(4097));

        let after = queen.request(PublicRequest::get("/app/bytes/10")).await;
        assert_eq!((after.status, after.body.len()), (200, 10));
        assert_eq!(queen.bands_bound(), 1, "the band survived the refusals");
    })
    .await
}

#[tokio::test]
async fn a_local_app_that_is_down_gets_a_clear_502_page() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let down = format!("http://{}", testkit::closed_port());
        let _publication = publisher(config(&queen, &cert, &down))
            .connect_cell(None)
            .await
            .unwrap();
        let response = queen.request(PublicRequest::get("/app/")).await;
        assert_eq!(response.status, 502);
        assert_eq!(
            response.header("content-type"),
            ["text/html; charset=utf-8"]
        );
        let page = response.text();
        assert!(
            page.contains(&format!(
                "The local app at <code>{down}</code> is not answering"
            )),
            "{page}"
        );
        // The band is fine and serves the next request the same way.
        let again = queen.request(PublicRequest::get("/app/x")).await;
        assert_eq!(again.status, 502);
        assert_eq!(queen.bands_bound(), 1);
    })
    .await
}

#[tokio::test]
async fn an_app_that_breaks_off_a_response_closes_its_band() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let app = LocalApp::start().await;
        let publication = publisher(config(&queen, &cert, &app.url()))
            .connect_cell(None)
            .await
            .unwrap();
        let broken = queen.request(PublicRequest::get("/app/broken")).await;
        assert_eq!(broken.status, 200);
        assert!(!broken.complete, "no ResEnd for an incomplete body");
        // Whatever of the 10 bytes hyper flushed before the app failed.
        assert!(b"0123456789".starts_with(&broken.body), "{:?}", broken.body);
        // A new band replaces the closed one.
        let next = queen.request(PublicRequest::get("/app/bytes/5")).await;
        assert_eq!((next.status, next.body.len()), (200, 5));
        assert_eq!(queen.bands_bound(), 2);
        assert!(publication.bands() >= 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_run_over_several_bands() {
    bounded(async {
        let cert = queen_cert();
        let queen = Arc::new(TestQueen::start(&cert).await);
        let app = LocalApp::start().await;
        let publication = publisher(config(&queen, &cert, &app.url()))
            .connect_cell(None)
            .await
            .unwrap();
        const N: usize = 8;
        // The app answers only when all N wait at once: they must run
        // concurrently, each on a band of its own.
        app.expect_waiters(N);
        let requests: Vec<_> = (0..N)
            .map(|_| {
                let queen = queen.clone();
                tokio::spawn(async move { queen.request(PublicRequest::get("/app/wait")).await })
            })
            .collect();
        for request in requests {
            let response = request.await.unwrap();
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "waited together")
            );
        }
        assert_eq!(queen.bands_bound(), N);
        assert_eq!(publication.bands(), N, "bands are kept for reuse");
        // Kept bands serve later requests without new ones.
        for _ in 0..3 {
            let response = queen.request(PublicRequest::get("/app/bytes/3")).await;
            assert_eq!(response.status, 200);
        }
        assert_eq!(queen.bands_bound(), N);
    })
    .await
}

#[tokio::test]
async fn keep_alive_connections_to_the_app_are_reused() {
    bounded(async {
        let (queen, app, _publication) = published().await;
        for _ in 0..5 {
            let response = queen.request(PublicRequest::get("/app/bytes/100")).await;
            assert_eq!(response.status, 200);
        }
        assert_eq!(app.connections(), 1);
    })
    .await
}

/// The app closes idle keep-alive connections (nginx's keepalive_timeout):
/// the band notices, and its next request goes out on a new connection,
/// a POST as well (never sent twice).
#[tokio::test]
async fn a_connection_the_app_closed_while_idle_is_replaced() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let app = LocalApp::start_closing_idle(Duration::from_millis(100)).await;
        let _publication = publisher(config(&queen, &cert, &app.url()))
            .connect_cell(None)
            .await
            .unwrap();
        let first = queen.request(PublicRequest::get("/app/bytes/10")).await;
        assert_eq!((first.status, first.body.len()), (200, 10));
        // The app closes the idle connection after 100 ms.
        app.connections_closed(1).await;
        let post = queen
            .request(PublicRequest::post("/app/echo", "after the close"))
            .await;
        assert_eq!(post.status, 200);
        assert_eq!(post.text(), "after the close");
        app.connections_closed(2).await;
        let get = queen.request(PublicRequest::get("/app/bytes/3")).await;
        assert_eq!((get.status, get.body.len()), (200, 3));
        assert_eq!(app.connections(), 3);
        assert_eq!(queen.bands_bound(), 1);
    })
    .await
}

/// An app that takes the request and never answers: 504 after the
/// response timeout, and the band serves the next request.
#[tokio::test]
async fn an_app_that_never_answers_gets_a_504_in_time() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let app = LocalApp::start().await;
        let mut config = config(&queen, &cert, &app.url());
        config.local_timeout = Duration::from_millis(300);
        let _publication = publisher(config).connect_cell(None).await.unwrap();
        let fine = queen.request(PublicRequest::get("/app/bytes/4")).await;
        assert_eq!(fine.status, 200);
        // `/wait` answers only once enough requests wait together, which
        // (by default) never happens.
        let started = std::time::Instant::now();
        let stuck = queen.request(PublicRequest::get("/app/wait")).await;
        assert_eq!(stuck.status, 504, "{}", stuck.text());
        assert!(
            stuck.text().contains("gave no response in time"),
            "{}",
            stuck.text()
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Long after the first deadline, the same band times out anew.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let next = queen.request(PublicRequest::get("/app/bytes/5")).await;
        assert_eq!((next.status, next.body.len()), (200, 5));
        let started = std::time::Instant::now();
        let stuck = queen.request(PublicRequest::get("/app/wait")).await;
        assert_eq!(stuck.status, 504);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(queen.bands_bound(), 1);
    })
    .await
}

#[tokio::test]
async fn headers_are_mapped_both_ways() {
    bounded(async {
        let (queen, app, _publication) = published().await;
        // What the Go queen makes of an HTTP/2 request: HTTP/2.0, no
        // scheme, host or port, lower-case merged headers, prefix gone.
        let request = PublicRequest::get("/app/inspect/a b")
            .http2()
            .query("q", "1 2")
            .query("a", "x&y")
            .header("Host", "demo.example")
            .header("Accept", "text/html")
            .header("accept", "*/*")
            .header("Cookie", "s=1")
            .header("cookie", "t=2")
            .header("Connection", "keep-alive, X-Hop")
            .header("X-Hop", "1")
            .header("Keep-Alive", "timeout=5")
            .header("TE", "trailers")
            .header("Upgrade", "websocket")
            .header("Proxy-Authorization", "Basic eA==")
            .header("X-Forwarded-For", "198.51.100.1")
            .header("X-Custom", "kept");
        let response = queen.request(request).await;
        assert_eq!(response.status, 201);
        let inspect = json(&response.body);
        assert_eq!(inspect["method"], "GET");
        assert_eq!(inspect["target"], "/inspect/a%20b?a=x%26y&q=1+2");
        assert_eq!(seen(&inspect, "host"), [app.addr.to_string()]);
        assert_eq!(seen(&inspect, "x-forwarded-host"), ["demo.example"]);
        assert_eq!(seen(&inspect, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            seen(&inspect, "x-forwarded-for"),
            ["198.51.100.1, 203.0.113.7"]
        );
        assert_eq!(seen(&inspect, "x-forwarded-prefix"), ["/app"]);
        assert_eq!(seen(&inspect, "accept"), ["text/html", "*/*"]);
        assert_eq!(seen(&inspect, "cookie"), ["s=1; t=2"]);
        assert_eq!(seen(&inspect, "x-custom"), ["kept"]);
        for gone in [
            "connection",
            "x-hop",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
        ] {
            assert!(seen(&inspect, gone).is_empty(), "{gone} reached the app");
        }
        // Back: repeated headers kept, hop-by-hop ones dropped.
        assert_eq!(response.header("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(response.header("content-type"), ["application/json"]);
        for gone in ["connection", "x-private", "keep-alive"] {
            assert!(
                response.header(gone).is_empty(),
                "{gone} reached the client"
            );
        }
    })
    .await
}

#[tokio::test]
async fn the_leash_dropping_ends_the_publication_and_a_new_connect_mounts_again() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let addr = queen.addr;
        let app = LocalApp::start().await;
        let cell = publisher(config(&queen, &cert, &app.url()));
        let first = cell.connect_cell(None).await.unwrap();
        assert_eq!(
            queen
                .request(PublicRequest::get("/app/bytes/1"))
                .await
                .status,
            200
        );

        drop(queen);
        let reason = first.closed().await;
        assert!(reason.contains("queen"), "{reason}");
        // Down: a connect fails with a retryable error.
        let err = cell.connect_cell(None).await.unwrap_err();
        assert!(matches!(err, HlhvError::Connect { .. }), "{err}");
        assert!(!engine::TransportError::from(err).is_fatal());

        let queen = TestQueen::start_at(addr, &cert).await;
        let second = cell.connect_cell(None).await.unwrap();
        assert_ne!(second.uuid(), "");
        let response = queen.request(PublicRequest::get("/app/bytes/7")).await;
        assert_eq!((response.status, response.body.len()), (200, 7));
    })
    .await
}

#[tokio::test]
async fn close_unmounts_and_leaves() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let app = LocalApp::start().await;
        let publication = publisher(config(&queen, &cert, &app.url()))
            .connect_cell(None)
            .await
            .unwrap();
        queen.mounted().await;
        publication.close();
        queen.wait_no_cells().await;
        let log = queen.leash_log();
        assert!(matches!(log.first(), Some(Frame::Mount(_))), "{log:?}");
        assert_eq!(log.last(), Some(&Frame::Unmount));
        assert_eq!(publication.closed().await, "unmounted and closed");
    })
    .await
}

#[tokio::test]
async fn a_refused_key_stops_publishing_for_good() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::with_key_check(&cert, "another-key").await;
        let cell = publisher(config(&queen, &cert, "http://127.0.0.1:1"));
        let err = cell.connect_cell(None).await.unwrap_err();
        assert!(matches!(err, HlhvError::LoginRefused), "{err}");
        let text = err.to_string();
        assert!(!text.contains(KEY), "{text}");
        assert!(engine::TransportError::from(err).is_fatal());
    })
    .await
}

#[tokio::test]
async fn a_ca_file_is_trusted_like_a_pin() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let app = LocalApp::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, _) = cert.write_to(dir.path());
        let mut config = config(&queen, &cert, &app.url());
        config.tls.pin_sha256 = None;
        config.tls.ca_file = Some(cert_path);
        let _publication = publisher(config).connect_cell(None).await.unwrap();
        let response = queen.request(PublicRequest::get("/app/bytes/2")).await;
        assert_eq!(response.status, 200);
        // Another certificate is not trusted.
        let mut stranger = support::config(&queen, &queen_cert(), &app.url());
        stranger.tls.pin_sha256 = Some(queen_cert().spki_sha256());
        let err = publisher(stranger).connect_cell(None).await.unwrap_err();
        assert!(matches!(err, HlhvError::Connect { .. }), "{err}");
    })
    .await
}

#[tokio::test]
async fn the_engine_publishes_logs_requests_and_remounts_after_a_restart() {
    bounded(async {
        let cert = queen_cert();
        let queen = TestQueen::start(&cert).await;
        let addr = queen.addr;
        let app = LocalApp::start().await;
        let engine = Engine::new();
        let cell = publisher(config(&queen, &cert, &app.url()));
        engine
            .publish(PublishOptions {
                publisher: Arc::new(cell),
                reconnect: ReconnectPolicy {
                    initial_delay: Duration::from_millis(20),
                    ..ReconnectPolicy::default()
                },
                retry_initial: false,
            })
            .unwrap();
        let mut state = engine.watch_state();
        let active = state
            .wait_for(SessionState::is_active)
            .await
            .unwrap()
            .clone();
        let SessionState::Active { session_id, .. } = active else {
            unreachable!()
        };
        let (uuid, _) = queen.mounted().await;
        assert_eq!(session_id, uuid);
        assert_eq!(engine.snapshot().endpoints, ["https://demo.example/app/"]);

        let mut events = engine.subscribe();
        let body = vec![9u8; 1500];
        let response = queen
            .request(PublicRequest::post("/app/echo", body.clone()).query("k", "v"))
            .await;
        assert_eq!(response.status, 200);
        let row = loop {
            let closed = engine.snapshot().closed;
            if let Some(row) = closed
                .into_iter()
                .find(|r| r.protocol == engine::publish::REQUEST_PROTOCOL)
            {
                break row;
            }
            let _ = events.recv().await;
        };
        assert_eq!(row.target, "POST /echo?k=v");
        assert_eq!(row.client, "203.0.113.7");
        assert_eq!(row.stream_id.as_deref(), Some("band1"));
        assert_eq!((row.bytes_down, row.bytes_up), (1500, 1500));
        let reason = row.close_reason.unwrap();
        assert!(reason.starts_with("200 in "), "{reason}");

        // The queen restarts: the engine reconnects and mounts again.
        drop(queen);
        state
            .wait_for(|s| !s.is_active())
            .await
            .expect("the loss is seen");
        let queen = TestQueen::start_at(addr, &cert).await;
        let active = state
            .wait_for(SessionState::is_active)
            .await
            .unwrap()
            .clone();
        let SessionState::Active { session_id, .. } = active else {
            unreachable!()
        };
        let (uuid, _) = queen.mounted().await;
        assert_eq!(session_id, uuid);
        let response = queen.request(PublicRequest::get("/app/bytes/4")).await;
        assert_eq!((response.status, response.body.len()), (200, 4));
        engine.stop().await;
    })
    .await
}
