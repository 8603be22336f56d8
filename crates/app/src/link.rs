//! Share links: a whole profile in one `httvps://` URL (and its QR code),
//! with its secret only when the sharer asks. docs/links.md is the format's
//! description for people; this module is its one implementation.
//!
//! ```text
//! httvps://add?v=1&p=<base64url(profile JSON)>[&s=<base64url(secret)>]
//! ```
//!
//! The profile travels as the same JSON the settings file holds (`protocol`
//! first, then that protocol's fields), so every field a profile gains (the
//! routing rules, say) travels without this module knowing it, and a link is
//! checked by the very code that checks a profile file: unknown fields are
//! refused, and an invalid profile gives the file's error. The price is a
//! link nobody can edit by hand; the QR code and "Add from clipboard" are
//! how people use it. Fields at their default value are left out, which
//! keeps a typical link near 150 characters (a small QR code).
//!
//! What describes only the sharer's computer stays out: a CA *file* (a path
//! here means nothing there: share a pin instead) and a proxy or DNS address
//! open to the network (a link must not open one on the receiver's computer).
//! Such a link is refused when read.

use std::fmt;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use net::Secret;
use profiles::{ProfileError, StoredProfile};
use serde_json::Value;

use crate::profile::Profile;

/// The link's scheme and "host": what the OS hands to the app.
pub const PREFIX: &str = "httvps://add?";

/// The format version this build writes and the only one it reads.
pub const VERSION: u32 = 1;

/// The longest link read or written, in bytes. A QR code holds at most
/// 2,953 bytes and phones read one of 2 KB only with care; a profile that
/// needs more is not meant to travel by link (a typical one is ~150).
pub const MAX_LINK_LEN: usize = 2048;

/// The longest secret a link carries (the sign-in form's limit).
const MAX_SECRET_LEN: usize = 4096;

/// Fields naming a file on the sharer's computer: never in a link.
const LOCAL_FILE_FIELDS: &[&str] = &["ca_file"];

/// A link could not be made or read. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The text is not an `httvps://add?…` link (another scheme, a web
    /// address, an empty clipboard).
    #[error("this is not an httvps profile link (it should start with {PREFIX})")]
    NotALink,
    /// Longer than [`MAX_LINK_LEN`]: refused before anything is decoded.
    #[error("the link is {len} characters long; links are at most {MAX_LINK_LEN}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// No `v=` parameter.
    #[error("the link has no version (v=); it may be cut short")]
    NoVersion,
    /// A version this build does not read (a newer app made it).
    #[error("the link is of version {0}; this app reads version {VERSION}: update the app")]
    UnsupportedVersion(String),
    /// A parameter this version does not define, or one given twice.
    /// Refused rather than ignored: a new parameter comes with a new
    /// version, so an unknown one means a damaged or forged link.
    #[error("the link has an unknown or repeated parameter {0:?}")]
    UnknownParameter(String),
    /// No `p=` parameter.
    #[error("the link carries no profile (p=); it may be cut short")]
    NoProfile,
    /// A parameter is not base64url of UTF-8 text (damaged or cut short).
    #[error("the link's {0} is damaged (not base64url text); copy the whole link again")]
    Damaged(&'static str),
    /// The profile is not a profile table: the settings file's error.
    #[error("the link's profile cannot be read: {0}")]
    BadProfile(String),
    /// The profile's fields do not make sense together (as in a file).
    #[error(transparent)]
    Invalid(#[from] ProfileError),
    /// The profile names a file on the sharer's computer.
    #[error("a link cannot carry {0:?} (a file on the sharer's computer); use a certificate pin")]
    LocalFile(String),
    /// The profile would open a proxy or DNS server to the network.
    #[error(
        "the link would open a server on {0} to the network; links may only use 127.0.0.1 or ::1"
    )]
    OpenAddress(SocketAddr),
    /// The secret is empty, too long, has control characters, or is not
    /// the kind the profile needs (an HT key is 64 hex characters).
    #[error("the link's secret is not usable: {0}")]
    BadSecret(&'static str),
    /// Making a link: the profile is too large even without defaults.
    #[error("this profile makes a link of {len} characters; links are at most {MAX_LINK_LEN}")]
    ProfileTooLarge {
        /// The link's length.
        len: usize,
    },
}

/// A link ready to show. `Debug` never prints one that carries a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareLink {
    text: String,
    contains_secret: bool,
    left_out: Vec<String>,
}

impl fmt::Debug for ShareLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.contains_secret {
            "<redacted: carries a secret>"
        } else {
            &self.text
        };
        f.debug_struct("ShareLink")
            .field("text", &text)
            .field("left_out", &self.left_out)
            .finish()
    }
}

impl ShareLink {
    /// The link for `profile`, with `secret` (the profile's
    /// [`Profile::token_kind`] secret) only when given.
    pub fn create(profile: &Profile, secret: Option<&Secret>) -> Result<ShareLink, LinkError> {
        let mut left_out = Vec::new();
        let mut table = match serde_json::to_value(profile) {
            Ok(Value::Object(table)) => table,
            _ => return Err(LinkError::BadProfile("not a table".into())),
        };
        for field in LOCAL_FILE_FIELDS {
            if table.remove(*field).is_some() {
                left_out.push((*field).to_owned());
            }
        }
        for (field, addr) in [
            ("listen", profile.listen()),
            ("dns_listen", profile.dns_listen()),
        ] {
            if addr.is_some_and(|a| !a.ip().is_loopback()) && table.remove(field).is_some() {
                left_out.push(field.to_owned());
            }
        }
        let target = read_profile(Value::Object(table.clone()))?;
        // Leave out every field whose absence reads back as the same
        // profile: its default. Generic, so it needs no list of defaults.
        let fields: Vec<String> = table.keys().cloned().collect();
        for field in fields {
            if field == "protocol" || field == "name" {
                continue;
            }
            let mut without = table.clone();
            let value = without.remove(&field);
            if read_profile(Value::Object(without.clone())).is_ok_and(|p| p == target) {
                table = without;
            } else if let Some(value) = value {
                table.insert(field, value);
            }
        }
        let json = serde_json::to_string(&Value::Object(table))
            .map_err(|e| LinkError::BadProfile(e.to_string()))?;
        let mut text = format!("{PREFIX}v={VERSION}&p={}", B64.encode(json));
        if let Some(secret) = secret {
            text.push_str("&s=");
            text.push_str(&B64.encode(secret.expose()));
        }
        if text.len() > MAX_LINK_LEN {
            return Err(LinkError::ProfileTooLarge { len: text.len() });
        }
        Ok(ShareLink {
            text,
            contains_secret: secret.is_some(),
            left_out,
        })
    }

    /// The link. Show it only where the user asked for it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it carries the secret: such a link is a password and the UI
    /// says so.
    pub fn contains_secret(&self) -> bool {
        self.contains_secret
    }

    /// The profile's fields that stayed out (see the module doc).
    pub fn left_out(&self) -> &[String] {
        &self.left_out
    }

    /// The link as an SVG QR code (error correction M: still readable with
    /// 15 % of it damaged or glared).
    pub fn qr_svg(&self) -> String {
        use qrcode::render::svg;
        match qrcode::QrCode::with_error_correction_level(&self.text, qrcode::EcLevel::M) {
            Ok(code) => code
                .render::<svg::Color>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build(),
            // Unreachable for a link within MAX_LINK_LEN (level M holds
            // 2,331 bytes); an empty image rather than a panic.
            Err(_) => String::new(),
        }
    }

    /// The QR code in text (half-block characters, two rows of modules per
    /// line), for a terminal with a dark background: light modules are drawn
    /// as blocks, so that the code shows dark on light as scanners expect.
    pub fn qr_text(&self) -> String {
        use qrcode::render::unicode::Dense1x2;
        match qrcode::QrCode::with_error_correction_level(&self.text, qrcode::EcLevel::M) {
            Ok(code) => code
                .render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build(),
            Err(_) => String::new(),
        }
    }
}

/// What a link holds.
#[derive(Clone, PartialEq)]
pub struct LinkContents {
    /// The profile, validated as a profile file's would be.
    pub profile: Profile,
    /// Its secret, when the sharer included it.
    pub secret: Option<Secret>,
}

impl fmt::Debug for LinkContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkContents")
            .field("profile", &self.profile)
            .field("secret", &self.secret)
            .finish()
    }
}

impl LinkContents {
    /// Reads a link (surrounding whitespace allowed: clipboards add it).
    pub fn parse(link: &str) -> Result<LinkContents, LinkError> {
        let link = link.trim();
        if link.len() > MAX_LINK_LEN {
            return Err(LinkError::TooLong { len: link.len() });
        }
        let query = match link.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &link[PREFIX.len()..],
            _ => return Err(LinkError::NotALink),
        };
        let (mut version, mut profile, mut secret) = (None, None, None);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "v" => &mut version,
                "p" => &mut profile,
                "s" => &mut secret,
                _ => return Err(LinkError::UnknownParameter(key.to_owned())),
            };
            if slot.replace(value).is_some() {
                return Err(LinkError::UnknownParameter(key.to_owned()));
            }
        }
        match version {
            None => return Err(LinkError::NoVersion),
            Some(v) if v != VERSION.to_string() => {
                return Err(LinkError::UnsupportedVersion(v.chars().take(16).collect()));
            }
            Some(_) => {}
        }
        let json = decode_text(profile.ok_or(LinkError::NoProfile)?, "profile")?;
        let table: Value =
            serde_json::from_str(&json).map_err(|e| LinkError::BadProfile(e.to_string()))?;
        if let Some(field) = LOCAL_FILE_FIELDS.iter().find(|f| table.get(**f).is_some()) {
            return Err(LinkError::LocalFile((*field).to_owned()));
        }
        let profile = read_profile(table)?;
        profile.validate()?;
        for addr in [profile.listen(), profile.dns_listen()]
            .into_iter()
            .flatten()
        {
            if !addr.ip().is_loopback() {
                return Err(LinkError::OpenAddress(addr));
            }
        }
        let secret = match secret {
            None => None,
            Some(text) => Some(check_secret(&profile, decode_text(text, "secret")?)?),
        };
        Ok(LinkContents { profile, secret })
    }

    /// The same contents under another name (a name clash, or the user's
    /// choice), checked as a new profile would be.
    pub fn renamed(self, name: &str) -> Result<LinkContents, LinkError> {
        let mut table = serde_json::to_value(&self.profile)
            .map_err(|e| LinkError::BadProfile(e.to_string()))?;
        table["name"] = Value::String(name.trim().to_owned());
        let profile = read_profile(table)?;
        profile.validate()?;
        Ok(LinkContents { profile, ..self })
    }
}

/// A profile from its JSON table, with the settings file's errors.
fn read_profile(table: Value) -> Result<Profile, LinkError> {
    serde_json::from_value(table).map_err(|e| LinkError::BadProfile(e.to_string()))
}

fn decode_text(value: &str, what: &'static str) -> Result<String, LinkError> {
    let bytes = B64.decode(value).map_err(|_| LinkError::Damaged(what))?;
    String::from_utf8(bytes).map_err(|_| LinkError::Damaged(what))
}

/// The checks sign-in makes on a typed token, plus the key's shape for HT.
fn check_secret(profile: &Profile, text: String) -> Result<Secret, LinkError> {
    if text.trim().is_empty() || text.trim() != text {
        return Err(LinkError::BadSecret(
            "it is empty or has surrounding spaces",
        ));
    }
    if text.len() > MAX_SECRET_LEN || text.chars().any(char::is_control) {
        return Err(LinkError::BadSecret(
            "a secret is at most 4096 printable characters",
        ));
    }
    if profile.token_kind()? == ht_client::HT_KEY && ht_client::Key::from_hex(&text).is_err() {
        return Err(LinkError::BadSecret(
            "an HT key is 64 hexadecimal characters (32 bytes)",
        ));
    }
    Ok(Secret::new(text))
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
