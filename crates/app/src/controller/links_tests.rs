use std::sync::Arc;

use hlhv_cell::HlhvProfile;
use httvps_client::HttvpsProfile;
use net::Secret;
use profiles::{MemoryStore, SecretStore, account};
use relay_client::RelayProfile;

use super::*;
use crate::Parts;
use crate::profile::Profile;
use crate::settings::MemoryStorage;

fn controller(secrets: &Arc<MemoryStore>) -> Controller {
    Controller::new(Parts {
        storage: Box::new(MemoryStorage::default()),
        secrets: secrets.clone() as Arc<dyn SecretStore>,
        system_proxy: None,
        autostart: None,
    })
}

/// Saves `profile` straight into the settings, as a form would have.
async fn save(c: &Controller, profile: Profile) {
    c.update_settings(|s| {
        s.profiles.push(profile);
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_shared_profile_is_added_on_another_computer_with_its_secret_only_when_asked() {
    let here_secrets = Arc::new(MemoryStore::default());
    let here = controller(&here_secrets);
    let work = Profile::Httvps(HttvpsProfile::for_gateway("work", "wss://gw.example/ws"));
    save(&here, work.clone()).await;

    // Without the secret in the keychain, asking for it says to sign in.
    let err = here.share_link("work".into(), true).await.unwrap_err();
    assert_eq!(err.code, CommandCode::NotSignedIn);
    let token = Secret::new("tok-123");
    here_secrets
        .set(&account("work", work.token_kind().unwrap()), &token)
        .unwrap();

    let plain = here.share_link("work".into(), false).await.unwrap();
    assert!(!plain.contains_secret && !plain.link.contains("&s="));
    assert!(plain.qr_svg.contains("<svg"));
    let full = here.share_link("work".into(), true).await.unwrap();
    assert!(full.contains_secret && full.link.contains("&s="));
    assert!(!format!("{full:?}").contains("&s="));
    // The log says a secret link was shown, and never holds the link.
    let log = serde_json::to_string(&here.overview().await.log).unwrap();
    assert!(
        log.contains("with its secret") && !log.contains(&full.link),
        "{log}"
    );

    // There: without the secret, added and not signed in.
    let there_secrets = Arc::new(MemoryStore::default());
    let there = controller(&there_secrets);
    let added = there
        .add_from_link(plain.link.clone(), None, false)
        .await
        .unwrap();
    assert_eq!((added.name.as_str(), added.secret_saved), ("work", false));
    assert_eq!(there.find_profile("work").unwrap(), work);
    assert!(!added.overview.profiles[0].signed_in);
    assert_eq!(added.overview.selected.as_deref(), Some("work"));

    // The same name again is refused unless told; a new name is fine.
    let err = there
        .add_from_link(full.link.clone(), None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code, CommandCode::InvalidInput);
    assert!(err.message.contains("exists already"), "{}", err.message);
    let added = there
        .add_from_link(full.link.clone(), Some("work-2".into()), false)
        .await
        .unwrap();
    assert!(added.secret_saved && !added.replaced);
    let kind = work.token_kind().unwrap();
    assert_eq!(
        there_secrets.get(&account("work-2", kind)).unwrap(),
        Some(token.clone())
    );
    // The secret is in the keychain only, never in the settings.
    let settings = serde_json::to_string(&there.settings()).unwrap();
    assert!(!settings.contains("tok-123"), "{settings}");

    // Replacing with a link without a secret forgets the old one.
    there_secrets
        .set(&account("work", kind), &Secret::new("old"))
        .unwrap();
    let replaced = there.add_from_link(plain.link, None, true).await.unwrap();
    assert!(replaced.replaced && !replaced.secret_saved);
    assert_eq!(there_secrets.get(&account("work", kind)).unwrap(), None);
}

#[tokio::test]
async fn links_of_every_panel_add_profiles_and_bad_ones_say_why() {
    let secrets = Arc::new(MemoryStore::default());
    let c = controller(&secrets);
    let site = Profile::Hlhv(HlhvProfile::new(
        "site",
        "queen.example:2001",
        "demo.example/app/",
        "http://127.0.0.1:3000",
    ));
    let office = Profile::Relay(RelayProfile::new(
        "office",
        "relay.example",
        "desk",
        vec![22],
    ));
    for (profile, secret) in [(site, "cell-key"), (office, "a.b.c")] {
        let link = ShareLink::create(&profile, Some(&Secret::new(secret))).unwrap();
        let added = c
            .add_from_link(link.as_str().to_owned(), None, false)
            .await
            .unwrap();
        assert_eq!(added.protocol, profile.protocol());
        assert_eq!(c.find_profile(profile.name()).unwrap(), profile);
        let kind = profile.token_kind().unwrap();
        assert_eq!(
            secrets.get(&account(profile.name(), kind)).unwrap(),
            Some(Secret::new(secret))
        );
    }
    // Inbound profiles are not Connect's choice.
    assert_eq!(c.overview().await.selected, None);

    let err = c
        .add_from_link("https://example.com/".into(), None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code, CommandCode::InvalidInput);
    assert!(
        err.message.contains("not an httvps profile link"),
        "{}",
        err.message
    );
    let err = c
        .add_from_link("httvps://add?v=9&p=e30".into(), None, false)
        .await
        .unwrap_err();
    assert!(err.message.contains("update the app"), "{}", err.message);
    let err = c.share_link("nobody".into(), false).await.unwrap_err();
    assert_eq!(err.code, CommandCode::NotFound);
}
