//! Where outbound deliveries may connect: the address policy that keeps subscribers' URLs
//! off the host's own networks and its own addresses (SSRF), checked when subscribing and
//! on every connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use ipnet::IpNet;
use orderflow_core::FieldError;

use crate::fanout::spec::SubscriptionSpec;
use crate::topic::Protocol;

/// How long the subscribe-time check waits for DNS before it leaves the decision to the
/// connection-time check (which always runs).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The networks an endpoint may not reach unless an operator allows them.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// `--allow-endpoint-network`: opened by the operator.
    allowed: Vec<IpNet>,
    /// A server bound only to loopback is a development server: its subscribers may be
    /// local programs (the README's example).
    allow_loopback: bool,
    /// The host's own addresses: a public one is no private network, yet a delivery to it
    /// reaches services that listen only for the host's own use.
    own: Option<Arc<OwnAddresses>>,
}

/// How long a snapshot of the host's interface addresses is trusted: addresses come and go
/// (DHCP, a VPN), and each connection must not pay for a fresh `getifaddrs`.
const OWN_ADDRESSES_FRESH_FOR: Duration = Duration::from_secs(30);

/// The addresses of the host's interfaces, re-read when the snapshot grows stale.
#[derive(Debug)]
struct OwnAddresses {
    /// A fixed set instead of the host's (tests).
    fixed: Option<Vec<IpAddr>>,
    snapshot: Mutex<Option<(Instant, Arc<[IpAddr]>)>>,
}

impl OwnAddresses {
    fn of_this_host() -> Self {
        OwnAddresses {
            fixed: None,
            snapshot: Mutex::new(None),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        if let Some(fixed) = &self.fixed {
            return fixed.contains(&ip);
        }
        let mut snapshot = self.snapshot.lock().expect("own addresses lock");
        let stale = snapshot
            .as_ref()
            .is_none_or(|(read, _)| read.elapsed() >= OWN_ADDRESSES_FRESH_FOR);
        if stale {
            let addresses: Arc<[IpAddr]> = match if_addrs::get_if_addrs() {
                Ok(interfaces) => interfaces.iter().map(|i| i.ip()).collect(),
                Err(e) => {
                    // Keep the last snapshot rather than forget every address.
                    tracing::warn!(error = %e, "could not read the host's interface addresses");
                    snapshot
                        .as_ref()
                        .map_or_else(|| Arc::from([]), |(_, a)| a.clone())
                }
            };
            *snapshot = Some((Instant::now(), addresses));
        }
        snapshot.as_ref().is_some_and(|(_, a)| a.contains(&ip))
    }
}

/// Why an address is refused; the text names the rule, never what the endpoint said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address} is {class}, which deliveries may not reach (an operator can allow it with --allow-endpoint-network)"
)]
pub struct Refused {
    pub address: IpAddr,
    pub class: &'static str,
}

impl EgressPolicy {
    pub fn new(allowed: Vec<IpNet>, allow_loopback: bool) -> Self {
        EgressPolicy {
            allowed,
            allow_loopback,
            own: Some(Arc::new(OwnAddresses::of_this_host())),
        }
    }

    /// The policy with `addresses` standing for the host's own (tests).
    pub fn with_own_addresses(mut self, addresses: Vec<IpAddr>) -> Self {
        self.own = Some(Arc::new(OwnAddresses {
            fixed: Some(addresses),
            snapshot: Mutex::new(None),
        }));
        self
    }

    /// Everything allowed: for tests of the engine that run their subscribers locally.
    pub fn open() -> Self {
        EgressPolicy::new(
            vec![
                "0.0.0.0/0".parse().expect("a network"),
                "::/0".parse().expect("a network"),
            ],
            true,
        )
    }

    /// `Ok` when a delivery may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let embedded = embedded_v4(ip);
        let allowed = |ip: IpAddr| self.allowed.iter().any(|net| net.contains(&ip));
        if allowed(ip) || embedded.is_some_and(|v4| allowed(IpAddr::V4(v4))) {
            return Ok(());
        }
        let class = match embedded {
            Some(v4) => classify_v4(v4).map(|c| (c, true)),
            None => match ip {
                IpAddr::V4(v4) => classify_v4(v4).map(|c| (c, false)),
                IpAddr::V6(v6) => classify_v6(v6).map(|c| (c, false)),
            },
        };
        let own = |ip: IpAddr| self.own.as_ref().is_some_and(|own| own.contains(ip));
        let class = class.or_else(|| match embedded {
            Some(v4) if own(IpAddr::V4(v4)) => Some((Class::Own, true)),
            None if own(ip) => Some((Class::Own, false)),
            _ => None,
        });
        match class {
            None => Ok(()),
            Some((Class::Loopback, _)) if self.allow_loopback => Ok(()),
            Some((class, embedded)) => Err(Refused {
                address: ip,
                class: class.describe(embedded),
            }),
        }
    }

    /// The subscribe-time check of an `http(s)` endpoint: its literal address, or every
    /// address its name resolves to now. A name that does not resolve yet is left to the
    /// connection-time check.
    pub async fn check_url(&self, endpoint: &str) -> Result<(), Refused> {
        let Ok(url) = url::Url::parse(endpoint) else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let lookup = tokio::net::lookup_host((name, port));
                match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(Ok(mut addrs)) => addrs.try_for_each(|a| self.check(a.ip())),
                    _ => Ok(()),
                }
            }
            None => Ok(()),
        }
    }

    /// The subscribe-time check of a validated subscription: only `http(s)` endpoints
    /// connect anywhere (e-mail goes through the operator's relay).
    pub async fn check_subscription(&self, spec: &SubscriptionSpec) -> Result<(), FieldError> {
        if !matches!(spec.protocol, Protocol::Http | Protocol::Https) {
            return Ok(());
        }
        self.check_url(&spec.endpoint)
            .await
            .map_err(|refused| FieldError {
                field: "endpoint".into(),
                message: format!("is not allowed: {refused}"),
            })
    }

    /// The literal address of an endpoint URL, checked before each request: a literal is
    /// never handed to the resolver, so [`EgressPolicy::resolver`] does not see it.
    pub fn check_literal(&self, endpoint: &str) -> Result<(), Refused> {
        match url::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
        {
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            _ => Ok(()),
        }
    }

    /// The delivery client's resolver: it drops refused addresses on every lookup, so a
    /// name that resolves elsewhere after the subscription was checked (DNS rebinding)
    /// still cannot reach a refused network.
    pub fn resolver(self: &Arc<Self>) -> Arc<PolicyResolver> {
        Arc::new(PolicyResolver {
            policy: Arc::clone(self),
        })
    }
}

/// A `reqwest` resolver that applies an [`EgressPolicy`] to what the system resolves.
#[derive(Debug)]
pub struct PolicyResolver {
    policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(refused)) => {
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Loopback,
    Private,
    UniqueLocal,
    LinkLocal,
    SharedCgnat,
    Multicast,
    Unspecified,
    Broadcast,
    Reserved,
    /// An address of one of the host's own interfaces that is not in another class.
    Own,
}

impl Class {
    fn describe(self, embedded: bool) -> &'static str {
        match (self, embedded) {
            (Class::Loopback, false) => "a loopback address",
            (Class::Private, false) => "a private address (RFC 1918)",
            (Class::UniqueLocal, _) => "a unique local address (RFC 4193)",
            (Class::LinkLocal, false) => "a link-local address",
            (Class::SharedCgnat, false) => "a shared (CGNAT) address (RFC 6598)",
            (Class::Multicast, false) => "a multicast address",
            (Class::Unspecified, false) => "the unspecified address",
            (Class::Broadcast, false) => "the broadcast address",
            (Class::Reserved, false) => "a reserved address",
            (Class::Loopback, true) => "an IPv6 form of a loopback address",
            (Class::Private, true) => "an IPv6 form of a private address (RFC 1918)",
            (Class::LinkLocal, true) => "an IPv6 form of a link-local address",
            (Class::SharedCgnat, true) => "an IPv6 form of a shared (CGNAT) address",
            (Class::Multicast, true) => "an IPv6 form of a multicast address",
            (Class::Unspecified, true) => "an IPv6 form of the unspecified address",
            (Class::Broadcast, true) => "an IPv6 form of the broadcast address",
            (Class::Reserved, true) => "an IPv6 form of a reserved address",
            (Class::Own, false) => "one of this host's own addresses",
            (Class::Own, true) => "an IPv6 form of one of this host's own addresses",
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some(Class::Loopback)
    } else if ip.is_private() {
        Some(Class::Private)
    } else if ip.is_link_local() {
        Some(Class::LinkLocal)
    } else if a == 100 && (64..128).contains(&b) {
        Some(Class::SharedCgnat)
    } else if ip.is_multicast() {
        Some(Class::Multicast)
    } else if ip.is_broadcast() {
        Some(Class::Broadcast)
    } else if ip.is_unspecified() || a == 0 {
        // 0.0.0.0/8 is "this network": Linux connects 0.x to the host itself.
        Some(Class::Unspecified)
    } else if a >= 240 {
        Some(Class::Reserved)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some(Class::Loopback)
    } else if ip.is_unspecified() {
        Some(Class::Unspecified)
    } else if first & 0xfe00 == 0xfc00 {
        Some(Class::UniqueLocal)
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        // fe80::/10, and the deprecated site-local fec0::/10 that some stacks still route.
        Some(Class::LinkLocal)
    } else if ip.is_multicast() {
        Some(Class::Multicast)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address carries and a stack, a NAT64 gateway or a 6to4 relay
/// may connect to: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64's
/// well-known prefix (`64:ff9b::a.b.c.d`, RFC 6052) and its local-use prefix
/// (`64:ff9b:1::/48`, RFC 8215, with the address in the last 32 bits as gateways use a /96
/// of it), and 6to4 (`2002:AABB:CCDD::/48`, RFC 3056).
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    let compatible = s[..6].iter().all(|&x| x == 0) && !v6.is_loopback() && !v6.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    let local_nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1;
    (compatible || nat64 || local_nat64).then_some(v4(s[6], s[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &EgressPolicy, ip: &str) -> bool {
        policy.check(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn the_host_s_own_networks_are_refused_by_default() {
        let policy = EgressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(refused(&policy, ip), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "2002:5db8:d822::1",
        ] {
            assert!(!refused(&policy, ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn the_host_s_own_public_addresses_are_refused_unless_allowed() {
        let own: IpAddr = "93.184.216.34".parse().unwrap();
        let policy = EgressPolicy::new(vec![], false).with_own_addresses(vec![own]);
        let refusal = policy.check(own).unwrap_err();
        assert_eq!(refusal.class, "one of this host's own addresses");
        assert!(refused(&policy, "::ffff:93.184.216.34"));
        assert!(refused(&policy, "2002:5db8:d822::1"), "its 6to4 form");
        assert!(
            !refused(&policy, "93.184.216.35"),
            "a neighbour is not the host"
        );
        let opened = EgressPolicy::new(vec!["93.184.216.34/32".parse().unwrap()], false)
            .with_own_addresses(vec![own]);
        assert!(
            !refused(&opened, "93.184.216.34"),
            "the operator allowed it"
        );
    }

    #[test]
    fn the_own_addresses_are_read_from_this_host_s_interfaces() {
        // Every interface address, whatever its class, is one of the host's own: the
        // loopback one is known to exist on any machine that runs these tests.
        let own = OwnAddresses::of_this_host();
        assert!(own.contains("127.0.0.1".parse().unwrap()));
        assert!(
            !own.contains("192.0.2.1".parse().unwrap()),
            "TEST-NET-1 is nobody's"
        );
    }

    #[test]
    fn a_loopback_server_may_deliver_to_loopback_only() {
        let policy = EgressPolicy::new(vec![], true);
        assert!(!refused(&policy, "127.0.0.1"));
        assert!(!refused(&policy, "::1"));
        assert!(!refused(&policy, "::ffff:127.0.0.1"));
        assert!(refused(&policy, "10.0.0.1"));
        assert!(refused(&policy, "169.254.169.254"));
    }

    #[test]
    fn an_allowed_network_opens_exactly_that_network() {
        let policy = EgressPolicy::new(vec!["10.1.0.0/16".parse().unwrap()], false);
        assert!(!refused(&policy, "10.1.2.3"));
        assert!(!refused(&policy, "::ffff:10.1.2.3"));
        assert!(refused(&policy, "10.2.0.1"));
        assert!(refused(&policy, "127.0.0.1"));
    }

    #[test]
    fn the_refusal_names_the_address_and_the_rule() {
        let e = EgressPolicy::default()
            .check("169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is a link-local address, which deliveries may not reach (an operator can allow it with --allow-endpoint-network)"
        );
    }
}
