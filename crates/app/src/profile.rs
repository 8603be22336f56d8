//! The app layer's profile: one variant per protocol, each holding its client
//! crate's settings, in the same `profiles.toml` and `settings.json`.
//!
//! On disk a profile is its protocol's table plus `protocol = "…"`; a table
//! without the field is an HTTVPS profile (every file written before there
//! were other protocols). This is the only place, with [`crate::registry`],
//! that names every protocol.

use hlhv_cell::HlhvProfile;
use ht_client::HtProfile;
use httvps_client::HttvpsProfile;
use profiles::{ProfileError, SecretKind, StoredProfile};
use relay_client::RelayProfile;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::registry::Protocol;

/// One saved profile, of any protocol.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Profile {
    /// HTTVPS: JSON frames over a TLS WebSocket to a gateway.
    Httvps(HttvpsProfile),
    /// HT: the chunked-HTTP tunnel with a pre-shared key (TCP, UDP, DNS).
    Ht(HtProfile),
    /// HLHV: a local web app published through a queen (inbound).
    Hlhv(HlhvProfile),
    /// Relay: this machine's TCP ports shared through a relay over
    /// WireGuard (inbound, Remote access).
    Relay(RelayProfile),
}

impl Profile {
    /// The profile's protocol.
    pub fn protocol(&self) -> Protocol {
        match self {
            Profile::Httvps(_) => Protocol::Httvps,
            Profile::Ht(_) => Protocol::Ht,
            Profile::Hlhv(_) => Protocol::Hlhv,
            Profile::Relay(_) => Protocol::Relay,
        }
    }

    /// The unique name.
    pub fn name(&self) -> &str {
        match self {
            Profile::Httvps(p) => &p.name,
            Profile::Ht(p) => &p.name,
            Profile::Hlhv(p) => &p.name,
            Profile::Relay(p) => &p.name,
        }
    }

    /// The secret the profile needs to connect (its kind decides the
    /// keychain account).
    pub fn token_kind(&self) -> Result<SecretKind, ProfileError> {
        match self {
            Profile::Httvps(p) => p.token_kind(),
            Profile::Ht(p) => p.server().map(|_| ht_client::HT_KEY),
            Profile::Hlhv(p) => p.check().map(|_| hlhv_cell::CELL_KEY),
            Profile::Relay(p) => p.check().map(|_| relay_client::RELAY_TOKEN),
        }
    }

    /// Every secret kind a profile of this protocol may have, for sign-out.
    pub fn secret_kinds(&self) -> &'static [SecretKind] {
        match self {
            Profile::Httvps(_) => &[
                httvps_client::profile::SESSION_TOKEN,
                httvps_client::profile::DEVICE_TOKEN,
                SecretKind::PROXY_PASSWORD,
            ],
            Profile::Ht(_) => &[ht_client::HT_KEY, SecretKind::PROXY_PASSWORD],
            Profile::Hlhv(_) => &[hlhv_cell::CELL_KEY],
            // Not the device's WireGuard key: it is this machine's, shared
            // by every Relay profile.
            Profile::Relay(_) => &[relay_client::RELAY_TOKEN],
        }
    }

    /// The local proxy address the profile asks for, if any.
    pub fn listen(&self) -> Option<std::net::SocketAddr> {
        match self {
            Profile::Httvps(p) => p.listen,
            Profile::Ht(p) => p.listen,
            Profile::Hlhv(_) | Profile::Relay(_) => None,
        }
    }

    /// The routing rules of an outbound profile (HTTVPS, HT); `None` for
    /// inbound ones (publish, remote access), which the rules do not apply to.
    pub fn routing(&self) -> Option<&routing::RuleSet> {
        match self {
            Profile::Httvps(p) => Some(&p.routing),
            Profile::Ht(p) => Some(&p.routing),
            Profile::Hlhv(_) | Profile::Relay(_) => None,
        }
    }

    /// The routing rules to change, for an outbound profile.
    pub fn routing_mut(&mut self) -> Option<&mut routing::RuleSet> {
        match self {
            Profile::Httvps(p) => Some(&mut p.routing),
            Profile::Ht(p) => Some(&mut p.routing),
            Profile::Hlhv(_) | Profile::Relay(_) => None,
        }
    }

    /// Where the profile serves DNS through the tunnel, if anywhere.
    pub fn dns_listen(&self) -> Option<std::net::SocketAddr> {
        match self {
            Profile::Httvps(_) | Profile::Hlhv(_) | Profile::Relay(_) => None,
            Profile::Ht(p) => p.dns_listen,
        }
    }
}

impl From<HttvpsProfile> for Profile {
    fn from(profile: HttvpsProfile) -> Self {
        Profile::Httvps(profile)
    }
}

impl From<HtProfile> for Profile {
    fn from(profile: HtProfile) -> Self {
        Profile::Ht(profile)
    }
}

impl From<HlhvProfile> for Profile {
    fn from(profile: HlhvProfile) -> Self {
        Profile::Hlhv(profile)
    }
}

impl From<RelayProfile> for Profile {
    fn from(profile: RelayProfile) -> Self {
        Profile::Relay(profile)
    }
}

impl StoredProfile for Profile {
    fn name(&self) -> &str {
        Profile::name(self)
    }

    fn validate(&self) -> Result<(), ProfileError> {
        match self {
            Profile::Httvps(p) => p.validate(),
            Profile::Ht(p) => p.validate(),
            Profile::Hlhv(p) => p.validate(),
            Profile::Relay(p) => p.validate(),
        }
    }
}

/// The on-disk form: the protocol's own fields with `protocol` first.
#[derive(Serialize)]
struct Tagged<'a, T> {
    protocol: Protocol,
    #[serde(flatten)]
    fields: &'a T,
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Profile::Httvps(fields) => Tagged {
                protocol: Protocol::Httvps,
                fields,
            }
            .serialize(serializer),
            Profile::Ht(fields) => Tagged {
                protocol: Protocol::Ht,
                fields,
            }
            .serialize(serializer),
            Profile::Hlhv(fields) => Tagged {
                protocol: Protocol::Hlhv,
                fields,
            }
            .serialize(serializer),
            Profile::Relay(fields) => Tagged {
                protocol: Protocol::Relay,
                fields,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Profile {
    /// Reads the table once into a neutral value (TOML and JSON alike), takes
    /// `protocol` out (absent = `httvps`), and hands the rest to that
    /// protocol's struct, which refuses unknown fields. A serde internally
    /// tagged enum cannot do this: it has no default tag.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let protocol = match table.remove("protocol") {
            None => Protocol::Httvps,
            Some(value) => Protocol::deserialize(value).map_err(|_| {
                D::Error::custom(format!(
                    "unknown protocol; expected one of: {}",
                    Protocol::ALL
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        };
        let fields = serde_json::Value::Object(table);
        match protocol {
            Protocol::Httvps => HttvpsProfile::deserialize(fields)
                .map(Profile::Httvps)
                .map_err(D::Error::custom),
            Protocol::Ht => HtProfile::deserialize(fields)
                .map(Profile::Ht)
                .map_err(D::Error::custom),
            Protocol::Hlhv => HlhvProfile::deserialize(fields)
                .map(Profile::Hlhv)
                .map_err(D::Error::custom),
            Protocol::Relay => RelayProfile::deserialize(fields)
                .map(Profile::Relay)
                .map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profiles::{ProfileStore, ProfilesFile};

    #[test]
    fn routing_tables_load_for_both_outbound_protocols() {
        let text = r#"
            [[profile]]
            name = "work"
            gateway = "wss://gw.example/ws"
            [profile.routing]
            default = "direct"
            rules = [{ match = "domain-suffix", value = "corp.example", action = "tunnel" }]

            [[profile]]
            protocol = "ht"
            name = "ht"
            url = "https://ht.example"
            [[profile.routing.rules]]
            match = "private"
            action = "direct"
        "#;
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("profiles.toml"));
        std::fs::write(store.path(), text).unwrap();
        let file: ProfilesFile<Profile> = store.load().unwrap();
        let work = file.pick(Some("work")).unwrap();
        assert_eq!(work.routing().unwrap().default, routing::Action::Direct);
        let ht = file.pick(Some("ht")).unwrap();
        assert_eq!(
            ht.routing().unwrap().rules[0].kind,
            routing::RuleKind::Private
        );
        ht.validate().unwrap();
        store.save(&file).unwrap();
        assert_eq!(store.load::<Profile>().unwrap(), file);
    }

    #[test]
    fn files_without_a_protocol_load_as_httvps_and_are_written_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(
            &path,
            "default = \"work\"\n[[profile]]\nname = \"work\"\ngateway = \"wss://gw.example/ws\"\n",
        )
        .unwrap();
        let store = ProfileStore::at(&path);
        let file: ProfilesFile<Profile> = store.load().unwrap();
        let work = file.pick(None).unwrap();
        assert_eq!(work.protocol(), Protocol::Httvps);
        assert_eq!(
            work,
            &Profile::Httvps(HttvpsProfile::for_gateway("work", "wss://gw.example/ws"))
        );
        store.save(&file).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("protocol = \"httvps\""), "{text}");
        assert_eq!(store.load::<Profile>().unwrap(), file);
    }

    #[test]
    fn settings_json_round_trips_with_and_without_the_tag() {
        let old = r#"{"name":"w","gateway":"wss://gw.example/ws"}"#;
        let profile: Profile = serde_json::from_str(old).unwrap();
        let json = serde_json::to_string(&profile).unwrap();
        assert!(
            json.starts_with(r#"{"protocol":"httvps","name":"w""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), profile);
    }

    #[test]
    fn ht_profiles_round_trip_with_their_tag() {
        let mut ht = HtProfile::new("h", "https://ht.example");
        ht.dns_listen = Some("127.0.0.1:5353".parse().unwrap());
        let profile = Profile::Ht(ht);
        let json = serde_json::to_string(&profile).unwrap();
        assert!(json.starts_with(r#"{"protocol":"ht","name":"h""#), "{json}");
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), profile);
        assert_eq!(profile.token_kind().unwrap(), ht_client::HT_KEY);
        assert_eq!(
            profile.dns_listen(),
            Some("127.0.0.1:5353".parse().unwrap())
        );
    }

    #[test]
    fn hlhv_profiles_round_trip_with_their_tag() {
        let profile = Profile::Hlhv(HlhvProfile::new(
            "site",
            "queen.example:2001",
            "demo.example/app/",
            "http://127.0.0.1:3000",
        ));
        let json = serde_json::to_string(&profile).unwrap();
        assert!(
            json.starts_with(r#"{"protocol":"hlhv","name":"site""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), profile);
        assert_eq!(profile.token_kind().unwrap(), hlhv_cell::CELL_KEY);
        assert_eq!(profile.listen(), None);
        let missing = serde_json::from_str::<Profile>(r#"{"protocol":"hlhv","name":"w"}"#)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("queen"), "{missing}");
    }

    #[test]
    fn relay_profiles_round_trip_in_toml_with_their_tag_and_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("profiles.toml"));
        let mut office = RelayProfile::new("office", "relay.example:8443", "desk", vec![22, 3389]);
        office.pin_sha256 = Some("ab".repeat(32));
        let mut file = ProfilesFile::default();
        file.upsert(Profile::Relay(office));
        store.save(&file).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("protocol = \"relay\""), "{text}");
        assert!(!text.contains("token"), "{text}");
        let back: ProfilesFile<Profile> = store.load().unwrap();
        assert_eq!(back, file);
        let office = back.pick(Some("office")).unwrap();
        assert_eq!(office.protocol(), Protocol::Relay);
        assert_eq!(office.token_kind().unwrap(), relay_client::RELAY_TOKEN);
        assert_eq!(office.secret_kinds(), [relay_client::RELAY_TOKEN]);
        assert_eq!((office.listen(), office.dns_listen()), (None, None));
    }

    #[test]
    fn bad_tables_are_explained() {
        let unknown = serde_json::from_str::<Profile>(r#"{"protocol":"gopher","name":"w"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("unknown protocol") && unknown.contains("httvps"),
            "{unknown}"
        );
        let typo = serde_json::from_str::<Profile>(r#"{"name":"w","gatewya":"wss://x/ws"}"#)
            .unwrap_err()
            .to_string();
        assert!(typo.contains("gatewya"), "{typo}");
        let ht = serde_json::from_str::<Profile>(r#"{"protocol":"ht","name":"w"}"#)
            .unwrap_err()
            .to_string();
        assert!(ht.contains("url"), "{ht}");
        let relay = serde_json::from_str::<Profile>(r#"{"protocol":"relay","name":"w"}"#)
            .unwrap_err()
            .to_string();
        assert!(relay.contains("missing field"), "{relay}");
    }

    #[test]
    fn a_bad_field_in_the_file_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(&path, "[[profile]]\nname = \"a\"\ngateway = 5\n").unwrap();
        let err = ProfileStore::at(&path)
            .load::<Profile>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("profiles.toml") && err.contains("line"),
            "{err}"
        );
    }
}
