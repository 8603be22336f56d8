//! The HLHV part of the profile views and the form: a queen, a mount and
//! a local app instead of a tunnel's server URL. Apart from the outbound
//! protocols' conversions because it shares none of their fields but the
//! trust ones.

use std::path::PathBuf;

use hlhv_cell::HlhvProfile;
use httvps_client::Transport;

use super::{ProfileInput, ProfileKind, ProfileView, check_ca_file, non_empty, path_text};
use crate::error::CommandError;
use crate::profile::Profile;
use crate::registry::Protocol;

impl ProfileView {
    /// An HLHV profile: `server` is the queen, and the public URL is the
    /// one the cell will announce (the profile's own, or from the mount).
    pub(super) fn of_hlhv(profile: &HlhvProfile, signed_in: bool) -> Option<ProfileView> {
        let checked = profile.check().ok()?;
        Some(ProfileView {
            name: profile.name.clone(),
            protocol: Protocol::Hlhv,
            kind: ProfileKind::CellKey,
            server: profile.queen.clone(),
            device_id: None,
            region: None,
            ca_file: path_text(&profile.ca_file),
            pin_sha256: profile.pin_sha256.clone(),
            sni: profile.sni.clone(),
            connections: None,
            dns_listen: None,
            transport: None,
            mount: Some(profile.mount.clone()),
            to: Some(profile.to.clone()),
            max_body: profile.max_body,
            public_url: Some(checked.public_url),
            tunnel: None,
            ports: None,
            signed_in,
        })
    }
}

impl ProfileInput {
    /// An HLHV profile: the queen, the mount and the local app (the cell
    /// key goes to the keychain through `sign_in`); keeps the reconnect
    /// policy of `previous` when it was an HLHV profile too.
    pub(super) fn into_hlhv_profile(
        self,
        name: String,
        previous: Option<&Profile>,
    ) -> Result<Profile, CommandError> {
        if self.kind != ProfileKind::CellKey {
            return Err(CommandError::invalid(
                "HLHV profiles sign in with a cell key (kind cell_key)",
            ));
        }
        if self.transport.is_some_and(|t| t != Transport::H1)
            || self.connections.is_some()
            || non_empty(&self.dns_listen).is_some()
        {
            return Err(CommandError::invalid(
                "the transport, connections and DNS address are tunnel settings; HLHV profiles do not take them",
            ));
        }
        let required = |value: &Option<String>, what: &str| {
            non_empty(value).ok_or_else(|| CommandError::invalid(format!("enter the {what}")))
        };
        let queen = self.server.trim().to_owned();
        if queen.is_empty() {
            return Err(CommandError::invalid("enter the queen's HOST:PORT"));
        }
        let mount = required(&self.mount, "mount (HOST/PATH, e.g. demo.example/app/)")?;
        let to = required(&self.to, "local app's URL (http://127.0.0.1:PORT)")?;
        let mut profile = match previous {
            Some(Profile::Hlhv(p)) => HlhvProfile {
                name: name.clone(),
                queen: queen.clone(),
                mount: mount.clone(),
                to: to.clone(),
                ..p.clone()
            },
            _ => HlhvProfile::new(name, queen, mount, to),
        };
        profile.ca_file = non_empty(&self.ca_file).map(PathBuf::from);
        profile.pin_sha256 = non_empty(&self.pin_sha256);
        profile.sni = non_empty(&self.sni);
        profile.max_body = self.max_body;
        profile.public_url = non_empty(&self.public_url);
        profile
            .check()
            .map_err(|e| CommandError::invalid(e.to_string()))?;
        check_ca_file(&profile.ca_file)?;
        Ok(Profile::Hlhv(profile))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::gateway_input;
    use super::super::{ProfileInput, ProfileKind, ProfileView, Settings};
    use crate::error::CommandCode;
    use crate::profile::Profile;
    use crate::registry::Protocol;

    fn hlhv_input(name: &str) -> ProfileInput {
        ProfileInput {
            protocol: Some(Protocol::Hlhv),
            kind: ProfileKind::CellKey,
            mount: Some(" demo.example/app/ ".into()),
            to: Some("http://127.0.0.1:3000".into()),
            ..gateway_input(name, "queen.example:2001")
        }
    }

    #[test]
    fn hlhv_inputs_become_hlhv_profiles_and_views() {
        let mut input = hlhv_input("site");
        input.max_body = Some(1024);
        input.pin_sha256 = Some("ab".repeat(32));
        let profile = input.clone().into_profile(None).unwrap();
        let Profile::Hlhv(hlhv) = &profile else {
            panic!("not an HLHV profile: {profile:?}")
        };
        assert_eq!(hlhv.queen, "queen.example:2001");
        assert_eq!(hlhv.mount, "demo.example/app/", "trimmed");
        assert_eq!(hlhv.max_body, Some(1024));
        assert_eq!(hlhv.sni, None, "blank fields are absent");
        let view = ProfileView::of(&profile, true).unwrap();
        assert_eq!(view.kind, ProfileKind::CellKey);
        assert_eq!(view.protocol, Protocol::Hlhv);
        assert_eq!(view.server, "queen.example:2001");
        assert_eq!(view.to.as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(
            view.public_url.as_deref(),
            Some("https://demo.example/app/"),
            "derived from the mount"
        );
        input.public_url = Some("https://pretty.example/".into());
        let view = ProfileView::of(&input.clone().into_profile(None).unwrap(), false).unwrap();
        assert_eq!(view.public_url.as_deref(), Some("https://pretty.example/"));

        // Editing keeps the reconnect policy.
        let mut previous = hlhv.clone();
        previous.reconnect.max_attempts = 2;
        let Profile::Hlhv(edited) = input
            .clone()
            .into_profile(Some(&Profile::Hlhv(previous)))
            .unwrap()
        else {
            panic!("not an HLHV profile")
        };
        assert_eq!(edited.reconnect.max_attempts, 2);
    }

    #[test]
    fn bad_hlhv_inputs_say_which_field() {
        let refused = |change: &dyn Fn(&mut ProfileInput)| {
            let mut input = hlhv_input("site");
            change(&mut input);
            let err = input.into_profile(None).unwrap_err();
            assert_eq!(err.code, CommandCode::InvalidInput);
            err.message
        };
        assert!(refused(&|i| i.mount = None).contains("mount"));
        assert!(refused(&|i| i.to = Some("  ".into())).contains("local app"));
        assert!(refused(&|i| i.to = Some("https://127.0.0.1:3000".into())).contains("http://"));
        assert!(refused(&|i| i.server = "https://queen.example".into()).contains("queen"));
        assert!(refused(&|i| i.server = " ".into()).contains("queen"));
        assert!(refused(&|i| i.public_url = Some("ftp://x".into())).contains("public URL"));
        assert!(refused(&|i| i.max_body = Some(0)).contains("max_body"));
        assert!(refused(&|i| i.kind = ProfileKind::Gateway).contains("cell key"));
        assert!(refused(&|i| i.dns_listen = Some("127.0.0.1:53".into())).contains("HLHV"));
        // And an outbound profile does not take HLHV's fields.
        let mut outbound = gateway_input("w", "wss://gw.example/ws");
        outbound.to = Some("http://127.0.0.1:3000".into());
        assert!(
            outbound
                .into_profile(None)
                .unwrap_err()
                .message
                .contains("HLHV")
        );
    }

    #[test]
    fn connect_never_picks_a_publishing_profile() {
        let site = hlhv_input("site").into_profile(None).unwrap();
        let work = gateway_input("work", "wss://gw.example/ws")
            .into_profile(None)
            .unwrap();
        let mut settings = Settings {
            profiles: vec![site, work],
            selected: Some("site".into()),
            ..Settings::default()
        };
        // The only outbound profile, whatever is selected.
        assert_eq!(settings.current_profile().unwrap().name(), "work");
        settings.selected = None;
        assert_eq!(settings.current_profile().unwrap().name(), "work");
        let names: Vec<_> = settings.connect_profiles().map(|p| p.name()).collect();
        assert_eq!(names, ["work"]);
        settings.profiles.pop();
        assert_eq!(settings.current_profile(), None);
    }
}
