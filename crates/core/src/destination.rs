//! Where coachloop may send a request to a URL someone else gave it (a webhook, later a
//! remote sync): never to an address of its own host or network unless the operator
//! allows it. In a multi-tenant installation a tenant's admin must not be able to make
//! the server probe the network it runs in (`http://169.254.169.254/latest/meta-data`).
//!
//! This module only judges an address; the server resolves names and enforces the
//! verdict on every connection and redirect (`coachloop_server::outbound`).

use ipnet::IpNet;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an address is not public: the rule that forbids sending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// 127.0.0.0/8, ::1: this host.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique local (fc00::/7).
    Private,
    /// RFC 6598 shared address space, 100.64.0.0/10: carrier-grade NAT, overlay networks
    /// (Tailscale) and some clouds' metadata service (Alibaba's 100.100.100.200).
    Shared,
    /// 169.254.0.0/16 (where cloud metadata services answer), fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 ("this network"; Linux connects 0.0.0.0 to this host) and ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
}

impl Rule {
    /// The rule that forbids `ip`, if any. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is judged as its IPv4 address: connecting to it reaches that address.
    pub fn of(ip: IpAddr) -> Option<Rule> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Option<Rule> {
        let [a, b, ..] = ip.octets();
        if ip.is_loopback() {
            Some(Rule::Loopback)
        } else if ip.is_private() {
            Some(Rule::Private)
        } else if a == 100 && (64..128).contains(&b) {
            Some(Rule::Shared)
        } else if ip.is_link_local() {
            Some(Rule::LinkLocal)
        } else if a == 0 {
            Some(Rule::Unspecified)
        } else if ip.is_broadcast() {
            Some(Rule::Broadcast)
        } else if ip.is_multicast() {
            Some(Rule::Multicast)
        } else {
            None
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Option<Rule> {
        if ip.is_loopback() {
            Some(Rule::Loopback)
        } else if ip.is_unique_local() {
            Some(Rule::Private)
        } else if ip.is_unicast_link_local() {
            Some(Rule::LinkLocal)
        } else if ip.is_unspecified() {
            Some(Rule::Unspecified)
        } else if ip.is_multicast() {
            Some(Rule::Multicast)
        } else {
            None
        }
    }

    /// "a link-local address", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::Loopback => "a loopback address",
            Rule::Private => "a private address",
            Rule::Shared => "a shared (carrier-grade NAT) address",
            Rule::LinkLocal => "a link-local address",
            Rule::Unspecified => "an unspecified address",
            Rule::Broadcast => "a broadcast address",
            Rule::Multicast => "a multicast address",
        }
    }
}

/// An address the policy refuses, with the rule that forbids it:
/// "169.254.169.254 is a link-local address".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{address} is {}", rule.describe())]
pub struct Refused {
    pub address: IpAddr,
    pub rule: Rule,
}

/// Which non-public addresses the operator allows requests to (`allow_private_destinations`).
///
/// In configuration: `false` (the default), `true`, or a list of ranges such as
/// `["10.0.0.0/8", "192.168.1.5"]` (a bare address is a range of one); from an
/// environment variable the list is comma-separated (`10.0.0.0/8,192.168.1.5`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrivateDestinations {
    /// Public addresses only.
    #[default]
    Forbidden,
    /// Every address: an installation whose admins are all trusted with its network.
    Allowed,
    /// Public addresses and these ranges.
    Ranges(Vec<IpNet>),
}

/// A bad entry of `allow_private_destinations`, with how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an address range: write one like 10.0.0.0/8, fd00::/8 or 192.168.1.5, \
     or set allow_private_destinations to true (every address) or false (public ones only)"
)]
pub struct BadRange(pub String);

impl PrivateDestinations {
    /// The ranges of `items` (CIDRs or bare addresses); an empty list allows nothing.
    pub fn ranges<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, BadRange> {
        let ranges = items
            .into_iter()
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                IpNet::from_str(item)
                    .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                    .map_err(|_| BadRange(item.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if ranges.is_empty() {
            Self::Forbidden
        } else {
            Self::Ranges(ranges)
        })
    }

    /// `Ok` when a request may go to `ip`; else the rule that forbids it.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(rule) = Rule::of(ip) else {
            return Ok(());
        };
        let allowed = match self {
            Self::Forbidden => false,
            Self::Allowed => true,
            Self::Ranges(ranges) => {
                let canonical = ip.to_canonical();
                ranges
                    .iter()
                    .any(|r| r.contains(&canonical) || r.contains(&ip))
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Refused { address: ip, rule })
        }
    }
}

impl Serialize for PrivateDestinations {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Forbidden => serializer.serialize_bool(false),
            Self::Allowed => serializer.serialize_bool(true),
            Self::Ranges(ranges) => {
                let mut seq = serializer.serialize_seq(Some(ranges.len()))?;
                for range in ranges {
                    seq.serialize_element(&range.to_string())?;
                }
                seq.end()
            }
        }
    }
}

/// Takes a bool, a list of ranges, or a string (`"true"`, `"false"` or a comma-separated
/// list): environment variables arrive as strings.
impl<'de> Deserialize<'de> for PrivateDestinations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Expected;

        impl<'de> Visitor<'de> for Expected {
            type Value = PrivateDestinations;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or a list of address ranges such as [\"10.0.0.0/8\"]")
            }

            fn visit_bool<E: de::Error>(self, allowed: bool) -> Result<Self::Value, E> {
                Ok(if allowed {
                    PrivateDestinations::Allowed
                } else {
                    PrivateDestinations::Forbidden
                })
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                match text.trim() {
                    "true" => self.visit_bool(true),
                    "false" => self.visit_bool(false),
                    list => PrivateDestinations::ranges(list.split(',')).map_err(E::custom),
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                PrivateDestinations::ranges(items.iter().map(String::as_str))
                    .map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(Expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ip: &str) -> Option<Rule> {
        Rule::of(ip.parse().unwrap())
    }

    #[test]
    fn each_range_is_judged_by_its_rule() {
        let cases = [
            ("127.0.0.1", Some(Rule::Loopback)),
            ("127.255.255.254", Some(Rule::Loopback)),
            ("::1", Some(Rule::Loopback)),
            ("10.0.0.5", Some(Rule::Private)),
            ("10.255.255.255", Some(Rule::Private)),
            ("172.16.0.1", Some(Rule::Private)),
            ("172.31.255.255", Some(Rule::Private)),
            ("192.168.1.1", Some(Rule::Private)),
            ("fc00::1", Some(Rule::Private)),
            ("fd12:3456::1", Some(Rule::Private)),
            ("100.64.0.1", Some(Rule::Shared)),
            ("100.100.100.200", Some(Rule::Shared)),
            ("169.254.169.254", Some(Rule::LinkLocal)),
            ("fe80::1", Some(Rule::LinkLocal)),
            ("febf::1", Some(Rule::LinkLocal)),
            ("0.0.0.0", Some(Rule::Unspecified)),
            ("0.1.2.3", Some(Rule::Unspecified)),
            ("::", Some(Rule::Unspecified)),
            ("255.255.255.255", Some(Rule::Broadcast)),
            ("224.0.0.1", Some(Rule::Multicast)),
            ("239.255.255.255", Some(Rule::Multicast)),
            ("ff02::1", Some(Rule::Multicast)),
            // Judged as the IPv4 address they reach.
            ("::ffff:169.254.169.254", Some(Rule::LinkLocal)),
            ("::ffff:127.0.0.1", Some(Rule::Loopback)),
            ("::ffff:10.1.2.3", Some(Rule::Private)),
            // Public, including the neighbours of each range.
            ("8.8.8.8", None),
            ("11.0.0.0", None),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("192.167.255.255", None),
            ("192.169.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("169.253.255.255", None),
            ("1.0.0.0", None),
            ("223.255.255.255", None),
            ("240.0.0.1", None),
            ("128.0.0.1", None),
            ("2606:4700::1111", None),
            ("fe00::1", None),
            ("fec0::1", None),
            ("::ffff:8.8.8.8", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(rule(ip), expected, "{ip}");
        }
    }

    #[test]
    fn a_refusal_names_the_address_and_the_rule() {
        let refused = PrivateDestinations::default()
            .check("169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert_eq!(refused.rule, Rule::LinkLocal);
        assert_eq!(
            refused.to_string(),
            "169.254.169.254 is a link-local address"
        );
        let refused = PrivateDestinations::default()
            .check("::1".parse().unwrap())
            .unwrap_err();
        assert_eq!(refused.to_string(), "::1 is a loopback address");
    }

    #[test]
    fn the_default_allows_only_public_addresses_and_true_allows_all() {
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let internal: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(PrivateDestinations::Forbidden.check(public), Ok(()));
        assert!(PrivateDestinations::Forbidden.check(internal).is_err());
        assert_eq!(PrivateDestinations::Allowed.check(internal), Ok(()));
        assert_eq!(
            PrivateDestinations::Allowed.check("169.254.169.254".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn a_range_list_opens_only_its_ranges() {
        let policy = PrivateDestinations::ranges(["10.0.0.0/8", "fd00::/8", "127.0.0.1"]).unwrap();
        let ok = [
            "10.0.0.5",
            "10.255.0.1",
            "fd00::5",
            "127.0.0.1",
            "::ffff:10.1.1.1",
        ];
        for ip in ok {
            assert_eq!(policy.check(ip.parse().unwrap()), Ok(()), "{ip}");
        }
        let refused = [
            ("127.0.0.2", Rule::Loopback),
            ("192.168.0.1", Rule::Private),
            ("172.16.0.1", Rule::Private),
            ("fc00::1", Rule::Private),
            ("169.254.169.254", Rule::LinkLocal),
            ("::1", Rule::Loopback),
        ];
        for (ip, rule) in refused {
            let err = policy.check(ip.parse().unwrap()).unwrap_err();
            assert_eq!(err.rule, rule, "{ip}");
        }
        // Public addresses stay allowed whatever the list.
        assert_eq!(policy.check("8.8.8.8".parse().unwrap()), Ok(()));
    }

    #[test]
    fn a_bad_range_says_how_to_write_one() {
        let err = PrivateDestinations::ranges(["10.0.0.0/8", "10.0.0/8"]).unwrap_err();
        assert_eq!(err, BadRange("10.0.0/8".into()));
        assert!(err.to_string().contains("10.0.0.0/8"), "{err}");
        assert!(err.to_string().contains("true"), "{err}");
        assert_eq!(
            PrivateDestinations::ranges([" ", ""]),
            Ok(PrivateDestinations::Forbidden)
        );
    }

    #[test]
    fn reads_a_bool_a_list_or_a_string() {
        let read = |json: &str| serde_json::from_str::<PrivateDestinations>(json);
        assert_eq!(read("false").unwrap(), PrivateDestinations::Forbidden);
        assert_eq!(read("true").unwrap(), PrivateDestinations::Allowed);
        assert_eq!(read("\"true\"").unwrap(), PrivateDestinations::Allowed);
        assert_eq!(read("\"false\"").unwrap(), PrivateDestinations::Forbidden);
        let two = PrivateDestinations::Ranges(vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.1.5/32".parse().unwrap(),
        ]);
        assert_eq!(read(r#"["10.0.0.0/8", "192.168.1.5"]"#).unwrap(), two);
        assert_eq!(read(r#""10.0.0.0/8, 192.168.1.5""#).unwrap(), two);
        let err = read(r#"["10.0.0.0/33"]"#).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
        assert!(read("3").is_err());
        // Written back the way it is read.
        for policy in [
            PrivateDestinations::Forbidden,
            PrivateDestinations::Allowed,
            two,
        ] {
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(read(&json).unwrap(), policy, "{json}");
        }
    }
}
