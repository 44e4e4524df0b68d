//! Addresses of the simulated nodes and pods. The machine routes 10.244.0.0/16 to itself (as it
//! does 127.0.0.0/8), so any of these addresses can be bound; unlike loopback ones, the API server
//! accepts them in EndpointSlices, so Services and the service proxy take their real paths.
//!
//! Node `i` (1-based) is `sim-node-i`, its kubelet listens on `10.244.0.{10+i}:10250` (the
//! addresses the kubelet certificate names: 10.244.0.10-29), and its pods get `10.244.{i}.{2..254}`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The kubelet certificate covers 10.244.0.10-29.
pub const MAX_NODES: usize = 19;
pub const KUBELET_PORT: u16 = 10250;

pub fn node_name(node: usize) -> String {
    format!("sim-node-{node}")
}

pub fn node_ip(node: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 0, 10 + node as u8)
}

pub fn pod_cidr(node: usize) -> String {
    format!("10.244.{node}.0/24")
}

const FIRST_HOST: u8 = 2;
const LAST_HOST: u8 = 254;

/// The pod addresses in use on each node; freed ones are handed out again, lowest first.
#[derive(Debug, Default)]
pub struct PodAddresses {
    used: Vec<BTreeSet<u8>>,
}

impl PodAddresses {
    fn node(&mut self, node: usize) -> &mut BTreeSet<u8> {
        if self.used.len() <= node {
            self.used.resize_with(node + 1, BTreeSet::new);
        }
        &mut self.used[node]
    }

    /// A free address on the node, or `None` when all 253 are taken.
    pub fn allocate(&mut self, node: usize) -> Option<Ipv4Addr> {
        let used = self.node(node);
        let host = (FIRST_HOST..=LAST_HOST).find(|h| !used.contains(h))?;
        used.insert(host);
        Some(Ipv4Addr::new(10, 244, node as u8, host))
    }

    /// Keeps the address a pod already had (the simulator restarted): `false` when it is not one
    /// of the node's or is taken.
    pub fn reserve(&mut self, node: usize, ip: Ipv4Addr) -> bool {
        let [a, b, n, host] = ip.octets();
        if (a, b) != (10, 244) || n as usize != node || !(FIRST_HOST..=LAST_HOST).contains(&host) {
            return false;
        }
        self.node(node).insert(host)
    }

    pub fn release(&mut self, node: usize, ip: Ipv4Addr) {
        let [_, _, n, host] = ip.octets();
        if n as usize == node {
            self.node(node).remove(&host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_have_fixed_names_and_addresses() {
        assert_eq!(node_name(3), "sim-node-3");
        assert_eq!(node_ip(1), Ipv4Addr::new(10, 244, 0, 11));
        assert_eq!(node_ip(MAX_NODES), Ipv4Addr::new(10, 244, 0, 29));
    }

    #[test]
    fn pod_addresses_are_reused_once_freed() {
        let mut a = PodAddresses::default();
        assert_eq!(a.allocate(2), Some(Ipv4Addr::new(10, 244, 2, 2)));
        assert_eq!(a.allocate(2), Some(Ipv4Addr::new(10, 244, 2, 3)));
        assert_eq!(a.allocate(1), Some(Ipv4Addr::new(10, 244, 1, 2)));
        a.release(2, Ipv4Addr::new(10, 244, 2, 2));
        assert_eq!(a.allocate(2), Some(Ipv4Addr::new(10, 244, 2, 2)));
        assert_eq!(a.allocate(2), Some(Ipv4Addr::new(10, 244, 2, 4)));
    }

    #[test]
    fn a_restarted_simulator_keeps_the_addresses_pods_had() {
        let mut a = PodAddresses::default();
        assert!(a.reserve(1, Ipv4Addr::new(10, 244, 1, 7)));
        assert!(!a.reserve(1, Ipv4Addr::new(10, 244, 1, 7)), "taken");
        assert!(
            !a.reserve(1, Ipv4Addr::new(10, 244, 2, 7)),
            "another node's"
        );
        assert!(!a.reserve(1, Ipv4Addr::new(127, 0, 0, 1)));
        for _ in 0..252 {
            assert!(a.allocate(1).is_some());
        }
        assert_eq!(a.allocate(1), None, "all 253 in use");
    }
}
