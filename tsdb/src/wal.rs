//! The write-ahead log: numbered segment files of CRC-checked records.
//!
//! Every record is framed as `[len: u32 LE][crc32c: u32 LE][type: u8][payload: len bytes]`, the
//! CRC (Castagnoli) covering the type byte and the payload. Records never span segments; a new
//! segment is started when the next write would pass the segment size. The byte layout of each
//! record type is in `tsdb/docs/format.md`.
//!
//! Writers build a commit's records in one buffer with the `encode_*` functions and hand it to
//! [`Wal::log`], which writes it with one `write` call. Readers walk a segment's bytes with
//! [`read_records`], which stops at the first torn or corrupt record and says where.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use pharos_model::{Label, Labels};

use crate::files;
use crate::varint::{put_uvarint, put_varint, uvarint, varint};
use crate::{Error, Result};

/// Bytes of a record header: length, CRC, type.
pub const HEADER_LEN: usize = 9;
/// Largest payload a reader accepts; a bigger length is a corrupt header, not a huge record.
pub const MAX_RECORD_LEN: usize = 1 << 30;

/// The kinds of records.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// New series: refs and their labels.
    Series = 1,
    /// Samples of one commit: `(ref, t, v)`.
    Samples = 2,
    /// Retention ran: samples older than `min_t` are gone.
    Truncation = 3,
}

impl TryFrom<u8> for RecordType {
    type Error = Error;

    fn try_from(b: u8) -> Result<Self> {
        match b {
            1 => Ok(RecordType::Series),
            2 => Ok(RecordType::Samples),
            3 => Ok(RecordType::Truncation),
            b => Err(Error::Corruption(format!("unknown WAL record type {b}"))),
        }
    }
}

/// One sample of a Samples record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    /// The series' ref.
    pub series: u64,
    /// Timestamp in ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series.
    Series(Vec<(u64, Labels)>),
    /// Samples.
    Samples(Vec<RefSample>),
    /// Retention boundary.
    Truncation(i64),
}

/// Appends a framed record of type `typ` whose payload `body` writes.
fn frame(buf: &mut Vec<u8>, typ: RecordType, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    buf.push(typ as u8);
    body(buf);
    let len = (buf.len() - start - HEADER_LEN) as u32;
    let crc = crc32c::crc32c(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Appends a Series record.
pub fn encode_series<'a>(
    buf: &mut Vec<u8>,
    series: impl ExactSizeIterator<Item = (u64, &'a Labels)>,
) {
    frame(buf, RecordType::Series, |b| {
        put_uvarint(b, series.len() as u64);
        for (r, labels) in series {
            put_uvarint(b, r);
            put_uvarint(b, labels.len() as u64);
            for l in labels.iter() {
                put_str(b, &l.name);
                put_str(b, &l.value);
            }
        }
    });
}

/// Appends a Samples record; refs and timestamps are stored as deltas to the first sample's.
pub fn encode_samples(buf: &mut Vec<u8>, samples: &[RefSample]) {
    frame(buf, RecordType::Samples, |b| {
        put_uvarint(b, samples.len() as u64);
        let Some(first) = samples.first() else {
            return;
        };
        put_uvarint(b, first.series);
        put_varint(b, first.t);
        for s in samples {
            put_varint(b, s.series.wrapping_sub(first.series) as i64);
            put_varint(b, s.t.wrapping_sub(first.t));
            b.extend_from_slice(&s.v.to_bits().to_le_bytes());
        }
    });
}

/// Appends a Truncation record.
pub fn encode_truncation(buf: &mut Vec<u8>, min_t: i64) {
    frame(buf, RecordType::Truncation, |b| put_varint(b, min_t));
}

/// A cursor over a payload whose reads fail with a message.
struct Payload<'a>(&'a [u8]);

impl<'a> Payload<'a> {
    fn uvarint(&mut self, what: &str) -> std::result::Result<u64, String> {
        let (x, rest) = uvarint(self.0).ok_or_else(|| format!("bad varint for {what}"))?;
        self.0 = rest;
        Ok(x)
    }

    fn varint(&mut self, what: &str) -> std::result::Result<i64, String> {
        let (x, rest) = varint(self.0).ok_or_else(|| format!("bad varint for {what}"))?;
        self.0 = rest;
        Ok(x)
    }

    fn bytes(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("payload ends inside {what}"));
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let n = self.uvarint(what)?;
        let b = self.bytes(usize::try_from(n).unwrap_or(usize::MAX), what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }

    /// A count of items of at least one byte each, checked against the bytes left.
    fn count(&mut self, what: &str) -> std::result::Result<usize, String> {
        let n = self.uvarint(what)?;
        if n > self.0.len() as u64 {
            return Err(format!("{what} {n} exceeds the payload"));
        }
        Ok(n as usize)
    }
}

fn decode_payload(typ: RecordType, payload: &[u8]) -> std::result::Result<Record, String> {
    let mut p = Payload(payload);
    let rec = match typ {
        RecordType::Series => {
            let n = p.count("series count")?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let r = p.uvarint("series ref")?;
                let nl = p.count("label count")?;
                let mut labels = Vec::with_capacity(nl);
                for _ in 0..nl {
                    let name = p.string("label name")?;
                    let value = p.string("label value")?;
                    labels.push(Label { name, value });
                }
                out.push((r, Labels::new(labels)));
            }
            Record::Series(out)
        }
        RecordType::Samples => {
            let n = p.count("sample count")?;
            let mut out = Vec::with_capacity(n);
            if n > 0 {
                let base_ref = p.uvarint("base ref")?;
                let base_t = p.varint("base timestamp")?;
                for _ in 0..n {
                    let dr = p.varint("ref delta")?;
                    let dt = p.varint("timestamp delta")?;
                    let v = p.bytes(8, "value")?;
                    let mut bits = [0u8; 8];
                    bits.copy_from_slice(v);
                    out.push(RefSample {
                        series: base_ref.wrapping_add(dr as u64),
                        t: base_t.wrapping_add(dt),
                        v: f64::from_bits(u64::from_le_bytes(bits)),
                    });
                }
            }
            Record::Samples(out)
        }
        RecordType::Truncation => Record::Truncation(p.varint("min time")?),
    };
    if !p.0.is_empty() {
        return Err(format!("{} bytes after the {typ:?} payload", p.0.len()));
    }
    Ok(rec)
}

/// Decodes the record at the start of `b`: the record and the bytes after it, or why it is
/// torn or corrupt.
pub fn decode_record(b: &[u8]) -> std::result::Result<(Record, &[u8]), String> {
    let Some((header, rest)) = b.split_first_chunk::<HEADER_LEN>() else {
        return Err(format!("torn header ({} of {HEADER_LEN} bytes)", b.len()));
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_LEN {
        return Err(format!(
            "record length {len} exceeds the limit {MAX_RECORD_LEN}"
        ));
    }
    if rest.len() < len {
        return Err(format!(
            "torn record: {len} payload bytes announced, {} present",
            rest.len()
        ));
    }
    let (payload, after) = rest.split_at(len);
    let got = crc32c::crc32c_append(crc32c::crc32c(&header[8..]), payload);
    if got != crc {
        return Err(format!(
            "CRC mismatch: stored {crc:#010x}, computed {got:#010x}"
        ));
    }
    let typ = RecordType::try_from(header[8]).map_err(|e| e.to_string())?;
    Ok((decode_payload(typ, payload)?, after))
}

/// Calls `f` with every record of a segment's bytes in order. Returns the offset and reason of
/// the first torn or corrupt record, if any (the rest of the segment is not read).
pub fn read_records(data: &[u8], mut f: impl FnMut(Record)) -> Option<(u64, String)> {
    let mut rest = data;
    while !rest.is_empty() {
        let offset = (data.len() - rest.len()) as u64;
        match decode_record(rest) {
            Ok((rec, after)) => {
                f(rec);
                rest = after;
            }
            Err(reason) => return Some((offset, reason)),
        }
    }
    None
}

/// Size and newest sample time of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Bytes in the file.
    pub bytes: u64,
    /// Newest sample timestamp in it (`i64::MIN` if none).
    pub max_t: i64,
}

/// The WAL files found in a directory.
#[derive(Debug, Default)]
pub struct Listing {
    /// Segments in number order.
    pub segments: Vec<(u64, PathBuf)>,
    /// The newest checkpoint: the last segment it covers and its path.
    pub checkpoint: Option<(u64, PathBuf)>,
    /// Older checkpoints and leftover temporary files, to delete.
    pub obsolete: Vec<PathBuf>,
}

/// Lists the WAL directory.
pub fn list(dir: &Path) -> Result<Listing> {
    let mut out = Listing::default();
    let mut checkpoints = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = files::parse_segment_name(name) {
            out.segments.push((n, entry.path()));
        } else if let Some(n) = files::parse_checkpoint_name(name) {
            checkpoints.push((n, entry.path()));
        } else if name.ends_with(files::TMP_SUFFIX) {
            out.obsolete.push(entry.path());
        }
    }
    out.segments.sort();
    checkpoints.sort();
    out.checkpoint = checkpoints.pop();
    out.obsolete.extend(checkpoints.into_iter().map(|(_, p)| p));
    Ok(out)
}

/// Fsyncs a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsyncing directory {}", dir.display()), e))
}

/// Writes a checkpoint covering segments up to `last`: Series records for `series` and a
/// Truncation record for `min_t`. Written to a temporary file, fsynced, then renamed.
pub fn write_checkpoint(
    dir: &Path,
    last: u64,
    series: &[(u64, Labels)],
    min_t: i64,
) -> Result<PathBuf> {
    let mut buf = Vec::new();
    for batch in series.chunks(1000) {
        encode_series(&mut buf, batch.iter().map(|(r, l)| (*r, l)));
    }
    encode_truncation(&mut buf, min_t);
    let path = dir.join(files::checkpoint_name(last));
    let tmp = dir.join(format!(
        "{}{}",
        files::checkpoint_name(last),
        files::TMP_SUFFIX
    ));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| Error::io(format!("writing checkpoint {}", tmp.display()), e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// The writing end of the WAL.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    file: File,
    current: u64,
    /// Every segment on disk, including the current one.
    segments: BTreeMap<u64, SegmentInfo>,
    /// Written since the last fsync.
    dirty: bool,
    /// A failed write may have left a partial record: start a new segment before the next one.
    needs_rotation: bool,
}

fn create_segment(dir: &Path, n: u64) -> Result<File> {
    let path = dir.join(files::segment_name(n));
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(format!("creating WAL segment {}", path.display()), e))?;
    sync_dir(dir)?;
    Ok(f)
}

impl Wal {
    /// Starts a new segment after the `existing` ones (which stay for replay and truncation).
    pub fn open(
        dir: &Path,
        segment_size: u64,
        existing: BTreeMap<u64, SegmentInfo>,
    ) -> Result<Wal> {
        let current = existing.keys().next_back().map_or(0, |n| n + 1);
        let file = create_segment(dir, current)?;
        let mut segments = existing;
        segments.insert(
            current,
            SegmentInfo {
                bytes: 0,
                max_t: i64::MIN,
            },
        );
        Ok(Wal {
            dir: dir.to_path_buf(),
            segment_size,
            file,
            current,
            segments,
            dirty: false,
            needs_rotation: false,
        })
    }

    fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        let next = self.current + 1;
        self.file = create_segment(&self.dir, next)?;
        self.current = next;
        self.segments.insert(
            next,
            SegmentInfo {
                bytes: 0,
                max_t: i64::MIN,
            },
        );
        self.needs_rotation = false;
        Ok(())
    }

    /// Writes `buf` (whole records) with one `write` call, to a new segment if the current one
    /// would pass the segment size. `max_t` is the newest sample time in `buf`.
    pub fn log(&mut self, buf: &[u8], max_t: i64) -> Result<()> {
        let cur = self.segments.get(&self.current).map_or(0, |s| s.bytes);
        if self.needs_rotation || (cur > 0 && cur + buf.len() as u64 > self.segment_size) {
            self.rotate()?;
        }
        let before = self.segments.get(&self.current).map_or(0, |s| s.bytes);
        if let Err(e) = self.file.write_all(buf) {
            // Cut a partial record off so the segment stays readable; rotate in any case.
            let _ = self.file.set_len(before);
            self.needs_rotation = true;
            return Err(Error::io(
                format!(
                    "writing to WAL segment {}",
                    self.segment_path(self.current).display()
                ),
                e,
            ));
        }
        self.dirty = true;
        if let Some(s) = self.segments.get_mut(&self.current) {
            s.bytes += buf.len() as u64;
            s.max_t = s.max_t.max(max_t);
        }
        Ok(())
    }

    /// Makes the next write start a new segment, so that every segment written so far can be
    /// deleted once its samples are persisted (used by `Db::flush`).
    pub fn rotate_on_next_write(&mut self) {
        self.needs_rotation = true;
    }

    /// Fsyncs the current segment if anything was written since the last fsync.
    pub fn sync(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| {
            Error::io(
                format!(
                    "fsyncing WAL segment {}",
                    self.segment_path(self.current).display()
                ),
                e,
            )
        })?;
        self.dirty = false;
        Ok(())
    }

    /// If anything is unsynced: a handle to fsync outside the WAL lock, and marks it clean
    /// (call [`Wal::mark_dirty`] if that fsync fails).
    pub fn take_unsynced(&mut self) -> Option<std::io::Result<File>> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(self.file.try_clone())
    }

    /// Marks the current segment as needing an fsync.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The path of segment `n`.
    pub fn segment_path(&self, n: u64) -> PathBuf {
        self.dir.join(files::segment_name(n))
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment being written.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// Number of segments and their total bytes.
    pub fn size(&self) -> (u64, u64) {
        (
            self.segments.len() as u64,
            self.segments.values().map(|s| s.bytes).sum(),
        )
    }

    /// The highest segment `n` such that every segment up to `n` is older than `min_t` and is
    /// not the current one.
    pub fn truncatable_before(&self, min_t: i64) -> Option<u64> {
        let mut last = None;
        for (&n, info) in &self.segments {
            if n >= self.current || info.max_t >= min_t {
                break;
            }
            last = Some(n);
        }
        last
    }

    /// Forgets segments up to `last` and returns their paths (the caller deletes the files).
    pub fn drop_segments(&mut self, last: u64) -> Vec<PathBuf> {
        let gone: Vec<u64> = self.segments.range(..=last).map(|(n, _)| *n).collect();
        gone.iter()
            .map(|n| {
                self.segments.remove(n);
                self.segment_path(*n)
            })
            .collect()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "fsyncing the WAL on drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::STALE_NAN;

    fn records() -> Vec<Record> {
        vec![
            Record::Series(vec![
                (1, Labels::from_pairs(&[("__name__", "up"), ("job", "a")])),
                (
                    900,
                    Labels::from_pairs(&[("__name__", "x"), ("k", "ü\"\n")]),
                ),
            ]),
            Record::Samples(vec![
                RefSample {
                    series: 900,
                    t: 1000,
                    v: 1.5,
                },
                RefSample {
                    series: 1,
                    t: -5,
                    v: STALE_NAN,
                },
                RefSample {
                    series: u64::MAX,
                    t: i64::MIN,
                    v: f64::NEG_INFINITY,
                },
            ]),
            Record::Samples(vec![]),
            Record::Series(vec![]),
            Record::Truncation(-42),
        ]
    }

    fn encode(r: &Record, buf: &mut Vec<u8>) {
        match r {
            Record::Series(s) => encode_series(buf, s.iter().map(|(r, l)| (*r, l))),
            Record::Samples(s) => encode_samples(buf, s),
            Record::Truncation(t) => encode_truncation(buf, *t),
        }
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        for r in records() {
            encode(&r, &mut buf);
        }
        let mut got = Vec::new();
        assert_eq!(read_records(&buf, |r| got.push(r)), None);
        // Compare values by bits (STALE_NAN).
        assert_eq!(format!("{got:?}"), format!("{:?}", records()));
        if let Record::Samples(s) = &got[1] {
            assert_eq!(s[1].v.to_bits(), STALE_NAN.to_bits());
        }
    }

    #[track_caller]
    fn check_damage(damage: impl Fn(&mut Vec<u8>), want_records: usize, want_reason: &str) {
        let mut buf = Vec::new();
        for r in records() {
            encode(&r, &mut buf);
        }
        damage(&mut buf);
        let mut n = 0;
        let err = read_records(&buf, |_| n += 1);
        assert_eq!(n, want_records);
        let (_, reason) = err.unwrap();
        assert!(reason.contains(want_reason), "{reason}");
    }

    #[test]
    fn damage_is_detected() {
        check_damage(|b| b.extend_from_slice(&[1, 2, 3]), 5, "torn header");
        check_damage(|b| b.extend_from_slice(&[0; 20]), 5, "CRC mismatch");
        check_damage(|b| b.truncate(b.len() - 1), 4, "torn record");
        check_damage(|b| b[HEADER_LEN + 3] ^= 0x10, 0, "CRC mismatch");
        check_damage(
            |b| b[0..4].copy_from_slice(&u32::MAX.to_le_bytes()),
            0,
            "exceeds",
        );
        check_damage(
            |b| {
                let mut extra = Vec::new();
                frame(&mut extra, RecordType::Truncation, |p| {
                    p.extend_from_slice(&[0x80])
                });
                b.extend_from_slice(&extra);
            },
            5,
            "bad varint",
        );
    }
}
