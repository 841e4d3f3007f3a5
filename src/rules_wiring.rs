//! Rules and alerting in the server: the rule manager (rule_files), the notifier (alerting), their
//! reloads, shutdown and the `prometheus_rule_*` / `prometheus_notifications_*` metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use pharos_model::expfmt::{MetricFamily, MetricType};
use pharos_model::storage::{Appendable, Queryable};
use pharos_query::notifier::{self, DEFAULT_QUEUE_CAPACITY, Notifier};
use pharos_query::rules::json::RulesProvider;
use pharos_query::rules::manager::{Manager, ManagerOptions};
use pharos_query::{Engine, EngineOptions};

use crate::config::{Config, Source};

/// The rules side of a running server.
pub struct Rules {
    manager: Arc<Manager>,
    notifier: Arc<Notifier>,
    stop: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    base_dir: PathBuf,
}

/// The directory rule_files are relative to: the config file's, or the working directory.
fn base_dir(source: &Source) -> PathBuf {
    match source {
        Source::File(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
        Source::Embedded(_) => PathBuf::from("."),
    }
}

/// Rule-loading errors as one message, one problem per line.
fn joined(errs: &[pharos_query::rules::Error]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The notifier's HTTP clients, built with the collector's TLS code: `tls_config` as for scrapes,
/// with `server_name` sent as SNI.
fn alertmanager_client(ep: &notifier::Endpoint) -> Result<notifier::Client, String> {
    let url = reqwest::Url::parse(&ep.url).map_err(|e| format!("invalid url: {e}"))?;
    let (mut b, endpoint) =
        pharos_collector::tls::sni_builder(ep.tls.as_ref(), &url).map_err(|e| e.to_string())?;
    if !ep.follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    let client = b
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    Ok(notifier::Client {
        client,
        url: endpoint.url.to_string(),
        host: endpoint.host,
    })
}

impl Rules {
    /// Starts the notifier and the rule groups of `cfg`. An invalid rule file is an error (the
    /// server does not start). Must run inside the tokio runtime.
    pub fn start(
        queryable: Arc<dyn Queryable>,
        appendable: Arc<dyn Appendable>,
        cfg: &Config,
        source: &Source,
        external_url: String,
    ) -> anyhow::Result<Self> {
        let notifier = Notifier::new(DEFAULT_QUEUE_CAPACITY);
        notifier.set_client_factory(Arc::new(alertmanager_client));
        notifier
            .apply(&cfg.alerting, cfg.global.external_labels.clone())
            .map_err(|e| anyhow::anyhow!("invalid alerting configuration: {e}"))?;
        let n2 = notifier.clone();
        let manager = Manager::new(ManagerOptions {
            engine: Arc::new(Engine::new(EngineOptions::default())),
            queryable,
            appendable,
            notify: Some(Arc::new(move |alerts| n2.send(alerts))),
            external_url,
            resend_delay_ms: 60_000,
            restore: Default::default(),
        });
        let base_dir = base_dir(source);
        manager
            .update(
                &cfg.rule_files,
                &base_dir,
                cfg.global.evaluation_interval.as_millis(),
                cfg.global.external_labels.clone(),
            )
            .map_err(|e| anyhow::anyhow!("cannot load rule files:\n{}", joined(&e)))?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(notifier.clone().run(rx));
        tracing::info!(
            groups = manager.groups().len(),
            alertmanagers = notifier.stats().alertmanagers,
            "rule manager started"
        );
        Ok(Self {
            manager,
            notifier,
            stop,
            task: std::sync::Mutex::new(Some(task)),
            base_dir,
        })
    }

    /// Applies a reloaded configuration; on error the old rules and Alertmanagers stay.
    pub fn apply(&self, cfg: &Config) -> anyhow::Result<()> {
        // Validate the alerting section (clients built, TLS files read) before touching anything.
        self.notifier
            .check(&cfg.alerting)
            .map_err(|e| anyhow::anyhow!("invalid alerting configuration: {e}"))?;
        self.manager
            .update(
                &cfg.rule_files,
                &self.base_dir,
                cfg.global.evaluation_interval.as_millis(),
                cfg.global.external_labels.clone(),
            )
            .map_err(|e| anyhow::anyhow!("cannot load rule files:\n{}", joined(&e)))?;
        self.notifier
            .apply(&cfg.alerting, cfg.global.external_labels.clone())
            .map_err(|e| anyhow::anyhow!("invalid alerting configuration: {e}"))
    }

    /// Rules and alerts for the API and dashboard.
    pub fn provider(&self) -> Arc<dyn RulesProvider> {
        self.manager.clone()
    }

    /// Stops rule evaluation, then sends the queued notifications once.
    pub async fn stop(&self) {
        self.manager.stop();
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// `prometheus_rule_*` and `prometheus_notifications_*` families, named as Prometheus does.
    pub fn families(&self) -> Vec<MetricFamily> {
        let st = self.manager.stats();
        let mut out = Vec::new();
        let mut single = |name: &str, help: &str, kind, v: f64| {
            let mut f = MetricFamily::new(name, help, kind);
            f.push(&[], v);
            out.push(f);
        };
        single(
            "pharos_rule_config_last_reload_successful",
            "Whether the last load of the rule files succeeded.",
            MetricType::Gauge,
            if st.last_reload_ok { 1.0 } else { 0.0 },
        );
        single(
            "pharos_rule_config_reload_failures_total",
            "Rule file loads that failed (the old rules kept running).",
            MetricType::Counter,
            st.reload_failures as f64,
        );
        let ns = self.notifier.stats();
        single(
            "prometheus_notifications_queue_length",
            "The number of alert notifications in the queue.",
            MetricType::Gauge,
            ns.queue_length as f64,
        );
        single(
            "prometheus_notifications_queue_capacity",
            "The capacity of the alert notifications queue.",
            MetricType::Gauge,
            ns.queue_capacity as f64,
        );
        single(
            "prometheus_notifications_dropped_total",
            "Total number of alerts dropped due to errors when sending to Alertmanager.",
            MetricType::Counter,
            ns.dropped as f64,
        );
        single(
            "prometheus_notifications_alertmanagers_discovered",
            "The number of alertmanagers discovered and active.",
            MetricType::Gauge,
            ns.alertmanagers as f64,
        );
        let mut per_group =
            |name: &str,
             help: &str,
             kind,
             f: &dyn Fn(&pharos_query::rules::manager::GroupStats) -> f64| {
                let mut fam = MetricFamily::new(name, help, kind);
                for g in &st.groups {
                    fam.push(&[("rule_group", g.key.as_str())], f(g));
                }
                out.push(fam);
            };
        per_group(
            "prometheus_rule_evaluations_total",
            "The total number of rule evaluations.",
            MetricType::Counter,
            &|g| g.evaluations as f64,
        );
        per_group(
            "prometheus_rule_evaluation_failures_total",
            "The total number of rule evaluation failures.",
            MetricType::Counter,
            &|g| g.failures as f64,
        );
        per_group(
            "prometheus_rule_group_interval_seconds",
            "The interval of a rule group.",
            MetricType::Gauge,
            &|g| g.interval_s,
        );
        per_group(
            "prometheus_rule_group_last_duration_seconds",
            "The duration of the last rule group evaluation.",
            MetricType::Gauge,
            &|g| g.last_duration_s,
        );
        per_group(
            "prometheus_rule_group_rules",
            "The number of rules.",
            MetricType::Gauge,
            &|g| g.rules as f64,
        );
        let by_am: BTreeMap<String, (u64, u64)> = ns.per_alertmanager;
        let mut sent = MetricFamily::new(
            "prometheus_notifications_sent_total",
            "Total number of alerts sent.",
            MetricType::Counter,
        );
        let mut errors = MetricFamily::new(
            "prometheus_notifications_errors_total",
            "Total number of errors sending alert notifications.",
            MetricType::Counter,
        );
        for (am, (ok, err)) in &by_am {
            sent.push(&[("alertmanager", am.as_str())], *ok as f64);
            errors.push(&[("alertmanager", am.as_str())], *err as f64);
        }
        out.push(sent);
        out.push(errors);
        out
    }
}
