//! Measuring a canary track in Prometheus: the configured queries, filled in per service, as
//! instant queries over HTTP. An empty answer is "no data", which the decision treats as
//! inconclusive; an unreachable Prometheus is an error the worker retries and records.

use std::time::Duration;

use crate::config::CanarySettings;
use crate::deploy::canary::Measurement;

pub struct Prometheus {
    http: reqwest::Client,
    base: String,
}

/// The queries one analysis ran, as recorded with its result.
pub struct Queries {
    pub error_rate: String,
    pub requests: String,
}

impl Queries {
    pub fn new(settings: &CanarySettings, namespace: &str, service: &str, track: &str) -> Self {
        let fill = |q: &str| {
            q.replace("{namespace}", namespace)
                .replace("{service}", service)
                .replace("{track}", track)
                .replace("{window}", &format!("{}s", settings.window_secs))
        };
        Self {
            error_rate: fill(&settings.error_rate_query),
            requests: fill(&settings.request_count_query),
        }
    }
}

impl Prometheus {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub async fn measure(&self, q: &Queries) -> Result<Measurement, String> {
        Ok(Measurement {
            error_ratio: self.scalar(&q.error_rate).await?,
            requests: self.scalar(&q.requests).await?,
        })
    }

    /// An instant query's first sample; `None` when the result is empty.
    pub async fn instant(&self, query: &str) -> Result<Option<f64>, String> {
        self.scalar(query).await
    }

    /// The first sample of an instant vector (or a scalar); `None` when the result is empty.
    async fn scalar(&self, query: &str) -> Result<Option<f64>, String> {
        let url = format!("{}/api/v1/query", self.base);
        let response = self
            .http
            .post(&url)
            .form(&[("query", query)])
            .send()
            .await
            .map_err(|e| format!("Prometheus at {} is unreachable: {e}", self.base))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| {
            format!("Prometheus answered {status} with a body that is not JSON: {e}")
        })?;
        parse_sample(&body)
    }
}

impl Prometheus {
    /// A range query: the first series of the matrix as (unix seconds, value) points, NaN points
    /// (0/0, no requests) left out; empty when Prometheus has no series.
    pub async fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step_secs: u32,
    ) -> Result<Vec<(i64, f64)>, String> {
        let url = format!("{}/api/v1/query_range", self.base);
        let response = self
            .http
            .post(&url)
            .form(&[
                ("query", query),
                ("start", &start.to_string()),
                ("end", &end.to_string()),
                ("step", &step_secs.to_string()),
            ])
            .send()
            .await
            .map_err(|e| format!("Prometheus at {} is unreachable: {e}", self.base))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| {
            format!("Prometheus answered {status} with a body that is not JSON: {e}")
        })?;
        parse_matrix(&body)
    }
}

/// Reads `{"status":"success","data":{"resultType":"matrix","result":[{"values":[[t,"v"],…]}]}}`.
pub fn parse_matrix(body: &serde_json::Value) -> Result<Vec<(i64, f64)>, String> {
    if body["status"] != "success" {
        return Err(format!(
            "Prometheus refused the query: {}",
            body["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let data = &body["data"];
    if data["resultType"] != "matrix" {
        return Err(format!(
            "Prometheus returned a {} result to a range query",
            data["resultType"]
        ));
    }
    let Some(series) = data["result"].as_array().and_then(|r| r.first()) else {
        return Ok(Vec::new());
    };
    let mut points = Vec::new();
    for pair in series["values"].as_array().into_iter().flatten() {
        let t = pair[0]
            .as_f64()
            .ok_or("Prometheus returned a point without a time")?;
        let text = pair[1]
            .as_str()
            .ok_or("Prometheus returned a point without a value")?;
        let v: f64 = text
            .parse()
            .map_err(|_| format!("Prometheus returned {text:?}, not a number"))?;
        if v.is_finite() {
            points.push((t as i64, v));
        }
    }
    Ok(points)
}

/// Reads `{"status":"success","data":{"resultType":"vector","result":[{"value":[t,"v"]}]}}`.
pub fn parse_sample(body: &serde_json::Value) -> Result<Option<f64>, String> {
    if body["status"] != "success" {
        return Err(format!(
            "Prometheus refused the query: {}",
            body["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let data = &body["data"];
    let value = match data["resultType"].as_str() {
        Some("vector") => match data["result"].as_array().and_then(|r| r.first()) {
            Some(sample) => &sample["value"][1],
            None => return Ok(None),
        },
        Some("scalar") => &data["result"][1],
        other => {
            return Err(format!(
                "Prometheus returned a {other:?} result; the query must give one number"
            ));
        }
    };
    let text = value
        .as_str()
        .ok_or("Prometheus returned a sample without a value")?;
    // "NaN" (0/0: no requests at all) parses as NaN; the decision treats it as no data.
    text.parse::<f64>()
        .map(Some)
        .map_err(|_| format!("Prometheus returned {text:?}, not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matrices_keep_finite_points_of_the_first_series() {
        let m = |r: serde_json::Value| json!({"status": "success", "data": {"resultType": "matrix", "result": r}});
        assert_eq!(
            parse_matrix(&m(
                json!([{"metric": {}, "values": [[60, "1.5"], [120, "NaN"], [180, "2"]]}])
            )),
            Ok(vec![(60, 1.5), (180, 2.0)])
        );
        assert_eq!(parse_matrix(&m(json!([]))), Ok(vec![]));
        assert!(
            parse_matrix(&m(json!([{"values": [[60, "x"]]}])))
                .unwrap_err()
                .contains("\"x\"")
        );
        assert!(
            parse_matrix(&json!({"status": "error", "error": "bad"}))
                .unwrap_err()
                .contains("bad")
        );
        assert!(
            parse_matrix(
                &json!({"status": "success", "data": {"resultType": "vector", "result": []}})
            )
            .is_err()
        );
    }

    #[test]
    fn samples_empty_results_and_errors_are_told_apart() {
        let v = |r: serde_json::Value| json!({"status": "success", "data": {"resultType": "vector", "result": r}});
        assert_eq!(
            parse_sample(&v(json!([{"metric": {}, "value": [1, "0.25"]}]))),
            Ok(Some(0.25))
        );
        assert_eq!(parse_sample(&v(json!([]))), Ok(None));
        assert!(
            parse_sample(&v(json!([{"metric": {}, "value": [1, "NaN"]}])))
                .unwrap()
                .unwrap()
                .is_nan()
        );
        assert_eq!(
            parse_sample(
                &json!({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}})
            ),
            Ok(Some(3.0))
        );
        assert!(
            parse_sample(&json!({"status": "error", "error": "parse error"}))
                .unwrap_err()
                .contains("parse error")
        );
        assert!(
            parse_sample(
                &json!({"status": "success", "data": {"resultType": "matrix", "result": []}})
            )
            .is_err()
        );
    }

    #[test]
    fn queries_are_filled_per_track() {
        let q = Queries::new(&CanarySettings::default(), "p-prod", "api", "canary");
        assert!(
            q.error_rate
                .contains(r#"namespace="p-prod",service="api",track="canary",code=~"5..""#),
            "{}",
            q.error_rate
        );
        assert!(q.requests.contains("[60s]"), "{}", q.requests);
        for placeholder in ["{namespace}", "{service}", "{track}", "{window}"] {
            assert!(!q.requests.contains(placeholder) && !q.error_rate.contains(placeholder));
        }
    }
}
