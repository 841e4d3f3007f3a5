//! A small in-memory storage implementing both [`Appendable`] and [`Queryable`]: for rule unit
//! tests (`pharos test rules`) and tests of the rule engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pharos_model::storage::{
    Appendable, Appender, Querier, Queryable, Result, SelectHints, Series, SeriesSet,
    VecSampleIterator,
};
use pharos_model::{Labels, Matcher, Sample, SeriesRef};

type Data = Arc<Mutex<BTreeMap<Labels, Vec<Sample>>>>;

/// Series in memory; samples appended out of order are inserted in place (unit-test input may
/// come in any order), a sample at an existing timestamp replaces it.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    data: Data,
}

fn lock(d: &Data) -> std::sync::MutexGuard<'_, BTreeMap<Labels, Vec<Sample>>> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample directly (no appender).
    pub fn add(&self, labels: &Labels, t: i64, v: f64) {
        insert(&mut lock(&self.data), labels, t, v);
    }

    /// All series and their samples.
    pub fn dump(&self) -> Vec<(Labels, Vec<Sample>)> {
        lock(&self.data)
            .iter()
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect()
    }
}

fn insert(m: &mut BTreeMap<Labels, Vec<Sample>>, labels: &Labels, t: i64, v: f64) {
    let s = m.entry(labels.clone()).or_default();
    match s.binary_search_by_key(&t, |x| x.t) {
        Ok(i) => s[i].v = v,
        Err(i) => s.insert(i, Sample { t, v }),
    }
}

struct MemAppender {
    data: Data,
    pending: Vec<(Labels, i64, f64)>,
}

impl Appender for MemAppender {
    fn append(
        &mut self,
        _: Option<SeriesRef>,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef> {
        if labels.is_empty() {
            return Err(pharos_model::storage::Error::InvalidLabels(
                "empty label set".into(),
            ));
        }
        self.pending.push((labels.clone(), t, v));
        Ok(SeriesRef(0))
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let mut m = lock(&self.data);
        for (l, t, v) in self.pending {
            insert(&mut m, &l, t, v);
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

impl Appendable for MemStore {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(MemAppender {
            data: self.data.clone(),
            pending: Vec::new(),
        })
    }
}

struct MemQuerier {
    series: Vec<(Labels, Vec<Sample>)>,
}

impl Queryable for MemStore {
    fn querier(&self, min_t: i64, max_t: i64) -> Result<Box<dyn Querier>> {
        let series = lock(&self.data)
            .iter()
            .map(|(l, s)| {
                let lo = s.partition_point(|x| x.t < min_t);
                let hi = s.partition_point(|x| x.t <= max_t);
                (l.clone(), s[lo..hi.max(lo)].to_vec())
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        Ok(Box::new(MemQuerier { series }))
    }
}

impl Querier for MemQuerier {
    fn select(&self, matchers: &[Matcher], _: &SelectHints) -> Result<SeriesSet> {
        let out: Vec<Series> = self
            .series
            .iter()
            .filter(|(l, _)| Matcher::all_match(matchers, l))
            .map(|(l, s)| Series {
                labels: l.clone(),
                samples: Box::new(VecSampleIterator::new(s.clone())),
            })
            .collect();
        Ok(Box::new(out.into_iter()))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .series
            .iter()
            .filter(|(l, _)| Matcher::all_match(matchers, l))
            .flat_map(|(l, _)| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut vals: Vec<String> = self
            .series
            .iter()
            .filter(|(l, _)| Matcher::all_match(matchers, l))
            .filter_map(|(l, _)| l.get(name).map(str::to_string))
            .collect();
        vals.sort();
        vals.dedup();
        Ok(vals)
    }
}
