//! The scrape manager: one loop per target, reconciled on every [`ScrapeManager::apply`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use pharos_model::api::{self, TargetHealth, TargetsProvider};
use pharos_model::expfmt::{MetricFamily, MetricType};
use pharos_model::storage::Appendable;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{GlobalConfig, ScrapeConfig, validate_all};
use crate::scrape::{Counters, Loop, Options, Signal};
use crate::target::{Target, build_targets};
use crate::{Error, Result};

/// Counters for Pharos' own `/metrics`, summed over all targets since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Scrapes attempted.
    pub scrapes_total: u64,
    /// Scrapes that failed (fetch, parse, limit or storage error).
    pub failures_total: u64,
    /// Samples stored (scraped, synthetic and staleness markers).
    pub samples_appended_total: u64,
    /// Samples rejected as out of order.
    pub out_of_order_total: u64,
    /// Samples rejected as duplicates (same timestamp, other value).
    pub duplicate_total: u64,
    /// Samples rejected as outside the writable time range.
    pub out_of_bounds_total: u64,
    /// Scrapes failed for exceeding `sample_limit`.
    pub sample_limit_exceeded_total: u64,
    /// Active targets.
    pub targets: u64,
    /// Active targets whose last scrape succeeded.
    pub targets_up: u64,
}

impl ScrapeStats {
    /// The counters as metric families (Prometheus' names where one exists).
    pub fn families(&self) -> Vec<MetricFamily> {
        let counter = |name: &str, help: &str, v: u64| {
            let mut f = MetricFamily::new(name, help, MetricType::Counter);
            f.push(&[], v as f64);
            f
        };
        let gauge = |name: &str, help: &str, v: u64| {
            let mut f = MetricFamily::new(name, help, MetricType::Gauge);
            f.push(&[], v as f64);
            f
        };
        vec![
            counter(
                "pharos_target_scrapes_total",
                "Scrapes attempted.",
                self.scrapes_total,
            ),
            counter(
                "pharos_target_scrape_failures_total",
                "Scrapes that failed.",
                self.failures_total,
            ),
            counter(
                "pharos_target_samples_appended_total",
                "Samples appended by scrapes, including synthetic series and staleness markers.",
                self.samples_appended_total,
            ),
            counter(
                "prometheus_target_scrapes_sample_out_of_order_total",
                "Samples rejected as out of order.",
                self.out_of_order_total,
            ),
            counter(
                "prometheus_target_scrapes_sample_duplicate_timestamp_total",
                "Samples rejected for a duplicate timestamp with another value.",
                self.duplicate_total,
            ),
            counter(
                "prometheus_target_scrapes_sample_out_of_bounds_total",
                "Samples rejected as outside the writable time range.",
                self.out_of_bounds_total,
            ),
            counter(
                "prometheus_target_scrapes_exceeded_sample_limit_total",
                "Scrapes that hit the sample limit.",
                self.sample_limit_exceeded_total,
            ),
            gauge("pharos_targets", "Active scrape targets.", self.targets),
            gauge(
                "pharos_targets_up",
                "Active targets whose last scrape succeeded.",
                self.targets_up,
            ),
        ]
    }
}

struct Running {
    target: Arc<Target>,
    stop: watch::Sender<Signal>,
    join: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// Running loops by target key.
    loops: BTreeMap<String, Running>,
    /// Loops told to stop by `apply` and not yet awaited.
    stopping: Vec<JoinHandle<()>>,
    client: Option<reqwest::Client>,
}

/// Runs one scrape loop per target and reports their health.
///
/// Lifecycle: [`ScrapeManager::apply`] (inside a tokio runtime) starts loops for new targets, stops
/// loops of removed ones and leaves unchanged targets running; [`ScrapeManager::stop`] stops every
/// loop and returns once each has finished its in-flight append and written its staleness markers.
/// [`ScrapeManager::run`] is `stop` after a shutdown future.
pub struct ScrapeManager {
    app: Arc<dyn Appendable>,
    counters: Arc<Counters>,
    state: Mutex<State>,
}

impl std::fmt::Debug for ScrapeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeManager")
            .field("targets", &self.targets().len())
            .finish_non_exhaustive()
    }
}

impl ScrapeManager {
    /// A manager appending to `app`, with no targets yet.
    pub fn new(app: Arc<dyn Appendable>) -> Arc<Self> {
        Arc::new(Self {
            app,
            counters: Arc::new(Counters::default()),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates the config, then reconciles the running loops with its targets: starts new ones,
    /// stops removed or changed ones (they write staleness markers), keeps unchanged ones. On a
    /// validation error nothing changes. Must be called inside a tokio runtime.
    pub fn apply(&self, global: &GlobalConfig, scrape_configs: &[ScrapeConfig]) -> Result<()> {
        let resolved = validate_all(global, scrape_configs)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut state = self.lock();
        if state.client.is_none() {
            let client = reqwest::Client::builder()
                .user_agent(concat!("Pharos/", env!("CARGO_PKG_VERSION")))
                .gzip(true)
                .build()
                .map_err(|e| Error::HttpClient(e.to_string()))?;
            state.client = Some(client);
        }
        let Some(client) = state.client.clone() else {
            return Err(Error::HttpClient("no client".into()));
        };
        let mut wanted: BTreeMap<String, (Target, Arc<Options>)> = BTreeMap::new();
        for sc in &resolved {
            let opts = Arc::new(Options::from_config(&sc.config));
            for t in build_targets(sc) {
                wanted.entry(t.key.clone()).or_insert((t, opts.clone()));
            }
        }
        let old: Vec<String> = state
            .loops
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        // Series identities that stay scraped: a loop replaced by one for the same target labels
        // skips its end-of-run staleness markers.
        let kept: std::collections::BTreeSet<(String, String)> = wanted
            .values()
            .map(|(t, _)| (t.pool.clone(), t.labels.to_string()))
            .collect();
        for k in old {
            if let Some(r) = state.loops.remove(&k) {
                tracing::info!(url = %r.target.url, job = %r.target.pool, "stopping scrape loop");
                let id = (r.target.pool.clone(), r.target.labels.to_string());
                let signal = if kept.contains(&id) {
                    Signal::Replace
                } else {
                    Signal::Stop
                };
                let _ = r.stop.send(signal);
                state.stopping.push(r.join);
            }
        }
        state.stopping.retain(|j| !j.is_finished());
        for (key, (target, opts)) in wanted {
            if state.loops.contains_key(&key) {
                continue;
            }
            tracing::info!(url = %target.url, job = %target.pool, "starting scrape loop");
            let target = Arc::new(target);
            let (tx, rx) = watch::channel(Signal::Run);
            let lp = Loop {
                target: target.clone(),
                opts,
                app: self.app.clone(),
                client: client.clone(),
                counters: self.counters.clone(),
            };
            let join = rt.spawn(lp.run(rx));
            state.loops.insert(
                key,
                Running {
                    target,
                    stop: tx,
                    join,
                },
            );
        }
        Ok(())
    }

    /// Stops every loop and waits until each has finished its in-flight append and written
    /// end-of-run staleness markers. `apply` may start loops again afterwards.
    pub async fn stop(&self) {
        let joins: Vec<JoinHandle<()>> = {
            let mut state = self.lock();
            let mut joins: Vec<_> = std::mem::take(&mut state.stopping);
            for (_, r) in std::mem::take(&mut state.loops) {
                let _ = r.stop.send(Signal::Stop);
                joins.push(r.join);
            }
            joins
        };
        for j in joins {
            if let Err(e) = j.await {
                tracing::error!("scrape loop ended abnormally: {e}");
            }
        }
    }

    /// Waits for `shutdown`, then [`ScrapeManager::stop`]s.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.stop().await;
    }

    /// The active targets, sorted by pool then URL.
    pub fn targets(&self) -> Vec<api::Target> {
        let state = self.lock();
        let mut out: Vec<api::Target> = state.loops.values().map(|r| r.target.to_api()).collect();
        out.sort_by(|a, b| (&a.scrape_pool, &a.scrape_url).cmp(&(&b.scrape_pool, &b.scrape_url)));
        out
    }

    /// Counters since start.
    pub fn stats(&self) -> ScrapeStats {
        let c = &self.counters;
        let (targets, targets_up) = {
            let state = self.lock();
            let up = state
                .loops
                .values()
                .filter(|r| {
                    r.target
                        .health
                        .lock()
                        .map(|h| h.health == TargetHealth::Up)
                        .unwrap_or(false)
                })
                .count();
            (state.loops.len() as u64, up as u64)
        };
        ScrapeStats {
            scrapes_total: c.scrapes.load(Ordering::Relaxed),
            failures_total: c.failures.load(Ordering::Relaxed),
            samples_appended_total: c.samples_appended.load(Ordering::Relaxed),
            out_of_order_total: c.out_of_order.load(Ordering::Relaxed),
            duplicate_total: c.duplicate.load(Ordering::Relaxed),
            out_of_bounds_total: c.out_of_bounds.load(Ordering::Relaxed),
            sample_limit_exceeded_total: c.sample_limit_exceeded.load(Ordering::Relaxed),
            targets,
            targets_up,
        }
    }
}

impl TargetsProvider for ScrapeManager {
    fn active_targets(&self) -> Vec<api::Target> {
        self.targets()
    }
}
