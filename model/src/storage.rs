//! The storage interfaces: writing through [`Appendable`], reading through [`Queryable`].
//!
//! Modelled on Prometheus' `storage` package: an appender batches samples and makes them visible
//! atomically on [`Appender::commit`]; a querier is scoped to a time range and yields series sorted
//! by labels, each with a pull iterator over its samples.

use crate::{Labels, Matcher, Sample, SeriesRef};

/// Errors a storage engine reports through these traits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sample older than the newest one of its series (counted, the rest of the batch goes on).
    #[error("out of order sample")]
    OutOfOrder,
    /// Same timestamp as the newest sample of the series with a different value.
    #[error("duplicate sample for timestamp")]
    DuplicateTimestamp,
    /// A sample too old for the writable time range.
    #[error("out of bounds")]
    OutOfBounds,
    /// The label set is not valid for storage (e.g. empty or without a metric name).
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// An I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What could not be done (with the path).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Data on disk is not what it must be.
    #[error("corruption: {0}")]
    Corruption(String),
    /// The storage is closed or shutting down.
    #[error("storage closed")]
    Closed,
}

impl Error {
    /// True for per-sample rejections (out of order, duplicate, out of bounds) that callers count
    /// and skip rather than abort on.
    pub fn is_sample_rejection(&self) -> bool {
        matches!(
            self,
            Error::OutOfOrder | Error::DuplicateTimestamp | Error::OutOfBounds
        )
    }
}

/// Result alias for storage operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Something that accepts samples.
pub trait Appendable: Send + Sync {
    /// A new appender; samples become visible on its `commit`.
    fn appender(&self) -> Box<dyn Appender>;
}

/// A batch of appends, committed or rolled back as one.
pub trait Appender: Send {
    /// Adds a sample for the series `labels` (or `series_ref`, when the caller has one from an
    /// earlier append; the labels are then only used if the reference is unknown). Returns the
    /// series' reference.
    fn append(
        &mut self,
        series_ref: Option<SeriesRef>,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef>;
    /// Adds a sample for the series `series_ref` handed out by an earlier append, without its
    /// labels. `Ok(None)` if the reference is unknown here (the caller then appends with the
    /// labels); the default, for engines that cannot append by reference alone, always says so.
    fn append_by_ref(
        &mut self,
        series_ref: SeriesRef,
        t: i64,
        v: f64,
    ) -> Result<Option<SeriesRef>> {
        let _ = (series_ref, t, v);
        Ok(None)
    }
    /// Adds a sample for the series `series_ref` like [`Appender::append_by_ref`], but the
    /// engine may leave finding the series and checking the sample against its newest one to
    /// the commit: a sample refused then is counted in the [`CommitReport`] that
    /// [`Appender::commit_report`] returns (and a sample of a series gone meanwhile is handed
    /// back there, for the caller to append again with its labels). For callers that append
    /// one sample per series and can take rejections late, as a scrape does; the default checks
    /// now.
    fn append_deferred(
        &mut self,
        series_ref: SeriesRef,
        t: i64,
        v: f64,
    ) -> Result<Option<SeriesRef>> {
        self.append_by_ref(series_ref, t, v)
    }
    /// Makes the batch durable (per the engine's WAL policy) and visible to queries.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Commits like [`Appender::commit`] and reports the samples refused at the commit.
    fn commit_report(self: Box<Self>) -> Result<CommitReport> {
        self.commit().map(|()| CommitReport::default())
    }
    /// Discards the batch.
    fn rollback(self: Box<Self>) -> Result<()>;
}

/// The samples a commit refused: those of [`Appender::append_deferred`], checked only then, and
/// any other that a concurrent append made out of order meanwhile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitReport {
    /// Older than the newest sample of their series.
    pub out_of_order: u64,
    /// At the newest sample's time with a different value.
    pub duplicate: u64,
    /// Too old for the writable time range.
    pub out_of_bounds: u64,
    /// Samples `(ref, t, v)` whose series the storage no longer has (removed since the ref was
    /// handed out): not stored; append them again with the labels.
    pub unknown: Vec<(SeriesRef, i64, f64)>,
}

impl CommitReport {
    /// Counts a per-sample rejection; false (not counted) if `e` is not one.
    pub fn count(&mut self, e: &Error) -> bool {
        let c = match e {
            Error::OutOfOrder => &mut self.out_of_order,
            Error::DuplicateTimestamp => &mut self.duplicate,
            Error::OutOfBounds => &mut self.out_of_bounds,
            _ => return false,
        };
        *c += 1;
        true
    }

    /// Samples refused: rejected or handed back.
    pub fn refused(&self) -> u64 {
        self.out_of_order + self.duplicate + self.out_of_bounds + self.unknown.len() as u64
    }
}

/// Hints a querier may use to load less.
#[derive(Debug, Clone, Default)]
pub struct SelectHints {
    /// Start of the queried range in ms (inclusive), after lookback.
    pub start: i64,
    /// End of the queried range in ms (inclusive).
    pub end: i64,
    /// Step of a range query in ms (0 for instant queries).
    pub step: i64,
    /// The function the selection feeds, if any (e.g. `rate`).
    pub func: Option<String>,
}

/// Something that can be read.
pub trait Queryable: Send + Sync {
    /// A querier over samples with `min_t <= t <= max_t`.
    fn querier(&self, min_t: i64, max_t: i64) -> Result<Box<dyn Querier>>;
}

/// The administrative operations of a storage engine (Prometheus' admin API).
pub trait Admin: Send + Sync {
    /// Marks the samples in `[min_t, max_t]` of every series matching all `matchers` as
    /// deleted, durably: queries no longer see them, also after a restart.
    fn delete_series(&self, min_t: i64, max_t: i64, matchers: &[Matcher]) -> Result<()>;
    /// Rewrites the persisted data holding deleted samples without them and forgets the
    /// deletions that no longer need to be remembered.
    fn clean_tombstones(&self) -> Result<()>;
    /// Writes a snapshot of the data into the new directory `dir`, which can be opened as a
    /// data directory: the persisted data, plus the in-memory data unless `skip_head`.
    fn snapshot(&self, dir: &std::path::Path, skip_head: bool) -> Result<()>;
}

/// Reads series within a time range.
pub trait Querier: Send {
    /// All series matching every matcher, sorted by labels, with samples in the querier's range.
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<SeriesSet>;
    /// Sorted unique label names of series matching `matchers` (all series if empty).
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>>;
    /// Sorted unique values of label `name` among series matching `matchers` (all if empty).
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>>;
}

/// A pull iterator over one series' samples in time order.
pub trait SampleIterator: Send {
    /// The next sample, or `None` at the end.
    fn next(&mut self) -> Option<Sample>;
    /// Advances to the first sample with timestamp `>= t` and returns it; never goes backwards
    /// (if the current sample is already at or past `t`, it is returned again).
    fn seek(&mut self, t: i64) -> Option<Sample>;
    /// Appends to `out` the samples with `min_t <= t <= max_t` from the current position on
    /// (what `seek(min_t)` then `next` up to `max_t` return). Afterwards the iterator's position
    /// is unspecified: use it no further. Storage overrides this to decode whole chunks straight
    /// into `out`, without a call per sample.
    fn collect_into(&mut self, min_t: i64, max_t: i64, out: &mut Vec<Sample>) {
        collect_range(self, min_t, max_t, out);
    }
}

/// [`SampleIterator::collect_into`] done sample by sample with `seek` and `next`: the default,
/// and the fallback of overrides whose fast path does not apply.
pub fn collect_range<I: SampleIterator + ?Sized>(
    it: &mut I,
    min_t: i64,
    max_t: i64,
    out: &mut Vec<Sample>,
) {
    let mut cur = it.seek(min_t);
    while let Some(x) = cur {
        if x.t > max_t {
            break;
        }
        out.push(x);
        cur = it.next();
    }
}

/// One selected series.
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Its samples within the querier's range.
    pub samples: Box<dyn SampleIterator>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// Series in label order.
pub type SeriesSet = Box<dyn Iterator<Item = Series> + Send>;

/// A [`SampleIterator`] over an owned vector: for engines that materialise samples, and for tests.
#[derive(Debug, Clone)]
pub struct VecSampleIterator {
    samples: Vec<Sample>,
    /// Index of the next sample `next` returns.
    pos: usize,
    /// Index of the sample last returned, if the iterator is positioned on one.
    cur: Option<usize>,
}

impl VecSampleIterator {
    /// Iterates `samples`, which must be sorted by time.
    pub fn new(samples: Vec<Sample>) -> Self {
        Self {
            samples,
            pos: 0,
            cur: None,
        }
    }
}

impl SampleIterator for VecSampleIterator {
    fn next(&mut self) -> Option<Sample> {
        let s = self.samples.get(self.pos).copied();
        if s.is_some() {
            self.cur = Some(self.pos);
            self.pos += 1;
        } else {
            // Exhausted: stay at the end, as Prometheus' iterators do.
            self.cur = None;
        }
        s
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        if let Some(s) = self.cur.and_then(|i| self.samples.get(i))
            && s.t >= t
        {
            return Some(*s);
        }
        let skip = self.samples[self.pos..].partition_point(|s| s.t < t);
        self.pos += skip;
        self.next()
    }

    /// Copies the slice in range at once.
    fn collect_into(&mut self, min_t: i64, max_t: i64, out: &mut Vec<Sample>) {
        let from = match self.cur {
            Some(i) if self.samples.get(i).is_some_and(|s| s.t >= min_t) => i,
            _ => {
                let rest = self.samples.get(self.pos..).unwrap_or_default();
                self.pos + rest.partition_point(|s| s.t < min_t)
            }
        };
        let rest = self.samples.get(from..).unwrap_or_default();
        let n = rest.partition_point(|s| s.t <= max_t);
        out.extend_from_slice(rest.get(..n).unwrap_or_default());
        self.pos = self.samples.len();
        self.cur = None;
    }
}

/// Collects all samples of an iterator (convenience for engines and tests).
pub fn collect_samples(it: &mut dyn SampleIterator) -> Vec<Sample> {
    let mut out = Vec::new();
    while let Some(s) = it.next() {
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64) -> Sample {
        Sample { t, v: t as f64 }
    }

    #[test]
    fn vec_iterator_seek_and_next() {
        let mut it = VecSampleIterator::new(vec![s(10), s(20), s(30)]);
        assert_eq!(it.seek(15), Some(s(20)));
        assert_eq!(it.seek(5), Some(s(20))); // never backwards
        assert_eq!(it.next(), Some(s(30)));
        assert_eq!(it.next(), None);
        assert_eq!(it.seek(100), None);
        assert_eq!(it.seek(5), None); // stays at the end once exhausted
        let mut it = VecSampleIterator::new(vec![s(10), s(20)]);
        assert_eq!(it.seek(10), Some(s(10)));
        assert_eq!(collect_samples(&mut it), vec![s(20)]);
    }

    /// Only `next` and `seek`: uses the default `collect_into`.
    struct ByStep(VecSampleIterator);
    impl SampleIterator for ByStep {
        fn next(&mut self) -> Option<Sample> {
            self.0.next()
        }
        fn seek(&mut self, t: i64) -> Option<Sample> {
            self.0.seek(t)
        }
    }

    /// The slice copy of `VecSampleIterator::collect_into` equals the default by steps, fresh
    /// and after `skip` calls of `next`.
    #[test]
    fn vec_iterator_collect_into() {
        #[track_caller]
        fn check(skip: usize, min_t: i64, max_t: i64, want: &[i64]) {
            let v = VecSampleIterator::new(vec![s(10), s(20), s(30), s(40)]);
            let (mut fast, mut slow) = (v.clone(), ByStep(v));
            for _ in 0..skip {
                assert_eq!(fast.next(), slow.next());
            }
            let (mut a, mut b) = (vec![s(-1)], vec![s(-1)]);
            fast.collect_into(min_t, max_t, &mut a);
            slow.collect_into(min_t, max_t, &mut b);
            assert_eq!(a, b);
            let want: Vec<Sample> = std::iter::once(-1)
                .chain(want.iter().copied())
                .map(s)
                .collect();
            assert_eq!(a, want);
        }
        check(0, 0, 100, &[10, 20, 30, 40]);
        check(0, 15, 30, &[20, 30]);
        check(0, 41, 100, &[]);
        check(0, 0, 5, &[]);
        check(1, 0, 100, &[10, 20, 30, 40]); // positioned on 10: seek returns it again
        check(2, 15, 35, &[20, 30]);
        check(2, 25, 35, &[30]);
        check(4, 0, 100, &[40]);
        check(5, 0, 100, &[]);
    }
}
