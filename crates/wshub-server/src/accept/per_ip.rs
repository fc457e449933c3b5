//! Per-client-IP bookkeeping for the handshake: the address every per-IP limit counts, the
//! live-connection count behind `websocket.max_connections_per_ip`, and the throttle that keeps
//! a refused address from flooding the log.
//!
//! Both maps hold an entry only while it means something (a live connection, a recent warning),
//! so their size follows the clients actually present, not every address ever seen.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The address a per-IP limit counts for `peer`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
/// what a dual-stack listener reports for an IPv4 client) counts as its IPv4 address, so one
/// client cannot get two allowances by reaching both listeners.
pub fn client_ip(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

/// Live WebSocket connections per client IP.
#[derive(Debug, Default)]
pub struct IpConnections {
    /// Only addresses with at least one connection: an entry is removed when its count reaches 0.
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl IpConnections {
    /// Counts one more connection from `ip` if it holds fewer than `max`; the count is given
    /// back when the returned [`IpSlot`] is dropped.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock();
        let held = counts.get(&ip).copied().unwrap_or(0);
        if held >= max {
            return None;
        }
        counts.insert(ip, held + 1);
        Some(IpSlot {
            owner: Arc::clone(self),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.counts.lock().get(&ip).copied().unwrap_or(0)
    }

    /// Addresses holding at least one connection.
    pub fn addresses(&self) -> usize {
        self.counts.lock().len()
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock();
        match counts.entry(ip) {
            Entry::Occupied(mut held) if *held.get() > 1 => *held.get_mut() -= 1,
            Entry::Occupied(held) => {
                held.remove();
            }
            // Every release follows an acquire; an absent entry would be a bookkeeping bug.
            Entry::Vacant(_) => debug_assert!(false, "released a per-IP slot that was never counted"),
        }
    }
}

/// One connection's share of its IP's allowance; given back on drop.
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<IpConnections>,
    ip: IpAddr,
}

impl IpSlot {
    /// The client address this slot counts against.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.owner.release(self.ip);
    }
}

/// Lets a warning about an address through at most once per `every`; the rest are the caller's
/// to log at debug level. Entries older than `every` are swept while the map is in use.
#[derive(Debug)]
pub struct WarnThrottle {
    every: Duration,
    state: Mutex<WarnState>,
}

#[derive(Debug)]
struct WarnState {
    last_warned: HashMap<IpAddr, Instant>,
    next_sweep: Option<Instant>,
}

impl WarnThrottle {
    /// A throttle that lets one warning per address through every `every`.
    pub fn new(every: Duration) -> Self {
        WarnThrottle {
            every,
            state: Mutex::new(WarnState {
                last_warned: HashMap::new(),
                next_sweep: None,
            }),
        }
    }

    /// Whether a warning about `ip` may be logged at `now` (and, if so, records it).
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let every = self.every;
        let mut state = self.state.lock();
        if state.next_sweep.is_none_or(|at| now >= at) {
            state
                .last_warned
                .retain(|_, warned| now.saturating_duration_since(*warned) < every);
            state.next_sweep = Some(now + every);
        }
        match state.last_warned.get(&ip) {
            Some(warned) if now.saturating_duration_since(*warned) < every => false,
            _ => {
                state.last_warned.insert(ip, now);
                true
            }
        }
    }

    /// Addresses remembered (warned about within the last `every`, or not yet swept).
    pub fn remembered(&self) -> usize {
        self.state.lock().last_warned.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let mapped = SocketAddr::new(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()), 4000);
        assert_eq!(client_ip(mapped), A);
        let plain_v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(client_ip(SocketAddr::new(plain_v6, 1)), plain_v6);

        let counts = Arc::new(IpConnections::default());
        let _v4 = counts.try_acquire(client_ip(SocketAddr::new(A, 1)), 2).expect("first");
        let _v6 = counts.try_acquire(client_ip(mapped), 2).expect("second, same client");
        assert!(
            counts.try_acquire(client_ip(mapped), 2).is_none(),
            "one allowance for both forms"
        );
        assert_eq!(counts.count(A), 2);
        assert_eq!(counts.addresses(), 1);
    }

    #[test]
    fn refuses_at_the_limit_and_releases_on_drop() {
        let counts = Arc::new(IpConnections::default());
        let first = counts.try_acquire(A, 2).expect("1 of 2");
        let second = counts.try_acquire(A, 2).expect("2 of 2");
        assert!(counts.try_acquire(A, 2).is_none());
        let other = counts.try_acquire(B, 2).expect("another address has its own allowance");
        assert_eq!(first.ip(), A);
        drop(second);
        assert_eq!(counts.count(A), 1);
        let _again = counts.try_acquire(A, 2).expect("a released slot can be taken again");
        drop(other);
        assert_eq!(counts.count(B), 0);
    }

    #[test]
    fn an_address_is_forgotten_when_its_count_reaches_zero() {
        let counts = Arc::new(IpConnections::default());
        let slots: Vec<_> = (0..3)
            .map(|_| counts.try_acquire(A, 3).expect("within limit"))
            .collect();
        assert!(counts.try_acquire(B, 0).is_none(), "a limit of 0 admits nothing");
        assert_eq!(counts.addresses(), 1, "a refusal leaves no entry behind");
        drop(slots);
        assert_eq!(counts.addresses(), 0);
        assert_eq!(counts.count(A), 0);
    }

    #[test]
    fn warnings_pass_once_per_address_per_interval() {
        let throttle = WarnThrottle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(throttle.allow(A, t0));
        assert!(!throttle.allow(A, t0 + Duration::from_secs(59)));
        assert!(
            throttle.allow(B, t0 + Duration::from_secs(1)),
            "addresses are throttled apart"
        );
        assert!(throttle.allow(A, t0 + Duration::from_secs(60)));
        assert_eq!(throttle.remembered(), 2);
        // Two intervals later both are stale: the next call sweeps them.
        assert!(throttle.allow(A, t0 + Duration::from_secs(180)));
        assert_eq!(throttle.remembered(), 1);
    }
}
