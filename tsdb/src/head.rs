//! The in-memory head: series with their open and closed chunks, and the label index.
//!
//! Locking: one `RwLock` over the index (series by ref, by labels, postings), taken for writing
//! only to add or remove series; one `Mutex` per series over its chunks. Appends to known series
//! take the index lock for reading and the series' own lock, so appenders of different series do
//! not contend. [`Head::append_batch`] holds the locks of up to 32 series at once but only ever
//! waits for one while holding none.
//!
//! Memory (about 615 heap bytes a series of 120 samples after the WAL replay of a clean stop,
//! 300 of them chunk bytes kept in the stop's block encoding, see [`Head::append_chunks`];
//! `examples/head_memory.rs replay DIR` prints the breakdown): label names and values
//! are interned once in the index's [`Symbols`] (strings packed in pages); a series keeps its
//! labels as uvarint symbol ids and [`Head::labels`] materialises them when a query or the WAL
//! asks. Series are found by ref in a paged [`RefTable`] (8 bytes a series) and by labels through
//! a 32-bit hash of their strings (8 bytes). A series is one allocation of 88 bytes (ref, lock,
//! last sample, pointers) plus its label ids and one [`Closed`] blob holding all its full
//! chunks; the open chunk's encoder exists only while it holds samples. A full chunk is
//! closed at once, stored at its exact size and in the denser of XOR and [`Encoding::Packed`].
//! Postings lists hold `u32` refs (a single ref inline).

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
};

use pharos_model::storage;
use pharos_model::{Label, Labels, MatchOp, Matcher, Sample};

use crate::chunk::Encoding;
use crate::chunk::{Encoder, SAMPLES_PER_CHUNK};
use crate::iter::{ChunkBytes, ChunkRef, ChunksIterator};
use crate::prefetch::{prefetch, prefetch_value};
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

/// A full chunk, no longer appended to, before it joins its series' [`Closed`] chunks.
#[derive(Debug)]
struct ClosedChunk {
    min_t: i64,
    max_t: i64,
    count: u16,
    encoding: Encoding,
    bytes: Vec<u8>,
}

impl ClosedChunk {
    /// Its table entry, before it has a place in a blob.
    fn meta(&self) -> ChunkMeta {
        ChunkMeta {
            min_t: self.min_t,
            max_t: self.max_t,
            count: self.count,
            encoding: self.encoding,
            start: 0,
            end: 0,
        }
    }

    /// Closes a full chunk, stored in the denser of XOR and [`Encoding::Packed`] (decimal values
    /// and regular timestamps often take a third of XOR's bytes) at its exact size.
    fn new(full: Encoder) -> Self {
        let (min_t, max_t, count) = (full.min_t(), full.max_t(), full.count());
        let xor = full.into_bytes();
        let mut samples = Vec::with_capacity(usize::from(count));
        let mut packed = Vec::new();
        // Below 2 bytes a sample (constants, small integers) XOR is about as dense: not worth
        // the CPU of trying.
        if xor.len() > 2 * usize::from(count) + 16
            && crate::chunk::decode_xor(&xor, &mut samples).is_ok()
            && crate::chunk::encode_packed(&samples, &mut packed)
            && packed.len() < xor.len()
        {
            return Self {
                min_t,
                max_t,
                count,
                encoding: Encoding::Packed,
                bytes: packed,
            };
        }
        Self {
            min_t,
            max_t,
            count,
            encoding: Encoding::Xor,
            bytes: xor,
        }
    }
}

/// What [`Closed`] knows of one of its chunks.
#[derive(Debug, Clone, Copy)]
struct ChunkMeta {
    min_t: i64,
    max_t: i64,
    count: u16,
    encoding: Encoding,
    /// The chunk's bytes in the blob.
    start: usize,
    end: usize,
}

/// Bytes of one entry of a [`Closed`] blob's table.
const ENTRY_LEN: usize = 24;

/// A series' full chunks in one allocation, shared with queriers (which decode them after
/// releasing the series lock): `[chunk count: u32]`, then one entry per chunk in time order
/// `[min_t: i64][max_t: i64][end: u32][samples: u16][encoding: u8][0]`, then the chunks' bytes
/// back to back (`end`: where the chunk ends, counted from the first chunk byte), all
/// little-endian. One allocation and 24 bytes of metadata a chunk, against a slot of 40 bytes
/// plus an allocation per chunk; a cut copies the blob (a few hundred bytes per chunk held).
/// (The label ids stay apart: in the blob, the labels-only blob of a new series, freed at its
/// first cut, left holes between the long-lived allocations that cost more than they saved.)
#[derive(Debug, Default)]
struct Closed(Option<Arc<[u8]>>);

/// `N` bytes of `b` at `at` (zeros past the end: the blob is written by [`Closed::build`]).
fn word<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|w| w.try_into().ok())
        .unwrap_or([0; N])
}

impl Closed {
    fn len(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |b| u32::from_le_bytes(word(b, 0)) as usize)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, i: usize) -> Option<ChunkMeta> {
        let b = self.0.as_ref()?;
        let n = self.len();
        if i >= n {
            return None;
        }
        let e = 4 + i * ENTRY_LEN;
        let data = 4 + n * ENTRY_LEN;
        let start = match i {
            0 => data,
            _ => data + u32::from_le_bytes(word(b, e - ENTRY_LEN + 16)) as usize,
        };
        Some(ChunkMeta {
            min_t: i64::from_le_bytes(word(b, e)),
            max_t: i64::from_le_bytes(word(b, e + 8)),
            count: u16::from_le_bytes(word(b, e + 20)),
            // Written from an `Encoding` by `build`.
            encoding: Encoding::try_from(word::<1>(b, e + 22)[0]).unwrap_or(Encoding::Xor),
            start,
            end: data + u32::from_le_bytes(word(b, e + 16)) as usize,
        })
    }

    fn iter(&self) -> impl Iterator<Item = ChunkMeta> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    fn bytes(&self, m: &ChunkMeta) -> &[u8] {
        self.0
            .as_ref()
            .and_then(|b| b.get(m.start..m.end))
            .unwrap_or_default()
    }

    /// The chunk's bytes for a querier: shared, not copied.
    fn shared(&self, m: &ChunkMeta) -> ChunkBytes {
        match &self.0 {
            Some(b) => ChunkBytes::Shared {
                bytes: b.clone(),
                start: m.start,
                end: m.end,
            },
            None => ChunkBytes::Heap(Arc::from(&[][..])),
        }
    }

    /// A blob of `chunks` (time order); `None` for no chunk.
    fn build(chunks: &[(ChunkMeta, &[u8])]) -> Self {
        let n = chunks.len();
        let data: usize = chunks.iter().map(|(_, b)| b.len()).sum();
        if n == 0 {
            return Self(None);
        }
        // Written in place: one allocation of the exact size, no copy from a `Vec` (a cut
        // rebuilds the blob).
        let mut blob: Arc<[u8]> = std::iter::repeat_n(0u8, 4 + n * ENTRY_LEN + data).collect();
        if let Some(out) = Arc::get_mut(&mut blob) {
            // A series holds chunks of at most a few days: far fewer than 2^32, and far fewer
            // than 4 GiB of them.
            let (head, mut entries) = out.split_at_mut(4);
            head.copy_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
            let mut end = 0usize;
            for (m, b) in chunks {
                end += b.len();
                let (e, rest) = entries.split_at_mut(ENTRY_LEN);
                e[..8].copy_from_slice(&m.min_t.to_le_bytes());
                e[8..16].copy_from_slice(&m.max_t.to_le_bytes());
                e[16..20].copy_from_slice(&u32::try_from(end).unwrap_or(u32::MAX).to_le_bytes());
                e[20..22].copy_from_slice(&m.count.to_le_bytes());
                e[22] = m.encoding as u8;
                entries = rest;
            }
            for (_, b) in chunks {
                let (e, rest) = entries.split_at_mut(b.len());
                e.copy_from_slice(b);
                entries = rest;
            }
        }
        Self(Some(blob))
    }

    /// Adds a chunk after the others.
    fn push(&mut self, c: ClosedChunk) {
        self.push_raw(c.meta(), &c.bytes);
    }

    /// Adds a chunk (`meta`'s times, count and encoding; `bytes`) after the others.
    fn push_raw(&mut self, meta: ChunkMeta, bytes: &[u8]) {
        let mut all: Vec<(ChunkMeta, &[u8])> = Vec::with_capacity(self.len() + 1);
        all.extend(self.iter().map(|m| (m, self.bytes(&m))));
        all.push((meta, bytes));
        *self = Self::build(&all);
    }
}

/// The chunk being appended to and the series' newest sample. Kept (with an empty encoder)
/// when a full chunk is cut while appending, so that the next append (and the appender's
/// check) need not decode the closed chunk for the newest sample: an append-time cut happens
/// every 120 samples of every live series.
#[derive(Debug, Default)]
struct Open {
    enc: Encoder,
    last_t: i64,
    last_v: f64,
}

/// The samples of one series: 24 bytes, so that a series takes 80 bytes of the allocator when
/// it has no open chunk (as after a WAL replay of whole chunks): the open chunk is allocated
/// by the first append (and kept, empty, when appending cuts it), and the newest sample is
/// read from it or else from the newest closed chunk. A series whose chunks truncation removed
/// has no newest sample any more, but truncation raises the head's `min_valid_t` past it,
/// which rejects what it would.
#[derive(Debug, Default)]
struct SeriesData {
    /// Full chunks in time order.
    closed: Closed,
    /// The chunk being appended to, `None` when empty.
    open: Option<Box<Open>>,
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
    /// The newest sample (decoded from the newest closed chunk when no chunk is open: once
    /// per chunk cut, by the next append).
    fn last(&self) -> Option<Sample> {
        if let Some(o) = self.open.as_deref() {
            return Some(Sample {
                t: o.last_t,
                v: o.last_v,
            });
        }
        let m = self.closed.get(self.closed.len().checked_sub(1)?)?;
        let mut out = Vec::with_capacity(usize::from(m.count));
        decode_chunk(
            m.encoding,
            self.closed.bytes(&m),
            m.max_t,
            m.max_t,
            &mut out,
        );
        out.last().copied()
    }

    /// Prefetches the open chunk's state (every cache line of it, not its bytes).
    #[inline]
    fn prefetch_open(&self) {
        if let Some(o) = self.open.as_deref() {
            prefetch_value(o);
        }
    }

    /// Prefetches where the open chunk's next bits go.
    #[inline]
    fn prefetch_tail(&self) {
        if let Some(o) = self.open.as_deref() {
            prefetch(o.enc.tail());
        }
    }

    /// The open chunk if it holds samples.
    fn open(&self) -> Option<&Encoder> {
        self.open
            .as_deref()
            .map(|o| &o.enc)
            .filter(|o| o.count() > 0)
    }

    fn count(&self) -> u64 {
        self.closed.iter().map(|c| u64::from(c.count)).sum::<u64>()
            + self.open().map_or(0, |o| u64::from(o.count()))
    }

    fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open().is_none()
    }

    fn first_t(&self) -> Option<i64> {
        match self.closed.get(0) {
            Some(c) => Some(c.min_t),
            None => self.open().map(Encoder::min_t),
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

    /// The newest sample's time, without decoding a closed chunk.
    fn last_t(&self) -> Option<i64> {
        match self.open.as_deref() {
            Some(o) => Some(o.last_t),
            None => self
                .closed
                .get(self.closed.len().checked_sub(1)?)
                .map(|m| m.max_t),
        }
    }

    fn append(&mut self, t: i64, v: f64) -> storage::Result<bool> {
        // Only a sample not newer than the newest needs the newest value (decoded from the
        // newest closed chunk right after a cut).
        if self.last_t().is_some_and(|last_t| t <= last_t) && !Self::check(self.last(), t, v)? {
            return Ok(false);
        }
        let open = self.open.get_or_insert_with(Box::default);
        if !open.enc.append(t, v) {
            self.cut();
            self.open.get_or_insert_with(Box::default).enc.append(t, v);
        }
        if let Some(o) = &mut self.open {
            o.last_t = t;
            o.last_v = v;
        }
        // Cut as soon as the chunk is full: a closed chunk is stored at its exact size, while
        // the open one carries up to half its size in spare capacity.
        if self.open().is_some_and(|o| o.count() >= SAMPLES_PER_CHUNK) {
            self.cut();
        }
        Ok(true)
    }

    /// Closes the open chunk if it holds samples; the (now empty) open chunk stays, with the
    /// newest sample.
    fn cut(&mut self) {
        let Some(o) = self.open.as_deref_mut() else {
            return;
        };
        if o.enc.count() == 0 {
            return;
        }
        // The next chunk likely takes as many bytes: growing its buffer step by step was a
        // twentieth of the ingestion's CPU (reallocations).
        let next = Encoder::sized_like(o.enc.bytes().len() + 8);
        let full = std::mem::replace(&mut o.enc, next);
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
                bytes: self.closed.shared(&c),
            })
            .collect();
        if let Some(o) = self.open()
            && o.max_t() >= min_t
            && o.min_t() <= max_t
        {
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
        for c in self.closed.iter() {
            if c.max_t >= min_t && c.min_t <= max_t {
                decode_chunk(c.encoding, self.closed.bytes(&c), min_t, max_t, &mut out);
            }
        }
        if let Some(o) = self.open()
            && o.max_t() >= min_t
            && o.min_t() <= max_t
        {
            decode_chunk(Encoding::Xor, o.bytes(), min_t, max_t, &mut out);
        }
        out
    }

    /// Drops samples older than `min_t`; returns how many.
    fn truncate(&mut self, min_t: i64) -> u64 {
        let before = self.count();
        let kept: Vec<ChunkMeta> = self.closed.iter().filter(|c| c.max_t >= min_t).collect();
        // Chunks are in time order: only the first remaining one can straddle `min_t`.
        let mut first: Option<ClosedChunk> = None;
        let mut skip = 0;
        if let Some(c) = kept.first()
            && c.min_t < min_t
        {
            let e = Self::reencode(c.encoding, self.closed.bytes(c), min_t);
            skip = 1;
            if e.count() > 0 {
                first = Some(ClosedChunk::new(e));
            }
        } else if kept.is_empty()
            && let Some(o) = self.open()
            && o.min_t() < min_t
        {
            let kept = Self::reencode(Encoding::Xor, o.bytes(), min_t);
            let (last_t, last_v) = self
                .open
                .as_deref()
                .map_or((0, 0.0), |o| (o.last_t, o.last_v));
            self.open = (kept.count() > 0).then(|| {
                Box::new(Open {
                    enc: kept,
                    last_t,
                    last_v,
                })
            });
        }
        if kept.len() != self.closed.len() || skip > 0 {
            let first = first.as_ref().map(|c| (c.meta(), c.bytes.as_slice()));
            let rest = kept[skip..].iter().map(|m| (*m, self.closed.bytes(m)));
            let all: Vec<(ChunkMeta, &[u8])> = first.into_iter().chain(rest).collect();
            self.closed = Closed::build(&all);
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
    /// Symbol ids `name, value, name, value, ...` in label name order, as uvarints (ids are
    /// small: most take one to three bytes instead of four).
    syms: Box<[u8]>,
    data: Mutex<SeriesData>,
}

/// True if `window[i]` starts a run of samples of one series.
#[inline]
fn first_of_run<S>(window: &[(u64, i64, f64, S)], i: usize) -> bool {
    window
        .get(i.wrapping_sub(1))
        .zip(window.get(i))
        .is_none_or(|(p, w)| p.0 != w.0)
}

/// Why [`Head::append_batch`] did not add a sample.
#[derive(Debug)]
pub enum Refused {
    /// The series is not in the head (removed since its ref was handed out).
    Unknown,
    /// An exact duplicate of the series' newest sample: dropped without a word.
    Duplicate,
    /// Out of order, a different value at the newest sample's time, or too old.
    Rejected(storage::Error),
}

impl MemSeries {
    /// The newest sample appended.
    pub fn last(&self) -> Option<Sample> {
        lock(&self.data).last()
    }

    /// An iterator over the samples with `min_t <= t <= max_t`, or `None` if there are none.
    pub fn iter(&self, min_t: i64, max_t: i64) -> Option<ChunksIterator> {
        let chunks = lock(&self.data).chunks(min_t, max_t);
        ChunksIterator::new(chunks, min_t, max_t)
    }

    /// `(name id, value id)` pairs.
    fn pairs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mut rest: &[u8] = &self.syms;
        std::iter::from_fn(move || {
            let (n, r) = crate::varint::uvarint(rest)?;
            let (v, r) = crate::varint::uvarint(r)?;
            rest = r;
            // Written from `u32`s by `Index::insert`.
            Some((n as u32, v as u32))
        })
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

    /// [`Selected::iter`], and whether every chunk it reads is [`Encoding::Packed`] (the head
    /// found packing denser for each).
    pub fn iter_noting_packed(&self, min_t: i64, max_t: i64) -> Option<(ChunksIterator, bool)> {
        let chunks = lock(&self.series.data).chunks(min_t, max_t);
        let packed = chunks.iter().all(|c| c.encoding == Encoding::Packed);
        ChunksIterator::new(chunks, min_t, max_t).map(|it| (it, packed))
    }
}

/// Label index: series by ref and by label hash, symbols, and postings lists.
#[derive(Debug, Default)]
struct Index {
    by_ref: RefTable<Arc<MemSeries>>,
    /// Series by a 32-bit hash of their labels (the labels themselves live only in the series):
    /// 8 bytes a series.
    by_hash: IntMap<u32, u32>,
    /// Further series whose labels hash like the one in `by_hash` (rare: about one pair in
    /// 100,000 series), and series whose refs do not fit a `u32`.
    collisions: IntMap<u32, Vec<u64>>,
    hasher: std::hash::RandomState,
    /// Every label name and value of the series in `by_ref` and `graveyard`.
    symbols: Symbols,
    /// name id -> value id -> sorted series refs.
    postings: IntMap<u32, IntMap<u32, Postings>>,
    /// Removed series whose symbols are still referenced: an appender or querier may hold the
    /// series and ask for its labels. Released once only this list holds them.
    graveyard: Vec<Arc<MemSeries>>,
}

fn insert_sorted<T: Ord + Copy>(list: &mut Vec<T>, r: T) {
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

/// The sorted refs of the series with one label pair, in 4 bytes a ref while refs fit a `u32`
/// (they are handed out sequentially from 1: that is 4 billion series created). Most label
/// values (pod names, ids) belong to one or a few series; a single ref is kept inline, without
/// an allocation. 24 bytes in every form.
#[derive(Debug)]
enum Postings {
    One(u64),
    Many(Vec<u32>),
    /// Some ref does not fit a `u32`. Boxed: two unboxed `Vec`s would need a tag word.
    #[allow(clippy::box_collection)]
    Wide(Box<Vec<u64>>),
}

impl Postings {
    /// Appends the refs to `out`.
    fn extend_into(&self, out: &mut Vec<u64>) {
        match self {
            Postings::One(r) => out.push(*r),
            Postings::Many(list) => out.extend(list.iter().map(|&r| u64::from(r))),
            Postings::Wide(list) => out.extend_from_slice(list),
        }
    }

    fn insert(&mut self, r: u64) {
        match self {
            Postings::One(x) if *x == r => {}
            Postings::One(x) => {
                let x = *x;
                *self = match (u32::try_from(x), u32::try_from(r)) {
                    (Ok(a), Ok(b)) => Postings::Many(vec![a.min(b), a.max(b)]),
                    _ => Postings::Wide(Box::new(vec![x.min(r), x.max(r)])),
                };
            }
            Postings::Many(list) => match u32::try_from(r) {
                Ok(r) => insert_sorted(list, r),
                Err(_) => {
                    let mut wide: Vec<u64> = list.iter().map(|&r| u64::from(r)).collect();
                    insert_sorted(&mut wide, r);
                    *self = Postings::Wide(Box::new(wide));
                }
            },
            Postings::Wide(list) => insert_sorted(list, r),
        }
    }

    /// Keeps the refs `keep` accepts; returns false if none is left.
    fn retain(&mut self, keep: impl Fn(u64) -> bool) -> bool {
        let one = match self {
            Postings::One(r) => return keep(*r),
            Postings::Many(list) => {
                list.retain(|&r| keep(u64::from(r)));
                match list.as_slice() {
                    [] => return false,
                    [r] => u64::from(*r),
                    _ => return true,
                }
            }
            Postings::Wide(list) => {
                list.retain(|&r| keep(r));
                match list.as_slice() {
                    [] => return false,
                    [r] => *r,
                    _ => return true,
                }
            }
        };
        *self = Postings::One(one);
        true
    }

    /// Gives back spare capacity.
    fn shrink(&mut self) {
        match self {
            Postings::One(_) => {}
            Postings::Many(list) => list.shrink_to_fit(),
            Postings::Wide(list) => list.shrink_to_fit(),
        }
    }

    /// Heap bytes.
    fn heap_bytes(&self) -> u64 {
        match self {
            Postings::One(_) => 0,
            Postings::Many(list) => 4 * list.capacity() as u64,
            Postings::Wide(list) => 24 + 8 * list.capacity() as u64,
        }
    }
}

/// The union of postings lists, sorted.
fn union_postings(lists: &[&Postings]) -> Vec<u64> {
    let mut out = Vec::new();
    for l in lists {
        l.extend_into(&mut out);
    }
    if lists.len() > 1 {
        out.sort_unstable();
        out.dedup();
    }
    out
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

pub(crate) fn union<L: AsRef<[u64]>>(lists: Vec<L>) -> Vec<u64> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists[0].as_ref().to_vec(),
        _ => {
            let mut out: Vec<u64> = lists.iter().flat_map(|l| l.as_ref()).copied().collect();
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
    fn hash_pairs<'a>(&self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u32 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.hasher.build_hasher();
        for (n, v) in pairs {
            // 0xff never occurs in UTF-8: the separators keep ("ab","c") apart from ("a","bc").
            h.write(n.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.write_u8(0xff);
        }
        (h.finish() >> 32) as u32
    }

    fn hash(&self, labels: &Labels) -> u32 {
        self.hash_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    fn hash_series(&self, s: &MemSeries) -> u32 {
        let sy = &self.symbols;
        self.hash_pairs(s.pairs().map(|(n, v)| (sy.str(n), sy.str(v))))
    }

    /// True if `s` has exactly `labels`.
    fn same(&self, s: &MemSeries, labels: &Labels) -> bool {
        let sy = &self.symbols;
        s.pairs().count() == labels.len()
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
        let first = self.by_hash.get(&h).map(|&r| u64::from(r));
        first
            .into_iter()
            .chain(self.collisions.get(&h).into_iter().flatten().copied())
            .filter_map(|r| self.by_ref.get(&r))
            .find(|s| self.same(s, labels))
    }

    fn values(&self, name: &str) -> Option<&IntMap<u32, Postings>> {
        self.postings.get(&self.symbols.get(name)?)
    }

    /// The postings of `value` among `values`.
    fn value<'a>(&self, values: &'a IntMap<u32, Postings>, value: &str) -> Option<&'a Postings> {
        values.get(&self.symbols.get(value)?)
    }

    /// The postings lists of the values `keep` accepts.
    fn filtered<'a>(
        &self,
        values: &'a IntMap<u32, Postings>,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<&'a Postings> {
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
        union_postings(&lists)
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
        union_postings(&lists)
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
            None => self.all_refs(),
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
        let mut syms = Vec::with_capacity(4 * labels.len());
        for l in labels.iter() {
            let n = self.symbols.intern(&l.name);
            let v = self.symbols.intern(&l.value);
            crate::varint::put_uvarint(&mut syms, u64::from(n));
            crate::varint::put_uvarint(&mut syms, u64::from(v));
            match self.postings.entry(n).or_default().entry(v) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut().insert(r),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Postings::One(r));
                }
            }
        }
        let h = self.hash(labels);
        match u32::try_from(r) {
            Ok(r) if !self.by_hash.contains_key(&h) => {
                self.by_hash.insert(h, r);
            }
            _ => self.collisions.entry(h).or_default().push(r),
        }
        let series = Arc::new(MemSeries {
            id: r,
            syms: syms.into_boxed_slice(),
            data: Mutex::new(SeriesData::default()),
        });
        self.by_ref.insert(r, series.clone());
        series
    }

    /// Every ref, sorted.
    fn all_refs(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.by_ref.values().map(|s| s.id).collect();
        all.sort_unstable();
        all
    }

    /// Gives back the spare capacity of the postings lists and the symbols (after a WAL
    /// replay or a retention run: both add or remove many series at once).
    fn shrink(&mut self) {
        for values in self.postings.values_mut() {
            for list in values.values_mut() {
                list.shrink();
            }
        }
        self.symbols.shrink_to_fit();
    }

    /// Removes `r` from the series by label hash.
    fn unhash(&mut self, h: u32, r: u64) {
        let others = self.collisions.get_mut(&h);
        if self
            .by_hash
            .get(&h)
            .is_some_and(|&first| u64::from(first) == r)
        {
            self.by_hash.remove(&h);
            // Another series with this hash takes the slot if its ref fits.
            if let Some(o) = others
                && let Some(i) = o.iter().position(|&x| u32::try_from(x).is_ok())
            {
                let next = o.swap_remove(i);
                self.by_hash
                    .insert(h, u32::try_from(next).unwrap_or_default());
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
                if let Some(list) = values.get_mut(&value)
                    && !list.retain(|r| !refs.contains(&r))
                {
                    values.remove(&value);
                }
                if values.is_empty() {
                    self.postings.remove(&name);
                }
            }
        }
        self.bury();
    }

    /// Releases the symbols of removed series that nobody else holds any more.
    fn bury(&mut self) {
        let graveyard = std::mem::take(&mut self.graveyard);
        for s in graveyard {
            match Arc::try_unwrap(s) {
                Ok(s) => {
                    for (n, v) in s.pairs() {
                        self.symbols.release(n);
                        self.symbols.release(v);
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

    /// Appends `(ref, t, v)` samples under one read lock of the index; `refused` sees the
    /// position in `samples` of every sample not added, and why.
    pub fn append_batch(
        &self,
        samples: impl IntoIterator<Item = (u64, i64, f64)>,
        mut refused: impl FnMut(usize, Refused),
    ) {
        /// Samples looked up, and their memory prefetched, ahead of appending.
        const WINDOW: usize = 32;
        let idx = read(&self.index);
        let min_valid_t = self.min_valid_t.load(Ordering::Relaxed);
        let mut n = 0usize;
        let (mut added, mut min_t, mut max_t) = (0u64, i64::MAX, i64::MIN);
        let mut samples = samples.into_iter();
        let mut window: Vec<(u64, i64, f64, Option<&Arc<MemSeries>>)> = Vec::with_capacity(WINDOW);
        // The series of the previous sample: the next ones of a run need no lookup.
        let mut prev: Option<(u64, Option<&Arc<MemSeries>>)> = None;
        // The locks of the window's runs (`None`: busy), in order.
        let mut held: Vec<Option<MutexGuard<'_, SeriesData>>> = Vec::with_capacity(WINDOW);
        loop {
            window.clear();
            window.extend(samples.by_ref().take(WINDOW).map(|(r, t, v)| {
                let s = match prev {
                    Some((pr, s)) if pr == r => s,
                    _ => idx.by_ref.get(&r),
                };
                prev = Some((r, s));
                (r, t, v, s)
            }));
            if window.is_empty() {
                break;
            }
            // A scrape's samples each touch another series, in memory nothing else touched
            // lately: waiting for each series and then its open chunk in turn was most of the
            // time an append took. Ask for all of the window's at once, level by level: the
            // series, then (locked) their open chunks, then the chunks' ends, where the samples
            // go. Each run's series (runs of one series are common in remote write) is locked
            // once and stays locked from the first level to its append: a lock or unlock is a
            // full barrier, and locking three times stalled on each series in turn.
            let firsts = || {
                (0..window.len())
                    .filter(|&i| first_of_run(&window, i))
                    .filter_map(|i| window.get(i).and_then(|w| w.3))
            };
            for s in firsts() {
                prefetch_value(&s.data);
            }
            held.clear();
            for s in firsts() {
                // Never waits while holding: a busy series is locked when its turn comes.
                let guard = match s.data.try_lock() {
                    Ok(g) => Some(g),
                    Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                };
                if let Some(g) = &guard {
                    g.prefetch_open();
                }
                held.push(guard);
            }
            for g in held.iter().flatten() {
                g.prefetch_tail();
            }
            let mut guards = held.drain(..);
            let mut cur: Option<MutexGuard<'_, SeriesData>> = None;
            for (k, &(_, t, v, s)) in window.iter().enumerate() {
                let i = n;
                n += 1;
                if first_of_run(&window, k) {
                    cur = None;
                    let Some(s) = s else {
                        refused(i, Refused::Unknown);
                        continue;
                    };
                    let guard = match guards.next().flatten() {
                        Some(g) => g,
                        None => {
                            // Waiting: let go of the window's other locks first, so that two
                            // appenders can never each wait for a series the other holds.
                            guards.by_ref().for_each(drop);
                            lock(&s.data)
                        }
                    };
                    cur = Some(guard);
                }
                let Some(data) = cur.as_mut() else {
                    // A later sample of a run whose series is gone.
                    refused(i, Refused::Unknown);
                    continue;
                };
                if t < min_valid_t {
                    refused(i, Refused::Rejected(storage::Error::OutOfBounds));
                    continue;
                }
                match data.append(t, v) {
                    Ok(true) => {
                        added += 1;
                        min_t = min_t.min(t);
                        max_t = max_t.max(t);
                    }
                    Ok(false) => refused(i, Refused::Duplicate),
                    Err(e) => refused(i, Refused::Rejected(e)),
                }
            }
        }
        drop(held);
        drop(window);
        drop(idx);
        self.batch_hint.store(n.min(2048), Ordering::Relaxed);
        if added > 0 {
            self.samples.fetch_add(added, Ordering::Relaxed);
            self.min_t.fetch_min(min_t, Ordering::Relaxed);
            self.max_t.fetch_max(max_t, Ordering::Relaxed);
        }
    }

    /// Adds whole encoded chunks of `(ref, encoding, bytes)` (a WAL replay of the chunk
    /// records a clean stop writes). A chunk that follows its series' samples, when the series
    /// has no open chunk, joins the series' closed chunks as it is (in the block encoding the
    /// stop chose: denser than the head's own); any other chunk's samples are appended one by
    /// one. `scratch` is reused for decoding. Returns the samples added, those skipped (unknown
    /// series, too old, out of order, undecodable) and the newest time seen.
    pub fn append_chunks<'a>(
        &self,
        chunks: impl IntoIterator<Item = (u64, Encoding, &'a [u8])>,
        scratch: &mut Vec<Sample>,
    ) -> (u64, u64, i64) {
        let idx = read(&self.index);
        let min_valid_t = self.min_valid_t.load(Ordering::Relaxed);
        let (mut added, mut skipped) = (0u64, 0u64);
        let (mut min_t, mut max_t, mut seen_t) = (i64::MAX, i64::MIN, i64::MIN);
        for (r, encoding, bytes) in chunks {
            scratch.clear();
            if let Err(e) = crate::chunk::decode_into(encoding, bytes, scratch) {
                tracing::warn!(series = r, error = %e, "undecodable WAL chunk; skipped");
                skipped += crate::chunk::count(encoding, bytes).unwrap_or(0);
                continue;
            }
            let (Some(first), Some(last)) = (scratch.first().copied(), scratch.last().copied())
            else {
                continue;
            };
            seen_t = seen_t.max(last.t);
            let Some(s) = idx.by_ref.get(&r) else {
                skipped += scratch.len() as u64;
                continue;
            };
            let mut data = lock(&s.data);
            let whole = first.t >= min_valid_t
                && data.open().is_none()
                && data.last().is_none_or(|l| l.t < first.t)
                && scratch.windows(2).all(|w| w[0].t < w[1].t);
            match u16::try_from(scratch.len()) {
                Ok(count) if whole => {
                    let meta = ChunkMeta {
                        min_t: first.t,
                        max_t: last.t,
                        count,
                        encoding,
                        start: 0,
                        end: 0,
                    };
                    data.closed.push_raw(meta, bytes);
                    added += u64::from(count);
                    min_t = min_t.min(first.t);
                    max_t = max_t.max(last.t);
                }
                _ => {
                    for x in scratch.iter() {
                        if x.t < min_valid_t {
                            skipped += 1;
                            continue;
                        }
                        match data.append(x.t, x.v) {
                            Ok(true) => {
                                added += 1;
                                min_t = min_t.min(x.t);
                                max_t = max_t.max(x.t);
                            }
                            // A duplicate of the newest sample, as `append_batch` counts it.
                            Ok(false) => {}
                            Err(_) => skipped += 1,
                        }
                    }
                }
            }
        }
        drop(idx);
        if added > 0 {
            self.samples.fetch_add(added, Ordering::Relaxed);
            self.min_t.fetch_min(min_t, Ordering::Relaxed);
            self.max_t.fetch_max(max_t, Ordering::Relaxed);
        }
        (added, skipped, seen_t)
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
        idx.shrink();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for s in idx.by_ref.values() {
            let d = lock(&s.data);
            if let (Some(first), Some(last)) = (d.first_t(), d.last()) {
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

    /// Heap bytes of the head by part, estimated from allocation sizes (malloc's own overhead
    /// excluded), with the counts they are made of: for memory diagnostics.
    pub fn memory(&self) -> Vec<(&'static str, u64)> {
        use std::mem::size_of;
        let idx = read(&self.index);
        let (mut series, mut syms, mut closed_slots, mut closed, mut chunk_bytes) = (0, 0, 0, 0, 0);
        let (mut open, mut open_bytes) = (0, 0);
        for s in idx.by_ref.values() {
            series += 1;
            syms += s.syms.len() as u64;
            let d = lock(&s.data);
            let n = d.closed.len();
            closed += n as u64;
            closed_slots += if n > 0 { (4 + n * ENTRY_LEN) as u64 } else { 0 };
            chunk_bytes += d
                .closed
                .iter()
                .map(|c| (c.end - c.start) as u64)
                .sum::<u64>()
                + if n > 0 { 16 } else { 0 };
            if let Some(o) = &d.open {
                open += 1;
                open_bytes += (std::mem::size_of::<Open>() + o.enc.bytes().len()) as u64;
            }
        }
        let postings_lists: u64 = idx.postings.values().map(|v| v.len() as u64).sum();
        let postings: u64 = idx
            .postings
            .values()
            .flat_map(|v| v.values())
            .map(Postings::heap_bytes)
            .sum();
        let postings_maps: u64 = idx
            .postings
            .values()
            .map(|v| (v.capacity() * (4 + 24 + 1)) as u64)
            .sum();
        let sy = &idx.symbols;
        vec![
            ("series", series),
            ("closed_chunks", closed),
            ("open_chunks", open),
            ("postings_lists", postings_lists),
            ("symbols", sy.len() as u64),
            (
                "B series structs (Arc<MemSeries>)",
                series * (16 + size_of::<MemSeries>()) as u64,
            ),
            ("B label symbol ids", syms),
            ("B closed chunk tables", closed_slots),
            ("B closed chunk bytes (+Arc header)", chunk_bytes),
            ("B open chunk bytes", open_bytes),
            ("B postings lists", postings),
            ("B postings maps", postings_maps),
            ("B by_hash", (idx.by_hash.capacity() * 9) as u64),
            ("B by_ref pages", idx.by_ref.heap_bytes()),
            ("B symbols", sy.heap_bytes()),
        ]
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
        assert_eq!(union(vec![&[1, 5][..], &[2, 5, 9]]), vec![1, 2, 5, 9]);
    }

    #[test]
    fn postings_forms() {
        assert_eq!(std::mem::size_of::<Postings>(), 24, "no bigger than a Vec");
        #[track_caller]
        fn check(inserts: &[u64], want: &[u64], form: &str) {
            let mut p = Postings::One(inserts[0]);
            for &r in &inserts[1..] {
                p.insert(r);
            }
            let mut got = Vec::new();
            p.extend_into(&mut got);
            assert_eq!(got, want);
            assert!(format!("{p:?}").starts_with(form), "{p:?}");
        }
        let big = 1u64 << 33;
        check(&[4], &[4], "One");
        check(&[4, 4], &[4], "One");
        check(&[big, big], &[big], "One");
        check(&[9, 4], &[4, 9], "Many");
        check(&[4, 9, 1, 4, 9], &[1, 4, 9], "Many");
        check(&[4, big], &[4, big], "Wide");
        check(&[big, 4], &[4, big], "Wide");
        check(&[4, 9, big, 1, big + 1], &[1, 4, 9, big, big + 1], "Wide");
        let mut p = Postings::One(4);
        for r in [9, 1, big] {
            p.insert(r);
        }
        assert!(p.retain(|r| r > 1));
        assert!(p.retain(|r| r == big));
        assert!(matches!(p, Postings::One(r) if r == big), "{p:?}");
        assert!(!p.retain(|r| r != big));
        let mut p = Postings::Many(vec![1, 5, 7]);
        assert!(p.retain(|r| r == 5));
        assert!(matches!(p, Postings::One(5)), "{p:?}");
        assert_eq!(
            union_postings(&[
                &Postings::Many(vec![1, 5]),
                &Postings::One(3),
                &Postings::One(5)
            ]),
            vec![1, 3, 5]
        );
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
        head.append_batch([(sb.id, 10, 1.0)], |i, r| panic!("{i}: {r:?}"));
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
                assert_eq!(d.closed.get(0).map(|c| c.encoding), Some(want));
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
    fn labels_live_with_the_chunks_through_cuts_and_truncation() {
        let head = Head::new();
        let a = ls(&[("__name__", "cpu"), ("pod", "web-1"), ("zone", "a")]);
        let b = ls(&[("__name__", "cpu"), ("pod", "web-2")]);
        let sa = head.get_or_create(head.alloc_ref(), a.clone());
        let sb = head.get_or_create(head.alloc_ref(), b.clone());
        head.append_batch((0..300).map(|t| (sa.id, t, t as f64)), |i, r| {
            panic!("{i}: {r:?}")
        });
        head.append_batch((0..50).map(|t| (sb.id, t, 1.0)), |i, r| {
            panic!("{i}: {r:?}")
        });
        let d = lock(&sa.data);
        assert_eq!(
            (d.closed.len(), d.open().map(Encoder::count)),
            (2, Some(60))
        );
        drop(d);
        assert_eq!(head.labels(&sa), a);
        // A querier's iterator keeps the chunks it was given across later cuts.
        let mut it = sa.iter(0, 500).unwrap();
        head.append_batch((300..400).map(|t| (sa.id, t, t as f64)), |i, r| {
            panic!("{i}: {r:?}")
        });
        let mut n = 0;
        while let Some(s) = storage::SampleIterator::next(&mut it) {
            assert_eq!(s, Sample { t: n, v: n as f64 });
            n += 1;
        }
        assert_eq!(n, 300);
        // Truncation rewrites the blob: labels and the rest of the samples stay.
        assert_eq!(head.truncate_samples(130), vec![sb.id]);
        assert_eq!(head.labels(&sa), a);
        assert_eq!(head.series_by_labels(&a).map(|s| s.id), Some(sa.id));
        assert_eq!(head.num_samples(), 400 + 50 - 130 - 50);
        assert_eq!(lock(&sa.data).first_t(), Some(130));
        assert_eq!(head.remove_empty(&[sb.id]), 1);
        assert_eq!(head.labels(&sb), b, "still held here");
        assert_eq!(
            head.label_values("zone", &[Matcher::eq("pod", "web-1")]),
            vec!["a"]
        );
        assert_eq!(sa.last(), Some(Sample { t: 399, v: 399.0 }));
    }

    #[test]
    fn newest_sample_of_a_series_without_open_chunk() {
        let mut d = SeriesData::default();
        assert_eq!(d.last(), None);
        for t in 0..120 {
            d.append(t * 10, t as f64 * 0.5).unwrap();
        }
        assert!(d.open().is_none(), "cut when full");
        assert_eq!(d.closed.len(), 1);
        // The emptied open chunk keeps the newest sample...
        assert_eq!(d.last(), Some(Sample { t: 1190, v: 59.5 }));
        // ...which is otherwise decoded from the newest closed chunk (as after a replay).
        d.open = None;
        assert_eq!(d.last(), Some(Sample { t: 1190, v: 59.5 }));
        #[track_caller]
        fn check(d: &mut SeriesData, t: i64, v: f64, want: storage::Result<bool>) {
            assert_eq!(format!("{:?}", d.append(t, v)), format!("{want:?}"));
        }
        check(&mut d, 1190, 59.5, Ok(false));
        check(&mut d, 1190, 1.0, Err(storage::Error::DuplicateTimestamp));
        check(&mut d, 1000, 1.0, Err(storage::Error::OutOfOrder));
        check(&mut d, 1200, 7.0, Ok(true));
        assert_eq!(d.last(), Some(Sample { t: 1200, v: 7.0 }));
        assert_eq!(d.count(), 121);
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

    /// Whole WAL chunks join a series' closed chunks in their encoding when they follow its
    /// samples; otherwise their samples go through the normal append checks.
    #[test]
    fn append_chunks_keeps_following_chunks_encoded() {
        let head = Head::new();
        let a = head.get_or_create(1, ls(&[("__name__", "a")]));
        let b = head.get_or_create(2, ls(&[("__name__", "b")]));
        let samples = |from: i64, n: i64| -> Vec<Sample> {
            (from..from + n)
                .map(|i| Sample {
                    t: i * 15_000,
                    v: (i * 3) as f64 / 4.0,
                })
                .collect()
        };
        let enc = |s: &[Sample]| {
            let mut out = Vec::new();
            (crate::chunk::encode_best(s, &mut out), out)
        };
        // b already holds samples 0..10 in an open chunk.
        head.append_batch(samples(0, 10).iter().map(|s| (2, s.t, s.v)), |i, r| {
            panic!("{i}: {r:?}")
        });
        let (e1, c1) = enc(&samples(0, 1440));
        let (e2, c2) = enc(&samples(1440, 300));
        let (e3, c3) = enc(&samples(5, 20));
        assert_ne!(e1, Encoding::Xor, "the test wants a denser encoding");
        let mut scratch = Vec::new();
        let bad = [0x00, 0x05];
        let got = head.append_chunks(
            [
                (1, e1, &c1[..]),
                (1, e2, &c2[..]),
                // Overlaps b's open chunk: appended sample by sample (5..9 are out of
                // order, 9 an exact duplicate of the newest, ignored as `append_batch` does).
                (2, e3, &c3[..]),
                // Unknown series.
                (9, e2, &c2[..]),
                // Not a chunk.
                (1, Encoding::Xor, &bad[..]),
            ],
            &mut scratch,
        );
        // The undecodable chunk's claimed samples count as skipped.
        let claimed = crate::chunk::count(Encoding::Xor, &bad).unwrap_or(0);
        assert_eq!(got, (1440 + 300 + 15, 4 + 300 + claimed, 1739 * 15_000));
        let d = lock(&a.data);
        let encodings: Vec<(Encoding, u16)> =
            d.closed.iter().map(|c| (c.encoding, c.count)).collect();
        assert_eq!(encodings, vec![(e1, 1440), (e2, 300)]);
        assert!(d.open.is_none());
        assert_eq!(d.samples(i64::MIN, i64::MAX), samples(0, 1740));
        assert_eq!(d.last(), samples(1739, 1).last().copied());
        drop(d);
        assert_eq!(lock(&b.data).samples(i64::MIN, i64::MAX), samples(0, 25));
        // Appends after the chunks follow the newest replayed sample.
        let mut rejected = Vec::new();
        head.append_batch(
            [(1, 1739 * 15_000 - 1, 1.0), (1, 1740 * 15_000, 2.0)],
            |i, r| rejected.push((i, format!("{r:?}"))),
        );
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(
            a.last(),
            Some(Sample {
                t: 1740 * 15_000,
                v: 2.0
            })
        );
        // A chunk older than the series' newest sample is not kept whole.
        let got = head.append_chunks([(1, e3, &c3[..])], &mut scratch);
        assert_eq!(got, (0, 20, 24 * 15_000));
        assert_eq!(head.num_samples(), 1440 + 300 + 25 + 1);
    }

    /// The window's locks: a series twice in one window (not in a row), a series another thread
    /// holds, and appenders taking the same series in opposite orders (which would deadlock if a
    /// window waited for one lock while holding others).
    #[test]
    fn append_batch_holds_locks_without_deadlock() {
        let head = Arc::new(Head::new());
        let ids: Vec<u64> = (0..64)
            .map(|i| {
                let l = ls(&[("__name__", "m"), ("i", &i.to_string())]);
                head.get_or_create(head.alloc_ref(), l).id
            })
            .collect();
        // A, B, A, B, ...: each series' second run in a window finds its lock busy (held by
        // this very window) and waits for it after letting go of the others.
        let mut rejected = Vec::new();
        head.append_batch((0..40).map(|k| (ids[k % 2], k as i64, k as f64)), |i, r| {
            rejected.push((i, format!("{r:?}")))
        });
        assert!(rejected.is_empty(), "{rejected:?}");
        // Every sample of a run of an unknown series is refused, not only its first.
        let mut unknown = Vec::new();
        head.append_batch(
            [
                (ids[0], 50, 1.0),
                (999, 50, 1.0),
                (999, 51, 1.0),
                (999, 52, 1.0),
            ],
            |i, r| unknown.push((i, matches!(r, Refused::Unknown))),
        );
        assert_eq!(unknown, vec![(1, true), (2, true), (3, true)]);
        let a = head.series(ids[0]).expect("series");
        let mut want: Vec<Sample> = (0..40)
            .step_by(2)
            .map(|k| Sample { t: k, v: k as f64 })
            .collect();
        want.push(Sample { t: 50, v: 1.0 });
        assert_eq!(lock(&a.data).samples(i64::MIN, i64::MAX), want);

        // A series locked elsewhere: the batch waits for it (and appends it) once it is free.
        let busy = head.series(ids[5]).expect("series");
        let guard = lock(&busy.data);
        let appender = {
            let head = head.clone();
            let ids = ids.clone();
            std::thread::spawn(move || {
                head.append_batch(ids.iter().map(|&r| (r, 100, 1.0)), |i, r| {
                    panic!("{i}: {r:?}")
                });
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(guard);
        appender.join().expect("appender");
        assert_eq!(busy.last(), Some(Sample { t: 100, v: 1.0 }));

        // Two appenders over the same series in opposite orders, many times.
        let threads: Vec<_> = [false, true]
            .into_iter()
            .map(|reverse| {
                let head = head.clone();
                let mut ids = ids.clone();
                if reverse {
                    ids.reverse();
                }
                std::thread::spawn(move || {
                    for t in 0..2_000i64 {
                        head.append_batch(ids.iter().map(|&r| (r, 1_000 + t, 1.0)), |_, _| {});
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("appender");
        }
        for &r in &ids {
            let s = head.series(r).expect("series");
            assert_eq!(s.last().map(|l| l.t), Some(2_999));
        }
    }
}
