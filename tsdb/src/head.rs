//! The in-memory head: series with their open and closed chunks, and the label index.
//!
//! Locking: one `RwLock` over the index (series by ref, by labels, postings), taken for writing
//! only to add or remove series; one `Mutex` per series over its chunks. Appends to known series
//! take the index lock for reading and the series' own lock, so appenders of different series do
//! not contend.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use pharos_model::storage;
use pharos_model::{Labels, MatchOp, Matcher, Sample};

use crate::chunk::Encoding;
use crate::chunk::{Encoder, SAMPLES_PER_CHUNK};
use crate::iter::{ChunkBytes, ChunkRef, ChunksIterator};

/// Locks a mutex; a panic elsewhere while holding it leaves data that is still consistent for
/// our purposes (every mutation completes before any fallible step), so poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// A full chunk, no longer appended to.
#[derive(Debug)]
struct ClosedChunk {
    min_t: i64,
    max_t: i64,
    count: u64,
    /// Shared with queriers, which decode it after releasing the series lock.
    bytes: Arc<[u8]>,
}

/// The samples of one series.
#[derive(Debug, Default)]
struct SeriesData {
    closed: Vec<ClosedChunk>,
    open: Encoder,
    /// The newest sample ever appended (kept even if truncation empties the chunks).
    last: Option<Sample>,
}

fn decode_chunk(bytes: &[u8], min_t: i64, max_t: i64, out: &mut Vec<Sample>) {
    let start = out.len();
    let result = crate::chunk::decode_xor(bytes, out);
    let mut i = 0;
    out.retain(|s| {
        i += 1;
        i <= start || (min_t..=max_t).contains(&s.t)
    });
    if let Err(e) = result {
        // Head chunks are written by this process; this would be a bug, not bad input.
        tracing::error!(error = %e, "cannot decode a head chunk");
    }
}

impl SeriesData {
    fn count(&self) -> u64 {
        self.closed.iter().map(|c| c.count).sum::<u64>() + u64::from(self.open.count())
    }

    fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.count() == 0
    }

    fn first_t(&self) -> Option<i64> {
        match self.closed.first() {
            Some(c) => Some(c.min_t),
            None if self.open.count() > 0 => Some(self.open.min_t()),
            None => None,
        }
    }

    /// Checks `t, v` against the newest sample: `Ok(false)` for an identical duplicate.
    fn check(last: Option<Sample>, t: i64, v: f64) -> storage::Result<bool> {
        match last {
            Some(l) if t < l.t => Err(storage::Error::OutOfOrder),
            Some(l) if t == l.t && l.v.to_bits() == v.to_bits() => Ok(false),
            Some(l) if t == l.t => Err(storage::Error::DuplicateTimestamp),
            _ => Ok(true),
        }
    }

    fn append(&mut self, t: i64, v: f64) -> storage::Result<bool> {
        if !Self::check(self.last, t, v)? {
            return Ok(false);
        }
        if self.open.count() >= SAMPLES_PER_CHUNK {
            self.cut();
        }
        if !self.open.append(t, v) {
            self.cut();
            self.open.append(t, v);
        }
        self.last = Some(Sample { t, v });
        Ok(true)
    }

    fn cut(&mut self) {
        let full = std::mem::take(&mut self.open);
        self.closed.push(ClosedChunk {
            min_t: full.min_t(),
            max_t: full.max_t(),
            count: u64::from(full.count()),
            bytes: full.into_bytes().into(),
        });
    }

    /// The chunks overlapping `[min_t, max_t]`: closed ones shared, the open one copied.
    fn chunks(&self, min_t: i64, max_t: i64) -> Vec<ChunkRef> {
        let mut out: Vec<ChunkRef> = self
            .closed
            .iter()
            .filter(|c| c.max_t >= min_t && c.min_t <= max_t)
            .map(|c| ChunkRef {
                max_t: c.max_t,
                encoding: Encoding::Xor,
                bytes: ChunkBytes::Heap(c.bytes.clone()),
            })
            .collect();
        let o = &self.open;
        if o.count() > 0 && o.max_t() >= min_t && o.min_t() <= max_t {
            out.push(ChunkRef {
                max_t: o.max_t(),
                encoding: Encoding::Xor,
                bytes: ChunkBytes::Heap(o.bytes().into()),
            });
        }
        out
    }

    #[cfg(test)]
    fn samples(&self, min_t: i64, max_t: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        for c in &self.closed {
            if c.max_t >= min_t && c.min_t <= max_t {
                decode_chunk(&c.bytes, min_t, max_t, &mut out);
            }
        }
        let o = &self.open;
        if o.count() > 0 && o.max_t() >= min_t && o.min_t() <= max_t {
            decode_chunk(o.bytes(), min_t, max_t, &mut out);
        }
        out
    }

    /// Drops samples older than `min_t`; returns how many.
    fn truncate(&mut self, min_t: i64) -> u64 {
        let before = self.count();
        self.closed.retain(|c| c.max_t >= min_t);
        // Chunks are in time order: only the first remaining one can straddle `min_t`.
        if let Some(first) = self.closed.first()
            && first.min_t < min_t
        {
            let kept = self.reencode(&first.bytes, min_t);
            if kept.count() == 0 {
                self.closed.remove(0);
            } else {
                self.closed[0] = ClosedChunk {
                    min_t: kept.min_t(),
                    max_t: kept.max_t(),
                    count: u64::from(kept.count()),
                    bytes: kept.into_bytes().into(),
                };
            }
        } else if self.closed.is_empty() && self.open.count() > 0 && self.open.min_t() < min_t {
            self.open = self.reencode(self.open.bytes(), min_t);
        }
        // Persisted chunks are gone for good: give back the slots that held them too.
        if self.closed.capacity() > 2 * self.closed.len() + 4 {
            self.closed.shrink_to_fit();
        }
        before - self.count()
    }

    fn reencode(&self, bytes: &[u8], min_t: i64) -> Encoder {
        let mut samples = Vec::new();
        decode_chunk(bytes, min_t, i64::MAX, &mut samples);
        let mut e = Encoder::new();
        for s in samples {
            e.append(s.t, s.v);
        }
        e
    }
}

/// One series in the head.
#[derive(Debug)]
pub(crate) struct MemSeries {
    /// Its reference (stable for the life of the series in this process and in the WAL).
    pub id: u64,
    /// Its labels.
    pub labels: Labels,
    data: Mutex<SeriesData>,
}

impl MemSeries {
    /// The newest sample appended.
    pub fn last(&self) -> Option<Sample> {
        lock(&self.data).last
    }

    /// An iterator over the samples with `min_t <= t <= max_t`, or `None` if there are none.
    pub fn iter(&self, min_t: i64, max_t: i64) -> Option<ChunksIterator> {
        let chunks = lock(&self.data).chunks(min_t, max_t);
        ChunksIterator::new(chunks, min_t, max_t)
    }
}

/// Label index: series by ref and by labels, and postings lists.
#[derive(Debug, Default)]
struct Index {
    by_ref: HashMap<u64, Arc<MemSeries>>,
    /// Series by the hash of their labels (the labels themselves live only in the series).
    by_hash: HashMap<u64, u64>,
    /// Further series whose labels hash like the one in `by_hash` (rare).
    collisions: HashMap<u64, Vec<u64>>,
    hasher: std::hash::RandomState,
    /// name -> value -> sorted series refs.
    postings: HashMap<String, HashMap<String, Vec<u64>>>,
    /// All refs, sorted.
    all: Vec<u64>,
}

fn insert_sorted(list: &mut Vec<u64>, r: u64) {
    // Refs are handed out in increasing order, so this is almost always a push.
    match list.last() {
        Some(&last) if last >= r => {
            if let Err(i) = list.binary_search(&r) {
                list.insert(i, r);
            }
        }
        _ => list.push(r),
    }
}

pub(crate) fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

pub(crate) fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut j = 0;
    let mut out = Vec::with_capacity(a.len());
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}

pub(crate) fn union(lists: Vec<&Vec<u64>>) -> Vec<u64> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists[0].clone(),
        _ => {
            let mut out: Vec<u64> = lists.into_iter().flatten().copied().collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// The alternatives of a regex that is only literal text separated by `|` (`a|b|c`), which the
/// postings answer directly without running the regex over every value.
pub(crate) fn literal_alternatives(re: &str) -> Option<Vec<&str>> {
    const META: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
    ];
    if re.contains(META) {
        return None;
    }
    Some(re.split('|').collect())
}

impl Index {
    fn hash(&self, labels: &Labels) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, labels)
    }

    /// The series with exactly these labels.
    fn by_labels(&self, labels: &Labels) -> Option<&Arc<MemSeries>> {
        let h = self.hash(labels);
        let first = self.by_hash.get(&h)?;
        std::iter::once(first)
            .chain(self.collisions.get(&h).into_iter().flatten())
            .filter_map(|r| self.by_ref.get(r))
            .find(|s| s.labels == *labels)
    }

    fn values(&self, name: &str) -> Option<&HashMap<String, Vec<u64>>> {
        self.postings.get(name)
    }

    /// Refs of series that have label `m.name` with a value `m` accepts.
    fn matching(&self, m: &Matcher) -> Vec<u64> {
        let Some(values) = self.values(&m.name) else {
            return Vec::new();
        };
        let lists = match m.op {
            MatchOp::Eq => values.get(&m.value).into_iter().collect(),
            MatchOp::Re => match literal_alternatives(&m.value) {
                Some(alts) => alts.iter().filter_map(|a| values.get(*a)).collect(),
                None => values
                    .iter()
                    .filter(|(v, _)| m.matches(v))
                    .map(|(_, l)| l)
                    .collect(),
            },
            MatchOp::Ne | MatchOp::NotRe => values
                .iter()
                .filter(|(v, _)| m.matches(v))
                .map(|(_, l)| l)
                .collect(),
        };
        union(lists)
    }

    /// Refs of series that have label `m.name` with a value `m` rejects.
    fn not_matching(&self, m: &Matcher) -> Vec<u64> {
        let Some(values) = self.values(&m.name) else {
            return Vec::new();
        };
        let lists = match m.op {
            // `name!="x"` rejects exactly the series with value "x".
            MatchOp::Ne => values.get(&m.value).into_iter().collect(),
            MatchOp::NotRe => match literal_alternatives(&m.value) {
                Some(alts) => alts.iter().filter_map(|a| values.get(*a)).collect(),
                None => values
                    .iter()
                    .filter(|(v, _)| !m.matches(v))
                    .map(|(_, l)| l)
                    .collect(),
            },
            MatchOp::Eq | MatchOp::Re => values
                .iter()
                .filter(|(v, _)| !m.matches(v))
                .map(|(_, l)| l)
                .collect(),
        };
        union(lists)
    }

    /// Sorted refs of the series all `matchers` accept. A matcher that accepts the empty string
    /// also accepts series without the label, so it is applied by subtracting the series it
    /// rejects; the others intersect their postings.
    fn select(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut positive = Vec::new();
        let mut negative = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                negative.push(self.not_matching(m));
            } else {
                positive.push(self.matching(m));
            }
        }
        positive.sort_by_key(Vec::len);
        let mut result = match positive.split_first() {
            None => self.all.clone(),
            Some((first, rest)) => rest.iter().fold(first.clone(), |acc, p| intersect(&acc, p)),
        };
        for n in &negative {
            if result.is_empty() {
                break;
            }
            result = subtract(&result, n);
        }
        result
    }

    fn insert(&mut self, series: Arc<MemSeries>) {
        let r = series.id;
        for l in series.labels.iter() {
            let list = self
                .postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default();
            insert_sorted(list, r);
        }
        insert_sorted(&mut self.all, r);
        let h = self.hash(&series.labels);
        if let Some(&first) = self.by_hash.get(&h) {
            if first != r {
                self.collisions.entry(h).or_default().push(r);
            }
        } else {
            self.by_hash.insert(h, r);
        }
        self.by_ref.insert(r, series);
    }

    /// Removes `r` from the series by label hash.
    fn unhash(&mut self, labels: &Labels, r: u64) {
        let h = self.hash(labels);
        let others = self.collisions.get_mut(&h);
        if self.by_hash.get(&h) == Some(&r) {
            match others.and_then(|o| o.pop()) {
                Some(next) => {
                    self.by_hash.insert(h, next);
                }
                None => {
                    self.by_hash.remove(&h);
                }
            }
        } else if let Some(o) = others {
            o.retain(|x| *x != r);
        }
        if self.collisions.get(&h).is_some_and(Vec::is_empty) {
            self.collisions.remove(&h);
        }
    }

    fn remove(&mut self, refs: &HashSet<u64>) {
        let mut touched: HashSet<(String, String)> = HashSet::new();
        for r in refs {
            if let Some(s) = self.by_ref.remove(r) {
                self.unhash(&s.labels, *r);
                for l in s.labels.iter() {
                    touched.insert((l.name.clone(), l.value.clone()));
                }
            }
        }
        for (name, value) in touched {
            if let Some(values) = self.postings.get_mut(&name) {
                if let Some(list) = values.get_mut(&value) {
                    list.retain(|r| !refs.contains(r));
                    if list.is_empty() {
                        values.remove(&value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&name);
                }
            }
        }
        self.all.retain(|r| !refs.contains(r));
    }
}

/// The head: every series and sample not yet in a block (today: all of them).
#[derive(Debug)]
pub(crate) struct Head {
    index: RwLock<Index>,
    next_ref: AtomicU64,
    samples: AtomicU64,
    min_t: AtomicI64,
    max_t: AtomicI64,
    /// Appends older than this are out of bounds (raised by truncation).
    min_valid_t: AtomicI64,
}

impl Head {
    pub fn new() -> Self {
        Self {
            index: RwLock::new(Index::default()),
            next_ref: AtomicU64::new(1),
            samples: AtomicU64::new(0),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            min_valid_t: AtomicI64::new(i64::MIN),
        }
    }

    /// A new, never used series ref.
    pub fn alloc_ref(&self) -> u64 {
        self.next_ref.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes sure future refs are above `r` (refs read back from the WAL).
    pub fn reserve_ref(&self, r: u64) {
        self.next_ref
            .fetch_max(r.saturating_add(1), Ordering::Relaxed);
    }

    pub fn series(&self, r: u64) -> Option<Arc<MemSeries>> {
        read(&self.index).by_ref.get(&r).cloned()
    }

    pub fn series_by_labels(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        read(&self.index).by_labels(labels).cloned()
    }

    /// The refs among `refs` that are not (or no longer) in the head.
    pub fn missing(&self, refs: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let idx = read(&self.index);
        refs.into_iter()
            .filter(|r| !idx.by_ref.contains_key(r))
            .collect()
    }

    /// Adds series `(ref, labels)`; for labels already present, returns the existing series.
    pub fn get_or_create(&self, r: u64, labels: Labels) -> Arc<MemSeries> {
        let mut idx = write(&self.index);
        if let Some(s) = idx.by_labels(&labels) {
            return s.clone();
        }
        let s = Arc::new(MemSeries {
            id: r,
            labels,
            data: Mutex::new(SeriesData::default()),
        });
        idx.insert(s.clone());
        drop(idx);
        self.reserve_ref(r);
        s
    }

    /// Appends `(ref, t, v)` samples under one read lock of the index; `rejected` sees every
    /// sample refused (unknown refs as `OutOfBounds`: their series was removed meanwhile).
    pub fn append_batch(
        &self,
        samples: impl IntoIterator<Item = (u64, i64, f64)>,
        mut rejected: impl FnMut(storage::Error),
    ) {
        let idx = read(&self.index);
        let min_valid_t = self.min_valid_t.load(Ordering::Relaxed);
        // Batches hold runs of samples of one series (remote write sends each series' samples
        // together): look the series up and lock it once per run, update the counters once.
        let (mut added, mut min_t, mut max_t) = (0u64, i64::MAX, i64::MIN);
        let mut cur: Option<(u64, std::sync::MutexGuard<'_, SeriesData>)> = None;
        for (r, t, v) in samples {
            if cur.as_ref().is_none_or(|(cr, _)| *cr != r) {
                cur = None;
                match idx.by_ref.get(&r) {
                    Some(s) => cur = Some((r, lock(&s.data))),
                    None => {
                        rejected(storage::Error::OutOfBounds);
                        continue;
                    }
                }
            }
            let Some((_, data)) = cur.as_mut() else {
                continue;
            };
            if t < min_valid_t {
                rejected(storage::Error::OutOfBounds);
                continue;
            }
            match data.append(t, v) {
                Ok(true) => {
                    added += 1;
                    min_t = min_t.min(t);
                    max_t = max_t.max(t);
                }
                Ok(false) => {}
                Err(e) => rejected(e),
            }
        }
        drop(cur);
        if added > 0 {
            self.samples.fetch_add(added, Ordering::Relaxed);
            self.min_t.fetch_min(min_t, Ordering::Relaxed);
            self.max_t.fetch_max(max_t, Ordering::Relaxed);
        }
    }

    /// Checks whether `append_batch` would accept the sample, without appending.
    pub fn check(&self, last: Option<Sample>, t: i64, v: f64) -> storage::Result<bool> {
        if t < self.min_valid_t.load(Ordering::Relaxed) {
            return Err(storage::Error::OutOfBounds);
        }
        SeriesData::check(last, t, v)
    }

    /// Series the matchers select, sorted by labels.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let idx = read(&self.index);
        let mut out: Vec<Arc<MemSeries>> = idx
            .select(matchers)
            .iter()
            .filter_map(|r| idx.by_ref.get(r).cloned())
            .collect();
        drop(idx);
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        let idx = read(&self.index);
        if matchers.is_empty() {
            let mut names: Vec<String> = idx.postings.keys().cloned().collect();
            names.sort_unstable();
            return names;
        }
        let mut names = BTreeSet::new();
        for r in idx.select(matchers) {
            if let Some(s) = idx.by_ref.get(&r) {
                names.extend(s.labels.iter().map(|l| l.name.as_str()));
            }
        }
        names.into_iter().map(str::to_string).collect()
    }

    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        let idx = read(&self.index);
        if matchers.is_empty() {
            let mut values: Vec<String> = idx
                .values(name)
                .map(|v| v.keys().cloned().collect())
                .unwrap_or_default();
            values.sort_unstable();
            return values;
        }
        let mut values = BTreeSet::new();
        for r in idx.select(matchers) {
            if let Some(v) = idx.by_ref.get(&r).and_then(|s| s.labels.get(name)) {
                values.insert(v);
            }
        }
        values.into_iter().map(str::to_string).collect()
    }

    /// Drops samples older than `min_t` and refuses appends older than it from now on. Returns
    /// the refs of series left without samples (remove them with [`Head::remove_empty`]).
    pub fn truncate_samples(&self, min_t: i64) -> Vec<u64> {
        self.min_valid_t.fetch_max(min_t, Ordering::Relaxed);
        let all: Vec<Arc<MemSeries>> = read(&self.index).by_ref.values().cloned().collect();
        let mut removed = 0;
        let mut empty = Vec::new();
        for s in all {
            let mut d = lock(&s.data);
            removed += d.truncate(min_t);
            if d.is_empty() {
                empty.push(s.id);
            }
        }
        self.samples.fetch_sub(removed, Ordering::Relaxed);
        empty
    }

    /// Removes the series among `candidates` that still have no samples; returns how many.
    pub fn remove_empty(&self, candidates: &[u64]) -> usize {
        let mut idx = write(&self.index);
        let gone: HashSet<u64> = candidates
            .iter()
            .copied()
            .filter(|r| idx.by_ref.get(r).is_some_and(|s| lock(&s.data).is_empty()))
            .collect();
        idx.remove(&gone);
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for s in idx.by_ref.values() {
            let d = lock(&s.data);
            if let (Some(first), Some(last)) = (d.first_t(), d.last) {
                min_t = min_t.min(first);
                max_t = max_t.max(last.t);
            }
        }
        self.min_t.store(min_t, Ordering::Relaxed);
        self.max_t.store(max_t, Ordering::Relaxed);
        gone.len()
    }

    /// `(ref, labels)` of every series.
    pub fn all_series(&self) -> Vec<(u64, Labels)> {
        let idx = read(&self.index);
        let mut out: Vec<(u64, Labels)> = idx
            .by_ref
            .values()
            .map(|s| (s.id, s.labels.clone()))
            .collect();
        out.sort_unstable_by_key(|(r, _)| *r);
        out
    }

    pub fn num_series(&self) -> u64 {
        read(&self.index).by_ref.len() as u64
    }

    pub fn num_samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// `(min_t, max_t)` of the samples, `(i64::MAX, i64::MIN)` when empty.
    pub fn time_range(&self) -> (i64, i64) {
        (
            self.min_t.load(Ordering::Relaxed),
            self.max_t.load(Ordering::Relaxed),
        )
    }

    /// Refuses appends older than `t` from now on.
    pub fn raise_min_valid_t(&self, t: i64) {
        self.min_valid_t.fetch_max(t, Ordering::Relaxed);
    }

    pub fn min_valid_t(&self) -> i64 {
        self.min_valid_t.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5, 8]), vec![3, 5]);
        assert_eq!(subtract(&[1, 3, 5, 7], &[0, 3, 7, 9]), vec![1, 5]);
        assert_eq!(union(vec![&vec![1, 5], &vec![2, 5, 9]]), vec![1, 2, 5, 9]);
        let mut l = vec![1, 4];
        insert_sorted(&mut l, 9);
        insert_sorted(&mut l, 2);
        insert_sorted(&mut l, 4);
        assert_eq!(l, vec![1, 2, 4, 9]);
    }

    #[test]
    fn literal_alternation_detection() {
        assert_eq!(literal_alternatives("a|b|c"), Some(vec!["a", "b", "c"]));
        assert_eq!(literal_alternatives("node"), Some(vec!["node"]));
        assert_eq!(literal_alternatives("a.*"), None);
        assert_eq!(literal_alternatives("(?i)a"), None);
    }

    #[test]
    fn truncate_straddling_chunks() {
        let mut d = SeriesData::default();
        for t in 0..300 {
            d.append(t, t as f64).unwrap();
        }
        assert_eq!(d.closed.len(), 2);
        assert_eq!(d.truncate(130), 130);
        assert_eq!(d.count(), 170);
        assert_eq!(d.first_t(), Some(130));
        let s = d.samples(i64::MIN, i64::MAX);
        assert_eq!(s.len(), 170);
        assert_eq!(s[0], Sample { t: 130, v: 130.0 });
        assert_eq!(d.truncate(250), 120);
        assert_eq!(d.samples(0, 1000).len(), 50);
        assert_eq!(d.truncate(1000), 50);
        assert!(d.is_empty());
    }
}
