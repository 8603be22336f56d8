//! One suite, run against both registries: in memory (on a manual clock)
//! and in a real Redis (on real time, with short leases). For Redis,
//! "two servers" are two registries connected to the same Redis; for
//! memory, two handles on one registry.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_server::registry::{
    Clock, MemoryRegistry, PortRange, ReconnectToken, RedisRegistry, RegistryConfig, RegistryError,
    RequestError, TunnelNetwork, TunnelRegistry,
};
use testkit::redis::RedisServer;

const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY_B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";
/// The lease and resume window of the expiry tests: long enough that a
/// loaded machine does not cross them by accident between two calls.
const SHORT: Duration = Duration::from_millis(2000);
/// Time added past a boundary before checking it was crossed.
const MARGIN: Duration = Duration::from_millis(300);

#[derive(Debug)]
struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    fn new() -> ManualClock {
        ManualClock(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000)))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

/// A registry under test, a second "server" on the same state, and time.
struct Env {
    one: Arc<dyn TunnelRegistry>,
    two: Arc<dyn TunnelRegistry>,
    clock: Option<Arc<ManualClock>>,
    redis: Option<RedisServer>,
}

impl Env {
    async fn new(backend: Backend, config: RegistryConfig) -> Option<Env> {
        match backend {
            Backend::Memory => {
                let clock = Arc::new(ManualClock::new());
                let registry: Arc<dyn TunnelRegistry> =
                    Arc::new(MemoryRegistry::with_clock(config, clock.clone()).unwrap());
                Some(Env {
                    one: registry.clone(),
                    two: registry,
                    clock: Some(clock),
                    redis: None,
                })
            }
            Backend::Redis => {
                let server = RedisServer::start()?;
                let one = RedisRegistry::connect(&server.url(), config.clone())
                    .await
                    .unwrap();
                let two = RedisRegistry::connect(&server.url(), config).await.unwrap();
                Some(Env {
                    one: Arc::new(one),
                    two: Arc::new(two),
                    clock: None,
                    redis: Some(server),
                })
            }
        }
    }

    async fn advance(&self, by: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            None => tokio::time::sleep(by).await,
        }
    }
}

fn config() -> RegistryConfig {
    RegistryConfig::new(
        "10.0.0.0/24".parse().unwrap(),
        "40000-40099".parse().unwrap(),
        "relay.example",
    )
}

fn short_config() -> RegistryConfig {
    let mut c = config();
    c.lease = SHORT;
    c.resume_window = SHORT;
    c
}

fn with_network(mut c: RegistryConfig, network: &str) -> RegistryConfig {
    c.network = network.parse().unwrap();
    c
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Redis).await
                }
            )*
        }
    };
}

suite!(
    create_allocates_in_order,
    live_name_is_refused,
    expired_lease_is_replaced,
    renew_keeps_the_tunnel_live,
    resume_needs_the_right_token,
    resume_rotates_the_token_with_one_step_of_grace,
    resume_after_the_lease_within_the_window,
    forgotten_after_the_resume_window,
    sweep_counts_what_expired,
    addresses_run_out,
    ports_run_out_without_claiming_anything,
    release_frees_everything,
    invalid_requests_are_refused,
    concurrent_creates_on_two_servers_never_collide,
    every_server_sees_every_tunnel,
);

async fn create_allocates_in_order(backend: Backend) {
    let Some(env) = Env::new(backend, config()).await else {
        return;
    };
    let (a, token_a) = env
        .one
        .create("alice", "pc", &[22, 3389], KEY_A)
        .await
        .unwrap();
    assert_eq!(a.address, Ipv4Addr::new(10, 0, 0, 2), "the relay keeps .1");
    assert_eq!(a.owner, "alice");
    assert_eq!(a.name, "pc");
    assert_eq!(a.ports, vec![22, 3389]);
    assert_eq!(a.client_public_key, KEY_A);
    let forwards: Vec<_> = a.forwards.iter().map(|f| (f.port, f.public_port)).collect();
    assert_eq!(forwards, vec![(22, 40000), (3389, 40001)]);
    let id = uuid::Uuid::parse_str(&a.tunnel_id).unwrap();
    assert_eq!(id.get_version_num(), 4);
    assert_eq!(token_a.expose().len(), 43, "32 bytes, base64url");
    assert!(a.lease_expires_at > a.created_at);
    assert_eq!(
        a.lease_expires_at.duration_since(a.created_at).unwrap(),
        env.one.config().lease
    );

    let (b, token_b) = env.one.create("bob", "nas", &[445], KEY_B).await.unwrap();
    assert_eq!(b.address, Ipv4Addr::new(10, 0, 0, 3));
    assert_eq!(b.forwards[0].public_port, 40002);
    assert_ne!(a.tunnel_id, b.tunnel_id);
    assert_ne!(token_a, token_b);

    assert_eq!(env.one.get(&a.tunnel_id).await.unwrap(), Some(a));
    assert_eq!(env.one.count_live().await.unwrap(), 2);
    assert_eq!(
        env.one.config().public_address(40000),
        "relay.example:40000"
    );
}

async fn live_name_is_refused(backend: Backend) {
    let Some(env) = Env::new(backend, config()).await else {
        return;
    };
    env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    let err = env
        .one
        .create("alice", "pc", &[80], KEY_B)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Exists { name } if name == "pc"),
        "{err:?}"
    );
    assert_eq!(err.reason(), "tunnel_exists");
    // The same name is free for another owner, and another name for alice.
    env.one.create("bob", "pc", &[22], KEY_B).await.unwrap();
    env.one
        .create("alice", "laptop", &[22], KEY_A)
        .await
        .unwrap();
    // Owner and name are kept apart even when they could be concatenated.
    env.one.create("alice:p", "c", &[22], KEY_A).await.unwrap();
    assert_eq!(env.one.count_live().await.unwrap(), 4);
}

async fn expired_lease_is_replaced(backend: Backend) {
    let Some(env) = Env::new(backend, short_config()).await else {
        return;
    };
    let (old, old_token) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    env.advance(SHORT + MARGIN).await;
    assert_eq!(env.one.count_live().await.unwrap(), 0);
    assert!(
        env.one.get(&old.tunnel_id).await.unwrap().is_some(),
        "still resumable"
    );

    let (new, _) = env.one.create("alice", "pc", &[22], KEY_B).await.unwrap();
    assert_ne!(new.tunnel_id, old.tunnel_id);
    assert_eq!(env.one.get(&old.tunnel_id).await.unwrap(), None);
    let err = env
        .one
        .resume("alice", &old.tunnel_id, &old_token, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::ResumeRejected), "{err:?}");
    assert_eq!(env.one.count_live().await.unwrap(), 1);
}

async fn renew_keeps_the_tunnel_live(backend: Backend) {
    let Some(env) = Env::new(backend, short_config()).await else {
        return;
    };
    let (a, _) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    env.advance(SHORT * 6 / 10).await;
    let lease = env.one.renew(&a.tunnel_id).await.unwrap();
    assert!(lease > a.lease_expires_at);
    assert_eq!(
        env.one
            .get(&a.tunnel_id)
            .await
            .unwrap()
            .unwrap()
            .lease_expires_at,
        lease
    );
    env.advance(SHORT * 6 / 10).await;
    // Past the first lease, inside the renewed one.
    assert_eq!(env.one.count_live().await.unwrap(), 1);
    let err = env
        .one
        .create("alice", "pc", &[22], KEY_A)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Exists { .. }), "{err:?}");

    let unknown = uuid::Uuid::new_v4().to_string();
    let err = env.one.renew(&unknown).await.unwrap_err();
    assert!(matches!(err, RegistryError::UnknownTunnel), "{err:?}");
    let err = env.one.renew("relay:tunnel:*").await.unwrap_err();
    assert!(matches!(err, RegistryError::UnknownTunnel), "{err:?}");
}

async fn resume_needs_the_right_token(backend: Backend) {
    let Some(env) = Env::new(backend, config()).await else {
        return;
    };
    let (a, token) = env
        .one
        .create("alice", "pc", &[22, 3389], KEY_A)
        .await
        .unwrap();
    env.one.create("bob", "pc", &[22], KEY_B).await.unwrap();

    let refused = |r: Result<_, RegistryError>| matches!(r, Err(RegistryError::ResumeRejected));
    let wrong = ReconnectToken::new("A".repeat(43));
    assert!(refused(
        env.one.resume("alice", &a.tunnel_id, &wrong, None).await
    ));
    assert!(
        refused(env.one.resume("bob", &a.tunnel_id, &token, None).await),
        "other owner"
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    assert!(refused(
        env.one.resume("alice", &unknown, &token, None).await
    ));
    assert!(refused(
        env.one.resume("alice", "not-an-id", &token, None).await
    ));
    assert!(refused(
        env.one
            .resume("alice", &a.tunnel_id.to_uppercase(), &token, None)
            .await
    ));

    let err = env
        .one
        .resume("alice", &a.tunnel_id, &token, Some("short"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Invalid(RequestError::BadPublicKey)),
        "{err:?}"
    );

    let (resumed, new_token) = env
        .one
        .resume("alice", &a.tunnel_id, &token, Some(KEY_B))
        .await
        .unwrap();
    assert_eq!(resumed.tunnel_id, a.tunnel_id);
    assert_eq!(resumed.address, a.address);
    assert_eq!(resumed.forwards, a.forwards);
    assert_eq!(resumed.created_at, a.created_at);
    assert_eq!(
        resumed.client_public_key, KEY_B,
        "a new WireGuard key replaces the old"
    );
    assert_ne!(new_token, token, "the token rotates");
    assert_eq!(env.one.get(&a.tunnel_id).await.unwrap(), Some(resumed));
}

async fn resume_rotates_the_token_with_one_step_of_grace(backend: Backend) {
    let Some(env) = Env::new(backend, config()).await else {
        return;
    };
    let (a, t1) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    let id = a.tunnel_id.as_str();
    let resume = |t: ReconnectToken| {
        let registry = env.one.clone();
        let id = id.to_owned();
        async move {
            registry
                .resume("alice", &id, &t, None)
                .await
                .map(|(_, t)| t)
        }
    };
    let t2 = resume(t1.clone()).await.unwrap();
    // The reply carrying t2 was lost: t1 still works, once more.
    let t3 = resume(t1.clone()).await.unwrap();
    // The client uses t3: now t1 and the never-received t2 are dead.
    let t4 = resume(t3.clone()).await.unwrap();
    assert!(matches!(
        resume(t1).await,
        Err(RegistryError::ResumeRejected)
    ));
    assert!(matches!(
        resume(t2).await,
        Err(RegistryError::ResumeRejected)
    ));
    let t5 = resume(t4.clone()).await.unwrap();
    assert!(matches!(
        resume(t3).await,
        Err(RegistryError::ResumeRejected)
    ));
    resume(t5).await.unwrap();
}

async fn resume_after_the_lease_within_the_window(backend: Backend) {
    let Some(env) = Env::new(backend, short_config()).await else {
        return;
    };
    let (a, token) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    env.advance(SHORT + MARGIN).await;
    assert_eq!(env.one.count_live().await.unwrap(), 0);
    let (resumed, _) = env
        .one
        .resume("alice", &a.tunnel_id, &token, None)
        .await
        .unwrap();
    assert_eq!(resumed.address, a.address);
    assert_eq!(resumed.forwards, a.forwards);
    assert!(resumed.lease_expires_at > a.lease_expires_at + SHORT);
    assert_eq!(env.one.count_live().await.unwrap(), 1);
    // Live again, so the name is taken again.
    let err = env
        .one
        .create("alice", "pc", &[22], KEY_A)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Exists { .. }), "{err:?}");
}

async fn forgotten_after_the_resume_window(backend: Backend) {
    // A /30: exactly one client address.
    let Some(env) = Env::new(backend, with_network(short_config(), "10.9.0.0/30")).await else {
        return;
    };
    let (a, token) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    assert_eq!(a.address, Ipv4Addr::new(10, 9, 0, 2));
    env.advance(SHORT + SHORT + MARGIN).await;
    let err = env
        .one
        .resume("alice", &a.tunnel_id, &token, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::ResumeRejected), "{err:?}");
    assert_eq!(env.one.get(&a.tunnel_id).await.unwrap(), None);
    // Its address and port are free again.
    let (b, _) = env.one.create("bob", "nas", &[22], KEY_B).await.unwrap();
    assert_eq!(b.address, a.address);
    let err = env.one.renew(&a.tunnel_id).await.unwrap_err();
    assert!(matches!(err, RegistryError::UnknownTunnel), "{err:?}");
}

async fn sweep_counts_what_expired(backend: Backend) {
    let Some(env) = Env::new(backend, short_config()).await else {
        return;
    };
    env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    env.one.create("bob", "pc", &[22], KEY_A).await.unwrap();
    assert_eq!(env.one.sweep().await.unwrap(), 0, "nothing is due yet");
    env.advance(SHORT + SHORT + MARGIN).await;
    assert_eq!(env.one.sweep().await.unwrap(), 2);
    assert_eq!(env.one.sweep().await.unwrap(), 0);
    assert_eq!(env.one.count_live().await.unwrap(), 0);
}

async fn addresses_run_out(backend: Backend) {
    let Some(env) = Env::new(backend, with_network(config(), "10.9.0.0/30")).await else {
        return;
    };
    let (a, _) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    let err = env
        .one
        .create("bob", "nas", &[22], KEY_B)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::AddressesExhausted), "{err:?}");
    assert_eq!(err.reason(), "addresses_exhausted");
    assert!(env.one.release(&a.tunnel_id).await.unwrap());
    let (b, _) = env.one.create("bob", "nas", &[22], KEY_B).await.unwrap();
    assert_eq!(b.address, a.address);
}

async fn ports_run_out_without_claiming_anything(backend: Backend) {
    let mut c = with_network(config(), "10.9.0.0/29");
    c.public_ports = PortRange::new(40000, 40002).unwrap();
    let Some(env) = Env::new(backend, c).await else {
        return;
    };
    let (a, _) = env
        .one
        .create("alice", "pc", &[22, 80], KEY_A)
        .await
        .unwrap();
    let err = env
        .one
        .create("bob", "nas", &[22, 80], KEY_B)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::PortsExhausted), "{err:?}");
    // The failed create took neither an address nor a port nor the name.
    let (c, _) = env.one.create("bob", "nas", &[22], KEY_B).await.unwrap();
    assert_eq!(a.address, Ipv4Addr::new(10, 9, 0, 2));
    assert_eq!(c.address, Ipv4Addr::new(10, 9, 0, 3));
    assert_eq!(c.forwards[0].public_port, 40002);
    assert_eq!(env.one.count_live().await.unwrap(), 2);
}

async fn release_frees_everything(backend: Backend) {
    let Some(env) = Env::new(backend, config()).await else {
        return;
    };
    let (a, token) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    assert!(env.one.release(&a.tunnel_id).await.unwrap());
    assert!(
        !env.one.release(&a.tunnel_id).await.unwrap(),
        "already gone"
    );
    assert!(!env.one.release("garbage").await.unwrap());
    assert_eq!(env.one.get(&a.tunnel_id).await.unwrap(), None);
    assert_eq!(env.one.count_live().await.unwrap(), 0);
    let err = env.one.renew(&a.tunnel_id).await.unwrap_err();
    assert!(matches!(err, RegistryError::UnknownTunnel), "{err:?}");
    let err = env
        .one
        .resume("alice", &a.tunnel_id, &token, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::ResumeRejected), "{err:?}");
    // The name, address and port can be had again (the address and port
    // after the round-robin walk comes back to them).
    let (b, _) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    assert_ne!(b.tunnel_id, a.tunnel_id);
}

async fn invalid_requests_are_refused(backend: Backend) {
    let Some(env) = Env::new(backend, config()).await else {
        return;
    };
    let cases: Vec<(&str, Vec<u16>, &str, RequestError)> = vec![
        ("", vec![22], KEY_A, RequestError::EmptyName),
        ("a\nb", vec![22], KEY_A, RequestError::BadName),
        ("pc", vec![], KEY_A, RequestError::NoPorts),
        ("pc", vec![0], KEY_A, RequestError::ZeroPort),
        (
            "pc",
            vec![22, 80, 22],
            KEY_A,
            RequestError::DuplicatePort { port: 22 },
        ),
        ("pc", vec![22], "not base64!", RequestError::BadPublicKey),
        ("pc", vec![22], "AAAA", RequestError::BadPublicKey),
        (
            "pc",
            (1..=17).collect(),
            KEY_A,
            RequestError::TooManyPorts { count: 17, max: 16 },
        ),
    ];
    let long = "n".repeat(65);
    for (name, ports, key, want) in cases.into_iter().chain([(
        long.as_str(),
        vec![22],
        KEY_A,
        RequestError::NameTooLong { len: 65, max: 64 },
    )]) {
        let err = env
            .one
            .create("alice", name, &ports, key)
            .await
            .unwrap_err();
        match err {
            RegistryError::Invalid(got) => assert_eq!(got, want),
            other => panic!("{name:?} {ports:?}: {other:?}"),
        }
    }
    assert_eq!(env.one.count_live().await.unwrap(), 0);
}

async fn concurrent_creates_on_two_servers_never_collide(backend: Backend) {
    // A /27 has 29 client addresses; 50 creates race for them.
    let Some(env) = Env::new(backend, with_network(config(), "10.7.0.0/27")).await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..50 {
        let registry = if i % 2 == 0 {
            env.one.clone()
        } else {
            env.two.clone()
        };
        tasks.push(tokio::spawn(async move {
            registry
                .create(&format!("owner{i}"), "pc", &[22, 3389], KEY_A)
                .await
        }));
    }
    let mut records = Vec::new();
    let mut exhausted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok((record, _)) => records.push(record),
            Err(RegistryError::AddressesExhausted) => exhausted += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(records.len(), 29);
    assert_eq!(exhausted, 21);
    let addresses: HashSet<_> = records.iter().map(|r| r.address).collect();
    assert_eq!(addresses.len(), 29, "an address was handed out twice");
    let network: TunnelNetwork = "10.7.0.0/27".parse().unwrap();
    assert!(
        addresses
            .iter()
            .all(|a| network.contains(*a) && *a != network.relay_address())
    );
    let ports: HashSet<_> = records
        .iter()
        .flat_map(|r| &r.forwards)
        .map(|f| f.public_port)
        .collect();
    assert_eq!(ports.len(), 58, "a public port was handed out twice");
    assert_eq!(env.two.count_live().await.unwrap(), 29);
}

async fn every_server_sees_every_tunnel(backend: Backend) {
    let Some(env) = Env::new(backend, config()).await else {
        return;
    };
    let (a, token) = env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    assert_eq!(env.two.get(&a.tunnel_id).await.unwrap(), Some(a.clone()));
    let err = env
        .two
        .create("alice", "pc", &[22], KEY_A)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Exists { .. }), "{err:?}");
    // The client reconnects through the other server.
    let (resumed, _) = env
        .two
        .resume("alice", &a.tunnel_id, &token, None)
        .await
        .unwrap();
    assert_eq!(resumed.address, a.address);
    env.one.renew(&a.tunnel_id).await.unwrap();
    assert!(env.two.release(&a.tunnel_id).await.unwrap());
    assert_eq!(env.one.get(&a.tunnel_id).await.unwrap(), None);
}

// Redis only: what is stored, and how it behaves when Redis goes away.

#[tokio::test]
async fn redis_stores_only_the_token_hash_and_every_key_expires() {
    use sha2::{Digest, Sha256};
    let Some(env) = Env::new(Backend::Redis, config()).await else {
        return;
    };
    let server = env.redis.as_ref().unwrap();
    let (a, token) = env
        .one
        .create("alice", "pc", &[22, 80], KEY_A)
        .await
        .unwrap();
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();

    let fields: std::collections::HashMap<String, String> = ::redis::cmd("HGETALL")
        .arg(format!("relay:tunnel:{}", a.tunnel_id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(fields.values().all(|v| !v.contains(token.expose())));
    let hash: String = Sha256::digest(token.expose().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(fields["tok"], hash);

    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("relay:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let per_tunnel: Vec<_> = keys
        .iter()
        .filter(|k| !k.starts_with("relay:cursor:") && *k != "relay:live")
        .collect();
    // The hash, the name, the address and two ports.
    assert_eq!(per_tunnel.len(), 5, "{keys:?}");
    for key in &per_tunnel {
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let want = (config().lease + config().resume_window).as_millis() as i64;
        assert!(ttl > want - 5_000 && ttl <= want, "{key}: PTTL {ttl}");
    }

    assert!(env.one.release(&a.tunnel_id).await.unwrap());
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("relay:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        keys.iter().all(|k| k.starts_with("relay:cursor:")),
        "left behind: {keys:?}"
    );
}

#[tokio::test]
async fn redis_registry_reconnects_after_a_restart() {
    let Some(mut env) = Env::new(Backend::Redis, config()).await else {
        return;
    };
    env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
    env.redis.as_mut().unwrap().restart();
    // The first call may meet the dead connection; a later one reconnects.
    let mut live = None;
    for _ in 0..5 {
        match env.one.count_live().await {
            Ok(n) => {
                live = Some(n);
                break;
            }
            Err(e) => assert!(matches!(e, RegistryError::Backend(_)), "{e:?}"),
        }
    }
    assert_eq!(live, Some(0), "the restarted Redis is empty");
    env.one.create("alice", "pc", &[22], KEY_A).await.unwrap();
}

#[tokio::test]
async fn redis_connect_fails_without_a_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisRegistry::connect(&format!("redis://127.0.0.1:{port}"), config())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Backend(_)), "{err:?}");
}

#[test]
fn configuration_is_checked() {
    assert!(
        "10.0.0.1/24".parse::<TunnelNetwork>().is_err(),
        "host bits set"
    );
    assert!(
        "10.0.0.0/31".parse::<TunnelNetwork>().is_err(),
        "no client address"
    );
    assert!(
        "10.0.0.0/8".parse::<TunnelNetwork>().is_err(),
        "too wide to walk"
    );
    assert!("10.0.0.0".parse::<TunnelNetwork>().is_err());
    let net: TunnelNetwork = "10.0.0.0/24".parse().unwrap();
    assert_eq!(net.relay_address(), Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(net.client_capacity(), 253);
    assert_eq!(net.to_string(), "10.0.0.0/24");
    assert!("0-10".parse::<PortRange>().is_err());
    assert!("50-40".parse::<PortRange>().is_err());
    assert_eq!("40000-40099".parse::<PortRange>().unwrap().len(), 100);

    let mut c = config();
    c.lease = Duration::ZERO;
    assert!(MemoryRegistry::new(c).is_err());
    let mut c = config();
    c.public_host = " ".into();
    assert!(MemoryRegistry::new(c).is_err());
    let mut c = config();
    c.public_host = "2001:db8::1".into();
    assert_eq!(c.public_address(40000), "[2001:db8::1]:40000");
}

#[test]
fn reconnect_tokens_are_not_shown_by_debug() {
    let token = ReconnectToken::new("very-secret-token");
    assert_eq!(format!("{token:?}"), "ReconnectToken(..)");
    assert!(!format!("{:?}", Some(&token)).contains("very-secret"));
}
