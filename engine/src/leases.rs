//! Lease tokens for the row leases of the deployment and build drivers.
//!
//! Every write a driver makes is fenced by `lease_owner = its token`. The token was the replica's
//! name (host and pid), which is the same for every claim a replica makes: a driver that stalled
//! past its lease, whose work the same replica then claimed again, still passed the fence and could
//! write beside its successor. A token per claim fences it out.

/// A new token for one claim: the replica's name (for people reading `lease_owner`) and a random
/// part that no other claim shares.
pub fn claim_token(replica: &str) -> String {
    format!("{replica}/{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_claim_of_a_replica_gets_its_own_token() {
        let (a, b) = (claim_token("host-1"), claim_token("host-1"));
        assert_ne!(a, b);
        assert!(
            a.starts_with("host-1/") && b.starts_with("host-1/"),
            "{a} {b}"
        );
    }
}
