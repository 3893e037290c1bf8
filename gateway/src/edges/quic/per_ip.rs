//! Connections per client address on the QUIC endpoint: the UDP counterpart of the HTTP
//! listener's cap. A connection is counted from the moment it is accepted (handshake
//! included) until it ends; one over the cap is refused during the handshake.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex},
};

/// Open connections per client address (IPv6: per /64).
#[derive(Debug)]
pub(crate) struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// At most `max` connections per address; `0` means no limit.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when it holds `max` already.
    pub(crate) fn acquire(this: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        if this.max == 0 {
            return Some(Slot {
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
        Some(Slot {
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
pub(crate) struct Slot {
    owner: Option<Arc<PerIp>>,
    key: IpAddr,
}

impl Drop for Slot {
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
        let per_ip = PerIp::new(1);
        let held = PerIp::acquire(&per_ip, "2001:db8::1".parse().unwrap()).unwrap();
        assert!(PerIp::acquire(&per_ip, "2001:db8::ffff".parse().unwrap()).is_none());
        assert!(PerIp::acquire(&per_ip, "192.0.2.1".parse().unwrap()).is_some());
        drop(held);
        assert!(PerIp::acquire(&per_ip, "2001:db8::2".parse().unwrap()).is_some());
        assert!(per_ip.open.lock().unwrap().is_empty());
    }
}
