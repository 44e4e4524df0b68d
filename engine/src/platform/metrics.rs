//! A service's charts: request rate, error rate and p95 latency over the last hour, as range
//! queries against Prometheus (the configured `metrics.*` PromQL).

use enclii_api::{ApiError, ServiceMetrics};

use super::project_access;
use crate::auth::{Action, Caller};

/// The hour the charts cover and the spacing of their points.
const RANGE_SECS: i64 = 3600;
const STEP_SECS: u32 = 60;

/// The charts of the current minute by (namespace, service). Their points are a minute apart and
/// end at the current minute, so every view of a service's charts within a minute gets the same
/// answer: Prometheus is asked once a minute per service, however many people look.
#[derive(Default)]
pub struct ChartCache(
    std::sync::Mutex<std::collections::HashMap<(String, String), (i64, ServiceMetrics)>>,
);

impl ChartCache {
    fn get(&self, key: &(String, String), end: i64) -> Option<ServiceMetrics> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(at, _)| *at == end)
            .map(|(_, m)| m.clone())
    }

    fn put(&self, key: (String, String), end: i64, m: &ServiceMetrics) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Older minutes are never read again.
        map.retain(|_, (at, _)| *at >= end);
        map.insert(key, (end, m.clone()));
    }
}

/// Fills a configured query in for one service.
pub fn fill(query: &str, namespace: &str, service: &str) -> String {
    query
        .replace("{namespace}", namespace)
        .replace("{service}", service)
}

/// The charts of a service in one environment (viewer). Without Prometheus, or when it fails,
/// the charts are empty and `unavailable` says why: the page still renders.
pub async fn service(
    engine: &crate::Engine,
    caller: Option<&Caller>,
    project: &str,
    service: &str,
    environment: &str,
) -> crate::Result<ServiceMetrics> {
    let project = project_access(&engine.pool, caller, project, Action::ViewProject).await?;
    let found = sqlx::query!(
        "SELECT e.namespace FROM environments e JOIN services s ON s.project_id = e.project_id
         WHERE e.project_id = $1 AND e.name = $2 AND s.name = $3",
        project.id,
        environment,
        service
    )
    .fetch_optional(&engine.pool)
    .await?;
    let Some(found) = found else {
        return Err(ApiError::not_found(format!(
            "project `{}` has no service `{service}` in an environment `{environment}`",
            project.slug
        ))
        .into());
    };
    let mut out = ServiceMetrics {
        environment: environment.to_owned(),
        step_secs: STEP_SECS,
        requests_per_second: Vec::new(),
        error_ratio: Vec::new(),
        latency_p95_ms: Vec::new(),
        unavailable: None,
    };
    let Some(prometheus) = engine.prometheus.get() else {
        out.unavailable = Some("no Prometheus is configured (canary.prometheus_url)".into());
        return Ok(out);
    };
    let q = &engine.settings.metrics;
    let end = chrono::Utc::now().timestamp() / i64::from(STEP_SECS) * i64::from(STEP_SECS);
    let start = end - RANGE_SECS;
    let ns = &found.namespace;
    let key = (ns.clone(), service.to_owned());
    if let Some(cached) = engine.charts.get(&key, end) {
        return Ok(ServiceMetrics {
            environment: environment.to_owned(),
            ..cached
        });
    }
    let (rq, eq, lq) = (
        fill(&q.request_rate_query, ns, service),
        fill(&q.error_rate_query, ns, service),
        fill(&q.latency_query, ns, service),
    );
    let (requests, errors, latency) = tokio::join!(
        prometheus.range(&rq, start, end, STEP_SECS),
        prometheus.range(&eq, start, end, STEP_SECS),
        prometheus.range(&lq, start, end, STEP_SECS),
    );
    match (requests, errors, latency) {
        (Ok(r), Ok(e), Ok(l)) => {
            out.requests_per_second = r;
            out.error_ratio = e;
            out.latency_p95_ms = l.into_iter().map(|(t, s)| (t, s * 1000.0)).collect();
            // Only answers with data are kept: a failure, or a service just deployed and not yet
            // scraped, is asked again at the next view.
            if !out.requests_per_second.is_empty() {
                engine.charts.put(key, end, &out);
            }
        }
        (Err(message), _, _) | (_, Err(message), _) | (_, _, Err(message)) => {
            tracing::warn!(%message, "charts: Prometheus query failed");
            out.unavailable = Some(message);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cache_answers_within_its_minute_and_forgets_older_ones() {
        let cache = super::ChartCache::default();
        let m = enclii_api::ServiceMetrics {
            environment: "production".into(),
            step_secs: 60,
            requests_per_second: vec![(60, 1.0)],
            error_ratio: vec![],
            latency_p95_ms: vec![],
            unavailable: None,
        };
        let a = ("ns".to_owned(), "api".to_owned());
        let b = ("ns".to_owned(), "web".to_owned());
        cache.put(a.clone(), 60, &m);
        assert_eq!(cache.get(&a, 60), Some(m.clone()));
        assert_eq!(cache.get(&a, 120), None, "a new minute asks again");
        assert_eq!(cache.get(&b, 60), None);
        cache.put(b.clone(), 120, &m);
        assert_eq!(
            cache.0.lock().unwrap().len(),
            1,
            "the older minute is dropped"
        );
    }

    #[test]
    fn queries_are_filled_per_service() {
        let q = crate::config::MetricsSettings::default();
        let filled = super::fill(&q.request_rate_query, "shop-production", "api");
        assert_eq!(
            filled,
            r#"sum(rate(http_requests_total{namespace="shop-production",service="api"}[5m]))"#
        );
        let latency = super::fill(&q.latency_query, "n", "s");
        assert!(
            latency.contains(r#"namespace="n",service="s""#),
            "{latency}"
        );
        assert!(!latency.contains("{service}") && !latency.contains("{namespace}"));
    }
}
