//! JWT verification for `auth` (CONTRACTS.md §5): signature, `exp`, `nbf`,
//! and `iss`/`aud` when configured; `sub` names the owner of the tunnels.
//!
//! The algorithm is pinned by the key the operator configured, never taken
//! from the token: a shared secret means HS256, an RSA public key RS256, an
//! EC P-256 key ES256, an Ed25519 key EdDSA. A token whose header names
//! anything else is refused before any cryptography runs, which closes the
//! classic confusions (`"alg":"none"`, or HS256 keyed with the text of the
//! RSA public key). `jsonwebtoken` checks the header against the same single
//! algorithm again; the early check is ours so the refusal has a precise
//! reason and does not depend on that library's defaults.
//!
//! Every failure maps to one of three kinds, which the control channel turns
//! into the seed's codes: [`TokenError::Expired`] (TOKEN_EXPIRED 1003),
//! [`TokenError::Invalid`] (INVALID_TOKEN 1002) and
//! [`TokenError::Rejected`] (AUTH_FAILED 1001). `exp` is only reported for a
//! token whose signature held, so a forger learns nothing from it.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Clock skew tolerated on `exp` and `nbf` unless configured otherwise:
/// enough for servers kept by NTP, short enough that an expired token does
/// not linger.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// Tokens longer than this are refused before they are parsed. A JWT with
/// an RSA-4096 signature and a generous claim set stays under 2 KiB; the
/// cap keeps base64 and JSON work on hostile input small.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The shortest HS256 secret accepted: RFC 7518 §3.2 requires a key at least
/// as long as the hash output (256 bits).
pub const MIN_SECRET_LEN: usize = 32;

/// The smallest RSA modulus accepted, in bits (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// Why a verification key could not be loaded. These are start-up errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret or key file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The secret file holds nothing (a trailing newline does not count).
    #[error("the JWT secret is empty")]
    EmptySecret,
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    #[error("the JWT secret is {len} bytes long; HS256 needs at least {min}")]
    SecretTooShort {
        /// Its length in bytes.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// No PEM block was found.
    #[error("no PEM block found in the public key")]
    NotPem,
    /// The PEM block is not a public key (a private key or a certificate,
    /// say).
    #[error("PEM block {label:?} is not a public key (expected PUBLIC KEY or RSA PUBLIC KEY)")]
    NotPublicKey {
        /// The block's label.
        label: String,
    },
    /// The key's DER does not parse.
    #[error("the public key is malformed")]
    Malformed,
    /// The key is neither RSA, EC nor Ed25519.
    #[error("unsupported public key algorithm {oid}: expected RSA, EC P-256 or Ed25519")]
    UnsupportedKey {
        /// The key algorithm's OID.
        oid: String,
    },
    /// An EC key on a curve other than P-256.
    #[error("unsupported EC curve {curve}: only P-256 (ES256) is accepted")]
    UnsupportedCurve {
        /// The curve's OID, or "none" when the key names none.
        curve: String,
    },
    /// An RSA key below [`MIN_RSA_BITS`].
    #[error("the RSA key has {bits} bits; at least {min} are required")]
    RsaTooSmall {
        /// Its modulus length.
        bits: usize,
        /// The minimum.
        min: usize,
    },
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Correctly signed, but `exp` (plus the leeway) has passed.
    #[error("the token has expired")]
    Expired,
    /// Not a token we can trust: too long, malformed, wrong algorithm, bad
    /// signature, or a required claim (`sub`, `exp`) missing.
    #[error("invalid token: {}", reason.as_str())]
    Invalid {
        /// What was wrong.
        reason: InvalidReason,
    },
    /// Correctly signed, but not for us or not yet: wrong or missing
    /// audience or issuer, `nbf` in the future.
    #[error("token rejected: {}", reason.as_str())]
    Rejected {
        /// What was wrong.
        reason: RejectReason,
    },
}

impl TokenError {
    /// A stable short label for the error's `details.reason`, logs and
    /// metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Expired => "expired",
            TokenError::Invalid { reason } => reason.as_str(),
            TokenError::Rejected { reason } => reason.as_str(),
        }
    }

    fn invalid(reason: InvalidReason) -> TokenError {
        TokenError::Invalid { reason }
    }

    fn rejected(reason: RejectReason) -> TokenError {
        TokenError::Rejected { reason }
    }
}

/// Why a token is [`TokenError::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidReason {
    /// Longer than the configured cap.
    TooLong,
    /// Not three base64url parts of JSON, or a claim of the wrong type.
    Malformed,
    /// The header names an algorithm other than the pinned one (`none`
    /// included).
    WrongAlgorithm,
    /// The header marks an extension critical (`crit`); we understand none
    /// (RFC 7515 §4.1.11).
    UnsupportedCritical,
    /// The signature does not verify with the configured key.
    BadSignature,
    /// `sub` is absent or empty.
    MissingSub,
    /// `exp` is absent: tokens that never expire are not accepted.
    MissingExp,
}

impl InvalidReason {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::TooLong => "too_long",
            InvalidReason::Malformed => "malformed",
            InvalidReason::WrongAlgorithm => "wrong_algorithm",
            InvalidReason::UnsupportedCritical => "unsupported_critical",
            InvalidReason::BadSignature => "bad_signature",
            InvalidReason::MissingSub => "missing_sub",
            InvalidReason::MissingExp => "missing_exp",
        }
    }
}

/// Why a token is [`TokenError::Rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// `aud` does not name the configured audience.
    WrongAudience,
    /// An audience is configured and the token has no `aud`.
    MissingAudience,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// An issuer is configured and the token has no `iss`.
    MissingIssuer,
    /// `nbf` (minus the leeway) is still in the future.
    NotYetValid,
}

impl RejectReason {
    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::WrongAudience => "wrong_audience",
            RejectReason::MissingAudience => "missing_audience",
            RejectReason::WrongIssuer => "wrong_issuer",
            RejectReason::MissingIssuer => "missing_issuer",
            RejectReason::NotYetValid => "not_yet_valid",
        }
    }
}

/// The claims the relay uses, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The subject: owner of the tunnels registered on this connection.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not-before, seconds since the Unix epoch, when present.
    pub nbf: Option<u64>,
    /// Issued-at, seconds since the Unix epoch, when present.
    pub iat: Option<u64>,
    /// The issuer, when present.
    pub iss: Option<String>,
    /// The token's id, when present.
    pub jti: Option<String>,
}

/// The claims as they may arrive: everything optional, so a missing `sub`
/// or `exp` is reported as such (by `jsonwebtoken`'s required-claim check)
/// rather than as malformed JSON.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    jti: Option<String>,
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional, as
/// `jsonwebtoken`'s own `exp` check reads them.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(u64),
        Float(f64),
    }
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(Num::Int(n)) => Ok(Some(n)),
        Some(Num::Float(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
            Ok(Some(f as u64))
        }
        Some(Num::Float(_)) => Err(serde::de::Error::custom("NumericDate out of range")),
    }
}

/// The header fields we look at before verifying.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Verifies `auth` tokens with one key and one algorithm.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    algorithm: Algorithm,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    max_token_len: usize,
    validation: Validation,
}

/// Shows the pinned algorithm and options; never the key.
impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("max_token_len", &self.max_token_len)
            .finish()
    }
}

impl TokenVerifier {
    /// HS256 with the shared secret in `path`. One trailing newline (`\n`
    /// or `\r\n`) is not part of the secret, so `echo secret > file` works.
    pub fn from_secret_file(path: impl AsRef<Path>) -> Result<TokenVerifier, KeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let secret = bytes
            .strip_suffix(b"\n")
            .map(|s| s.strip_suffix(b"\r").unwrap_or(s))
            .unwrap_or(&bytes);
        TokenVerifier::from_secret(secret)
    }

    /// HS256 with `secret`, which must be at least [`MIN_SECRET_LEN`] bytes.
    pub fn from_secret(secret: &[u8]) -> Result<TokenVerifier, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort {
                len: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        Ok(TokenVerifier::new(
            DecodingKey::from_secret(secret).map_err(|_| KeyError::EmptySecret)?,
            Algorithm::HS256,
        ))
    }

    /// The public key in the first PEM block of `pem` (`PUBLIC KEY`, i.e.
    /// SubjectPublicKeyInfo, or PKCS#1 `RSA PUBLIC KEY`). Its type pins the
    /// algorithm: RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<TokenVerifier, KeyError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| KeyError::NotPem)?;
        let (key, algorithm) = match block.label.as_str() {
            "PUBLIC KEY" => spki_key(&block.contents)?,
            "RSA PUBLIC KEY" => {
                let (rest, rsa) =
                    RSAPublicKey::from_der(&block.contents).map_err(|_| KeyError::Malformed)?;
                if !rest.is_empty() {
                    return Err(KeyError::Malformed);
                }
                check_rsa_size(&rsa)?;
                (DecodingKey::from_rsa_der(&block.contents), Algorithm::RS256)
            }
            _ => return Err(KeyError::NotPublicKey { label: block.label }),
        };
        Ok(TokenVerifier::new(key, algorithm))
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> TokenVerifier {
        let mut verifier = TokenVerifier {
            key,
            algorithm,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            validation: Validation::new(algorithm),
        };
        verifier.rebuild_validation();
        verifier
    }

    /// Requires `iss` to be `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> TokenVerifier {
        self.issuer = Some(issuer.into());
        self.rebuild_validation();
        self
    }

    /// Requires `aud` to be, or to contain, `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> TokenVerifier {
        self.audience = Some(audience.into());
        self.rebuild_validation();
        self
    }

    /// The clock skew tolerated on `exp` and `nbf` (default
    /// [`DEFAULT_LEEWAY`]); whole seconds, as the claims are.
    pub fn with_leeway(mut self, leeway: Duration) -> TokenVerifier {
        self.leeway = leeway;
        self.rebuild_validation();
        self
    }

    /// The longest token accepted, in bytes (default
    /// [`DEFAULT_MAX_TOKEN_LEN`]).
    pub fn with_max_token_len(mut self, max: usize) -> TokenVerifier {
        self.max_token_len = max;
        self
    }

    /// The algorithm the key pinned.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn rebuild_validation(&mut self) {
        let mut v = Validation::new(self.algorithm);
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        // jsonwebtoken skips `iss`/`aud` when the token lacks them; a
        // configured one must be present, so it is also required.
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            // Unconfigured: any `aud` is fine (jsonwebtoken would refuse
            // every token that carries one).
            None => v.validate_aud = false,
        }
        v.required_spec_claims = required
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        self.validation = v;
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > self.max_token_len {
            return Err(TokenError::invalid(InvalidReason::TooLong));
        }
        self.check_header(token)?;
        let data = jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation)
            .map_err(|e| map_error(e.kind()))?;
        let raw = data.claims;
        // jsonwebtoken checked presence; an empty `sub` names no owner.
        let Some(sub) = raw.sub.filter(|s| !s.is_empty()) else {
            return Err(TokenError::invalid(InvalidReason::MissingSub));
        };
        let Some(exp) = raw.exp else {
            return Err(TokenError::invalid(InvalidReason::MissingExp));
        };
        Ok(Claims {
            sub,
            exp,
            nbf: raw.nbf,
            iat: raw.iat,
            iss: raw.iss,
            jti: raw.jti,
        })
    }

    /// The header must name exactly the pinned algorithm and mark nothing
    /// critical.
    fn check_header(&self, token: &str) -> Result<(), TokenError> {
        let malformed = || TokenError::invalid(InvalidReason::Malformed);
        let (header, _) = token.split_once('.').ok_or_else(malformed)?;
        let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
        let header: RawHeader = serde_json::from_slice(&json).map_err(|_| malformed())?;
        if Some(header.alg.as_str()) != algorithm_name(self.algorithm) {
            return Err(TokenError::invalid(InvalidReason::WrongAlgorithm));
        }
        if header.crit.is_some() {
            return Err(TokenError::invalid(InvalidReason::UnsupportedCritical));
        }
        Ok(())
    }
}

/// The JOSE name of the algorithms we pin (`None` for any other, which
/// then matches no header).
fn algorithm_name(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::HS256 => Some("HS256"),
        Algorithm::RS256 => Some("RS256"),
        Algorithm::ES256 => Some("ES256"),
        Algorithm::EdDSA => Some("EdDSA"),
        _ => None,
    }
}

fn map_error(kind: &ErrorKind) -> TokenError {
    use InvalidReason as I;
    use RejectReason as R;
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::rejected(R::NotYetValid),
        ErrorKind::InvalidAudience => TokenError::rejected(R::WrongAudience),
        ErrorKind::InvalidIssuer => TokenError::rejected(R::WrongIssuer),
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "aud" => TokenError::rejected(R::MissingAudience),
            "iss" => TokenError::rejected(R::MissingIssuer),
            "exp" => TokenError::invalid(I::MissingExp),
            _ => TokenError::invalid(I::MissingSub),
        },
        ErrorKind::InvalidSignature => TokenError::invalid(I::BadSignature),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenError::invalid(I::WrongAlgorithm),
        // The configured key could not verify (checked at load, so this
        // means the signature cannot be ours).
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Provider(_) => TokenError::invalid(I::BadSignature),
        _ => TokenError::invalid(I::Malformed),
    }
}

/// The key and algorithm of a SubjectPublicKeyInfo.
fn spki_key(der: &[u8]) -> Result<(DecodingKey, Algorithm), KeyError> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::Malformed)?;
    if !rest.is_empty() {
        return Err(KeyError::Malformed);
    }
    let oid = &spki.algorithm.algorithm;
    let bits: &[u8] = &spki.subject_public_key.data;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        let (_, rsa) = RSAPublicKey::from_der(bits).map_err(|_| KeyError::Malformed)?;
        check_rsa_size(&rsa)?;
        Ok((DecodingKey::from_rsa_der(bits), Algorithm::RS256))
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| x509_parser::asn1_rs::Oid::try_from(p).ok());
        match curve {
            Some(c) if c == OID_EC_P256 => {}
            Some(c) => {
                return Err(KeyError::UnsupportedCurve {
                    curve: c.to_id_string(),
                });
            }
            None => {
                return Err(KeyError::UnsupportedCurve {
                    curve: "none".into(),
                });
            }
        }
        // An uncompressed point: 0x04 || X || Y, 32 bytes each.
        if bits.len() != 65 || bits[0] != 0x04 {
            return Err(KeyError::Malformed);
        }
        Ok((DecodingKey::from_ec_der(bits), Algorithm::ES256))
    } else if *oid == OID_SIG_ED25519 {
        if bits.len() != 32 {
            return Err(KeyError::Malformed);
        }
        Ok((DecodingKey::from_ed_der(bits), Algorithm::EdDSA))
    } else {
        Err(KeyError::UnsupportedKey {
            oid: oid.to_id_string(),
        })
    }
}

fn check_rsa_size(rsa: &RSAPublicKey<'_>) -> Result<(), KeyError> {
    let modulus = rsa.modulus;
    let start = modulus
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(modulus.len());
    let significant = &modulus[start..];
    let bits = match significant.first() {
        Some(first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if bits < MIN_RSA_BITS {
        return Err(KeyError::RsaTooSmall {
            bits,
            min: MIN_RSA_BITS,
        });
    }
    Ok(())
}
