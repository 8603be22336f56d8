//! The `relay-server` binary as operators run it: a child process with
//! real files, flags, TLS and signals, driven over raw control connections
//! (tests/support/control.rs). Each test starts its own relay (it binds
//! port 0 everywhere and is up in milliseconds), so rate limits and
//! metrics never leak between tests. No test here sends `register_ack`,
//! so no public port is ever bound and the tests may share one port range
//! (tests/data_plane.rs does, on other ports or addresses).

#[path = "support/control.rs"]
mod control;
#[path = "support/relay_bin.rs"]
mod relay_bin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use control::{Control, WAIT, assert_error};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use relay_bin::*;
use serde_json::{Value, json};
use testkit::TestCert;
use tokio::net::TcpStream;

// ---------------------------------------------------------------------
// 1. The control channel.
// ---------------------------------------------------------------------

#[tokio::test]
async fn hello_comes_first_over_tls13_only() {
    let relay = RelayBin::start(&[]).await;
    let mut control = Control::connect(relay.addr(), &relay.cert).await;
    assert_eq!(
        control.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // The relay speaks first, before the client sends anything.
    let hello = control.recv().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["version"], "1.0", "{hello}");
    let features = hello["features"].as_array().expect("features: a list");
    assert!(features.contains(&json!("tunnel")), "{hello}");

    // Seed §5.1: TLS 1.3. A client that offers only TLS 1.2 gets no session.
    let tls12 = control::client_config(&relay.cert, &[&rustls::version::TLS12]);
    let refused = control::handshake(relay.addr(), tls12).await;
    assert!(refused.is_err(), "a TLS 1.2-only client was accepted");
}

#[tokio::test]
async fn auth_refusals_carry_the_seed_codes_and_close() {
    let relay = RelayBin::start(&[]).await;
    let other_secret = b"another-secret-that-is-32-bytes-long!!";
    let cases = [
        // TOKEN_EXPIRED: well signed, past `exp` and the 5 s leeway.
        (
            hs256(
                &json!({"sub": "alice", "exp": now() - 3600, "aud": AUDIENCE}),
                SECRET.as_bytes(),
            ),
            1003,
            "expired",
        ),
        // INVALID_TOKEN: signed with another key.
        (
            hs256(
                &json!({"sub": "alice", "exp": now() + 3600, "aud": AUDIENCE}),
                other_secret,
            ),
            1002,
            "bad_signature",
        ),
        ("not.a.jwt".to_owned(), 1002, "malformed"),
        // AUTH_FAILED: well signed, but for another audience, or none.
        (
            hs256(
                &json!({"sub": "alice", "exp": now() + 3600, "aud": "someone-else"}),
                SECRET.as_bytes(),
            ),
            1001,
            "wrong_audience",
        ),
        (
            hs256(
                &json!({"sub": "alice", "exp": now() + 3600}),
                SECRET.as_bytes(),
            ),
            1001,
            "missing_audience",
        ),
    ];
    for (token, code, reason) in cases {
        let mut control = relay.open().await;
        let answer = control.auth(&token).await;
        assert_error(&answer, code, reason);
        control.expect_closed().await;
    }
    // The same relay still signs in a good token.
    let mut control = relay.open().await;
    let answer = control.auth(&token("alice")).await;
    assert_eq!(answer["type"], "auth_response", "{answer}");
    assert_eq!(answer["status"], "success", "{answer}");
    assert!(
        answer["server_info"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{answer}"
    );
    assert!(answer["server_info"]["features"].is_array(), "{answer}");
}

#[tokio::test]
async fn register_grants_a_tunnel_in_the_network() {
    let relay = RelayBin::start(&[]).await;
    let wireguard = relay.wireguard().await;
    let mut control = relay.signed_in("alice").await;
    let answer = control.registered("office-pc", &[3389, 22]).await;

    let tunnel_id = answer["tunnel_id"].as_str().expect("tunnel_id");
    uuid::Uuid::parse_str(tunnel_id).unwrap_or_else(|e| panic!("{tunnel_id}: {e}"));
    let config = &answer["config"];

    // The endpoint is the public host with the bound WireGuard port, and
    // the key is the one the relay logged at start.
    let wg_addr: SocketAddr = wireguard["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        config["endpoint"],
        format!("{PUBLIC_HOST}:{}", wg_addr.port()),
        "{answer}"
    );
    assert_eq!(config["public_key"], wireguard["public_key"], "{answer}");
    let key = STANDARD
        .decode(config["public_key"].as_str().unwrap())
        .expect("the relay's key is standard base64");
    assert_eq!(key.len(), 32);

    assert_eq!(config["allowed_ips"], json!([NETWORK]), "{answer}");
    let address = config["address"].as_str().unwrap();
    let host = address
        .strip_suffix("/32")
        .unwrap_or_else(|| panic!("address {address} is a /32"));
    let host: std::net::Ipv4Addr = host.parse().unwrap();
    let [a, b, c, d] = host.octets();
    assert_eq!([a, b, c], [10, 77, 0], "{address} inside {NETWORK}");
    // .0 is the network, .1 the relay's, .255 broadcast.
    assert!((2..=254).contains(&d), "{address}");

    let forwards = config["forwards"].as_array().unwrap();
    let mut shared: Vec<u64> = forwards
        .iter()
        .map(|f| f["port"].as_u64().unwrap())
        .collect();
    shared.sort();
    assert_eq!(shared, [22, 3389], "{answer}");
    let mut public_ports = Vec::new();
    for forward in forwards {
        let public = forward["public"].as_str().unwrap();
        let port: u16 = public
            .strip_prefix(&format!("{PUBLIC_HOST}:"))
            .unwrap_or_else(|| panic!("{public} on {PUBLIC_HOST}"))
            .parse()
            .unwrap();
        assert!((FIRST_PORT..=LAST_PORT).contains(&port), "{public}");
        public_ports.push(port);
    }
    assert_ne!(public_ports[0], public_ports[1], "{answer}");
    assert!(
        answer["reconnect_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 16),
        "{answer}"
    );

    // A first heartbeat is welcome at once.
    let beat = control.heartbeat(tunnel_id).await;
    assert_eq!(beat["type"], "heartbeat_response", "{beat}");
    assert_eq!(beat["status"], "ok", "{beat}");
    let server_time = beat["server_time"].as_str().unwrap();
    humantime::parse_rfc3339(server_time).unwrap_or_else(|e| panic!("{server_time}: {e}"));

    // A second client gets another address.
    let mut second = relay.signed_in("bob").await;
    let other = second.registered("office-pc", &[22]).await;
    assert_ne!(other["config"]["address"], config["address"]);
    assert_ne!(other["tunnel_id"], answer["tunnel_id"]);
}

#[tokio::test]
async fn same_name_for_the_same_owner_is_tunnel_exists() {
    let relay = RelayBin::start(&[]).await;
    let mut first = relay.signed_in("alice").await;
    first.registered("build-box", &[22]).await;

    let mut second = relay.signed_in("alice").await;
    let answer = second.register("build-box", &[22]).await;
    assert_error(&answer, 2001, "tunnel_exists");
    // A refused registration leaves the connection open: another name works.
    second.registered("build-box-2", &[22]).await;

    // The name is per owner.
    let mut bob = relay.signed_in("bob").await;
    bob.registered("build-box", &[22]).await;
}

#[tokio::test]
async fn overlong_line_closes_only_its_connection() {
    // --heartbeat-interval 1s: the session's 2 s of slack then admits
    // heartbeats back to back, so the bystander needs no wait.
    let relay = RelayBin::start(&["--max-line", "4096", "--heartbeat-interval", "1s"]).await;
    let mut bystander = relay.signed_in("alice").await;
    let answer = bystander.registered("box", &[22]).await;
    let tunnel_id = answer["tunnel_id"].as_str().unwrap().to_owned();

    // A line of exactly the cap is fine (a heartbeat padded with spaces).
    let mut at_cap = serde_json::to_vec(&json!({
        "type": "heartbeat",
        "tunnel_id": tunnel_id,
        "stats": {"bytes_in": 0, "bytes_out": 0, "connected_since": "2026-01-01T00:00:00Z"},
    }))
    .unwrap();
    at_cap.resize(4096, b' ');
    at_cap.push(b'\n');
    bystander.send_raw(&at_cap).await;
    let beat = bystander.recv().await;
    assert_eq!(beat["type"], "heartbeat_response", "{beat}");

    // One byte more, on another connection: refused and closed.
    let mut offender = relay.signed_in("mallory").await;
    let mut over = vec![b' '; 4097];
    over[..2].copy_from_slice(b"{}");
    over.push(b'\n');
    offender.send_raw(&over).await;
    assert_error(&offender.recv().await, 2002, "line_too_long");
    offender.expect_closed().await;

    let beat = bystander.heartbeat(&tunnel_id).await;
    assert_eq!(beat["type"], "heartbeat_response", "{beat}");
    assert_eq!(beat["status"], "ok", "{beat}");
}

#[tokio::test]
async fn malformed_json_is_invalid_config_and_closes() {
    let relay = RelayBin::start(&[]).await;
    // Before sign-in …
    let mut control = relay.open().await;
    control
        .send_raw(b"{\"type\": \"auth\", \"token\": \n")
        .await;
    assert_error(&control.recv().await, 2002, "malformed_json");
    control.expect_closed().await;
    // … and after.
    let mut control = relay.signed_in("alice").await;
    control.send_raw(b"not json at all\n").await;
    assert_error(&control.recv().await, 2002, "malformed_json");
    control.expect_closed().await;
}

#[tokio::test]
async fn sign_in_comes_first_in_version_1() {
    let relay = RelayBin::start(&[]).await;
    // Anything but `auth` first: AUTH_FAILED, closed.
    let mut control = relay.open().await;
    control
        .send(&json!({
            "type": "register",
            "tunnel_info": {"name": "box", "protocol": "tcp", "ports": [22], "public_key": control::wireguard_key()},
        }))
        .await;
    assert_error(&control.recv().await, 1001, "auth_required");
    control.expect_closed().await;
    // Another major version: INVALID_CONFIG, closed.
    let mut control = relay.open().await;
    control
        .send(&json!({"type": "auth", "token": token("alice"), "version": "2.0", "client_info": {"os": "linux", "version": "1"}}))
        .await;
    assert_error(&control.recv().await, 2002, "unsupported_version");
    control.expect_closed().await;
    // A second `auth` once signed in: closed.
    let mut control = relay.signed_in("alice").await;
    let again = control.auth(&token("alice")).await;
    assert_error(&again, 2002, "duplicate_auth");
    control.expect_closed().await;
}

#[tokio::test]
async fn a_connection_that_never_signs_in_is_closed_at_the_auth_timeout() {
    let relay = RelayBin::start(&["--auth-timeout", "1s"]).await;
    let mut control = relay.open().await;
    let opened = std::time::Instant::now();
    assert_error(&control.recv().await, 1001, "auth_timeout");
    control.expect_closed().await;
    assert!(opened.elapsed() >= Duration::from_millis(900));
    // A client that signed in in time is not cut.
    let mut signed = relay.signed_in("alice").await;
    let answer = signed.registered("box", &[22]).await;
    let beat = signed
        .heartbeat(answer["tunnel_id"].as_str().unwrap())
        .await;
    assert_eq!(beat["type"], "heartbeat_response", "{beat}");
}

#[tokio::test]
async fn auth_attempts_are_rate_limited_per_source() {
    let relay = RelayBin::start(&["--auth-per-minute", "2"]).await;
    // Two attempts pass the limiter, whatever their verdict.
    let mut first = relay.signed_in("alice").await;
    let mut refused = relay.open().await;
    let bad = hs256(
        &json!({"sub": "alice", "exp": now() + 3600, "aud": AUDIENCE}),
        b"another-secret-that-is-32-bytes-long!!",
    );
    assert_error(&refused.auth(&bad).await, 1002, "bad_signature");

    // The third from 127.0.0.1 is refused, good token or not.
    let mut third = relay.open().await;
    let answer = third.auth(&token("alice")).await;
    assert_error(&answer, 3001, "too_many_auth_attempts");
    let retry_after = answer["details"]["retry_after"]
        .as_u64()
        .expect("retry_after: seconds");
    assert!((1..=60).contains(&retry_after), "{answer}");
    third.expect_closed().await;

    // The connection signed in before is unaffected.
    first.registered("box", &[22]).await;
}

#[tokio::test]
async fn tunnel_creations_are_rate_limited_per_owner() {
    let relay = RelayBin::start(&["--tunnels-per-hour", "1"]).await;
    let mut first = relay.signed_in("alice").await;
    first.registered("one", &[22]).await;

    let mut second = relay.signed_in("alice").await;
    let answer = second.register("two", &[22]).await;
    assert_error(&answer, 3001, "too_many_tunnels");
    let retry_after = answer["details"]["retry_after"]
        .as_u64()
        .expect("retry_after: seconds");
    assert!((1..=3600).contains(&retry_after), "{answer}");
    // Still open, still limited.
    assert_error(
        &second.register("two", &[22]).await,
        3001,
        "too_many_tunnels",
    );

    // Another owner has its own quota.
    let mut bob = relay.signed_in("bob").await;
    bob.registered("one", &[22]).await;
}

#[tokio::test]
async fn heartbeats_sooner_than_the_interval_are_rate_limited() {
    // The default interval: 30 s.
    let relay = RelayBin::start(&[]).await;
    let mut control = relay.signed_in("alice").await;
    let answer = control.registered("box", &[22]).await;
    let tunnel_id = answer["tunnel_id"].as_str().unwrap();
    let beat = control.heartbeat(tunnel_id).await;
    assert_eq!(beat["type"], "heartbeat_response", "{beat}");
    let early = control.heartbeat(tunnel_id).await;
    assert_error(&early, 3001, "heartbeat_too_early");
    let retry_after = early["details"]["retry_after"].as_u64().unwrap();
    assert!((1..=30).contains(&retry_after), "{early}");
    // Not fatal: the connection goes on.
    assert_error(
        &control.heartbeat(tunnel_id).await,
        3001,
        "heartbeat_too_early",
    );
}

// ---------------------------------------------------------------------
// 2. Flags the binary refuses.
// ---------------------------------------------------------------------

/// Runs the binary to its exit (10 s at most: a relay that accepted the
/// flags would serve forever, which fails the test instead of hanging it).
async fn run_to_exit(args: &[String]) -> Output {
    let child = tokio::process::Command::new(relay_bin())
        .args(args)
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the relay refused to start instead of serving")
        .unwrap()
}

/// The flags of a relay that would start, without `drop`, plus `add`.
fn flags(dir: &Path, cert: &TestCert, drop: &[&str], add: &[&str]) -> Vec<String> {
    let args = base_args(dir, cert, add);
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap();
        if !drop.contains(&flag.as_str()) {
            out.push(flag);
            out.push(value);
        }
    }
    out
}

/// Exited with failure, `stderr` names the problem with every `needle`,
/// and nothing printed holds `secret`.
#[track_caller]
fn assert_refused(output: &Output, needles: &[&str], secret: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && output.status.code().is_some(),
        "status {}; stderr:\n{stderr}",
        output.status
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in stderr:\n{stderr}"
        );
    }
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the secret leaked:\n{stdout}\n{stderr}"
    );
    assert!(
        !stderr.contains(r#""event":"listening""#),
        "it listened anyway:\n{stderr}"
    );
}

#[tokio::test]
async fn refuses_to_start_without_a_jwt_key() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&["localhost"]);
    let args = flags(dir.path(), &cert, &["--jwt-secret-file"], &[]);
    let output = run_to_exit(&args).await;
    assert_refused(&output, &["--jwt-secret-file"], SECRET);

    // Both keys at once is as wrong as none.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = dir.path().join("jwt.pub");
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let mut args = flags(dir.path(), &cert, &[], &[]);
    args.extend(["--jwt-public-key".to_owned(), path(&public)]);
    let output = run_to_exit(&args).await;
    assert_refused(&output, &["--jwt-public-key", "--jwt-secret-file"], SECRET);
}

#[tokio::test]
async fn refuses_a_jwt_secret_shorter_than_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&["localhost"]);
    let short = "short-secret-Zq7";
    let file = dir.path().join("short.secret");
    std::fs::write(&file, format!("{short}\n")).unwrap();
    let args = flags(
        dir.path(),
        &cert,
        &[],
        &["--jwt-secret-file", file.to_str().unwrap()],
    );
    let output = run_to_exit(&args).await;
    assert_refused(&output, &["JWT secret", "16 bytes", "32"], short);
    assert_eq!(output.status.code(), Some(1));

    // An empty file too.
    std::fs::write(&file, "\n").unwrap();
    let output = run_to_exit(&args).await;
    assert_refused(&output, &["JWT secret", "empty"], SECRET);
}

#[tokio::test]
async fn refuses_malformed_forward_ports() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&["localhost"]);
    for bad in ["9-1", "abc", "0-10", "40000", "40000-70000"] {
        let args = flags(dir.path(), &cert, &[], &["--forward-ports", bad]);
        let output = run_to_exit(&args).await;
        assert_refused(&output, &["--forward-ports", bad], SECRET);
    }
}

// ---------------------------------------------------------------------
// 3. Metrics.
// ---------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_registrations_and_refusals() {
    let relay = RelayBin::start(&["--metrics", "127.0.0.1:0"]).await;
    let metrics = relay.process.wait_metrics_addr(WAIT).await.unwrap();
    let before = scrape(metrics).await;
    assert_eq!(
        sample(&before, "relay_registrations_total{kind=\"created\"}"),
        None
    );
    assert_eq!(sample(&before, "relay_errors_total{code=\"1002\"}"), None);

    let mut alice = relay.signed_in("alice").await;
    alice.registered("box", &[22]).await;
    let mut forger = relay.open().await;
    let forged = hs256(
        &json!({"sub": "alice", "exp": now() + 3600, "aud": AUDIENCE}),
        b"another-secret-that-is-32-bytes-long!!",
    );
    assert_error(&forger.auth(&forged).await, 1002, "bad_signature");
    forger.expect_closed().await;
    let mut late = relay.open().await;
    let expired = hs256(
        &json!({"sub": "alice", "exp": now() - 3600, "aud": AUDIENCE}),
        SECRET.as_bytes(),
    );
    assert_error(&late.auth(&expired).await, 1003, "expired");
    late.expect_closed().await;

    // Both are counted before their error line is written.
    let body = scrape(metrics).await;
    assert_eq!(sample(&body, "relay_active_tunnels"), Some(1.0), "{body}");
    assert_eq!(
        sample(&body, "relay_registrations_total{kind=\"created\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "relay_errors_total{code=\"1002\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "relay_errors_total{code=\"1003\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("# TYPE relay_errors_total counter"), "{body}");

    let (status, _) = http_get(metrics, "/").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
}

/// `relay_errors_total` is documented (metrics.rs) as "`error` lines sent,
/// by `code`"; the errors the session answers by itself on a connection it
/// keeps open must be counted too.
#[tokio::test]
async fn metrics_count_every_error_line() {
    let relay = RelayBin::start(&["--metrics", "127.0.0.1:0"]).await;
    let metrics = relay.process.wait_metrics_addr(WAIT).await.unwrap();
    let mut control = relay.signed_in("alice").await;
    control
        .send(&json!({
            "type": "register",
            "tunnel_info": {
                "name": "box",
                "protocol": "udp",
                "ports": [22],
                "public_key": control::wireguard_key(),
            },
        }))
        .await;
    assert_error(&control.recv().await, 2002, "unsupported_protocol");
    let answer = control.registered("box", &[22]).await;
    let tunnel_id = answer["tunnel_id"].as_str().unwrap();
    control.heartbeat(tunnel_id).await;
    assert_error(
        &control.heartbeat(tunnel_id).await,
        3001,
        "heartbeat_too_early",
    );

    let body = scrape(metrics).await;
    assert_eq!(
        sample(&body, "relay_errors_total{code=\"2002\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "relay_errors_total{code=\"3001\"}"),
        Some(1.0),
        "{body}"
    );
}

#[tokio::test]
async fn active_tunnels_gauge_drops_when_a_detached_tunnel_is_torn_down() {
    let relay = RelayBin::start(&["--metrics", "127.0.0.1:0", "--detach-grace", "1s"]).await;
    let metrics = relay.process.wait_metrics_addr(WAIT).await.unwrap();
    let mut control = relay.signed_in("alice").await;
    let answer = control.registered("box", &[22]).await;
    let tunnel_id = answer["tunnel_id"].as_str().unwrap().to_owned();
    assert_eq!(
        sample(&scrape(metrics).await, "relay_active_tunnels"),
        Some(1.0)
    );
    control.close().await;
    let torn_down = relay.process.wait_for_log("torn down", WAIT).await.unwrap();
    assert!(torn_down.contains(&tunnel_id), "{torn_down}");
    assert_eq!(
        sample(&scrape(metrics).await, "relay_active_tunnels"),
        Some(0.0)
    );
}

/// metrics.rs documents `relay_active_tunnels` as "Tunnels whose client
/// holds a control connection here" ("Tunnels whose client is connected
/// here" in its HELP text).
#[tokio::test]
async fn active_tunnels_gauge_counts_connected_clients() {
    let relay = RelayBin::start_logging(&["--metrics", "127.0.0.1:0"], "debug").await;
    let metrics = relay.process.wait_metrics_addr(WAIT).await.unwrap();
    let mut control = relay.signed_in("alice").await;
    control.registered("box", &[22]).await;
    control.close().await;
    // Logged once the relay has detached the tunnel from the connection.
    relay
        .process
        .wait_for_log(r#""event":"control connection closed""#, WAIT)
        .await
        .unwrap();
    let body = scrape(metrics).await;
    assert_eq!(sample(&body, "relay_active_tunnels"), Some(0.0), "{body}");
}

// ---------------------------------------------------------------------
// 4. Logs.
// ---------------------------------------------------------------------

#[tokio::test]
async fn logs_are_seed_shaped_json_without_secrets() {
    // At debug, so that the chattier lines are held to the rules too.
    let mut relay = RelayBin::start_logging(&[], "debug").await;
    let good = token("alice");
    let mut control = relay.open().await;
    control.sign_in(&good).await;
    let answer = control.registered("office-pc", &[22]).await;
    let tunnel_id = answer["tunnel_id"].as_str().unwrap().to_owned();
    let reconnect_token = answer["reconnect_token"].as_str().unwrap().to_owned();
    control.heartbeat(&tunnel_id).await;
    let forged = hs256(
        &json!({"sub": "alice", "exp": now() + 3600, "aud": AUDIENCE}),
        b"another-secret-that-is-32-bytes-long!!",
    );
    let mut refused = relay.open().await;
    assert_error(&refused.auth(&forged).await, 1002, "bad_signature");
    // A resume with the token, on a connection that then goes away.
    let mut resumed = relay.open().await;
    resumed.sign_in(&token("alice")).await;
    resumed
        .send(&json!({
            "type": "register",
            "tunnel_id": tunnel_id,
            "reconnect_token": reconnect_token,
            "tunnel_info": {
                "name": "office-pc",
                "protocol": "tcp",
                "ports": [22],
                "public_key": control::wireguard_key(),
            },
        }))
        .await;
    let resume = resumed.recv().await;
    assert_eq!(resume["type"], "register_response", "{resume}");
    let next_token = resume["reconnect_token"].as_str().unwrap().to_owned();

    relay.process.sigterm();
    let status = relay.process.wait_exit(WAIT).await.expect("exits");
    assert!(status.success(), "{status}");
    let lines = relay.logs_until_stopped().await;
    assert!(lines.len() >= 5, "{lines:#?}");

    let signature = |jwt: &str| jwt.rsplit('.').next().unwrap().to_owned();
    let secrets = [
        good.clone(),
        signature(&good),
        forged.clone(),
        signature(&forged),
        reconnect_token.clone(),
        next_token.clone(),
        SECRET.to_owned(),
    ];
    let mut registered = Vec::new();
    for line in &lines {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        let object = value.as_object().unwrap_or_else(|| panic!("{line}"));
        let timestamp = object["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}"));
        humantime::parse_rfc3339(timestamp)
            .unwrap_or_else(|e| panic!("timestamp {timestamp} is not ISO 8601 UTC ({e}): {line}"));
        let level = object["level"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        assert!(
            object["event"].as_str().is_some_and(|e| !e.is_empty()),
            "{line}"
        );
        assert!(object["details"].is_object(), "{line}");
        if let Some(id) = object.get("tunnel_id") {
            assert!(id.is_string(), "{line}");
        }
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the log: {line}"
            );
        }
        if object["event"] == "tunnel registered" {
            registered.push(value.clone());
        }
    }
    assert_eq!(registered.len(), 2, "created and resumed: {lines:#?}");
    for line in &registered {
        assert_eq!(line["tunnel_id"], tunnel_id.as_str(), "{line}");
        assert_eq!(line["details"]["sub"], "alice", "{line}");
        assert_eq!(line["details"]["name"], "office-pc", "{line}");
    }
    assert_eq!(registered[0]["details"]["kind"], "created");
    assert_eq!(registered[1]["details"]["kind"], "resumed");
}

/// logs.rs: a line carries `tunnel_id` "when the event concerns a
/// tunnel", and the seed's field is a UUID.
#[tokio::test]
async fn log_lines_name_a_tunnel_only_when_there_is_one() {
    let relay = RelayBin::start(&[]).await;
    let mut control = relay.open().await;
    assert_error(&control.auth("not.a.jwt").await, 1002, "malformed");
    control.expect_closed().await;
    let line = relay
        .process
        .wait_for_log("control connection closed by the relay", WAIT)
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&line).unwrap();
    match value.get("tunnel_id") {
        None => {}
        Some(id) => {
            let id = id.as_str().unwrap_or_default();
            assert!(
                uuid::Uuid::parse_str(id).is_ok(),
                "tunnel_id {id:?}: {line}"
            );
        }
    }
}

// ---------------------------------------------------------------------
// 5. Graceful shutdown.
// ---------------------------------------------------------------------

#[tokio::test]
async fn sigterm_tells_every_client_and_exits_zero() {
    let mut relay = RelayBin::start(&[]).await;
    let mut registered = relay.signed_in("alice").await;
    registered.registered("box", &[22]).await;
    let mut waiting = relay.open().await;

    let asked = std::time::Instant::now();
    relay.process.sigterm();
    for control in [&mut registered, &mut waiting] {
        assert_error(&control.recv().await, 5000, "shutting_down");
        control.expect_closed().await;
    }
    let status = relay
        .process
        .wait_exit(WAIT)
        .await
        .expect("the relay exits within 5 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(asked.elapsed() < WAIT);
    // And it no longer listens.
    assert!(TcpStream::connect(relay.addr()).await.is_err());
}

/// A graceful stop must not wait for connections that have not finished
/// TLS: a port scanner or a stalled client would hold it for the whole
/// handshake timeout.
#[tokio::test]
async fn sigterm_does_not_wait_for_unfinished_tls_handshakes() {
    let mut relay = RelayBin::start(&[]).await;
    let _silent = TcpStream::connect(relay.addr()).await.unwrap();
    let mut registered = relay.signed_in("alice").await;
    registered.registered("box", &[22]).await;
    relay.process.sigterm();
    assert_error(&registered.recv().await, 5000, "shutting_down");
    let status = relay
        .process
        .wait_exit(Duration::from_secs(3))
        .await
        .expect("the relay exits within 3 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
}

// ---------------------------------------------------------------------
// 6. A public key pins the algorithm.
// ---------------------------------------------------------------------

#[tokio::test]
async fn public_key_mode_pins_es256() {
    let keys = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public_pem = pair.public_key_pem();
    let public: PathBuf = keys.path().join("jwt.pub.pem");
    std::fs::write(&public, &public_pem).unwrap();
    let relay = RelayBin::start(&["--jwt-public-key", public.to_str().unwrap()]).await;

    let claims = json!({"sub": "alice", "exp": now() + 3600, "aud": AUDIENCE});
    let es256 = |key: &rcgen::KeyPair| {
        encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let mut control = relay.open().await;
    control.sign_in(&es256(&pair)).await;
    control.registered("box", &[22]).await;

    // The classic confusion: HS256 keyed with the public key's PEM text.
    for secret in [public_pem.as_str(), public_pem.trim()] {
        let confused = hs256(&claims, secret.as_bytes());
        let mut control = relay.open().await;
        assert_error(&control.auth(&confused).await, 1002, "wrong_algorithm");
        control.expect_closed().await;
    }
    // An ES256 token from another key.
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut control = relay.open().await;
    assert_error(
        &control.auth(&es256(&stranger)).await,
        1002,
        "bad_signature",
    );
    control.expect_closed().await;
}
