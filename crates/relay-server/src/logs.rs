//! The relay's log lines, in the seed's shape (seed 004 §7.2): one JSON
//! object per line on stderr with `timestamp` (ISO 8601, UTC),
//! `level`, `event`, `tunnel_id` (when the event concerns a tunnel) and
//! `details` (every other field). tracing-subscriber's JSON format nests
//! fields under `fields` and has no `event`, hence this small layer.
//!
//! Filtered by `RUST_LOG` (default `info`) through [`net::log_filter`], like
//! every other server of the project.

use std::io::Write as _;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the relay's log layer as the process's subscriber. A second
/// call does nothing.
pub fn init() {
    let layer = SeedFormat.with_filter(net::log_filter::from_env("RUST_LOG", "info"));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Writes each event as one seed-shaped JSON line.
struct SeedFormat;

impl<S: Subscriber> Layer<S> for SeedFormat {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = format_line(event, SystemTime::now());
        // One write per line, so lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The line for `event` at `now`, newline included.
fn format_line(event: &Event<'_>, now: SystemTime) -> String {
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut line = Map::new();
    line.insert(
        "timestamp".into(),
        humantime::format_rfc3339_millis(now).to_string().into(),
    );
    line.insert(
        "level".into(),
        event.metadata().level().as_str().to_owned().into(),
    );
    line.insert("event".into(), fields.message.unwrap_or_default().into());
    if let Some(id) = fields.tunnel_id {
        line.insert("tunnel_id".into(), id.into());
    }
    line.insert("details".into(), Value::Object(fields.details));
    let mut text = Value::Object(line).to_string();
    text.push('\n');
    text
}

/// An event's fields, sorted into the line's parts.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    tunnel_id: Option<String>,
    details: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
            }
            "tunnel_id" => {
                self.tunnel_id = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
            }
            name => {
                self.details.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Captures formatted lines instead of writing them.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
            self.0.lock().unwrap().push(format_line(event, t));
        }
    }

    #[test]
    fn lines_have_the_seed_shape() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(tunnel_id = "abc", port = 22u64, name = %"ssh", "tunnel registered");
            tracing::warn!(peer = "1.2.3.4", "auth refused");
        });
        let lines = lines.lock().unwrap();
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["timestamp"], "1970-01-01T00:00:01.500Z");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["event"], "tunnel registered");
        assert_eq!(first["tunnel_id"], "abc");
        assert_eq!(first["details"]["port"], 22);
        assert_eq!(first["details"]["name"], "ssh");
        let second: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["level"], "WARN");
        assert!(second.get("tunnel_id").is_none(), "{second}");
        assert_eq!(second["details"]["peer"], "1.2.3.4");
        assert!(
            lines
                .iter()
                .all(|l| l.ends_with('\n') && l.matches('\n').count() == 1)
        );
    }
}
