//! The dashboard's view of a remote Prometheus-compatible HTTP API (`--dashboard.datasource.url`),
//! so the dashboard can sit in front of Prometheus, VictoriaMetrics, Mimir or another Pharos.

use std::time::Duration;

use anyhow::Context as _;
use pharos_dashboard::{DataSource, StatusInfo};
use pharos_model::api::{MatrixSeries, QueryData, Target, TargetsData};
use serde_json::Value;

/// Reads through `<url>/api/v1/...`. Calls block: the dashboard makes them from blocking threads.
pub struct RemoteSource {
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RemoteSource {
    /// A source for `url` (`http://` or `https://`, with any path prefix). Must be called inside
    /// the tokio runtime.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!(
                "--dashboard.datasource.url must start with http:// or https://, got {url:?}"
            );
        }
        pharos_collector::tls::install_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot build the HTTP client for --dashboard.datasource.url")?;
        Ok(Self {
            base,
            client,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// GETs `path?params` and returns the envelope's `data`, or the API's error message.
    fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let mut url = format!("{}{path}", self.base);
        for (i, (k, v)) in params.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        self.runtime.block_on(async {
            let resp = self
                .client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{}: {e}", self.base))?;
            let status = resp.status();
            let body = resp
                .text()
                .await
                .map_err(|e| format!("{}: {e}", self.base))?;
            let v: Value = serde_json::from_str(&body).map_err(|_| {
                format!(
                    "{}{path}: HTTP {status}, not a Prometheus API answer",
                    self.base
                )
            })?;
            if v["status"] == "success" {
                Ok(v["data"].clone())
            } else {
                Err(v["error"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}{path}: HTTP {status}", self.base)))
            }
        })
    }
}

/// Seconds with millisecond precision, as the API accepts them.
fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl DataSource for RemoteSource {
    fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<MatrixSeries>, String> {
        let data = self.get(
            "/api/v1/query_range",
            &[
                ("query", expr.to_string()),
                ("start", secs(start_ms)),
                ("end", secs(end_ms)),
                ("step", secs(step_ms.max(1))),
            ],
        )?;
        match serde_json::from_value::<QueryData>(data) {
            Ok(QueryData::Matrix(m)) => Ok(m),
            Ok(_) => Err("range query did not return a matrix".into()),
            Err(e) => Err(format!("unexpected query_range answer: {e}")),
        }
    }

    fn query(&self, expr: &str, t_ms: i64) -> Result<QueryData, String> {
        let data = self.get(
            "/api/v1/query",
            &[("query", expr.to_string()), ("time", secs(t_ms))],
        )?;
        serde_json::from_value(data).map_err(|e| format!("unexpected query answer: {e}"))
    }

    fn targets(&self) -> Vec<Target> {
        match self
            .get("/api/v1/targets", &[("state", "active".into())])
            .and_then(|d| serde_json::from_value::<TargetsData>(d).map_err(|e| e.to_string()))
        {
            Ok(t) => t.active_targets,
            Err(e) => {
                tracing::warn!(source = %self.base, error = %e, "cannot read targets");
                Vec::new()
            }
        }
    }

    fn rules(&self) -> Option<Value> {
        self.get("/api/v1/rules", &[]).ok()
    }

    fn status(&self) -> StatusInfo {
        let mut source = vec![("url".to_string(), self.base.clone())];
        if let Ok(b) = self.get("/api/v1/status/buildinfo", &[]) {
            for key in ["version", "revision", "goVersion"] {
                if let Some(v) = b[key].as_str() {
                    source.push((key.to_string(), v.to_string()));
                }
            }
        }
        StatusInfo {
            sections: vec![("Data source".to_string(), source)],
            config_yaml: self
                .get("/api/v1/status/config", &[])
                .ok()
                .and_then(|c| c["yaml"].as_str().map(str::to_string)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(
            percent_encode("sum(rate(x[5m]))"),
            "sum%28rate%28x%5B5m%5D%29%29"
        );
        assert_eq!(percent_encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
        assert_eq!(secs(1500), "1.5");
        assert_eq!(secs(2000), "2");
    }
}
