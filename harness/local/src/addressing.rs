//! Pod addresses per node: `10.244.N.0/24`, gateway `.1`, pods `.2`–`.254`, reused after delete.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// First and last host number handed to pods.
const FIRST_POD_HOST: u8 = 2;
const LAST_POD_HOST: u8 = 254;

/// The address plan of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddressing {
    /// N in `10.244.N.0/24`.
    pub index: u8,
}

impl NodeAddressing {
    /// The node-side gateway of every pod link, `10.244.N.1`.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, self.index, 1)
    }

    /// Pod `host`'s address, `10.244.N.host`.
    pub fn pod_ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, self.index, host)
    }

    /// The node's pod CIDR, as `spec.podCIDR` shows it.
    pub fn pod_cidr(&self) -> String {
        format!("10.244.{}.0/24", self.index)
    }

    /// The node's own address (InternalIP, pods' hostIP): `10.240.0.N`.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 240, 0, self.index)
    }
}

/// The host numbers in use on one node; the lowest free one is handed out next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodAddressPool {
    used: BTreeSet<u8>,
}

impl PodAddressPool {
    /// Takes the lowest free host number, or `None` when all 253 are in use.
    pub fn allocate(&mut self) -> Option<u8> {
        let host = (FIRST_POD_HOST..=LAST_POD_HOST).find(|h| !self.used.contains(h))?;
        self.used.insert(host);
        Some(host)
    }

    /// Returns a host number to the pool.
    pub fn release(&mut self, host: u8) {
        self.used.remove(&host);
    }

    /// How many addresses are handed out.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_follow_the_node_index() {
        let node = NodeAddressing { index: 3 };
        assert_eq!(node.gateway(), Ipv4Addr::new(10, 244, 3, 1));
        assert_eq!(node.pod_ip(7), Ipv4Addr::new(10, 244, 3, 7));
        assert_eq!(node.pod_cidr(), "10.244.3.0/24");
        assert_eq!(node.host_ip(), Ipv4Addr::new(10, 240, 0, 3));
    }

    #[test]
    fn pool_hands_out_lowest_free_and_runs_out() {
        let mut pool = PodAddressPool::default();
        assert_eq!(pool.allocate(), Some(2));
        assert_eq!(pool.allocate(), Some(3));
        pool.release(2);
        assert_eq!(pool.allocate(), Some(2));
        while pool.allocate().is_some() {}
        assert_eq!(pool.in_use(), 253);
        assert_eq!(pool.allocate(), None);
    }

    proptest! {
        #[test]
        fn pool_never_hands_out_an_address_twice(ops in proptest::collection::vec(any::<bool>(), 1..400)) {
            let mut pool = PodAddressPool::default();
            let mut held: Vec<u8> = Vec::new();
            for allocate in ops {
                if allocate || held.is_empty() {
                    if let Some(h) = pool.allocate() {
                        prop_assert!(!held.contains(&h));
                        prop_assert!((FIRST_POD_HOST..=LAST_POD_HOST).contains(&h));
                        held.push(h);
                    } else {
                        prop_assert_eq!(held.len(), 253);
                    }
                } else {
                    let h = held.remove(0);
                    pool.release(h);
                }
                prop_assert_eq!(pool.in_use(), held.len());
            }
        }
    }
}
