//! IPv4 ranges: the cluster's docker network, pod ranges and the search for a free subnet.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR form (`10.244.1.0/24`); the address is always the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network containing `addr` with `prefix` bits; `None` if `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The `n`th address of the network (1 is the usual gateway).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(n))
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        let shorter = self.prefix.min(other.prefix);
        u32::from(self.addr) & mask(shorter) == u32::from(other.addr) & mask(shorter)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not in CIDR form (a.b.c.d/n)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("`{prefix}` is not a prefix length"))?;
        Ipv4Cidr::new(addr, prefix).ok_or_else(|| format!("prefix /{prefix} is longer than 32"))
    }
}

impl serde::Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The first `/prefix` network inside `pool` that overlaps none of `used`.
pub fn free_subnet(pool: Ipv4Cidr, prefix: u8, used: &[Ipv4Cidr]) -> Option<Ipv4Cidr> {
    if prefix < pool.prefix || prefix > 32 {
        return None;
    }
    let count = 1u64 << (prefix - pool.prefix);
    let step = 1u64 << (32 - prefix);
    (0..count)
        .map(|i| {
            let addr = Ipv4Addr::from((u64::from(u32::from(pool.addr)) + i * step) as u32);
            Ipv4Cidr { addr, prefix }
        })
        .find(|candidate| !used.iter().any(|u| u.overlaps(candidate)))
}

/// The IPv4 destinations of the host's routing table (`/proc/net/route`), so a new network
/// never shadows a route the host already uses. Unreadable tables yield nothing.
pub fn host_routes() -> Vec<Ipv4Cidr> {
    std::fs::read_to_string("/proc/net/route")
        .map(|text| parse_proc_routes(&text))
        .unwrap_or_default()
}

fn parse_proc_routes(text: &str) -> Vec<Ipv4Cidr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            // The kernel prints the raw network-order words as host-order numbers.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            // The default route covers everything; it is no reason to skip a subnet.
            (prefix > 0).then(|| Ipv4Cidr::new(dest, prefix)).flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_normalises_and_rejects() {
        assert_eq!(c("10.244.1.7/24").to_string(), "10.244.1.0/24");
        assert!("10.0.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("x/8".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn overlap_and_contains() {
        assert!(c("10.0.0.0/8").overlaps(&c("10.244.0.0/16")));
        assert!(c("10.244.0.0/16").overlaps(&c("10.0.0.0/8")));
        assert!(!c("10.244.0.0/16").overlaps(&c("10.96.0.0/16")));
        assert!(c("172.29.3.0/24").contains("172.29.3.200".parse().unwrap()));
        assert!(!c("172.29.3.0/24").contains("172.29.4.1".parse().unwrap()));
        assert_eq!(c("172.29.3.0/24").host(1).to_string(), "172.29.3.1");
    }

    #[test]
    fn free_subnet_skips_used_ranges() {
        let pool = c("172.29.0.0/16");
        assert_eq!(free_subnet(pool, 24, &[]), Some(c("172.29.0.0/24")));
        let used = [c("172.29.0.0/23"), c("172.29.2.128/25")];
        assert_eq!(free_subnet(pool, 24, &used), Some(c("172.29.3.0/24")));
        assert_eq!(free_subnet(pool, 24, &[c("172.16.0.0/12")]), None);
        assert_eq!(free_subnet(pool, 8, &[]), None);
    }

    #[test]
    fn proc_routes_are_read_in_host_order() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(parse_proc_routes(table), vec![c("172.17.0.0/16")]);
    }
}
