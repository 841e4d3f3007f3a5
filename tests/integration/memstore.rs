//! An in-memory [`Queryable`] holding whole series, for running the engine in-process over known
//! samples: the PromQL script runner and the differential test against Prometheus (in
//! `tests/integration`), and the criterion benches of `pharos-query` (which include this file).
//! Queriers share the samples (no copy per query), so benchmarks measure the engine.

use std::collections::BTreeSet;
use std::sync::Arc;

use pharos_model::storage::{self, Querier, Queryable, SampleIterator, SelectHints, SeriesSet};
use pharos_model::{Labels, Matcher, Sample};

/// One series: labels and time-ordered samples, shared with queriers.
type Entry = (Labels, Arc<Vec<Sample>>);

/// An in-memory store: series sorted by labels, samples by time.
#[derive(Default)]
pub struct MemStore {
    series: Arc<Vec<Entry>>,
}

impl MemStore {
    /// A store of these series (samples sorted by time; series with equal labels are merged).
    pub fn from_series(series: Vec<(Labels, Vec<Sample>)>) -> Self {
        let mut s = Self::default();
        s.extend(series);
        s
    }

    /// Adds samples to the series `labels` (created if new), keeping time order.
    pub fn add(&mut self, labels: Labels, samples: Vec<Sample>) {
        self.extend(vec![(labels, samples)]);
    }

    fn extend(&mut self, more: Vec<(Labels, Vec<Sample>)>) {
        let mut all: Vec<(Labels, Vec<Sample>)> = self
            .series
            .iter()
            .map(|(l, s)| (l.clone(), s.as_ref().clone()))
            .collect();
        all.extend(more);
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(Labels, Vec<Sample>)> = Vec::with_capacity(all.len());
        for (l, s) in all {
            match merged.last_mut() {
                Some((last, samples)) if *last == l => samples.extend(s),
                _ => merged.push((l, s)),
            }
        }
        self.series = Arc::new(
            merged
                .into_iter()
                .map(|(l, mut s)| {
                    s.sort_by_key(|s| s.t);
                    (l, Arc::new(s))
                })
                .collect(),
        );
    }
}

struct MemQuerier {
    series: Arc<Vec<Entry>>,
    min_t: i64,
    max_t: i64,
}

impl Queryable for MemStore {
    fn querier(&self, min_t: i64, max_t: i64) -> storage::Result<Box<dyn Querier>> {
        Ok(Box::new(MemQuerier {
            series: self.series.clone(),
            min_t,
            max_t,
        }))
    }
}

/// Iterates `samples[lo..hi]` without copying them.
struct SliceIter {
    samples: Arc<Vec<Sample>>,
    /// Index of the next sample `next` returns.
    pos: usize,
    hi: usize,
    /// Index of the sample last returned, if positioned on one.
    cur: Option<usize>,
}

impl SampleIterator for SliceIter {
    fn next(&mut self) -> Option<Sample> {
        if self.pos < self.hi {
            self.cur = Some(self.pos);
            self.pos += 1;
            self.samples.get(self.pos - 1).copied()
        } else {
            self.cur = None;
            None
        }
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        if let Some(s) = self.cur.and_then(|i| self.samples.get(i))
            && s.t >= t
        {
            return Some(*s);
        }
        let window = self.samples.get(self.pos..self.hi).unwrap_or(&[]);
        self.pos += window.partition_point(|s| s.t < t);
        self.next()
    }

    /// Copies the window in range at once, as storage decodes whole chunks.
    fn collect_into(&mut self, min_t: i64, max_t: i64, out: &mut Vec<Sample>) {
        let from = match self.cur {
            Some(i) if self.samples.get(i).is_some_and(|s| s.t >= min_t) => i,
            _ => {
                let window = self.samples.get(self.pos..self.hi).unwrap_or(&[]);
                self.pos + window.partition_point(|s| s.t < min_t)
            }
        };
        let window = self.samples.get(from..self.hi).unwrap_or(&[]);
        let n = window.partition_point(|s| s.t <= max_t);
        out.extend_from_slice(window.get(..n).unwrap_or(&[]));
        self.pos = self.hi;
        self.cur = None;
    }
}

impl MemQuerier {
    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a Entry> + 'a {
        self.series
            .iter()
            .filter(move |(l, _)| Matcher::all_match(matchers, l))
    }
}

impl Querier for MemQuerier {
    fn select(&self, matchers: &[Matcher], _: &SelectHints) -> storage::Result<SeriesSet> {
        let mut out = Vec::new();
        for (l, s) in self.matching(matchers) {
            let lo = s.partition_point(|x| x.t < self.min_t);
            let hi = s.partition_point(|x| x.t <= self.max_t);
            if hi > lo {
                out.push(storage::Series {
                    labels: l.clone(),
                    samples: Box::new(SliceIter {
                        samples: s.clone(),
                        pos: lo,
                        hi,
                        cur: None,
                    }),
                });
            }
        }
        Ok(Box::new(out.into_iter()))
    }

    fn label_names(&self, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        let mut names = BTreeSet::new();
        for (l, _) in self.matching(matchers) {
            names.extend(l.iter().map(|l| l.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        let mut vals = BTreeSet::new();
        for (l, _) in self.matching(matchers) {
            vals.extend(l.get(name).map(str::to_string));
        }
        Ok(vals.into_iter().collect())
    }
}
