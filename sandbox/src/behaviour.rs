//! What a simulated container does, decided by its image name, so that tests and demos can ask for
//! a failure by naming an image: `crashloop` exits with code 1 shortly after starting, `pull-error`
//! cannot be pulled, `stuck` never gets created, `unhealthy` answers 503 once it has been ready
//! (it deploys, then its readiness probe and health checks fail); `slow` takes seconds to become
//! ready; anything else runs and becomes ready. The names that only change what a healthy
//! container's `/metrics` report (`errors`, `degrades`, `no-traffic`) are read by
//! [`error_ratio`] and [`receives_traffic`]. `unschedulable` means nothing here: the scheduler
//! decides where pods go.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs, serves HTTP, and becomes ready once its probe passes.
    Healthy,
    /// Runs for a moment, then exits with code 1; restarted with a growing back-off.
    CrashLoop,
    /// Never starts: the registry does not have the image.
    PullError,
    /// Never gets past `ContainerCreating`.
    Stuck,
    /// Runs and becomes ready, then its HTTP server fails every request except `/metrics`.
    Unhealthy,
}

impl Behaviour {
    pub fn of(image: &str) -> Self {
        if image.contains("crashloop") {
            Self::CrashLoop
        } else if image.contains("pull-error") {
            Self::PullError
        } else if image.contains("stuck") {
            Self::Stuck
        } else if image.contains("unhealthy") {
            Self::Unhealthy
        } else {
            Self::Healthy
        }
    }
}

/// Below this share of its service's traffic a `degrades` track still copes.
const DEGRADES_AT_SHARE: f64 = 0.5;

/// The share of requests an image's pods fail, given the share of the service's traffic its track
/// takes: `errors` always fails 8%, `degrades` 6% once its track takes half the traffic, anything
/// else a background 0.4%.
pub fn error_ratio(image: &str, track_share: f64) -> f64 {
    if image.contains("degrades") {
        if track_share >= DEGRADES_AT_SHARE {
            0.06
        } else {
            0.004
        }
    } else if image.contains("errors") {
        0.08
    } else {
        0.004
    }
}

/// `no-traffic` images get no requests at all: a canary nobody calls.
pub fn receives_traffic(image: &str) -> bool {
    !image.contains("no-traffic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_choose_what_the_container_does() {
        for (image, expected) in [
            ("registry/p/web:crashloop-1", Behaviour::CrashLoop),
            ("registry/p/web:pull-error", Behaviour::PullError),
            ("registry/p/web:stuck", Behaviour::Stuck),
            ("registry/p/web:unhealthy", Behaviour::Unhealthy),
            ("registry/p/web:unschedulable", Behaviour::Healthy),
            ("registry/p/web:errors", Behaviour::Healthy),
            ("registry/p/web:degrades", Behaviour::Healthy),
            ("registry/p/web:no-traffic", Behaviour::Healthy),
            ("registry/p/web:0123456789ab", Behaviour::Healthy),
        ] {
            assert_eq!(Behaviour::of(image), expected, "{image}");
        }
    }

    #[test]
    fn error_ratios_follow_the_image_and_the_tracks_share() {
        assert_eq!(error_ratio("app:errors", 0.1), 0.08);
        assert_eq!(error_ratio("app:degrades", 0.25), 0.004);
        assert_eq!(error_ratio("app:degrades", 0.5), 0.06);
        assert_eq!(error_ratio("app:degrades", 1.0), 0.06);
        assert_eq!(error_ratio("app:2", 0.5), 0.004);
        assert!(!receives_traffic("app:no-traffic"));
        assert!(receives_traffic("app:errors"));
    }
}
