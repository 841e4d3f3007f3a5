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

/// Decodes a request body: snappy block, then protobuf.
pub fn decode(body: &[u8]) -> Result<WriteRequest> {
    decode_with(body, &mut Vec::new())
}

/// [`decode`] decompressing into `scratch` (cleared first), so that a caller handling many
/// requests reuses one buffer instead of allocating (and freeing) one per request.
pub fn decode_with(body: &[u8], scratch: &mut Vec<u8>) -> Result<WriteRequest> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| Error::Decode(format!("snappy header: {e}")))?;
    if len > MAX_DECODED_LEN {
        return Err(Error::Decode(format!(
            "decompressed size {len} bytes exceeds the limit of {MAX_DECODED_LEN} bytes"
        )));
    }
    scratch.clear();
    scratch.resize(len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(body, scratch)
        .map_err(|e| Error::Decode(format!("snappy: {e}")))?;
    let raw = scratch.get(..n).unwrap_or_default();
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
