//! Connections per client address: one count for the HTTP listener (TCP, in the hosting
//! process) and one for the QUIC endpoint. A connection is counted from the moment it is
//! accepted until its slot is dropped; one over the cap is refused at once.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex},
};

/// Open connections per client address (IPv6: per /64).
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    /// Addresses never capped (this host, trusted proxies).
    exempt: Vec<IpAddr>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// At most `max` connections per address, none for the `exempt` ones; `0` means no limit.
    pub fn new(max: usize, exempt: Vec<IpAddr>) -> Arc<Self> {
        Arc::new(Self {
            max,
            exempt: exempt.into_iter().map(|ip| ip.to_canonical()).collect(),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when it holds `max` already.
    pub fn acquire(this: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        if this.max == 0 || this.exempt.contains(&ip.to_canonical()) {
            return Some(ConnectionSlot {
                owner: None,
                key: ip,
            });
        }
        let key = group(ip);
        let mut open = this.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= this.max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            owner: Some(this.clone()),
            key,
        })
    }

    fn release(&self, key: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// IPv4 (also IPv4-mapped) as is; IPv6 by its /64, which one host can rotate through.
fn group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// One counted connection, released when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    owner: Option<Arc<PerIp>>,
    key: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(owner) = &self.owner {
            owner.release(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_and_its_64_hold_at_most_the_cap() {
        let per_ip = PerIp::new(1, Vec::new());
        let held = PerIp::acquire(&per_ip, "2001:db8::1".parse().unwrap()).unwrap();
        assert!(PerIp::acquire(&per_ip, "2001:db8::ffff".parse().unwrap()).is_none());
        assert!(PerIp::acquire(&per_ip, "192.0.2.1".parse().unwrap()).is_some());
        drop(held);
        assert!(PerIp::acquire(&per_ip, "2001:db8::2".parse().unwrap()).is_some());
        assert!(per_ip.open.lock().unwrap().is_empty());
    }

    #[test]
    fn exempt_addresses_and_a_zero_cap_are_never_refused() {
        let per_ip = PerIp::new(1, vec!["192.0.2.9".parse().unwrap()]);
        let held: Vec<_> = (0..5)
            .map(|_| PerIp::acquire(&per_ip, "::ffff:192.0.2.9".parse().unwrap()))
            .collect();
        assert!(held.iter().all(Option::is_some));
        let unlimited = PerIp::new(0, Vec::new());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..100).all(|_| PerIp::acquire(&unlimited, ip).is_some()));
    }
}
