//! Where connections come from. One local address has about 28,000 ephemeral ports, and a hub
//! limits connections per client address (wshub: `websocket.max_connections_per_ip`, 1,000 by
//! default), so large runs spread their connections over 127.0.0.1, 127.0.0.2, … (all of
//! 127.0.0.0/8 is loopback on Linux), binding each socket before it connects, round-robin.
//! Also here: raising the open-file limit so that many sockets fit at all.

use anyhow::{Result, bail};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// With `auto`, at most this many connections share one source address.
const AUTO_PER_ADDRESS: usize = 500;
/// With `auto`, at most this many source addresses (127.0.0.1 … 127.0.0.250).
const AUTO_MAX_ADDRESSES: usize = 250;
/// Open files the generator needs besides its connections.
const SPARE_FILES: u64 = 64;

/// What `--source-ips` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceIps {
    /// On a loopback target, enough 127.0.0.x addresses; elsewhere the system's choice.
    Auto,
    /// These addresses, round-robin (empty: the system's choice).
    Listed(Vec<IpAddr>),
}

impl SourceIps {
    /// `auto`, `none`, `127.0.0.1-127.0.0.50`, or `a,b,c` (ranges allowed in the list).
    pub fn parse(text: &str) -> Result<SourceIps, String> {
        match text.trim() {
            "auto" => return Ok(SourceIps::Auto),
            "none" | "" => return Ok(SourceIps::Listed(Vec::new())),
            _ => {}
        }
        let mut addresses = Vec::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            match part.split_once('-') {
                Some((first, last)) => {
                    let first: Ipv4Addr = first.trim().parse().map_err(|_| bad_address(first))?;
                    let last: Ipv4Addr = last.trim().parse().map_err(|_| bad_address(last))?;
                    let (first, last) = (u32::from(first), u32::from(last));
                    if last < first || last - first >= 65_536 {
                        return Err(format!("{part:?} is not a range of at most 65,536 IPv4 addresses"));
                    }
                    addresses.extend((first..=last).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
                }
                None => addresses.push(part.parse().map_err(|_| bad_address(part))?),
            }
        }
        Ok(SourceIps::Listed(addresses))
    }

    /// The addresses for `connections` connections to `host`.
    pub fn resolve(&self, host: &str, connections: usize) -> SourcePool {
        let addresses = match self {
            SourceIps::Listed(addresses) => addresses.clone(),
            SourceIps::Auto => {
                let loopback = host == "localhost" || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
                let wanted = connections.div_ceil(AUTO_PER_ADDRESS).clamp(1, AUTO_MAX_ADDRESSES);
                if loopback && wanted > 1 {
                    (1..=wanted)
                        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n as u8)))
                        .collect()
                } else {
                    Vec::new()
                }
            }
        };
        SourcePool {
            addresses,
            next: AtomicUsize::new(0),
        }
    }
}

fn bad_address(text: &str) -> String {
    format!("{:?} is not an IP address", text.trim())
}

/// Source addresses handed out round-robin.
#[derive(Debug)]
pub struct SourcePool {
    addresses: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourcePool {
    /// The address for the next connection; `None`: let the system choose.
    pub fn next(&self) -> Option<IpAddr> {
        if self.addresses.is_empty() {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.addresses.len();
        Some(self.addresses[index])
    }

    /// How many addresses (0: the system's choice).
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// `127.0.0.1-127.0.0.4`-style description.
    pub fn describe(&self) -> String {
        match self.addresses.as_slice() {
            [] => "chosen by the system".to_owned(),
            [only] => only.to_string(),
            [first, .., last] => format!("{first}-{last} ({} addresses)", self.addresses.len()),
        }
    }

    /// Fails, saying what to do, when `connections` cannot all get a port.
    pub fn check_ports(&self, connections: usize) -> Result<()> {
        let ports = ephemeral_ports();
        let per_address = connections.div_ceil(self.addresses.len().max(1));
        if per_address > ports {
            bail!(
                "{connections} connections from {} need {per_address} local ports per address, but the system \
                 has {ports} (net.ipv4.ip_local_port_range): spread them with --source-ips 127.0.0.1-127.0.0.{}",
                self.describe(),
                connections.div_ceil(ports).clamp(2, 254)
            );
        }
        Ok(())
    }
}

/// Size of the ephemeral port range.
fn ephemeral_ports() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<usize>().ok());
            let (low, high) = (bounds.next()??, bounds.next()??);
            high.checked_sub(low).map(|span| span + 1)
        })
        .unwrap_or(28_232)
}

/// Raises the open-file soft limit to the hard limit; fails, saying what to do, when
/// `connections` sockets still do not fit.
pub fn raise_file_limit(connections: usize) -> Result<()> {
    let needed = connections as u64 + SPARE_FILES;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        // Not raisable here (not Linux, or not allowed): the connections will tell.
        Err(_) => return Ok(()),
    };
    if limit < needed {
        bail!(
            "{connections} connections need about {needed} open files, but this process may open {limit}: \
             raise the hard limit (ulimit -Hn, or LimitNOFILE= for a service) or use fewer connections"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(text: &str) -> Vec<String> {
        match SourceIps::parse(text).expect("valid") {
            SourceIps::Listed(addresses) => addresses.iter().map(ToString::to_string).collect(),
            SourceIps::Auto => panic!("not a list"),
        }
    }

    #[test]
    fn ranges_and_lists_parse() {
        assert_eq!(listed("127.0.0.1-127.0.0.3"), ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
        assert_eq!(
            listed("127.0.0.9, 127.0.1.1-127.0.1.2"),
            ["127.0.0.9", "127.0.1.1", "127.0.1.2"]
        );
        assert_eq!(listed("127.0.0.255-127.0.1.0"), ["127.0.0.255", "127.0.1.0"]);
        assert!(listed("none").is_empty());
        assert_eq!(SourceIps::parse("auto"), Ok(SourceIps::Auto));
        assert!(SourceIps::parse("127.0.0.5-127.0.0.1").is_err());
        assert!(SourceIps::parse("localhost").is_err());
    }

    #[test]
    fn auto_spreads_only_large_loopback_runs() {
        assert_eq!(SourceIps::Auto.resolve("127.0.0.1", 400).len(), 0);
        let pool = SourceIps::Auto.resolve("127.0.0.1", 1001);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.describe(), "127.0.0.1-127.0.0.3 (3 addresses)");
        assert_eq!(SourceIps::Auto.resolve("localhost", 1_000_000).len(), 250);
        assert_eq!(SourceIps::Auto.resolve("10.1.2.3", 100_000).len(), 0);
    }

    #[test]
    fn addresses_are_handed_out_round_robin() {
        let pool = SourceIps::parse("127.0.0.1-127.0.0.2").expect("valid").resolve("x", 4);
        let seen: Vec<_> = (0..4).map(|_| pool.next().expect("an address").to_string()).collect();
        assert_eq!(seen, ["127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"]);
        assert_eq!(SourceIps::Listed(Vec::new()).resolve("x", 1).next(), None);
    }

    #[test]
    fn too_many_connections_per_address_are_refused_with_a_hint() {
        let pool = SourceIps::Listed(Vec::new()).resolve("127.0.0.1", 10);
        assert!(pool.check_ports(10).is_ok());
        let error = pool.check_ports(1_000_000).expect_err("too many").to_string();
        assert!(error.contains("--source-ips 127.0.0.1-127.0.0."), "{error}");
    }
}
