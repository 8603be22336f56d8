//! The two desktop processes' socket (`app::remote`), end to end over a real
//! Unix socket: the tray's hub with a real controller, the window's client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use app::remote::client::{self, Opened, Push, Remote};
use app::remote::hub::{self, Bound, Hub, WindowLauncher};
use app::settings::MemoryStorage;
use app::{Controller, Parts};
use profiles::{MemoryStore, SecretStore};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(10);

/// Counts the windows the hub asked to start.
#[derive(Default)]
struct CountLaunches(Arc<AtomicUsize>);

impl WindowLauncher for CountLaunches {
    fn launch_window(&self) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Tray {
    hub: Arc<Hub>,
    socket: std::path::PathBuf,
    launches: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

fn tray() -> Tray {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("app.sock");
    let controller = Controller::new(Parts {
        storage: Box::new(MemoryStorage::default()),
        secrets: Arc::new(MemoryStore::default()) as Arc<dyn SecretStore>,
        system_proxy: None,
        autostart: None,
    });
    let launches = Arc::new(AtomicUsize::new(0));
    let hub = Hub::new(controller, Box::new(CountLaunches(launches.clone())));
    let Bound::Listening(listener) = hub::bind(&socket).unwrap() else {
        panic!("a fresh socket is free");
    };
    tokio::spawn(hub.clone().serve(listener));
    Tray {
        hub,
        socket,
        launches,
        _dir: dir,
    }
}

async fn open(tray: &Tray, minimized: bool) -> Opened {
    let stream = UnixStream::connect(&tray.socket).await.unwrap();
    tokio::time::timeout(WAIT, client::open(stream, minimized))
        .await
        .expect("the hub answers")
        .unwrap()
}

async fn host(tray: &Tray) -> (Remote, UnboundedReceiver<Push>) {
    match open(tray, false).await {
        Opened::Host(remote, pushes) => (remote, pushes),
        Opened::Done => panic!("the first launch hosts the window"),
    }
}

async fn next_push(pushes: &mut UnboundedReceiver<Push>) -> Push {
    tokio::time::timeout(WAIT, pushes.recv())
        .await
        .expect("a push in time")
        .expect("the connection is up")
}

#[tokio::test]
async fn the_window_calls_the_controller_and_receives_its_pushes() {
    let tray = tray();
    let (remote, mut pushes) = host(&tray).await;
    assert!(tray.hub.has_window());

    let overview = remote.call("overview", json!({})).await.unwrap();
    assert!(
        overview["profiles"].as_array().unwrap().is_empty(),
        "{overview}"
    );
    assert_eq!(overview["preferences"]["proxy_port"], 1080, "{overview}");

    // A command's error comes back as the UI knows it.
    let err = remote
        .call("remove_profile", json!({"name": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "not_found", "{err}");
    let err = remote.call("format_disk", Value::Null).await.unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");
    let err = remote
        .call("close_stream", json!({"key": null}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "invalid_input", "{err}");

    // The stream feed starts with the current table.
    remote.call("watch_streams", json!({})).await.unwrap();
    match next_push(&mut pushes).await {
        Push::Streams(update) => assert!(update["open"].is_array(), "{update}"),
        other => panic!("expected the stream table, got {other:?}"),
    }

    // Events reach the window as they were emitted.
    tray.hub.emit("httvps://app", &json!({"type": "changed"}));
    match next_push(&mut pushes).await {
        Push::Event { name, payload } => {
            assert_eq!(name, "httvps://app");
            assert_eq!(payload["type"], "changed");
        }
        other => panic!("expected the event, got {other:?}"),
    }
}

#[tokio::test]
async fn one_window_at_a_time_and_launches_do_what_they_ask() {
    let tray = tray();
    let (_remote, mut pushes) = host(&tray).await;

    // A second plain launch focuses the window and is done.
    assert!(matches!(open(&tray, false).await, Opened::Done));
    assert!(matches!(next_push(&mut pushes).await, Push::Focus));
    // The tray's Show focuses it too, without starting another.
    tray.hub.show_window();
    assert!(matches!(next_push(&mut pushes).await, Push::Focus));
    assert_eq!(tray.launches.load(Ordering::SeqCst), 0);

    // A launch with --minimized closes it.
    assert!(matches!(open(&tray, true).await, Opened::Done));
    assert!(matches!(next_push(&mut pushes).await, Push::Close));

    // Once its connection ends, the next launch hosts a new window, and
    // Show without a window starts one.
    let mut presence = tray.hub.window_presence();
    drop(pushes);
    drop(_remote);
    tokio::time::timeout(WAIT, presence.wait_for(|open| !*open))
        .await
        .expect("the hub sees the window go")
        .unwrap();
    tray.hub.show_window();
    assert_eq!(tray.launches.load(Ordering::SeqCst), 1);
    let (remote, _pushes) = host(&tray).await;
    assert!(remote.call("overview", Value::Null).await.is_ok());
}

#[tokio::test]
async fn the_window_learns_when_the_tray_is_gone() {
    // The tray in a runtime of its own, shut down below as its process
    // would end.
    let tray_runtime = tokio::runtime::Runtime::new().unwrap();
    let tray = {
        let _inside = tray_runtime.enter();
        tray()
    };
    let (remote, mut pushes) = host(&tray).await;
    // Quit: the tray asks the window to close, then its process ends.
    tray.hub.close_window();
    assert!(matches!(next_push(&mut pushes).await, Push::Close));
    tray_runtime.shutdown_background();
    assert!(matches!(next_push(&mut pushes).await, Push::Gone));
    let err = tokio::time::timeout(WAIT, remote.call("overview", Value::Null))
        .await
        .expect("a call never hangs")
        .unwrap_err();
    assert_eq!(err["code"], "service_gone", "{err}");
}

#[tokio::test]
async fn a_single_instance_per_socket() {
    let tray = tray();
    assert!(matches!(
        hub::bind(&tray.socket).unwrap(),
        Bound::AlreadyRunning
    ));
    // A socket file nobody answers on (a crashed run) is replaced.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("app.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let bound = hub::bind(&stale).unwrap();
    assert!(matches!(bound, Bound::Listening(_)));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&stale).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "only the user may connect ({mode:o})");
    drop(bound);
    assert!(!stale.exists(), "the socket goes with its listener");
}

#[tokio::test]
async fn bad_input_closes_only_that_connection() {
    let tray = tray();
    let (remote, _pushes) = host(&tray).await;
    // Not JSON, a call before open, an oversized line: each connection is
    // closed; the window's is not disturbed.
    for bad in [
        b"not json\n".to_vec(),
        b"{\"type\":\"call\",\"id\":1,\"cmd\":\"overview\",\"args\":{}}\n".to_vec(),
        vec![b'x'; app::remote::MAX_MESSAGE + 2],
    ] {
        let mut stream = UnixStream::connect(&tray.socket).await.unwrap();
        let _ = stream.write_all(&bad).await;
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut stream, &mut buf))
            .await
            .expect("the hub closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer");
    }
    assert!(remote.call("overview", Value::Null).await.is_ok());
    assert!(tray.hub.has_window());
}

/// Another user never gets an answer, even where the file modes would let
/// them in (the peer's credentials are checked too). Needs root to run a
/// process as `nobody`.
#[tokio::test]
async fn another_user_is_refused() {
    if !testkit::is_root() {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let tray = tray();
    let open = |p: &std::path::Path| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap()
    };
    open(tray._dir.path());
    open(tray.socket.parent().unwrap());
    open(&tray.socket);
    let script = "import socket,sys\n\
        s=socket.socket(socket.AF_UNIX)\n\
        s.connect(sys.argv[1])\n\
        try:\n\
        \x20   s.sendall(b'{\"type\":\"open\",\"minimized\":false}\\n')\n\
        \x20   s.settimeout(10)\n\
        \x20   print(repr(s.recv(100)))\n\
        except (BrokenPipeError, ConnectionResetError):\n\
        \x20   print(repr(b''))\n";
    let socket = tray.socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&socket)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "b''");
    assert!(!tray.hub.has_window());
}
