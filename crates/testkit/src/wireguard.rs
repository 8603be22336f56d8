//! A real WireGuard peer: Debian's `wireguard-go` in a network namespace of
//! its own (this kernel has no WireGuard module, so the userspace
//! implementation stands in for the kernel one).
//!
//! Layout, per instance:
//!
//! ```text
//!  root namespace                       namespace wgt-PID-N
//!  ──────────────                       ───────────────────
//!  host veth 10.201.x.(4k+1)/30 ──────── ns veth 10.201.x.(4k+2)/30
//!  (tests' UDP sockets reach             wireguard-go on wgPIDxN, UDP port P
//!   the peer at ns_addr:P)               tunnel address from `start`
//! ```
//!
//! Everything needs root (namespaces, veth, TUN); tests call
//! [`WireguardGo::unavailable`] first and skip with its message. Names and
//! the /30 are unique per process and instance, so tests may run in
//! parallel. Drop stops wireguard-go and deletes the namespace (which
//! takes the veth pair with it).

use std::fs::File;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long wireguard-go may take to create its interface.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopped wireguard-go gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Where wireguard-go puts its control sockets (shared by all namespaces).
const UAPI_DIR: &str = "/var/run/wireguard";
/// The /16 the veth /30s are carved from: 16384 slots.
const VETH_NET: [u8; 2] = [10, 201];

/// Instances started by this process, for unique names and addresses.
static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// A peer entry for [`WireguardGo::set_peer`] (`wg set … peer …`).
#[derive(Debug, Clone)]
pub struct WgPeer {
    /// The peer's public key, standard base64.
    pub public_key: String,
    /// Where to reach the peer; `None` waits for it to speak first.
    pub endpoint: Option<SocketAddr>,
    /// `10.0.0.2/32`-style networks.
    pub allowed_ips: Vec<String>,
    /// Seconds between keepalives; also makes wireguard-go handshake at once.
    pub persistent_keepalive: Option<u16>,
}

/// wireguard-go running in its own namespace, stopped on drop.
#[derive(Debug)]
pub struct WireguardGo {
    namespace: String,
    interface: String,
    host_veth: String,
    host_addr: Ipv4Addr,
    ns_addr: Ipv4Addr,
    listen_port: u16,
    public_key: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn program_on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// Runs a command to completion; its stderr goes into the error.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_with_input(program, args, None)
}

fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {program}"))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes()).context("writing stdin")?;
    }
    let output = child
        .wait_with_output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A /30 in 10.201.0.0/16 that no interface of the root namespace uses,
/// starting from a slot derived from the pid and instance number.
fn free_slot(pid: u32, instance: u32) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let in_use = run("ip", &["-o", "-4", "addr", "show"])?;
    let start = pid.wrapping_mul(64).wrapping_add(instance);
    for step in 0..16384u32 {
        let slot = (start + step) % 16384;
        let base = slot * 4;
        let host = Ipv4Addr::new(
            VETH_NET[0],
            VETH_NET[1],
            (base >> 8) as u8,
            (base & 0xff) as u8 + 1,
        );
        if !in_use.contains(&format!(" {host}/")) {
            let ns = Ipv4Addr::from(u32::from(host) + 1);
            return Ok((host, ns));
        }
    }
    bail!("no free /30 left in 10.201.0.0/16")
}

impl WireguardGo {
    /// Why this machine cannot run the peer (not root, a program missing),
    /// or `None` when it can.
    pub fn unavailable() -> Option<String> {
        if !crate::is_root() {
            return Some("not root (network namespaces need it)".into());
        }
        for program in ["wireguard-go", "wg", "ip"] {
            if !program_on_path(program) {
                return Some(format!("`{program}` is not installed"));
            }
        }
        if !Path::new("/dev/net/tun").exists() {
            return Some("/dev/net/tun is missing".into());
        }
        None
    }

    /// Starts wireguard-go with `private_key` (standard base64) and the
    /// tunnel address `tunnel_cidr` (e.g. `10.78.0.1/24`) in a new namespace.
    pub fn start(private_key: &str, tunnel_cidr: &str) -> anyhow::Result<WireguardGo> {
        let peer = WireguardGo::start_unaddressed(private_key)?;
        peer.add_address(tunnel_cidr)?;
        Ok(peer)
    }

    /// Starts wireguard-go with `private_key` and no tunnel address yet:
    /// for a peer that learns its address later (a Relay client learns it
    /// from `register_response`); see [`WireguardGo::add_address`].
    pub fn start_unaddressed(private_key: &str) -> anyhow::Result<WireguardGo> {
        if let Some(reason) = Self::unavailable() {
            bail!("wireguard-go cannot run here: {reason}");
        }
        let pid = std::process::id();
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let (host_addr, ns_addr) = free_slot(pid, n)?;
        let dir = tempfile::tempdir().context("temp dir")?;
        // Interface names have at most 15 bytes.
        let mut peer = WireguardGo {
            namespace: format!("wgt-{pid}-{n}"),
            interface: format!("wg{pid}x{n}"),
            host_veth: format!("wvh{pid}x{n}"),
            host_addr,
            ns_addr,
            listen_port: 0,
            public_key: run_with_input("wg", &["pubkey"], Some(&format!("{private_key}\n")))?
                .trim()
                .to_string(),
            child: None,
            dir,
        };
        // From here on, drop cleans up whatever was created.
        peer.set_up_namespace()?;
        peer.spawn()?;
        peer.configure(private_key)?;
        Ok(peer)
    }

    fn set_up_namespace(&self) -> anyhow::Result<()> {
        let ns = self.namespace.as_str();
        let ns_veth = format!("wvn{}", &self.host_veth[3..]);
        run("ip", &["netns", "add", ns])?;
        run(
            "ip",
            &[
                "link",
                "add",
                &self.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &ns_veth,
            ],
        )?;
        run("ip", &["link", "set", &ns_veth, "netns", ns])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", self.host_addr),
                "dev",
                &self.host_veth,
            ],
        )?;
        run("ip", &["link", "set", &self.host_veth, "up"])?;
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/30", self.ns_addr),
                "dev",
                &ns_veth,
            ],
        )?;
        run("ip", &["-n", ns, "link", "set", &ns_veth, "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn uapi_socket(&self) -> PathBuf {
        Path::new(UAPI_DIR).join(format!("{}.sock", self.interface))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("wireguard-go.log")
    }

    /// What wireguard-go printed so far (for error messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::create(self.log_path()).context("log file")?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespace,
                "wireguard-go",
                "-f",
                &self.interface,
            ])
            // Verbose enough to debug a failed handshake from the log.
            .env("LOG_LEVEL", "verbose")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            // Its own group, so stopping it reaches anything it started.
            .process_group(0)
            .spawn()
            .context("spawning wireguard-go")?;
        self.child = Some(child);
        // wireguard-go signals readiness only by creating its control socket.
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.uapi_socket().exists() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("wireguard-go exited ({status}): {}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "wireguard-go did not start in {START_TIMEOUT:?}: {}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn configure(&mut self, private_key: &str) -> anyhow::Result<()> {
        // `wg` reads the key from a file, never from argv (visible in ps).
        let key_path = self.dir.path().join("private.key");
        let mut key_file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .context("key file")?;
        writeln!(key_file, "{private_key}").context("writing key file")?;
        drop(key_file);
        let key_path = key_path.to_string_lossy().into_owned();
        self.wg(&["set", &self.interface, "private-key", &key_path])?;
        run(
            "ip",
            &["-n", &self.namespace, "link", "set", &self.interface, "up"],
        )?;
        // The port is chosen by wireguard-go when the interface comes up.
        let port = self.wg(&["show", &self.interface, "listen-port"])?;
        self.listen_port = port
            .trim()
            .parse()
            .with_context(|| format!("listen port {port:?}"))?;
        if self.listen_port == 0 {
            bail!("wireguard-go did not bind a port: {}", self.log());
        }
        Ok(())
    }

    /// Gives the tunnel interface the address `cidr` (e.g. `10.78.0.1/24`).
    pub fn add_address(&self, cidr: &str) -> anyhow::Result<()> {
        run(
            "ip",
            &[
                "-n",
                &self.namespace,
                "addr",
                "add",
                cidr,
                "dev",
                &self.interface,
            ],
        )
        .map(|_| ())
    }

    /// Routes `cidr` through the tunnel interface (for a /32 address whose
    /// peers' network has no connected route).
    pub fn add_route(&self, cidr: &str) -> anyhow::Result<()> {
        run(
            "ip",
            &[
                "-n",
                &self.namespace,
                "route",
                "add",
                cidr,
                "dev",
                &self.interface,
            ],
        )
        .map(|_| ())
    }

    /// Runs `wg ARGS` inside the namespace.
    pub fn wg(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", &self.namespace, "wg"];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Adds or updates a peer.
    pub fn set_peer(&self, peer: &WgPeer) -> anyhow::Result<()> {
        let endpoint = peer.endpoint.map(|e| e.to_string());
        let allowed = peer.allowed_ips.join(",");
        let keepalive = peer.persistent_keepalive.map(|k| k.to_string());
        let mut args = vec![
            "set",
            self.interface.as_str(),
            "peer",
            peer.public_key.as_str(),
        ];
        if let Some(endpoint) = &endpoint {
            args.extend(["endpoint", endpoint]);
        }
        args.extend(["allowed-ips", &allowed]);
        if let Some(keepalive) = &keepalive {
            args.extend(["persistent-keepalive", keepalive]);
        }
        self.wg(&args).map(|_| ())
    }

    /// Unix time of the latest handshake with `peer_public_key` (`None`: none yet).
    pub fn latest_handshake(&self, peer_public_key: &str) -> anyhow::Result<Option<u64>> {
        let out = self.wg(&["show", &self.interface, "latest-handshakes"])?;
        for line in out.lines() {
            let mut fields = line.split_whitespace();
            if fields.next() == Some(peer_public_key) {
                let secs: u64 = fields
                    .next()
                    .unwrap_or("0")
                    .parse()
                    .context("handshake time")?;
                return Ok((secs != 0).then_some(secs));
            }
        }
        Ok(None)
    }

    /// Bytes (received, sent) with `peer_public_key`, as `wg show transfer` counts them.
    pub fn transfer(&self, peer_public_key: &str) -> anyhow::Result<(u64, u64)> {
        let out = self.wg(&["show", &self.interface, "transfer"])?;
        for line in out.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [key, rx, tx] = fields[..]
                && key == peer_public_key
            {
                return Ok((rx.parse()?, tx.parse()?));
            }
        }
        bail!("peer {peer_public_key} not configured")
    }

    /// wireguard-go's UDP endpoint, reachable from the root namespace.
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::from((self.ns_addr, self.listen_port))
    }

    /// The root namespace's end of the veth: where the namespace reaches
    /// sockets of the test process (bind them to it or to 0.0.0.0).
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// wireguard-go's public key.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it
    /// creates live there (and stay usable from any thread afterwards).
    pub fn in_namespace<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let path = Path::new("/run/netns").join(&self.namespace);
        let ns = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns(2) on a descriptor we own; it changes only
                    // this thread's network namespace, and the thread ends here.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(
                            anyhow::Error::from(std::io::Error::last_os_error()).context("setns")
                        );
                    }
                    Ok(f())
                })
                .join()
                .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
        })
    }

    /// A TCP listener inside the namespace (call within a tokio runtime).
    pub fn tcp_listener(&self, addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
        let listener = self.in_namespace(|| std::net::TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        Ok(tokio::net::TcpListener::from_std(listener)?)
    }

    /// A TCP connection made from inside the namespace (call within a tokio
    /// runtime; blocks the calling thread for the handshake).
    pub fn tcp_connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<tokio::net::TcpStream> {
        let stream = self
            .in_namespace(|| std::net::TcpStream::connect_timeout(&addr, timeout))?
            .with_context(|| format!("connecting to {addr} from the namespace"))?;
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        Ok(tokio::net::TcpStream::from_std(stream)?)
    }
}

impl Drop for WireguardGo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) has no memory-safety preconditions; the group
                // is the child's (process_group(0)) and it is not reaped yet.
                unsafe {
                    libc::kill(-pid, libc::SIGTERM);
                }
                // SIGTERM lets wireguard-go remove its interface and socket.
                let deadline = Instant::now() + STOP_TIMEOUT;
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                // SAFETY: as above.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.uapi_socket());
        // Deleting the namespace deletes its veth end, and with it ours.
        let _ = run("ip", &["netns", "del", &self.namespace]);
        let _ = run("ip", &["link", "del", &self.host_veth]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_cleans_up() {
        if let Some(reason) = WireguardGo::unavailable() {
            println!("skipping: {reason}");
            return;
        }
        let key = run("wg", &["genkey"]).unwrap();
        let peer_key = run("wg", &["genkey"]).unwrap();
        let peer_public = run_with_input("wg", &["pubkey"], Some(&peer_key)).unwrap();
        let wg = WireguardGo::start(key.trim(), "10.78.9.1/24").unwrap();
        let namespace = wg.namespace().to_string();
        assert_ne!(wg.endpoint().port(), 0);
        wg.set_peer(&WgPeer {
            public_key: peer_public.trim().to_string(),
            endpoint: Some("10.78.200.1:51820".parse().unwrap()),
            allowed_ips: vec!["10.78.9.2/32".into()],
            persistent_keepalive: None,
        })
        .unwrap();
        assert_eq!(wg.latest_handshake(peer_public.trim()).unwrap(), None);
        assert_eq!(wg.transfer(peer_public.trim()).unwrap(), (0, 0));
        // Sockets made in the namespace see its addresses, not ours.
        let bound = wg
            .in_namespace(|| std::net::TcpListener::bind("10.78.9.1:0").map(|_| ()))
            .unwrap();
        assert!(bound.is_ok(), "{bound:?}");
        assert!(std::net::TcpListener::bind("10.78.9.1:0").is_err());
        let uapi = wg.uapi_socket();
        drop(wg);
        let namespaces = run("ip", &["netns", "list"]).unwrap();
        assert!(!namespaces.contains(&namespace), "{namespaces}");
        assert!(!uapi.exists());
    }
}
