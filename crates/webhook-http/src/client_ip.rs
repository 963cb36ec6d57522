//! Which address a request comes from: the TCP peer, or — only when the peer is a configured
//! trusted proxy — the right-most untrusted address of `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default): the header is ignored
/// and the peer address is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpPolicy {
    trusted: Vec<IpNet>,
}

impl ClientIpPolicy {
    /// Believes `X-Forwarded-For` from peers in `trusted`.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    /// The trusted proxy networks.
    pub fn trusted(&self) -> &[IpNet] {
        &self.trusted
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` carrying the given `X-Forwarded-For`
    /// header values, in the order they appear.
    ///
    /// Walking from the right (the entry the nearest proxy added), trusted proxies are
    /// skipped; the first address that is not trusted is the client. When every entry is
    /// trusted the left-most one is, and an unreadable entry stops the walk at the address
    /// before it, since nothing further left can be believed.
    pub fn client_ip<'h>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl DoubleEndedIterator<Item = &'h [u8]>,
    ) -> Option<IpAddr> {
        let mut client = peer.map(|ip| ip.to_canonical())?;
        if !self.is_trusted(client) {
            return Some(client);
        }
        for value in forwarded_for.rev() {
            for entry in value.rsplit(|b| *b == b',') {
                let Some(ip) = parse_entry(entry) else {
                    return Some(client);
                };
                client = ip;
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn policy(nets: &[&str]) -> ClientIpPolicy {
        ClientIpPolicy::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn table() {
        let check = |trusted: &[&str], peer: &str, headers: &[&str], expected: &str| {
            let got =
                policy(trusted).client_ip(Some(ip(peer)), headers.iter().map(|h| h.as_bytes()));
            assert_eq!(got, Some(ip(expected)), "{trusted:?} {peer} {headers:?}");
        };
        // No trusted proxy: the header is ignored.
        check(&[], "203.0.113.9", &["198.51.100.1"], "203.0.113.9");
        // An untrusted peer's header is ignored.
        check(
            &["10.0.0.0/8"],
            "203.0.113.9",
            &["198.51.100.1"],
            "203.0.113.9",
        );
        // A trusted peer without the header: the peer.
        check(&["10.0.0.0/8"], "10.0.0.2", &[], "10.0.0.2");
        // A trusted peer: the right-most untrusted entry, not a spoofed left one.
        check(
            &["10.0.0.0/8"],
            "10.0.0.2",
            &["1.1.1.1, 198.51.100.1, 10.0.0.7"],
            "198.51.100.1",
        );
        // Several header lines are one list, in order.
        check(
            &["10.0.0.0/8"],
            "10.0.0.2",
            &["1.1.1.1", "198.51.100.1,10.0.0.7"],
            "198.51.100.1",
        );
        // Every entry trusted: the left-most.
        check(
            &["10.0.0.0/8"],
            "10.0.0.2",
            &["10.1.1.1, 10.0.0.7"],
            "10.1.1.1",
        );
        // Garbage stops the walk at the last believable address.
        check(
            &["10.0.0.0/8"],
            "10.0.0.2",
            &["1.1.1.1, junk, 10.0.0.7"],
            "10.0.0.7",
        );
        check(&["10.0.0.0/8"], "10.0.0.2", &["junk"], "10.0.0.2");
        // Ports and brackets.
        check(
            &["10.0.0.0/8"],
            "10.0.0.2",
            &["198.51.100.1:443"],
            "198.51.100.1",
        );
        check(
            &["10.0.0.0/8"],
            "10.0.0.2",
            &["[2001:db8::1]:443"],
            "2001:db8::1",
        );
        check(
            &["10.0.0.0/8"],
            "10.0.0.2",
            &["[2001:db8::1]"],
            "2001:db8::1",
        );
        check(&["::1/128"], "::1", &["2001:db8::1"], "2001:db8::1");
        // An IPv4 peer seen through a dual-stack socket.
        check(
            &["127.0.0.0/8"],
            "::ffff:127.0.0.1",
            &["198.51.100.1"],
            "198.51.100.1",
        );
    }

    #[test]
    fn no_peer_no_address() {
        assert_eq!(policy(&[]).client_ip(None, std::iter::empty()), None);
    }
}
