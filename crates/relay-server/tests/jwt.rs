//! Token verification: the claims checks on HS256, and for each public-key
//! type a good token plus the algorithm confusions it must refuse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use relay_server::jwt::{InvalidReason, KeyError, RejectReason, TokenError, TokenVerifier};
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-relay";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, claims, &hmac_key(SECRET))
}

fn sign(alg: Algorithm, claims: &Value, key: &EncodingKey) -> String {
    encode(&Header::new(alg), claims, key).unwrap()
}

fn hmac_key(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).unwrap()
}

fn good_claims() -> Value {
    json!({"sub": "alice", "exp": now() + 600, "iat": now(), "jti": "t-1"})
}

fn verifier() -> TokenVerifier {
    TokenVerifier::from_secret(SECRET).unwrap()
}

fn invalid(reason: InvalidReason) -> Result<relay_server::jwt::Claims, TokenError> {
    Err(TokenError::Invalid { reason })
}

fn rejected(reason: RejectReason) -> Result<relay_server::jwt::Claims, TokenError> {
    Err(TokenError::Rejected { reason })
}

/// A token with `header` as given and no valid signature.
fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", part(header), part(claims))
}

#[test]
fn hs256_good_token() {
    let claims = verifier().verify(&hs256(&good_claims())).unwrap();
    assert_eq!(claims.sub, "alice");
    assert!(claims.exp > now());
    assert_eq!(claims.jti.as_deref(), Some("t-1"));
    assert_eq!(verifier().algorithm(), Algorithm::HS256);
}

#[test]
fn hs256_expired() {
    let token = hs256(&json!({"sub": "alice", "exp": now() - 100}));
    let err = verifier().verify(&token).unwrap_err();
    assert_eq!(err, TokenError::Expired);
    assert_eq!(err.reason(), "expired");
}

#[test]
fn leeway_is_configurable() {
    let token = hs256(&json!({"sub": "alice", "exp": now() - 2}));
    assert!(verifier().verify(&token).is_ok(), "inside the default 5 s");
    let strict = verifier().with_leeway(Duration::ZERO);
    assert_eq!(strict.verify(&token), Err(TokenError::Expired));
    let lax = verifier().with_leeway(Duration::from_secs(300));
    assert!(
        lax.verify(&hs256(&json!({"sub": "alice", "exp": now() - 200})))
            .is_ok()
    );
}

#[test]
fn hs256_bad_signature() {
    let other = hmac_key(b"another-secret-another-secret-another");
    let token = sign(Algorithm::HS256, &good_claims(), &other);
    let err = verifier().verify(&token).unwrap_err();
    assert_eq!(
        err,
        TokenError::Invalid {
            reason: InvalidReason::BadSignature
        }
    );
    assert_eq!(err.reason(), "bad_signature");

    // A signed token whose payload was swapped for another owner's.
    let token = hs256(&good_claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(json!({"sub": "mallory", "exp": now() + 600}).to_string());
    parts[1] = &forged;
    assert_eq!(
        verifier().verify(&parts.join(".")),
        invalid(InvalidReason::BadSignature)
    );
}

#[test]
fn expiry_is_not_reported_for_a_forged_token() {
    let other = hmac_key(b"another-secret-another-secret-another");
    let token = sign(
        Algorithm::HS256,
        &json!({"sub": "alice", "exp": now() - 100}),
        &other,
    );
    assert_eq!(
        verifier().verify(&token),
        invalid(InvalidReason::BadSignature)
    );
}

#[test]
fn audience_is_checked_when_configured() {
    let v = verifier().with_audience("relay");
    let with_aud = |aud: Value| hs256(&json!({"sub": "alice", "exp": now() + 60, "aud": aud}));
    assert!(v.verify(&with_aud(json!("relay"))).is_ok());
    assert!(v.verify(&with_aud(json!(["other", "relay"]))).is_ok());
    let err = v.verify(&with_aud(json!("other"))).unwrap_err();
    assert_eq!(
        err,
        TokenError::Rejected {
            reason: RejectReason::WrongAudience
        }
    );
    assert_eq!(err.reason(), "wrong_audience");
    assert_eq!(
        v.verify(&hs256(&good_claims())),
        rejected(RejectReason::MissingAudience)
    );
    // Not configured: any audience passes.
    assert!(verifier().verify(&with_aud(json!("other"))).is_ok());
}

#[test]
fn issuer_is_checked_when_configured() {
    let v = verifier().with_issuer("https://auth.example");
    let with_iss = |iss: &str| hs256(&json!({"sub": "alice", "exp": now() + 60, "iss": iss}));
    let claims = v.verify(&with_iss("https://auth.example")).unwrap();
    assert_eq!(claims.iss.as_deref(), Some("https://auth.example"));
    let err = v.verify(&with_iss("https://evil.example")).unwrap_err();
    assert_eq!(
        err,
        TokenError::Rejected {
            reason: RejectReason::WrongIssuer
        }
    );
    assert_eq!(err.reason(), "wrong_issuer");
    assert_eq!(
        v.verify(&hs256(&good_claims())),
        rejected(RejectReason::MissingIssuer)
    );
}

#[test]
fn not_before_in_the_future_is_rejected() {
    let token = hs256(&json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 120}));
    let err = verifier().verify(&token).unwrap_err();
    assert_eq!(
        err,
        TokenError::Rejected {
            reason: RejectReason::NotYetValid
        }
    );
    assert_eq!(err.reason(), "not_yet_valid");
    let soon = hs256(&json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 2}));
    assert!(verifier().verify(&soon).is_ok(), "inside the leeway");
}

#[test]
fn sub_and_exp_are_required() {
    let v = verifier();
    assert_eq!(
        v.verify(&hs256(&json!({"exp": now() + 60}))),
        invalid(InvalidReason::MissingSub)
    );
    let empty = hs256(&json!({"sub": "", "exp": now() + 60}));
    assert_eq!(v.verify(&empty), invalid(InvalidReason::MissingSub));
    assert_eq!(
        v.verify(&hs256(&json!({"sub": "alice"}))),
        invalid(InvalidReason::MissingExp)
    );
    let number = hs256(&json!({"sub": 42, "exp": now() + 60}));
    assert_eq!(v.verify(&number), invalid(InvalidReason::Malformed));
    assert_eq!(
        TokenError::Invalid {
            reason: InvalidReason::MissingSub
        }
        .reason(),
        "missing_sub"
    );
}

#[test]
fn malformed_tokens() {
    let v = verifier();
    for token in ["", "abc", "a.b", "a.b.c", "!!!.e30.e30", "e30.e30.e30"] {
        assert_eq!(
            v.verify(token),
            invalid(InvalidReason::Malformed),
            "{token:?}"
        );
    }
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let big = hs256(&json!({"sub": "alice", "exp": now() + 60, "pad": "x".repeat(9000)}));
    let err = verifier().verify(&big).unwrap_err();
    assert_eq!(
        err,
        TokenError::Invalid {
            reason: InvalidReason::TooLong
        }
    );
    assert_eq!(err.reason(), "too_long");
    assert_eq!(
        verifier().verify(&"x".repeat(8 * 1024 + 1)),
        invalid(InvalidReason::TooLong)
    );
    assert!(
        verifier()
            .with_max_token_len(16 * 1024)
            .verify(&big)
            .is_ok()
    );
    let small = hs256(&good_claims());
    assert_eq!(
        verifier()
            .with_max_token_len(small.len() - 1)
            .verify(&small),
        invalid(InvalidReason::TooLong)
    );
}

#[test]
fn another_hmac_algorithm_is_refused() {
    let token = sign(Algorithm::HS384, &good_claims(), &hmac_key(SECRET));
    let err = verifier().verify(&token).unwrap_err();
    assert_eq!(
        err,
        TokenError::Invalid {
            reason: InvalidReason::WrongAlgorithm
        }
    );
    assert_eq!(err.reason(), "wrong_algorithm");
}

#[test]
fn none_is_refused() {
    for alg in ["none", "None", "NONE", ""] {
        let token = unsigned(&json!({"alg": alg, "typ": "JWT"}), &good_claims(), "");
        assert_eq!(
            verifier().verify(&token),
            invalid(InvalidReason::WrongAlgorithm),
            "{alg}"
        );
    }
}

#[test]
fn critical_extensions_are_refused() {
    let mut header = Header::new(Algorithm::HS256);
    header.extras.insert("crit", json!(["exp-ext"]));
    header.extras.insert("exp-ext", json!(true));
    let token = encode(&header, &good_claims(), &hmac_key(SECRET)).unwrap();
    assert_eq!(
        verifier().verify(&token),
        invalid(InvalidReason::UnsupportedCritical)
    );
}

#[test]
fn secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let mut text = SECRET.to_vec();
    text.extend_from_slice(b"\r\n");
    std::fs::write(&path, &text).unwrap();
    let v = TokenVerifier::from_secret_file(&path).unwrap();
    assert!(
        v.verify(&hs256(&good_claims())).is_ok(),
        "the newline is not part of the secret"
    );

    std::fs::write(&path, b"\n").unwrap();
    assert!(matches!(
        TokenVerifier::from_secret_file(&path),
        Err(KeyError::EmptySecret)
    ));
    std::fs::write(&path, b"short-secret\n").unwrap();
    assert!(matches!(
        TokenVerifier::from_secret_file(&path),
        Err(KeyError::SecretTooShort { len: 12, min: 32 })
    ));
    assert!(matches!(
        TokenVerifier::from_secret_file(dir.path().join("missing")),
        Err(KeyError::Read { .. })
    ));
}

#[test]
fn debug_never_shows_the_secret() {
    let shown = format!("{:?}", verifier());
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert!(shown.contains("HS256"), "{shown}");
}

/// A key pair: the public PEM for the verifier, the signing key for
/// tokens.
struct Pair {
    public_pem: String,
    signing: EncodingKey,
    jwt: Algorithm,
}

fn pair(alg: &'static rcgen::SignatureAlgorithm, jwt: Algorithm) -> Pair {
    let kp = rcgen::KeyPair::generate_for(alg).unwrap();
    let private = kp.serialize_pem();
    let signing = match jwt {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(private.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private.as_bytes()),
        other => panic!("no test key for {other:?}"),
    }
    .unwrap();
    Pair {
        public_pem: kp.public_key_pem(),
        signing,
        jwt,
    }
}

/// For one key type: a good token passes with the pinned algorithm; a
/// token signed by another key of the same type fails; `none`, HS256 keyed
/// with the public key's PEM, and a token of another key type are refused
/// as the wrong algorithm.
fn public_key_case(alg: &'static rcgen::SignatureAlgorithm, jwt: Algorithm, other: Pair) {
    let ours = pair(alg, jwt);
    let v = TokenVerifier::from_public_key_pem(ours.public_pem.as_bytes()).unwrap();
    assert_eq!(v.algorithm(), jwt);

    let claims = v.verify(&sign(jwt, &good_claims(), &ours.signing)).unwrap();
    assert_eq!(claims.sub, "alice");
    let expired = sign(
        jwt,
        &json!({"sub": "alice", "exp": now() - 100}),
        &ours.signing,
    );
    assert_eq!(v.verify(&expired), Err(TokenError::Expired));

    let stranger = pair(alg, jwt);
    let forged = sign(jwt, &good_claims(), &stranger.signing);
    assert_eq!(v.verify(&forged), invalid(InvalidReason::BadSignature));

    // The classic confusion: HMAC keyed with the (public) key text.
    for secret in [
        ours.public_pem.as_bytes().to_vec(),
        ours.public_pem.trim().as_bytes().to_vec(),
    ] {
        let confused = sign(Algorithm::HS256, &good_claims(), &hmac_key(&secret));
        assert_eq!(v.verify(&confused), invalid(InvalidReason::WrongAlgorithm));
    }
    let none = unsigned(&json!({"alg": "none"}), &good_claims(), "");
    assert_eq!(v.verify(&none), invalid(InvalidReason::WrongAlgorithm));
    let other_alg = sign(other.jwt, &good_claims(), &other.signing);
    assert_eq!(v.verify(&other_alg), invalid(InvalidReason::WrongAlgorithm));
}

#[test]
fn rs256_key() {
    let other = pair(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256);
    public_key_case(&rcgen::PKCS_RSA_SHA256, Algorithm::RS256, other);
}

#[test]
fn es256_key() {
    let other = pair(&rcgen::PKCS_ED25519, Algorithm::EdDSA);
    public_key_case(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256, other);
}

#[test]
fn eddsa_key() {
    let other = pair(&rcgen::PKCS_RSA_SHA256, Algorithm::RS256);
    public_key_case(&rcgen::PKCS_ED25519, Algorithm::EdDSA, other);
}

#[test]
fn rs256_pkcs1_public_key() {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    // For RSA the raw public key is the PKCS#1 RSAPublicKey.
    let pem = pem("RSA PUBLIC KEY", kp.public_key_raw());
    let v = TokenVerifier::from_public_key_pem(pem.as_bytes()).unwrap();
    assert_eq!(v.algorithm(), Algorithm::RS256);
    let signing = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap();
    assert!(
        v.verify(&sign(Algorithm::RS256, &good_claims(), &signing))
            .is_ok()
    );
    let rs384 = sign(Algorithm::RS384, &good_claims(), &signing);
    assert_eq!(v.verify(&rs384), invalid(InvalidReason::WrongAlgorithm));
    let ps256 = sign(Algorithm::PS256, &good_claims(), &signing);
    assert_eq!(v.verify(&ps256), invalid(InvalidReason::WrongAlgorithm));
}

#[test]
fn unusable_public_keys() {
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    assert!(matches!(
        TokenVerifier::from_public_key_pem(p384.public_key_pem().as_bytes()),
        Err(KeyError::UnsupportedCurve { .. })
    ));
    let private = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem();
    assert!(matches!(
        TokenVerifier::from_public_key_pem(private.as_bytes()),
        Err(KeyError::NotPublicKey { label }) if label == "PRIVATE KEY"
    ));
    assert!(matches!(
        TokenVerifier::from_public_key_pem(b"not a key"),
        Err(KeyError::NotPem)
    ));
    let garbage = pem("PUBLIC KEY", b"\x30\x03\x02\x01\x00");
    assert!(matches!(
        TokenVerifier::from_public_key_pem(garbage.as_bytes()),
        Err(KeyError::Malformed)
    ));
    // An RSA-1024 SubjectPublicKeyInfo: too small.
    let mut modulus = vec![0x00, 0xc0];
    modulus.extend(std::iter::repeat_n(0x55, 127));
    let rsa = der(
        0x30,
        &[der(0x02, &modulus), der(0x02, &[0x01, 0x00, 0x01])].concat(),
    );
    let algorithm = der(
        0x30,
        &[
            der(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
            ),
            der(0x05, &[]),
        ]
        .concat(),
    );
    let spki = der(
        0x30,
        &[algorithm, der(0x03, &[&[0u8][..], &rsa].concat())].concat(),
    );
    assert!(matches!(
        TokenVerifier::from_public_key_pem(pem("PUBLIC KEY", &spki).as_bytes()),
        Err(KeyError::RsaTooSmall {
            bits: 1024,
            min: 2048
        })
    ));
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A DER element (definite length, short or long form).
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}
