//! `loadgen`: the load generator of `bench/run` (see the library docs).
//!
//! ```text
//! loadgen streams --proxy 127.0.0.1:1080 --url http://127.0.0.1:8080/1k.bin -n 1000
//! loadgen sink --listen 127.0.0.1:0
//! loadgen udp-echo --listen 127.0.0.1:0
//! loadgen udp --proxy 127.0.0.1:1080 --target 127.0.0.1:7000 --in-flight 64 --duration 5
//! loadgen delay --listen 127.0.0.1:0 --to 127.0.0.1:8443 --delay-ms 25
//! loadgen cold-connect --url http://127.0.0.1:8080/1k.bin -- httvps connect --json …
//! loadgen ws-echo --listen 127.0.0.1:0
//! loadgen ws --url https://127.0.0.1:4433/ws --ca cert.pem --messages 10000 --size 1024
//! loadgen requests --url https://localhost:8443/1k.bin --ca cert.pem -c 50 --duration 10
//! loadgen download --url https://localhost:8443/big.bin --ca cert.pem
//! ```
//!
//! `streams`, `udp`, `cold-connect`, `ws`, `requests` and `download` print one JSON report on
//! stdout; `sink`, `udp-echo`, `ws-echo` and `delay` print
//! `{"listening":"ADDR"}` once bound, then serve until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadgen::cold::ColdOptions;
use loadgen::delay::{DelayLink, DelayOptions};
use loadgen::requests::{DownloadOptions, RequestsOptions, Url};
use loadgen::udp::{Echo, UdpOptions};
use loadgen::ws::{EchoServer, WsOptions};
use loadgen::{Sink, SinkOptions, StreamsOptions, Target};

/// Most streams one run may start: each is a socket here and more in the
/// proxy, so the process's file limit is the real bound.
const MAX_STREAMS: usize = 100_000;

#[derive(Parser)]
#[command(version, about = "Load generator for bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open N streams at once through a SOCKS5 proxy, each fetching URL; keep
    /// them all open until every one has finished; print a JSON report.
    Streams {
        /// SOCKS5 proxy (no auth; the target goes by name). Omit to connect directly.
        #[arg(long, value_name = "ADDR")]
        proxy: Option<SocketAddr>,
        /// What each stream fetches (http:// only; the answer needs a Content-Length).
        #[arg(long, value_name = "URL")]
        url: String,
        /// Number of concurrent streams.
        #[arg(short = 'n', long, default_value_t = 1000,
              value_parser = clap::value_parser!(u32).range(1..=MAX_STREAMS as i64))]
        streams: u32,
        /// Deadline of each stream, seconds (connect to last byte).
        #[arg(long, value_name = "SECS", default_value_t = 30.0)]
        timeout: f64,
        /// Keep all finished streams open this long, milliseconds, before closing them.
        #[arg(long, value_name = "MS", default_value_t = 200,
              value_parser = clap::value_parser!(u64).range(0..=600_000))]
        hold_ms: u64,
        /// Largest body accepted per stream, bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
        max_body: u64,
    },
    /// Serve HTTP: read each request body to its end, discard it, answer
    /// `200 {"bytes":N}`.
    Sink {
        /// Where to listen (port 0 picks one; the bound address is printed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Largest body read, bytes (413 past it).
        #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
        max_body: u64,
        /// Most simultaneous connections.
        #[arg(long, value_name = "N", default_value_t = 256)]
        max_connections: usize,
        /// Longest life of one connection, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 900.0)]
        connection_timeout: f64,
    },
    /// Send datagrams to a UDP echo server through a SOCKS5 UDP association
    /// (or directly), a bounded number in flight; print datagrams/s and loss
    /// as JSON.
    Udp {
        /// SOCKS5 proxy (no auth) asked for UDP ASSOCIATE. Omit to send directly.
        #[arg(long, value_name = "ADDR")]
        proxy: Option<SocketAddr>,
        /// The echo server (an IP address and port).
        #[arg(long, value_name = "ADDR")]
        target: SocketAddr,
        /// Payload bytes per datagram (8 to 65000).
        #[arg(long, value_name = "BYTES", default_value_t = 512)]
        size: usize,
        /// Most datagrams in flight (sent, not yet back or lost).
        #[arg(long, value_name = "N", default_value_t = 64)]
        in_flight: usize,
        /// How long to send, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        duration: f64,
        /// A datagram not back within this is lost, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 1.0)]
        loss_timeout: f64,
    },
    /// Serve UDP: send every datagram back to its sender.
    UdpEcho {
        /// Where to listen (port 0 picks one; the bound address is printed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Relay TCP connections and UDP datagrams (one port for both) to
    /// another address, holding everything for a fixed time each way.
    Delay {
        /// Where to listen, TCP and UDP (port 0 picks one free for both;
        /// the bound address is printed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Where to relay to, TCP and UDP.
        #[arg(long, value_name = "ADDR")]
        to: SocketAddr,
        /// One-way delay, milliseconds, added in each direction.
        #[arg(long, value_name = "MS",
              value_parser = clap::value_parser!(u64).range(0..=60_000))]
        delay_ms: u64,
        /// Most bytes held per TCP connection and direction (then backpressure).
        #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
        max_tcp_queued: usize,
        /// Most datagram bytes held per direction (then datagrams are dropped).
        #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
        max_udp_queued: usize,
    },
    /// Start a tunnel client (COMMAND, which must print `httvps connect
    /// --json`'s lines), fetch URL through its SOCKS5 proxy as soon as it
    /// listens, print the time to the first byte as JSON, and stop it.
    ColdConnect {
        /// What to fetch (http:// only; the answer needs a Content-Length).
        #[arg(long, value_name = "URL")]
        url: String,
        /// Longest the whole measurement may take, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30.0)]
        timeout: f64,
        /// The client and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// Serve HTTP/1.1 WebSocket: send every message back unchanged.
    WsEcho {
        /// Where to listen (port 0 picks one; the bound address is printed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Send WebSocket messages to an echo server, over HTTP/3 (https://)
    /// or TCP (ws://), a bounded number in flight; check every echo and
    /// print messages/s and MB/s as JSON.
    Ws {
        /// https://HOST:PORT/PATH (HTTP/3, RFC 9220) or ws://HOST:PORT/PATH.
        #[arg(long, value_name = "URL")]
        url: String,
        /// CA certificate (PEM) the server's certificate must chain to (https://).
        #[arg(long, value_name = "PEM")]
        ca: Option<std::path::PathBuf>,
        /// Messages to send.
        #[arg(long, value_name = "N", default_value_t = 10_000,
              value_parser = clap::value_parser!(u64).range(1..))]
        messages: u64,
        /// Bytes per message (8 to 16 MiB).
        #[arg(long, value_name = "BYTES", default_value_t = 1024)]
        size: usize,
        /// Most messages in flight (sent, not yet echoed).
        #[arg(long, value_name = "N", default_value_t = 64)]
        in_flight: usize,
        /// Longest the connect may take, and the longest wait for one echo, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30.0)]
        timeout: f64,
    },
    /// Keep N HTTP/1.1 connections (https:// or http://) busy with GETs of
    /// URL, one request at a time each, for a fixed time; print requests/s
    /// and per-request latency as JSON.
    Requests {
        /// What every request fetches; the answer must be 200.
        #[arg(long, value_name = "URL")]
        url: String,
        /// CA certificate (PEM) the server's certificate must chain to (https://).
        #[arg(long, value_name = "PEM")]
        ca: Option<std::path::PathBuf>,
        /// Connections, opened before the clock starts.
        #[arg(short = 'c', long, default_value_t = 50,
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        connections: u32,
        /// How long requests are measured, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        duration: f64,
        /// Requests before the measured time, not counted, seconds (0: none).
        #[arg(long, value_name = "SECS", default_value_t = 1.0)]
        warmup: f64,
        /// Stop after this many measured requests, if sooner.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_requests: Option<u64>,
        /// Deadline of each connect and each request, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30.0)]
        timeout: f64,
    },
    /// Fetch one large body (https:// or http://) on a connection opened
    /// beforehand; print MB/s as JSON.
    Download {
        /// The file; the answer must be 200.
        #[arg(long, value_name = "URL")]
        url: String,
        /// CA certificate (PEM) the server's certificate must chain to (https://).
        #[arg(long, value_name = "PEM")]
        ca: Option<std::path::PathBuf>,
        /// Fail unless the body has exactly this many bytes.
        #[arg(long, value_name = "BYTES")]
        expect_bytes: Option<u64>,
        /// Deadline of the connect and of the download, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 900.0)]
        timeout: f64,
    },
}

fn print_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::json!({ "listening": addr }))?;
    out.flush()?;
    Ok(())
}

/// Longest deadline accepted for any wait.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

fn seconds(what: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_WAIT)
        .with_context(|| format!("--{what} must be between 0 and 86400 seconds"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Streams {
            proxy,
            url,
            streams,
            timeout,
            hold_ms,
            max_body,
        } => {
            let opts = StreamsOptions {
                proxy,
                target: Target::parse(&url).map_err(anyhow::Error::msg)?,
                streams: streams as usize,
                timeout: seconds("timeout", timeout)?,
                hold: Duration::from_millis(hold_ms),
                max_body,
            };
            let report = loadgen::streams::run(opts).await;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Sink {
            listen,
            max_body,
            max_connections,
            connection_timeout,
        } => {
            anyhow::ensure!(max_connections > 0, "--max-connections must be at least 1");
            let sink = Sink::start(SinkOptions {
                listen,
                max_body,
                max_connections,
                connection_timeout: seconds("connection-timeout", connection_timeout)?,
            })
            .await
            .with_context(|| format!("listening on {listen}"))?;
            print_listening(sink.addr())?;
            sink.run_forever().await;
        }
        Command::Udp {
            proxy,
            target,
            size,
            in_flight,
            duration,
            loss_timeout,
        } => {
            let report = loadgen::udp::run(UdpOptions {
                proxy,
                target,
                size,
                in_flight,
                duration: seconds("duration", duration)?,
                loss_timeout: seconds("loss-timeout", loss_timeout)?,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::UdpEcho { listen } => {
            let echo = Echo::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            print_listening(echo.addr()?)?;
            echo.run_forever().await.context("echoing")?;
        }
        Command::Delay {
            listen,
            to,
            delay_ms,
            max_tcp_queued,
            max_udp_queued,
        } => {
            let link = DelayLink::bind(DelayOptions {
                max_tcp_queued,
                max_udp_queued,
                ..DelayOptions::new(listen, to, Duration::from_millis(delay_ms))
            })
            .await
            .with_context(|| format!("listening on {listen} (TCP and UDP)"))?;
            print_listening(link.addr())?;
            // Dropped datagrams are worth knowing about: say so on stderr
            // once a second while the count grows.
            let stats = link.stats();
            tokio::spawn(async move {
                let mut seen = 0;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let counts = stats.counts();
                    if counts.udp_dropped > seen {
                        seen = counts.udp_dropped;
                        eprintln!("{}", serde_json::json!({ "delay": counts }));
                    }
                }
            });
            link.run().await.context("relaying")?;
        }
        Command::ColdConnect {
            url,
            timeout,
            command,
        } => {
            let report = loadgen::cold::run(ColdOptions {
                command,
                target: Target::parse(&url).map_err(anyhow::Error::msg)?,
                timeout: seconds("timeout", timeout)?,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::WsEcho { listen } => {
            let echo = EchoServer::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            print_listening(echo.addr()?)?;
            echo.run_forever().await;
        }
        Command::Ws {
            url,
            ca,
            messages,
            size,
            in_flight,
            timeout,
        } => {
            let report = loadgen::ws::run(WsOptions {
                url,
                ca,
                messages,
                size,
                in_flight,
                timeout: seconds("timeout", timeout)?,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Requests {
            url,
            ca,
            connections,
            duration,
            warmup,
            max_requests,
            timeout,
        } => {
            let warmup = if warmup == 0.0 {
                Duration::ZERO
            } else {
                seconds("warmup", warmup)?
            };
            let report = loadgen::requests::run(RequestsOptions {
                url: Url::parse(&url).map_err(anyhow::Error::msg)?,
                ca,
                connections: connections as usize,
                duration: seconds("duration", duration)?,
                warmup,
                max_requests,
                timeout: seconds("timeout", timeout)?,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Download {
            url,
            ca,
            expect_bytes,
            timeout,
        } => {
            let report = loadgen::requests::download(DownloadOptions {
                url: Url::parse(&url).map_err(anyhow::Error::msg)?,
                ca,
                expect_bytes,
                timeout: seconds("timeout", timeout)?,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
