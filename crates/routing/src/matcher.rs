//! The ordered matcher: first rule that matches wins, else the default.

use std::net::{IpAddr, Ipv4Addr};

use net::TargetAddr;
use net::policy::{parse_ipv4_lenient, refused_range};
use serde::Serialize;

use crate::rule::{Action, Matcher, Rule, RuleError, RuleSet, mask};

/// What [`Router::decide`] says about one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Decision {
    /// Where the connection goes.
    pub action: Action,
    /// The rule that matched, from 0 (the position in [`RuleSet::rules`]);
    /// `None` when none did and the default applies.
    pub rule: Option<usize>,
    /// For people and the stream table: `rule 2: domain-suffix corp.example
    /// → direct`, or `default → tunnel`.
    pub label: String,
}

/// A validated [`RuleSet`], ready to judge targets. Cheap to share behind an
/// `Arc`; matching allocates only the decision's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    source: RuleSet,
    matchers: Vec<Matcher>,
}

impl Default for Router {
    /// Everything through the tunnel.
    fn default() -> Self {
        Router {
            source: RuleSet::default(),
            matchers: Vec::new(),
        }
    }
}

impl RuleSet {
    /// Validates every rule; the first bad one is the error.
    pub fn compile(&self) -> Result<Router, RuleError> {
        let matchers = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Matcher::compile(i + 1, rule))
            .collect::<Result<_, _>>()?;
        Ok(Router {
            source: self.clone(),
            matchers,
        })
    }
}

/// What a target looks like to the rules.
pub(crate) enum Host<'a> {
    /// A name, lower-case, without a trailing dot.
    Name(&'a str),
    Ip(IpAddr),
}

impl Router {
    /// The rules this router was made from.
    pub fn rules(&self) -> &RuleSet {
        &self.source
    }

    /// Whether every connection goes through the tunnel whatever its target
    /// (no rules, default `tunnel`): callers may skip the decision.
    pub fn tunnels_everything(&self) -> bool {
        self.source.default == Action::Tunnel
            && self.source.rules.iter().all(|r| r.action == Action::Tunnel)
    }

    /// Where a connection to `target` goes. A domain target is judged by its
    /// name alone (see the crate doc): it is never resolved.
    pub fn decide(&self, target: &TargetAddr) -> Decision {
        match target {
            TargetAddr::Ip(addr) => self.decide_host(&Host::Ip(addr.ip()), addr.port()),
            TargetAddr::Domain(name, port) => {
                let name = name.strip_suffix('.').unwrap_or(name);
                let lower = name.to_ascii_lowercase();
                // A host such as `127.1` is an address to every resolver.
                let host = match parse_ipv4_lenient(&lower) {
                    Some(v4) => Host::Ip(IpAddr::V4(v4)),
                    None => Host::Name(&lower),
                };
                self.decide_host(&host, *port)
            }
        }
    }

    /// Where a connection to `host` (a name or an IP literal, IPv6 with or
    /// without brackets) and `port` goes: the app's "test a host".
    pub fn decide_text(&self, host: &str, port: u16) -> Decision {
        let host = host.trim();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.decide(&TargetAddr::Ip((ip, port).into())),
            Err(_) => self.decide(&TargetAddr::Domain(bare.to_owned(), port)),
        }
    }

    fn decide_host(&self, host: &Host<'_>, port: u16) -> Decision {
        for (i, (matcher, rule)) in self.matchers.iter().zip(&self.source.rules).enumerate() {
            if matches(matcher, host, port) {
                return Decision {
                    action: rule.action,
                    rule: Some(i),
                    label: label(i, rule),
                };
            }
        }
        Decision {
            action: self.source.default,
            rule: None,
            label: format!("default → {}", self.source.default),
        }
    }

    pub(crate) fn compiled(&self) -> impl Iterator<Item = (&Matcher, &Rule)> {
        self.matchers.iter().zip(&self.source.rules)
    }
}

fn label(index: usize, rule: &Rule) -> String {
    format!("rule {}: {rule}", index + 1)
}

fn matches(matcher: &Matcher, host: &Host<'_>, port: u16) -> bool {
    match (matcher, host) {
        (Matcher::Domain(d), Host::Name(name)) => name == d,
        (Matcher::Suffix(s), Host::Name(name)) => is_below(name, s),
        (Matcher::Keyword(k), Host::Name(name)) => name.contains(k.as_str()),
        (Matcher::Net(net, len), Host::Ip(ip)) => in_net(*ip, *net, *len),
        (Matcher::Private, Host::Ip(ip)) => refused_range(*ip).is_some(),
        // RFC 6761 §6.3: `localhost` and names below it are loopback.
        (Matcher::Private, Host::Name(name)) => is_below(name, "localhost"),
        (Matcher::Ports(lo, hi), _) => (*lo..=*hi).contains(&port),
        _ => false,
    }
}

/// `name` is `suffix` or a name below it (a label boundary before it).
pub(crate) fn is_below(name: &str, suffix: &str) -> bool {
    name == suffix
        || (name.len() > suffix.len()
            && name.ends_with(suffix)
            && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
}

/// `ip` inside `net/len`. An IPv4-mapped IPv6 address is its IPv4 address,
/// as the socket layer treats it.
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let ip = ip.to_canonical();
    ip.is_ipv4() == net.is_ipv4() && mask(ip, len) == net
}

/// The IPv4 blocks whose addresses [`refused_range`] refuses, as CIDR: what
/// the PAC file's `private` rule tests for IPv4 literal hosts. A proptest
/// checks it against the policy itself.
pub(crate) const PRIVATE_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleKind;
    use proptest::prelude::*;

    fn router(default: Action, rules: &[(RuleKind, &str, Action)]) -> Router {
        RuleSet {
            default,
            rules: rules
                .iter()
                .map(|(k, v, a)| Rule::new(*k, *v, *a))
                .collect(),
        }
        .compile()
        .unwrap()
    }

    fn target(text: &str) -> TargetAddr {
        TargetAddr::parse(text).unwrap()
    }

    #[test]
    fn first_match_wins_and_the_default_catches_the_rest() {
        use Action::*;
        use RuleKind::*;
        let r = router(
            Tunnel,
            &[
                (Domain, "ads.corp.example", Block),
                (DomainSuffix, "corp.example", Direct),
                (DomainKeyword, "tracker", Block),
                (Ip, "10.0.0.0/8", Direct),
                (Ip, "2001:db8::/32", Block),
                (Port, "25", Block),
                (Private, "", Direct),
            ],
        );
        let cases = [
            ("ads.corp.example:443", Block, Some(0)),
            ("ADS.Corp.Example.:443", Block, Some(0)),
            ("corp.example:443", Direct, Some(1)),
            ("www.corp.example:80", Direct, Some(1)),
            ("badcorp.example:80", Tunnel, None),
            ("my-tracker.example:443", Block, Some(2)),
            ("10.1.2.3:22", Direct, Some(3)),
            ("[::ffff:10.1.2.3]:22", Direct, Some(3)),
            ("11.1.2.3:22", Tunnel, None),
            ("[2001:db8::5]:443", Block, Some(4)),
            ("mail.example:25", Block, Some(5)),
            ("192.168.1.1:80", Direct, Some(6)),
            ("[::1]:80", Direct, Some(6)),
            ("[fe80::1]:80", Direct, Some(6)),
            ("localhost:3000", Direct, Some(6)),
            ("app.localhost:3000", Direct, Some(6)),
            // Numeric spellings are the addresses resolvers make of them.
            ("0x7f.1:80", Direct, Some(6)),
            ("2130706433:80", Direct, Some(6)),
            ("10.1:80", Direct, Some(3)),
            // A name never matches an IP rule here: no lookup.
            ("intranet.example:80", Tunnel, None),
            ("example.com:443", Tunnel, None),
        ];
        for (t, action, rule) in cases {
            let d = r.decide(&target(t));
            assert_eq!((d.action, d.rule), (action, rule), "{t}: {}", d.label);
        }
        let d = r.decide(&target("www.corp.example:80"));
        assert_eq!(d.label, "rule 2: domain-suffix corp.example → direct");
        assert_eq!(r.decide(&target("x.example:1")).label, "default → tunnel");
    }

    #[test]
    fn text_hosts_for_the_app() {
        let r = router(
            Action::Direct,
            &[(RuleKind::Ip, "fd00::/8", Action::Tunnel)],
        );
        assert_eq!(r.decide_text("[fd00::1]", 443).rule, Some(0));
        assert_eq!(r.decide_text("fd00::1", 443).rule, Some(0));
        assert_eq!(r.decide_text(" example.com ", 443).action, Action::Direct);
    }

    #[test]
    fn tunnels_everything() {
        assert!(Router::default().tunnels_everything());
        assert!(
            router(Action::Tunnel, &[(RuleKind::Port, "1", Action::Tunnel)]).tunnels_everything()
        );
        assert!(!router(Action::Direct, &[]).tunnels_everything());
        assert!(
            !router(Action::Tunnel, &[(RuleKind::Port, "1", Action::Block)]).tunnels_everything()
        );
    }

    #[test]
    fn compile_reports_the_first_bad_rule_by_position() {
        let set = RuleSet {
            default: Action::Tunnel,
            rules: vec![
                Rule::new(RuleKind::Port, "443", Action::Direct),
                Rule::new(RuleKind::Ip, "300.0.0.0/8", Action::Direct),
            ],
        };
        let err = set.compile().unwrap_err().to_string();
        assert!(
            err.starts_with("rule 2 (ip 300.0.0.0/8 → direct): "),
            "{err}"
        );
    }

    proptest! {
        /// The PAC file's IPv4 private blocks are exactly the policy's set.
        #[test]
        fn private_v4_blocks_are_the_policy(bits: u32) {
            let ip = Ipv4Addr::from(bits);
            let in_blocks = PRIVATE_V4
                .iter()
                .any(|(net, len)| in_net(IpAddr::V4(ip), IpAddr::V4(*net), *len));
            prop_assert_eq!(in_blocks, refused_range(IpAddr::V4(ip)).is_some(), "{}", ip);
        }

        /// A suffix rule matches exactly the name and names below it.
        #[test]
        fn suffix_means_a_label_boundary(prefix in "[a-z0-9-]{0,8}", dot: bool) {
            let r = router(Action::Tunnel, &[(RuleKind::DomainSuffix, "example.com", Action::Direct)]);
            let name = if dot && !prefix.is_empty() {
                format!("{prefix}.example.com")
            } else {
                format!("{prefix}example.com")
            };
            let expect = name == "example.com" || name.ends_with(".example.com");
            let d = r.decide(&TargetAddr::Domain(name.clone(), 443));
            prop_assert_eq!(d.action == Action::Direct, expect, "{}", name);
        }

        /// A CIDR rule matches an address exactly when masking it gives the
        /// network.
        #[test]
        fn cidr_matches_by_prefix(a: u32, b: u32, len in 0u8..=32) {
            let net = mask(IpAddr::V4(a.into()), len);
            let r = router(Action::Tunnel, &[(RuleKind::Ip, &format!("{net}/{len}"), Action::Block)]);
            let ip = IpAddr::V4(b.into());
            let d = r.decide(&TargetAddr::Ip((ip, 80).into()));
            prop_assert_eq!(d.action == Action::Block, mask(ip, len) == net);
        }
    }
}
