//! The TLS crypto provider for a client process that should connect as soon
//! as it starts.
//!
//! aws-lc seeds its random generator on first use from CPU jitter entropy:
//! 30–50 ms of CPU on the benchmark machine (`tree_jitter_initialize_once`,
//! `jent_*` in a `perf record` of a cold client, bench/README.md, issue 13).
//! A handshake needs random bytes before its first flight (the ClientHello's
//! random and the key share's private key), so a client started to connect
//! at once waited for that seeding on both transports, even with the
//! seeding started on a thread of its own at process start: the first
//! handshake begins a few milliseconds after the start, long before the
//! seeding ends.
//!
//! [`provider`] is aws-lc-rs's provider with those two random draws taken
//! from the operating system (`getrandom`), as ring and BoringSSL do: the
//! ClientHello's random and the X25519 private key. Everything else is
//! aws-lc's as before (the cipher suites, the signature checks, the other
//! key exchange groups, which draw from aws-lc's generator and seed it when
//! a server asks for one of them). On the client's path to its first byte
//! nothing then asks aws-lc for a random number, so the seeding never runs
//! there.

use std::sync::Arc;

use aws_lc_rs::agreement;
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::{Error, NamedGroup, PeerMisbehaved};

/// aws-lc-rs's provider with its random numbers and X25519 private keys
/// drawn from the operating system (see the module's documentation).
pub fn provider() -> CryptoProvider {
    let base = rustls::crypto::aws_lc_rs::default_provider();
    let kx_groups = base
        .kx_groups
        .iter()
        .map(|group| -> &'static dyn SupportedKxGroup {
            if group.name() == NamedGroup::X25519 {
                &OS_SEEDED_X25519
            } else {
                *group
            }
        })
        .collect();
    CryptoProvider {
        kx_groups,
        secure_random: &OsRandom,
        ..base
    }
}

/// Installs [`provider`] as the process's default, which every client TLS
/// configuration of this process then uses (`client_kit` keeps an installed
/// default). Call it at the start of `main`, before any TLS configuration is
/// built; it returns the default already installed otherwise.
pub fn install_default_provider() -> Result<(), Arc<CryptoProvider>> {
    provider().install_default()
}

/// Random bytes straight from the operating system.
#[derive(Debug)]
struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        getrandom::fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// X25519 with the private key from the operating system and the rest done
/// by aws-lc (the public key and the agreement need no random numbers).
#[derive(Debug)]
struct OsSeededX25519;

static OS_SEEDED_X25519: OsSeededX25519 = OsSeededX25519;

/// X25519's private and public key length.
const X25519_LEN: usize = 32;

impl SupportedKxGroup for OsSeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut secret = zeroize::Zeroizing::new([0u8; X25519_LEN]);
        getrandom::fill(secret.as_mut()).map_err(|_| GetRandomFailed)?;
        let private = agreement::PrivateKey::from_private_key(&agreement::X25519, secret.as_ref())
            .map_err(|_| GetRandomFailed)?;
        let public = private.compute_public_key().map_err(|_| GetRandomFailed)?;
        Ok(Box::new(X25519Exchange {
            private,
            public: public.as_ref().to_vec(),
        }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// One X25519 exchange in progress: our key pair.
struct X25519Exchange {
    private: agreement::PrivateKey,
    public: Vec<u8>,
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        // TLS 1.3 allows exactly the 32-byte encoding (RFC 8446, 4.2.8.2).
        if peer_pub_key.len() != X25519_LEN {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_pub_key);
        agreement::agree(
            &self.private,
            peer,
            Error::from(PeerMisbehaved::InvalidKeyShare),
            |secret| Ok(SharedSecret::from(secret)),
        )
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_groups_order_and_swaps_only_x25519() {
        let base = rustls::crypto::aws_lc_rs::default_provider();
        let ours = provider();
        let names = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&base));
        assert_eq!(ours.cipher_suites.len(), base.cipher_suites.len());
    }

    #[test]
    fn x25519_agrees_with_aws_lc() {
        let ours = OS_SEEDED_X25519.start().unwrap();
        let theirs = rustls::crypto::aws_lc_rs::kx_group::X25519.start().unwrap();
        assert_eq!(ours.pub_key().len(), X25519_LEN);
        let their_pub = theirs.pub_key().to_vec();
        let our_pub = ours.pub_key().to_vec();
        let a = ours.complete(&their_pub).unwrap();
        let b = theirs.complete(&our_pub).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
    }

    #[test]
    fn x25519_refuses_a_short_share() {
        let ours = OS_SEEDED_X25519.start().unwrap();
        assert!(ours.complete(&[9u8; 31]).is_err());
    }

    #[test]
    fn two_starts_give_two_keys() {
        let a = OS_SEEDED_X25519.start().unwrap();
        let b = OS_SEEDED_X25519.start().unwrap();
        assert_ne!(a.pub_key(), b.pub_key());
        let mut bytes = [0u8; 32];
        OsRandom.fill(&mut bytes).unwrap();
        assert_ne!(bytes, [0u8; 32]);
    }
}
