//! The in-memory head: series with their open and closed chunks, and the label index.
//!
//! Locking: one `RwLock` over the index (series by ref, by labels, postings), taken for writing
//! only to add or remove series; one `Mutex` per series over its chunks. Appends to known series
//! take the index lock for reading and the series' own lock, so appenders of different series do
//! not contend.
//!
//! Memory: label names and values are interned once in the index's [`Symbols`]; a series keeps
//! its labels as `u32` symbol ids and [`Head::labels`] materialises them when a query or the WAL
//! asks. Series are found by ref in a paged [`RefTable`] (8 bytes a series) and by labels through
//! a hash of their strings. A full chunk is closed at once, stored at its exact size and in the
//! denser of XOR and [`Encoding::Packed`].

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use pharos_model::storage;
use pharos_model::{Label, Labels, MatchOp, Matcher, Sample};

use crate::chunk::Encoding;
use crate::chunk::{Encoder, SAMPLES_PER_CHUNK};
use crate::iter::{ChunkBytes, ChunkRef, ChunksIterator};
use crate::symbols::{IntMap, RefTable, Symbols};

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
    count: u32,
    encoding: Encoding,
    /// Shared with queriers, which decode it after releasing the series lock.
    bytes: Arc<[u8]>,
}

impl ClosedChunk {
    /// Closes a full chunk, stored in the denser of XOR and [`Encoding::Packed`] (decimal values
    /// and regular timestamps often take a third of XOR's bytes) at its exact size.
    fn new(full: Encoder) -> Self {
        let (min_t, max_t, count) = (full.min_t(), full.max_t(), u32::from(full.count()));
        let xor = full.into_bytes();
        let mut samples = Vec::with_capacity(count as usize);
        let mut packed = Vec::new();
        // Below 2 bytes a sample (constants, small integers) XOR is about as dense: not worth
        // the CPU of trying.
        if xor.len() > 2 * count as usize + 16
            && crate::chunk::decode_xor(&xor, &mut samples).is_ok()
            && crate::chunk::encode_packed(&samples, &mut packed)
            && packed.len() < xor.len()
        {
            return Self {
                min_t,
                max_t,
                count,
                encoding: Encoding::Packed,
                bytes: packed.into(),
            };
        }
        Self {
            min_t,
            max_t,
            count,
            encoding: Encoding::Xor,
            bytes: xor.into(),
        }
    }
}

/// The samples of one series.
#[derive(Debug, Default)]
struct SeriesData {
    closed: Vec<ClosedChunk>,
    open: Encoder,
    /// The newest sample ever appended (kept even if truncation empties the chunks).
    last: Option<Sample>,
}

fn decode_chunk(encoding: Encoding, bytes: &[u8], min_t: i64, max_t: i64, out: &mut Vec<Sample>) {
    let start = out.len();
    let result = crate::chunk::decode_into(encoding, bytes, out);
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
        self.closed.iter().map(|c| u64::from(c.count)).sum::<u64>() + u64::from(self.open.count())
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
        // Cut as soon as the chunk is full: a closed chunk is stored at its exact size, while
        // the open one carries up to half its size in spare capacity.
        if self.open.count() >= SAMPLES_PER_CHUNK {
            self.cut();
        }
        self.last = Some(Sample { t, v });
        Ok(true)
    }

    fn cut(&mut self) {
        let full = std::mem::take(&mut self.open);
        // A series holds a handful of closed chunks: grow by one, not by doubling.
        self.closed.reserve_exact(1);
        self.closed.push(ClosedChunk::new(full));
    }

    /// The chunks overlapping `[min_t, max_t]`: closed ones shared, the open one copied.
    fn chunks(&self, min_t: i64, max_t: i64) -> Vec<ChunkRef> {
        let mut out: Vec<ChunkRef> = self
            .closed
            .iter()
            .filter(|c| c.max_t >= min_t && c.min_t <= max_t)
            .map(|c| ChunkRef {
                max_t: c.max_t,
                encoding: c.encoding,
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
                decode_chunk(c.encoding, &c.bytes, min_t, max_t, &mut out);
            }
        }
        let o = &self.open;
        if o.count() > 0 && o.max_t() >= min_t && o.min_t() <= max_t {
            decode_chunk(Encoding::Xor, o.bytes(), min_t, max_t, &mut out);
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
            let kept = Self::reencode(first.encoding, &first.bytes, min_t);
            if kept.count() == 0 {
                self.closed.remove(0);
            } else {
                self.closed[0] = ClosedChunk::new(kept);
            }
        } else if self.closed.is_empty() && self.open.count() > 0 && self.open.min_t() < min_t {
            self.open = Self::reencode(Encoding::Xor, self.open.bytes(), min_t);
        }
        // Persisted chunks are gone for good: give back the slots that held them too.
        if self.closed.capacity() > 2 * self.closed.len() + 4 {
            self.closed.shrink_to_fit();
        }
        before - self.count()
    }

    fn reencode(encoding: Encoding, bytes: &[u8], min_t: i64) -> Encoder {
        let mut samples = Vec::new();
        decode_chunk(encoding, bytes, min_t, i64::MAX, &mut samples);
        let mut e = Encoder::new();
        for s in samples {
            e.append(s.t, s.v);
        }
        e
    }
}

/// One series in the head. Its labels are symbol ids of the head's [`Symbols`] (materialise them
/// with [`Head::labels`]); the ids stay valid while any `Arc` of the series is alive.
#[derive(Debug)]
pub(crate) struct MemSeries {
    /// Its reference (stable for the life of the series in this process and in the WAL).
    pub id: u64,
    /// Symbol ids `name, value, name, value, ...` in label name order.
    syms: Box<[u32]>,
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

    /// `(name id, value id)` pairs.
    fn pairs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.syms.chunks_exact(2).map(|p| (p[0], p[1]))
    }
}

/// A series chosen by [`Head::select`], with its labels materialised.
#[derive(Debug)]
pub(crate) struct Selected {
    /// Its labels.
    pub labels: Labels,
    series: Arc<MemSeries>,
}

impl Selected {
    /// An iterator over the samples with `min_t <= t <= max_t`, or `None` if there are none.
    pub fn iter(&self, min_t: i64, max_t: i64) -> Option<ChunksIterator> {
        self.series.iter(min_t, max_t)
    }
}

/// Label index: series by ref and by label hash, symbols, and postings lists.
#[derive(Debug, Default)]
struct Index {
    by_ref: RefTable<Arc<MemSeries>>,
    /// Series by the hash of their labels (the labels themselves live only in the series).
    by_hash: IntMap<u64, u64>,
    /// Further series whose labels hash like the one in `by_hash` (rare).
    collisions: IntMap<u64, Vec<u64>>,
    hasher: std::hash::RandomState,
    /// Every label name and value of the series in `by_ref` and `graveyard`.
    symbols: Symbols,
    /// name id -> value id -> sorted series refs.
    postings: IntMap<u32, IntMap<u32, Vec<u64>>>,
    /// All refs, sorted.
    all: Vec<u64>,
    /// Removed series whose symbols are still referenced: an appender or querier may hold the
    /// series and ask for its labels. Released once only this list holds them.
    graveyard: Vec<Arc<MemSeries>>,
}

fn insert_sorted(list: &mut Vec<u64>, r: u64) {
    // Refs are handed out in increasing order, so this is almost always a push.
    match list.last() {
        Some(&last) if last >= r => {
            if let Err(i) = list.binary_search(&r) {
                list.insert(i, r);
            }
        }
        _ => {
            // Grow by a quarter instead of doubling: postings are most of the index and grow
            // slowly once the head is warm.
            if list.len() == list.capacity() {
                list.reserve_exact((list.len() / 4).max(2));
            }
            list.push(r)
        }
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
    fn hash_pairs<'a>(&self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.hasher.build_hasher();
        for (n, v) in pairs {
            // 0xff never occurs in UTF-8: the separators keep ("ab","c") apart from ("a","bc").
            h.write(n.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    fn hash(&self, labels: &Labels) -> u64 {
        self.hash_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    fn hash_series(&self, s: &MemSeries) -> u64 {
        let sy = &self.symbols;
        self.hash_pairs(s.pairs().map(|(n, v)| (sy.str(n), sy.str(v))))
    }

    /// True if `s` has exactly `labels`.
    fn same(&self, s: &MemSeries, labels: &Labels) -> bool {
        let sy = &self.symbols;
        s.syms.len() == 2 * labels.len()
            && s.pairs()
                .zip(labels.iter())
                .all(|((n, v), l)| sy.str(n) == l.name && sy.str(v) == l.value)
    }

    fn labels(&self, s: &MemSeries) -> Labels {
        let sy = &self.symbols;
        Labels::new(
            s.pairs()
                .map(|(n, v)| Label {
                    name: sy.str(n).to_string(),
                    value: sy.str(v).to_string(),
                })
                .collect(),
        )
    }

    /// The series with exactly these labels.
    fn by_labels(&self, labels: &Labels) -> Option<&Arc<MemSeries>> {
        let h = self.hash(labels);
        let first = self.by_hash.get(&h)?;
        std::iter::once(first)
            .chain(self.collisions.get(&h).into_iter().flatten())
            .filter_map(|r| self.by_ref.get(r))
            .find(|s| self.same(s, labels))
    }

    fn values(&self, name: &str) -> Option<&IntMap<u32, Vec<u64>>> {
        self.postings.get(&self.symbols.get(name)?)
    }

    /// The postings of `value` among `values`.
    fn value<'a>(&self, values: &'a IntMap<u32, Vec<u64>>, value: &str) -> Option<&'a Vec<u64>> {
        values.get(&self.symbols.get(value)?)
    }

    /// The postings lists of the values `keep` accepts.
    fn filtered<'a>(
        &self,
        values: &'a IntMap<u32, Vec<u64>>,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<&'a Vec<u64>> {
        values
            .iter()
            .filter(|(v, _)| keep(self.symbols.str(**v)))
            .map(|(_, l)| l)
            .collect()
    }

    /// Refs of series that have label `m.name` with a value `m` accepts.
    fn matching(&self, m: &Matcher) -> Vec<u64> {
        let Some(values) = self.values(&m.name) else {
            return Vec::new();
        };
        let lists = match m.op {
            MatchOp::Eq => self.value(values, &m.value).into_iter().collect(),
            MatchOp::Re => match literal_alternatives(&m.value) {
                Some(alts) => alts.iter().filter_map(|a| self.value(values, a)).collect(),
                None => self.filtered(values, |v| m.matches(v)),
            },
            MatchOp::Ne | MatchOp::NotRe => self.filtered(values, |v| m.matches(v)),
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
            MatchOp::Ne => self.value(values, &m.value).into_iter().collect(),
            MatchOp::NotRe => match literal_alternatives(&m.value) {
                Some(alts) => alts.iter().filter_map(|a| self.value(values, a)).collect(),
                None => self.filtered(values, |v| !m.matches(v)),
            },
            MatchOp::Eq | MatchOp::Re => self.filtered(values, |v| !m.matches(v)),
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

    fn insert(&mut self, r: u64, labels: &Labels) -> Arc<MemSeries> {
        let mut syms = Vec::with_capacity(2 * labels.len());
        for l in labels.iter() {
            let n = self.symbols.intern(&l.name);
            let v = self.symbols.intern(&l.value);
            syms.extend([n, v]);
            let list = self.postings.entry(n).or_default().entry(v).or_default();
            insert_sorted(list, r);
        }
        insert_sorted(&mut self.all, r);
        let h = self.hash(labels);
        if let Some(&first) = self.by_hash.get(&h) {
            if first != r {
                self.collisions.entry(h).or_default().push(r);
            }
        } else {
            self.by_hash.insert(h, r);
        }
        let series = Arc::new(MemSeries {
            id: r,
            syms: syms.into_boxed_slice(),
            data: Mutex::new(SeriesData::default()),
        });
        self.by_ref.insert(r, series.clone());
        series
    }

    /// Removes `r` from the series by label hash.
    fn unhash(&mut self, h: u64, r: u64) {
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
        let mut touched: HashSet<(u32, u32)> = HashSet::new();
        for r in refs {
            if let Some(s) = self.by_ref.remove(r) {
                let h = self.hash_series(&s);
                self.unhash(h, *r);
                touched.extend(s.pairs());
                self.graveyard.push(s);
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
        self.bury();
    }

    /// Releases the symbols of removed series that nobody else holds any more.
    fn bury(&mut self) {
        let graveyard = std::mem::take(&mut self.graveyard);
        for s in graveyard {
            match Arc::try_unwrap(s) {
                Ok(s) => {
                    for &id in s.syms.iter() {
                        self.symbols.release(id);
                    }
                }
                Err(s) => self.graveyard.push(s),
            }
        }
        self.symbols.shrink();
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
    /// Samples in the last batch appended, capped: what a new appender reserves room for.
    batch_hint: AtomicUsize,
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
            batch_hint: AtomicUsize::new(0),
        }
    }

    /// How many samples (and series) a new appender should reserve room for: the size of the
    /// last batch, up to 2048 (many appenders may be open at once), so that scrape-sized batches
    /// do not grow their buffers sample by sample.
    pub fn batch_hint(&self) -> usize {
        self.batch_hint.load(Ordering::Relaxed)
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

    /// The labels of `s` (also of a series removed meanwhile, while it is held).
    pub fn labels(&self, s: &MemSeries) -> Labels {
        read(&self.index).labels(s)
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
        let s = idx.insert(r, &labels);
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
        let mut n = 0usize;
        // Batches hold runs of samples of one series (remote write sends each series' samples
        // together): look the series up and lock it once per run, update the counters once.
        let (mut added, mut min_t, mut max_t) = (0u64, i64::MAX, i64::MIN);
        let mut cur: Option<(u64, std::sync::MutexGuard<'_, SeriesData>)> = None;
        for (r, t, v) in samples {
            n += 1;
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
        drop(idx);
        self.batch_hint.store(n.min(2048), Ordering::Relaxed);
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
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Selected> {
        let idx = read(&self.index);
        let mut out: Vec<Selected> = idx
            .select(matchers)
            .iter()
            .filter_map(|r| idx.by_ref.get(r))
            .map(|s| Selected {
                labels: idx.labels(s),
                series: s.clone(),
            })
            .collect();
        drop(idx);
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        let idx = read(&self.index);
        let sy = &idx.symbols;
        if matchers.is_empty() {
            let mut names: Vec<String> = idx.postings.keys().map(|n| sy.str(*n).into()).collect();
            names.sort_unstable();
            return names;
        }
        let mut names = BTreeSet::new();
        for r in idx.select(matchers) {
            if let Some(s) = idx.by_ref.get(&r) {
                names.extend(s.pairs().map(|(n, _)| sy.str(n)));
            }
        }
        names.into_iter().map(str::to_string).collect()
    }

    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        let idx = read(&self.index);
        let sy = &idx.symbols;
        let Some(name_id) = sy.get(name) else {
            return Vec::new();
        };
        if matchers.is_empty() {
            let mut values: Vec<String> = idx
                .postings
                .get(&name_id)
                .map(|v| v.keys().map(|v| sy.str(*v).into()).collect())
                .unwrap_or_default();
            values.sort_unstable();
            return values;
        }
        let mut values = BTreeSet::new();
        for r in idx.select(matchers) {
            if let Some(s) = idx.by_ref.get(&r)
                && let Some((_, v)) = s.pairs().find(|(n, _)| *n == name_id)
            {
                values.insert(sy.str(v));
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
        let mut out: Vec<(u64, Labels)> =
            idx.by_ref.values().map(|s| (s.id, idx.labels(s))).collect();
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

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs)
    }

    #[test]
    fn labels_round_trip_through_symbols() {
        let head = Head::new();
        let a = ls(&[("__name__", "up"), ("job", "node"), ("instance", "a:9100")]);
        let b = ls(&[("__name__", "up"), ("job", "pod"), ("instance", "a:9100")]);
        // Pairs whose concatenations collide must not be mistaken for each other.
        let c = ls(&[("__name__", "up"), ("job", "nod"), ("instance", "ea:9100")]);
        let sa = head.get_or_create(head.alloc_ref(), a.clone());
        let sb = head.get_or_create(head.alloc_ref(), b.clone());
        let sc = head.get_or_create(head.alloc_ref(), c.clone());
        assert_ne!(sa.id, sb.id);
        assert_ne!(sa.id, sc.id);
        assert_eq!(
            head.get_or_create(99, a.clone()).id,
            sa.id,
            "same labels, same series"
        );
        for (s, l) in [(&sa, &a), (&sb, &b), (&sc, &c)] {
            assert_eq!(head.labels(s), *l);
            assert_eq!(head.series_by_labels(l).map(|x| x.id), Some(s.id));
        }
        assert!(head.series_by_labels(&ls(&[("__name__", "up")])).is_none());
        let sel: Vec<Labels> = head
            .select(&[Matcher::eq("job", "node")])
            .into_iter()
            .map(|s| s.labels)
            .collect();
        assert_eq!(sel, vec![a.clone()]);
        assert_eq!(head.label_names(&[]), vec!["__name__", "instance", "job"]);
        assert_eq!(head.label_values("job", &[]), vec!["nod", "node", "pod"]);
        assert_eq!(
            head.label_values("instance", &[Matcher::eq("job", "nod")]),
            vec!["ea:9100"]
        );
        assert!(head.label_values("nope", &[]).is_empty());
    }

    #[test]
    fn removed_series_release_symbols_once_unused() {
        let head = Head::new();
        let a = ls(&[("__name__", "cpu"), ("pod", "web-1")]);
        let b = ls(&[("__name__", "cpu"), ("pod", "web-2")]);
        let sa = head.get_or_create(head.alloc_ref(), a.clone());
        let sb = head.get_or_create(head.alloc_ref(), b.clone());
        head.append_batch([(sb.id, 10, 1.0)], |e| panic!("{e}"));
        // `sa` has no samples: removed, but still held here, so its labels stay readable.
        assert_eq!(head.remove_empty(&[sa.id, sb.id]), 1);
        assert!(head.series(sa.id).is_none());
        assert_eq!(head.labels(&sa), a);
        assert_eq!(head.label_values("pod", &[]), vec!["web-2"]);
        // New strings take other ids while "web-1" is still referenced.
        let c = ls(&[("__name__", "mem"), ("pod", "web-3")]);
        let sc = head.get_or_create(head.alloc_ref(), c.clone());
        assert_eq!(head.labels(&sa), a);
        drop(sa);
        // The next removal releases it; its id may then be reused by a new string.
        head.remove_empty(&[]);
        let d = ls(&[("__name__", "mem"), ("pod", "api-1")]);
        let sd = head.get_or_create(head.alloc_ref(), d.clone());
        for (s, l) in [(&sb, &b), (&sc, &c), (&sd, &d)] {
            assert_eq!(head.labels(s), *l);
            assert_eq!(head.series_by_labels(l).map(|x| x.id), Some(s.id));
        }
        assert!(head.series_by_labels(&a).is_none());
        assert_eq!(
            head.label_values("pod", &[]),
            vec!["api-1", "web-2", "web-3"]
        );
        assert_eq!(head.label_values("__name__", &[]), vec!["cpu", "mem"]);
        let all: Vec<Labels> = head.all_series().into_iter().map(|(_, l)| l).collect();
        assert_eq!(all, vec![b, c, d]);
    }

    #[test]
    fn full_chunks_are_closed_densest_and_read_back_bit_exact() {
        #[track_caller]
        fn check(values: &[f64], want: Option<Encoding>) {
            let mut d = SeriesData::default();
            for (i, v) in values.iter().enumerate() {
                d.append(1_700_000_000_000 + i as i64 * 15_000, *v).unwrap();
            }
            assert_eq!(
                d.closed.len(),
                values.len() / usize::from(SAMPLES_PER_CHUNK)
            );
            if let Some(want) = want {
                assert_eq!(d.closed[0].encoding, want);
            }
            let got = d.samples(i64::MIN, i64::MAX);
            assert_eq!(got.len(), values.len());
            for (g, v) in got.iter().zip(values) {
                assert_eq!(g.v.to_bits(), v.to_bits());
            }
            // What queriers get decodes the same.
            let mut it =
                ChunksIterator::new(d.chunks(i64::MIN, i64::MAX), i64::MIN, i64::MAX).unwrap();
            let mut n = 0;
            while let Some(s) = storage::SampleIterator::next(&mut it) {
                assert_eq!(s.v.to_bits(), values[n].to_bits());
                n += 1;
            }
            assert_eq!(n, values.len());
        }
        let cpu: Vec<f64> = (0..240)
            .map(|i| f64::from(i * 137 % 150) / 100.0 + f64::from(i))
            .collect();
        check(&cpu, Some(Encoding::Packed));
        let mut stale = cpu.clone();
        stale[7] = pharos_model::STALE_NAN;
        check(&stale, Some(Encoding::Packed));
        let trig: Vec<f64> = (0..120).map(|i| (f64::from(i) * 0.7).sin()).collect();
        // Whichever is smaller.
        check(&trig, None);
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
