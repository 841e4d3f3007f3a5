//! A [`SampleIterator`] that decodes chunks lazily, so a querier hands out compressed chunks
//! (shared, not copied, for closed ones) instead of materialised samples.

use std::sync::Arc;

use pharos_model::Sample;
use pharos_model::storage::SampleIterator;

use crate::chunk::{self, Encoding};
use crate::mmap::MappedSlice;

/// Where a chunk's bytes live: the head's memory or a block's mapped chunk file.
#[derive(Debug, Clone)]
pub(crate) enum ChunkBytes {
    Heap(Arc<[u8]>),
    /// `bytes[start..end]`: one of the chunks a head series keeps in one allocation.
    Shared {
        bytes: Arc<[u8]>,
        start: usize,
        end: usize,
    },
    Mapped(MappedSlice),
}

impl AsRef<[u8]> for ChunkBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            ChunkBytes::Heap(b) => b,
            ChunkBytes::Shared { bytes, start, end } => bytes.get(*start..*end).unwrap_or_default(),
            ChunkBytes::Mapped(m) => m.as_ref(),
        }
    }
}

/// One chunk of a series with its time range.
#[derive(Debug, Clone)]
pub(crate) struct ChunkRef {
    pub max_t: i64,
    pub encoding: Encoding,
    pub bytes: ChunkBytes,
}

/// Decodes one chunk sample by sample (XOR) or all at once (other encodings).
#[derive(Debug)]
enum ChunkDecoder {
    Buffered(std::vec::IntoIter<Sample>),
}

impl ChunkDecoder {
    fn new(c: &ChunkRef) -> crate::Result<Self> {
        // Whole chunks decode several times faster than sample by sample (about 120
        // samples: the buffer is small).
        let mut out = Vec::new();
        chunk::decode_into(c.encoding, c.bytes.as_ref(), &mut out)?;
        Ok(ChunkDecoder::Buffered(out.into_iter()))
    }

    fn next_sample(&mut self) -> crate::Result<Option<Sample>> {
        match self {
            ChunkDecoder::Buffered(it) => Ok(it.next()),
        }
    }
}

/// Iterates the samples with `min_t <= t <= max_t` of chunks in time order.
#[derive(Debug)]
pub(crate) struct ChunksIterator {
    chunks: Vec<ChunkRef>,
    /// Index of the chunk being decoded.
    ci: usize,
    dec: Option<ChunkDecoder>,
    min_t: i64,
    max_t: i64,
    /// Decoded but not yet returned (by [`ChunksIterator::new`]'s look-ahead).
    pending: Option<Sample>,
    /// Last returned.
    cur: Option<Sample>,
    /// `next` or `seek` has returned `None`: the iterator stays at its end.
    done: bool,
}

impl ChunksIterator {
    /// An iterator over `chunks`, or `None` if they hold no sample in `[min_t, max_t]`.
    pub fn new(chunks: Vec<ChunkRef>, min_t: i64, max_t: i64) -> Option<Self> {
        let mut it = Self {
            chunks,
            ci: 0,
            dec: None,
            min_t,
            max_t,
            pending: None,
            cur: None,
            done: false,
        };
        it.pending = Some(it.decode_next()?);
        Some(it)
    }

    /// The next sample in range, decoding as needed.
    fn decode_next(&mut self) -> Option<Sample> {
        loop {
            let chunk = self.chunks.get(self.ci)?;
            let dec = match &mut self.dec {
                Some(d) => d,
                None => match ChunkDecoder::new(chunk) {
                    Ok(d) => self.dec.insert(d),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot decode a chunk");
                        self.next_chunk();
                        continue;
                    }
                },
            };
            match dec.next_sample() {
                Ok(Some(s)) if s.t > self.max_t => {
                    self.ci = self.chunks.len();
                    self.dec = None;
                    return None;
                }
                Ok(Some(s)) if s.t < self.min_t => {}
                Ok(Some(s)) => return Some(s),
                Ok(None) => self.next_chunk(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot decode a chunk");
                    self.next_chunk();
                }
            }
        }
    }

    fn next_chunk(&mut self) {
        self.ci += 1;
        self.dec = None;
    }
}

impl SampleIterator for ChunksIterator {
    /// From a fresh iterator, decodes each remaining chunk straight into `out`, skipping chunks
    /// that end before `min_t` without decoding them and stopping at the first past `max_t`.
    fn collect_into(&mut self, min_t: i64, max_t: i64, out: &mut Vec<Sample>) {
        if self.done || self.cur.is_some() {
            return pharos_model::storage::collect_range(self, min_t, max_t, out);
        }
        let (lo, hi) = (min_t.max(self.min_t), max_t.min(self.max_t));
        self.done = true;
        // A fresh iterator holds the first sample in range and the rest of its chunk.
        let Some(p) = self.pending.take() else { return };
        if p.t > hi {
            return;
        }
        if p.t >= lo {
            out.push(p);
        }
        if let Some(ChunkDecoder::Buffered(rest)) = self.dec.take() {
            for s in rest {
                if s.t > hi {
                    return;
                }
                if s.t >= lo {
                    out.push(s);
                }
            }
        }
        for c in self.chunks.get(self.ci + 1..).unwrap_or_default() {
            if c.max_t < lo {
                continue;
            }
            let start = out.len();
            if let Err(e) = chunk::decode_into(c.encoding, c.bytes.as_ref(), out) {
                tracing::error!(error = %e, "cannot decode a chunk");
                continue;
            }
            let before = out
                .get(start..)
                .unwrap_or_default()
                .partition_point(|s| s.t < lo);
            if before > 0 {
                out.drain(start..start + before);
            }
            if out.last().is_some_and(|s| s.t > hi) {
                let keep = out
                    .get(start..)
                    .unwrap_or_default()
                    .partition_point(|s| s.t <= hi);
                out.truncate(start + keep);
                return;
            }
        }
    }

    fn next(&mut self) -> Option<Sample> {
        if self.done {
            return None;
        }
        let s = match self.pending.take() {
            Some(p) => Some(p),
            None => self.decode_next(),
        };
        match s {
            Some(_) => self.cur = s,
            None => self.done = true,
        }
        s
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        if self.done {
            return None;
        }
        if let Some(c) = self.cur.filter(|c| c.t >= t) {
            return Some(c);
        }
        if let Some(p) = self.pending.take()
            && p.t >= t
        {
            self.cur = Some(p);
            return Some(p);
        }
        // Skip whole chunks that end before `t`.
        while self.chunks.get(self.ci).is_some_and(|c| c.max_t < t) {
            self.next_chunk();
        }
        loop {
            let Some(s) = self.decode_next() else {
                self.done = true;
                return None;
            };
            if s.t >= t {
                self.cur = Some(s);
                return Some(s);
            }
        }
    }
}

/// Merges the sample iterators of one series from several sources (blocks, head) in time order;
/// a timestamp present in several sources yields the sample of the first of them.
pub(crate) struct MergeIterator {
    its: Vec<Box<dyn SampleIterator>>,
    /// Each iterator's current sample (`None`: exhausted); filled on first use.
    heads: Vec<Option<Sample>>,
    started: bool,
    cur: Option<Sample>,
    done: bool,
}

impl MergeIterator {
    /// Merges `its` (in priority order).
    pub fn new(its: Vec<Box<dyn SampleIterator>>) -> Self {
        let heads = vec![None; its.len()];
        Self {
            its,
            heads,
            started: false,
            cur: None,
            done: false,
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            for (it, h) in self.its.iter_mut().zip(&mut self.heads) {
                *h = it.next();
            }
        }
    }

    /// Takes the smallest head and advances every iterator positioned at its timestamp.
    fn pop(&mut self) -> Option<Sample> {
        let min = self.heads.iter().flatten().map(|s| s.t).min()?;
        let mut out = None;
        for (it, h) in self.its.iter_mut().zip(&mut self.heads) {
            if let Some(s) = *h
                && s.t == min
            {
                out.get_or_insert(s);
                *h = it.next();
            }
        }
        out
    }
}

/// Merges the sorted `add` into the sorted `out[start..]`; on equal timestamps the sample
/// already in `out` wins. Appends without comparing when `add` starts after `out` ends (sources
/// are blocks in time order, then the head).
fn merge_into(out: &mut Vec<Sample>, start: usize, add: &[Sample]) {
    let Some(first) = add.first() else { return };
    if out.len() == start || out.last().is_some_and(|l| l.t < first.t) {
        out.extend_from_slice(add);
        return;
    }
    let old = out.split_off(start);
    out.reserve(old.len() + add.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(a), Some(b)) = (old.get(i), add.get(j)) {
        if a.t <= b.t {
            out.push(*a);
            i += 1;
            if a.t == b.t {
                j += 1;
            }
        } else {
            out.push(*b);
            j += 1;
        }
    }
    out.extend_from_slice(old.get(i..).unwrap_or_default());
    out.extend_from_slice(add.get(j..).unwrap_or_default());
}

impl SampleIterator for MergeIterator {
    /// From a fresh iterator, collects each source in bulk and merges the results.
    fn collect_into(&mut self, min_t: i64, max_t: i64, out: &mut Vec<Sample>) {
        if self.started || self.done {
            return pharos_model::storage::collect_range(self, min_t, max_t, out);
        }
        self.done = true;
        let start = out.len();
        let mut tmp = Vec::new();
        for it in &mut self.its {
            // Straight into `out` (no buffer grown from empty for every source): sources are
            // blocks in time order, then the head, so new samples mostly start after the ones
            // before; only a source that overlaps them is moved aside and merged.
            let mid = out.len();
            it.collect_into(min_t, max_t, out);
            let overlaps = mid > start
                && out
                    .get(mid)
                    .zip(out.get(mid - 1))
                    .is_some_and(|(first, last)| first.t <= last.t);
            if overlaps {
                tmp.clear();
                tmp.extend(out.drain(mid..));
                merge_into(out, start, &tmp);
            }
        }
    }

    fn next(&mut self) -> Option<Sample> {
        if self.done {
            return None;
        }
        self.start();
        let s = self.pop();
        match s {
            Some(_) => self.cur = s,
            None => self.done = true,
        }
        s
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        if self.done {
            return None;
        }
        if let Some(c) = self.cur.filter(|c| c.t >= t) {
            return Some(c);
        }
        self.start();
        for (it, h) in self.its.iter_mut().zip(&mut self.heads) {
            if h.is_some_and(|s| s.t < t) {
                *h = it.seek(t);
            }
        }
        self.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::Encoder;
    use pharos_model::storage::VecSampleIterator;

    fn chunks(samples: &[Sample], per_chunk: usize) -> Vec<ChunkRef> {
        samples
            .chunks(per_chunk)
            .map(|c| {
                let mut e = Encoder::new();
                for s in c {
                    e.append(s.t, s.v);
                }
                ChunkRef {
                    max_t: e.max_t(),
                    encoding: Encoding::Xor,
                    bytes: ChunkBytes::Heap(e.into_bytes().into()),
                }
            })
            .collect()
    }

    /// The chunk iterator behaves like `VecSampleIterator` over the filtered samples, for seeded
    /// random sequences of `next` and `seek`, up to the end (after which `VecSampleIterator::seek`
    /// may return its last sample again while this one stays at the end, as Prometheus' do).
    #[test]
    fn matches_vec_iterator() {
        let mut seed = 1u64;
        let mut rnd = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for round in 0..300 {
            let n = rnd(60) as i64;
            let samples: Vec<Sample> = (0..n)
                .map(|i| Sample {
                    t: i * 10,
                    v: i as f64,
                })
                .collect();
            let per_chunk = 1 + rnd(12) as usize;
            let (min_t, max_t) = (rnd(700) as i64 - 50, rnd(700) as i64 - 50);
            let want: Vec<Sample> = samples
                .iter()
                .copied()
                .filter(|s| s.t >= min_t && s.t <= max_t)
                .collect();
            let got = ChunksIterator::new(chunks(&samples, per_chunk), min_t, max_t);
            assert_eq!(got.is_none(), want.is_empty(), "round {round}");
            let Some(mut got) = got else { continue };
            let mut want = VecSampleIterator::new(want);
            for step in 0..40 {
                let (g, w) = if rnd(2) == 0 {
                    (got.next(), want.next())
                } else {
                    let t = rnd(700) as i64 - 50;
                    (got.seek(t), want.seek(t))
                };
                assert_eq!(g, w, "round {round} step {step}");
                if g.is_none() {
                    assert_eq!((got.next(), got.seek(i64::MIN)), (None, None));
                    break;
                }
            }
        }
    }

    /// `collect_into` returns what `seek` and `next` would, from a fresh iterator and after a few
    /// calls of `next`, for seeded random chunkings and ranges.
    #[test]
    fn collect_into_matches_seek_and_next() {
        let mut seed = 7u64;
        let mut rnd = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for round in 0..500 {
            let n = rnd(60) as i64;
            let samples: Vec<Sample> = (0..n)
                .map(|i| Sample {
                    t: i * 10,
                    v: i as f64,
                })
                .collect();
            let per_chunk = 1 + rnd(12) as usize;
            let (min_t, max_t) = (rnd(700) as i64 - 50, rnd(700) as i64 - 50);
            let (lo, hi) = (rnd(700) as i64 - 50, rnd(700) as i64 - 50);
            let skip = rnd(3) as usize;
            let Some(mut got) = ChunksIterator::new(chunks(&samples, per_chunk), min_t, max_t)
            else {
                continue;
            };
            let in_range: Vec<Sample> = samples
                .iter()
                .copied()
                .filter(|s| s.t >= min_t && s.t <= max_t)
                .collect();
            let mut want_it = VecSampleIterator::new(in_range);
            for _ in 0..skip {
                assert_eq!(got.next(), want_it.next(), "round {round}");
            }
            let mut want = vec![Sample { t: -1, v: 0.0 }];
            want_it.collect_into(lo, hi, &mut want);
            let mut out = vec![Sample { t: -1, v: 0.0 }];
            got.collect_into(lo, hi, &mut out);
            assert_eq!(out, want, "round {round} lo {lo} hi {hi} skip {skip}");
        }
    }

    #[test]
    fn merge_collect_into() {
        #[track_caller]
        fn check(sources: &[&[i64]], lo: i64, hi: i64, want: &[(i64, f64)]) {
            let its = sources
                .iter()
                .enumerate()
                .map(|(i, ts)| -> Box<dyn SampleIterator> {
                    Box::new(VecSampleIterator::new(
                        ts.iter().map(|&t| Sample { t, v: i as f64 }).collect(),
                    ))
                })
                .collect();
            let mut out = Vec::new();
            MergeIterator::new(its).collect_into(lo, hi, &mut out);
            let got: Vec<(i64, f64)> = out.iter().map(|s| (s.t, s.v)).collect();
            assert_eq!(got, want);
        }
        check(
            &[&[1, 2], &[3, 4]],
            0,
            10,
            &[(1, 0.0), (2, 0.0), (3, 1.0), (4, 1.0)],
        );
        check(&[&[1, 2], &[3, 4]], 2, 3, &[(2, 0.0), (3, 1.0)]);
        check(
            &[&[3, 4], &[1, 2]],
            0,
            10,
            &[(1, 1.0), (2, 1.0), (3, 0.0), (4, 0.0)],
        );
        check(
            &[&[1, 3, 5], &[2, 3, 6], &[]],
            0,
            10,
            &[(1, 0.0), (2, 1.0), (3, 0.0), (5, 0.0), (6, 1.0)],
        );
        check(&[&[], &[5], &[5, 7]], 0, 10, &[(5, 1.0), (7, 2.0)]);
        check(&[&[1], &[2]], 5, 10, &[]);
    }

    #[test]
    fn merge_dedups_and_seeks() {
        let v = |ts: &[i64], v: f64| -> Box<dyn SampleIterator> {
            Box::new(VecSampleIterator::new(
                ts.iter().map(|&t| Sample { t, v }).collect(),
            ))
        };
        let mut m = MergeIterator::new(vec![v(&[1, 3, 5], 1.0), v(&[2, 3, 6], 2.0), v(&[], 3.0)]);
        let got: Vec<(i64, f64)> = std::iter::from_fn(|| m.next())
            .map(|s| (s.t, s.v))
            .collect();
        assert_eq!(got, vec![(1, 1.0), (2, 2.0), (3, 1.0), (5, 1.0), (6, 2.0)]);
        assert_eq!(m.seek(0), None);
        let mut m = MergeIterator::new(vec![v(&[1, 3, 5], 1.0), v(&[2, 4, 6], 2.0)]);
        assert_eq!(m.seek(4).map(|s| s.t), Some(4));
        assert_eq!(m.seek(2).map(|s| s.t), Some(4));
        assert_eq!(m.next().map(|s| s.t), Some(5));
        assert_eq!(m.seek(7), None);
        assert_eq!(m.next(), None);
    }
}
