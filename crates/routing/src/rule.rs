//! The rule model as stored (TOML, JSON for the app) and its validation.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where a connection goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Action {
    /// Through the tunnel (the default).
    #[default]
    Tunnel,
    /// Straight from this machine, outside the tunnel.
    Direct,
    /// Refused: SOCKS5 "connection not allowed", HTTP 403.
    Block,
}

impl Action {
    /// The word used in files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Tunnel => "tunnel",
            Action::Direct => "direct",
            Action::Block => "block",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum RuleKind {
    /// The name exactly (case-insensitive, a trailing dot ignored).
    Domain,
    /// The name or any name below it: `example.com` matches `example.com`
    /// and `www.example.com`, not `badexample.com`.
    DomainSuffix,
    /// The name contains the value.
    DomainKeyword,
    /// An IP literal target inside a CIDR block (`10.0.0.0/8`, `fd00::/8`)
    /// or equal to one address. Never a domain target (see the crate doc).
    Ip,
    /// The target port, or an inclusive range `8000-8999`.
    Port,
    /// Loopback, private, link-local and the other special-purpose
    /// addresses servers refuse ([`net::policy::refused_range`]), and
    /// `localhost`. Takes no value.
    Private,
}

impl RuleKind {
    /// The word used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Domain => "domain",
            RuleKind::DomainSuffix => "domain-suffix",
            RuleKind::DomainKeyword => "domain-keyword",
            RuleKind::Ip => "ip",
            RuleKind::Port => "port",
            RuleKind::Private => "private",
        }
    }
}

/// One rule as the user wrote it: `{ match = "domain-suffix", value =
/// "corp.example", action = "direct" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Rule {
    /// What the rule looks at.
    #[serde(rename = "match")]
    pub kind: RuleKind,
    /// The domain, CIDR or port; empty for `private`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Where a matching connection goes.
    pub action: Action,
}

impl Rule {
    /// A rule.
    pub fn new(kind: RuleKind, value: impl Into<String>, action: Action) -> Rule {
        Rule {
            kind,
            value: value.into(),
            action,
        }
    }
}

impl fmt::Display for Rule {
    /// `domain-suffix corp.example → direct`: what the stream table shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{} → {}", self.kind.as_str(), self.action)
        } else {
            write!(f, "{} {} → {}", self.kind.as_str(), self.value, self.action)
        }
    }
}

/// A profile's routing: ordered rules, first match wins, else `default`.
///
/// In a profile it is the `routing` table; a `--rules` file holds the same
/// two keys at its top level. An absent table is "everything through the
/// tunnel", which is what every profile did before rules existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RuleSet {
    /// Where connections no rule matches go.
    #[serde(default)]
    pub default: Action,
    /// The rules, in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Whether this is the implicit "everything through the tunnel" (not
    /// written to files).
    pub fn is_default(&self) -> bool {
        self.default == Action::Tunnel && self.rules.is_empty()
    }
}

/// A rule that cannot be used. Each names the rule by its position (from
/// 1, as a person counts) and what it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A rule that needs a value has none.
    #[error("rule {index} ({rule}): {kind} needs a value")]
    EmptyValue {
        /// Position, from 1.
        index: usize,
        /// The rule as written.
        rule: String,
        /// Its kind.
        kind: &'static str,
    },
    /// `private` takes no value.
    #[error("rule {index} ({rule}): private takes no value")]
    UnexpectedValue {
        /// Position, from 1.
        index: usize,
        /// The rule as written.
        rule: String,
    },
    /// A domain value with characters a host name cannot have.
    #[error(
        "rule {index} ({rule}): {value:?} is not a domain name (letters, digits, '-', '_' and '.'; \
         international names in their xn-- form)"
    )]
    BadDomain {
        /// Position, from 1.
        index: usize,
        /// The rule as written.
        rule: String,
        /// The value.
        value: String,
    },
    /// An `ip` value that is not an address or a CIDR block.
    #[error("rule {index} ({rule}): {reason}")]
    BadCidr {
        /// Position, from 1.
        index: usize,
        /// The rule as written.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `port` value that is not a port or a range.
    #[error("rule {index} ({rule}): {reason}")]
    BadPort {
        /// Position, from 1.
        index: usize,
        /// The rule as written.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A validated rule's test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// Lower-case, no trailing dot.
    Domain(String),
    /// Lower-case, no leading `.`/`*.`, no trailing dot.
    Suffix(String),
    /// Lower-case.
    Keyword(String),
    /// A network: its first address and prefix length (host bits zero).
    Net(IpAddr, u8),
    /// Inclusive.
    Ports(u16, u16),
    Private,
}

impl Matcher {
    /// Validates rule number `index` (from 1).
    pub(crate) fn compile(index: usize, rule: &Rule) -> Result<Matcher, RuleError> {
        let value = rule.value.trim();
        let shown = || rule.to_string();
        if rule.kind == RuleKind::Private {
            if !value.is_empty() {
                return Err(RuleError::UnexpectedValue {
                    index,
                    rule: shown(),
                });
            }
            return Ok(Matcher::Private);
        }
        if value.is_empty() {
            return Err(RuleError::EmptyValue {
                index,
                rule: shown(),
                kind: rule.kind.as_str(),
            });
        }
        match rule.kind {
            RuleKind::Domain | RuleKind::DomainSuffix | RuleKind::DomainKeyword => {
                let mut name = value.to_ascii_lowercase();
                if rule.kind == RuleKind::DomainSuffix {
                    // `*.example.com` and `.example.com` are common spellings
                    // of the same suffix.
                    name = name
                        .strip_prefix("*.")
                        .or_else(|| name.strip_prefix('.'))
                        .unwrap_or(&name)
                        .to_owned();
                }
                if rule.kind != RuleKind::DomainKeyword {
                    name = name.strip_suffix('.').unwrap_or(&name).to_owned();
                }
                // The value also goes into the PAC file's JavaScript: this
                // character set keeps it a plain string literal.
                let ok = !name.is_empty()
                    && name.len() <= 253
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !ok {
                    return Err(RuleError::BadDomain {
                        index,
                        rule: shown(),
                        value: value.to_owned(),
                    });
                }
                Ok(match rule.kind {
                    RuleKind::Domain => Matcher::Domain(name),
                    RuleKind::DomainSuffix => Matcher::Suffix(name),
                    _ => Matcher::Keyword(name),
                })
            }
            RuleKind::Ip => parse_cidr(value)
                .map(|(ip, len)| Matcher::Net(ip, len))
                .map_err(|reason| RuleError::BadCidr {
                    index,
                    rule: shown(),
                    reason,
                }),
            RuleKind::Port => parse_ports(value)
                .map(|(lo, hi)| Matcher::Ports(lo, hi))
                .map_err(|reason| RuleError::BadPort {
                    index,
                    rule: shown(),
                    reason,
                }),
            RuleKind::Private => unreachable!("handled above"),
        }
    }
}

/// `10.0.0.0/8`, `fd00::/8`, or one address (a /32 or /128).
fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(len) => match len.parse::<u8>() {
            Ok(len) if len <= max => len,
            _ => return Err(format!("the prefix length must be 0 to {max}, not {len:?}")),
        },
    };
    let network = mask(ip, len);
    if network != ip {
        return Err(format!(
            "{text} has bits set after the prefix; did you mean {network}/{len}?"
        ));
    }
    Ok((ip, len))
}

/// `ip` with everything after the first `len` bits cleared.
pub(crate) fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// `443` or `8000-8999` (inclusive; 1 to 65535).
fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| match p.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{p:?} is not a port (1 to 65535)")),
    };
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!("the range {text} is empty (write {hi}-{lo})"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(kind: RuleKind, value: &str) -> Result<Matcher, RuleError> {
        Matcher::compile(3, &Rule::new(kind, value, Action::Direct))
    }

    #[test]
    fn values_are_normalised() {
        use Matcher::*;
        assert_eq!(
            compile(RuleKind::Domain, " Example.COM. ").unwrap(),
            Domain("example.com".into())
        );
        for v in ["corp.example", ".corp.example", "*.Corp.Example"] {
            assert_eq!(
                compile(RuleKind::DomainSuffix, v).unwrap(),
                Suffix("corp.example".into())
            );
        }
        assert_eq!(
            compile(RuleKind::Ip, "10.0.0.0/8").unwrap(),
            Net("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(
            compile(RuleKind::Ip, "fd00::/8").unwrap(),
            Net("fd00::".parse().unwrap(), 8)
        );
        assert_eq!(
            compile(RuleKind::Ip, "192.0.2.7").unwrap(),
            Net("192.0.2.7".parse().unwrap(), 32)
        );
        assert_eq!(compile(RuleKind::Port, "443").unwrap(), Ports(443, 443));
        assert_eq!(
            compile(RuleKind::Port, "8000-8999").unwrap(),
            Ports(8000, 8999)
        );
        assert_eq!(compile(RuleKind::Private, "").unwrap(), Private);
    }

    #[test]
    fn errors_name_the_rule_and_the_problem() {
        let err = |kind, value| compile(kind, value).unwrap_err().to_string();
        assert_eq!(
            err(RuleKind::Ip, "10.0.0.0/33"),
            "rule 3 (ip 10.0.0.0/33 → direct): the prefix length must be 0 to 32, not \"33\""
        );
        assert!(err(RuleKind::Ip, "10.1.2.3/8").contains("did you mean 10.0.0.0/8?"));
        assert!(err(RuleKind::Ip, "example.com").contains("not an IPv4 or IPv6 address"));
        assert!(err(RuleKind::Ip, "fd00::/129").contains("0 to 128"));
        assert_eq!(
            err(RuleKind::DomainSuffix, ""),
            "rule 3 (domain-suffix → direct): domain-suffix needs a value"
        );
        assert!(err(RuleKind::Domain, "a b.example").contains("is not a domain name"));
        assert!(err(RuleKind::Domain, "x\".example").contains("is not a domain name"));
        assert!(err(RuleKind::DomainSuffix, "*.").contains("is not a domain name"));
        assert!(err(RuleKind::Port, "0").contains("not a port"));
        assert!(err(RuleKind::Port, "70000").contains("not a port"));
        assert!(err(RuleKind::Port, "9000-8000").contains("is empty"));
        assert!(err(RuleKind::Private, "yes").contains("takes no value"));
    }

    #[test]
    fn toml_form() {
        let text = r#"
            default = "direct"
            rules = [
              { match = "domain-suffix", value = "corp.example", action = "tunnel" },
              { match = "private", action = "direct" },
            ]
            [[rules]]
            match = "port"
            value = "25"
            action = "block"
        "#;
        // Inline array and table array cannot be mixed for one key in
        // TOML; each form alone works.
        assert!(toml::from_str::<RuleSet>(text).is_err());
        let inline: RuleSet = toml::from_str(text.split("[[rules]]").next().unwrap()).unwrap();
        assert_eq!(inline.default, Action::Direct);
        assert_eq!(
            inline.rules,
            vec![
                Rule::new(RuleKind::DomainSuffix, "corp.example", Action::Tunnel),
                Rule::new(RuleKind::Private, "", Action::Direct),
            ]
        );
        let tables: RuleSet =
            toml::from_str("[[rules]]\nmatch = \"port\"\nvalue = \"25\"\naction = \"block\"\n")
                .unwrap();
        assert_eq!(tables.default, Action::Tunnel);
        assert_eq!(
            tables.rules,
            vec![Rule::new(RuleKind::Port, "25", Action::Block)]
        );
        let unknown = toml::from_str::<RuleSet>(
            "rules = [{ match = \"domain\", value = \"a\", action = \"direct\", extra = 1 }]",
        );
        assert!(unknown.is_err());
        let bad_kind = toml::from_str::<RuleSet>(
            "rules = [{ match = \"geoip\", value = \"a\", action = \"direct\" }]",
        )
        .unwrap_err()
        .to_string();
        assert!(bad_kind.contains("geoip"), "{bad_kind}");
        assert!(RuleSet::default().is_default());
        assert_eq!(
            toml::to_string(&tables).unwrap().matches("match").count(),
            1
        );
    }
}
