//! The remote-write 1.0 wire format: protobuf `prometheus.WriteRequest` compressed with the snappy
//! *block* format (not the framed stream format).
//!
//! The message structs are written by hand with `prost` derives, mirroring the field numbers of
//! Prometheus' `prompb/remote.proto` and `prompb/types.proto`. Fields Pharos does not use
//! (exemplars, native histograms, metric metadata) are left out: protobuf decoding skips unknown
//! fields, so requests carrying them still decode.

use prost::Message as _;

use crate::{Error, Result};

/// Largest uncompressed request accepted by [`decode`]: 64 MiB (Prometheus' senders stay far below
/// with the default 500 samples per request).
pub const MAX_DECODED_LEN: usize = 64 << 20;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels (sorted by name) and samples (by time).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Label pairs, including `__name__`.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Decompresses a request body (snappy block) into `scratch`, reused across calls, and returns
/// the protobuf bytes: read them in place with [`RequestView`].
pub fn decompress<'s>(body: &[u8], scratch: &'s mut Vec<u8>) -> Result<&'s [u8]> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| Error::Decode(format!("snappy header: {e}")))?;
    if len > MAX_DECODED_LEN {
        return Err(Error::Decode(format!(
            "decompressed size {len} bytes exceeds the limit of {MAX_DECODED_LEN} bytes"
        )));
    }
    // The decoder overwrites every byte: only newly grown bytes need initializing.
    if scratch.len() < len {
        scratch.resize(len, 0);
    }
    let n = snap::raw::Decoder::new()
        .decompress(body, scratch)
        .map_err(|e| Error::Decode(format!("snappy: {e}")))?;
    Ok(scratch.get(..n).unwrap_or_default())
}

/// Decodes a request body: snappy block, then protobuf.
pub fn decode(body: &[u8]) -> Result<WriteRequest> {
    decode_with(body, &mut Vec::new())
}

/// [`decode`] decompressing into `scratch` (cleared first), so that a caller handling many
/// requests reuses one buffer instead of allocating (and freeing) one per request.
pub fn decode_with(body: &[u8], scratch: &mut Vec<u8>) -> Result<WriteRequest> {
    let raw = decompress(body, scratch)?;
    WriteRequest::decode(raw).map_err(|e| Error::Decode(format!("protobuf: {e}")))
}

/// Encodes a request body: protobuf, then snappy block. `scratch` is reused for the protobuf bytes.
pub fn encode(req: &WriteRequest, scratch: &mut Vec<u8>) -> Result<Vec<u8>> {
    scratch.clear();
    req.encode(scratch)
        .map_err(|e| Error::Decode(format!("protobuf encode: {e}")))?;
    snap::raw::Encoder::new()
        .compress_vec(scratch)
        .map_err(|e| Error::Decode(format!("snappy encode: {e}")))
}

// --- reading in place ------------------------------------------------------------------------

/// A field of a protobuf message as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: a message, string or bytes.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32,
}

/// Reads the fields of one message from its bytes, one at a time.
#[derive(Debug, Clone)]
struct Fields<'a> {
    buf: &'a [u8],
    /// Message name for errors.
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    #[cold]
    fn err(&self, msg: &str) -> Error {
        Error::Decode(format!(
            "protobuf: {}: {msg} ({} bytes before the end of the message)",
            self.what,
            self.buf.len()
        ))
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        if let [b, rest @ ..] = self.buf
            && *b < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(*b));
        }
        let mut v = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                self.buf = self.buf.get(i + 1..).unwrap_or_default();
                return Ok(v);
            }
        }
        Err(self.err("invalid varint"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match (self.buf.get(..n), self.buf.get(n..)) {
            (Some(head), Some(tail)) => {
                self.buf = tail;
                Ok(head)
            }
            _ => Err(self.err(&format!("field of {n} bytes is truncated"))),
        }
    }

    /// The next field number and value; `None` at the end of the message.
    #[inline]
    fn next_field(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let num = key >> 3;
        if num == 0 {
            return Err(self.err("field number 0"));
        }
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Field::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| self.err("length overflows"))?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            wt => return Err(self.err(&format!("unsupported wire type {wt}"))),
        };
        Ok(Some((num, f)))
    }

    /// The next length-delimited field numbered `want`, skipping others; a field `want` of
    /// another wire type is an error.
    fn next_bytes(&mut self, want: u64) -> Result<Option<&'a [u8]>> {
        while let Some((num, f)) = self.next_field()? {
            if num == want {
                return match f {
                    Field::Bytes(b) => Ok(Some(b)),
                    _ => Err(self.err(&format!("field {want} has the wrong wire type"))),
                };
            }
        }
        Ok(None)
    }
}

/// A `WriteRequest` read in place from its protobuf bytes (see [`decompress`]): no allocation
/// per series, label or sample. Malformed bytes are reported by the iterators, when reached.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    raw: &'a [u8],
}

impl<'a> RequestView<'a> {
    /// A view of the protobuf bytes of a `WriteRequest`.
    pub fn new(raw: &'a [u8]) -> Self {
        Self { raw }
    }

    /// The `timeseries` entries in order (other fields skipped).
    pub fn series(&self) -> SeriesIter<'a> {
        SeriesIter {
            fields: Fields::new(self.raw, "WriteRequest"),
        }
    }
}

/// Iterator over the `timeseries` of a [`RequestView`]; stops after the first error.
#[derive(Debug, Clone)]
pub struct SeriesIter<'a> {
    fields: Fields<'a>,
}

impl<'a> Iterator for SeriesIter<'a> {
    type Item = Result<SeriesView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.fields.next_bytes(1) {
            Ok(Some(raw)) => Some(Ok(SeriesView { raw })),
            Ok(None) => None,
            Err(e) => {
                self.fields.buf = &[];
                Some(Err(e))
            }
        }
    }
}

/// One `TimeSeries` read in place.
#[derive(Debug, Clone, Copy)]
pub struct SeriesView<'a> {
    raw: &'a [u8],
}

impl<'a> SeriesView<'a> {
    /// The label pairs as raw `(name, value)` bytes in wire order (not checked for UTF-8).
    pub fn labels(&self) -> LabelIter<'a> {
        LabelIter {
            fields: Fields::new(self.raw, "TimeSeries"),
        }
    }

    /// The samples in wire order.
    pub fn samples(&self) -> SampleIter<'a> {
        SampleIter {
            fields: Fields::new(self.raw, "TimeSeries"),
        }
    }

    /// Reads the samples into `out` (cleared first) in one pass and returns the bytes of the
    /// series' labels when they are one run of fields at the start of the message (as every
    /// encoder writes them): equal bytes then mean equal labels, a key for caching what was
    /// derived from them. `None` when labels also follow other fields.
    pub fn read_samples(&self, out: &mut Vec<Sample>) -> Result<Option<&'a [u8]>> {
        out.clear();
        let mut f = Fields::new(self.raw, "TimeSeries");
        // 0x0a: field 1 (labels), wire type 2, as a one-byte key.
        while f.buf.first() == Some(&0x0a) {
            f.next_field()?;
        }
        let run = self
            .raw
            .get(..self.raw.len() - f.buf.len())
            .unwrap_or_default();
        let mut one_run = true;
        loop {
            // The common shape first: a sample field (0x12) shorter than 128 bytes.
            if let [0x12, len, rest @ ..] = f.buf
                && *len < 0x80
                && let (Some(b), Some(tail)) =
                    (rest.get(..*len as usize), rest.get(*len as usize..))
            {
                out.push(SampleIter::sample(b)?);
                f.buf = tail;
                continue;
            }
            let Some((num, v)) = f.next_field()? else {
                break;
            };
            match (num, v) {
                (2, Field::Bytes(b)) => out.push(SampleIter::sample(b)?),
                (2, _) => return Err(f.err("field 2 has the wrong wire type")),
                (1, _) => one_run = false,
                _ => {}
            }
        }
        Ok(one_run.then_some(run))
    }
}

/// Iterator over the labels of a [`SeriesView`]; stops after the first error.
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    fields: Fields<'a>,
}

impl<'a> LabelIter<'a> {
    fn label(raw: &'a [u8]) -> Result<(&'a [u8], &'a [u8])> {
        let mut f = Fields::new(raw, "Label");
        let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
        while let Some((num, v)) = f.next_field()? {
            match (num, v) {
                (1, Field::Bytes(b)) => name = b,
                (2, Field::Bytes(b)) => value = b,
                (1 | 2, _) => return Err(f.err(&format!("field {num} has the wrong wire type"))),
                _ => {}
            }
        }
        Ok((name, value))
    }
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self
            .fields
            .next_bytes(1)
            .and_then(|b| b.map(Self::label).transpose());
        if r.is_err() {
            self.fields.buf = &[];
        }
        r.transpose()
    }
}

/// Iterator over the samples of a [`SeriesView`]; stops after the first error.
#[derive(Debug, Clone)]
pub struct SampleIter<'a> {
    fields: Fields<'a>,
}

impl SampleIter<'_> {
    #[inline]
    fn sample(raw: &[u8]) -> Result<Sample> {
        // The shape every encoder emits: value (tag 0x09, 8 bytes), then timestamp (tag 0x10,
        // a varint ending the message).
        if raw.first() == Some(&0x09)
            && raw.get(9) == Some(&0x10)
            && let (Some(v), Some(ts)) = (raw.get(1..9), raw.get(10..))
            && let Ok(v) = <[u8; 8]>::try_from(v)
        {
            let mut f = Fields::new(ts, "Sample");
            if let Ok(t) = f.varint()
                && f.buf.is_empty()
            {
                return Ok(Sample {
                    value: f64::from_le_bytes(v),
                    timestamp: t as i64,
                });
            }
        }
        let mut f = Fields::new(raw, "Sample");
        let mut s = Sample {
            value: 0.0,
            timestamp: 0,
        };
        while let Some((num, v)) = f.next_field()? {
            match (num, v) {
                (1, Field::Fixed64(b)) => s.value = f64::from_bits(b),
                // int64: two's complement in a 10-byte varint, truncated as protobuf does.
                (2, Field::Varint(t)) => s.timestamp = t as i64,
                (1 | 2, _) => return Err(f.err(&format!("field {num} has the wrong wire type"))),
                _ => {}
            }
        }
        Ok(s)
    }
}

impl Iterator for SampleIter<'_> {
    type Item = Result<Sample>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self
            .fields
            .next_bytes(2)
            .and_then(|b| b.map(Self::sample).transpose());
        if r.is_err() {
            self.fields.buf = &[];
        }
        r.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    Label {
                        name: "job".into(),
                        value: "ü,=}".into(),
                    },
                ],
                samples: vec![
                    Sample {
                        value: 1.5,
                        timestamp: -1,
                    },
                    Sample {
                        value: f64::INFINITY,
                        timestamp: 1_700_000_000_000,
                    },
                ],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let mut scratch = vec![1, 2, 3];
        let body = encode(&req(), &mut scratch).unwrap();
        assert_eq!(decode(&body).unwrap(), req());
    }

    /// Bytes as Prometheus' Go protobuf encodes them (hand-assembled from the wire format), with
    /// an exemplar (TimeSeries field 3) and a metadata entry (WriteRequest field 3) that must be
    /// skipped.
    #[test]
    fn decodes_go_wire_bytes_and_skips_unknown_fields() {
        let mut ts = Vec::new();
        // labels { name: "__name__" value: "a" }
        ts.extend_from_slice(&[0x0a, 0x0d, 0x0a, 0x08]);
        ts.extend_from_slice(b"__name__");
        ts.extend_from_slice(&[0x12, 0x01, b'a']);
        // samples { value: 2.0 timestamp: 1000 }
        ts.extend_from_slice(&[0x12, 0x0c, 0x09]);
        ts.extend_from_slice(&2.0f64.to_le_bytes());
        ts.extend_from_slice(&[0x10, 0xe8, 0x07]);
        // exemplars { value: 1.0 } (field 3, length-delimited)
        ts.extend_from_slice(&[0x1a, 0x09, 0x11]);
        ts.extend_from_slice(&1.0f64.to_le_bytes());
        let mut raw = vec![0x0a, ts.len() as u8];
        raw.extend_from_slice(&ts);
        // metadata { type: COUNTER metric_family_name: "a" }
        raw.extend_from_slice(&[0x1a, 0x05, 0x08, 0x01, 0x12, 0x01, b'a']);
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let got = decode(&body).unwrap();
        assert_eq!(got.timeseries.len(), 1);
        assert_eq!(got.timeseries[0].labels[0].value, "a");
        assert_eq!(
            got.timeseries[0].samples,
            [Sample {
                value: 2.0,
                timestamp: 1000
            }]
        );
    }

    /// xorshift64*: a seeded, dependency-free RNG for the tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A request as read through [`RequestView`], in the owned message types.
    fn view(raw: &[u8]) -> Result<WriteRequest> {
        let mut out = WriteRequest::default();
        for ts in RequestView::new(raw).series() {
            let ts = ts?;
            let mut labels = Vec::new();
            for l in ts.labels() {
                let (n, v) = l?;
                labels.push(Label {
                    name: String::from_utf8(n.to_vec()).unwrap(),
                    value: String::from_utf8(v.to_vec()).unwrap(),
                });
            }
            let samples = ts.samples().collect::<Result<Vec<_>>>()?;
            // The one-pass reader agrees with the iterator (bit for bit: NaN != NaN).
            let mut one_pass = Vec::new();
            ts.read_samples(&mut one_pass)?;
            let bits = |s: &[Sample]| -> Vec<(u64, i64)> {
                s.iter().map(|s| (s.value.to_bits(), s.timestamp)).collect()
            };
            assert_eq!(bits(&one_pass), bits(&samples));
            out.timeseries.push(TimeSeries { labels, samples });
        }
        Ok(out)
    }

    #[test]
    fn view_reads_what_prost_encodes() {
        let mut rng = Rng(0x5eed);
        let specials = [0.0, -0.0, f64::NAN, f64::INFINITY, -1e300, 1.5];
        for round in 0..200 {
            let req = WriteRequest {
                timeseries: (0..rng.below(5))
                    .map(|_| TimeSeries {
                        labels: (0..rng.below(4))
                            .map(|i| Label {
                                name: format!("l{i}{}", "x".repeat(rng.below(20) as usize)),
                                value: ["", "ü,=}", "v"][rng.below(3) as usize]
                                    .repeat(rng.below(40) as usize),
                            })
                            .collect(),
                        samples: (0..rng.below(4))
                            .map(|_| Sample {
                                value: if rng.below(2) == 0 {
                                    specials[rng.below(6) as usize]
                                } else {
                                    f64::from_bits(rng.next())
                                },
                                // Negative, zero (omitted on the wire), small and epoch-ms.
                                timestamp: match rng.below(4) {
                                    0 => -(rng.below(1 << 40) as i64),
                                    1 => 0,
                                    2 => rng.below(200) as i64,
                                    _ => 1_700_000_000_000 + rng.below(1 << 30) as i64,
                                },
                            })
                            .collect(),
                    })
                    .collect(),
            };
            let mut raw = Vec::new();
            req.encode(&mut raw).unwrap();
            let got = view(&raw).unwrap();
            // prost drops default values (also -0.0) when encoding: compare with its decoding.
            let req = WriteRequest::decode(&raw[..]).unwrap();
            // NaN != NaN: compare bit patterns.
            let bits = |r: &WriteRequest| {
                r.timeseries
                    .iter()
                    .map(|t| {
                        let s: Vec<(u64, i64)> = t
                            .samples
                            .iter()
                            .map(|s| (s.value.to_bits(), s.timestamp))
                            .collect();
                        (t.labels.clone(), s)
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&got), bits(&req), "round {round}");
        }
    }

    #[test]
    fn view_skips_unknown_fields_and_reads_go_bytes() {
        let mut ts = Vec::new();
        ts.extend_from_slice(&[0x0a, 0x0d, 0x0a, 0x08]);
        ts.extend_from_slice(b"__name__");
        ts.extend_from_slice(&[0x12, 0x01, b'a']);
        // A sample with the timestamp before the value, and one with an unknown field 3.
        ts.extend_from_slice(&[0x12, 0x0c, 0x10, 0xe8, 0x07, 0x09]);
        ts.extend_from_slice(&2.0f64.to_le_bytes());
        ts.extend_from_slice(&[0x12, 0x0d, 0x09]);
        ts.extend_from_slice(&3.0f64.to_le_bytes());
        ts.extend_from_slice(&[0x10, 0x01, 0x18, 0x05]);
        // exemplars { value: 1.0 } (field 3, length-delimited), and a fixed32 field 9.
        ts.extend_from_slice(&[0x1a, 0x09, 0x11]);
        ts.extend_from_slice(&1.0f64.to_le_bytes());
        ts.extend_from_slice(&[0x4d, 1, 2, 3, 4]);
        let mut raw = vec![0x0a, ts.len() as u8];
        raw.extend_from_slice(&ts);
        raw.extend_from_slice(&[0x1a, 0x05, 0x08, 0x01, 0x12, 0x01, b'a']);
        assert_eq!(view(&raw).unwrap(), WriteRequest::decode(&raw[..]).unwrap());
        let got = view(&raw).unwrap();
        assert_eq!(
            got.timeseries[0].samples,
            [
                Sample {
                    value: 2.0,
                    timestamp: 1000
                },
                Sample {
                    value: 3.0,
                    timestamp: 1
                }
            ]
        );
    }

    #[track_caller]
    fn check_view_err(raw: &[u8], want: &str) {
        let e = view(raw).unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} lacks {want:?}");
        // prost rejects it too.
        assert!(WriteRequest::decode(raw).is_err(), "prost accepts {raw:?}");
    }

    #[test]
    fn view_rejects_malformed_bytes() {
        check_view_err(&[0x0a, 0x05, 0x0a], "truncated");
        check_view_err(&[0x0a], "invalid varint");
        check_view_err(
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            "varint",
        );
        check_view_err(&[0x08, 0x01], "wrong wire type");
        check_view_err(&[0x00, 0x01], "field number 0");
        // TimeSeries with a label of the wrong wire type.
        check_view_err(&[0x0a, 0x02, 0x08, 0x01], "wrong wire type");
        // Label whose name has the wrong wire type.
        check_view_err(&[0x0a, 0x04, 0x0a, 0x02, 0x08, 0x01], "Label: field 1");
        // Sample with a truncated double.
        check_view_err(&[0x0a, 0x05, 0x12, 0x03, 0x09, 0x00, 0x00], "Sample");
        // Sample with a timestamp of the wrong wire type.
        check_view_err(&[0x0a, 0x04, 0x12, 0x02, 0x12, 0x00], "Sample: field 2");
        // Deprecated groups.
        check_view_err(&[0x0b, 0x0c], "wire type 3");
    }

    #[test]
    fn read_samples_finds_the_label_run() {
        let run = |raw: &[u8]| {
            let ts = RequestView::new(raw).series().next().unwrap().unwrap();
            let mut out = vec![Sample {
                value: 9.0,
                timestamp: 9,
            }];
            let r = ts.read_samples(&mut out).unwrap().map(<[u8]>::to_vec);
            (r, out)
        };
        let mut raw = Vec::new();
        req().encode(&mut raw).unwrap();
        let (labels, samples) = run(&raw);
        assert_eq!(samples, req().timeseries[0].samples);
        // TimeSeries: tag, length, then the two label fields.
        let l = labels.unwrap();
        assert_eq!(&raw[2..2 + l.len()], &l[..]);
        assert_eq!(l[0], 0x0a);
        assert_eq!(raw[2 + l.len()], 0x12, "samples follow the run");
        // A label after a sample: no run to cache by, samples still read.
        let ts = [
            &[0x12, 0x0b, 0x09][..],
            &1.0f64.to_le_bytes(),
            &[0x10, 0x05],
            &[0x0a, 0x05, 0x0a, 0x01, b'a', 0x12, 0x00],
        ]
        .concat();
        let mut raw = vec![0x0a, ts.len() as u8];
        raw.extend_from_slice(&ts);
        let (labels, samples) = run(&raw);
        assert_eq!(labels, None);
        assert_eq!(
            samples,
            [Sample {
                value: 1.0,
                timestamp: 5
            }]
        );
    }

    #[test]
    fn decompress_reuses_the_buffer() {
        let mut raw = Vec::new();
        req().encode(&mut raw).unwrap();
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        // A dirty, larger buffer: only the decompressed bytes are returned.
        let mut scratch = vec![7u8; raw.len() + 100];
        assert_eq!(decompress(&body, &mut scratch).unwrap(), &raw[..]);
        let mut small = Vec::new();
        assert_eq!(decompress(&body, &mut small).unwrap(), &raw[..]);
        assert!(decompress(b"\x05abc", &mut small).is_err());
    }

    #[track_caller]
    fn check_err(body: &[u8], want: &str) {
        let e = decode(body).unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} lacks {want:?}");
    }

    #[test]
    fn bad_bodies() {
        check_err(b"", "snappy");
        // Raw protobuf without snappy: the length header claims too much or the body is short.
        check_err(&[0x0a, 0x02, 0x0a, 0x00], "snappy");
        // Snappy around garbage protobuf.
        let body = snap::raw::Encoder::new()
            .compress_vec(&[0x0a, 0x7f, 0x01])
            .unwrap();
        check_err(&body, "protobuf");
        // A header announcing 1 GiB.
        check_err(&[0x80, 0x80, 0x80, 0x80, 0x04], "exceeds the limit");
    }
}
