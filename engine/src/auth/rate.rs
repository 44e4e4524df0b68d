//! A per-client fixed-window limiter for the sign-in endpoints: enough to stop a script from
//! hammering login and callback, without a shared store (each replica counts its own). Keyed by
//! other things too: the webhook counts the rejected deliveries it records per project.

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

#[cfg(test)]
mod tests {
    use super::*;

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
