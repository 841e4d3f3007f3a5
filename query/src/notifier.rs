//! The notifier: sends alerts to Alertmanager's HTTP API (v2, or v1 for old versions).
//!
//! Alerts from rule evaluations are queued (bounded: the oldest are dropped and counted when it is
//! full), then posted in batches of up to [`MAX_BATCH`] to every configured Alertmanager, with the
//! external labels added. Posting is fire-and-forget as in Prometheus: a failed batch is counted,
//! and firing alerts are sent again on the rules' resend interval anyway.
//!
//! ```
//! use pharos_query::notifier::AlertingConfig;
//! let c: AlertingConfig = serde_norway::from_str(
//!     "alertmanagers:\n- static_configs:\n  - targets: ['127.0.0.1:9093']\n").unwrap();
//! assert_eq!(c.urls().unwrap(), ["http://127.0.0.1:9093/api/v2/alerts"]);
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rules::group::labels_map;
use crate::rules::rule::Notification;

/// Most alerts in one request, as in Prometheus.
pub const MAX_BATCH: usize = 64;
/// Default queue capacity (Prometheus' `--alertmanager.notification-queue-capacity`).
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// The `alerting` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Where to send alerts.
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alertmanagers` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Static targets (`host:port`).
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// `http` (https needs a TLS build, which Pharos is not).
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Prefix of the API path, e.g. `/alertmanager`.
    #[serde(default)]
    pub path_prefix: String,
    /// Request timeout (default 10s).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// `v2` (default) or `v1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
}

/// A list of static targets.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` entries.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels of the targets (accepted, not used for alerts).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Basic authentication credentials.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (read at each reload).
    #[serde(default)]
    pub password_file: Option<String>,
}

fn default_scheme() -> String {
    "http".into()
}
fn default_timeout() -> String {
    "10s".into()
}
fn default_api_version() -> String {
    "v2".into()
}

/// One resolved Alertmanager endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The full URL alerts are posted to.
    pub url: String,
    /// Request timeout.
    pub timeout: Duration,
    /// User and password.
    pub auth: Option<(String, String)>,
}

impl AlertingConfig {
    /// Checks the section and resolves it to endpoints.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, String> {
        let mut out = Vec::new();
        for (i, am) in self.alertmanagers.iter().enumerate() {
            let version = match am.api_version.as_str() {
                "v1" | "v2" => am.api_version.as_str(),
                v => {
                    return Err(format!(
                        "alertmanagers[{i}]: expected Alertmanager api version to be one of [v1 v2] but got {v:?}"
                    ));
                }
            };
            if am.scheme != "http" {
                return Err(format!(
                    "alertmanagers[{i}]: scheme {:?} is not supported (Pharos is built without TLS; use http)",
                    am.scheme
                ));
            }
            let timeout = pharos_model::parse_duration_ms(&am.timeout)
                .map_err(|e| format!("alertmanagers[{i}]: timeout: {e}"))?;
            let auth = match &am.basic_auth {
                None => None,
                Some(b) => {
                    let pw = match (&b.password, &b.password_file) {
                        (Some(_), Some(_)) => {
                            return Err(format!(
                                "alertmanagers[{i}]: at most one of basic_auth password & password_file must be configured"
                            ));
                        }
                        (Some(p), None) => p.clone(),
                        (None, Some(f)) => std::fs::read_to_string(f)
                            .map_err(|e| {
                                format!("alertmanagers[{i}]: cannot read password_file {f}: {e}")
                            })?
                            .trim_end_matches(['\n', '\r'])
                            .to_string(),
                        (None, None) => String::new(),
                    };
                    Some((b.username.clone(), pw))
                }
            };
            let prefix = am.path_prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() || prefix.starts_with('/') {
                prefix.to_string()
            } else {
                format!("/{prefix}")
            };
            for sc in &am.static_configs {
                for t in &sc.targets {
                    if t.is_empty() || t.contains('/') {
                        return Err(format!(
                            "alertmanagers[{i}]: invalid target {t:?}: expected host:port"
                        ));
                    }
                    out.push(Endpoint {
                        url: format!("{}://{t}{prefix}/api/{version}/alerts", am.scheme),
                        timeout: Duration::from_millis(timeout.max(1) as u64),
                        auth: auth.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The URLs alerts go to.
    pub fn urls(&self) -> Result<Vec<String>, String> {
        Ok(self.endpoints()?.into_iter().map(|e| e.url).collect())
    }
}

/// One alert as Alertmanager's API takes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// Labels (with external labels added).
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub starts_at: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ends_at: Option<String>,
    /// Link back to the rule's expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Counters of the notifier (Prometheus' `prometheus_notifications_*`).
#[derive(Debug, Clone, Default)]
pub struct NotifierStats {
    /// Alerts in the queue.
    pub queue_length: usize,
    /// Queue capacity.
    pub queue_capacity: usize,
    /// Alerts dropped because the queue was full (or no Alertmanager was configured).
    pub dropped: u64,
    /// Per Alertmanager URL: (alerts sent, alerts whose sending failed).
    pub per_alertmanager: BTreeMap<String, (u64, u64)>,
    /// Number of configured Alertmanagers.
    pub alertmanagers: usize,
}

/// Sends alerts to Alertmanagers.
pub struct Notifier {
    queue: Mutex<VecDeque<AlertmanagerAlert>>,
    capacity: usize,
    wake: tokio::sync::Notify,
    endpoints: RwLock<Vec<Endpoint>>,
    external_labels: RwLock<BTreeMap<String, String>>,
    client: reqwest::Client,
    dropped: AtomicU64,
    counts: Mutex<BTreeMap<String, (u64, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Notifier {
    /// A notifier with a queue of `capacity` alerts and no Alertmanager yet.
    pub fn new(capacity: usize) -> Arc<Notifier> {
        Arc::new(Notifier {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            wake: tokio::sync::Notify::new(),
            endpoints: RwLock::new(Vec::new()),
            external_labels: RwLock::new(BTreeMap::new()),
            client: {
                // reqwest is built with `rustls-no-provider`: make `ring` the default first.
                if rustls::crypto::CryptoProvider::get_default().is_none() {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                }
                reqwest::Client::new()
            },
            dropped: AtomicU64::new(0),
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Applies the `alerting` section and the external labels.
    pub fn apply(
        &self,
        cfg: &AlertingConfig,
        external_labels: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let eps = cfg.endpoints()?;
        if let Ok(mut e) = self.endpoints.write() {
            *e = eps;
        }
        if let Ok(mut l) = self.external_labels.write() {
            *l = external_labels;
        }
        Ok(())
    }

    /// Queues notifications (external labels added where the alert does not set them).
    pub fn send(&self, alerts: Vec<Notification>) {
        let ext = self
            .external_labels
            .read()
            .map(|l| l.clone())
            .unwrap_or_default();
        let fmt = |ms: i64| (ms != 0).then(|| pharos_model::api::format_rfc3339(ms));
        let mut q = lock(&self.queue);
        for a in alerts {
            let mut labels = labels_map(&a.labels);
            for (k, v) in &ext {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            q.push_back(AlertmanagerAlert {
                labels,
                annotations: labels_map(&a.annotations),
                starts_at: fmt(a.starts_at),
                ends_at: fmt(a.ends_at),
                generator_url: a.generator_url,
            });
        }
        let over = q.len().saturating_sub(self.capacity);
        if over > 0 {
            q.drain(..over);
            self.dropped.fetch_add(over as u64, Ordering::Relaxed);
            tracing::warn!(
                dropped = over,
                "alert notification queue full, dropped oldest alerts"
            );
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Counters.
    pub fn stats(&self) -> NotifierStats {
        NotifierStats {
            queue_length: lock(&self.queue).len(),
            queue_capacity: self.capacity,
            dropped: self.dropped.load(Ordering::Relaxed),
            per_alertmanager: lock(&self.counts).clone(),
            alertmanagers: self.endpoints.read().map(|e| e.len()).unwrap_or(0),
        }
    }

    /// Sends queued alerts until `stop` turns true, then sends what is left once.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.flush().await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    self.flush().await;
                    return;
                }
            }
        }
    }

    /// Sends everything queued now, in batches.
    pub async fn flush(&self) {
        loop {
            let batch: Vec<AlertmanagerAlert> = {
                let mut q = lock(&self.queue);
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            let eps = self.endpoints.read().map(|e| e.clone()).unwrap_or_default();
            if eps.is_empty() {
                self.dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                continue;
            }
            let body = match serde_json::to_vec(&batch) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode alerts");
                    continue;
                }
            };
            let sends = eps.iter().map(|ep| self.post(ep, body.clone()));
            let results = futures_join_all(sends).await;
            let mut counts = lock(&self.counts);
            for (ep, ok) in eps.iter().zip(results) {
                let c = counts.entry(ep.url.clone()).or_default();
                if ok {
                    c.0 += batch.len() as u64;
                } else {
                    c.1 += batch.len() as u64;
                }
            }
        }
    }

    async fn post(&self, ep: &Endpoint, body: Vec<u8>) -> bool {
        let mut req = self
            .client
            .post(&ep.url)
            .timeout(ep.timeout)
            .header("Content-Type", "application/json")
            .header("User-Agent", concat!("Pharos/", env!("CARGO_PKG_VERSION")))
            .body(body);
        if let Some((u, p)) = &ep.auth {
            req = req.basic_auth(u, Some(p));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::error!(alertmanager = %ep.url, %status, body = %text, "error sending alerts");
                false
            }
            Err(e) => {
                tracing::error!(alertmanager = %ep.url, error = %e, "error sending alerts");
                false
            }
        }
    }
}

/// Runs futures concurrently and collects their outputs in order (a tiny `join_all`).
async fn futures_join_all<F: std::future::Future<Output = bool>>(
    futs: impl Iterator<Item = F>,
) -> Vec<bool> {
    let futs: Vec<_> = futs.map(Box::pin).collect();
    let mut out = vec![false; futs.len()];
    let mut pending: Vec<(usize, std::pin::Pin<Box<F>>)> = futs.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                out[*i] = v;
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::Labels;

    #[test]
    fn config_to_urls() {
        let c: AlertingConfig = serde_norway::from_str(
            "alertmanagers:\n- static_configs:\n  - targets: ['a:9093', 'b:9093']\n  path_prefix: /am/\n  api_version: v1\n  timeout: 3s\n  basic_auth: {username: u, password: p}\n",
        )
        .unwrap();
        let eps = c.endpoints().unwrap();
        assert_eq!(eps[0].url, "http://a:9093/am/api/v1/alerts");
        assert_eq!(eps[1].url, "http://b:9093/am/api/v1/alerts");
        assert_eq!(eps[0].timeout, Duration::from_secs(3));
        assert_eq!(eps[0].auth, Some(("u".into(), "p".into())));
        let bad: AlertingConfig =
            serde_norway::from_str("alertmanagers:\n- api_version: v3\n").unwrap();
        assert!(bad.endpoints().unwrap_err().contains("v3"));
        assert!(serde_norway::from_str::<AlertingConfig>("alertmanagers:\n- nope: 1\n").is_err());
    }

    #[test]
    fn queue_is_bounded_and_counts_drops() {
        let n = Notifier::new(3);
        let mut ext = BTreeMap::new();
        ext.insert("cluster".to_string(), "lab".to_string());
        n.apply(&AlertingConfig::default(), ext).unwrap();
        let alert = |i: usize| Notification {
            labels: Labels::from_pairs(&[("alertname", format!("A{i}"))]),
            annotations: Labels::empty(),
            starts_at: 1000,
            ends_at: 0,
            generator_url: String::new(),
        };
        n.send((0..5).map(alert).collect());
        let st = n.stats();
        assert_eq!((st.queue_length, st.dropped), (3, 2));
        let q = lock(&n.queue);
        assert_eq!(q[0].labels["alertname"], "A2");
        assert_eq!(q[0].labels["cluster"], "lab");
        assert_eq!(q[0].starts_at.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!(q[0].ends_at, None);
    }
}
