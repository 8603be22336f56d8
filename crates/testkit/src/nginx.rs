//! A real nginx (Debian's `nginx-light`) serving a directory over TLS, for
//! comparing the decoy website with the thing it imitates.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::TestCert;

/// nginx serving `root` over TLS on a loopback socket the test binds and
/// hands over (nginx's `NGINX` inherited-sockets variable), so it accepts
/// from the first instant. Debian's stock `http` block, minus logs and
/// gzip, plus `server_tokens off`. Master and worker run in their own
/// process group, killed together on drop.
pub struct Nginx {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The binary that runs.
    pub program: &'static str,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signals the process group this test started (its
            // leader is our child, so the id is ours while it is unreaped).
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        }
    }
}

impl Nginx {
    /// Starts nginx on `root` with `cert` (panics if nginx is missing:
    /// `apt-get install nginx-light`).
    pub fn start(root: &Path, cert: &TestCert) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = cert.write_to(dir.path());
        let temp = dir.path().join("tmp");
        std::fs::create_dir(&temp).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // As root, nginx would hand its work to `nobody`, who cannot read
        // our private temp dirs.
        let user = if crate::is_root() { "user root;" } else { "" };
        let (d, t, r) = (dir.path().display(), temp.display(), root.display());
        let (c, k) = (cert_path.display(), key_path.display());
        let conf = format!(
            "{user}
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    server_tokens off;
    access_log off;
    client_body_temp_path {t}/client;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen {addr} ssl;
        ssl_certificate {c};
        ssl_certificate_key {k};
        root {r};
    }}
}}
"
        );
        Nginx::run(dir, &conf, listener)
    }

    /// Runs nginx with `conf` (written into `dir`, which lives as long as
    /// the returned handle), handing it `listener` through nginx's
    /// `NGINX` inherited-sockets variable; `conf` must `listen` on
    /// `listener`'s address. Panics if nginx is missing.
    pub fn run(dir: tempfile::TempDir, conf: &str, listener: TcpListener) -> Nginx {
        let addr = listener.local_addr().unwrap();
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let fd = listener.as_raw_fd();
        let program = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nginx");
        let mut command = Command::new(program);
        command
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .env("NGINX", format!("{fd};"))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: only fcntl on a descriptor we own, between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Keep the listening socket across exec (std opens it CLOEXEC).
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .expect("start nginx (apt-get install nginx-light)");
        // nginx has its own copy; ours goes, so a dead nginx means "refused".
        drop(listener);
        Nginx {
            child,
            addr,
            program,
            _dir: dir,
        }
    }

    /// What `nginx -v` says.
    pub fn version(&self) -> String {
        std::process::Command::new(self.program)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_default()
    }
}
