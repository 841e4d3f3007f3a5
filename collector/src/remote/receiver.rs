//! The remote-write receiver: `POST /api/v1/write` bodies appended through [`Appendable`].
//!
//! Behaves as Prometheus 2.42's receiver: a request is one appender batch, committed as a whole or
//! rolled back; an undecodable body, invalid labels or a sample rejected by storage (out of order,
//! duplicate timestamp, out of bounds) make the whole request fail with 400 so the sender does not
//! retry it; other storage errors answer 500 (the sender retries); success answers 204.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pharos_model::expfmt::{MetricFamily, MetricType};
use pharos_model::storage::{Appendable, Error as StorageError};
use pharos_model::{Label, Labels};

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
        let req = SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut buf) => {
                let r = proto::decode_with(body, &mut buf);
                // Keep a typical request's buffer, not the largest ever seen.
                if buf.capacity() > 4 << 20 {
                    *buf = Vec::new();
                }
                r
            }
            Err(_) => proto::decode(body),
        })?;
        let mut app = self.app.appender();
        let mut n = 0u64;
        let num_series = req.timeseries.len() as u64;
        for ts in req.timeseries {
            let labels = match to_labels(ts.labels) {
                Ok(l) => l,
                Err(e) => {
                    let _ = app.rollback();
                    return Err(Error::Storage(StorageError::InvalidLabels(e)));
                }
            };
            let mut sref = None;
            for s in &ts.samples {
                match app.append(sref, &labels, s.timestamp, s.value) {
                    Ok(r) => sref = Some(r),
                    Err(e) => {
                        if e.is_sample_rejection() {
                            tracing::warn!(series = %labels, timestamp = s.timestamp, "remote write: {e}");
                        }
                        let _ = app.rollback();
                        return Err(Error::Storage(e));
                    }
                }
                n += 1;
            }
        }
        app.commit()?;
        self.counters.samples.fetch_add(n, Ordering::Relaxed);
        self.counters
            .series
            .fetch_add(num_series, Ordering::Relaxed);
        Ok(n)
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
fn to_labels(pairs: Vec<proto::Label>) -> std::result::Result<Labels, String> {
    // Moves the decoded strings into the label set: no copy per label.
    let mut v: Vec<Label> = Vec::with_capacity(pairs.len());
    for p in pairs {
        if p.value.is_empty() {
            continue;
        }
        if !is_label_name(&p.name) {
            return Err(format!("invalid label name {:?}", p.name));
        }
        v.push(Label {
            name: p.name,
            value: p.value,
        });
    }
    let given = v.len();
    let l = Labels::new(v);
    if l.len() != given {
        return Err(format!("duplicate label names in {l}"));
    }
    if l.metric_name().is_none() {
        return Err(format!("series {l} has no metric name"));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::SeriesRef;
    use pharos_model::storage::{self, Appender};
    use std::sync::Mutex;

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
