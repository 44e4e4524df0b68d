//! Addresses of the simulated nodes and pods. The machine routes the stack's network, 10.N.0.0/16
//! (N = 244 by default; the test and bench stacks use their own, so that they can run beside the
//! development one), to itself (as it does 127.0.0.0/8), so any of these addresses can be bound;
//! unlike loopback ones, the API server accepts them in EndpointSlices, so Services and the service
//! proxy take their real paths.
//!
//! Node `i` (1-based) is `sim-node-i`, its kubelet listens on `10.N.0.{10+i}:10250` (the addresses
//! the kubelet certificate names: 10.N.0.10-29), and its pods get `10.N.{i}.{2..254}`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};

/// The second octet of the network: one per process, set once at start ([`use_network`]).
static NETWORK: AtomicU8 = AtomicU8::new(244);

/// Parses `10.N.0.0/16` and makes it this process's network.
pub fn use_network(cidr: &str) -> Result<(), String> {
    let octet = cidr
        .strip_prefix("10.")
        .and_then(|rest| rest.strip_suffix(".0.0/16"))
        .and_then(|n| n.parse::<u8>().ok())
        .ok_or_else(|| format!("{cidr:?} is not a network of the form 10.N.0.0/16"))?;
    NETWORK.store(octet, Ordering::SeqCst);
    Ok(())
}

fn network() -> u8 {
    NETWORK.load(Ordering::SeqCst)
}

/// The kubelet certificate covers 10.244.0.10-29.
pub const MAX_NODES: usize = 19;
pub const KUBELET_PORT: u16 = 10250;

pub fn node_name(node: usize) -> String {
    format!("sim-node-{node}")
}

pub fn node_ip(node: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, network(), 0, 10 + node as u8)
}

pub fn pod_cidr(node: usize) -> String {
    format!("10.{}.{node}.0/24", network())
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
        Some(Ipv4Addr::new(10, network(), node as u8, host))
    }

    /// Keeps the address a pod already had (the simulator restarted): `false` when it is not one
    /// of the node's or is taken.
    pub fn reserve(&mut self, node: usize, ip: Ipv4Addr) -> bool {
        let [a, b, n, host] = ip.octets();
        if (a, b) != (10, network())
            || n as usize != node
            || !(FIRST_HOST..=LAST_HOST).contains(&host)
        {
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
    fn only_networks_of_the_form_10_n_0_0_16_are_taken() {
        assert!(use_network("10.244.0.0/16").is_ok());
        for bad in [
            "10.244.0.0/24",
            "192.168.0.0/16",
            "10.300.0.0/16",
            "10.244.1.0/16",
        ] {
            assert!(use_network(bad).is_err(), "{bad}");
        }
        assert_eq!(network(), 244);
    }

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
