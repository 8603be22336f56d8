//! The one log filter every binary installs (the servers' JSON logs, the
//! CLI, the desktop app): the level variable (`RUST_LOG`, the app's
//! `HTTVPS_LOG`) decides as usual, except that the libraries whose TRACE
//! output prints what travels on the wire never log above DEBUG.
//!
//! Why: at TRACE, `tungstenite` logs every WebSocket frame and message with
//! its payload (`Sending frame: … payload: b"{\"type\":\"hello\",
//! \"session_token\":…`, `Received message {…}`) and the client's upgrade
//! request, and `tokio_tungstenite` adds its per-poll noise. The hello frame
//! carries the session token, and the other frames carry the users' traffic,
//! so `RUST_LOG=trace` on a gateway or a client used to write the token, and
//! everything the user browsed, to the log. A secret must not reach a log at
//! any level, so the cap holds whatever the variable says (even
//! `RUST_LOG=tungstenite=trace`); their DEBUG lines (handshake done, close
//! frames) stay available.
//!
//! Capped ([`CAPPED_TARGETS`]), checked by running both binaries at TRACE
//! (`crates/httvps-cli/tests/trace_secrets.rs`) and by reading the crates:
//!
//! - `tungstenite`: frame and message payloads, the upgrade request;
//! - `tokio_tungstenite`: only poll noise, capped with the crate it wraps;
//! - `reqwest`: with `connection_verbose` it logs every byte read and
//!   written, after TLS, at TRACE (headers such as the control plane's
//!   device token and the gateway's `X-Internal-Secret`); we do not turn it
//!   on, and the cap keeps it so should anyone ever do.
//!
//! Left to the variable, because their TRACE output carries no payload and
//! no secret: `rustls` (handshake messages, which are public or encrypted
//! by the handshake's own keys; never application data or key material),
//! `shadowsocks` (addresses, salt and IV lengths and values, which travel in
//! the clear anyway), `hickory_*` (DNS queries). `hyper` logs only when
//! built with `--cfg hyper_unstable_tracing`, `hyper-util` only with its
//! `tracing` feature (neither is on), and neither `h2` nor `quinn` is in
//! the dependency tree.

use tracing_subscriber::filter::combinator::And;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter, Targets};

/// The log targets (and every target under them) that never log above
/// [`CAP`], whatever the level variable says. See the module documentation
/// for why each one is here.
pub const CAPPED_TARGETS: &[&str] = &["tungstenite", "tokio_tungstenite", "reqwest"];

/// The most verbose level a [capped target](CAPPED_TARGETS) logs at.
pub const CAP: LevelFilter = LevelFilter::DEBUG;

/// The level variable's filter and the payload cap: an event is logged only
/// when both let it through. A per-layer filter, for
/// `Layer::with_filter`.
pub type LogFilter<S> = And<EnvFilter, Targets, S>;

/// The cap alone: [`CAPPED_TARGETS`] at [`CAP`], every other target at
/// TRACE (so that, combined with the level variable's filter, it only ever
/// removes lines).
pub fn payload_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_TARGETS.iter().map(|target| (*target, CAP)))
}

/// `env` with the payload cap on top.
pub fn capped<S>(env: EnvFilter) -> LogFilter<S> {
    env.and(payload_cap())
}

/// The filter from the environment variable `var` (directives as in
/// `RUST_LOG`), or from `default` when it is unset or invalid, with the
/// payload cap on top.
pub fn from_env<S>(var: &str, default: &str) -> LogFilter<S> {
    let env = EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(default));
    capped(env)
}

/// Installs the binaries' one subscriber: human-readable lines on stderr
/// (stdout stays for `--json` output and the tray's ready line), filtered
/// by [`from_env`]. Does nothing if a subscriber is already installed.
pub fn init_stderr(var: &str, default: &str) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(from_env(var, default));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// What a fmt layer wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
        }
    }

    /// Logs one line per (target, level) below `directives`, through the
    /// capped filter, and returns what was written.
    fn log_with(directives: &str) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(capped(EnvFilter::new(directives)));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "tungstenite::protocol", "<ws-trace>");
            tracing::debug!(target: "tungstenite::protocol", "<ws-debug>");
            tracing::trace!(target: "tokio_tungstenite::compat", "<tokio-ws-trace>");
            tracing::debug!(target: "tokio_tungstenite", "<tokio-ws-debug>");
            tracing::trace!(target: "reqwest::connect::verbose", "<reqwest-trace>");
            tracing::trace!(target: "rustls::client::hs", "<rustls-trace>");
            tracing::trace!(target: "engine::engine", "<engine-trace>");
            tracing::info!(target: "engine::engine", "<engine-info>");
        });
        out.text()
    }

    #[test]
    fn trace_everywhere_keeps_the_capped_targets_at_debug() {
        let out = log_with("trace");
        for gone in ["<ws-trace>", "<tokio-ws-trace>", "<reqwest-trace>"] {
            assert!(!out.contains(gone), "{gone} logged:\n{out}");
        }
        for kept in [
            "<ws-debug>",
            "<tokio-ws-debug>",
            "<rustls-trace>",
            "<engine-trace>",
            "<engine-info>",
        ] {
            assert!(out.contains(kept), "{kept} missing:\n{out}");
        }
    }

    #[test]
    fn naming_a_capped_target_does_not_lift_the_cap() {
        let out = log_with("warn,tungstenite=trace,tokio_tungstenite=trace");
        assert!(!out.contains("<ws-trace>"), "{out}");
        assert!(out.contains("<ws-debug>") && out.contains("<tokio-ws-debug>"));
        assert!(!out.contains("<engine-info>"), "warn elsewhere:\n{out}");
    }

    #[test]
    fn the_cap_never_adds_lines() {
        let out = log_with("info");
        assert!(out.contains("<engine-info>"), "{out}");
        for gone in [
            "<ws-debug>",
            "<tokio-ws-debug>",
            "<rustls-trace>",
            "<engine-trace>",
        ] {
            assert!(!out.contains(gone), "{gone} logged at info:\n{out}");
        }
        let out = log_with("trace,tungstenite=off");
        assert!(!out.contains("<ws-debug>") && !out.contains("<ws-trace>"));
        assert!(out.contains("<engine-trace>"));
    }

    #[test]
    fn the_cap_matches_targets_under_the_named_ones_only() {
        let cap = payload_cap();
        assert!(!cap.would_enable("tungstenite::protocol::frame", &tracing::Level::TRACE));
        assert!(cap.would_enable("tungstenite::protocol::frame", &tracing::Level::DEBUG));
        assert!(!cap.would_enable("tokio_tungstenite", &tracing::Level::TRACE));
        assert!(cap.would_enable("httvps_gateway::driver", &tracing::Level::TRACE));
        assert!(cap.would_enable("local_proxy", &tracing::Level::TRACE));
    }

    /// Records of the `log` crate (how tungstenite and rustls log), which
    /// the binaries forward to tracing, keep their target: capped as well.
    #[test]
    fn log_crate_records_are_capped() {
        use tracing_log::log::{Level, Log as _, Record};
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(capped(EnvFilter::new("trace")));
        let subscriber = tracing_subscriber::registry().with(layer);
        let bridge = tracing_log::LogTracer::new();
        tracing::subscriber::with_default(subscriber, || {
            for (target, level, text) in [
                ("tungstenite::protocol", Level::Trace, "<log-ws-trace>"),
                ("tungstenite::protocol", Level::Debug, "<log-ws-debug>"),
                ("rustls::conn", Level::Trace, "<log-rustls-trace>"),
            ] {
                bridge.log(
                    &Record::builder()
                        .target(target)
                        .level(level)
                        .args(format_args!("{text}"))
                        .build(),
                );
            }
        });
        let out = out.text();
        assert!(!out.contains("<log-ws-trace>"), "{out}");
        assert!(out.contains("<log-ws-debug>"), "{out}");
        assert!(out.contains("<log-rustls-trace>"), "{out}");
    }
}
