//! The remote-write sender: a tee on the storage's `Appendable` feeding one bounded queue per
//! `remote_write` entry, each drained by shards that batch, send and retry.
//!
//! Flow of a sample: an appender of [`RemoteWrite::tee`] appends to storage; for each queue it
//! looks up (by the storage's series reference, verified against the labels) the series' outgoing
//! labels: external labels added, `write_relabel_configs` applied, cached. On commit the batch is
//! handed to the queues (never before: rolled-back samples are not sent). A queue hashes each
//! series to a shard so a series' samples stay in order; a shard sends when it holds
//! `max_samples_per_send` samples or its oldest waited `batch_send_deadline`. 5xx answers,
//! connection errors and (with `retry_on_http_429`) 429 are retried with exponential backoff from
//! `min_backoff` to `max_backoff` until they succeed; other answers drop the batch (counted as
//! failed). When a queue holds more than its capacity, new samples are dropped and counted: the
//! append path never waits for the network.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration as StdDuration;

use pharos_model::expfmt::{MetricFamily, MetricType};
use pharos_model::storage::{self, Appendable, Appender};
use pharos_model::{Label, Labels, SeriesRef};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use std::path::PathBuf;

use super::wal_feed::{
    Acks, WalEntry, WalPosition, WalReader, WalSource, load_position, save_position,
};
use super::{RemoteWriteConfig, proto, validate_all};
use crate::config::GlobalConfig;
use crate::relabel;
use crate::{Error, Result};

/// How long [`RemoteWrite::stop`] keeps sending what is queued (Prometheus'
/// `--storage.remote.flush-deadline` default).
pub const FLUSH_DEADLINE: StdDuration = StdDuration::from_secs(60);

/// Series-cache entries per queue above which the cache is cleared (it refills on the next appends).
const MAX_CACHED_SERIES: usize = 1 << 20;

/// A sample on its way out: outgoing labels, timestamp, value.
type Item = (Arc<Labels>, i64, f64);

/// Counters of one queue, named after Prometheus' `prometheus_remote_storage_*`.
#[derive(Debug, Default)]
struct Metrics {
    samples_sent: AtomicU64,
    samples_failed: AtomicU64,
    samples_retried: AtomicU64,
    samples_dropped: AtomicU64,
    samples_pending: AtomicUsize,
    bytes_sent: AtomicU64,
    batches: AtomicU64,
    batch_seconds_micros: AtomicU64,
    highest_sent_ms: AtomicI64,
}

/// A series' outgoing form, cached by storage reference.
struct Cached {
    original: Labels,
    out: Option<(Arc<Labels>, usize)>,
}

/// One `remote_write` entry's queue.
struct Queue {
    name: String,
    config: RemoteWriteConfig,
    external: Vec<Label>,
    cache: RwLock<HashMap<SeriesRef, Cached>>,
    shards: Vec<mpsc::UnboundedSender<(Vec<Item>, u64)>>,
    limit: usize,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    joins: Mutex<Vec<JoinHandle<()>>>,
    /// In WAL mode: the thread reading the WAL, and the acknowledged positions.
    feeder: Mutex<Option<std::thread::JoinHandle<()>>>,
    acks: Option<Arc<Acks>>,
}

impl Queue {
    /// The outgoing labels and shard of a series, or `None` if relabeling drops it.
    fn series(&self, sref: SeriesRef, labels: &Labels) -> Option<(Arc<Labels>, usize)> {
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.get(&sref)
                && c.original == *labels
            {
                return c.out.clone();
            }
        }
        let out = self.route(labels);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_SERIES {
            cache.clear();
        }
        cache.insert(
            sref,
            Cached {
                original: labels.clone(),
                out: out.clone(),
            },
        );
        out
    }

    /// The outgoing labels and shard of a series, or `None` if relabeling drops it (uncached).
    fn route(&self, labels: &Labels) -> Option<(Arc<Labels>, usize)> {
        self.outgoing(labels).map(|l| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            l.hash(&mut h);
            let shard = (h.finish() % self.shards.len().max(1) as u64) as usize;
            (Arc::new(l), shard)
        })
    }

    /// External labels (where the series lacks them), then `write_relabel_configs`.
    fn outgoing(&self, labels: &Labels) -> Option<Labels> {
        let with_ext = if self.external.is_empty() {
            labels.clone()
        } else {
            let mut b = labels.builder();
            for l in &self.external {
                if labels.get(&l.name).is_none() {
                    b.set(l.name.clone(), l.value.clone());
                }
            }
            b.build()
        };
        let out = relabel::process(&with_ext, &self.config.write_relabel_configs)?;
        (!out.is_empty()).then_some(out)
    }

    /// Hands committed samples to the shards, or drops them all if the queue is full.
    fn enqueue(&self, items: Vec<(usize, Item)>) {
        let n = items.len();
        if n == 0 {
            return;
        }
        let pending = self.metrics.samples_pending.fetch_add(n, Ordering::Relaxed);
        if pending + n > self.limit {
            self.metrics.samples_pending.fetch_sub(n, Ordering::Relaxed);
            self.metrics
                .samples_dropped
                .fetch_add(n as u64, Ordering::Relaxed);
            tracing::warn!(queue = %self.name, dropped = n, "remote write queue full, dropping samples");
            return;
        }
        let mut per: Vec<Vec<Item>> = vec![Vec::new(); self.shards.len()];
        for (shard, item) in items {
            if let Some(v) = per.get_mut(shard) {
                v.push(item);
            }
        }
        for (tx, v) in self.shards.iter().zip(per) {
            if v.is_empty() {
                continue;
            }
            let len = v.len();
            if tx.send((v, 0)).is_err() {
                // The shard has stopped (queue being replaced or shut down).
                self.metrics
                    .samples_pending
                    .fetch_sub(len, Ordering::Relaxed);
                self.metrics
                    .samples_dropped
                    .fetch_add(len as u64, Ordering::Relaxed);
            }
        }
    }
}

/// What a shard needs to send.
struct Shipper {
    name: String,
    config: RemoteWriteConfig,
    client: reqwest::Client,
    /// The URL to post to and the `Host` header (see [`crate::tls::Endpoint`]).
    endpoint: crate::tls::Endpoint,
    metrics: Arc<Metrics>,
    /// In WAL mode: where acknowledged records are reported.
    acks: Option<Arc<Acks>>,
    /// The WAL record number of each run of samples in the buffer, oldest first, with the
    /// run's length (WAL mode only).
    marks: std::collections::VecDeque<(u64, usize)>,
}

impl Shipper {
    /// Drains the shard's channel until told to stop, then sends what is left.
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<(Vec<Item>, u64)>,
        mut stop: watch::Receiver<bool>,
    ) {
        let max = self.config.queue_config.max_samples_per_send;
        let batch_deadline = self.config.queue_config.batch_send_deadline.std();
        let mut buf: Vec<Item> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut scratch = Vec::new();
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = rx.recv() => match m {
                    Some((items, seq)) => {
                        self.mark(seq, items.len());
                        buf.extend(items);
                        while buf.len() >= max {
                            let batch: Vec<Item> = buf.drain(..max).collect();
                            self.send(&batch, &mut scratch).await;
                            self.acknowledge(batch.len());
                        }
                        if buf.is_empty() {
                            deadline = None;
                        } else if deadline.is_none() {
                            deadline = Some(tokio::time::Instant::now() + batch_deadline);
                        }
                    }
                    None => break,
                },
                _ = sleep => {
                    let batch = std::mem::take(&mut buf);
                    self.send(&batch, &mut scratch).await;
                    self.acknowledge(batch.len());
                    deadline = None;
                }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
        // Flush: everything already handed to this shard.
        rx.close();
        while let Some((items, seq)) = rx.recv().await {
            self.mark(seq, items.len());
            buf.extend(items);
        }
        for batch in buf.chunks(max.max(1)) {
            self.send(batch, &mut scratch).await;
            self.acknowledge(batch.len());
        }
    }

    /// Notes that the next `n` buffered samples belong to WAL record `seq`.
    fn mark(&mut self, seq: u64, n: usize) {
        if self.acks.is_some() && n > 0 {
            self.marks.push_back((seq, n));
        }
    }

    /// The oldest `n` buffered samples are sent (or refused for good): reports the WAL records
    /// this shard is done with.
    fn acknowledge(&mut self, mut n: usize) {
        let Some(acks) = &self.acks else { return };
        while n > 0 {
            let Some(front) = self.marks.front_mut() else {
                break;
            };
            let take = front.1.min(n);
            front.1 -= take;
            n -= take;
            if front.1 == 0 {
                acks.done(front.0);
                self.marks.pop_front();
            }
        }
    }

    /// Sends one batch, retrying recoverable failures with exponential backoff until it succeeds.
    async fn send(&self, batch: &[Item], scratch: &mut Vec<u8>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        let body = match encode(batch, scratch) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(queue = %self.name, "encoding a remote write batch: {e}");
                self.done(n, None, false);
                return;
            }
        };
        let highest = batch.iter().map(|(_, t, _)| *t).max();
        let q = &self.config.queue_config;
        let mut backoff = q.min_backoff.std();
        loop {
            let began = std::time::Instant::now();
            let outcome = self.attempt(&body).await;
            self.metrics.batches.fetch_add(1, Ordering::Relaxed);
            self.metrics.batch_seconds_micros.fetch_add(
                u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let wait = match outcome {
                Attempt::Sent => {
                    self.metrics
                        .bytes_sent
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    self.done(n, highest, true);
                    return;
                }
                Attempt::Failed(msg) => {
                    tracing::error!(queue = %self.name, url = %self.config.url, samples = n, "non-recoverable error sending remote write batch: {msg}");
                    self.done(n, None, false);
                    return;
                }
                Attempt::Retry { msg, after } => {
                    tracing::warn!(queue = %self.name, url = %self.config.url, "remote write failed, retrying in {backoff:?}: {msg}");
                    after.map_or(backoff, |a| a.max(backoff))
                }
            };
            self.metrics
                .samples_retried
                .fetch_add(n as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(q.max_backoff.std().max(q.min_backoff.std()));
        }
    }

    fn done(&self, n: usize, highest: Option<i64>, ok: bool) {
        self.metrics.samples_pending.fetch_sub(n, Ordering::Relaxed);
        if ok {
            self.metrics
                .samples_sent
                .fetch_add(n as u64, Ordering::Relaxed);
            if let Some(h) = highest {
                self.metrics.highest_sent_ms.fetch_max(h, Ordering::Relaxed);
            }
        } else {
            self.metrics
                .samples_failed
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    async fn attempt(&self, body: &[u8]) -> Attempt {
        let mut req = self
            .endpoint
            .apply(self.client.post(self.endpoint.url.clone()))
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .timeout(self.config.remote_timeout.std())
            .body(body.to_vec());
        for (k, v) in &self.config.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = match self.config.http().apply(req) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    msg: e.to_string(),
                    after: None,
                };
            }
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    msg: error_chain(&e),
                    after: None,
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Attempt::Sent;
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(StdDuration::from_secs);
        let mut text = resp.text().await.unwrap_or_default();
        if text.len() > 512 {
            let mut cut = 512;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let msg = format!("server returned HTTP status {status}: {}", text.trim());
        let recoverable = status.is_server_error()
            || (status.as_u16() == 429 && self.config.queue_config.retry_on_http_429);
        if recoverable {
            Attempt::Retry {
                msg,
                after: retry_after.filter(|_| status.as_u16() == 429),
            }
        } else {
            Attempt::Failed(msg)
        }
    }
}

enum Attempt {
    Sent,
    Failed(String),
    Retry {
        msg: String,
        after: Option<StdDuration>,
    },
}

/// Groups a batch by series (same `Arc`) into a `WriteRequest` and encodes it.
fn encode(batch: &[Item], scratch: &mut Vec<u8>) -> Result<Vec<u8>> {
    let mut index: HashMap<*const Labels, usize> = HashMap::new();
    let mut req = proto::WriteRequest::default();
    for (l, t, v) in batch {
        let i = *index.entry(Arc::as_ptr(l)).or_insert_with(|| {
            req.timeseries.push(proto::TimeSeries {
                labels: l
                    .iter()
                    .map(|l| proto::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: Vec::new(),
            });
            req.timeseries.len() - 1
        });
        if let Some(ts) = req.timeseries.get_mut(i) {
            ts.samples.push(proto::Sample {
                value: *v,
                timestamp: *t,
            });
        }
    }
    proto::encode(&req, scratch)
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// The remote-write sender: queues per `remote_write` entry, fed by [`RemoteWrite::tee`].
pub struct RemoteWrite {
    queues: RwLock<Arc<Vec<Arc<Queue>>>>,
    /// Queues replaced by `apply` and still flushing.
    retired: Mutex<Vec<Arc<Queue>>>,
    highest_appended_ms: Arc<AtomicI64>,
    /// WAL mode: where the queues read samples, and the directory of their saved positions.
    wal: Option<(Arc<dyn WalSource>, PathBuf)>,
}

impl std::fmt::Debug for RemoteWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWrite")
            .field("queues", &self.current().len())
            .finish_non_exhaustive()
    }
}

impl RemoteWrite {
    /// A sender with no queues, fed by [`RemoteWrite::tee`] (the tee costs nothing while there
    /// are no queues). Samples queued when the process stops are lost: see
    /// [`RemoteWrite::with_wal`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            queues: RwLock::new(Arc::new(Vec::new())),
            retired: Mutex::new(Vec::new()),
            highest_appended_ms: Arc::new(AtomicI64::new(i64::MIN)),
            wal: None,
        })
    }

    /// A sender whose queues read the storage's WAL through `source` (see
    /// [`super::wal_feed`]) and keep their acknowledged positions under `state_dir`
    /// (`<state_dir>/<queue>/position`): nothing is lost across restarts, and a full queue waits
    /// instead of dropping. [`RemoteWrite::tee`] then returns the storage unchanged.
    pub fn with_wal(source: Arc<dyn WalSource>, state_dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            queues: RwLock::new(Arc::new(Vec::new())),
            retired: Mutex::new(Vec::new()),
            highest_appended_ms: Arc::new(AtomicI64::new(i64::MIN)),
            wal: Some((source, state_dir)),
        })
    }

    fn current(&self) -> Arc<Vec<Arc<Queue>>> {
        self.queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Validates `configs` and reconciles the queues: unchanged entries (same config and external
    /// labels) keep their queue and what it holds; others are started; removed ones flush what
    /// they hold in the background and stop. On a validation error nothing changes. Must be
    /// called inside a tokio runtime.
    pub fn apply(&self, global: &GlobalConfig, configs: &[RemoteWriteConfig]) -> Result<()> {
        validate_all(configs)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let external: Vec<Label> = global
            .external_labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| Label {
                name: k.clone(),
                value: v.clone(),
            })
            .collect();
        let old = self.current();
        let mut next: Vec<Arc<Queue>> = Vec::with_capacity(configs.len());
        for c in configs {
            let name = c.queue_name();
            if let Some(q) = old
                .iter()
                .find(|q| q.name == name && q.config == *c && q.external == external)
            {
                next.push(q.clone());
                continue;
            }
            match start_queue(
                &rt,
                name,
                c.clone(),
                external.clone(),
                self.wal.as_ref(),
                &self.highest_appended_ms,
            ) {
                Ok(q) => next.push(q),
                Err(e) => {
                    // Unusable TLS files: stop what this call started, keep the old queues.
                    for q in next
                        .iter()
                        .filter(|n| !old.iter().any(|o| Arc::ptr_eq(o, n)))
                    {
                        let _ = q.stop.send(true);
                    }
                    return Err(e);
                }
            }
        }
        let gone: Vec<Arc<Queue>> = old
            .iter()
            .filter(|q| !next.iter().any(|n| Arc::ptr_eq(n, q)))
            .cloned()
            .collect();
        *self.queues.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        for q in gone {
            tracing::info!(queue = %q.name, url = %q.config.url, "stopping remote write queue");
            let _ = q.stop.send(true);
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(q);
        }
        Ok(())
    }

    /// Wraps `inner` so committed samples are also queued for every remote-write queue.
    /// In WAL mode, returns `inner` itself (the queues read the WAL).
    pub fn tee(self: &Arc<Self>, inner: Arc<dyn Appendable>) -> Arc<dyn Appendable> {
        if self.wal.is_some() {
            return inner;
        }
        Arc::new(Tee {
            inner,
            rw: self.clone(),
        })
    }

    /// Stops taking samples and sends what every queue holds, for up to [`FLUSH_DEADLINE`]; what
    /// is still unsent then is dropped (and counted).
    pub async fn stop(&self) {
        self.stop_within(FLUSH_DEADLINE).await;
    }

    /// [`RemoteWrite::stop`] with another deadline.
    pub async fn stop_within(&self, deadline: StdDuration) {
        let queues: Vec<Arc<Queue>> = {
            let mut cur = self.queues.write().unwrap_or_else(|e| e.into_inner());
            let mut all: Vec<Arc<Queue>> = cur.iter().cloned().collect();
            *cur = Arc::new(Vec::new());
            all.extend(std::mem::take(
                &mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()),
            ));
            all
        };
        let until = tokio::time::Instant::now() + deadline;
        for q in queues {
            let _ = q.stop.send(true);
            // The feeder first, so the shards get everything it read.
            let feeder = q.feeder.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(f) = feeder {
                let _ = tokio::task::spawn_blocking(move || f.join()).await;
            }
            let joins = std::mem::take(&mut *q.joins.lock().unwrap_or_else(|e| e.into_inner()));
            for mut j in joins {
                if tokio::time::timeout_at(until, &mut j).await.is_err() {
                    j.abort();
                }
            }
            let left = q.metrics.samples_pending.swap(0, Ordering::Relaxed);
            if let Some(acks) = &q.acks {
                acks.save();
                if left > 0 {
                    tracing::warn!(queue = %q.name, unsent = left, position = %acks.acknowledged(), "remote write flush deadline passed; the unsent samples stay in the WAL and are sent after the restart");
                }
            } else if left > 0 {
                q.metrics
                    .samples_dropped
                    .fetch_add(left as u64, Ordering::Relaxed);
                tracing::warn!(queue = %q.name, dropped = left, "remote write flush deadline passed, samples dropped");
            }
        }
    }

    /// `prometheus_remote_storage_*` metric families, labelled `remote_name` and `url`.
    pub fn families(&self) -> Vec<MetricFamily> {
        let queues = self.current();
        let mut highest = MetricFamily::new(
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "Highest timestamp appended to storage and handed to remote write, in seconds.",
            MetricType::Gauge,
        );
        let h = self.highest_appended_ms.load(Ordering::Relaxed);
        highest.push(
            &[],
            if h == i64::MIN {
                0.0
            } else {
                h as f64 / 1000.0
            },
        );
        let mut out = vec![highest];
        type Get = fn(&Metrics) -> f64;
        let defs: [(&str, &str, MetricType, Get); 9] = [
            (
                "prometheus_remote_storage_samples_total",
                "Samples sent to remote storage.",
                MetricType::Counter,
                |m| m.samples_sent.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_failed_total",
                "Samples that failed to send with a non-recoverable error.",
                MetricType::Counter,
                |m| m.samples_failed.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_retried_total",
                "Samples that failed to send with a recoverable error and were retried.",
                MetricType::Counter,
                |m| m.samples_retried.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_dropped_total",
                "Samples dropped before sending: by write relabeling, a full queue or the flush deadline.",
                MetricType::Counter,
                |m| m.samples_dropped.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_samples_pending",
                "Samples queued and not yet sent.",
                MetricType::Gauge,
                |m| m.samples_pending.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_bytes_total",
                "Compressed request bytes sent.",
                MetricType::Counter,
                |m| m.bytes_sent.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_sent_batch_duration_seconds_count",
                "Send attempts.",
                MetricType::Counter,
                |m| m.batches.load(Ordering::Relaxed) as f64,
            ),
            (
                "prometheus_remote_storage_sent_batch_duration_seconds_sum",
                "Seconds spent in send attempts.",
                MetricType::Counter,
                |m| m.batch_seconds_micros.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                "Highest timestamp successfully sent, in seconds.",
                MetricType::Gauge,
                |m| {
                    let h = m.highest_sent_ms.load(Ordering::Relaxed);
                    if h == i64::MIN {
                        0.0
                    } else {
                        h as f64 / 1000.0
                    }
                },
            ),
        ];
        for (name, help, kind, get) in defs {
            let mut f = MetricFamily::new(name, help, kind);
            for q in queues.iter() {
                f.push(
                    &[("remote_name", &q.name), ("url", &q.config.url)],
                    get(&q.metrics),
                );
            }
            out.push(f);
        }
        let mut shards = MetricFamily::new(
            "prometheus_remote_storage_shards",
            "Shards sending in parallel.",
            MetricType::Gauge,
        );
        for q in queues.iter() {
            shards.push(
                &[("remote_name", &q.name), ("url", &q.config.url)],
                q.shards.len() as f64,
            );
        }
        out.push(shards);
        // The queue's fixed settings, under Prometheus' names (Pharos does not reshard: the
        // desired number of shards is the running one).
        type Setting = fn(&Queue) -> f64;
        let settings: [(&str, &str, Setting); 5] = [
            (
                "prometheus_remote_storage_shards_max",
                "The maximum number of shards that the queue is allowed to run.",
                |q| q.config.queue_config.max_shards as f64,
            ),
            (
                "prometheus_remote_storage_shards_min",
                "The minimum number of shards that the queue is allowed to run.",
                |q| q.config.queue_config.min_shards as f64,
            ),
            (
                "prometheus_remote_storage_shards_desired",
                "The number of shards the queue wants to run.",
                |q| q.shards.len() as f64,
            ),
            (
                "prometheus_remote_storage_shard_capacity",
                "The capacity of each shard of the queue.",
                |q| q.config.queue_config.capacity as f64,
            ),
            (
                "prometheus_remote_storage_max_samples_per_send",
                "The maximum number of samples to be sent, in a single request.",
                |q| q.config.queue_config.max_samples_per_send as f64,
            ),
        ];
        for (name, help, get) in settings {
            let mut f = MetricFamily::new(name, help, MetricType::Gauge);
            for q in queues.iter() {
                f.push(&[("remote_name", &q.name), ("url", &q.config.url)], get(q));
            }
            out.push(f);
        }
        out
    }
}

fn start_queue(
    rt: &tokio::runtime::Handle,
    name: String,
    config: RemoteWriteConfig,
    external: Vec<Label>,
    wal: Option<&(Arc<dyn WalSource>, PathBuf)>,
    highest_appended: &Arc<AtomicI64>,
) -> Result<Arc<Queue>> {
    // WAL mode: where to resume (saved now if new, so a crash before the first send resumes
    // here too).
    let start = match wal {
        Some((source, dir)) => {
            let path = dir.join(state_dir_name(&name)).join("position");
            let pos = match load_position(&path) {
                Ok(Some(p)) => {
                    tracing::info!(queue = %name, position = %p, "remote write resumes from its saved WAL position");
                    p
                }
                Err(e) => {
                    // Sending everything the WAL holds again beats losing samples.
                    tracing::warn!(queue = %name, "{e}; sending from the oldest record in the WAL");
                    let p = WalPosition::default();
                    save_position(&path, p, true)?;
                    p
                }
                Ok(None) => {
                    let p = source.end().map_err(|e| Error::Io {
                        context: format!(
                            "finding the end of the WAL for remote write queue {name}"
                        ),
                        source: std::io::Error::other(e),
                    })?;
                    save_position(&path, p, true)?;
                    p
                }
            };
            Some((source.clone(), Arc::new(Acks::new(path, pos)), pos))
        }
        None => None,
    };
    let url = reqwest::Url::parse(&config.url).map_err(|e| {
        Error::InvalidConfig(format!("remote_write {}: invalid url: {e}", config.url))
    })?;
    let (b, endpoint) = crate::tls::sni_builder(config.tls_config.as_ref(), &url)?;
    let mut b = b.user_agent(concat!("Pharos/", env!("CARGO_PKG_VERSION")));
    if !config.follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    let client = b.build().map_err(|e| Error::HttpClient(e.to_string()))?;
    let metrics = Arc::new(Metrics {
        highest_sent_ms: AtomicI64::new(i64::MIN),
        ..Metrics::default()
    });
    let (stop, stop_rx) = watch::channel(false);
    let n = config.queue_config.min_shards.max(1);
    let mut shards = Vec::with_capacity(n);
    let mut joins = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::unbounded_channel();
        let shipper = Shipper {
            name: name.clone(),
            config: config.clone(),
            client: client.clone(),
            endpoint: endpoint.clone(),
            metrics: metrics.clone(),
            acks: start.as_ref().map(|s| s.1.clone()),
            marks: std::collections::VecDeque::new(),
        };
        joins.push(rt.spawn(shipper.run(rx, stop_rx.clone())));
        shards.push(tx);
    }
    tracing::info!(queue = %name, url = %config.url, shards = n, "starting remote write queue");
    let limit = config
        .queue_config
        .capacity
        .saturating_mul(n)
        .saturating_mul(4);
    let q = Arc::new(Queue {
        name,
        config,
        external,
        cache: RwLock::new(HashMap::new()),
        shards,
        limit,
        metrics,
        stop,
        joins: Mutex::new(joins),
        feeder: Mutex::new(None),
        acks: start.as_ref().map(|s| s.1.clone()),
    });
    if let Some((source, acks, pos)) = start {
        let reader = source.reader(pos);
        let feeder = Feeder {
            queue: q.clone(),
            acks,
            stop: stop_rx,
            highest: highest_appended.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("remote-write-{}", q.name))
            .spawn(move || feeder.run(reader, pos))
            .map_err(|e| Error::Io {
                context: format!(
                    "starting the WAL reader thread of remote write queue {}",
                    q.name
                ),
                source: e,
            })?;
        *q.feeder.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }
    Ok(q)
}

/// The directory name of a queue's state: its name if that is a plain word, else a hash of it.
fn state_dir_name(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return name.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// How long the feeder sleeps at the end of the WAL or while the queue is full.
const FEED_IDLE: StdDuration = StdDuration::from_millis(50);

/// A series' outgoing labels and shard (`None`: dropped by relabeling).
type Route = Option<(Arc<Labels>, usize)>;

/// The thread reading the WAL for one queue (WAL mode).
struct Feeder {
    queue: Arc<Queue>,
    acks: Arc<Acks>,
    stop: watch::Receiver<bool>,
    highest: Arc<AtomicI64>,
}

impl Feeder {
    fn run(self, mut reader: Box<dyn WalReader>, start: WalPosition) {
        let q = &self.queue;
        // Outgoing labels and shard by storage ref (`None`: dropped by relabeling), and the WAL
        // segment that last named the series.
        let mut series: HashMap<u64, (Route, u64)> = HashMap::new();
        let mut checked = std::time::Instant::now();
        let mut prev = start;
        let mut seq = 0u64;
        let mut per: Vec<Vec<Item>> = vec![Vec::new(); q.shards.len()];
        while !*self.stop.borrow() {
            self.acks.update();
            if q.metrics.samples_pending.load(Ordering::Relaxed) >= q.limit {
                std::thread::sleep(FEED_IDLE);
                continue;
            }
            let polled = reader.poll(&mut |entry, end| {
                seq += 1;
                let mut sent = 0;
                match entry {
                    WalEntry::Series(list) => {
                        for (r, labels) in list {
                            series.insert(r, (q.route(&labels), end.segment));
                        }
                    }
                    WalEntry::Samples(samples) => {
                        let mut dropped = 0u64;
                        let mut highest = i64::MIN;
                        for (r, t, v) in samples {
                            highest = highest.max(t);
                            match series.get(&r).map(|(route, _)| route) {
                                Some(Some((l, shard))) => {
                                    if let Some(p) = per.get_mut(*shard) {
                                        p.push((l.clone(), t, v));
                                    }
                                }
                                Some(None) => dropped += 1,
                                None => {
                                    dropped += 1;
                                    tracing::debug!(queue = %q.name, series = r, "WAL sample of an unknown series");
                                }
                            }
                        }
                        self.highest.fetch_max(highest, Ordering::Relaxed);
                        if dropped > 0 {
                            q.metrics.samples_dropped.fetch_add(dropped, Ordering::Relaxed);
                        }
                        sent = per.iter().filter(|p| !p.is_empty()).count();
                    }
                    WalEntry::Other => {}
                }
                // Registered before the shards can acknowledge it.
                self.acks.fed(seq, prev, end, sent);
                prev = end;
                for (tx, p) in q.shards.iter().zip(per.iter_mut()) {
                    if p.is_empty() {
                        continue;
                    }
                    let v = std::mem::take(p);
                    let n = v.len();
                    q.metrics.samples_pending.fetch_add(n, Ordering::Relaxed);
                    if tx.send((v, seq)).is_err() {
                        // The shard stopped: this record stays unacknowledged (sent after restart).
                        q.metrics.samples_pending.fetch_sub(n, Ordering::Relaxed);
                    }
                }
            });
            match polled {
                Ok(true) => {}
                Ok(false) => std::thread::sleep(FEED_IDLE),
                Err(e) => {
                    tracing::warn!(queue = %q.name, "reading the WAL for remote write: {e}");
                    std::thread::sleep(FEED_IDLE * 20);
                }
            }
            if checked.elapsed() >= FORGET_CHECK_EVERY {
                checked = std::time::Instant::now();
                forget_dead_series(&q.name, reader.as_mut(), &mut series);
            }
        }
    }
}

/// How often a feeder asks its reader for a new checkpoint to forget deleted series by.
const FORGET_CHECK_EVERY: StdDuration = StdDuration::from_secs(10);

/// Forgets the series a new checkpoint shows to be gone from the storage (named last in a segment
/// the checkpoint covers and not in it), so a feeder's map follows the storage's series churn.
fn forget_dead_series<V>(
    queue: &str,
    reader: &mut dyn WalReader,
    series: &mut HashMap<u64, (V, u64)>,
) {
    match reader.checkpoint() {
        Ok(Some((last, live))) => {
            let live: std::collections::HashSet<u64> = live.into_iter().collect();
            let before = series.len();
            series.retain(|r, (_, seen)| *seen > last || live.contains(r));
            tracing::debug!(
                queue,
                checkpoint = last,
                forgotten = before - series.len(),
                kept = series.len(),
                "remote write: forgot series deleted from the storage"
            );
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(queue, "reading a WAL checkpoint for remote write: {e}"),
    }
}

/// The `Appendable` returned by [`RemoteWrite::tee`].
struct Tee {
    inner: Arc<dyn Appendable>,
    rw: Arc<RemoteWrite>,
}

impl Appendable for Tee {
    fn appender(&self) -> Box<dyn Appender> {
        let queues = self.rw.current();
        if queues.is_empty() {
            return self.inner.appender();
        }
        Box::new(TeeAppender {
            inner: self.inner.appender(),
            pending: vec![Vec::new(); queues.len()],
            dropped: vec![0; queues.len()],
            queues,
            rw: self.rw.clone(),
            highest: i64::MIN,
        })
    }
}

struct TeeAppender {
    inner: Box<dyn Appender>,
    queues: Arc<Vec<Arc<Queue>>>,
    pending: Vec<Vec<(usize, Item)>>,
    dropped: Vec<u64>,
    rw: Arc<RemoteWrite>,
    highest: i64,
}

impl Appender for TeeAppender {
    fn append(
        &mut self,
        series_ref: Option<SeriesRef>,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> storage::Result<SeriesRef> {
        let r = self.inner.append(series_ref, labels, t, v)?;
        for (i, q) in self.queues.iter().enumerate() {
            match q.series(r, labels) {
                Some((l, shard)) => {
                    if let Some(p) = self.pending.get_mut(i) {
                        p.push((shard, (l, t, v)));
                    }
                }
                None => {
                    if let Some(d) = self.dropped.get_mut(i) {
                        *d += 1;
                    }
                }
            }
        }
        self.highest = self.highest.max(t);
        Ok(r)
    }

    fn commit(self: Box<Self>) -> storage::Result<()> {
        let this = *self;
        this.inner.commit()?;
        this.rw
            .highest_appended_ms
            .fetch_max(this.highest, Ordering::Relaxed);
        for ((q, p), d) in this.queues.iter().zip(this.pending).zip(this.dropped) {
            if d > 0 {
                q.metrics.samples_dropped.fetch_add(d, Ordering::Relaxed);
            }
            q.enqueue(p);
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) -> storage::Result<()> {
        self.inner.rollback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that only reports one checkpoint.
    struct Checkpointed(Option<(u64, Vec<u64>)>);

    impl WalReader for Checkpointed {
        fn poll(
            &mut self,
            _f: &mut dyn FnMut(WalEntry, WalPosition),
        ) -> std::result::Result<bool, String> {
            Ok(false)
        }
        fn checkpoint(&mut self) -> std::result::Result<Option<(u64, Vec<u64>)>, String> {
            Ok(self.0.take())
        }
    }

    #[test]
    fn checkpoints_forget_series_gone_from_the_storage() {
        // ref -> segment that named it last.
        let mut series: HashMap<u64, ((), u64)> = [
            (1, ((), 0)),
            (2, ((), 0)),
            (3, ((), 3)),
            (4, ((), 4)),
            (5, ((), 2)),
        ]
        .into();
        // Checkpoint of segments <= 3 keeps series 1 alive; 2, 3 and 5 are gone, 4 is newer.
        let mut reader = Checkpointed(Some((3, vec![1])));
        forget_dead_series("q", &mut reader, &mut series);
        let mut left: Vec<u64> = series.keys().copied().collect();
        left.sort_unstable();
        assert_eq!(left, vec![1, 4]);
        // Nothing new: nothing forgotten.
        forget_dead_series("q", &mut reader, &mut series);
        assert_eq!(series.len(), 2);
    }
}
