//! The remote-write receiver: `POST /api/v1/write` bodies appended through [`Appendable`].
//!
//! Behaves as Prometheus 2.42's receiver: a request is one appender batch, committed as a whole or
//! rolled back; an undecodable body, invalid labels or a sample rejected by storage (out of order,
//! duplicate timestamp, out of bounds) make the whole request fail with 400 so the sender does not
//! retry it; other storage errors answer 500 (the sender retries); success answers 204.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pharos_model::expfmt::{MetricFamily, MetricType};
use pharos_model::storage::{Appendable, Appender, Error as StorageError};
use pharos_model::{Label, Labels, SeriesRef};

use super::proto;
use crate::config::is_label_name;
use crate::{Error, Result};

/// Counters of the receiver since start.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    failed_requests: AtomicU64,
    samples: AtomicU64,
    series: AtomicU64,
}

/// Appends remote-write requests to storage.
pub struct Receiver {
    app: Arc<dyn Appendable>,
    counters: Counters,
    cache: Cache,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver appending to `app`.
    pub fn new(app: Arc<dyn Appendable>) -> Self {
        Self {
            app,
            counters: Counters::default(),
            cache: Cache::new(CACHE_SERIES),
        }
    }

    /// Decodes and appends one request body; returns the number of samples stored. Blocking
    /// (storage appends): call it off the async threads.
    pub fn write(&self, body: &[u8]) -> Result<u64> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let r = self.write_inner(body);
        if r.is_err() {
            self.counters
                .failed_requests
                .fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn write_inner(&self, body: &[u8]) -> Result<u64> {
        thread_local! {
            /// Decompression buffer reused by the requests handled on this thread.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut buf) => {
                let r = proto::decompress(body, &mut buf).and_then(|raw| self.append_request(raw));
                // Keep a typical request's buffer, not the largest ever seen.
                if buf.capacity() > 4 << 20 {
                    *buf = Vec::new();
                }
                r
            }
            Err(_) => self.append_request(proto::decompress(body, &mut Vec::new())?),
        })
    }

    /// Appends the series of a decompressed request as one batch: committed if every series and
    /// sample is accepted, rolled back otherwise.
    fn append_request(&self, raw: &[u8]) -> Result<u64> {
        let mut app = self.app.appender();
        let mut learned = Vec::new();
        match self.append_all(app.as_mut(), raw, &mut learned) {
            Ok((samples, series)) => {
                app.commit()?;
                // Only committed refs go to the cache (a rolled-back ref names nothing).
                self.cache.insert(learned);
                self.counters.samples.fetch_add(samples, Ordering::Relaxed);
                self.counters.series.fetch_add(series, Ordering::Relaxed);
                Ok(samples)
            }
            Err(e) => {
                let _ = app.rollback();
                Err(e)
            }
        }
    }

    /// Appends every sample of the request; returns (samples, series) and adds to `learned` the
    /// series refs the cache did not know.
    fn append_all(
        &self,
        app: &mut dyn Appender,
        raw: &[u8],
        learned: &mut Vec<Learned>,
    ) -> Result<(u64, u64)> {
        let (mut n, mut num_series) = (0u64, 0u64);
        // Room for a typical series' samples up front (reused for every series of the request).
        let mut samples = Vec::with_capacity(64);
        for ts in proto::RequestView::new(raw).series() {
            let ts = ts?;
            num_series += 1;
            let run = ts.read_samples(&mut samples)?;
            let key = run.map(|r| (r, hash(r)));
            let hint = key.and_then(|(r, h)| self.cache.get(h, r));
            // A known series goes by its ref alone; its labels are built only if the storage no
            // longer knows the ref (or to name the series in a warning).
            let mut done = 0;
            if let Some(r) = hint {
                for s in &samples {
                    match app.append_by_ref(r, s.timestamp, s.value) {
                        Ok(Some(_)) => done += 1,
                        Ok(None) => break,
                        Err(e) => {
                            if e.is_sample_rejection() {
                                let series =
                                    to_labels(&ts).map(|l| l.to_string()).unwrap_or_default();
                                tracing::warn!(
                                    series,
                                    timestamp = s.timestamp,
                                    "remote write: {e}"
                                );
                            }
                            return Err(Error::Storage(e));
                        }
                    }
                }
            }
            let mut sref = hint;
            if let Some(rest) = samples.get(done..)
                && !rest.is_empty()
            {
                let labels = to_labels(&ts)?;
                for s in rest {
                    match app.append(sref, &labels, s.timestamp, s.value) {
                        Ok(r) => sref = Some(r),
                        Err(e) => {
                            if e.is_sample_rejection() {
                                tracing::warn!(series = %labels, timestamp = s.timestamp, "remote write: {e}");
                            }
                            return Err(Error::Storage(e));
                        }
                    }
                }
            }
            n += samples.len() as u64;
            if let (Some(r), Some((raw, hash))) = (sref, key)
                && sref != hint
            {
                learned.push(Learned {
                    hash,
                    entry: Entry {
                        raw: raw.into(),
                        sref: r,
                    },
                });
            }
        }
        Ok((n, num_series))
    }

    /// [`Receiver::write`] as an HTTP answer: (status, body). 204 on success; 400 for a body that
    /// does not decode, invalid labels or rejected samples; 500 for other storage failures.
    pub fn handle(&self, body: &[u8]) -> (u16, String) {
        match self.write(body) {
            Ok(_) => (204, String::new()),
            Err(e) => {
                let status = status_of(&e);
                if status == 500 {
                    tracing::error!("remote write: {e}");
                }
                (status, format!("{e}\n"))
            }
        }
    }

    /// Counters as metric families for Pharos' own `/metrics`.
    pub fn families(&self) -> Vec<MetricFamily> {
        let c = &self.counters;
        let counter = |name: &str, help: &str, v: &AtomicU64| {
            let mut f = MetricFamily::new(name, help, MetricType::Counter);
            f.push(&[], v.load(Ordering::Relaxed) as f64);
            f
        };
        vec![
            counter(
                "pharos_remote_write_requests_total",
                "Remote-write requests received.",
                &c.requests,
            ),
            counter(
                "pharos_remote_write_failed_requests_total",
                "Remote-write requests answered with an error.",
                &c.failed_requests,
            ),
            counter(
                "pharos_remote_write_samples_total",
                "Samples stored from remote-write requests.",
                &c.samples,
            ),
            counter(
                "pharos_remote_write_series_total",
                "Series entries of stored remote-write requests.",
                &c.series,
            ),
        ]
    }
}

/// The HTTP status for an error of [`Receiver::write`].
pub fn status_of(e: &Error) -> u16 {
    match e {
        Error::Decode(_) => 400,
        Error::Storage(s) if s.is_sample_rejection() => 400,
        Error::Storage(StorageError::InvalidLabels(_)) => 400,
        _ => 500,
    }
}

/// Label pairs of a request as [`Labels`]: empty values dropped (an empty value means absent),
/// names checked, duplicates and a missing metric name rejected.
fn to_labels(ts: &proto::SeriesView<'_>) -> Result<Labels> {
    let invalid = |m: String| Error::Storage(StorageError::InvalidLabels(m));
    let mut v: Vec<Label> = Vec::new();
    for pair in ts.labels() {
        let (name, value) = pair?;
        if value.is_empty() {
            continue;
        }
        let utf8 = |b| {
            std::str::from_utf8(b).map_err(|e| {
                Error::Decode(format!(
                    "protobuf: label {:?}: invalid UTF-8: {e}",
                    String::from_utf8_lossy(name)
                ))
            })
        };
        let (name, value) = (utf8(name)?, utf8(value)?);
        if !is_label_name(name) {
            return Err(invalid(format!("invalid label name {name:?}")));
        }
        v.push(Label {
            name: name.to_string(),
            value: value.to_string(),
        });
    }
    let given = v.len();
    let l = Labels::new(v);
    if l.len() != given {
        return Err(invalid(format!("duplicate label names in {l}")));
    }
    if l.metric_name().is_none() {
        return Err(invalid(format!("series {l} has no metric name")));
    }
    Ok(l)
}

/// A series ref learned from a committed request, for the cache.
struct Learned {
    hash: u64,
    entry: Entry,
}

/// What the cache keeps of a series: the label bytes of its requests and its ref.
struct Entry {
    raw: Box<[u8]>,
    sref: SeriesRef,
}

/// One lock's worth of the cache: two generations, so that series not seen for a whole
/// generation are forgotten while active ones stay (bounded memory under series churn).
#[derive(Default)]
struct Shard {
    cur: HashMap<u64, Entry, BuildHasherDefault<Prehashed>>,
    old: HashMap<u64, Entry, BuildHasherDefault<Prehashed>>,
}

impl Shard {
    fn put(&mut self, hash: u64, e: Entry, cap: usize) {
        if self.cur.len() >= cap {
            self.old = std::mem::take(&mut self.cur);
        }
        self.cur.insert(hash, e);
    }
}

/// Series known from earlier requests, by their label bytes (see
/// [`proto::SeriesView::read_samples`]): a known series skips checking and building its label
/// set and the storage's lookup by labels (its ref is passed along). Entries are found by a hash
/// and confirmed by comparing the bytes, so a collision only costs a miss.
struct Cache {
    shards: [Mutex<Shard>; CACHE_SHARDS],
    /// Entries per shard and generation.
    per_shard: usize,
}

/// Lock shards of [`Cache`] (requests are handled on several threads).
const CACHE_SHARDS: usize = 16;
/// Series the cache holds at least (up to twice as many: two generations). Covers a large
/// receiver's active series; beyond, the least recently seen ones take the slower path.
const CACHE_SERIES: usize = 1 << 18;

impl Cache {
    fn new(series: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            per_shard: series.div_ceil(CACHE_SHARDS).max(1),
        }
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The high bits pick the shard; the maps use the low ones.
        self.shards[(hash >> 58) as usize % CACHE_SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The series ref of the label bytes `raw` (hashed to `hash`). Compared and copied under the
    /// shard's lock: no reference count is touched on a hit (two threads taking turns on one
    /// counter cost more than the lookup).
    fn get(&self, hash: u64, raw: &[u8]) -> Option<SeriesRef> {
        let mut sh = self.shard(hash);
        if let Some(e) = sh.cur.get(&hash) {
            return (*e.raw == *raw).then_some(e.sref);
        }
        let e = sh.old.remove(&hash)?;
        let hit = (*e.raw == *raw).then_some(e.sref);
        sh.put(hash, e, self.per_shard);
        hit
    }

    fn insert(&self, learned: Vec<Learned>) {
        for l in learned {
            self.shard(l.hash).put(l.hash, l.entry, self.per_shard);
        }
    }
}

/// FxHash-style multiply-rotate over 8-byte words: fast, and good enough for keys whose
/// collisions are checked.
fn hash(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let add = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut h = add(0, b.len() as u64);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        h = add(h, u64::from_le_bytes(a));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut a = [0u8; 8];
        for (d, s) in a.iter_mut().zip(rest) {
            *d = *s;
        }
        h = add(h, u64::from_le_bytes(a));
    }
    // Spread the high bits down: the maps use the low bits.
    h ^ (h >> 29) ^ (h >> 47)
}

/// A `Hasher` for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::storage;

    type Data = Arc<Mutex<Vec<(String, i64, f64)>>>;

    /// Stores committed samples; rejects a sample older than the last of its series.
    #[derive(Default, Clone)]
    struct Mem(Data);
    struct MemApp(Data, Vec<(String, i64, f64)>);
    impl Appendable for Mem {
        fn appender(&self) -> Box<dyn Appender> {
            Box::new(MemApp(self.0.clone(), Vec::new()))
        }
    }
    impl Appender for MemApp {
        fn append(
            &mut self,
            _: Option<SeriesRef>,
            l: &Labels,
            t: i64,
            v: f64,
        ) -> storage::Result<SeriesRef> {
            let key = l.to_string();
            let data = self.0.lock().unwrap();
            let last = data
                .iter()
                .chain(self.1.iter())
                .filter(|(k, _, _)| *k == key)
                .map(|(_, t, _)| *t)
                .max();
            if last.is_some_and(|lt| t < lt) {
                return Err(storage::Error::OutOfOrder);
            }
            if v.is_infinite() {
                return Err(storage::Error::Closed);
            }
            drop(data);
            self.1.push((key, t, v));
            Ok(SeriesRef(1))
        }
        fn commit(self: Box<Self>) -> storage::Result<()> {
            self.0.lock().unwrap().extend(self.1);
            Ok(())
        }
        fn rollback(self: Box<Self>) -> storage::Result<()> {
            Ok(())
        }
    }

    type Log = Arc<Mutex<Vec<(String, Option<u64>)>>>;

    /// Hands out one ref per label set and records, per append, the labels and the ref hint.
    #[derive(Default, Clone)]
    struct Refs {
        refs: Arc<Mutex<HashMap<String, u64>>>,
        log: Log,
        /// Answer `append_by_ref` for known refs (else the trait's default: unknown).
        by_ref: bool,
    }
    struct RefsApp(Refs);
    impl Appendable for Refs {
        fn appender(&self) -> Box<dyn Appender> {
            Box::new(RefsApp(self.clone()))
        }
    }
    impl Appender for RefsApp {
        fn append(
            &mut self,
            hint: Option<SeriesRef>,
            l: &Labels,
            t: i64,
            _: f64,
        ) -> storage::Result<SeriesRef> {
            let key = l.to_string();
            self.0
                .log
                .lock()
                .unwrap()
                .push((key.clone(), hint.map(|r| r.0)));
            let mut refs = self.0.refs.lock().unwrap();
            let n = refs.len() as u64 + 100;
            let r = *refs.entry(key).or_insert(n);
            if let Some(h) = hint {
                // A hint is only ever the ref of the same labels.
                assert_eq!(h.0, r, "hint for {l}");
            }
            if t < 0 {
                return Err(storage::Error::OutOfOrder);
            }
            Ok(SeriesRef(r))
        }
        fn append_by_ref(
            &mut self,
            r: SeriesRef,
            _: i64,
            _: f64,
        ) -> storage::Result<Option<SeriesRef>> {
            let known = self.0.by_ref && self.0.refs.lock().unwrap().values().any(|v| *v == r.0);
            if known {
                self.0
                    .log
                    .lock()
                    .unwrap()
                    .push(("by ref".into(), Some(r.0)));
            }
            Ok(known.then_some(r))
        }
        fn commit(self: Box<Self>) -> storage::Result<()> {
            Ok(())
        }
        fn rollback(self: Box<Self>) -> storage::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn known_series_append_by_ref_alone_until_the_storage_forgets_them() {
        let refs = Refs {
            by_ref: true,
            ..Refs::default()
        };
        let r = Receiver::new(Arc::new(refs.clone()));
        let a: &[(&str, &str)] = &[("__name__", "a"), ("job", "x")];
        let take_log = || std::mem::take(&mut *refs.log.lock().unwrap());
        assert_eq!(r.handle(&body(&[(a, &[(1, 1.0)])])).0, 204);
        assert_eq!(take_log(), [(r#"a{job="x"}"#.to_string(), None)]);
        assert_eq!(r.handle(&body(&[(a, &[(2, 1.0), (3, 1.0)])])).0, 204);
        assert_eq!(take_log(), vec![("by ref".to_string(), Some(100)); 2]);
        // The storage lost the series (e.g. retention): labels again, a new ref learnt.
        refs.refs.lock().unwrap().clear();
        assert_eq!(r.handle(&body(&[(a, &[(4, 1.0)])])).0, 204);
        assert_eq!(take_log(), [(r#"a{job="x"}"#.to_string(), Some(100))]);
    }

    #[test]
    fn known_series_skip_label_building() {
        let refs = Refs::default();
        let r = Receiver::new(Arc::new(refs.clone()));
        let a: &[(&str, &str)] = &[("__name__", "a"), ("job", "x")];
        let b: &[(&str, &str)] = &[("__name__", "b"), ("e", ""), ("job", "x")];
        // The same label set spelled in another order: its own cache entry, the same series.
        let a2: &[(&str, &str)] = &[("job", "x"), ("__name__", "a")];
        let take_log = || std::mem::take(&mut *refs.log.lock().unwrap());
        let hinted = |log: &[(String, Option<u64>)]| -> Vec<bool> {
            log.iter().map(|(_, h)| h.is_some()).collect()
        };
        assert_eq!(
            r.handle(&body(&[(a, &[(1, 1.0), (2, 1.0)]), (b, &[(1, 1.0)])]))
                .0,
            204
        );
        // The second sample of a series has the ref the first append returned.
        assert_eq!(hinted(&take_log()), [false, true, false]);
        assert_eq!(
            r.handle(&body(&[
                (a, &[(3, 1.0)]),
                (b, &[(2, 1.0)]),
                (a2, &[(4, 1.0)])
            ]))
            .0,
            204
        );
        let log = take_log();
        assert_eq!(hinted(&log), [true, true, false]);
        assert_eq!(log[2].0, r#"a{job="x"}"#);
        assert_eq!(log[1].0, r#"b{job="x"}"#);
        assert_eq!(r.handle(&body(&[(a2, &[(5, 1.0)])])).0, 204);
        assert_eq!(hinted(&take_log()), [true]);
        // A rejected request teaches the cache nothing.
        let c: &[(&str, &str)] = &[("__name__", "c")];
        assert_eq!(
            r.handle(&body(&[(c, &[(1, 1.0)]), (a, &[(-1, 1.0)])])).0,
            400
        );
        assert_eq!(hinted(&take_log()), [false, true]);
        assert_eq!(r.handle(&body(&[(c, &[(1, 1.0)])])).0, 204);
        assert_eq!(hinted(&take_log()), [false]);
        assert_eq!(r.handle(&body(&[(c, &[(2, 1.0)])])).0, 204);
        assert_eq!(hinted(&take_log()), [true]);
    }

    #[test]
    fn cache_hits_are_confirmed_and_generations_bounded() {
        let cache = Cache::new(CACHE_SHARDS); // one entry per shard and generation
        // Hashes 7..=10 share shard 0.
        let learn = |raw: &[u8], hash, r| Learned {
            hash,
            entry: Entry {
                raw: raw.into(),
                sref: SeriesRef(r),
            },
        };
        let hit = |raw: &[u8], h| cache.get(h, raw).map(|r| r.0);
        cache.insert(vec![learn(b"x", 7, 1)]);
        assert_eq!(hit(b"x", 7), Some(1));
        // Same hash, other bytes (a collision), or a prefix: a miss.
        assert_eq!(hit(b"y", 7), None);
        assert_eq!(hit(b"", 7), None);
        assert_eq!(hit(b"xx", 7), None);
        assert_eq!(hit(b"x", 8), None);
        // Two generations of one entry per shard: x ages out after two newer series...
        cache.insert(vec![learn(b"y", 8, 2)]);
        assert_eq!(
            hit(b"x", 7),
            Some(1),
            "x in the old generation, now current again"
        );
        cache.insert(vec![learn(b"z", 9, 3)]);
        assert_eq!(hit(b"y", 8), None, "y forgotten");
        cache.insert(vec![learn(b"w", 10, 4)]);
        assert_eq!(hit(b"x", 7), None, "x forgotten");
        assert_eq!(hit(b"z", 9), Some(3));
        assert_eq!(hit(b"w", 10), Some(4));
    }

    #[test]
    fn hash_depends_on_every_byte_and_the_length() {
        let base = hash(b"0123456789abcdef_");
        for i in 0..17 {
            let mut b = b"0123456789abcdef_".to_vec();
            b[i] ^= 1;
            assert_ne!(hash(&b), base, "byte {i}");
        }
        assert_ne!(hash(b"a"), hash(b"a\0"));
        assert_ne!(hash(b""), hash(b"\0"));
    }

    type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn body(series: &[Series<'_>]) -> Vec<u8> {
        let req = proto::WriteRequest {
            timeseries: series
                .iter()
                .map(|(l, s)| proto::TimeSeries {
                    labels: l
                        .iter()
                        .map(|(n, v)| proto::Label {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    samples: s
                        .iter()
                        .map(|(t, v)| proto::Sample {
                            value: *v,
                            timestamp: *t,
                        })
                        .collect(),
                })
                .collect(),
        };
        proto::encode(&req, &mut Vec::new()).unwrap()
    }

    #[track_caller]
    fn check(mem: &Mem, b: &[u8], want_status: u16, want_stored: usize) {
        let r = Receiver::new(Arc::new(mem.clone()));
        let (status, msg) = r.handle(b);
        assert_eq!(status, want_status, "{msg}");
        assert_eq!(mem.0.lock().unwrap().len(), want_stored);
    }

    #[test]
    fn statuses_and_atomicity() {
        let mem = Mem::default();
        let up: &[(&str, &str)] = &[("__name__", "up"), ("job", "a"), ("empty", "")];
        check(&mem, &body(&[(up, &[(1, 1.0), (2, 0.0)])]), 204, 2);
        assert_eq!(mem.0.lock().unwrap()[0].0, r#"up{job="a"}"#);
        check(&mem, b"not snappy", 400, 2);
        // Out of order in the second series: nothing of the request is stored.
        let other: &[(&str, &str)] = &[("__name__", "x")];
        check(
            &mem,
            &body(&[(other, &[(5, 1.0)]), (up, &[(1, 1.0)])]),
            400,
            2,
        );
        check(&mem, &body(&[(&[("job", "a")], &[(5, 1.0)])]), 400, 2);
        check(
            &mem,
            &body(&[(&[("__name__", "a"), ("b-c", "1")], &[(5, 1.0)])]),
            400,
            2,
        );
        check(
            &mem,
            &body(&[(&[("__name__", "a"), ("__name__", "b")], &[(5, 1.0)])]),
            400,
            2,
        );
        // A storage failure that is not a sample rejection: 500, the sender retries.
        check(&mem, &body(&[(other, &[(5, f64::INFINITY)])]), 500, 2);
        // An empty request is fine.
        check(&mem, &body(&[]), 204, 2);
        let r = Receiver::new(Arc::new(mem.clone()));
        r.handle(&body(&[(other, &[(6, 1.0), (7, 2.0)])]));
        r.handle(b"");
        let fams = r.families();
        let text: Vec<String> = fams.iter().map(|f| format!("{f:?}")).collect();
        assert_eq!(fams.len(), 4, "{text:?}");
    }
}
