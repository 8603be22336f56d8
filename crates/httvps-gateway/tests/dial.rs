//! Happy Eyeballs (RFC 8305) racing of direct dials.
//!
//! The racing logic runs with an injected connector under tokio's paused
//! clock, so the timings are exact and nothing touches the network; one test
//! uses real loopback sockets. No test dials outside loopback.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use httvps_gateway::dial::{self, DialOptions};
use tokio::time::Instant;

type Attempt = Pin<Box<dyn Future<Output = io::Result<SocketAddr>> + Send>>;

/// How a fake address behaves.
#[derive(Clone, Copy)]
enum Fake {
    /// Never answers (a blackholed address).
    Blackhole,
    /// Fails with this kind after this long.
    Fail(io::ErrorKind, Duration),
    /// Connects after this long.
    Connect(Duration),
}

/// A connector over fake addresses that records when each attempt started
/// (relative to `t0`) and when one was dropped unfinished.
struct Script {
    t0: Instant,
    behaviour: Vec<(SocketAddr, Fake)>,
    started: Arc<Mutex<Vec<(SocketAddr, Duration)>>>,
    dropped: Arc<Mutex<Vec<SocketAddr>>>,
}

struct DropFlag(SocketAddr, Arc<Mutex<Vec<SocketAddr>>>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.2 {
            self.1.lock().unwrap().push(self.0);
        }
    }
}

impl Script {
    fn new(behaviour: &[(&str, Fake)]) -> Script {
        Script {
            t0: Instant::now(),
            behaviour: behaviour
                .iter()
                .map(|(a, f)| (a.parse().unwrap(), *f))
                .collect(),
            started: Arc::default(),
            dropped: Arc::default(),
        }
    }

    /// Races the script's addresses with default options within `budget`.
    async fn race(&self, budget: Duration) -> std::io::Result<SocketAddr> {
        dial::race(
            &self.addrs(),
            &DialOptions::default(),
            budget,
            self.connector(),
        )
        .await
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.behaviour.iter().map(|(a, _)| *a).collect()
    }

    fn connector(&self) -> impl FnMut(SocketAddr) -> Attempt + use<> {
        let (t0, started, dropped) = (self.t0, self.started.clone(), self.dropped.clone());
        let behaviour = self.behaviour.clone();
        move |sa| {
            started.lock().unwrap().push((sa, t0.elapsed()));
            let fake = behaviour.iter().find(|(a, _)| *a == sa).unwrap().1;
            let flag = DropFlag(sa, dropped.clone(), false);
            Box::pin(async move {
                // Moved in whole, so it drops with the attempt.
                let mut flag = flag;
                let r = match fake {
                    Fake::Blackhole => std::future::pending().await,
                    Fake::Fail(kind, after) => {
                        tokio::time::sleep(after).await;
                        Err(io::Error::new(kind, "fake failure"))
                    }
                    Fake::Connect(after) => {
                        tokio::time::sleep(after).await;
                        Ok(sa)
                    }
                };
                flag.2 = true;
                r
            })
        }
    }

    fn started(&self) -> Vec<(SocketAddr, Duration)> {
        self.started.lock().unwrap().clone()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const V6: &str = "[2001:db8::1]:443";
const V4: &str = "192.0.2.1:443";
const V4B: &str = "192.0.2.2:443";

#[tokio::test(start_paused = true)]
async fn blackholed_first_address_costs_one_attempt_delay() {
    let s = Script::new(&[(V6, Fake::Blackhole), (V4, Fake::Connect(ms(30)))]);
    let t0 = Instant::now();
    let won = s.race(Duration::from_secs(10)).await.unwrap();
    assert_eq!(won, sa(V4));
    assert_eq!(t0.elapsed(), ms(250 + 30));
    assert_eq!(s.started(), [(sa(V6), ms(0)), (sa(V4), ms(250))]);
    // The blackholed attempt was dropped once the other won.
    assert_eq!(*s.dropped.lock().unwrap(), [sa(V6)]);
}

#[tokio::test(start_paused = true)]
async fn attempt_delay_is_configurable_and_bounded() {
    for (asked, used) in [(500, 500), (10, 100), (9000, 2000)] {
        let s = Script::new(&[(V6, Fake::Blackhole), (V4, Fake::Connect(ms(0)))]);
        let opts = DialOptions {
            attempt_delay: ms(asked),
            ..DialOptions::default()
        };
        let won = dial::race(&s.addrs(), &opts, Duration::from_secs(10), s.connector())
            .await
            .unwrap();
        assert_eq!(won, sa(V4));
        assert_eq!(s.started()[1], (sa(V4), ms(used)), "asked for {asked} ms");
    }
}

#[tokio::test(start_paused = true)]
async fn refused_first_address_starts_the_next_at_once() {
    let s = Script::new(&[
        (V6, Fake::Fail(io::ErrorKind::ConnectionRefused, ms(20))),
        (V4, Fake::Connect(ms(10))),
    ]);
    let t0 = Instant::now();
    let won = s.race(Duration::from_secs(10)).await.unwrap();
    assert_eq!(won, sa(V4));
    assert_eq!(s.started(), [(sa(V6), ms(0)), (sa(V4), ms(20))]);
    assert_eq!(t0.elapsed(), ms(30));
}

#[tokio::test(start_paused = true)]
async fn first_success_wins_even_if_started_earlier_ones_are_slow() {
    // The first attempt answers late but before the second, started after
    // the delay, would: the first wins and the second is dropped.
    let s = Script::new(&[(V6, Fake::Connect(ms(300))), (V4, Fake::Connect(ms(100)))]);
    let won = s.race(Duration::from_secs(10)).await.unwrap();
    assert_eq!(won, sa(V6));
    assert_eq!(*s.dropped.lock().unwrap(), [sa(V4)]);
}

#[tokio::test(start_paused = true)]
async fn all_failing_gives_the_most_telling_error() {
    let s = Script::new(&[
        (V6, Fake::Fail(io::ErrorKind::NetworkUnreachable, ms(1))),
        (V4, Fake::Fail(io::ErrorKind::ConnectionRefused, ms(5))),
        (V4B, Fake::Fail(io::ErrorKind::NetworkUnreachable, ms(1))),
    ]);
    let t0 = Instant::now();
    let err = s.race(Duration::from_secs(10)).await.unwrap_err();
    // Each failure started the next attempt at once.
    assert_eq!(t0.elapsed(), ms(7));
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().starts_with(V4), "{err}");

    // Equally telling: the last one.
    let s = Script::new(&[
        (V4, Fake::Fail(io::ErrorKind::ConnectionRefused, ms(1))),
        (V4B, Fake::Fail(io::ErrorKind::ConnectionRefused, ms(1))),
    ]);
    let err = s.race(Duration::from_secs(10)).await.unwrap_err();
    assert!(err.to_string().starts_with(V4B), "{err}");
}

#[tokio::test(start_paused = true)]
async fn overall_timeout_applies() {
    let s = Script::new(&[(V6, Fake::Blackhole), (V4, Fake::Blackhole)]);
    let t0 = Instant::now();
    let err = s.race(Duration::from_secs(3)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert_eq!(s.started().len(), 2);
    assert_eq!(s.dropped.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_moves_on() {
    let s = Script::new(&[(V6, Fake::Blackhole), (V4, Fake::Blackhole)]);
    let opts = DialOptions {
        attempt_timeout: Some(ms(1000)),
        ..DialOptions::default()
    };
    let t0 = Instant::now();
    let err = dial::race(&s.addrs(), &opts, Duration::from_secs(10), s.connector())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    // The second started at 250 ms and gave up 1 s later.
    assert_eq!(t0.elapsed(), ms(1250));
}

#[tokio::test]
async fn no_address_is_an_error() {
    let err = dial::race(&[], &DialOptions::default(), ms(100), |sa| async move {
        Ok::<_, io::Error>(sa)
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// Real sockets on loopback: 127.0.0.2 refuses (nothing listens there), then
/// 127.0.0.1 accepts — at once, not after the attempt delay.
#[tokio::test]
async fn real_sockets_refused_then_accepted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let refusing = SocketAddr::from(([127, 0, 0, 2], port));
    let listening = SocketAddr::from(([127, 0, 0, 1], port));
    let opts = DialOptions {
        attempt_delay: Duration::from_secs(2),
        ..DialOptions::default()
    };
    let started = std::time::Instant::now();
    let stream = dial::connect_tcp(&[refusing, listening], &opts, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(stream.peer_addr().unwrap(), listening);
    assert!(stream.nodelay().unwrap());
    let (_accepted, from) = listener.accept().await.unwrap();
    assert_eq!(from, stream.local_addr().unwrap());

    // Both refusing: refused, naming an address.
    drop(listener);
    let err = dial::connect_tcp(&[refusing, listening], &opts, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}
