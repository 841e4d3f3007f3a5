//! Compressed chunks of samples: Gorilla encoding (Facebook's "Gorilla" paper, as used by
//! Prometheus' XOR chunks): delta-of-delta timestamps and XOR'd float values, in a bit stream.
//!
//! A chunk is `[count: u16 big endian][bit stream]`; the layout of the stream is in
//! `tsdb/docs/format.md`. The head appends to an open [`Encoder`] and cuts a new chunk every
//! [`SAMPLES_PER_CHUNK`] samples; readers decode with [`Decoder`], which never panics on bad input.
//!
//! ```
//! use pharos_tsdb::chunk::{Decoder, Encoder};
//! let mut e = Encoder::new();
//! e.append(1000, 1.5);
//! e.append(2000, 2.5);
//! let got = Decoder::new(e.bytes()).unwrap().collect_all().unwrap();
//! assert_eq!(got.len(), 2);
//! ```

use pharos_model::Sample;

use crate::{Error, Result};

/// Samples per head chunk before a new one is cut (Prometheus' target: ~1-2 bytes per sample and
/// cheap random access at 120 samples, i.e. 2h at 1m or 30m at 15s).
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Length of the chunk header (the big-endian sample count).
const HEADER_LEN: usize = 2;

/// How a chunk's bytes are encoded; stored as one byte wherever chunks are persisted.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Gorilla: delta-of-delta timestamps, XOR floats (the value 1 matches Prometheus' XOR chunks).
    Xor = 1,
}

impl TryFrom<u8> for Encoding {
    type Error = Error;

    fn try_from(b: u8) -> Result<Self> {
        match b {
            1 => Ok(Encoding::Xor),
            b => Err(Error::Corruption(format!(
                "unknown chunk encoding byte {b}"
            ))),
        }
    }
}

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone)]
struct BitWriter {
    buf: Vec<u8>,
    /// Unused low bits of the last byte (0: a new byte is needed).
    free: u32,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` (<= 64) bits of `value`.
    fn write_bits(&mut self, value: u64, mut n: u32) {
        while n > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let bits = ((value >> (n - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= bits << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
    }
}

/// Reads bits written by [`BitWriter`]; `None` when the input ends.
#[derive(Debug, Clone)]
struct BitReader<B> {
    data: B,
    /// Index of the next bit.
    pos: usize,
}

impl<B: AsRef<[u8]>> BitReader<B> {
    fn read_bit(&mut self) -> Option<bool> {
        Some(self.read_bits(1)? == 1)
    }

    fn read_bits(&mut self, mut n: u32) -> Option<u64> {
        let data = self.data.as_ref();
        if self.pos + n as usize > data.len() * 8 {
            return None;
        }
        let mut out = 0u64;
        while n > 0 {
            let byte = data[self.pos / 8];
            let offset = (self.pos % 8) as u32;
            let avail = 8 - offset;
            let take = n.min(avail);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            out = (out << take) | bits;
            self.pos += take as usize;
            n -= take;
        }
        Some(out)
    }
}

/// Marks "no leading/trailing window yet" in the XOR state.
const NO_WINDOW: u32 = 0xff;

/// Appends samples to one chunk.
#[derive(Debug, Clone)]
pub struct Encoder {
    w: BitWriter,
    count: u16,
    min_t: i64,
    t: i64,
    delta: i64,
    v_bits: u64,
    leading: u32,
    trailing: u32,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

/// True if `x` fits an `n`-bit two's complement number.
fn fits(x: i64, n: u32) -> bool {
    let half = 1i64 << (n - 1);
    -half <= x && x < half
}

impl Encoder {
    /// An empty chunk.
    pub fn new() -> Self {
        Self {
            w: BitWriter {
                buf: vec![0; HEADER_LEN],
                free: 0,
            },
            count: 0,
            min_t: 0,
            t: 0,
            delta: 0,
            v_bits: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Appends a sample; timestamps must not decrease (the caller checks). Returns false, and
    /// adds nothing, if the chunk already holds `u16::MAX` samples.
    pub fn append(&mut self, t: i64, v: f64) -> bool {
        let Some(count) = self.count.checked_add(1) else {
            return false;
        };
        let bits = v.to_bits();
        if self.count == 0 {
            self.w.write_bits(t as u64, 64);
            self.w.write_bits(bits, 64);
            self.min_t = t;
        } else {
            let delta = t.wrapping_sub(self.t);
            let dod = delta.wrapping_sub(self.delta);
            self.write_dod(dod);
            self.write_xor(bits ^ self.v_bits);
            self.delta = delta;
        }
        self.t = t;
        self.v_bits = bits;
        self.count = count;
        self.w.buf[..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
        true
    }

    fn write_dod(&mut self, dod: i64) {
        // Buckets sized for scrape jitter: 14 bits cover ±8s of jitter, 17 bits ±65s, 20 bits ±8.7m.
        let w = &mut self.w;
        if dod == 0 {
            w.write_bit(false);
        } else if fits(dod, 14) {
            w.write_bits(0b10, 2);
            w.write_bits(dod as u64, 14);
        } else if fits(dod, 17) {
            w.write_bits(0b110, 3);
            w.write_bits(dod as u64, 17);
        } else if fits(dod, 20) {
            w.write_bits(0b1110, 4);
            w.write_bits(dod as u64, 20);
        } else {
            w.write_bits(0b1111, 4);
            w.write_bits(dod as u64, 64);
        }
    }

    fn write_xor(&mut self, xor: u64) {
        let w = &mut self.w;
        if xor == 0 {
            w.write_bit(false);
            return;
        }
        // Leading zeros are stored in 5 bits, so at most 31.
        let lz = xor.leading_zeros().min(31);
        let tz = xor.trailing_zeros();
        if self.leading != NO_WINDOW && lz >= self.leading && tz >= self.trailing {
            w.write_bits(0b10, 2);
            let sig = 64 - self.leading - self.trailing;
            w.write_bits(xor >> self.trailing, sig);
        } else {
            let sig = 64 - lz - tz;
            w.write_bits(0b11, 2);
            w.write_bits(u64::from(lz), 5);
            // 64 significant bits are stored as 0 in 6 bits.
            w.write_bits(u64::from(sig & 63), 6);
            w.write_bits(xor >> tz, sig);
            self.leading = lz;
            self.trailing = tz;
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Timestamp of the first sample (0 if empty).
    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    /// Timestamp of the last sample (0 if empty).
    pub fn max_t(&self) -> i64 {
        self.t
    }

    /// The chunk's bytes so far (a valid chunk at any time).
    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    /// The encoding this encoder writes.
    pub fn encoding(&self) -> Encoding {
        Encoding::Xor
    }

    /// Consumes the encoder and returns the chunk's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.w.buf
    }
}

/// Reads the samples of one chunk in order.
#[derive(Debug, Clone)]
pub struct Decoder<B> {
    r: BitReader<B>,
    total: u16,
    read: u16,
    t: i64,
    delta: i64,
    v_bits: u64,
    leading: u32,
    trailing: u32,
}

fn truncated(what: &str) -> Error {
    Error::Corruption(format!("chunk ends inside {what}"))
}

/// Sign-extends the low `n` bits of `x`.
fn sign_extend(x: u64, n: u32) -> i64 {
    let shift = 64 - n;
    ((x << shift) as i64) >> shift
}

impl<B: AsRef<[u8]>> Decoder<B> {
    /// A decoder over a chunk's bytes (which may be followed by unrelated bytes: see
    /// [`Decoder::rest`]).
    pub fn new(chunk: B) -> Result<Self> {
        let (header, _) = chunk
            .as_ref()
            .split_first_chunk::<HEADER_LEN>()
            .ok_or_else(|| truncated("the header"))?;
        let total = u16::from_be_bytes(*header);
        Ok(Self {
            r: BitReader {
                data: chunk,
                pos: HEADER_LEN * 8,
            },
            total,
            read: 0,
            t: 0,
            delta: 0,
            v_bits: 0,
            leading: NO_WINDOW,
            trailing: 0,
        })
    }

    /// Number of samples in the chunk.
    pub fn len(&self) -> usize {
        usize::from(self.total)
    }

    /// True if the chunk holds no samples.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The next sample, `Ok(None)` after the last, or a corruption error.
    pub fn next_sample(&mut self) -> Result<Option<Sample>> {
        if self.read >= self.total {
            return Ok(None);
        }
        if self.read == 0 {
            self.t = self
                .r
                .read_bits(64)
                .ok_or_else(|| truncated("a timestamp"))? as i64;
            self.v_bits = self.r.read_bits(64).ok_or_else(|| truncated("a value"))?;
        } else {
            let dod = self.read_dod().ok_or_else(|| truncated("a timestamp"))?;
            self.delta = self.delta.wrapping_add(dod);
            self.t = self.t.wrapping_add(self.delta);
            self.read_xor()?;
        }
        self.read += 1;
        Ok(Some(Sample {
            t: self.t,
            v: f64::from_bits(self.v_bits),
        }))
    }

    fn read_dod(&mut self) -> Option<i64> {
        let mut ones = 0;
        while ones < 4 && self.r.read_bit()? {
            ones += 1;
        }
        Some(match ones {
            0 => 0,
            1 => sign_extend(self.r.read_bits(14)?, 14),
            2 => sign_extend(self.r.read_bits(17)?, 17),
            3 => sign_extend(self.r.read_bits(20)?, 20),
            _ => self.r.read_bits(64)? as i64,
        })
    }

    fn read_xor(&mut self) -> Result<()> {
        let r = &mut self.r;
        if !r.read_bit().ok_or_else(|| truncated("a value"))? {
            return Ok(());
        }
        if !r.read_bit().ok_or_else(|| truncated("a value"))? {
            if self.leading == NO_WINDOW {
                return Err(Error::Corruption(
                    "chunk reuses an XOR window before defining one".into(),
                ));
            }
        } else {
            let lz = r.read_bits(5).ok_or_else(|| truncated("a value"))? as u32;
            let mut sig = r.read_bits(6).ok_or_else(|| truncated("a value"))? as u32;
            if sig == 0 {
                sig = 64;
            }
            if lz + sig > 64 {
                return Err(Error::Corruption(format!(
                    "chunk XOR window of {lz} leading and {sig} significant bits exceeds 64"
                )));
            }
            self.leading = lz;
            self.trailing = 64 - lz - sig;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig).ok_or_else(|| truncated("a value"))?;
        self.v_bits ^= bits << self.trailing;
        Ok(())
    }

    /// Decodes all (remaining) samples.
    pub fn collect_all(mut self) -> Result<Vec<Sample>> {
        let mut out = Vec::with_capacity(usize::from(self.total - self.read));
        while let Some(s) = self.next_sample()? {
            out.push(s);
        }
        Ok(out)
    }

    /// The bytes after the last one the decoder has read from (after the whole chunk once all
    /// samples are decoded).
    pub fn rest(&self) -> &[u8] {
        let used = self.r.pos.div_ceil(8);
        &self.r.data.as_ref()[used..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::STALE_NAN;

    /// splitmix64: a seeded generator so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[track_caller]
    fn check_round_trip(samples: &[(i64, f64)]) {
        let mut e = Encoder::new();
        for &(t, v) in samples {
            assert!(e.append(t, v));
        }
        let mut buf = e.bytes().to_vec();
        buf.extend_from_slice(b"tail");
        let mut d = Decoder::new(&buf).unwrap();
        assert_eq!(d.len(), samples.len());
        for (i, &(t, v)) in samples.iter().enumerate() {
            let s = d.next_sample().unwrap().unwrap();
            assert_eq!(s.t, t, "timestamp {i}");
            assert_eq!(s.v.to_bits(), v.to_bits(), "value {i}: {} vs {v}", s.v);
        }
        assert!(d.next_sample().unwrap().is_none());
        assert_eq!(d.rest(), b"tail");
    }

    #[test]
    fn special_values_are_bit_exact() {
        check_round_trip(&[]);
        check_round_trip(&[(0, 0.0)]);
        check_round_trip(&[
            (1000, 1.0),
            (2000, f64::NAN),
            (3000, STALE_NAN),
            (4000, f64::INFINITY),
            (5000, f64::NEG_INFINITY),
            (6000, -0.0),
            (7000, 0.0),
            (8000, f64::MIN_POSITIVE),
            (9000, f64::MAX),
            (10000, STALE_NAN),
            (10000, STALE_NAN),
        ]);
    }

    #[test]
    fn timestamp_buckets_and_extremes() {
        let mut s = vec![];
        let mut t = -5_000_000i64;
        for d in [
            0i64,
            1,
            8191,
            -8192,
            8192,
            65_535,
            -65_536,
            65_536,
            524_287,
            524_288,
            1 << 40,
        ] {
            t += 15_000 + d.abs();
            s.push((t, 1.0));
        }
        check_round_trip(&s);
        check_round_trip(&[(i64::MIN, 1.0), (0, 2.0), (i64::MAX, 3.0)]);
    }

    #[test]
    fn seeded_random_series() {
        let mut rng = Rng(42);
        for round in 0..200 {
            let n = rng.below(u64::from(SAMPLES_PER_CHUNK) * 2) as usize;
            let mut t = rng.next() as i64 >> 20;
            let mut v = 0.0f64;
            let mut s = Vec::with_capacity(n);
            for _ in 0..n {
                t += match round % 3 {
                    0 => 15_000,
                    1 => 15_000 + rng.below(200) as i64 - 100,
                    _ => rng.below(1 << 30) as i64,
                };
                v = match rng.below(6) {
                    0 => v,
                    1 => v + 1.0,
                    2 => f64::from_bits(rng.next()), // any bit pattern, incl. NaNs
                    3 => (rng.below(1000) as f64) / 10.0,
                    4 => STALE_NAN,
                    _ => rng.below(1 << 20) as f64,
                };
                s.push((t, v));
            }
            check_round_trip(&s);
        }
    }

    #[test]
    fn counter_compresses_well() {
        let mut e = Encoder::new();
        for i in 0..i64::from(SAMPLES_PER_CHUNK) {
            e.append(1_700_000_000_000 + i * 15_000, (i * 7) as f64);
        }
        let per_sample = e.bytes().len() as f64 / f64::from(SAMPLES_PER_CHUNK);
        assert!(per_sample < 3.0, "{per_sample} bytes per sample");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Decoder::new(&[]).is_err());
        assert!(Decoder::new(&[0]).is_err());
        let mut e = Encoder::new();
        for i in 0..50 {
            e.append(i * 1000, i as f64 * 1.5);
        }
        let b = e.bytes();
        for cut in 2..b.len() - 1 {
            assert!(
                Decoder::new(&b[..cut]).unwrap().collect_all().is_err(),
                "cut {cut}"
            );
        }
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let len = rng.below(64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Ok(d) = Decoder::new(&junk) {
                let _ = d.collect_all();
            }
        }
    }

    #[test]
    fn encoding_byte() {
        assert_eq!(Encoding::try_from(1).unwrap(), Encoding::Xor);
        assert_eq!(Encoding::Xor as u8, 1);
        for b in [0u8, 2, 255] {
            assert!(
                matches!(Encoding::try_from(b), Err(Error::Corruption(_))),
                "{b}"
            );
        }
    }
}
