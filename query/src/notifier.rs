//! The notifier: sends alerts to Alertmanager's HTTP API (v2, or v1 for old versions).
//!
//! Alerts from rule evaluations are queued (bounded: the oldest are dropped and counted when it is
//! full), then posted in batches of up to [`MAX_BATCH`] to every configured Alertmanager, with the
//! external labels added. Posting is fire-and-forget as in Prometheus: a failed batch is counted,
//! and firing alerts are sent again on the rules' resend interval anyway.
//!
//! Each Alertmanager entry takes Prometheus' HTTP client settings: `basic_auth`, `authorization`,
//! `bearer_token[_file]` (secret files read at every request), `path_prefix`, `follow_redirects`
//! and, for `scheme: https`, `tls_config`. This crate does not build TLS clients itself: the
//! binary installs a [`ClientFactory`] (the collector's TLS code, which also sends
//! `tls_config.server_name` as SNI); without one, `https` uses the system roots and a
//! `tls_config` is refused.
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

/// One `alertmanagers` entry, with Prometheus' HTTP client settings (`basic_auth`,
/// `authorization`, `bearer_token[_file]`, `tls_config`, `follow_redirects`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Static targets (`host:port`).
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// `http` or `https`.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// An `Authorization: <type> <credentials>` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Legacy: same as `authorization: {credentials: ...}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    /// Legacy: same as `authorization: {credentials_file: ...}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    /// TLS settings for `https` (applied by the [`ClientFactory`] the binary installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    /// Follow HTTP redirects (true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
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
    /// File holding the password (read at every request).
    #[serde(default)]
    pub password_file: Option<String>,
}

pub use pharos_model::http::{Authorization, TlsConfig};

fn default_scheme() -> String {
    "http".into()
}
fn default_timeout() -> String {
    "10s".into()
}
fn default_api_version() -> String {
    "v2".into()
}
fn default_true() -> bool {
    true
}

/// How the `Authorization` header of an Alertmanager is made (secret files are read at every
/// request, so rotated files are picked up without a reload).
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// `Basic` with a user and a password (inline or from a file).
    Basic {
        /// User name.
        username: String,
        /// Inline password.
        password: String,
        /// Password file (wins when set).
        password_file: String,
    },
    /// `<type> <credentials>` (inline or from a file).
    Credentials {
        /// The scheme, e.g. `Bearer`.
        kind: String,
        /// Inline credentials.
        credentials: String,
        /// Credentials file (wins when set).
        credentials_file: String,
    },
}

fn read_secret(path: &str) -> Result<String, String> {
    pharos_model::http::read_secret(path).map_err(|e| format!("reading secret file {path}: {e}"))
}

impl Auth {
    /// The header value; reads secret files now.
    pub fn header(&self) -> Result<String, String> {
        match self {
            Auth::Basic {
                username,
                password,
                password_file,
            } => {
                let pw = if password_file.is_empty() {
                    password.clone()
                } else {
                    read_secret(password_file)?
                };
                Ok(format!(
                    "Basic {}",
                    pharos_model::http::base64(format!("{username}:{pw}").as_bytes())
                ))
            }
            Auth::Credentials {
                kind,
                credentials,
                credentials_file,
            } => {
                let c = if credentials_file.is_empty() {
                    credentials.clone()
                } else {
                    read_secret(credentials_file)?
                };
                Ok(format!("{kind} {c}"))
            }
        }
    }
}

/// One resolved Alertmanager endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The full URL alerts are posted to.
    pub url: String,
    /// Request timeout.
    pub timeout: Duration,
    /// The `Authorization` header, if any.
    pub auth: Option<Auth>,
    /// The TLS settings (https).
    pub tls: Option<TlsConfig>,
    /// Follow redirects.
    pub follow_redirects: bool,
}

/// What a [`ClientFactory`] returns for one endpoint: the client, and the URL and `Host` header
/// to use with it (they differ from the endpoint's when `tls_config.server_name` has to be sent
/// as SNI).
#[derive(Debug, Clone)]
pub struct Client {
    /// The HTTP client (TLS settings applied).
    pub client: reqwest::Client,
    /// The URL to post to.
    pub url: String,
    /// The `Host` header to send, when it differs from the URL's.
    pub host: Option<String>,
}

/// Builds the HTTP client of an endpoint: the binary installs one that applies `tls_config`
/// (the collector's TLS code; the query crate does not depend on it). Errors name what failed
/// (e.g. an unreadable CA file).
pub type ClientFactory = Arc<dyn Fn(&Endpoint) -> Result<Client, String> + Send + Sync>;

/// The client of an endpoint without a [`ClientFactory`]: system roots for `https`; a
/// `tls_config` is refused.
fn plain_client(ep: &Endpoint) -> Result<Client, String> {
    if ep.tls.as_ref().is_some_and(|t| *t != TlsConfig::default()) {
        return Err(format!(
            "{}: tls_config needs a TLS client factory (Notifier::set_client_factory)",
            ep.url
        ));
    }
    // reqwest is built with `rustls-no-provider`: make `ring` the default first.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut b = reqwest::Client::builder();
    if !ep.follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    let client = b
        .build()
        .map_err(|e| format!("{}: building the HTTP client: {e}", ep.url))?;
    Ok(Client {
        client,
        url: ep.url.clone(),
        host: None,
    })
}

impl AlertingConfig {
    /// Checks the section and resolves it to endpoints (files are not read here).
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, String> {
        let mut out = Vec::new();
        for (i, am) in self.alertmanagers.iter().enumerate() {
            let bad = |m: &str| Err(format!("alertmanagers[{i}]: {m}"));
            let version = match am.api_version.as_str() {
                "v1" | "v2" => am.api_version.as_str(),
                v => {
                    return bad(&format!(
                        "expected Alertmanager api version to be one of [v1 v2] but got {v:?}"
                    ));
                }
            };
            if am.scheme != "http" && am.scheme != "https" {
                return bad(&format!(
                    "scheme {:?} is not supported (http or https)",
                    am.scheme
                ));
            }
            let timeout = pharos_model::parse_duration_ms(&am.timeout)
                .map_err(|e| format!("alertmanagers[{i}]: timeout: {e}"))?;
            let bearer = !am.bearer_token.is_empty() || !am.bearer_token_file.is_empty();
            if [am.basic_auth.is_some(), am.authorization.is_some(), bearer]
                .iter()
                .filter(|b| **b)
                .count()
                > 1
            {
                return bad(
                    "at most one of basic_auth, authorization and bearer_token/bearer_token_file may be configured",
                );
            }
            if !am.bearer_token.is_empty() && !am.bearer_token_file.is_empty() {
                return bad("at most one of bearer_token and bearer_token_file may be configured");
            }
            let auth = if let Some(b) = &am.basic_auth {
                let (password, password_file) = match (&b.password, &b.password_file) {
                    (Some(_), Some(_)) => {
                        return bad(
                            "at most one of basic_auth password & password_file must be configured",
                        );
                    }
                    (p, f) => (p.clone().unwrap_or_default(), f.clone().unwrap_or_default()),
                };
                Some(Auth::Basic {
                    username: b.username.clone(),
                    password,
                    password_file,
                })
            } else if let Some(a) = &am.authorization {
                if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
                    return bad(
                        "at most one of authorization credentials & credentials_file must be configured",
                    );
                }
                if a.kind.eq_ignore_ascii_case("basic") {
                    return bad(
                        "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
                    );
                }
                Some(Auth::Credentials {
                    kind: a.kind.clone(),
                    credentials: a.credentials.clone(),
                    credentials_file: a.credentials_file.clone(),
                })
            } else if bearer {
                Some(Auth::Credentials {
                    kind: "Bearer".into(),
                    credentials: am.bearer_token.clone(),
                    credentials_file: am.bearer_token_file.clone(),
                })
            } else {
                None
            };
            if let Some(t) = &am.tls_config
                && !matches!(
                    t.min_version.as_str(),
                    "" | "TLS10" | "TLS11" | "TLS12" | "TLS13"
                )
            {
                return bad(&format!("unknown TLS version: {}", t.min_version));
            }
            let prefix = am.path_prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() || prefix.starts_with('/') {
                prefix.to_string()
            } else {
                format!("/{prefix}")
            };
            for sc in &am.static_configs {
                for t in &sc.targets {
                    if t.is_empty() || t.contains('/') {
                        return bad(&format!("invalid target {t:?}: expected host:port"));
                    }
                    out.push(Endpoint {
                        url: format!("{}://{t}{prefix}/api/{version}/alerts", am.scheme),
                        timeout: Duration::from_millis(timeout.max(1) as u64),
                        auth: auth.clone(),
                        tls: am.tls_config.clone(),
                        follow_redirects: am.follow_redirects,
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
    endpoints: RwLock<Vec<(Endpoint, Client)>>,
    external_labels: RwLock<BTreeMap<String, String>>,
    factory: RwLock<Option<ClientFactory>>,
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
            factory: RwLock::new(None),
            dropped: AtomicU64::new(0),
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Installs the factory that builds each Alertmanager's HTTP client (TLS); call before
    /// [`Notifier::apply`].
    pub fn set_client_factory(&self, factory: ClientFactory) {
        if let Ok(mut f) = self.factory.write() {
            *f = Some(factory);
        }
    }

    /// The endpoints of `cfg` with their clients built (TLS files read): what [`Notifier::apply`]
    /// would install. An error names the Alertmanager and what failed.
    pub fn check(&self, cfg: &AlertingConfig) -> Result<Vec<(Endpoint, Client)>, String> {
        let factory = self.factory.read().ok().and_then(|f| f.clone());
        cfg.endpoints()?
            .into_iter()
            .map(|ep| {
                let client = match &factory {
                    Some(f) => f(&ep),
                    None => plain_client(&ep),
                }
                .map_err(|e| format!("alertmanager {}: {e}", ep.url))?;
                Ok((ep, client))
            })
            .collect()
    }

    /// Applies the `alerting` section and the external labels; on error nothing changes.
    pub fn apply(
        &self,
        cfg: &AlertingConfig,
        external_labels: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let eps = self.check(cfg)?;
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
            let sends = eps.iter().map(|(ep, c)| self.post(ep, c, body.clone()));
            let results = futures_join_all(sends).await;
            let mut counts = lock(&self.counts);
            for ((ep, _), ok) in eps.iter().zip(results) {
                let c = counts.entry(ep.url.clone()).or_default();
                if ok {
                    c.0 += batch.len() as u64;
                } else {
                    c.1 += batch.len() as u64;
                }
            }
        }
    }

    async fn post(&self, ep: &Endpoint, c: &Client, body: Vec<u8>) -> bool {
        let mut req = c
            .client
            .post(&c.url)
            .timeout(ep.timeout)
            .header("Content-Type", "application/json")
            .header("User-Agent", concat!("Pharos/", env!("CARGO_PKG_VERSION")))
            .body(body);
        if let Some(h) = &c.host {
            req = req.header(reqwest::header::HOST, h);
        }
        if let Some(a) = &ep.auth {
            match a.header() {
                Ok(h) => req = req.header(reqwest::header::AUTHORIZATION, h),
                Err(e) => {
                    tracing::error!(alertmanager = %ep.url, error = %e, "error sending alerts");
                    return false;
                }
            }
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
                tracing::error!(alertmanager = %ep.url, error = %error_chain(&e), "error sending alerts");
                false
            }
        }
    }
}

/// An error with its sources (reqwest's own message hides the TLS reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
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
        assert_eq!(
            eps[0].auth.as_ref().unwrap().header().unwrap(),
            "Basic dTpw"
        );
        let bad: AlertingConfig =
            serde_norway::from_str("alertmanagers:\n- api_version: v3\n").unwrap();
        assert!(bad.endpoints().unwrap_err().contains("v3"));
        assert!(serde_norway::from_str::<AlertingConfig>("alertmanagers:\n- nope: 1\n").is_err());
    }

    #[track_caller]
    fn check(am: &str, want: Result<(&str, Option<&str>), &str>) {
        let yaml = format!("alertmanagers:\n- static_configs: [{{targets: ['h:9093']}}]\n  {am}\n");
        let c: AlertingConfig = serde_norway::from_str(&yaml).unwrap();
        let got = c.endpoints().and_then(|eps| {
            let auth = match &eps[0].auth {
                Some(a) => Some(a.header()?),
                None => None,
            };
            Ok((eps[0].url.clone(), auth))
        });
        match (got, want) {
            (Ok((url, auth)), Ok((wu, wa))) => {
                assert_eq!(url, wu, "{am}");
                assert_eq!(auth.as_deref(), wa, "{am}");
            }
            (Err(e), Err(w)) => assert!(e.contains(w), "{am}: {e} lacks {w}"),
            (g, w) => panic!("{am}: got {g:?}, want {w:?}"),
        }
    }

    #[test]
    fn http_client_settings() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cret\n").unwrap();
        let f = f.display();
        let url = "http://h:9093/api/v2/alerts";
        check("scheme: http", Ok((url, None)));
        check(
            "scheme: https\n  path_prefix: am/",
            Ok(("https://h:9093/am/api/v2/alerts", None)),
        );
        check("scheme: ftp", Err("scheme \"ftp\" is not supported"));
        check(
            "basic_auth: {username: Aladdin, password: 'open sesame'}",
            Ok((url, Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="))),
        );
        check(
            &format!("basic_auth: {{username: u, password_file: '{f}'}}"),
            Ok((url, Some("Basic dTpzM2NyZXQ="))),
        );
        check(
            "authorization: {credentials: abc}",
            Ok((url, Some("Bearer abc"))),
        );
        check(
            &format!("authorization: {{type: Token, credentials_file: '{f}'}}"),
            Ok((url, Some("Token s3cret"))),
        );
        check("bearer_token: xyz", Ok((url, Some("Bearer xyz"))));
        check(
            &format!("bearer_token_file: '{f}'"),
            Ok((url, Some("Bearer s3cret"))),
        );
        check(
            "bearer_token_file: /nonexistent/t",
            Err("reading secret file /nonexistent/t"),
        );
        check(
            "basic_auth: {username: u}\n  bearer_token: x",
            Err("at most one of basic_auth, authorization and bearer_token"),
        );
        check(
            "authorization: {type: basic, credentials: x}",
            Err("use \"basic_auth\" instead"),
        );
        check(
            "authorization: {credentials: a, credentials_file: b}",
            Err("credentials & credentials_file"),
        );
        check(
            "basic_auth: {username: u, password: a, password_file: b}",
            Err("password & password_file"),
        );
        check(
            "tls_config: {min_version: TLS9}",
            Err("unknown TLS version: TLS9"),
        );
        assert!(
            serde_norway::from_str::<AlertingConfig>("alertmanagers:\n- tls_config: {nope: 1}\n")
                .is_err()
        );
    }

    #[test]
    fn tls_config_needs_a_client_factory() {
        let c: AlertingConfig = serde_norway::from_str(
            "alertmanagers:\n- scheme: https\n  tls_config: {ca_file: /x/ca.pem}\n  static_configs: [{targets: ['h:9093']}]\n",
        )
        .unwrap();
        let n = Notifier::new(10);
        let e = n.apply(&c, BTreeMap::new()).unwrap_err();
        assert!(e.contains("tls_config needs a TLS client factory"), "{e}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        n.set_client_factory(Arc::new(move |ep: &Endpoint| {
            lock(&seen2).push(ep.tls.clone());
            Err("ca_file /x/ca.pem: no such file".to_string())
        }));
        let e = n.apply(&c, BTreeMap::new()).unwrap_err();
        assert_eq!(
            e,
            "alertmanager https://h:9093/api/v2/alerts: ca_file /x/ca.pem: no such file"
        );
        assert_eq!(lock(&seen)[0].as_ref().unwrap().ca_file, "/x/ca.pem");
        assert_eq!(n.stats().alertmanagers, 0);
    }

    /// A plain-http Alertmanager stand-in: alerts arrive at the prefixed path with the
    /// credentials, read from a file at every request.
    #[tokio::test]
    async fn posts_with_prefix_and_credentials() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut heads = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len || n == 0 {
                            heads.push(text);
                            break;
                        }
                    }
                }
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
            }
            heads
        });
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "one\n").unwrap();
        let c: AlertingConfig = serde_norway::from_str(&format!(
            "alertmanagers:\n- path_prefix: /am\n  authorization: {{credentials_file: '{}'}}\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n",
            token.display()
        ))
        .unwrap();
        let n = Notifier::new(10);
        n.apply(&c, BTreeMap::new()).unwrap();
        let alert = Notification {
            labels: Labels::from_pairs(&[("alertname", "A".to_string())]),
            annotations: Labels::empty(),
            starts_at: 1000,
            ends_at: 0,
            generator_url: String::new(),
        };
        n.send(vec![alert.clone()]);
        n.flush().await;
        std::fs::write(&token, "two\n").unwrap();
        n.send(vec![alert]);
        n.flush().await;
        let heads = server.await.unwrap();
        assert!(
            heads[0].starts_with("POST /am/api/v2/alerts HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(
            heads[0].contains("authorization: Bearer one\r\n"),
            "{}",
            heads[0]
        );
        assert!(heads[0].contains("\"alertname\":\"A\""), "{}", heads[0]);
        assert!(
            heads[1].contains("authorization: Bearer two\r\n"),
            "{}",
            heads[1]
        );
        let url = format!("http://127.0.0.1:{port}/am/api/v2/alerts");
        assert_eq!(n.stats().per_alertmanager[&url], (2, 0));
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
