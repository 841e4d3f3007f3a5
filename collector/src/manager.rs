//! The scrape manager: one loop per target, reconciled on every [`ScrapeManager::apply`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use pharos_model::api::{self, TargetHealth, TargetsProvider};
use pharos_model::expfmt::{MetricFamily, MetricType};
use pharos_model::storage::Appendable;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{GlobalConfig, ResolvedScrapeConfig, ScrapeConfig, validate_all};
use crate::discovery::TargetGroup;
use crate::discovery::file::FileDiscovery;
use crate::discovery::kubernetes::{Discovery, InCluster};
use crate::scrape::{Counters, Loop, Options, Signal};
use crate::target::{Target, build_targets, static_groups};
use crate::workers::Workers;

/// A pool's `target_limit` error, shared with its loops.
type Forced = Arc<RwLock<Option<String>>>;

/// How often file_sd files are checked for changes.
const FILE_POLL: std::time::Duration = std::time::Duration::from_secs(1);
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

/// One scrape config with its discovered target groups.
struct Pool {
    resolved: ResolvedScrapeConfig,
    opts: Arc<Options>,
    /// Groups by provider index (0: static_configs, then file_sd, then kubernetes_sd entries).
    groups: BTreeMap<usize, Vec<TargetGroup>>,
    /// Discovery tasks; aborted when the pool's discovery changes or it is removed.
    tasks: Vec<JoinHandle<()>>,
    /// Tells provider updates of a replaced discovery apart from the current one.
    generation: u64,
}

#[derive(Default)]
struct State {
    pools: BTreeMap<String, Pool>,
    /// `target_limit` errors by job, shared with that job's loops.
    forced: BTreeMap<String, Arc<RwLock<Option<String>>>>,
    /// Running loops by target key.
    loops: BTreeMap<String, Running>,
    /// Loops told to stop by `apply` and not yet awaited.
    stopping: Vec<JoinHandle<()>>,
    /// HTTP clients by (follow redirects, `tls_config`), rebuilt at every `apply` so changed
    /// CA/cert files are re-read.
    clients: BTreeMap<ClientKey, reqwest::Client>,
    generation: u64,
}

/// Runs one scrape loop per target and reports their health.
///
/// Lifecycle: [`ScrapeManager::apply`] (inside a tokio runtime) starts target discovery for each
/// scrape config, starts loops for new targets, stops loops of removed ones and leaves unchanged
/// targets running; discovery updates (file_sd) reconcile the loops the same way.
/// [`ScrapeManager::stop`] stops discovery and every loop and returns once each loop has finished
/// its in-flight append and written its staleness markers. [`ScrapeManager::run`] is `stop` after
/// a shutdown future.
pub struct ScrapeManager {
    app: Arc<dyn Appendable>,
    counters: Arc<Counters>,
    state: Mutex<State>,
    me: Weak<ScrapeManager>,
    /// The threads loops run on, started with the first loop (`None`: they could not be
    /// started, and loops run on the caller's runtime).
    workers: OnceLock<Option<Workers>>,
}

impl std::fmt::Debug for ScrapeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeManager")
            .field("targets", &self.targets().len())
            .finish_non_exhaustive()
    }
}

/// What distinguishes scrape HTTP clients: following redirects, and the TLS settings.
type ClientKey = (bool, Option<crate::auth::TlsConfig>);

fn client_key(c: &ScrapeConfig) -> ClientKey {
    let http = c.http();
    (http.follow_redirects, http.tls_config)
}

/// A scrape client for `key` (gzip, Pharos user agent, TLS files read now).
fn build_client(key: &ClientKey) -> Result<reqwest::Client> {
    finish_client(crate::tls::client_builder(key.1.as_ref())?, key.0)
}

/// `b` with gzip, the Pharos user agent and the redirect policy.
fn finish_client(b: reqwest::ClientBuilder, follow_redirects: bool) -> Result<reqwest::Client> {
    let mut b = b
        .user_agent(concat!("Pharos/", env!("CARGO_PKG_VERSION")))
        .gzip(true);
    if !follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    b.build().map_err(|e| Error::HttpClient(e.to_string()))
}

/// The client of one target: its own, sending `tls_config.server_name` as SNI, when that name
/// differs from the host of an https target (see [`crate::tls::sni_builder`]); else `shared`.
fn target_client(
    shared: &reqwest::Client,
    key: &ClientKey,
    url: &reqwest::Url,
) -> Result<(reqwest::Client, Option<crate::tls::Endpoint>)> {
    let (b, endpoint) = crate::tls::sni_builder(key.1.as_ref(), url)?;
    if endpoint.host.is_none() {
        return Ok((shared.clone(), None));
    }
    Ok((finish_client(b, key.0)?, Some(endpoint)))
}

impl ScrapeManager {
    /// A manager appending to `app`, with no targets yet.
    pub fn new(app: Arc<dyn Appendable>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            app,
            counters: Arc::new(Counters::default()),
            state: Mutex::new(State::default()),
            me: me.clone(),
            workers: OnceLock::new(),
        })
    }

    /// Where a new loop runs: the scrape threads (started now if not yet), else `rt`.
    fn loop_runtime<'a>(&'a self, rt: &'a tokio::runtime::Handle) -> &'a tokio::runtime::Handle {
        let workers = self.workers.get_or_init(|| {
            Workers::start(crate::workers::default_threads())
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot start scrape threads; scraping on the server's");
                })
                .ok()
        });
        workers.as_ref().map_or(rt, Workers::next)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates the config, then reconciles: pools whose discovery is unchanged keep their
    /// discovered groups; others start discovery afresh (files are read before this returns).
    /// Loops start for new targets, stop for removed or changed ones (they write staleness
    /// markers) and keep running for unchanged ones. On a validation error nothing changes. Must
    /// be called inside a tokio runtime.
    pub fn apply(&self, global: &GlobalConfig, scrape_configs: &[ScrapeConfig]) -> Result<()> {
        let resolved = validate_all(global, scrape_configs)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        // Kubernetes connections are resolved before anything changes: an unusable one (no
        // TLS, not in a cluster) rejects the config.
        let env = InCluster::from_env();
        let mut k8s: BTreeMap<String, Vec<Discovery>> = BTreeMap::new();
        for sc in &resolved {
            let found = sc
                .config
                .kubernetes_sd_configs
                .iter()
                .map(|k| Discovery::new(k, &env))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| match e {
                    Error::InvalidConfig(m) => {
                        Error::InvalidConfig(format!("job {:?}: {m}", sc.config.job_name))
                    }
                    other => other,
                })?;
            k8s.insert(sc.config.job_name.clone(), found);
        }
        let mut clients = BTreeMap::new();
        for sc in &resolved {
            let key = client_key(&sc.config);
            if clients.contains_key(&key) {
                continue;
            }
            let client = build_client(&key).map_err(|e| match e {
                Error::InvalidConfig(m) => {
                    Error::InvalidConfig(format!("job {:?}: {m}", sc.config.job_name))
                }
                other => other,
            })?;
            clients.insert(key, client);
        }
        let mut state = self.lock();
        state.clients = clients;
        let mut old = std::mem::take(&mut state.pools);
        for sc in resolved {
            let job = sc.config.job_name.clone();
            let opts = Arc::new(Options::from_config(&sc.config));
            let reuse = old
                .remove(&job)
                .filter(|p| p.resolved.config.same_discovery(&sc.config));
            let pool = match reuse {
                Some(mut p) => {
                    p.resolved = sc;
                    p.opts = opts;
                    p
                }
                None => {
                    state.generation += 1;
                    let generation = state.generation;
                    let found = k8s.remove(&job).unwrap_or_default();
                    self.start_discovery(&rt, sc, opts, found, generation)
                }
            };
            state.forced.entry(job.clone()).or_default();
            state.pools.insert(job, pool);
        }
        for (_, p) in old {
            for t in p.tasks {
                t.abort();
            }
        }
        let jobs: Vec<String> = state.pools.keys().cloned().collect();
        state.forced.retain(|k, _| jobs.contains(k));
        self.reconcile(&mut state, &rt);
        Ok(())
    }

    /// A pool with its static groups and file_sd groups read now, and watcher tasks started
    /// (file_sd polls, one task per `kubernetes_sd_configs` entry).
    fn start_discovery(
        &self,
        rt: &tokio::runtime::Handle,
        resolved: ResolvedScrapeConfig,
        opts: Arc<Options>,
        k8s: Vec<Discovery>,
        generation: u64,
    ) -> Pool {
        let c = &resolved.config;
        let mut groups = BTreeMap::new();
        groups.insert(0, static_groups(c));
        let mut tasks = Vec::new();
        for (i, f) in c.file_sd_configs.iter().enumerate() {
            let idx = 1 + i;
            let mut d = FileDiscovery::new(f.clone());
            groups.insert(idx, d.poll(true).unwrap_or_default());
            let me = self.me.clone();
            let job = c.job_name.clone();
            tasks.push(rt.spawn(async move {
                let refresh = d.refresh_interval();
                let mut last_full = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(FILE_POLL.min(refresh)).await;
                    let force = last_full.elapsed() >= refresh;
                    if force {
                        last_full = tokio::time::Instant::now();
                    }
                    let (found, back) = tokio::task::spawn_blocking(move || {
                        let g = d.poll(force);
                        (g, d)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!("file_sd poll task failed: {e}");
                        (None, FileDiscovery::default())
                    });
                    d = back;
                    if let Some(g) = found {
                        let Some(m) = me.upgrade() else { return };
                        m.update(&job, generation, idx, g);
                    }
                }
            }));
        }
        for (i, d) in k8s.into_iter().enumerate() {
            let idx = 1 + c.file_sd_configs.len() + i;
            groups.insert(idx, Vec::new());
            let me = self.me.clone();
            let job = c.job_name.clone();
            tasks.push(rt.spawn(d.run(move |g| {
                if let Some(m) = me.upgrade() {
                    m.update(&job, generation, idx, g);
                }
            })));
        }
        Pool {
            resolved,
            opts,
            groups,
            tasks,
            generation,
        }
    }

    /// A discovery provider's new groups: replaces its previous ones and reconciles the loops.
    fn update(&self, job: &str, generation: u64, idx: usize, groups: Vec<TargetGroup>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut state = self.lock();
        match state.pools.get_mut(job) {
            Some(p) if p.generation == generation => {
                p.groups.insert(idx, groups);
            }
            _ => return,
        }
        self.reconcile(&mut state, &rt);
    }

    /// Makes the running loops match the pools' targets.
    fn reconcile(&self, state: &mut State, rt: &tokio::runtime::Handle) {
        let mut wanted: BTreeMap<String, (Target, Arc<Options>, Forced)> = BTreeMap::new();
        for (job, pool) in &state.pools {
            let groups: Vec<TargetGroup> = pool.groups.values().flatten().cloned().collect();
            let targets = build_targets(&pool.resolved, &groups);
            let forced = state.forced.get(job).cloned().unwrap_or_default();
            let limit = pool.resolved.config.target_limit;
            let err = (limit > 0 && targets.len() as u64 > limit).then(|| {
                format!(
                    "target_limit exceeded (number of targets: {}, limit: {limit})",
                    targets.len()
                )
            });
            if let Some(e) = &err {
                tracing::warn!(%job, "{e}");
            }
            *forced.write().unwrap_or_else(|e| e.into_inner()) = err;
            for t in targets {
                wanted
                    .entry(t.key.clone())
                    .or_insert((t, pool.opts.clone(), forced.clone()));
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
            .map(|(t, _, _)| (t.pool.clone(), t.labels.to_string()))
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
        for (key, (target, opts, forced)) in wanted {
            if state.loops.contains_key(&key) {
                continue;
            }
            let client_key = (opts.http.follow_redirects, opts.http.tls_config.clone());
            let Some(shared) = state.clients.get(&client_key) else {
                continue;
            };
            let (client, endpoint) = match target_client(shared, &client_key, &target.parsed_url) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(url = %target.url, error = %e,
                        "tls_config.server_name cannot be sent as SNI; sending the URL's host");
                    (shared.clone(), None)
                }
            };
            tracing::info!(url = %target.url, job = %target.pool, "starting scrape loop");
            let target = Arc::new(target);
            let (tx, rx) = watch::channel(Signal::Run);
            let lp = Loop {
                target: target.clone(),
                opts,
                app: self.app.clone(),
                client,
                endpoint,
                counters: self.counters.clone(),
                forced,
            };
            let join = self.loop_runtime(rt).spawn(lp.run(rx));
            state.loops.insert(
                key,
                Running {
                    target,
                    stop: tx,
                    join,
                },
            );
        }
    }

    /// Stops every loop and waits until each has finished its in-flight append and written
    /// end-of-run staleness markers. `apply` may start loops again afterwards.
    pub async fn stop(&self) {
        let joins: Vec<JoinHandle<()>> = {
            let mut state = self.lock();
            let mut joins: Vec<_> = std::mem::take(&mut state.stopping);
            for (_, p) in std::mem::take(&mut state.pools) {
                for t in p.tasks {
                    t.abort();
                }
            }
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
