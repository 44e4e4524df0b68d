//! The canary decision and the replica arithmetic of a traffic split: pure functions, so that every
//! case is a unit test. The worker feeds them measurements and carries out what they decide.

use std::time::Duration;

/// What a step's analysis is held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Roll back above this error rate, in percent (the seed's 2%).
    pub max_error_rate: f64,
    /// Fewer requests than this in the window is inconclusive.
    pub min_requests: f64,
    /// Inconclusive analyses a step tolerates before the deployment fails.
    pub inconclusive_limit: u32,
}

/// One analysis: what Prometheus answered. `None` is "no series": no traffic reached the track.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measurement {
    /// A ratio (0.0–1.0) as the error-rate query returns it.
    pub error_ratio: Option<f64>,
    pub requests: Option<f64>,
}

/// Where the step stands when the measurement arrives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepClock {
    /// How long the step's weight has been serving.
    pub held_for: Duration,
    /// How long the spec asks to hold it.
    pub pause: Duration,
    /// Inconclusive analyses already recorded in this step (this one not counted).
    pub inconclusive_before: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The step passed: go to the next weight.
    Promote,
    /// Healthy so far, but the pause is not over.
    Hold,
    /// Too little traffic to judge: measure again (never counted as a pass).
    Inconclusive,
    /// The error rate crossed the threshold.
    RollBack { reason: String },
    /// Inconclusive for too long: the policy says fail rather than guess.
    GiveUp { reason: String },
}

impl Decision {
    /// How the analysis is recorded.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Promote => "pass",
            Decision::Hold => "hold",
            Decision::Inconclusive => "inconclusive",
            Decision::RollBack { .. } => "breach",
            Decision::GiveUp { .. } => "gave_up",
        }
    }
}

pub fn decide(weight: u32, m: Measurement, clock: StepClock, policy: Policy) -> Decision {
    let requests = m.requests.unwrap_or(0.0);
    let enough = requests >= policy.min_requests && policy.min_requests.is_finite();
    match (m.error_ratio, enough) {
        // Both verdicts need enough requests: one error in five requests is noise, not 20%.
        (Some(ratio), true) if ratio.is_finite() && ratio * 100.0 > policy.max_error_rate => {
            Decision::RollBack {
                reason: format!(
                    "error rate {:.2}% exceeded {}% at {weight}% of traffic ({requests:.0} requests)",
                    ratio * 100.0,
                    policy.max_error_rate
                ),
            }
        }
        (Some(ratio), true) if ratio.is_finite() => {
            if clock.held_for >= clock.pause {
                Decision::Promote
            } else {
                Decision::Hold
            }
        }
        // No series, NaN (0/0), or too few requests: inconclusive.
        _ => {
            if clock.inconclusive_before + 1 >= policy.inconclusive_limit {
                Decision::GiveUp {
                    reason: format!(
                        "inconclusive at {weight}% of traffic: {} analyses saw {requests:.0} requests (at least {} needed); \
                         a canary without traffic is not judged healthy",
                        clock.inconclusive_before + 1,
                        policy.min_requests
                    ),
                }
            } else {
                Decision::Inconclusive
            }
        }
    }
}

/// How many canary pods to run beside `stable` pods so that the canary gets about `weight`
/// percent of the requests. The stable track is never scaled down during analysis: an abort then
/// only has to remove the canary, and capacity never dips.
pub fn canary_replicas(weight: u32, stable: i32) -> i32 {
    let weight = weight.clamp(1, 99) as f64;
    let stable = stable.max(1) as f64;
    ((stable * weight / (100.0 - weight)).ceil() as i32).max(1)
}

/// Canary pods for `weight` percent of the traffic when a route sets the weight exactly: enough
/// capacity for that share of what the stable pods serve.
pub fn replicas_for_share(weight: u32, stable: i32) -> i32 {
    ((stable.max(1) as f64 * weight.min(100) as f64 / 100.0).ceil() as i32).max(1)
}

/// The share of traffic the canary actually gets with a replica-ratio split, in percent.
pub fn effective_weight(canary: i32, stable: i32) -> f64 {
    let total = (canary.max(0) + stable.max(0)) as f64;
    if total == 0.0 {
        0.0
    } else {
        canary.max(0) as f64 * 100.0 / total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        max_error_rate: 2.0,
        min_requests: 50.0,
        inconclusive_limit: 3,
    };

    fn clock(held: u64, pause: u64, inconclusive: u32) -> StepClock {
        StepClock {
            held_for: Duration::from_secs(held),
            pause: Duration::from_secs(pause),
            inconclusive_before: inconclusive,
        }
    }

    fn m(ratio: Option<f64>, requests: Option<f64>) -> Measurement {
        Measurement {
            error_ratio: ratio,
            requests,
        }
    }

    /// The whole table: (error ratio, requests, held, pause, inconclusive so far) → decision.
    #[test]
    fn the_decision_table() {
        use Decision::*;
        let cases: &[(Option<f64>, Option<f64>, u64, u64, u32, &str)] = &[
            // Healthy with traffic: hold until the pause is over, then promote.
            (Some(0.0), Some(100.0), 0, 60, 0, "hold"),
            (Some(0.01), Some(100.0), 59, 60, 0, "hold"),
            (Some(0.01), Some(100.0), 60, 60, 0, "pass"),
            (Some(0.0), Some(100.0), 0, 0, 0, "pass"),
            // Exactly at the threshold is not above it.
            (Some(0.02), Some(1000.0), 60, 60, 0, "pass"),
            // Above the threshold with enough traffic: roll back, whatever the clock says.
            (Some(0.0201), Some(1000.0), 0, 60, 0, "breach"),
            (Some(0.05), Some(50.0), 0, 60, 0, "breach"),
            (Some(0.05), Some(100.0), 600, 60, 2, "breach"),
            // Too little traffic, no series at all, or 0/0: inconclusive, never a pass…
            (Some(0.0), Some(49.0), 60, 60, 0, "inconclusive"),
            (Some(0.5), Some(10.0), 0, 60, 0, "inconclusive"),
            (None, None, 60, 60, 0, "inconclusive"),
            (None, Some(100.0), 60, 60, 1, "inconclusive"),
            (Some(f64::NAN), Some(0.0), 60, 60, 0, "inconclusive"),
            (Some(0.0), None, 60, 60, 0, "inconclusive"),
            // …until the policy's limit, then the deployment fails.
            (Some(0.0), Some(0.0), 60, 60, 2, "gave_up"),
            (None, None, 0, 60, 5, "gave_up"),
        ];
        for &(ratio, requests, held, pause, inc, want) in cases {
            let got = decide(10, m(ratio, requests), clock(held, pause, inc), POLICY);
            assert_eq!(
                got.label(),
                want,
                "{ratio:?} {requests:?} held {held}/{pause} inconclusive {inc}: {got:?}"
            );
            match got {
                RollBack { reason } => assert!(reason.contains("at 10% of traffic"), "{reason}"),
                GiveUp { reason } => assert!(reason.contains("inconclusive"), "{reason}"),
                Promote | Hold | Inconclusive => {}
            }
        }
    }

    #[test]
    fn the_rollback_reason_carries_the_measured_values() {
        let d = decide(50, m(Some(0.051), Some(1234.0)), clock(0, 60, 0), POLICY);
        assert_eq!(
            d,
            Decision::RollBack {
                reason: "error rate 5.10% exceeded 2% at 50% of traffic (1234 requests)".into()
            }
        );
    }

    #[test]
    fn canary_replicas_approximate_the_weight_without_touching_stable() {
        assert_eq!(canary_replicas(10, 9), 1);
        assert_eq!(canary_replicas(10, 3), 1);
        assert_eq!(canary_replicas(50, 3), 3);
        assert_eq!(canary_replicas(50, 1), 1);
        assert_eq!(canary_replicas(25, 3), 1);
        assert_eq!(canary_replicas(90, 1), 9);
        // Never zero, whatever the inputs.
        assert_eq!(canary_replicas(1, 0), 1);
        assert_eq!(canary_replicas(100, 2), 198);
        assert_eq!(replicas_for_share(10, 2), 1);
        assert_eq!(replicas_for_share(50, 4), 2);
        assert_eq!(replicas_for_share(50, 3), 2);
        assert_eq!(replicas_for_share(1, 0), 1);
        assert_eq!(effective_weight(1, 9), 10.0);
        assert_eq!(effective_weight(1, 3), 25.0);
        assert_eq!(effective_weight(0, 0), 0.0);
    }
}
