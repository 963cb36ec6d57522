//! The SSRF guard: which addresses outbound requests may reach, a DNS resolver that applies it
//! to the very addresses connected to, and the same check for validating an endpoint when a
//! target is saved.
//!
//! Refused unless the operator allows private targets: every address that is not globally
//! reachable unicast — unspecified, loopback, private (RFC 1918), CGNAT, link-local, multicast,
//! broadcast, documentation, benchmarking, reserved, IPv6 unique-local, site-local, discard,
//! and the IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) whenever the
//! embedded address is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;
use webhook_domain::model::EndpointUrl;
use webhook_domain::ports::{self, EndpointGuard};

/// Whether outbound requests may reach private and other special-purpose addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allow every address (`--allow-private-targets`): for targets on the same host or network.
    pub allow_private_targets: bool,
}

impl OutboundPolicy {
    /// Whether a request may connect to `ip`.
    pub fn permits(self, ip: IpAddr) -> bool {
        self.allow_private_targets || is_public(ip)
    }
}

/// Whether `ip` is a globally reachable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 ranges that are not globally reachable unicast (IANA special-purpose registry).
const V4_REFUSED: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network", unspecified
    (0x0A00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space (CGNAT)
    (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
    (0xA9FE_0000, 16), // 169.254.0.0/16 link-local (cloud metadata lives here)
    (0xAC10_0000, 12), // 172.16.0.0/12 private
    (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 documentation (TEST-NET-1)
    (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay anycast (deprecated)
    (0xC0A8_0000, 16), // 192.168.0.0/16 private
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xC633_6400, 24), // 198.51.100.0/24 documentation (TEST-NET-2)
    (0xCB00_7100, 24), // 203.0.113.0/24 documentation (TEST-NET-3)
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, and 255.255.255.255 broadcast
];

/// IPv6 ranges refused outright (those embedding IPv4 are handled separately).
const V6_REFUSED: &[(u128, u8)] = &[
    (0, 96), // ::/96: unspecified, loopback, IPv4-compatible
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // 64:ff9b:1::/48 local-use NAT64
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // 100::/64 discard
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // 2001::/23 IETF protocol assignments, Teredo
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // 2001:db8::/32 documentation
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // 3fff::/20 documentation
    (0x5f00_0000_0000_0000_0000_0000_0000_0000, 16), // 5f00::/16 SRv6 SIDs
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7), // fc00::/7 unique local
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // fe80::/10 link-local
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // fec0::/10 site-local (deprecated)
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8), // ff00::/8 multicast
];

fn in_v4(addr: u32, (network, len): (u32, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    addr & mask == network
}

fn in_v6(addr: u128, (network, len): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    addr & mask == network
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let addr = u32::from(ip);
    !V4_REFUSED.iter().any(|&range| in_v4(addr, range))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let addr = u128::from(ip);
    // ::ffff:0:0/96 IPv4-mapped and 64:ff9b::/96 NAT64 reach the embedded IPv4 address.
    if in_v6(addr, (0xffff_0000_0000, 96)) || in_v6(addr, (0x0064_ff9b << 96, 96)) {
        return is_public_v4(Ipv4Addr::from(low_32(addr)));
    }
    // 2002::/16 6to4 carries the IPv4 address in bits 16..48.
    if in_v6(addr, (0x2002 << 112, 16)) {
        return is_public_v4(Ipv4Addr::from(low_32(addr >> 80)));
    }
    !V6_REFUSED.iter().any(|&range| in_v6(addr, range))
}

fn low_32(bits: u128) -> u32 {
    u32::try_from(bits & u128::from(u32::MAX)).unwrap_or(0)
}

/// Why an endpoint may not be used.
#[derive(Debug, thiserror::Error)]
pub enum EndpointRefused {
    /// The host is an IP literal the policy forbids (named: the user wrote it).
    #[error("{address} is not a public address")]
    BlockedLiteral { address: IpAddr },
    /// The host name resolves to an address the policy forbids. Which one stays out of the
    /// message: DNS answers for internal names are not told to whoever saves a target.
    #[error("{host} resolves to a refused address")]
    Blocked { host: String },
    /// The host name could not be resolved.
    #[error("{host} could not be resolved")]
    Unresolvable {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
}

/// Checks an endpoint as a target is saved: resolves its host now and refuses it when **any**
/// of its addresses is forbidden by `policy`. Deliveries check again, connection by connection,
/// since DNS answers change.
pub async fn check_endpoint(
    endpoint: &EndpointUrl,
    policy: OutboundPolicy,
) -> Result<(), EndpointRefused> {
    let url = endpoint.as_url();
    let host_text = url.host_str().unwrap_or_default().to_owned();
    if let Some(address) = literal_refused(endpoint, policy) {
        return Err(EndpointRefused::BlockedLiteral { address });
    }
    let addresses: Vec<IpAddr> = match url.host() {
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => return Ok(()),
        Some(Host::Domain(domain)) => tokio::net::lookup_host((domain, 0))
            .await
            .map_err(|source| EndpointRefused::Unresolvable {
                host: host_text.clone(),
                source,
            })?
            .map(|socket| socket.ip())
            .collect(),
        None => Vec::new(),
    };
    if addresses.is_empty() {
        return Err(EndpointRefused::NoAddress { host: host_text });
    }
    if addresses.into_iter().all(|ip| policy.permits(ip)) {
        Ok(())
    } else {
        Err(EndpointRefused::Blocked { host: host_text })
    }
}

/// The [`webhook_domain::ports::EndpointGuard`] of the management use cases:
/// [`check_endpoint`] under a policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboundGuard(pub OutboundPolicy);

impl EndpointGuard for OutboundGuard {
    async fn check(&self, url: &EndpointUrl) -> Result<(), ports::EndpointRefused> {
        check_endpoint(url, self.0)
            .await
            .map_err(|refused| ports::EndpointRefused {
                reason: match refused {
                    EndpointRefused::BlockedLiteral { address } => {
                        format!("{address} is not a public address")
                    }
                    EndpointRefused::Blocked { .. } => {
                        "its host name resolves to a refused address".to_owned()
                    }
                    EndpointRefused::Unresolvable { .. } => {
                        "its host name could not be resolved".to_owned()
                    }
                    EndpointRefused::NoAddress { .. } => {
                        "its host name resolves to no address".to_owned()
                    }
                },
            })
    }
}

/// The address of a URL whose host is an IP literal and that `policy` forbids. Literal hosts
/// never reach the resolver, so deliveries check them with this before connecting.
pub(crate) fn literal_refused(endpoint: &EndpointUrl, policy: OutboundPolicy) -> Option<IpAddr> {
    let ip = match endpoint.as_url().host()? {
        Host::Ipv4(v4) => IpAddr::V4(v4),
        Host::Ipv6(v6) => IpAddr::V6(v6),
        Host::Domain(_) => return None,
    };
    (!policy.permits(ip)).then_some(ip)
}

/// Every address a host name resolved to was forbidden; found in the source chain of a
/// failed request. The addresses stay out of it: the message reaches the task's `last_error`,
/// and DNS answers for internal names are not told to API users.
#[derive(Debug)]
pub(crate) struct BlockedAddresses {
    pub(crate) host: String,
}

impl fmt::Display for BlockedAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves only to refused addresses", self.host)
    }
}

impl std::error::Error for BlockedAddresses {}

/// A resolver for the HTTP client that drops the addresses `policy` forbids, so the check
/// applies to the address actually connected to (no window between check and use).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: OutboundPolicy,
}

impl GuardedResolver {
    pub(crate) fn shared(policy: OutboundPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|socket| policy.permits(socket.ip()));
            if allowed.is_empty() && !refused.is_empty() {
                return Err(Box::new(BlockedAddresses { host }) as _);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let check = |text: &str, public: bool| {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(is_public(ip), public, "{text}");
            assert!(
                OutboundPolicy {
                    allow_private_targets: true
                }
                .permits(ip)
            );
        };
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.10",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ] {
            check(refused, false);
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            check(public, true);
        }
    }

    #[tokio::test]
    async fn checks_endpoints_as_saved() {
        let strict = OutboundPolicy::default();
        let lax = OutboundPolicy {
            allow_private_targets: true,
        };
        // The strict policy's answer for `url`, which the lax one allows.
        let strictly = async |url: &str| {
            let endpoint = EndpointUrl::parse(url).unwrap();
            let refused = check_endpoint(&endpoint, strict).await;
            check_endpoint(&endpoint, lax).await.unwrap();
            refused
        };
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://10.1.2.3/hook",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            let refused = strictly(url).await;
            assert!(
                matches!(refused, Err(EndpointRefused::BlockedLiteral { .. })),
                "{url}: {refused:?}"
            );
        }
        let refused = strictly("http://localhost:9000/").await;
        assert!(
            matches!(refused, Err(EndpointRefused::Blocked { .. })),
            "{refused:?}"
        );
        let public = EndpointUrl::parse("https://93.184.215.14/").unwrap();
        check_endpoint(&public, strict).await.unwrap();
        let nowhere = EndpointUrl::parse("http://no-such-host.invalid/").unwrap();
        assert!(matches!(
            check_endpoint(&nowhere, lax).await,
            Err(EndpointRefused::Unresolvable { .. })
        ));

        let loopback = EndpointUrl::parse("http://127.0.0.1:8080/").unwrap();
        let refused = OutboundGuard(strict).check(&loopback).await.unwrap_err();
        assert_eq!(refused.reason, "127.0.0.1 is not a public address");
        OutboundGuard(lax).check(&loopback).await.unwrap();
    }

    #[tokio::test]
    async fn refusals_do_not_reveal_what_a_name_resolves_to() {
        let strict = OutboundPolicy::default();
        let named = EndpointUrl::parse("http://localhost:9000/").unwrap();
        let refused = OutboundGuard(strict).check(&named).await.unwrap_err();
        assert_eq!(
            refused.reason,
            "its host name resolves to a refused address"
        );
        let error = check_endpoint(&named, strict)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(error, "localhost resolves to a refused address");
        let blocked = BlockedAddresses {
            host: "internal-name".to_owned(),
        };
        assert_eq!(
            blocked.to_string(),
            "internal-name resolves only to refused addresses"
        );
        for text in [&refused.reason, &error, &blocked.to_string()] {
            assert!(
                !text.contains("127.0.0.1") && !text.contains("::1"),
                "{text}"
            );
        }
    }
}
