//! The Relay part of the profile views and the form: a relay, a tunnel
//! name and the local ports shared, instead of a tunnel's server URL. Apart
//! from the other protocols' conversions because it shares none of their
//! fields but the trust ones.

use std::path::PathBuf;

use httvps_client::Transport;
use relay_client::RelayProfile;

use super::{ProfileInput, ProfileKind, ProfileView, check_ca_file, non_empty, path_text};
use crate::error::CommandError;
use crate::profile::Profile;
use crate::registry::Protocol;

impl ProfileView {
    /// A Relay profile: `server` is the relay's control address.
    pub(super) fn of_relay(profile: &RelayProfile, signed_in: bool) -> Option<ProfileView> {
        profile.check().ok()?;
        Some(ProfileView {
            name: profile.name.clone(),
            protocol: Protocol::Relay,
            kind: ProfileKind::RelayToken,
            server: profile.relay.clone(),
            device_id: None,
            region: None,
            ca_file: path_text(&profile.ca_file),
            pin_sha256: profile.pin_sha256.clone(),
            sni: profile.sni.clone(),
            connections: None,
            dns_listen: None,
            transport: None,
            mount: None,
            to: None,
            max_body: None,
            public_url: None,
            tunnel: Some(profile.tunnel.clone()),
            ports: Some(profile.ports.clone()),
            signed_in,
        })
    }
}

impl ProfileInput {
    /// A Relay profile: the relay, the tunnel name and the ports (the JWT
    /// goes to the keychain through `sign_in`); keeps the reconnect policy
    /// of `previous` when it was a Relay profile too.
    pub(super) fn into_relay_profile(
        self,
        name: String,
        previous: Option<&Profile>,
    ) -> Result<Profile, CommandError> {
        if self.kind != ProfileKind::RelayToken {
            return Err(CommandError::invalid(
                "Relay profiles sign in with a relay token (kind relay_token)",
            ));
        }
        if self.transport.is_some_and(|t| t != Transport::H1)
            || self.connections.is_some()
            || non_empty(&self.dns_listen).is_some()
            || self.mount.is_some()
            || self.to.is_some()
            || self.max_body.is_some()
            || non_empty(&self.public_url).is_some()
        {
            return Err(CommandError::invalid(
                "the transport, connections, DNS address, mount and local app are other protocols' settings; Relay profiles do not take them",
            ));
        }
        let relay = self.server.trim().to_owned();
        if relay.is_empty() {
            return Err(CommandError::invalid("enter the relay's HOST:PORT"));
        }
        let tunnel = non_empty(&self.tunnel)
            .ok_or_else(|| CommandError::invalid("enter the tunnel's name at the relay"))?;
        let ports = match self.ports {
            Some(ports) if !ports.is_empty() => ports,
            _ => {
                return Err(CommandError::invalid(
                    "enter the local ports to share, e.g. 22, 3389",
                ));
            }
        };
        let mut profile = match previous {
            Some(Profile::Relay(p)) => RelayProfile {
                name: name.clone(),
                relay: relay.clone(),
                tunnel: tunnel.clone(),
                ports: ports.clone(),
                ..p.clone()
            },
            _ => RelayProfile::new(name, relay, tunnel, ports),
        };
        profile.ca_file = non_empty(&self.ca_file).map(PathBuf::from);
        profile.pin_sha256 = non_empty(&self.pin_sha256);
        profile.sni = non_empty(&self.sni);
        profile
            .check()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        check_ca_file(&profile.ca_file)?;
        Ok(Profile::Relay(profile))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::gateway_input;
    use super::super::{ProfileInput, ProfileKind, ProfileView, Settings};
    use crate::error::CommandCode;
    use crate::profile::Profile;
    use crate::registry::Protocol;

    fn relay_input(name: &str) -> ProfileInput {
        ProfileInput {
            protocol: Some(Protocol::Relay),
            kind: ProfileKind::RelayToken,
            tunnel: Some(" desk ".into()),
            ports: Some(vec![22, 3389]),
            ..gateway_input(name, " relay.example:8443 ")
        }
    }

    #[test]
    fn relay_inputs_become_relay_profiles_and_views() {
        let mut input = relay_input("office");
        input.pin_sha256 = Some("ab".repeat(32));
        let profile = input.clone().into_profile(None).unwrap();
        let Profile::Relay(relay) = &profile else {
            panic!("not a Relay profile: {profile:?}")
        };
        assert_eq!(relay.relay, "relay.example:8443", "trimmed");
        assert_eq!(relay.tunnel, "desk", "trimmed");
        assert_eq!(relay.ports, [22, 3389]);
        assert_eq!(relay.sni, None, "blank fields are absent");
        let view = ProfileView::of(&profile, true).unwrap();
        assert_eq!(
            (view.protocol, view.kind, view.signed_in),
            (Protocol::Relay, ProfileKind::RelayToken, true)
        );
        assert_eq!(view.server, "relay.example:8443");
        assert_eq!(view.tunnel.as_deref(), Some("desk"));
        assert_eq!(view.ports.as_deref(), Some(&[22, 3389][..]));
        assert_eq!(view.pin_sha256, Some("ab".repeat(32)));

        // Editing keeps the reconnect policy.
        let mut previous = relay.clone();
        previous.reconnect.max_attempts = 2;
        input.ports = Some(vec![8080]);
        let Profile::Relay(edited) = input.into_profile(Some(&Profile::Relay(previous))).unwrap()
        else {
            panic!("not a Relay profile")
        };
        assert_eq!(edited.reconnect.max_attempts, 2);
        assert_eq!(edited.ports, [8080]);

        // From the UI's JSON.
        let from_ui: ProfileInput = serde_json::from_str(
            r#"{"name":"o","protocol":"relay","kind":"relay_token","server":"r.example","tunnel":"t","ports":[22]}"#,
        )
        .unwrap();
        assert!(matches!(
            from_ui.into_profile(None).unwrap(),
            Profile::Relay(p) if p.ports == [22] && p.relay == "r.example"
        ));
    }

    #[test]
    fn bad_relay_inputs_say_which_field() {
        let refused = |change: &dyn Fn(&mut ProfileInput)| {
            let mut input = relay_input("office");
            change(&mut input);
            let err = input.into_profile(None).unwrap_err();
            assert_eq!(err.code, CommandCode::InvalidInput);
            err.message
        };
        assert!(refused(&|i| i.server = " ".into()).contains("relay's HOST:PORT"));
        assert!(refused(&|i| i.server = "relay.example:99999".into()).contains("HOST[:PORT]"));
        assert!(refused(&|i| i.tunnel = Some(" ".into())).contains("tunnel's name"));
        assert!(refused(&|i| i.tunnel = Some("a b".into())).contains("tunnel name"));
        assert!(refused(&|i| i.ports = None).contains("ports"));
        assert!(refused(&|i| i.ports = Some(vec![])).contains("ports"));
        assert!(refused(&|i| i.ports = Some(vec![22, 22])).contains("ports"));
        assert!(refused(&|i| i.pin_sha256 = Some("zz".into())).contains("64 hex"));
        assert!(refused(&|i| i.ca_file = Some("/nonexistent/ca.pem".into())).contains("CA file"));
        assert!(refused(&|i| i.kind = ProfileKind::CellKey).contains("relay token"));
        assert!(refused(&|i| i.to = Some("http://127.0.0.1:1".into())).contains("Relay"));
        // And the other protocols do not take a tunnel or ports.
        let mut outbound = gateway_input("w", "wss://gw.example/ws");
        outbound.ports = Some(vec![22]);
        let err = outbound.into_profile(None).unwrap_err();
        assert!(err.message.contains("Relay settings"), "{}", err.message);
    }

    #[test]
    fn connect_never_picks_a_relay_profile() {
        let office = relay_input("office").into_profile(None).unwrap();
        let settings = Settings {
            profiles: vec![office],
            selected: Some("office".into()),
            ..Settings::default()
        };
        assert_eq!(settings.current_profile(), None);
        assert_eq!(settings.connect_profiles().count(), 0);
    }
}
