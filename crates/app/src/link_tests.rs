use super::*;
use hlhv_cell::HlhvProfile;
use ht_client::HtProfile;
use httvps_client::{HttvpsProfile, Transport};
use relay_client::RelayProfile;

const HT_KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// One profile of every protocol, each with some non-default fields, and a
/// secret of the kind it needs.
fn samples() -> Vec<(Profile, Secret)> {
    let mut httvps = HttvpsProfile::for_gateway("work", "wss://gw.example/ws");
    httvps.transport = Transport::Auto;
    httvps.pin_sha256 = Some("ab".repeat(32));
    httvps.listen = Some("127.0.0.1:1090".parse().unwrap());
    let mut device = HttvpsProfile::new("fleet");
    device.backend = Some("https://api.example".into());
    device.device_id = Some("dev-1".into());
    device.region = Some("eu".into());
    let mut ht = HtProfile::new("ht", "https://ht.example:8443/base");
    ht.connections = Some(2);
    ht.dns_listen = Some("127.0.0.1:5353".parse().unwrap());
    ht.sni = Some("front.example".into());
    let mut hlhv = HlhvProfile::new(
        "site",
        "queen.example:2001",
        "demo.example/app/",
        "http://127.0.0.1:3000",
    );
    hlhv.max_body = Some(1 << 20);
    let mut relay = RelayProfile::new("office", "relay.example:8443", "desk", vec![22, 3389]);
    relay.pin_sha256 = Some("cd".repeat(32));
    vec![
        (Profile::Httvps(httvps), Secret::new("session-token-1")),
        (Profile::Httvps(device), Secret::new("device-token-2")),
        (Profile::Ht(ht), Secret::new(HT_KEY_HEX)),
        (Profile::Hlhv(hlhv), Secret::new("cell key 3")),
        (
            Profile::Relay(relay),
            Secret::new("eyJhbGciOi.eyJzdWIi.sig"),
        ),
    ]
}

#[test]
fn every_protocol_round_trips_with_its_secret_only_when_asked() {
    for (profile, secret) in samples() {
        let plain = ShareLink::create(&profile, None).unwrap();
        assert!(!plain.contains_secret());
        assert!(
            plain.as_str().starts_with("httvps://add?v=1&p="),
            "{plain:?}"
        );
        assert!(!plain.as_str().contains("&s="));
        let read = LinkContents::parse(plain.as_str()).unwrap();
        assert_eq!(read.profile, profile);
        assert!(read.secret.is_none());

        let full = ShareLink::create(&profile, Some(&secret)).unwrap();
        assert!(full.contains_secret());
        assert!(full.as_str().starts_with(plain.as_str()));
        let read = LinkContents::parse(full.as_str()).unwrap();
        assert_eq!(read.profile, profile);
        assert_eq!(read.secret.as_ref(), Some(&secret));
        assert!(full.left_out().is_empty());
        assert!(full.as_str().len() < 400, "{}", full.as_str().len());
    }
}

#[test]
fn fields_at_their_default_are_left_out() {
    let profile = Profile::Httvps(HttvpsProfile::for_gateway("w", "wss://gw.example/ws"));
    let link = ShareLink::create(&profile, None).unwrap();
    let p = link.as_str().split("&p=").nth(1).unwrap();
    let json: Value = serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"protocol": "httvps", "name": "w", "gateway": "wss://gw.example/ws"})
    );
    assert!(link.as_str().len() < 120, "{}", link.as_str());
}

#[test]
fn a_ca_file_and_open_addresses_stay_out_and_are_refused_in() {
    let mut ht = HtProfile::new("ht", "https://ht.example");
    ht.ca_file = Some("/home/me/ca.pem".into());
    ht.listen = Some("0.0.0.0:1080".parse().unwrap());
    ht.dns_listen = Some("127.0.0.1:5353".parse().unwrap());
    let link = ShareLink::create(&Profile::Ht(ht.clone()), None).unwrap();
    assert_eq!(link.left_out(), ["ca_file", "listen"]);
    let read = LinkContents::parse(link.as_str()).unwrap();
    ht.ca_file = None;
    ht.listen = None;
    assert_eq!(read.profile, Profile::Ht(ht));

    let forged = |json: &str| format!("{PREFIX}v=1&p={}", B64.encode(json));
    let ca = forged(r#"{"protocol":"ht","name":"h","url":"https://x","ca_file":"/etc/x"}"#);
    assert!(matches!(
        LinkContents::parse(&ca),
        Err(LinkError::LocalFile(f)) if f == "ca_file"
    ));
    let open = forged(r#"{"protocol":"ht","name":"h","url":"https://x","listen":"0.0.0.0:1080"}"#);
    assert!(matches!(
        LinkContents::parse(&open),
        Err(LinkError::OpenAddress(a)) if a.port() == 1080
    ));
    let dns = forged(r#"{"protocol":"ht","name":"h","url":"https://x","dns_listen":"[::]:53"}"#);
    assert!(matches!(
        LinkContents::parse(&dns),
        Err(LinkError::OpenAddress(_))
    ));
}

#[test]
fn bad_links_are_refused_with_their_reason() {
    let (profile, secret) = samples().remove(0);
    let good = ShareLink::create(&profile, Some(&secret)).unwrap();
    let good = good.as_str();
    let p = good.split("&p=").nth(1).unwrap().split('&').next().unwrap();
    type Expect = fn(&LinkError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        ("https://add?v=1".into(), |e| {
            matches!(e, LinkError::NotALink)
        }),
        ("".into(), |e| matches!(e, LinkError::NotALink)),
        (good.replace("httvps://", "httvpz://"), |e| {
            matches!(e, LinkError::NotALink)
        }),
        (
            good.replace("v=1", "v=2"),
            |e| matches!(e, LinkError::UnsupportedVersion(v) if v == "2"),
        ),
        (good.replace("v=1&", ""), |e| {
            matches!(e, LinkError::NoVersion)
        }),
        (format!("{PREFIX}v=1"), |e| {
            matches!(e, LinkError::NoProfile)
        }),
        (
            format!("{good}&x=1"),
            |e| matches!(e, LinkError::UnknownParameter(k) if k == "x"),
        ),
        (
            format!("{good}&v=1"),
            |e| matches!(e, LinkError::UnknownParameter(k) if k == "v"),
        ),
        (good.replace(p, &format!("{p}!")), |e| {
            matches!(e, LinkError::Damaged("profile"))
        }),
        (format!("{PREFIX}v=1&p={p}&s=%%"), |e| {
            matches!(e, LinkError::Damaged("secret"))
        }),
        (format!("{PREFIX}v=1&p={p}&s={}", B64.encode("a\nb")), |e| {
            matches!(e, LinkError::BadSecret(_))
        }),
        (format!("{PREFIX}v=1&p={p}&s="), |e| {
            matches!(e, LinkError::BadSecret(_))
        }),
        (format!("{good}{}", "A".repeat(MAX_LINK_LEN)), |e| {
            matches!(e, LinkError::TooLong { .. })
        }),
    ];
    for (link, expected) in cases {
        let err = LinkContents::parse(&link).unwrap_err();
        assert!(expected(&err), "{link}: {err}");
        assert!(!err.to_string().contains(secret.expose()));
    }
}

#[test]
fn a_profile_with_unknown_or_wrong_fields_gets_the_files_errors() {
    let forged = |json: &str| format!("{PREFIX}v=1&p={}", B64.encode(json));
    let typo = LinkContents::parse(&forged(r#"{"name":"w","gatewya":"wss://x/ws"}"#))
        .unwrap_err()
        .to_string();
    assert!(typo.contains("gatewya"), "{typo}");
    let unknown = LinkContents::parse(&forged(r#"{"protocol":"gopher","name":"w"}"#))
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown protocol"), "{unknown}");
    let pin = forged(r#"{"protocol":"ht","name":"h","url":"https://x","pin_sha256":"zz"}"#);
    assert!(matches!(
        LinkContents::parse(&pin),
        Err(LinkError::Invalid(_))
    ));
    let slash = forged(r#"{"protocol":"ht","name":"a/b","url":"https://x"}"#);
    assert!(matches!(
        LinkContents::parse(&slash),
        Err(LinkError::Invalid(_))
    ));
    // An HT link whose secret is not a key.
    let ht = samples().remove(2).0;
    let link = ShareLink::create(&ht, Some(&Secret::new("not-hex"))).unwrap();
    assert!(matches!(
        LinkContents::parse(link.as_str()),
        Err(LinkError::BadSecret(_))
    ));
}

#[test]
fn every_truncation_fails_or_never_yields_the_secret() {
    for (profile, secret) in samples() {
        let plain = ShareLink::create(&profile, None).unwrap();
        for end in 0..plain.as_str().len() {
            assert!(
                LinkContents::parse(&plain.as_str()[..end]).is_err(),
                "accepted {}",
                &plain.as_str()[..end]
            );
        }
        // Cut inside the secret: at worst a different (shorter) secret,
        // never the whole one and never a different profile.
        let full = ShareLink::create(&profile, Some(&secret)).unwrap();
        for end in plain.as_str().len()..full.as_str().len() {
            if let Ok(read) = LinkContents::parse(&full.as_str()[..end]) {
                assert_eq!(read.profile, profile);
                assert_ne!(read.secret.as_ref(), Some(&secret));
            }
        }
    }
}

#[test]
fn tampering_with_the_profile_is_caught_or_visible() {
    // Flip each character of the payload: never a panic; a link that still
    // reads is a different, valid profile, which the user sees before adding.
    let (profile, _) = samples().remove(2);
    let link = ShareLink::create(&profile, None).unwrap();
    let text = link.as_str();
    let start = text.find("&p=").unwrap() + 3;
    for i in start..text.len() {
        let mut bytes = text.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        if let Ok(read) = LinkContents::parse(&tampered) {
            read.profile.validate().unwrap();
        }
    }
}

#[test]
fn a_link_can_be_renamed_and_checked_again() {
    let (profile, secret) = samples().remove(3);
    let link = ShareLink::create(&profile, Some(&secret)).unwrap();
    let read = LinkContents::parse(link.as_str()).unwrap();
    let renamed = read.clone().renamed(" site-2 ").unwrap();
    assert_eq!(renamed.profile.name(), "site-2");
    assert_eq!(renamed.secret, read.secret);
    assert!(matches!(read.renamed("a/b"), Err(LinkError::Invalid(_))));
}

#[test]
fn a_link_with_a_secret_is_never_printed_by_debug() {
    let (profile, secret) = samples().remove(0);
    let full = ShareLink::create(&profile, Some(&secret)).unwrap();
    let printed = format!("{full:?}");
    assert!(
        printed.contains("redacted") && !printed.contains("&s="),
        "{printed}"
    );
    let read = LinkContents::parse(full.as_str()).unwrap();
    assert!(!format!("{read:?}").contains(secret.expose()));
    let plain = ShareLink::create(&profile, None).unwrap();
    assert!(format!("{plain:?}").contains(plain.as_str()));
}

#[test]
fn the_qr_code_is_an_svg_that_grows_with_the_link() {
    let (profile, secret) = samples().remove(0);
    let plain = ShareLink::create(&profile, None).unwrap().qr_svg();
    let full = ShareLink::create(&profile, Some(&secret)).unwrap().qr_svg();
    assert!(
        plain.contains("<svg") && plain.contains("</svg>"),
        "{plain}"
    );
    assert_ne!(plain, full);
    let text = ShareLink::create(&profile, None).unwrap().qr_text();
    assert!(text.lines().count() > 10 && text.contains('█'), "{text}");
    let huge = ShareLink {
        text: "x".repeat(MAX_LINK_LEN),
        contains_secret: false,
        left_out: Vec::new(),
    };
    assert!(huge.qr_svg().contains("<svg"));
}

#[test]
fn the_documented_example_reads_as_documented() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/links.md"))
        .unwrap();
    let example = docs
        .lines()
        .find(|l| l.starts_with("httvps://add?v=1&p=ey"))
        .expect("docs/links.md shows an example link");
    let mut work = HttvpsProfile::for_gateway("work", "wss://gw.example/ws");
    work.transport = Transport::Auto;
    let read = LinkContents::parse(example).unwrap();
    assert_eq!(read.profile, Profile::Httvps(work.clone()));
    assert!(read.secret.is_none());
    assert_eq!(
        ShareLink::create(&read.profile, None).unwrap().as_str(),
        example
    );
}

#[test]
fn whatever_the_profile_holds_travels_routing_rules_included() {
    // Built from JSON, as the settings file holds it: this module names no
    // field, so a field added to a profile is in its links at once.
    let profile: Profile = serde_json::from_value(serde_json::json!({
        "protocol": "ht",
        "name": "ht",
        "url": "https://ht.example",
        "routing": {
            "default": "tunnel",
            "rules": [
                {"match": "domain-suffix", "value": "corp.example", "action": "direct"},
                {"match": "private", "action": "direct"}
            ]
        }
    }))
    .unwrap();
    let link = ShareLink::create(&profile, None).unwrap();
    let p = link.as_str().split("&p=").nth(1).unwrap();
    let json: Value = serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
    assert_eq!(json["routing"]["rules"][0]["value"], "corp.example");
    assert_eq!(LinkContents::parse(link.as_str()).unwrap().profile, profile);
}
