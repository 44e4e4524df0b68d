//! A per-client fixed-window limiter for the sign-in endpoints: enough to stop a script from
//! hammering login and callback, without a shared store (each replica counts its own). Keyed by
//! other things too: the webhook counts the rejected deliveries it records per project.
//!
//! Which client a sign-in comes from is [`client_addr`]: behind an ingress every client arrives from
//! the proxy's address, so one limiter key would be shared by everyone (one script locks all users
//! out). The proxy's `X-Forwarded-For` names the client, but anyone can send that header, so it is
//! read only from a peer in `http.trusted_proxies`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter<K = IpAddr> {
    per_window: u32,
    window: Duration,
    seen: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Hash + Eq> Limiter<K> {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt from `addr` at `now`; false when it is over the limit.
    pub fn allow(&self, addr: K, now: Instant) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget finished windows now and then, so that the map cannot grow without bound.
        if seen.len() > 10_000 {
            seen.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = seen.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_window
    }
}

/// The address to count a request against: the peer itself, unless the peer is a trusted proxy;
/// then the right-most `X-Forwarded-For` address that is not itself a trusted proxy (each proxy
/// appends the address it received from, so the right-most entries are the ones ours wrote and
/// anything to their left is whatever the client sent). `forwarded_for` is every
/// `X-Forwarded-For` header's value, in order. An entry that is not an address stops the walk at
/// the nearest proxy: no trusted proxy of ours writes one, so it came from the client.
/// The client of a request from `peer` (`None` when the server runs without connection info, as
/// some tests do): [`client_addr`] over its `X-Forwarded-For` headers. What sign-in limits,
/// audit records and stream limits key by, alike.
pub fn request_client(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    peer.map(|peer| client_addr(peer, forwarded, trusted))
}

pub fn client_addr<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |addr: &IpAddr| trusted.iter().any(|net| net.contains(addr));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        let Ok(addr) = entry.parse::<IpAddr>() else {
            return nearest;
        };
        // An IPv4 client through an IPv6 socket reads as `::ffff:a.b.c.d`: one client, one key.
        let addr = addr.to_canonical();
        if !is_trusted(&addr) {
            return addr;
        }
        nearest = addr;
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_behind_trusted_proxies_is_the_right_most_untrusted_forwarded_address() {
        let trusted: Vec<ipnet::IpNet> = ["10.0.0.0/8", "fd00::/8"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // (peer, X-Forwarded-For headers, trusted proxies, the key)
        let table: &[(&str, &[&str], &[ipnet::IpNet], &str)] = &[
            // No proxies configured: the header is never read.
            ("203.0.113.9", &["198.51.100.1"], &[], "203.0.113.9"),
            ("10.0.0.5", &["198.51.100.1"], &[], "10.0.0.5"),
            // An untrusted peer's header is ignored, whatever it says.
            ("203.0.113.9", &["198.51.100.1"], &trusted, "203.0.113.9"),
            ("203.0.113.9", &["10.0.0.1"], &trusted, "203.0.113.9"),
            // Through one trusted proxy: the address it appended.
            ("10.0.0.5", &["198.51.100.1"], &trusted, "198.51.100.1"),
            // A client's forged entries are to the left of what the proxy appended.
            (
                "10.0.0.5",
                &["1.2.3.4, 198.51.100.1"],
                &trusted,
                "198.51.100.1",
            ),
            (
                "10.0.0.5",
                &["1.2.3.4", "198.51.100.1"],
                &trusted,
                "198.51.100.1",
            ),
            // Through two trusted proxies: skip the inner one.
            (
                "10.0.0.5",
                &["1.2.3.4, 198.51.100.1, 10.0.0.7"],
                &trusted,
                "198.51.100.1",
            ),
            // No header, or only proxies in it: the nearest proxy is all we know.
            ("10.0.0.5", &[], &trusted, "10.0.0.5"),
            ("10.0.0.5", &["10.0.0.7"], &trusted, "10.0.0.7"),
            // Garbage stops the walk at the nearest proxy (no proxy of ours writes it).
            (
                "10.0.0.5",
                &["198.51.100.1, nonsense"],
                &trusted,
                "10.0.0.5",
            ),
            (
                "10.0.0.5",
                &["1.2.3.4, nonsense, 10.0.0.7"],
                &trusted,
                "10.0.0.7",
            ),
            // IPv6, and IPv4 written as IPv6 counts as the IPv4 client.
            ("fd00::1", &["2001:db8::1"], &trusted, "2001:db8::1"),
            (
                "10.0.0.5",
                &["::ffff:198.51.100.1"],
                &trusted,
                "198.51.100.1",
            ),
        ];
        for (peer, headers, trusted, want) in table {
            assert_eq!(
                client_addr(ip(peer), headers.iter().copied(), trusted),
                ip(want),
                "peer {peer}, X-Forwarded-For {headers:?}"
            );
        }
    }

    #[test]
    fn each_address_gets_its_own_window() {
        let limiter = Limiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limiter.allow(a, t0));
        assert!(limiter.allow(a, t0));
        assert!(!limiter.allow(a, t0), "third attempt in the window");
        assert!(limiter.allow(b, t0), "another address is not affected");
        assert!(
            limiter.allow(a, t0 + Duration::from_secs(61)),
            "a new window starts afresh"
        );
    }
}
