//! A service's charts: request rate, error rate and p95 latency over the last hour, as range
//! queries against Prometheus (the configured `metrics.*` PromQL).

use enclii_api::{ApiError, ServiceMetrics};

use super::project_access;
use crate::auth::{Action, Caller};

/// The hour the charts cover and the spacing of their points.
const RANGE_SECS: i64 = 3600;
const STEP_SECS: u32 = 60;

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
    fn queries_are_filled_per_service() {
        let q = crate::config::MetricsSettings::default();
        let filled = super::fill(&q.request_rate_query, "shop-production", "api");
        assert_eq!(
            filled,
            r#"sum(rate(http_requests_total{namespace="shop-production",service="api"}[5m]))"#
        );
        let latency = super::fill(&q.latency_query, "n", "s");
        assert!(latency.contains(r#"namespace="n",service="s""#), "{latency}");
        assert!(!latency.contains("{service}") && !latency.contains("{namespace}"));
    }
}
