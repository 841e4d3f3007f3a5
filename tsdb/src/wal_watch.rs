//! Tailing the WAL from a position, for readers outside the database (the remote-write sender).
//!
//! A [`Watcher`] reads the segments of a WAL directory in order, from a [`Position`], while the
//! database keeps writing them: it hands over every whole record with the position just after
//! it, waits at a torn tail of the newest segment (the writer is mid-record), follows new
//! segments, and survives the database deleting old segments under it (it warns, reads the newest
//! checkpoint's series and goes on with the oldest segment left). Samples records ending at or
//! before the start position are not handed over, but Series records before it are, so the
//! reader knows every series' labels; the series of segments already deleted come from the
//! checkpoint.
//!
//! ```
//! use pharos_model::storage::Appendable;
//! use pharos_model::Labels;
//! use pharos_tsdb::wal::Record;
//! use pharos_tsdb::wal_watch::{Position, Watcher};
//! use pharos_tsdb::{Db, Options};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::default()).unwrap();
//! let mut app = db.appender();
//! app.append(None, &Labels::from_pairs(&[("__name__", "up")]), 1_000, 1.0).unwrap();
//! app.commit().unwrap();
//! let mut w = Watcher::new(&dir.path().join("wal"), Position::default());
//! let mut samples = 0;
//! w.poll(&mut |rec, _end| if let Record::Samples(s) = rec { samples += s.len() }).unwrap();
//! assert_eq!(samples, 1);
//! ```

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::files;
use crate::wal::{self, Record};
use crate::{Error, Result};

/// Bytes read from a segment per step (a poll reads at most this much before returning, unless
/// one record is bigger).
const CHUNK: usize = 1 << 20;

/// A place in the WAL: a segment number and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The segment's number.
    pub segment: u64,
    /// Bytes of the segment before the position.
    pub offset: u64,
}

impl Position {
    /// The end of the WAL in `dir` now: the newest segment's length (segment 0 if there is none).
    pub fn end_of(dir: &Path) -> Result<Position> {
        let listing = wal::list(dir)?;
        let Some((segment, path)) = listing.segments.last() else {
            return Ok(Position::default());
        };
        let offset = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?
            .len();
        Ok(Position {
            segment: *segment,
            offset,
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// What a watcher has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Where the next record will be read.
    pub position: Position,
    /// Records handed over.
    pub records: u64,
    /// Segments (or segment tails) skipped because they were deleted or damaged.
    pub skipped_segments: u64,
}

/// Tails a WAL directory; see the [module docs](self).
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    /// Samples records ending at or before this are not handed over.
    start: Position,
    /// The segment being read and the offset of `buf`'s first byte in it.
    pos: Position,
    /// Bytes read from the segment and not yet decoded.
    buf: Vec<u8>,
    file: Option<File>,
    /// The checkpoint's series are still to be read (at the first poll).
    need_checkpoint: bool,
    /// The newest checkpoint whose series were handed over or reported by
    /// [`Watcher::new_checkpoint`].
    last_checkpoint: Option<u64>,
    progress: Progress,
}

impl Watcher {
    /// A watcher of the WAL in `dir` that hands over samples after `start` (and every series).
    pub fn new(dir: &Path, start: Position) -> Watcher {
        Watcher {
            dir: dir.to_path_buf(),
            start,
            pos: Position::default(),
            buf: Vec::new(),
            file: None,
            need_checkpoint: true,
            last_checkpoint: None,
            progress: Progress {
                position: start,
                ..Progress::default()
            },
        }
    }

    /// What the watcher has done so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// A checkpoint written since the last call (or since the watcher read one), once the watcher
    /// has read past the segments it covers: its number `n` and the refs of the series it holds.
    /// The series a reader learnt from segments `<= n` that are not in the list are gone from the
    /// database (the checkpoint keeps every live series), so the reader can forget them. Lists the
    /// WAL directory (call it now and then, not per record).
    pub fn new_checkpoint(&mut self) -> Result<Option<(u64, Vec<u64>)>> {
        let Some((n, path)) = wal::list(&self.dir)?.checkpoint else {
            return Ok(None);
        };
        if self.last_checkpoint.is_some_and(|l| l >= n) || self.pos.segment <= n {
            return Ok(None);
        }
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            // Replaced by a newer one meanwhile: that one is read at the next call.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    format!("reading WAL checkpoint {}", path.display()),
                    e,
                ));
            }
        };
        let mut refs = Vec::new();
        let damage = wal::read_records(&data, |rec| {
            if let Record::Series(s) = rec {
                refs.extend(s.into_iter().map(|(r, _)| r));
            }
        });
        if let Some((offset, reason)) = damage {
            // Forgetting series on a partial list could drop live ones: keep them all.
            tracing::warn!(checkpoint = %path.display(), offset, reason, "damaged WAL checkpoint: no series forgotten");
            return Ok(None);
        }
        self.last_checkpoint = Some(n);
        Ok(Some((n, refs)))
    }

    /// Reads what the WAL holds now (at most about 1 MiB of it) and calls `f` with every whole
    /// record and the position after it. Returns whether anything was read; `false` means the
    /// watcher is at the end of the WAL (call again later).
    pub fn poll(&mut self, f: &mut dyn FnMut(Record, Position)) -> Result<bool> {
        if self.need_checkpoint {
            self.need_checkpoint = false;
            self.first_segment(f)?;
        }
        let mut progressed = false;
        let mut read_total = 0usize;
        loop {
            if self.file.is_none() {
                let path = self.dir.join(files::segment_name(self.pos.segment));
                match File::open(&path) {
                    Ok(mut file) => {
                        file.seek(SeekFrom::Start(self.pos.offset)).map_err(|e| {
                            Error::io(format!("seeking in WAL segment {}", path.display()), e)
                        })?;
                        self.file = Some(file);
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        if self.skip_to_next(f, "it was deleted")? {
                            continue;
                        }
                        return Ok(progressed);
                    }
                    Err(e) => {
                        return Err(Error::io(
                            format!("opening WAL segment {}", path.display()),
                            e,
                        ));
                    }
                }
            }
            let n = self.read_more()?;
            read_total += n;
            if self.decode(f) {
                progressed = true;
            }
            if n > 0 {
                if read_total >= CHUNK && self.buf.is_empty() {
                    return Ok(true);
                }
                continue;
            }
            // At the end of the file: a newer segment means this one is finished.
            if !self.newer_segment_exists()? {
                return Ok(progressed);
            }
            // The writer may have added the last bytes before it moved on.
            while self.read_more()? > 0 {}
            if self.decode(f) {
                progressed = true;
            }
            if !self.buf.is_empty() {
                let reason = match wal::decode_record(&self.buf) {
                    Err(r) => r,
                    Ok(_) => "undecodable record".to_string(),
                };
                tracing::warn!(
                    segment = %self.dir.join(files::segment_name(self.pos.segment)).display(),
                    offset = self.pos.offset,
                    reason,
                    "skipping the damaged rest of a WAL segment"
                );
                self.progress.skipped_segments += 1;
            }
            self.next_segment(self.pos.segment + 1);
        }
    }

    /// Appends what the file holds after `buf` to it; returns the bytes read.
    fn read_more(&mut self) -> Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let before = self.buf.len();
        let got = file
            .by_ref()
            .take(CHUNK as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| {
                Error::io(
                    format!(
                        "reading WAL segment {}",
                        self.dir
                            .join(files::segment_name(self.pos.segment))
                            .display()
                    ),
                    e,
                )
            })?;
        debug_assert_eq!(got, self.buf.len() - before);
        Ok(got)
    }

    /// Hands over the whole records at the start of `buf`; keeps a torn or damaged rest.
    fn decode(&mut self, f: &mut dyn FnMut(Record, Position)) -> bool {
        let mut rest: &[u8] = &self.buf;
        let mut any = false;
        while let Ok((rec, after)) = wal::decode_record(rest) {
            self.pos.offset += (rest.len() - after.len()) as u64;
            rest = after;
            any = true;
            if matches!(rec, Record::Samples(_)) && self.pos <= self.start {
                continue;
            }
            self.progress.records += 1;
            f(rec, self.pos);
        }
        let used = self.buf.len() - rest.len();
        self.buf.drain(..used);
        self.progress.position = self.pos.max(self.start);
        any
    }

    fn newer_segment_exists(&self) -> Result<bool> {
        Ok(wal::list(&self.dir)?
            .segments
            .iter()
            .any(|(n, _)| *n > self.pos.segment))
    }

    fn next_segment(&mut self, n: u64) {
        self.pos = Position {
            segment: n,
            offset: 0,
        };
        self.buf.clear();
        self.file = None;
        self.progress.position = self.pos.max(self.start);
    }

    /// The current segment is gone: reads the checkpoint's series and moves to the oldest
    /// segment after it. Returns `false` if there is no later segment yet.
    fn skip_to_next(&mut self, f: &mut dyn FnMut(Record, Position), why: &str) -> Result<bool> {
        let listing = wal::list(&self.dir)?;
        let Some((next, _)) = listing.segments.iter().find(|(n, _)| *n > self.pos.segment) else {
            return Ok(false);
        };
        let next = *next;
        // Samples in segments already read (before the start) are not lost.
        if self.pos >= self.start || next > self.start.segment {
            tracing::warn!(
                dir = %self.dir.display(),
                from = self.pos.segment,
                to = next,
                "skipping WAL segments: {why}; their unsent samples are lost"
            );
            self.progress.skipped_segments += next - self.pos.segment;
        }
        if let Some((number, path)) = &listing.checkpoint {
            self.read_checkpoint(*number, path, f)?;
        }
        self.next_segment(next);
        Ok(true)
    }

    /// At the first poll: the checkpoint's series, then the oldest segment it does not cover.
    fn first_segment(&mut self, f: &mut dyn FnMut(Record, Position)) -> Result<()> {
        let listing = wal::list(&self.dir)?;
        let covered = listing.checkpoint.as_ref().map(|(n, _)| *n);
        if let Some((number, path)) = &listing.checkpoint {
            self.read_checkpoint(*number, path, f)?;
        }
        let first = listing
            .segments
            .iter()
            .map(|(n, _)| *n)
            .find(|n| covered.is_none_or(|c| *n > c));
        match first {
            Some(n) => {
                if n > self.start.segment && self.start != Position::default() {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        from = %self.start,
                        to = n,
                        "WAL segments after the start position were deleted; their unsent samples are lost"
                    );
                    self.progress.skipped_segments += n - self.start.segment;
                }
                self.next_segment(n);
            }
            None => self.next_segment(covered.map_or(self.start.segment, |c| c + 1)),
        }
        Ok(())
    }

    /// Hands over the Series records of a checkpoint (at the current position).
    fn read_checkpoint(
        &mut self,
        number: u64,
        path: &Path,
        f: &mut dyn FnMut(Record, Position),
    ) -> Result<()> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            // Replaced by a newer one meanwhile: that one is read at the next skip.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::io(
                    format!("reading WAL checkpoint {}", path.display()),
                    e,
                ));
            }
        };
        self.last_checkpoint = self.last_checkpoint.max(Some(number));
        let pos = self.pos;
        let mut n = 0u64;
        let damage = wal::read_records(&data, |rec| {
            if let Record::Series(_) = rec {
                n += 1;
                f(rec, pos);
            }
        });
        self.progress.records += n;
        if let Some((offset, reason)) = damage {
            tracing::warn!(checkpoint = %path.display(), offset, reason, "damaged WAL checkpoint: the series after it are unknown");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{RefSample, encode_samples, encode_series};
    use pharos_model::Labels;
    use std::io::Write;

    fn series(r: u64, name: &str) -> Vec<u8> {
        let l = Labels::from_pairs(&[("__name__", name)]);
        let mut b = Vec::new();
        encode_series(&mut b, [(r, &l)].into_iter());
        b
    }

    fn samples(r: u64, ts: &[i64]) -> Vec<u8> {
        let s: Vec<RefSample> = ts
            .iter()
            .map(|&t| RefSample {
                series: r,
                t,
                v: t as f64,
            })
            .collect();
        let mut b = Vec::new();
        encode_samples(&mut b, &s);
        b
    }

    fn append(dir: &Path, seg: u64, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(files::segment_name(seg)))
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    /// Polls until nothing more is read; returns (series names, sample timestamps, last position).
    fn drain(w: &mut Watcher) -> (Vec<String>, Vec<i64>, Position) {
        let (mut names, mut ts, mut last) = (Vec::new(), Vec::new(), Position::default());
        while w
            .poll(&mut |rec, end| {
                last = end;
                match rec {
                    Record::Series(s) => names.extend(
                        s.iter()
                            .map(|(_, l)| l.get("__name__").unwrap_or("").to_string()),
                    ),
                    Record::Samples(s) => ts.extend(s.iter().map(|s| s.t)),
                    Record::Truncation(_) => {}
                }
            })
            .unwrap()
        {}
        (names, ts, last)
    }

    #[test]
    fn tails_segments_and_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut w = Watcher::new(d, Position::default());
        assert_eq!(drain(&mut w).1, Vec::<i64>::new());
        append(d, 0, &series(1, "a"));
        append(d, 0, &samples(1, &[1, 2]));
        let (names, ts, _) = drain(&mut w);
        assert_eq!((names, ts), (vec!["a".to_string()], vec![1, 2]));
        // A record written in two parts is handed over once whole.
        let rec = samples(1, &[3]);
        append(d, 0, &rec[..5]);
        assert_eq!(drain(&mut w).1, Vec::<i64>::new());
        append(d, 0, &rec[5..]);
        assert_eq!(drain(&mut w).1, vec![3]);
        // A new segment; the old one ends in garbage, which is skipped.
        append(d, 0, &[1, 2, 3]);
        append(d, 1, &samples(1, &[4]));
        let (_, ts, end) = drain(&mut w);
        assert_eq!(ts, vec![4]);
        assert_eq!(end.segment, 1);
        assert_eq!(w.progress().skipped_segments, 1);
        assert_eq!(w.progress().position, end);
    }

    #[test]
    fn resumes_after_a_position_with_all_series() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(d, 0, &series(1, "a"));
        append(d, 0, &samples(1, &[1]));
        append(d, 1, &samples(1, &[2]));
        let mid = Position::end_of(d).unwrap();
        append(d, 1, &series(2, "b"));
        append(d, 1, &samples(2, &[3]));
        let mut w = Watcher::new(d, mid);
        let (names, ts, _) = drain(&mut w);
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(ts, vec![3]);
    }

    #[test]
    fn new_checkpoints_name_the_live_series_once_read_past() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(d, 0, &series(1, "a"));
        append(d, 0, &series(2, "b"));
        append(d, 0, &samples(1, &[1]));
        let mut w = Watcher::new(d, Position::default());
        drain(&mut w);
        assert_eq!(w.new_checkpoint().unwrap(), None);
        // Segment 0 is checkpointed (only series 1 lives on) while the watcher is still in it.
        let l = Labels::from_pairs(&[("__name__", "a")]);
        crate::wal::write_checkpoint(d, 0, &[(1, l.clone())], 0).unwrap();
        assert_eq!(w.new_checkpoint().unwrap(), None);
        append(d, 1, &samples(1, &[2]));
        drain(&mut w);
        assert_eq!(w.new_checkpoint().unwrap(), Some((0, vec![1])));
        assert_eq!(w.new_checkpoint().unwrap(), None, "reported once");
        // A watcher that read the checkpoint itself at start does not report it again.
        std::fs::remove_file(d.join(files::segment_name(0))).unwrap();
        let mut fresh = Watcher::new(d, Position::default());
        let (names, ts, _) = drain(&mut fresh);
        assert_eq!((names, ts), (vec!["a".to_string()], vec![2]));
        assert_eq!(fresh.new_checkpoint().unwrap(), None);
        append(d, 2, &samples(1, &[3]));
        crate::wal::write_checkpoint(d, 1, &[(1, l)], 0).unwrap();
        drain(&mut w);
        assert_eq!(w.new_checkpoint().unwrap(), Some((1, vec![1])));
    }

    #[test]
    fn deleted_segments_are_skipped_with_checkpoint_series() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(d, 0, &series(1, "a"));
        append(d, 0, &samples(1, &[1]));
        let mut w = Watcher::new(d, Position::default());
        assert_eq!(drain(&mut w).1, vec![1]);
        append(d, 1, &samples(1, &[2]));
        append(d, 2, &series(2, "b"));
        append(d, 2, &samples(2, &[3]));
        // Retention: segments 0 and 1 go, their series live on in checkpoint.00000001.
        let l = Labels::from_pairs(&[("__name__", "a")]);
        crate::wal::write_checkpoint(d, 1, &[(1, l)], 0).unwrap();
        std::fs::remove_file(d.join(files::segment_name(0))).unwrap();
        std::fs::remove_file(d.join(files::segment_name(1))).unwrap();
        let (names, ts, _) = drain(&mut w);
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(ts, vec![3]);
        assert_eq!(w.progress().skipped_segments, 1);
        // A fresh watcher starting in a deleted segment.
        let mut w = Watcher::new(
            d,
            Position {
                segment: 1,
                offset: 3,
            },
        );
        let (names, ts, _) = drain(&mut w);
        assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(ts, vec![3]);
    }
}
