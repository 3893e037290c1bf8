//! Who a signed-out caller is, for rate limiting (sans-IO): the peer address, or the client a
//! trusted reverse proxy names in `X-Forwarded-For`, grouped so that one IPv6 subscriber (who
//! typically holds a whole /64) gets one bucket, not 2^64.

use std::net::{IpAddr, Ipv6Addr};

/// One address block: every address whose first `bits` bits equal `net`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Self { net, bits })
    }

    fn contains(self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.bits,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.bits)
            }
            _ => false,
        }
    }
}

/// Whether `a` and `b`, numbers of `width` bits, agree on their top `bits` bits.
fn prefix_eq(a: u128, b: u128, width: u8, bits: u8) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = u32::from(width - bits.min(width));
    (a >> shift) == (b >> shift)
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack socket reports) is the IPv4
/// address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses addresses and CIDR blocks; the error is the first entry that is neither.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| Cidr::parse(e).ok_or_else(|| e.clone()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request from `peer` carrying the given `X-Forwarded-For` values
    /// (in header order). A peer that is not a trusted proxy is the client, whatever it claims.
    /// Otherwise the hops are read right to left, and the first that is not a trusted proxy is
    /// the client: everything left of it was written by someone we do not trust. An unreadable
    /// hop stops the walk at the last trusted address, so garbage cannot mint fresh buckets.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The rate-limit key of a signed-out caller at `ip`: the address itself for IPv4, its /64 for
/// IPv6 (one subscriber's allocation, which it can rotate through freely).
pub fn ip_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let net = Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1));
            format!("ip:{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_pick_its_own_address() {
        let none = TrustedProxies::default();
        let peer = ip("203.0.113.9");
        assert_eq!(none.client(peer, ["198.51.100.1"].into_iter()), peer);
        let lb = proxies(&["10.0.0.0/8"]);
        assert_eq!(lb.client(peer, ["198.51.100.1"].into_iter()), peer);
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let lb = proxies(&["10.0.0.0/8", "192.0.2.7"]);
        let peer = ip("10.1.2.3");
        // The client wrote a fake first entry; the proxies appended the real one and each other.
        let xff = ["6.6.6.6, 198.51.100.1", "192.0.2.7"];
        assert_eq!(lb.client(peer, xff.into_iter()), ip("198.51.100.1"));
        // No header: the proxy itself.
        assert_eq!(lb.client(peer, std::iter::empty()), peer);
        // All hops trusted: the left-most.
        assert_eq!(lb.client(peer, ["10.9.9.9"].into_iter()), ip("10.9.9.9"));
        // Garbage right of the client stops at the last trusted hop.
        assert_eq!(lb.client(peer, ["1.1.1.1, junk"].into_iter()), peer);
        // Ports and brackets are read.
        assert_eq!(
            lb.client(peer, ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(lb.client(peer, ["1.2.3.4:80"].into_iter()), ip("1.2.3.4"));
    }

    #[test]
    fn cidrs_parse_and_match() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".to_owned()]).is_err());
        assert!(TrustedProxies::parse(&["nope".to_owned()]).is_err());
        let p = proxies(&["fd00::/8", "127.0.0.1"]);
        assert!(p.trusts(ip("fd12::1")));
        assert!(!p.trusts(ip("fe00::1")));
        assert!(p.trusts(ip("::ffff:127.0.0.1")));
        assert!(!p.trusts(ip("127.0.0.2")));
        assert!(proxies(&["0.0.0.0/0"]).trusts(ip("8.8.8.8")));
    }

    #[test]
    fn one_ipv6_subscriber_gets_one_bucket() {
        assert_eq!(
            ip_key(ip("2001:db8:1:2:aaaa::1")),
            ip_key(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_eq!(ip_key(ip("2001:db8:1:2::9")), "ip:2001:db8:1:2::/64");
        assert_ne!(ip_key(ip("2001:db8:1:2::1")), ip_key(ip("2001:db8:1:3::1")));
        assert_eq!(ip_key(ip("::ffff:192.0.2.1")), "ip:192.0.2.1");
    }
}
