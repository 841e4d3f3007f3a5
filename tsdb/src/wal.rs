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
    /// Samples of one commit: `(ref, t, v)` with 8 raw value bytes each (written before the dense
    /// encoding; still read).
    Samples = 2,
    /// Retention ran: samples older than `min_t` are gone.
    Truncation = 3,
    /// Samples of one commit in runs per series: delta-of-delta timestamps, byte-wise XOR values.
    SamplesDense = 4,
    /// A Series or SamplesDense payload compressed with zstd: `[inner type: u8][payload length:
    /// uvarint][zstd frame]`. Written instead of a Series record when it is at least
    /// [`COMPRESS_MIN_LEN`] bytes and compression makes it smaller (earlier versions also wrapped
    /// SamplesDense records; still read).
    Compressed = 5,
    /// Samples as whole chunks, per series: written only by [`Wal::rewrite_compact`] when a
    /// database closes; decoded into [`Record::Samples`] (replay takes the chunks as they are:
    /// [`read_records_chunked`]).
    Chunks = 6,
}

/// Samples per chunk of a [`RecordType::Chunks`] record (the density sweet spot measured in
/// `benches/density.rs`: 1440 takes 2% fewer bytes than 480, longer chunks gain nothing).
pub const CHUNKS_RECORD_SAMPLES: usize = 1440;
/// A [`RecordType::Chunks`] record is closed once its payload reaches this many bytes (bounds
/// the memory of decoding one record).
const CHUNKS_RECORD_BYTES: usize = 1 << 20;
/// A [`RecordType::Chunks`] record is closed once it holds this many samples; readers refuse
/// records of more than twice that (a chunk holds at most `u16::MAX`), so a damaged record
/// cannot make them allocate without bound.
const CHUNKS_RECORD_MAX_SAMPLES: u64 = 1 << 16;

/// Smallest payload the writer tries to compress; smaller records stay plain (zstd's frame
/// overhead and the call cost outweigh the gain).
pub const COMPRESS_MIN_LEN: usize = 256;
/// zstd level of compressed records (level 1: measured in `benches/wal.rs`, higher levels cost
/// append throughput for a few percent of size).
pub const COMPRESS_LEVEL: i32 = 1;

impl TryFrom<u8> for RecordType {
    type Error = Error;

    fn try_from(b: u8) -> Result<Self> {
        match b {
            1 => Ok(RecordType::Series),
            2 => Ok(RecordType::Samples),
            3 => Ok(RecordType::Truncation),
            4 => Ok(RecordType::SamplesDense),
            5 => Ok(RecordType::Compressed),
            6 => Ok(RecordType::Chunks),
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
    finish_frame(buf, start);
}

/// Like [`frame`], but replaces a payload of at least [`COMPRESS_MIN_LEN`] bytes by a
/// [`RecordType::Compressed`] one when that is smaller.
fn frame_compressed(buf: &mut Vec<u8>, typ: RecordType, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    buf.push(typ as u8);
    body(buf);
    let payload_start = start + HEADER_LEN;
    let plain_len = buf.len() - payload_start;
    if plain_len >= COMPRESS_MIN_LEN
        && let Some(z) = compress(&buf[payload_start..])
    {
        let mut head = vec![typ as u8];
        put_uvarint(&mut head, plain_len as u64);
        if head.len() + z.len() < plain_len {
            buf.truncate(payload_start);
            buf[start + 8] = RecordType::Compressed as u8;
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&z);
        }
    }
    finish_frame(buf, start);
}

thread_local! {
    /// One zstd context per thread, reused across records (creating one costs more than
    /// compressing a small record).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `data` compressed with zstd at [`COMPRESS_LEVEL`], or `None` if zstd fails (the record is
/// then written plain).
fn compress(data: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(COMPRESS_LEVEL).ok();
        }
        c.as_mut()?.compress(data).ok()
    })
}

/// Decompresses a [`RecordType::Compressed`] payload into its inner type and payload. The output
/// is bounded by the length prefix (itself at most [`MAX_RECORD_LEN`]), so a forged frame cannot
/// allocate more; a frame that is corrupt or decodes to another length is an error.
fn decompress(payload: &[u8]) -> std::result::Result<(RecordType, Vec<u8>), String> {
    let mut p = Payload(payload);
    let inner = p.bytes(1, "compressed inner type")?[0];
    let inner = match RecordType::try_from(inner) {
        Ok(t @ (RecordType::Series | RecordType::SamplesDense)) => t,
        Ok(t) => return Err(format!("compressed record wraps a {t:?} record")),
        Err(e) => return Err(format!("compressed record: {e}")),
    };
    let len = p.uvarint("compressed payload length")?;
    if len > MAX_RECORD_LEN as u64 {
        return Err(format!(
            "compressed payload length {len} exceeds the limit {MAX_RECORD_LEN}"
        ));
    }
    let len = len as usize;
    // The frame header's content size must agree before anything is allocated.
    match zstd::zstd_safe::get_frame_content_size(p.0) {
        Ok(Some(n)) if n == len as u64 => {}
        Ok(Some(n)) => {
            return Err(format!(
                "compressed {inner:?} record: zstd frame holds {n} bytes, {len} announced"
            ));
        }
        Ok(None) | Err(_) => {
            return Err(format!(
                "corrupt zstd frame in compressed {inner:?} record: no valid frame header"
            ));
        }
    }
    let out = zstd::bulk::decompress(p.0, len)
        .map_err(|e| format!("corrupt zstd frame in compressed {inner:?} record: {e}"))?;
    if out.len() != len {
        return Err(format!(
            "compressed {inner:?} record decompressed to {} bytes, {len} announced",
            out.len()
        ));
    }
    Ok((inner, out))
}

/// Fills in the length and CRC of the record started at `start`.
fn finish_frame(buf: &mut [u8], start: usize) {
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
    frame_compressed(buf, RecordType::Series, |b| {
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

/// Appends a Samples record in the dense encoding (type 4), keeping the samples' order.
///
/// Consecutive samples of one series form a run: the run's ref as a delta to the previous run's,
/// its length and a value mode, then per sample the timestamp (first of a run: delta to the
/// previous sample's; later: delta of deltas) and the value. In decimal mode (values that are
/// exact decimals with at most 9 fraction digits, such as counters and byte gauges) a value is
/// the delta of `v * 10^k` to the previous value's; otherwise it is XORed with the previous
/// value and stored as a control byte and the non-zero bytes. See `tsdb/docs/format.md`.
///
/// Never compressed: on remote-write batches of the bench dataset zstd level 1 took 26% off the
/// record (4.75 -> 3.52 bytes/sample) for more CPU than the dense encoding itself (about 45 ns
/// per sample against 22), a tenth of the ingestion path's; snappy took 13% off for 8 ns. The
/// WAL is rewritten as chunks on a clean stop anyway (`benches/wal.rs` prints the sizes).
pub fn encode_samples(buf: &mut Vec<u8>, samples: &[RefSample]) {
    frame(buf, RecordType::SamplesDense, |b| dense_body(b, samples));
}

/// Appends a dense Samples record wrapped in a zstd [`RecordType::Compressed`] record when it
/// is at least [`COMPRESS_MIN_LEN`] bytes and that is smaller, as earlier versions wrote them:
/// for tests that old segments replay, and for size comparisons in benchmarks.
#[doc(hidden)]
pub fn encode_samples_compressed(buf: &mut Vec<u8>, samples: &[RefSample]) {
    frame_compressed(buf, RecordType::SamplesDense, |b| dense_body(b, samples));
}

/// The payload of a dense Samples record.
fn dense_body(b: &mut Vec<u8>, samples: &[RefSample]) {
    put_uvarint(b, samples.len() as u64);
    let mut prev = RefSample {
        series: 0,
        t: 0,
        v: 0.0,
    };
    let mut rest = samples;
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .position(|s| s.series != first.series)
            .unwrap_or(rest.len());
        let (run_samples, after) = rest.split_at(run);
        prev = dense_run(b, prev, run_samples);
        rest = after;
    }
}

/// Most bytes [`dense_run`] writes for a run's header: ref delta, length, mode.
const RUN_HEADER_MAX: usize = 10 + 10 + 1;
/// Most bytes [`dense_run`] writes per sample: timestamp varint, and a value varint (10) or
/// XORed value (at most 9).
const SAMPLE_MAX: usize = 10 + 10;

/// Appends one run (non-empty, one series) of a dense Samples record; `prev` is the sample before
/// it (zero at the start of a record). Returns the run's last sample.
///
/// The value mode is the fewest fraction digits at which every value is an exact decimal, found
/// in one pass in the common case: the first value's digits are tried, and a value that is not
/// exact at them raises them to its own and restarts the run (a value exact at k digits is
/// usually exact at more, but not always, so the raised mode is checked again on every value).
/// The output is written into a slice reserved for the worst case and cut to size.
fn dense_run(b: &mut Vec<u8>, prev: RefSample, run: &[RefSample]) -> RefSample {
    let (Some(&first), Some(&last)) = (run.first(), run.last()) else {
        return prev;
    };
    let start = b.len();
    b.resize(start + RUN_HEADER_MAX + SAMPLE_MAX * run.len(), 0);
    let out = &mut b[start..];
    let mut w = put_varint_at(out, 0, first.series.wrapping_sub(prev.series) as i64);
    w = put_uvarint_at(out, w, (run.len() - 1) as u64);
    let mode_at = w;
    let body = w + 1;
    let mut scale = min_decimal_scale(first.v, 0);
    'modes: loop {
        out[mode_at] = scale.map_or(MODE_XOR, |k| k as u8);
        w = body;
        let (mut prev_t, mut delta) = (prev.t, 0i64);
        match scale {
            Some(k) => {
                let p = POW10[k];
                let mut prev_n = scaled(prev.v, k);
                for (i, s) in run.iter().enumerate() {
                    let Some(n) = round_scaled(s.v * p)
                        .filter(|&n| (n as f64 / p).to_bits() == s.v.to_bits())
                    else {
                        scale = min_decimal_scale(s.v, k + 1);
                        continue 'modes;
                    };
                    let d = s.t.wrapping_sub(prev_t);
                    w = put_varint_at(out, w, if i == 0 { d } else { d.wrapping_sub(delta) });
                    delta = d;
                    prev_t = s.t;
                    w = put_varint_at(out, w, n.wrapping_sub(prev_n));
                    prev_n = n;
                }
            }
            None => {
                let mut prev_bits = prev.v.to_bits();
                for (i, s) in run.iter().enumerate() {
                    let d = s.t.wrapping_sub(prev_t);
                    w = put_varint_at(out, w, if i == 0 { d } else { d.wrapping_sub(delta) });
                    delta = d;
                    prev_t = s.t;
                    let bits = s.v.to_bits();
                    w = put_xor_at(out, w, bits ^ prev_bits);
                    prev_bits = bits;
                }
            }
        }
        break;
    }
    b.truncate(start + w);
    last
}

/// Writes `x` as an unsigned varint at `out[w..]`; returns the offset after it.
#[inline]
fn put_uvarint_at(out: &mut [u8], mut w: usize, mut x: u64) -> usize {
    while x >= 0x80 {
        out[w] = (x as u8) | 0x80;
        x >>= 7;
        w += 1;
    }
    out[w] = x as u8;
    w + 1
}

/// Writes `x` as a zigzag signed varint at `out[w..]`; returns the offset after it.
#[inline]
fn put_varint_at(out: &mut [u8], w: usize, x: i64) -> usize {
    put_uvarint_at(out, w, ((x << 1) ^ (x >> 63)) as u64)
}

/// Mode byte of a run whose values are XORed; `0..=9` is decimal mode with that many digits.
const MODE_XOR: u8 = 0x80;
/// `10^k` for the decimal modes; exact in `f64`.
const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest magnitude of a scaled value: integers up to this are exact in `f64`.
const MAX_SCALED: f64 = 9_007_199_254_740_992.0;

/// `v * 10^k` rounded to an integer (saturating; NaN is 0), the same on both sides.
fn scaled(v: f64, k: usize) -> i64 {
    (v * POW10[k]).round() as i64
}

/// `x` rounded to an integer (half away from zero, up to an ulp at halves: callers check the
/// result), if within [`MAX_SCALED`]. Not `f64::round`, a libm call without SSE4.1.
#[inline]
fn round_scaled(x: f64) -> Option<i64> {
    (x.abs() <= MAX_SCALED).then(|| (x + 0.5f64.copysign(x)) as i64)
}

/// Whether `v` comes back bit-exactly from its scaled integer at `k` digits.
fn is_decimal(v: f64, k: usize) -> bool {
    round_scaled(v * POW10[k]).is_some_and(|n| (n as f64 / POW10[k]).to_bits() == v.to_bits())
}

/// The fewest fraction digits, from `from` to 9, at which `v` is an exact decimal.
fn min_decimal_scale(v: f64, from: usize) -> Option<usize> {
    (from..POW10.len()).find(|&k| is_decimal(v, k))
}

/// Writes an XORed value at `out[w..]`: a control byte `lead << 4 | trail` (counts of zero bytes
/// at the high and low end; `0x80` for zero) and the `8 - lead - trail` bytes between, high byte
/// first. Returns the offset after it.
#[inline]
fn put_xor_at(out: &mut [u8], w: usize, x: u64) -> usize {
    if x == 0 {
        out[w] = 0x80;
        return w + 1;
    }
    let lead = (x.leading_zeros() / 8) as usize;
    let trail = (x.trailing_zeros() / 8) as usize;
    out[w] = (lead << 4 | trail) as u8;
    let n = 8 - lead - trail;
    out[w + 1..w + 1 + n].copy_from_slice(&x.to_be_bytes()[lead..8 - trail]);
    w + 1 + n
}

/// Appends a Samples record in the old plain encoding (type 2). Writers use [`encode_samples`];
/// this is kept to test that old segments replay and to compare sizes in benchmarks.
#[doc(hidden)]
pub fn encode_samples_plain(buf: &mut Vec<u8>, samples: &[RefSample]) {
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

    /// An XORed value written by `put_xor_at`.
    fn xor(&mut self) -> std::result::Result<u64, String> {
        let ctl = self.bytes(1, "value control byte")?[0];
        if ctl == 0x80 {
            return Ok(0);
        }
        let (lead, trail) = (usize::from(ctl >> 4), usize::from(ctl & 0x0f));
        if lead + trail >= 8 {
            return Err(format!("bad value control byte {ctl:#04x}"));
        }
        let mid = self.bytes(8 - lead - trail, "value")?;
        let mut bytes = [0u8; 8];
        bytes[lead..8 - trail].copy_from_slice(mid);
        Ok(u64::from_be_bytes(bytes))
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
        RecordType::SamplesDense => {
            // Every sample takes at least two bytes (timestamp, value).
            let n = p.count("sample count")?;
            let mut out = Vec::with_capacity(n);
            let (mut prev_ref, mut prev_t, mut prev_v) = (0u64, 0i64, 0f64);
            while out.len() < n {
                let series = prev_ref.wrapping_add(p.varint("ref delta")? as u64);
                prev_ref = series;
                let run = p.uvarint("run length")?;
                if run >= (n - out.len()) as u64 {
                    return Err(format!(
                        "run of {} samples exceeds the {} left of {n}",
                        run.saturating_add(1),
                        n - out.len()
                    ));
                }
                let mode = p.bytes(1, "value mode")?[0];
                let scale = match mode {
                    MODE_XOR => None,
                    k if usize::from(k) < POW10.len() => Some(usize::from(k)),
                    k => return Err(format!("bad value mode {k:#04x}")),
                };
                let mut delta = 0i64;
                for i in 0..=run {
                    let d = p.varint("timestamp delta")?;
                    delta = if i == 0 { d } else { delta.wrapping_add(d) };
                    prev_t = prev_t.wrapping_add(delta);
                    prev_v = match scale {
                        Some(k) => {
                            let x = scaled(prev_v, k).wrapping_add(p.varint("value delta")?);
                            x as f64 / POW10[k]
                        }
                        None => f64::from_bits(prev_v.to_bits() ^ p.xor()?),
                    };
                    out.push(RefSample {
                        series,
                        t: prev_t,
                        v: prev_v,
                    });
                }
            }
            Record::Samples(out)
        }
        RecordType::Truncation => Record::Truncation(p.varint("min time")?),
        RecordType::Chunks => {
            // Checked (counts, limits, trailing bytes) by `split_chunks`, then decoded.
            let chunks = split_chunks(payload)?;
            p.0 = &[];
            let total = chunks.iter().map(|c| c.count).sum::<u64>();
            let mut out: Vec<RefSample> = Vec::with_capacity(total as usize);
            let mut buf = Vec::new();
            for c in chunks {
                buf.clear();
                crate::chunk::decode_into(c.encoding, c.bytes, &mut buf)
                    .map_err(|e| e.to_string())?;
                out.extend(buf.iter().map(|s| RefSample {
                    series: c.series,
                    t: s.t,
                    v: s.v,
                }));
            }
            Record::Samples(out)
        }
        RecordType::Compressed => {
            let (inner, plain) = decompress(payload)?;
            return decode_payload(inner, &plain);
        }
    };
    if !p.0.is_empty() {
        return Err(format!("{} bytes after the {typ:?} payload", p.0.len()));
    }
    Ok(rec)
}

/// Decodes the record at the start of `b`: the record and the bytes after it, or why it is
/// torn or corrupt.
pub fn decode_record(b: &[u8]) -> std::result::Result<(Record, &[u8]), String> {
    let (typ, payload, after) = split_record(b)?;
    Ok((decode_payload(typ, payload)?, after))
}

/// Checks the frame and CRC of the record at the start of `b`: its type, payload and the bytes
/// after it.
fn split_record(b: &[u8]) -> std::result::Result<(RecordType, &[u8], &[u8]), String> {
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
    Ok((typ, payload, after))
}

/// One chunk of a [`RecordType::Chunks`] record as stored: not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalChunk<'a> {
    /// The series' ref.
    pub series: u64,
    /// How `bytes` is encoded.
    pub encoding: crate::chunk::Encoding,
    /// The encoded chunk.
    pub bytes: &'a [u8],
    /// Its sample count (read from the chunk's header).
    pub count: u64,
}

/// The chunks of a [`RecordType::Chunks`] payload, checked as [`decode_record`] checks them
/// except that their samples are not decoded.
fn split_chunks(payload: &[u8]) -> std::result::Result<Vec<WalChunk<'_>>, String> {
    let mut p = Payload(payload);
    let n = p.count("chunk count")?;
    let mut out = Vec::new();
    let mut samples = 0u64;
    for _ in 0..n {
        let series = p.uvarint("series ref")?;
        let enc = p.bytes(1, "chunk encoding")?[0];
        let encoding = crate::chunk::Encoding::try_from(enc).map_err(|e| e.to_string())?;
        let len = p.count("chunk length")?;
        let bytes = p.bytes(len, "chunk")?;
        let count = crate::chunk::count(encoding, bytes).map_err(|e| e.to_string())?;
        samples = samples.saturating_add(count);
        if samples > 2 * CHUNKS_RECORD_MAX_SAMPLES {
            return Err(format!(
                "chunks record holds more than {} samples",
                2 * CHUNKS_RECORD_MAX_SAMPLES
            ));
        }
        out.push(WalChunk {
            series,
            encoding,
            bytes,
            count,
        });
    }
    if !p.0.is_empty() {
        return Err(format!("{} bytes after the Chunks payload", p.0.len()));
    }
    Ok(out)
}

/// What [`read_records_chunked`] hands over.
#[derive(Debug)]
pub enum Replayed<'a> {
    /// A record other than [`RecordType::Chunks`], decoded.
    Record(Record),
    /// The chunks of one [`RecordType::Chunks`] record, as stored.
    Chunks(Vec<WalChunk<'a>>),
}

/// Like [`read_records`], for replay: the chunks of a [`RecordType::Chunks`] record come as
/// stored, without decoding their samples into a record (the head keeps them in their
/// encoding).
pub fn read_records_chunked<'a>(
    data: &'a [u8],
    mut f: impl FnMut(Replayed<'a>),
) -> Option<(u64, String)> {
    let mut rest = data;
    while !rest.is_empty() {
        let offset = (data.len() - rest.len()) as u64;
        let decoded = split_record(rest).and_then(|(typ, payload, after)| {
            f(if typ == RecordType::Chunks {
                Replayed::Chunks(split_chunks(payload)?)
            } else {
                Replayed::Record(decode_payload(typ, payload)?)
            });
            Ok(after)
        });
        match decoded {
            Ok(after) => rest = after,
            Err(reason) => return Some((offset, reason)),
        }
    }
    None
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

/// Builds [`RecordType::Chunks`] records: series' samples cut into chunks of
/// [`CHUNKS_RECORD_SAMPLES`], a record closed at [`CHUNKS_RECORD_BYTES`] or
/// [`CHUNKS_RECORD_MAX_SAMPLES`].
#[derive(Default)]
struct ChunksWriter {
    /// The open record's chunk list (without its count).
    body: Vec<u8>,
    chunks: u64,
    samples: u64,
    scratch: Vec<u8>,
}

impl ChunksWriter {
    /// Adds the samples (time order) of series `series`, closing records into `buf` as they fill.
    fn add(&mut self, buf: &mut Vec<u8>, series: u64, samples: &[pharos_model::Sample]) {
        for part in samples.chunks(CHUNKS_RECORD_SAMPLES) {
            self.scratch.clear();
            let enc = crate::chunk::encode_best(part, &mut self.scratch);
            put_uvarint(&mut self.body, series);
            self.body.push(enc as u8);
            put_uvarint(&mut self.body, self.scratch.len() as u64);
            self.body.extend_from_slice(&self.scratch);
            self.chunks += 1;
            self.samples += part.len() as u64;
            if self.body.len() >= CHUNKS_RECORD_BYTES || self.samples >= CHUNKS_RECORD_MAX_SAMPLES {
                self.finish(buf);
            }
        }
    }

    /// Closes the open record (if it holds any chunk) into `buf`.
    fn finish(&mut self, buf: &mut Vec<u8>) {
        if self.chunks == 0 {
            return;
        }
        let (n, body) = (self.chunks, &self.body);
        frame(buf, RecordType::Chunks, |b| {
            put_uvarint(b, n);
            b.extend_from_slice(body);
        });
        self.body.clear();
        self.chunks = 0;
        self.samples = 0;
    }
}

/// Encodes a whole head as one segment's records: Series records for `series` (up to 1000 each),
/// a Truncation record for `min_t`, then Chunks records with every series' samples, which
/// `samples_of(ref, out)` appends to `out` (time order). Returns the newest sample time.
pub fn encode_head(
    buf: &mut Vec<u8>,
    series: &[(u64, Labels)],
    min_t: i64,
    mut samples_of: impl FnMut(u64, &mut Vec<pharos_model::Sample>),
) -> i64 {
    for batch in series.chunks(1000) {
        encode_series(buf, batch.iter().map(|(r, l)| (*r, l)));
    }
    encode_truncation(buf, min_t);
    let mut w = ChunksWriter::default();
    let mut samples = Vec::new();
    let mut max_t = i64::MIN;
    for (r, _) in series {
        samples.clear();
        samples_of(*r, &mut samples);
        if let Some(last) = samples.last() {
            max_t = max_t.max(last.t);
        }
        w.add(buf, *r, &samples);
    }
    w.finish(buf);
    max_t
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
    /// An encoding buffer lent to committers (see [`Wal::take_buffer`]).
    scratch: Vec<u8>,
}

/// The largest encoding buffer [`Wal::give_back`] keeps.
const SCRATCH_KEPT: usize = 1 << 20;

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
            scratch: Vec::new(),
        })
    }

    /// An empty buffer to encode records into, reused from the previous commit (a commit runs
    /// under the WAL's lock): allocating tens of kilobytes a scrape showed in profiles.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf
    }

    /// Returns a buffer from [`Wal::take_buffer`] for the next commit (unless it grew large).
    pub fn give_back(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= SCRATCH_KEPT {
            self.scratch = buf;
        }
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

    /// Replaces every segment by one new segment written by [`encode_head`] (about half the
    /// bytes of the samples records it replaces, and no samples the head no longer holds), then
    /// writes a checkpoint covering the old segments and deletes them. For a database being
    /// closed: nothing may be logged after this. Crash-safe at every step: the new segment is
    /// written to a temporary file, fsynced and renamed before anything is deleted (a crash
    /// before the checkpoint replays the head twice, the second copy as duplicates).
    ///
    /// The new segment's samples are new to WAL readers such as the remote-write sender's
    /// watcher (and the old segments are gone): do not use this while one still reads the WAL.
    pub fn rewrite_compact(
        &mut self,
        series: &[(u64, Labels)],
        min_t: i64,
        samples_of: impl FnMut(u64, &mut Vec<pharos_model::Sample>),
    ) -> Result<()> {
        self.sync()?;
        let last = self.current;
        let next = last + 1;
        let mut buf = Vec::new();
        let max_t = encode_head(&mut buf, series, min_t, samples_of);
        let path = self.segment_path(next);
        let tmp = self.dir.join(format!(
            "{}{}",
            files::segment_name(next),
            files::TMP_SUFFIX
        ));
        let write = || -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            OpenOptions::new().append(true).open(&path)
        };
        let file =
            write().map_err(|e| Error::io(format!("writing WAL segment {}", tmp.display()), e))?;
        sync_dir(&self.dir)?;
        write_checkpoint(&self.dir, last, &[], min_t)?;
        self.file = file;
        self.current = next;
        self.segments.insert(
            next,
            SegmentInfo {
                bytes: buf.len() as u64,
                max_t,
            },
        );
        for p in self.drop_segments(last) {
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot delete WAL segment");
            }
        }
        for p in list(&self.dir)?.obsolete {
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot delete old checkpoint");
            }
        }
        sync_dir(&self.dir)
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

    /// A segment written by the old encoder (Series, plain Samples, Truncation), byte for byte.
    const OLD_SEGMENT: &[u8] = &[
        21, 0, 0, 0, 0xac, 0xef, 0x28, 0x67, 1, 1, 7, 2, 8, 95, 95, 110, 97, 109, 101, 95, 95, 2,
        117, 112, 3, 106, 111, 98, 1, 97,
    ];

    #[test]
    fn old_plain_samples_still_decode() {
        let samples = vec![
            RefSample {
                series: 7,
                t: 1000,
                v: 1.5,
            },
            RefSample {
                series: 3,
                t: 995,
                v: STALE_NAN,
            },
        ];
        let mut buf = OLD_SEGMENT.to_vec();
        encode_samples_plain(&mut buf, &samples);
        // The plain layout: type 2, count, base ref, base t, then (ref delta, t delta, 8 LE bytes).
        let mut want_tail = vec![2u8, 2, 7, 0xd0, 0x0f, 0, 0];
        want_tail.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        want_tail.extend_from_slice(&[7, 9]);
        want_tail.extend_from_slice(&STALE_NAN.to_bits().to_le_bytes());
        assert!(buf.ends_with(&want_tail), "{buf:?}");
        let mut got = Vec::new();
        assert_eq!(read_records(&buf, |r| got.push(r)), None);
        let series = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        assert_eq!(got[0], Record::Series(vec![(7, series)]));
        let Record::Samples(s) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].series, s[0].t, s[0].v), (7, 1000, 1.5));
        assert_eq!((s[1].series, s[1].t), (3, 995));
        assert_eq!(s[1].v.to_bits(), STALE_NAN.to_bits());
    }

    #[test]
    fn db_replays_an_old_segment_then_writes_dense_records() {
        use pharos_model::storage::Appendable;
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(files::WAL_DIR)).unwrap();
        let mut seg = OLD_SEGMENT.to_vec();
        let old: Vec<_> = (0..40)
            .map(|i| RefSample {
                series: 7,
                t: 1_000 + i * 15_000,
                v: if i == 39 { STALE_NAN } else { i as f64 * 0.25 },
            })
            .collect();
        encode_samples_plain(&mut seg, &old);
        let seg_path = dir.path().join(files::WAL_DIR).join(files::segment_name(0));
        fs::write(&seg_path, &seg).unwrap();
        let opts = || crate::Options {
            retention: std::time::Duration::ZERO,
            ..crate::Options::default()
        };
        let read = db_contents;
        let mut want: Vec<(i64, u64)> = old.iter().map(|s| (s.t, s.v.to_bits())).collect();
        {
            let db = crate::Db::open(dir.path(), opts()).unwrap();
            assert_eq!(db.stats().wal_corruptions_total, 0);
            assert_eq!(read(&db), [(r#"up{job="a"}"#.to_string(), want.clone())]);
            let labels = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
            let mut app = db.appender();
            app.append(None, &labels, 1_000_000, 12.5).unwrap();
            app.commit().unwrap();
            want.push((1_000_000, 12.5f64.to_bits()));
        }
        // The new segment holds a dense record; both segments replay.
        let mut types = Vec::new();
        for e in fs::read_dir(dir.path().join(files::WAL_DIR)).unwrap() {
            let data = fs::read(e.unwrap().path()).unwrap();
            let mut rest = &data[..];
            while let Some((_, after)) = (!rest.is_empty()).then(|| decode_record(rest).unwrap()) {
                types.push(rest[8]);
                rest = after;
            }
        }
        assert!(types.contains(&(RecordType::Samples as u8)), "{types:?}");
        assert!(
            types.contains(&(RecordType::SamplesDense as u8)),
            "{types:?}"
        );
        let db = crate::Db::open(dir.path(), opts()).unwrap();
        assert_eq!(read(&db), [(r#"up{job="a"}"#.to_string(), want)]);
    }

    #[track_caller]
    fn check_dense(samples: &[RefSample], max_bytes: usize) {
        let mut buf = Vec::new();
        encode_samples(&mut buf, samples);
        assert_eq!(buf[8], RecordType::SamplesDense as u8);
        assert!(buf.len() <= max_bytes, "{} > {max_bytes} bytes", buf.len());
        // The same samples as earlier versions wrote them (zstd when large) read the same.
        let mut old = Vec::new();
        encode_samples_compressed(&mut old, samples);
        for buf in [buf, old] {
            let (rec, rest) = decode_record(&buf).unwrap();
            assert!(rest.is_empty());
            let Record::Samples(got) = rec else {
                panic!("{rec:?}")
            };
            let bits = |s: &[RefSample]| -> Vec<(u64, i64, u64)> {
                s.iter().map(|s| (s.series, s.t, s.v.to_bits())).collect()
            };
            assert_eq!(bits(&got), bits(samples));
        }
    }

    #[test]
    fn dense_samples_round_trip() {
        let s = |series, t, v| RefSample { series, t, v };
        // Series-major (remote write): 3 series x 40 samples at 15 s, counter/gauge/constant.
        let mut major = Vec::new();
        for r in [5u64, 6, 1000] {
            for i in 0..40i64 {
                let v = match r {
                    5 => 1e6 + i as f64 * 12.5,
                    6 => ((i * 37) % 11) as f64 / 3.0,
                    _ => 1.0,
                };
                major.push(s(r, 1_700_000_000_000 + i * 15_000, v));
            }
        }
        // Header, count and run headers, then at most 2 timestamp bytes; values vary.
        check_dense(&major, 9 + 3 + 3 * 8 + 120 * 2 + 40 * 9 + 40 * 4 + 40);
        // Time-major (scrapes): runs of one, same timestamp.
        let minor: Vec<_> = (0..100u64)
            .map(|r| s(r * 2, 1_700_000_000_000, r as f64))
            .collect();
        check_dense(&minor, 9 + 1 + 6 + 100 * (1 + 1 + 1 + 1 + 8));
        // Edge values and refs, going backwards, NaNs, empty.
        check_dense(
            &[
                s(u64::MAX, i64::MIN, f64::NEG_INFINITY),
                s(u64::MAX, i64::MAX, STALE_NAN),
                s(0, -5, -0.0),
                s(0, i64::MIN, f64::NAN),
                s(0, 0, f64::MIN_POSITIVE),
                s(u64::MAX, 0, 0.0),
            ],
            200,
        );
        check_dense(&[], 10);
        // Decimal runs and runs that fall back to XOR: -0.0, NaN, huge, tiny, 2^53 boundaries.
        for run in [
            vec![0.1, 0.2, 0.30000000000000004, 12345.67, -8.5, 0.0],
            vec![1.0, -0.0, 2.0],
            vec![1.5, f64::NAN, 2.5],
            vec![9_007_199_254_740_992.0, -9_007_199_254_740_992.0, 1.0],
            vec![9_007_199_254_740_994.0, 1e300, f64::INFINITY],
            vec![1e-9, 123_456_789.123_456_79, 5e-324],
            vec![4096.0 * 123_457.0, 4096.0 * 123_400.0],
        ] {
            let samples: Vec<_> = run
                .iter()
                .enumerate()
                .map(|(i, &v)| s(3, i as i64 * 15_000, v))
                .collect();
            check_dense(&samples, 9 + 4 + samples.len() * 12);
        }
        // Pseudo-random values of every kind, in runs of random lengths.
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut mixed = Vec::new();
        for i in 0..2000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match x % 4 {
                0 => f64::from_bits(x),
                1 => (x % 100_000) as f64 / 100.0,
                2 => (x >> 11) as f64,
                _ => -((x % 1000) as f64) * 1e-6,
            };
            mixed.push(s(x % 3, i * 1000 - (x % 7) as i64, v));
        }
        check_dense(&mixed, 9 + 2000 * 21);
    }

    #[test]
    fn dense_runs_take_the_fewest_exact_digits() {
        #[track_caller]
        fn check(values: &[f64], want_mode: u8) {
            let samples: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, &v)| RefSample {
                    series: 1,
                    t: i as i64 * 15_000,
                    v,
                })
                .collect();
            let mut buf = Vec::new();
            encode_samples(&mut buf, &samples);
            // Header, sample count, ref delta, run length, then the mode byte.
            assert_eq!(buf[HEADER_LEN + 3], want_mode, "{values:?}");
            check_dense(&samples, 9 + 4 + samples.len() * 20);
        }
        check(&[1.0, 2.0, 3.0], 0);
        check(&[1.5, 1.25, 3.0], 2);
        check(&[3.0, 1.5, 1.25, 1.125], 3);
        check(&[0.1, 0.25, 1e-9], 9);
        // 0.30000000000000004 needs 17 digits.
        check(&[2.5, 0.1 + 0.2], MODE_XOR);
        check(&[1.0, f64::NAN], MODE_XOR);
        check(&[STALE_NAN, 1.0], MODE_XOR);
        check(&[1.0, 1e-10], MODE_XOR);
    }

    #[test]
    fn dense_damage_is_reported() {
        let frame_payload = |payload: &[u8]| {
            let mut b = Vec::new();
            frame(&mut b, RecordType::SamplesDense, |p| {
                p.extend_from_slice(payload)
            });
            decode_record(&b).map(|(r, _)| r)
        };
        for (payload, want) in [
            (&[3u8, 0, 5, 0x80, 0, 0x80][..], "exceeds the 3 left"),
            (&[1, 0, 0, 0x80, 0, 0x44], "bad value control byte"),
            (&[1, 0, 0, 0x80, 0, 0x06, 1], "ends inside value"),
            (&[1, 0, 0, 0x0a, 0, 0], "bad value mode 0x0a"),
            (&[1, 0, 0, 0x02, 0, 0x80], "bad varint for value delta"),
            (&[2, 0, 0, 0x80, 0, 0x80, 0x80], "bad varint for ref delta"),
            (&[1, 0, 0, 0x80, 0, 0x80, 0], "1 bytes after"),
            (&[9, 0], "exceeds the payload"),
        ] {
            let err = frame_payload(payload).unwrap_err();
            assert!(err.contains(want), "{payload:?}: {err}");
        }
    }

    /// A commit of `n` series-major samples of 3 series with label-heavy Series, large enough to
    /// be compressed.
    fn big_commit(n: i64) -> (Vec<(u64, Labels)>, Vec<RefSample>) {
        let series: Vec<_> = (0..n as u64)
            .map(|r| {
                let inst = format!("node-{r:04}.example.org:9100");
                let labels = Labels::from_pairs(&[
                    ("__name__", "node_cpu_seconds_total"),
                    ("cpu", "0"),
                    ("instance", &inst),
                    ("job", "node"),
                    ("mode", "idle"),
                ]);
                (r + 1, labels)
            })
            .collect();
        let samples = (0..n)
            .flat_map(|r| {
                (0..40i64).map(move |i| RefSample {
                    series: r as u64 + 1,
                    t: 1_700_000_000_000 + i * 15_000 + r,
                    v: if i == 7 {
                        STALE_NAN
                    } else {
                        (i * i + r) as f64 * 0.25
                    },
                })
            })
            .collect();
        (series, samples)
    }

    #[test]
    fn large_records_are_compressed_and_round_trip() {
        let (series, samples) = big_commit(50);
        let mut buf = Vec::new();
        encode_series(&mut buf, series.iter().map(|(r, l)| (*r, l)));
        let series_end = buf.len();
        assert_eq!(buf[8], RecordType::Compressed as u8);
        assert_eq!(buf[HEADER_LEN], RecordType::Series as u8);
        // Samples are written dense, never compressed; zstd ones (older versions) are read.
        encode_samples(&mut buf, &samples);
        assert_eq!(buf[series_end + 8], RecordType::SamplesDense as u8);
        let old_start = buf.len();
        encode_samples_compressed(&mut buf, &samples);
        assert_eq!(buf[old_start + 8], RecordType::Compressed as u8);
        assert_eq!(buf[old_start + HEADER_LEN], RecordType::SamplesDense as u8);
        let mut got = Vec::new();
        assert_eq!(read_records(&buf, |r| got.push(r)), None);
        let want = vec![
            Record::Series(series),
            Record::Samples(samples.clone()),
            Record::Samples(samples),
        ];
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
        for r in &got[1..] {
            let Record::Samples(s) = r else { panic!() };
            assert_eq!(s[7].v.to_bits(), STALE_NAN.to_bits());
        }
        // Small records stay plain.
        let (series, samples) = big_commit(1);
        let mut small = Vec::new();
        encode_series(&mut small, series.iter().map(|(r, l)| (*r, l)));
        assert_eq!(small[8], RecordType::Series as u8);
        for encode in [encode_samples, encode_samples_compressed] {
            let mut small = Vec::new();
            encode(&mut small, &samples[..3]);
            assert_eq!(small[8], RecordType::SamplesDense as u8);
        }
    }

    /// Frames a Compressed record whose payload is `inner`, `len` and `frame`.
    fn compressed_record(inner: u8, len: u64, zframe: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        frame(&mut b, RecordType::Compressed, |p| {
            p.push(inner);
            put_uvarint(p, len);
            p.extend_from_slice(zframe);
        });
        b
    }

    #[test]
    fn compressed_damage_is_reported() {
        let (_, samples) = big_commit(20);
        let mut rec = Vec::new();
        encode_samples_compressed(&mut rec, &samples);
        assert_eq!(rec[8], RecordType::Compressed as u8);
        // Recover the zstd frame and the plain length from the written record.
        let mut p = Payload(&rec[HEADER_LEN + 1..]);
        let len = p.uvarint("len").unwrap();
        let z = p.0.to_vec();
        let dense_type = RecordType::SamplesDense as u8;
        assert!(decode_record(&compressed_record(dense_type, len, &z)).is_ok());
        let mut flipped = z.clone();
        // The magic number: the frame is not zstd. (A flipped literal byte may still decode;
        // the record's CRC is what catches that.)
        flipped[1] ^= 0x55;
        let mut truncated = z.clone();
        truncated.truncate(z.len() - 3);
        let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap();
        for (record, want) in [
            (
                compressed_record(dense_type, len, &flipped),
                "corrupt zstd frame",
            ),
            (
                compressed_record(dense_type, len, &truncated),
                "corrupt zstd frame",
            ),
            (compressed_record(dense_type, len + 1, &z), "announced"),
            (compressed_record(dense_type, len - 1, &z), "announced"),
            (compressed_record(dense_type, 1000, &bomb), "announced"),
            (
                compressed_record(dense_type, 1 << 40, &bomb),
                "exceeds the limit",
            ),
            (
                compressed_record(dense_type, len, b"not zstd"),
                "corrupt zstd",
            ),
            (compressed_record(3, len, &z), "wraps a Truncation"),
            (compressed_record(5, len, &z), "wraps a Compressed"),
            (compressed_record(9, len, &z), "unknown WAL record type 9"),
            (compressed_record(dense_type, len, &[]), "corrupt zstd"),
        ] {
            let mut n = 0;
            let (offset, reason) =
                read_records(&record, |_| n += 1).unwrap_or_else(|| panic!("{want}: decoded"));
            assert_eq!((n, offset), (0, 0), "{want}");
            assert!(reason.contains(want), "{want}: {reason}");
        }
        // A Series frame announced as SamplesDense decodes, but as garbage: reported, no panic.
        let (series, _) = big_commit(20);
        let mut srec = Vec::new();
        encode_series(&mut srec, series.iter().map(|(r, l)| (*r, l)));
        let mut p = Payload(&srec[HEADER_LEN + 1..]);
        let slen = p.uvarint("len").unwrap();
        let forged = compressed_record(dense_type, slen, p.0);
        let r = decode_record(&forged);
        assert!(r.is_err(), "{r:?}");
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

    /// Every series' samples as `(labels, [(t, bits)])`, in label order.
    fn db_contents(db: &crate::Db) -> Vec<(String, Vec<(i64, u64)>)> {
        use pharos_model::storage::{Queryable, SelectHints, collect_samples};
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        q.select(&[], &SelectHints::default())
            .unwrap()
            .map(|mut s| {
                let v = collect_samples(s.samples.as_mut())
                    .into_iter()
                    .map(|s| (s.t, s.v.to_bits()))
                    .collect();
                (s.labels.to_string(), v)
            })
            .collect()
    }

    fn wal_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join(files::WAL_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn close_compacting_wal_keeps_every_sample_in_fewer_bytes() {
        use pharos_model::storage::Appendable;
        let dir = tempfile::tempdir().unwrap();
        let opts = || crate::Options {
            retention: std::time::Duration::ZERO,
            wal_segment_size: 64 << 10,
            ..crate::Options::default()
        };
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let series: Vec<Labels> = (0..30)
            .map(|i| Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]))
            .collect();
        let mut counters = [0f64; 30];
        {
            let db = crate::Db::open(dir.path(), opts()).unwrap();
            // Scrape-like commits: one sample per series each, 600 rounds (several segments).
            for round in 0..600i64 {
                let mut app = db.appender();
                for (i, l) in series.iter().enumerate() {
                    counters[i] += (next() % 5000) as f64 / 100.0;
                    let v = match i % 5 {
                        0 => counters[i],
                        1 => f64::from_bits(next()),
                        2 if round == 300 => STALE_NAN,
                        2 => 1.0,
                        3 => (next() % 1000) as f64 * 4096.0,
                        _ => -(round as f64) / 3.0,
                    };
                    app.append(None, l, 1_000_000 + round * 15_000 + i as i64, v)
                        .unwrap();
                }
                app.commit().unwrap();
            }
            assert!(
                wal_files(dir.path()).len() > 2,
                "{:?}",
                wal_files(dir.path())
            );
            let before: u64 = db.stats().wal_bytes;
            let want = db_contents(&db);
            db.close_compacting_wal().unwrap();
            // One checkpoint covering the old segments, and the compact segment.
            let names = wal_files(dir.path());
            assert_eq!(names.len(), 2, "{names:?}");
            assert!(names[0].starts_with("0"), "{names:?}");
            assert!(names[1].starts_with("checkpoint."), "{names:?}");
            let after = db.stats().wal_bytes;
            // (A fifth of the series are random 64-bit patterns, 8 bytes a sample either way.)
            assert!(after * 3 < before * 2, "{after} vs {before} bytes");
            // Queries still work on the closed database.
            assert_eq!(db_contents(&db), want);
            drop(db);
            let db = crate::Db::open(dir.path(), opts()).unwrap();
            assert_eq!(db.stats().wal_corruptions_total, 0);
            assert_eq!(db_contents(&db), want);
            // Appends go on after the compacted head; closing twice compacts twice.
            let mut app = db.appender();
            app.append(None, &series[0], 1_000_000 + 600 * 15_000, 7.0)
                .unwrap();
            app.commit().unwrap();
            db.close_compacting_wal().unwrap();
        }
        let db = crate::Db::open(dir.path(), opts()).unwrap();
        let got = db_contents(&db);
        assert_eq!(got.len(), 30);
        let first = got.iter().find(|(l, _)| l == r#"m{i="0"}"#).unwrap();
        assert_eq!(first.1.len(), 601);
        assert_eq!(first.1[600], (1_000_000 + 600 * 15_000, 7f64.to_bits()));
        drop(db);
        // A plain close after reopening leaves the compact segment to be replayed as usual.
        let db = crate::Db::open(dir.path(), opts()).unwrap();
        assert_eq!(db_contents(&db), got);
    }

    #[test]
    fn compact_segment_left_by_a_crash_before_the_checkpoint_replays_once() {
        use pharos_model::storage::Appendable;
        let dir = tempfile::tempdir().unwrap();
        let opts = || crate::Options {
            retention: std::time::Duration::ZERO,
            ..crate::Options::default()
        };
        let l = Labels::from_pairs(&[("__name__", "up")]);
        let db = crate::Db::open(dir.path(), opts()).unwrap();
        for t in 0..100 {
            let mut app = db.appender();
            app.append(None, &l, t * 1000, t as f64).unwrap();
            app.commit().unwrap();
        }
        let want = db_contents(&db);
        // What rewrite_compact writes, but the old segment and no checkpoint still there.
        let series = vec![(1u64, l.clone())];
        let samples: Vec<pharos_model::Sample> = (0..100)
            .map(|t| pharos_model::Sample {
                t: t * 1000,
                v: t as f64,
            })
            .collect();
        let mut buf = Vec::new();
        let max_t = encode_head(&mut buf, &series, i64::MIN, |_, out| {
            out.extend_from_slice(&samples)
        });
        assert_eq!(max_t, 99_000);
        db.close().unwrap();
        drop(db);
        fs::write(
            dir.path().join(files::WAL_DIR).join(files::segment_name(5)),
            &buf,
        )
        .unwrap();
        let db = crate::Db::open(dir.path(), opts()).unwrap();
        assert_eq!(db_contents(&db), want);
        assert_eq!(db.stats().wal_corruptions_total, 0);
    }

    #[test]
    fn chunks_record_damage_is_reported() {
        let series = vec![(3u64, Labels::from_pairs(&[("__name__", "x")]))];
        let samples: Vec<pharos_model::Sample> = (0..3000)
            .map(|t| pharos_model::Sample {
                t: t * 15_000,
                v: (t % 7) as f64,
            })
            .collect();
        let mut buf = Vec::new();
        encode_head(&mut buf, &series, 0, |_, out| {
            out.extend_from_slice(&samples)
        });
        let mut got = Vec::new();
        assert_eq!(read_records(&buf, |r| got.push(r)), None);
        let decoded: Vec<RefSample> = got
            .into_iter()
            .filter_map(|r| match r {
                Record::Samples(s) => Some(s),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(decoded.len(), 3000);
        assert!(
            decoded
                .iter()
                .zip(&samples)
                .all(|(d, s)| d.series == 3 && d.t == s.t && d.v == s.v)
        );
        // A chunks record whose payload is bad (CRC recomputed): an error, never a panic.
        #[track_caller]
        fn check(payload: &[u8], want: &str) {
            let mut b = Vec::new();
            frame(&mut b, RecordType::Chunks, |p| p.extend_from_slice(payload));
            let err = decode_record(&b).unwrap_err();
            assert!(err.contains(want), "{err:?} does not contain {want:?}");
        }
        check(&[], "chunk count");
        check(&[1, 3, 9, 1, 0], "unknown chunk encoding byte 9");
        check(&[1, 3, 2, 5, 0], "chunk");
        check(&[1, 3, 2, 2, 0, 0], "packed chunk");
        // A constant packed chunk claiming u16::MAX samples, many times: refused before decoding.
        let mut c = Vec::new();
        crate::chunk::encode_packed(&vec![pharos_model::Sample { t: 0, v: 1.0 }; 65535], &mut c);
        let mut p = Vec::new();
        put_uvarint(&mut p, 3);
        for _ in 0..3 {
            p.push(3);
            p.push(crate::chunk::Encoding::Packed as u8);
            put_uvarint(&mut p, c.len() as u64);
            p.extend_from_slice(&c);
        }
        check(&p, "more than 131072 samples");
    }
}
