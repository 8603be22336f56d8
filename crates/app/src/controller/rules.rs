//! Routing rules (split tunnelling) of the outbound profiles: what the
//! rules editor reads, saves and tests. The rules themselves, their
//! validation and matching live in the `routing` crate; a saved change
//! applies from the next connect (the running proxy keeps the rules it
//! started with, so a connection is never judged by half an edit).

use routing::{Decision, RuleSet};

use super::Controller;
use crate::error::{CommandCode, CommandError};
use crate::log::LogLevel;
use crate::view::Overview;

impl Controller {
    /// The routing rules of profile `name` (HTTVPS or HT).
    pub fn routing_rules(&self, name: &str) -> Result<RuleSet, CommandError> {
        let settings = self.settings();
        let profile = settings
            .profiles
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| not_found(name))?;
        profile.routing().cloned().ok_or_else(|| not_outbound(name))
    }

    /// Replaces the routing rules of profile `name` after checking every
    /// rule; a bad one is refused with `invalid_input` and a message naming
    /// it (`rule 2 (ip 10.0.0.0/33 → direct): …`).
    pub async fn save_routing_rules(
        &self,
        name: String,
        routing: RuleSet,
    ) -> Result<Overview, CommandError> {
        routing
            .compile()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        self.update_settings(|settings| {
            let profile = settings
                .profiles
                .iter_mut()
                .find(|p| p.name() == name)
                .ok_or_else(|| not_found(&name))?;
            *profile.routing_mut().ok_or_else(|| not_outbound(&name))? = routing.clone();
            Ok(())
        })
        .await?;
        let applies = if self.connected_profile().as_deref() == Some(name.as_str()) {
            " They apply from the next connect."
        } else {
            ""
        };
        self.log(
            LogLevel::Info,
            None,
            format!(
                "Routing rules of {name:?} saved ({} rules, default {}).{applies}",
                routing.rules.len(),
                routing.default
            ),
        );
        Ok(self.overview().await)
    }

    /// "Test a host": where a connection to `host` (a name or an IP
    /// literal) on `port` would go under `routing` (saved or not), and
    /// which rule decides. The name is not resolved, exactly as when
    /// connecting.
    pub fn test_route(
        &self,
        routing: RuleSet,
        host: String,
        port: u16,
    ) -> Result<Decision, CommandError> {
        test_route(&routing, &host, port)
    }
}

/// [`Controller::test_route`] without a controller.
pub fn test_route(routing: &RuleSet, host: &str, port: u16) -> Result<Decision, CommandError> {
    if host.trim().is_empty() {
        return Err(CommandError::invalid("enter a host name or an IP address"));
    }
    let router = routing
        .compile()
        .map_err(|e| CommandError::invalid(e.to_string()))?;
    Ok(router.decide_text(host, port))
}

fn not_found(name: &str) -> CommandError {
    CommandError::new(CommandCode::NotFound, format!("no profile named {name:?}"))
}

fn not_outbound(name: &str) -> CommandError {
    CommandError::invalid(format!(
        "profile {name:?} publishes or shares; routing rules apply to Connect profiles"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hlhv_cell::HlhvProfile;
    use httvps_client::HttvpsProfile;
    use profiles::{MemoryStore, SecretStore};
    use routing::{Action, Rule, RuleKind};

    use super::*;
    use crate::Parts;
    use crate::profile::Profile;
    use crate::settings::MemoryStorage;

    #[tokio::test]
    async fn rules_are_read_checked_and_saved_per_profile() {
        let c = Controller::new(Parts {
            storage: Box::new(MemoryStorage::default()),
            secrets: Arc::new(MemoryStore::default()) as Arc<dyn SecretStore>,
            system_proxy: None,
            autostart: None,
        });
        c.update_settings(|s| {
            s.profiles.push(Profile::Httvps(HttvpsProfile::for_gateway(
                "work",
                "wss://gw.example/ws",
            )));
            s.profiles.push(Profile::Hlhv(HlhvProfile::new(
                "site",
                "queen.example:2001",
                "demo.example/app/",
                "http://127.0.0.1:3000",
            )));
            Ok(())
        })
        .await
        .unwrap();
        assert!(c.routing_rules("work").unwrap().is_default());
        let rules = RuleSet {
            default: Action::Direct,
            rules: vec![Rule::new(
                RuleKind::DomainSuffix,
                "corp.example",
                Action::Tunnel,
            )],
        };
        c.save_routing_rules("work".into(), rules.clone())
            .await
            .unwrap();
        assert_eq!(c.routing_rules("work").unwrap(), rules);
        assert_eq!(c.settings().profiles[0].routing(), Some(&rules));

        let mut bad = rules.clone();
        bad.rules
            .push(Rule::new(RuleKind::Ip, "10.0.0.1/8", Action::Block));
        let err = c.save_routing_rules("work".into(), bad).await.unwrap_err();
        assert_eq!(err.code, CommandCode::InvalidInput);
        assert!(
            err.message.contains("rule 2 (ip 10.0.0.1/8 → block)"),
            "{}",
            err.message
        );
        assert_eq!(
            c.routing_rules("work").unwrap(),
            rules,
            "a refused save changes nothing"
        );

        assert_eq!(
            c.routing_rules("nope").unwrap_err().code,
            CommandCode::NotFound
        );
        let inbound = c
            .save_routing_rules("site".into(), rules.clone())
            .await
            .unwrap_err();
        assert_eq!(inbound.code, CommandCode::InvalidInput);
        assert!(c.routing_rules("site").is_err());
    }

    #[test]
    fn test_route_names_the_rule_or_the_bad_one() {
        let mut rules = RuleSet {
            default: Action::Tunnel,
            rules: vec![
                Rule::new(RuleKind::DomainSuffix, "corp.example", Action::Direct),
                Rule::new(RuleKind::Private, "", Action::Block),
            ],
        };
        let d = test_route(&rules, "wiki.corp.example", 443).unwrap();
        assert_eq!((d.action, d.rule), (Action::Direct, Some(0)));
        let d = test_route(&rules, "[::1]", 80).unwrap();
        assert_eq!((d.action, d.rule), (Action::Block, Some(1)));
        let d = test_route(&rules, "example.org", 443).unwrap();
        assert_eq!(
            (d.action, d.rule, d.label.as_str()),
            (Action::Tunnel, None, "default → tunnel")
        );
        assert_eq!(
            test_route(&rules, " ", 80).unwrap_err().code,
            CommandCode::InvalidInput
        );
        rules
            .rules
            .push(Rule::new(RuleKind::Port, "x", Action::Block));
        let err = test_route(&rules, "example.org", 443).unwrap_err();
        assert_eq!(err.code, CommandCode::InvalidInput);
        assert!(
            err.message.starts_with("rule 3 (port x → block)"),
            "{}",
            err.message
        );
    }
}
