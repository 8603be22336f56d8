//! Hostile clients against the `httvps-gateway` binary (issue 17): thousands
//! of connections that never authenticate, hellos dribbled byte by byte, ping
//! floods that never read, broken WebSocket framing. Through each attack the
//! gateway's memory stays bounded (its RSS, read from /proc while the attack
//! runs) and a real client (the SDK, from its own thread and runtime, as if
//! from another machine) gets a session within a second and fetches 300 KiB.
//!
//! One gateway process serves every phase (a single test drives them in
//! turn; each waits for the previous one's connections to drain), started
//! with `--max-connections 512` so that 2,000 pending connections exercise
//! eviction, and the default `--max-per-source 64`, which the attacks either
//! avoid (spread over 127.0.0.2..=127.0.0.100) or run into (all from
//! 127.0.0.2). Real clients come from 127.0.0.1. The metrics endpoint shows
//! that each attack failed for the right reason: evictions or per-source
//! refusals counted, the pending stage never over its bound.
//!
//! Every phase runs even if an earlier one failed; the test prints a report
//! (times, RSS, what the attackers saw) and fails at the end with every
//! failure.

mod sdk;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use httvps_client::{ClientConfig, Secret, TargetAddr, Tunnel};
use sdk::{Gateway, TOKEN};
use testkit::hostile::{self, Attack, Kind, Malformed, PingStyle, Sources, Target};
use testkit::{BYTES_SEED, HttpServer, pseudo_random_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `--max-connections`: the pending stage's bound, well under the 2,000
/// hostile connections of the headline phases, so they evict.
const MAX_PENDING: usize = 512;
/// `--max-per-source` (the default, given explicitly).
const PER_SOURCE: usize = 64;
/// `--hello-timeout`: long enough for 2,000 upgrades to ramp up (so that
/// they are evicted rather than timed out), short enough for the slow-hello
/// phase to end quickly.
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// `--handshake-timeout`: longer than any pending connection lives before
/// 512 newer ones evict it (up to 3 s seen, when the ramp stalls on
/// retransmitted SYNs), and short enough that what the kernel hands the
/// gateway late (connections a SYN cookie completes after the attacker
/// already closed them, in the burst phase) is gone soon.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(6);
/// Hostile connections of the headline phases.
const HOSTILE: usize = 2000;
/// What the real client fetches through its stream.
const FETCH: usize = 300 * 1024;
/// How soon a real client must have its session (`ready`) during an attack.
const CONNECT_WITHIN: Duration = Duration::from_secs(1);
/// The gateway's memory bound during any attack, above its idle RSS. The
/// design bounds it at roughly `max_connections` pending connections of at
/// most a TLS session plus HTTP or WebSocket buffers (about 100 KiB each,
/// ~50 MiB for 512), sessions of at most `max_write_buffer` (1 MiB) plus
/// one message each, and a bounded oversized message per connection; 150
/// MiB leaves room for the allocator's slack, while the unbounded behaviours
/// of issue 17 (pongs queued to 1.86 GB) are far above it.
const RSS_HEADROOM: u64 = 150 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_neither_grow_memory_nor_lock_out_real_clients() {
    let nofile = hostile::raise_nofile_limit().expect("raising RLIMIT_NOFILE");
    assert!(
        nofile >= HOSTILE as u64 + 1024,
        "open-file limit {nofile} is too low for {HOSTILE} hostile sockets"
    );
    let started = Instant::now();
    let f = Fixture::start().await;
    let mut report = Report::default();
    println!(
        "gateway pid {} idle RSS {} (bound {}), started in {:.2?}",
        f.pid,
        mib(f.idle_rss),
        mib(f.idle_rss + RSS_HEADROOM),
        started.elapsed()
    );

    for (kind, sources) in [
        (Kind::IdleTcp, Sources::default()),
        (Kind::IdleTcp, Sources::one(2)),
        (Kind::IdleTls, Sources::default()),
        (Kind::IdleTls, Sources::one(2)),
        (Kind::TokenlessUpgrade, Sources::default()),
        (Kind::TokenlessUpgrade, Sources::one(2)),
    ] {
        let name = format!(
            "{} ×{HOSTILE} from {}",
            kind.name(),
            if sources.len() == 1 {
                "one source"
            } else {
                "99 sources"
            }
        );
        let phase = async |f, notes: &mut Vec<String>| headline(f, notes, kind, sources).await;
        report.run(&f, &name, phase).await;
    }
    report
        .run(&f, "idle TCP ×2000 burst (all connects at once)", burst)
        .await;
    report.run(&f, "upgrade churn", churn).await;
    report.run(&f, "slow hello ×300", slow_hello).await;
    report
        .run(&f, "ping flood before hello ×200", flood_before_hello)
        .await;
    report
        .run(&f, "ping floods after hello ×150", flood_after_hello)
        .await;
    report
        .run(&f, "oversized, fragmented, bad opcodes", malformed)
        .await;

    let mut logged = std::collections::BTreeMap::<String, usize>::new();
    for line in f.gw.process().logs() {
        let message = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["fields"]["message"].as_str().map(str::to_owned))
            .unwrap_or(line);
        *logged.entry(trim(&message, 60)).or_default() += 1;
    }
    println!("gateway log lines (the last 2,000) by message: {logged:?}");
    let hwm = proc_status_kib(f.pid, "VmHWM:").unwrap_or(0) * 1024;
    let own = proc_status_kib(std::process::id(), "VmHWM:").unwrap_or(0) * 1024;
    println!(
        "gateway peak RSS over the whole run (VmHWM) {}; idle {}; the attackers' peak {}; \
         total {:.2?}",
        mib(hwm),
        mib(f.idle_rss),
        mib(own),
        started.elapsed()
    );
    if hwm > f.idle_rss + RSS_HEADROOM {
        report.failures.push(format!(
            "the gateway's peak RSS (VmHWM) {} is over idle {} + {}",
            mib(hwm),
            mib(f.idle_rss),
            mib(RSS_HEADROOM)
        ));
    }
    assert!(
        report.failures.is_empty(),
        "{} failure(s):\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
}

/// The gateway, a target behind it, and what the phases measure it with.
struct Fixture {
    gw: Gateway,
    pid: u32,
    metrics: SocketAddr,
    http: HttpServer,
    target: Target,
    rss: RssSampler,
    idle_rss: u64,
}

impl Fixture {
    async fn start() -> Fixture {
        let gw = Gateway::direct(&[
            "--max-connections",
            &MAX_PENDING.to_string(),
            "--max-per-source",
            &PER_SOURCE.to_string(),
            "--hello-timeout",
            &format!("{}ms", HELLO_TIMEOUT.as_millis()),
            "--handshake-timeout",
            &format!("{}ms", HANDSHAKE_TIMEOUT.as_millis()),
            "--metrics",
            "127.0.0.1:0",
        ])
        .await;
        let pid = gw.process().pid().expect("gateway pid");
        let metrics = gw
            .process()
            .wait_metrics_addr(Duration::from_secs(10))
            .await
            .expect("metrics address");
        let http = HttpServer::start().await;
        let target = Target::new(gw.addr(), gw.ca()).expect("hostile target");
        let rss = RssSampler::start(pid);
        let mut f = Fixture {
            gw,
            pid,
            metrics,
            http,
            target,
            rss,
            idle_rss: 0,
        };
        // Idle means warmed up: one real session and fetch first.
        let warm = f
            .real_client()
            .await
            .expect("a real client before any attack");
        println!("warm-up {warm}");
        f.quiet().await.expect("quiet after the warm-up");
        f.idle_rss = proc_status_kib(pid, "VmRSS:").expect("VmRSS") * 1024;
        f
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = self.gw.config();
        config.handshake_timeout = Duration::from_secs(5);
        config
    }

    /// A real client: session, then a fetch of [`FETCH`] bytes through one
    /// stream, checked byte for byte. Runs on its own thread and runtime so
    /// that the attackers' tasks do not delay it in this process. Fails if
    /// the session took longer than [`CONNECT_WITHIN`].
    async fn real_client(&self) -> anyhow::Result<RealClient> {
        let config = self.client_config();
        let http = self.http.addr();
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(real_client(config, http))
        })
        .await?
    }

    async fn metrics(&self) -> anyhow::Result<Metrics> {
        Ok(Metrics(
            hostile::http_get_text(self.metrics, "/metrics").await?,
        ))
    }

    /// Waits until no connection is pending or in a session.
    async fn quiet(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let m = self.metrics().await?;
            if m.pending() == 0.0 && m.admitted() == 0.0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the gateway did not drain: {} pending, {} admitted",
                    m.pending(),
                    m.admitted()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What a real client saw.
struct RealClient {
    connect: Duration,
    fetch: Duration,
    /// Why a first attempt failed, if it did.
    refused: Option<String>,
}

impl std::fmt::Display for RealClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "real client: session in {:.0?}, {} KiB fetched in {:.0?}",
            self.connect,
            FETCH / 1024,
            self.fetch
        )?;
        if let Some(why) = &self.refused {
            write!(f, " (second attempt; the first refused: {why})")?;
        }
        Ok(())
    }
}

async fn real_client(config: ClientConfig, http: SocketAddr) -> anyhow::Result<RealClient> {
    let started = Instant::now();
    let mut refused = None;
    let tunnel = loop {
        match Tunnel::connect(config.clone(), &Secret::from(TOKEN)).await {
            Ok(tunnel) => break tunnel,
            // Evicted for newer connections, the admission's answer to a
            // flood: a real client tries again at once. Once, and the
            // second must be in within the same second.
            Err(e) if refused.is_none() && started.elapsed() < CONNECT_WITHIN => {
                refused = Some(format!("{e} after {:.0?}", started.elapsed()));
            }
            Err(e) => bail!(
                "real client refused after {:.2?}: {e}{}",
                started.elapsed(),
                refused.map_or(String::new(), |r| format!(" (and before: {r})"))
            ),
        }
    };
    let connect = started.elapsed();
    ensure!(
        connect < CONNECT_WITHIN,
        "the real client got its session only after {connect:.2?}"
    );
    let fetched = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = tunnel.open(TargetAddr::Ip(http)).await?;
        let request = format!("GET /bytes/{FETCH} HTTP/1.0\r\nHost: target\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::with_capacity(FETCH + 512);
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    })
    .await
    .context("the real client's fetch timed out")??;
    let fetch = fetched.elapsed();
    let head_end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no response head")?
        + 4;
    let head = String::from_utf8_lossy(&body[..head_end]);
    ensure!(head.contains(" 200 "), "the fetch answered {head}");
    ensure!(
        body[head_end..] == pseudo_random_bytes(BYTES_SEED, FETCH),
        "the fetched {} bytes differ from the {FETCH} served",
        body.len() - head_end
    );
    tunnel.close();
    Ok(RealClient {
        connect,
        fetch,
        refused,
    })
}

/// A scrape of the gateway's metrics.
struct Metrics(String);

impl Metrics {
    fn get(&self, name: &str, labels: &str) -> f64 {
        hostile::metric(&self.0, name, labels)
    }
    fn pending(&self) -> f64 {
        self.get("httvps_gateway_connections_pending", "")
    }
    fn admitted(&self) -> f64 {
        self.get("httvps_gateway_connections_admitted", "")
    }
    fn evicted(&self) -> f64 {
        self.get("httvps_gateway_connections_evicted_total", "")
    }
    fn spared(&self) -> f64 {
        self.get("httvps_gateway_connections_spared_total", "")
    }
    fn refused_per_source(&self) -> f64 {
        self.get(
            "httvps_gateway_connections_refused_total",
            "reason=\"per_source\"",
        )
    }
}

/// 2,000 hostile connections of one kind held open at once, then a real
/// client. Spread over 99 sources the pending stage evicts (the one that
/// progressed least recently first, so the real client, which keeps moving,
/// gets in); from one source all but 64 are refused at accept.
async fn headline(
    f: &Fixture,
    notes: &mut Vec<String>,
    kind: Kind,
    sources: Sources,
) -> anyhow::Result<()> {
    let one_source = sources.len() == 1;
    let (before, overflows) = (f.metrics().await?, listen_overflows());
    // 100 connects at a time: under the listen queue (the burst phase
    // shows what happens past it).
    let attack = Attack::new(kind.clone(), HOSTILE)
        .from(sources)
        .ramp(100)
        .launch(&f.target)?;
    // One real client while the attack ramps up (from its 1,000th
    // connection on), one with all 2,000 open.
    let ramping = async {
        attack
            .wait_for("half the attack set up", Duration::from_secs(30), |s| {
                s.settled >= HOSTILE / 2
            })
            .await?;
        f.real_client().await
    };
    let (snap, ramping) = tokio::join!(attack.settled(Duration::from_secs(30)), ramping);
    let snap = snap?;
    let ramp = snap.elapsed;
    // Connections evicted or refused just now may not have seen their end yet.
    let held = if one_source { PER_SOURCE } else { MAX_PENDING };
    let snap = attack
        .wait_for(
            "the evicted or refused connections closed",
            Duration::from_secs(5),
            |s| s.open <= held,
        )
        .await;
    let during = f.metrics().await?;
    let client = f.real_client().await;
    let after = f.metrics().await?;
    let last = attack.stop().await;
    // Counted for the whole machine: other programs' listeners too.
    let overflows = listen_overflows().saturating_sub(overflows);
    notes.push(format!("ramp {ramp:.2?}; {last}"));
    let evicted = after.evicted() - before.evicted();
    let refused = after.refused_per_source() - before.refused_per_source();
    notes.push(format!(
        "gateway: pending {} with the attack open; evicted +{evicted}, refused per source \
         +{refused}; listen queue overflows +{overflows}",
        during.pending()
    ));
    notes.push(format!("during the ramp: {}", client_note(&ramping)));
    notes.push(format!("with all open: {}", client_note(&client)));
    let mut errors = Vec::new();
    for (when, client) in [("during the ramp", ramping), ("with all open", client)] {
        if let Err(e) = client {
            errors.push(format!("{when}: {e:#}"));
        }
    }
    if let Err(e) = snap {
        errors.push(format!("{e:#}"));
    }
    if during.pending() > held as f64 {
        errors.push(format!(
            "pending {} over the bound {held}",
            during.pending()
        ));
    }
    if one_source {
        let floor = (HOSTILE - PER_SOURCE) as f64;
        if refused < floor {
            errors.push(format!(
                "only {refused} refused per source (want at least {floor})"
            ));
        }
        if last.established > PER_SOURCE && kind != Kind::IdleTcp {
            errors.push(format!(
                "{} hostile connections from one source got through",
                last.established
            ));
        }
    } else {
        // Every connection past the first 512 evicts one (the real
        // clients' too); none should end otherwise meanwhile (the handshake
        // and hello timeouts are longer than the ramp).
        let floor = (HOSTILE - MAX_PENDING) as f64;
        if evicted < floor {
            errors.push(format!("only {evicted} evictions (want at least {floor})"));
        }
        if refused != 0.0 {
            errors.push(format!("{refused} refused per source"));
        }
    }
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// 2,000 idle TCP connects all at once (over 99 sources), with a real
/// client among them. The gateway must take them off the kernel's listen
/// queue and let eviction sort them out; if the queue overflows, the kernel
/// drops handshakes: a real client whose SYN is dropped retries only after
/// 1 s, and an attacker's connection completed by a SYN cookie and then
/// dropped stays open on its side only ("ghosts": open here, unknown to
/// the gateway).
async fn burst(f: &Fixture, notes: &mut Vec<String>) -> anyhow::Result<()> {
    if let Some(backlog) = listen_backlog(f.gw.addr()) {
        notes.push(format!("the gateway's listen queue holds {backlog} (ss)"));
    }
    let overflows = listen_overflows();
    let attack = Attack::new(Kind::IdleTcp, HOSTILE)
        .ramp(HOSTILE)
        .launch(&f.target)?;
    let client = f.real_client().await;
    let settled = attack.settled(Duration::from_secs(30)).await;
    let snap = attack
        .wait_for(
            "every connection the gateway does not hold closed",
            Duration::from_secs(3),
            |s| s.open <= MAX_PENDING,
        )
        .await;
    let during = f.metrics().await?;
    let last = attack.stop().await;
    notes.push(last.to_string());
    notes.push(format!(
        "gateway: pending {}; spared once with their first bytes unread {} (all phases); \
         listen queue overflows +{} (whole machine)",
        during.pending(),
        during.spared() as u64,
        listen_overflows().saturating_sub(overflows)
    ));
    notes.push(client_note(&client));
    settled?;
    let mut errors = Vec::new();
    if let Err(e) = client {
        errors.push(format!("{e:#}"));
    }
    if snap.is_err() {
        errors.push(format!(
            "{} connections are open on the attackers' side but not in the gateway (whose \
             pending stage holds {}): the kernel completed and then dropped them, its listen \
             queue full",
            last.open.saturating_sub(during.pending() as usize),
            during.pending()
        ));
    }
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// The accept queue length of the listener at `addr`, from `ss -ltn`.
fn listen_backlog(addr: SocketAddr) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", addr.port())])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains(&addr.to_string()))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Tokenless upgrades opened and dropped in a loop by 32 workers for 2 s,
/// while real clients connect one after another.
async fn churn(f: &Fixture, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let target = f.target.clone();
    let churn = tokio::spawn(async move {
        hostile::churn(&target, &Sources::default(), 32, Duration::from_secs(2)).await
    });
    let mut clients = Vec::new();
    while !churn.is_finished() || clients.is_empty() {
        clients.push(f.real_client().await);
    }
    let report = churn.await?;
    notes.push(report.to_string());
    let mut slowest = Duration::ZERO;
    for c in clients.iter().flatten() {
        slowest = slowest.max(c.connect);
    }
    notes.push(format!(
        "{} real clients during the churn, slowest session in {slowest:.0?}",
        clients.len()
    ));
    for c in clients {
        c?;
    }
    ensure!(
        report.upgrades >= 100,
        "the churn managed only {} upgrades",
        report.upgrades
    );
    Ok(())
}

/// 300 hellos (with a valid token) dribbled a byte every 50 ms: each is cut
/// at the hello timeout, which the dribble does not extend.
async fn slow_hello(f: &Fixture, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let kind = Kind::SlowHello {
        token: TOKEN.to_owned(),
        pause: Duration::from_millis(50),
    };
    let attack = Attack::new(kind, 300).launch(&f.target)?;
    attack.settled(Duration::from_secs(10)).await?;
    let client = f.real_client().await;
    let snap = attack
        .all_closed(HELLO_TIMEOUT + Duration::from_secs(5))
        .await;
    let last = attack.stop().await;
    notes.push(last.to_string());
    notes.push(client_note(&client));
    client?;
    snap?;
    ensure!(
        last.endings.get("Close 1008") == Some(&300),
        "every slow hello should end with Close 1008: {:?}",
        last.endings
    );
    let [min, _, max] = last.closed_after.context("no close times")?;
    ensure!(
        min >= HELLO_TIMEOUT - Duration::from_secs(1)
            && max <= HELLO_TIMEOUT + Duration::from_secs(2),
        "slow hellos closed after {min:.2?}..{max:.2?}, not at the {HELLO_TIMEOUT:?} hello timeout"
    );
    Ok(())
}

/// 200 connections flooding WebSocket pings before any hello, never
/// reading: each is closed after the ping burst (16 control frames). A real
/// client connects while half of them are flooding. Then one more flood,
/// read on the side, shows the Close and its reason, and how long the
/// gateway kept taking the flood after it.
async fn flood_before_hello(f: &Fixture, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let kind = Kind::PingFlood {
        token: None,
        style: PingStyle::WebSocket,
    };
    let attack = Attack::new(kind, 200).launch(&f.target)?;
    attack
        .wait_for("half the floods under way", Duration::from_secs(10), |s| {
            s.established >= 100
        })
        .await?;
    let client = f.real_client().await;
    let closed = attack.all_closed(Duration::from_secs(20)).await;
    let last = attack.stop().await;
    notes.push(last.to_string());
    notes.push(client_note(&client));
    let probe = flood_probe(f, notes, None, PingStyle::WebSocket).await?;
    closed?;
    ensure!(
        last.established == 200 && last.ended_by_peer == 200,
        "every flood should be set up and then closed: {last}"
    );
    // As after hello: the Close may be lost to the reset that unread pings
    // cause; then the flood must have ended at once.
    let told = probe
        .close
        .as_ref()
        .is_some_and(|(code, _)| *code == Some(1008))
        && probe
            .texts
            .iter()
            .any(|t| t.contains("too many control frames before hello"));
    let reset_at_once = probe.close.is_none() && probe.close_after < FLOOD_AFTER_CLOSE;
    ensure!(
        told || reset_at_once,
        "a flood before hello should end with bad_hello and Close 1008: {probe:?}"
    );
    let mut errors = Vec::new();
    if let Err(e) = client {
        errors.push(format!("{e:#}"));
    }
    errors.extend(read_on_after_close(&probe));
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// A flood the gateway kept reading for too long after its Close.
fn read_on_after_close(probe: &hostile::FloodOutcome) -> Option<String> {
    (probe.read_after_close > FLOOD_AFTER_CLOSE).then(|| {
        format!(
            "after its Close the gateway kept taking the flood for {:.2?} ({} pings)",
            probe.read_after_close, probe.pings_after_close
        )
    })
}

/// 100 sessions flooding WebSocket pings and 50 flooding JSON pings after a
/// valid hello, never reading: each is closed by its violations (or the
/// write buffer cap). A real client connects while half of them are
/// flooding; then one flood of each style, read on the side.
async fn flood_after_hello(f: &Fixture, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let ws = Attack::new(
        Kind::PingFlood {
            token: Some(TOKEN.to_owned()),
            style: PingStyle::WebSocket,
        },
        100,
    )
    .launch(&f.target)?;
    let json = Attack::new(
        Kind::PingFlood {
            token: Some(TOKEN.to_owned()),
            style: PingStyle::Json,
        },
        50,
    )
    .from(Sources::spread(101..=120))
    .launch(&f.target)?;
    let half = ws
        .wait_for("half the floods under way", Duration::from_secs(10), |s| {
            s.established >= 50
        })
        .await;
    let client = f.real_client().await;
    let closed = (
        ws.all_closed(Duration::from_secs(20)).await,
        json.all_closed(Duration::from_secs(20)).await,
    );
    let (ws, json) = (ws.stop().await, json.stop().await);
    notes.push(ws.to_string());
    notes.push(json.to_string());
    notes.push(client_note(&client));
    let (mut ws_notes, mut json_notes) = (Vec::new(), Vec::new());
    let (ws_probe, json_probe) = tokio::join!(
        flood_probe(f, &mut ws_notes, Some(TOKEN), PingStyle::WebSocket),
        flood_probe(f, &mut json_notes, Some(TOKEN), PingStyle::Json),
    );
    notes.extend(ws_notes.into_iter().chain(json_notes));
    let probes = [ws_probe?, json_probe?];
    half?;
    closed.0?;
    closed.1?;
    for s in [&ws, &json] {
        ensure!(
            s.established == s.count && s.ended_by_peer == s.count,
            "every flooding session should be set up, then closed: {s}"
        );
    }
    for probe in &probes {
        // The gateway sends Close 1008, reads a few more messages and shuts
        // the socket. Unread pings in its receive buffer make the kernel
        // answer with a reset, which may discard the Close before the
        // flooder reads it: then the flood must still have ended within
        // moments of starting.
        let closed_for_violations = probe
            .close
            .as_ref()
            .is_some_and(|(code, reason)| *code == Some(1008) && reason.contains("violations"));
        let reset_at_once = probe.close.is_none() && probe.close_after < FLOOD_AFTER_CLOSE;
        ensure!(
            closed_for_violations || reset_at_once,
            "a flood after hello should end with Close 1008 for its violations: {probe:?}"
        );
    }
    let mut errors = Vec::new();
    if let Err(e) = client {
        errors.push(format!("{e:#}"));
    }
    errors.extend(probes.iter().filter_map(read_on_after_close));
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// Longest a flooding connection may keep the gateway reading after the
/// gateway closed it (sent its Close). Waiting for the client's Close reply
/// is polite, but reading a flood meanwhile, at full speed, costs a worker
/// per flooder: with 2 s of that per connection, 200 flooders held a real
/// client's handshake up for 1.5 to 3.5 s.
const FLOOD_AFTER_CLOSE: Duration = Duration::from_secs(1);

/// One ping flood read on the side (`hostile::flood_probe`), noted.
async fn flood_probe(
    f: &Fixture,
    notes: &mut Vec<String>,
    token: Option<&str>,
    style: PingStyle,
) -> anyhow::Result<hostile::FloodOutcome> {
    let source = Ipv4Addr::new(127, 0, 0, 2);
    let wait = Duration::from_secs(15);
    let out = hostile::flood_probe(&f.target, source, token, style, wait).await?;
    notes.push(format!(
        "one {style:?} flood {}, read on the side: Close {:?} after {:.0?} ({} pings written by \
         then); the gateway then took {} more pings ({}) for {:.2?} before the socket closed",
        if token.is_some() {
            "after hello"
        } else {
            "before hello"
        },
        out.close,
        out.close_after,
        out.pings_before_close,
        out.pings_after_close,
        mib(out.pings_after_close * style.frame().len() as u64),
        out.read_after_close,
    ));
    Ok(out)
}

fn client_note(client: &anyhow::Result<RealClient>) -> String {
    match client {
        Ok(c) => c.to_string(),
        Err(e) => format!("real client FAILED: {e:#}"),
    }
}

/// Broken framing, before and after the hello: oversized messages (whole
/// or in fragments) get Close 1009, bad opcodes and stray continuations
/// Close 1002, and a hello in 1-byte fragments is put back together. Then
/// 64 oversized fragmented messages at once, for memory.
async fn malformed(f: &Fixture, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let wait = Duration::from_secs(10);
    let over = 400 * 1024;
    let cases: [(&str, Option<&str>, Malformed, Option<u16>); 9] = [
        (
            "oversized before hello",
            None,
            Malformed::Oversized { len: over },
            Some(1009),
        ),
        (
            "oversized after hello",
            Some(TOKEN),
            Malformed::Oversized { len: over },
            Some(1009),
        ),
        (
            "fragmented oversized before hello",
            None,
            Malformed::Fragmented {
                total: over,
                fragment: 1024,
            },
            Some(1009),
        ),
        (
            "fragmented oversized after hello",
            Some(TOKEN),
            Malformed::Fragmented {
                total: over,
                fragment: 512,
            },
            Some(1009),
        ),
        (
            "hello in 1-byte fragments",
            Some(TOKEN),
            Malformed::FragmentedHello { fragment: 1 },
            None,
        ),
        (
            "reserved data opcode 0x3 before hello",
            None,
            Malformed::BadOpcode { opcode: 0x3 },
            Some(1002),
        ),
        (
            "reserved data opcode 0x7 after hello",
            Some(TOKEN),
            Malformed::BadOpcode { opcode: 0x7 },
            Some(1002),
        ),
        (
            "reserved control opcode 0xB after hello",
            Some(TOKEN),
            Malformed::BadOpcode { opcode: 0xb },
            Some(1002),
        ),
        (
            "stray continuation after hello",
            Some(TOKEN),
            Malformed::OrphanContinuation,
            Some(1002),
        ),
    ];
    let mut errors = Vec::new();
    let source = Ipv4Addr::new(127, 0, 0, 2);
    for (name, token, case, want) in cases {
        let wait = if want.is_some() {
            wait
        } else {
            Duration::from_millis(500)
        };
        let out = hostile::probe(&f.target, source, token, case, wait).await?;
        notes.push(format!(
            "{name}: {} after {:.0?}, texts {:?}",
            out.ended,
            out.elapsed,
            out.texts.iter().map(|t| trim(t, 90)).collect::<Vec<_>>()
        ));
        let ok = match want {
            Some(code) => out.close_code() == Some(code),
            None => out.texts.first().is_some_and(|t| t.contains("\"ready\"")),
        };
        if !ok {
            errors.push(format!(
                "{name}: wanted {}, got {} (texts {:?})",
                want.map_or("ready".to_owned(), |c| format!("Close {c}")),
                out.ended,
                out.texts
            ));
        }
    }
    // Many at once: memory stays bounded by the message limit per connection.
    let started = Instant::now();
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..64u8 {
        let target = f.target.clone();
        batch.spawn(async move {
            let source = Ipv4Addr::new(127, 0, 0, 2 + i);
            let case = Malformed::Fragmented {
                total: over,
                fragment: 1024,
            };
            hostile::probe(&target, source, Some(TOKEN), case, wait).await
        });
    }
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    while let Some(out) = batch.join_next().await {
        let key = match out? {
            Ok(o) => o.ended,
            Err(e) => format!("{e:#}"),
        };
        *codes.entry(key).or_default() += 1;
    }
    notes.push(format!(
        "64 fragmented oversized messages at once after hello: {codes:?} in {:.2?}",
        started.elapsed()
    ));
    if codes.get("Close 1009") != Some(&64) {
        errors.push(format!("64 oversized at once: {codes:?}"));
    }
    notes.push(f.real_client().await?.to_string());
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

fn trim(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// What the phases found.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
}

impl Report {
    /// Runs one phase after the previous one drained, with the RSS peak
    /// measured over it; records its notes, time and failures.
    async fn run<'a, P>(&mut self, f: &'a Fixture, name: &str, phase: P)
    where
        P: AsyncFnOnce(&'a Fixture, &mut Vec<String>) -> anyhow::Result<()>,
    {
        if let Ok(only) = std::env::var("HOSTILE_ONLY")
            && !name.contains(only.as_str())
        {
            return;
        }
        let draining = Instant::now();
        if let Err(e) = f.quiet().await {
            self.failures.push(format!("before {name}: {e:#}"));
        }
        let drained = draining.elapsed();
        f.rss.reset();
        let (cpu, overflows) = (cpu_seconds(f.pid), listen_overflows());
        let (own_cpu, idle) = (cpu_seconds(std::process::id()), machine_idle_seconds());
        let started = Instant::now();
        let mut notes = Vec::new();
        let result = phase(f, &mut notes).await;
        let took = started.elapsed();
        let peak = f.rss.peak();
        let bound = f.idle_rss + RSS_HEADROOM;
        let mut row = format!(
            "== {name}: {took:.2?} (after {drained:.2?} draining the last phase); gateway peak \
             RSS {} (idle {}, +{}), CPU {:.2} s; attackers' CPU {:.2} s; machine idle {:.2} CPU \
             s; listen queue overflows +{}",
            mib(peak),
            mib(f.idle_rss),
            mib(peak.saturating_sub(f.idle_rss)),
            cpu_seconds(f.pid) - cpu,
            cpu_seconds(std::process::id()) - own_cpu,
            machine_idle_seconds() - idle,
            listen_overflows().saturating_sub(overflows),
        );
        for n in notes {
            row.push_str("\n   ");
            row.push_str(&n);
        }
        if let Err(e) = result {
            row.push_str(&format!("\n   FAILED: {e:#}"));
            self.failures.push(format!("{name}: {e:#}"));
        }
        if peak > bound {
            self.failures.push(format!(
                "{name}: the gateway's RSS reached {}, over idle {} + {}",
                mib(peak),
                mib(f.idle_rss),
                mib(RSS_HEADROOM)
            ));
        }
        println!("{row}");
    }
}

/// Samples a process's VmRSS every 20 ms, keeping the peak since the last reset.
struct RssSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let max = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                if let Some(kib) = proc_status_kib(pid, "VmRSS:") {
                    max.fetch_max(kib * 1024, Ordering::Relaxed);
                }
            }
        });
        RssSampler { peak, task }
    }

    fn reset(&self) {
        self.peak.store(0, Ordering::Relaxed);
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// User and system CPU time of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// Idle CPU time of the whole machine so far, in CPU seconds.
fn machine_idle_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let idle: u64 = stat
        .lines()
        .next()
        .and_then(|cpu| cpu.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    idle as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// The kernel's count of connections dropped because a listen queue was
/// full (TcpExt ListenOverflows, for the whole network namespace).
fn listen_overflows() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/netstat") else {
        return 0;
    };
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// A `kB` field of /proc/<pid>/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
