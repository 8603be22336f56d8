//! A command's JSON, as the window sends it, to a controller call. The
//! names and arguments are the Tauri commands' (`bindings::COMMANDS`); the
//! window does not parse them, this does, so a bad argument is refused here
//! with `invalid_input` naming it.

use serde::Deserialize;
use serde_json::Value;

use crate::controller::Controller;
use crate::error::CommandError;
use crate::settings::{Preferences, ProfileInput};
use routing::RuleSet;

/// Every command but `watch_streams`, which the hub serves itself (it
/// feeds the connection rather than answering once). Deliberately not
/// `Debug`: `SignIn` carries a token.
#[derive(Deserialize)]
#[serde(tag = "cmd", content = "args", rename_all = "snake_case")]
pub enum Request {
    /// `overview`
    Overview {},
    /// `save_profile`
    SaveProfile {
        /// The form (boxed: it is most of the enum's size).
        input: Box<ProfileInput>,
    },
    /// `remove_profile`
    RemoveProfile {
        /// The profile.
        name: String,
    },
    /// `select_profile`
    SelectProfile {
        /// The profile.
        name: String,
    },
    /// `sign_in`: the token goes to the keychain.
    SignIn {
        /// The profile.
        name: String,
        /// Its secret.
        token: String,
    },
    /// `sign_out`
    SignOut {
        /// The profile.
        name: String,
    },
    /// `connect`
    Connect {},
    /// `start_demo`
    StartDemo {},
    /// `disconnect`
    Disconnect {},
    /// `publish`
    Publish {
        /// The HLHV profile.
        name: String,
    },
    /// `start_publish_demo`
    StartPublishDemo {},
    /// `stop_publishing`
    StopPublishing {},
    /// `share`
    Share {
        /// The Relay profile.
        name: String,
    },
    /// `share_demo`
    ShareDemo {
        /// The ports, or the demo page's.
        #[serde(default)]
        ports: Option<Vec<u16>>,
    },
    /// `stop_share`
    StopShare {},
    /// `set_preferences`
    SetPreferences {
        /// The preferences.
        prefs: Preferences,
    },
    /// `share_link`
    ShareLink {
        /// The profile.
        name: String,
        /// Whether the link carries the secret.
        include_secret: bool,
    },
    /// `add_from_link`
    AddFromLink {
        /// The link.
        link: String,
        /// A name overriding the link's.
        #[serde(default)]
        name: Option<String>,
        /// Whether an existing profile may be replaced.
        #[serde(default)]
        replace: bool,
    },
    /// `routing_rules`
    RoutingRules {
        /// The profile.
        name: String,
    },
    /// `save_routing_rules`
    SaveRoutingRules {
        /// The profile.
        name: String,
        /// Its new rules.
        routing: RuleSet,
    },
    /// `test_route`
    TestRoute {
        /// The rules being edited.
        routing: RuleSet,
        /// The host to test.
        host: String,
        /// The port to test.
        port: u16,
    },
    /// `close_stream`
    CloseStream {
        /// The row's key.
        key: u64,
    },
    /// `export_log`
    ExportLog {},
}

/// Commands whose arguments may hold a secret (a token, a link with one).
const CARRY_SECRETS: &[&str] = &["sign_in", "add_from_link"];

impl Request {
    /// Parses a command by name and arguments (`null` for none).
    pub fn parse(cmd: &str, args: Value) -> Result<Request, CommandError> {
        let args = match args {
            Value::Null => Value::Object(Default::default()),
            args => args,
        };
        let message = serde_json::json!({ "cmd": cmd, "args": args });
        Request::deserialize(message).map_err(|e| {
            // serde's sentence may quote the value it refused: not for the
            // commands that carry a secret.
            if CARRY_SECRETS.contains(&cmd) {
                CommandError::invalid(format!("command {cmd}: its arguments are not valid"))
            } else {
                CommandError::invalid(format!("command {cmd}: {e}"))
            }
        })
    }
}

fn json<T: serde::Serialize>(value: Result<T, CommandError>) -> Result<Value, CommandError> {
    value.and_then(|v| {
        serde_json::to_value(v)
            .map_err(|e| CommandError::new(crate::CommandCode::Engine, e.to_string()))
    })
}

/// Runs one command on the controller; its result as the Tauri command
/// returned it.
pub async fn dispatch(c: &Controller, request: Request) -> Result<Value, CommandError> {
    match request {
        Request::Overview {} => json(Ok(c.overview().await)),
        Request::SaveProfile { input } => json(c.save_profile(*input).await),
        Request::RemoveProfile { name } => json(c.remove_profile(name).await),
        Request::SelectProfile { name } => json(c.select_profile(name).await),
        Request::SignIn { name, token } => json(c.sign_in(name, token).await),
        Request::SignOut { name } => json(c.sign_out(name).await),
        Request::Connect {} => json(c.connect().await),
        Request::StartDemo {} => json(c.start_demo().await),
        Request::Disconnect {} => json(Ok(c.disconnect().await)),
        Request::Publish { name } => json(c.publish(name).await),
        Request::StartPublishDemo {} => json(c.start_publish_demo().await),
        Request::StopPublishing {} => json(c.stop_publishing().await),
        Request::Share { name } => json(c.share(name).await),
        Request::ShareDemo { ports } => json(c.share_demo(ports).await),
        Request::StopShare {} => json(c.stop_share().await),
        Request::SetPreferences { prefs } => json(c.set_preferences(prefs).await),
        Request::ShareLink {
            name,
            include_secret,
        } => json(c.share_link(name, include_secret).await),
        Request::AddFromLink {
            link,
            name,
            replace,
        } => json(c.add_from_link(link, name, replace).await),
        Request::RoutingRules { name } => json(c.routing_rules(&name)),
        Request::SaveRoutingRules { name, routing } => {
            json(c.save_routing_rules(name, routing).await)
        }
        Request::TestRoute {
            routing,
            host,
            port,
        } => json(c.test_route(routing, host, port)),
        Request::CloseStream { key } => json(c.close_stream(key)),
        Request::ExportLog {} => json(c.export_log().await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::COMMANDS;

    #[test]
    fn every_command_of_the_bindings_is_known() {
        for sig in COMMANDS {
            if sig.name == "watch_streams" {
                continue; // served by the hub
            }
            match Request::parse(sig.name, Value::Null) {
                Ok(_) => {}
                Err(e) => assert!(
                    e.message.contains("missing field") || CARRY_SECRETS.contains(&sig.name),
                    "{}: {}",
                    sig.name,
                    e.message
                ),
            }
        }
    }

    #[test]
    fn a_bad_command_or_argument_is_refused_by_name() {
        let e = Request::parse("format_disk", Value::Null).err().unwrap();
        assert_eq!(e.code, crate::CommandCode::InvalidInput);
        assert!(e.message.contains("unknown variant"), "{}", e.message);
        let e = Request::parse("close_stream", serde_json::json!({"key": "x"}))
            .err()
            .unwrap();
        assert!(e.message.contains("close_stream"), "{}", e.message);
        let e = Request::parse("sign_in", serde_json::json!({"name": "a", "token": 5}))
            .err()
            .unwrap();
        assert!(
            !e.message.contains('5'),
            "no value in the error: {}",
            e.message
        );
    }

    #[test]
    fn optional_arguments_may_be_left_out() {
        assert!(matches!(
            Request::parse("share_demo", Value::Null),
            Ok(Request::ShareDemo { ports: None })
        ));
        assert!(matches!(
            Request::parse("add_from_link", serde_json::json!({"link": "httvps://x"})),
            Ok(Request::AddFromLink {
                name: None,
                replace: false,
                ..
            })
        ));
    }
}
