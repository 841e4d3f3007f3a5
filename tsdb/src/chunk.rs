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
    /// Bit-packed: delta-of-delta timestamps packed at the chunk's widest width, and values that
    /// are either one constant or decimal numbers with at most 9 fraction digits, delta-coded as
    /// integers and packed likewise. Written to blocks when smaller than [`Encoding::Xor`].
    Packed = 2,
    /// Cold data: an inner encoding ([`Encoding::Xor`] or [`Encoding::Packed`]) compressed with
    /// zstd, `[inner: u8][sample count: uvarint][zstd frame]`. Written to blocks when smaller.
    Zstd = 3,
}

impl TryFrom<u8> for Encoding {
    type Error = Error;

    fn try_from(b: u8) -> Result<Self> {
        match b {
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Packed),
            3 => Ok(Encoding::Zstd),
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
    /// The size the buffer's first growth goes to (0: grow in steps).
    grow_to: u16,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` (<= 64) bits of `value`: what fits into the last byte's free bits,
    /// then the rest as whole bytes at once.
    #[inline(always)]
    fn write_bits(&mut self, value: u64, n: u32) {
        if n == 0 || n > 64 {
            return;
        }
        let mut n = n;
        if self.free > 0 {
            let take = n.min(self.free);
            let bits = ((value >> (n - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= bits << (self.free - take);
            }
            self.free -= take;
            n -= take;
            if n == 0 {
                return;
            }
        }
        // The low `n` bits (1..=64), moved to the top of the word, high byte first.
        let rest = if n == 64 {
            value
        } else {
            value & ((1u64 << n) - 1)
        };
        let bytes = (rest << (64 - n)).to_be_bytes();
        let len = n.div_ceil(8) as usize;
        let end = self.buf.len() + len;
        if self.buf.capacity() - self.buf.len() < bytes.len() {
            // Small steps instead of doubling: head chunks stay open for long, and doubling
            // would leave a third of their memory unused on average.
            let step = (self.buf.len() / 4).max(32);
            let to_hint = usize::from(self.grow_to).saturating_sub(self.buf.len());
            self.buf.reserve_exact(step.max(to_hint));
        }
        // All eight bytes (one store, no copy loop), then cut to the ones written.
        self.buf.extend_from_slice(&bytes);
        self.buf.truncate(end);
        self.free = (len * 8) as u32 - n;
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
    /// Bits left to read.
    #[inline]
    fn remaining(&self) -> usize {
        (self.data.as_ref().len() * 8).saturating_sub(self.pos)
    }

    /// The 64 bits starting at the byte holding `pos`, big-endian, zero-padded past the end.
    #[inline]
    fn word(&self) -> u64 {
        let data = self.data.as_ref();
        let tail = data.get(self.pos / 8..).unwrap_or(&[]);
        match tail.first_chunk::<8>() {
            Some(w) => u64::from_be_bytes(*w),
            None => {
                let mut buf = [0u8; 8];
                buf[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(buf)
            }
        }
    }

    /// The next `n` (1..=56) bits without consuming them (zeros past the end).
    #[inline]
    fn peek(&self, n: u32) -> u64 {
        debug_assert!((1..=56).contains(&n));
        (self.word() << (self.pos % 8)) >> (64 - n)
    }

    #[inline]
    fn read_bit(&mut self) -> Option<bool> {
        Some(self.read_bits(1)? == 1)
    }

    /// Reads `n` (<= 64) bits, a machine word at a time.
    #[inline]
    fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n as usize > self.remaining() {
            return None;
        }
        Some(match n {
            0 => 0,
            1..=56 => {
                let v = self.peek(n);
                self.pos += n as usize;
                v
            }
            _ => {
                let hi = self.peek(n - 32);
                self.pos += (n - 32) as usize;
                let lo = self.peek(32);
                self.pos += 32;
                (hi << 32) | lo
            }
        })
    }

    /// Counts up to `max` (<= 8) leading one bits and consumes them and the terminating zero
    /// (if fewer than `max` ones); `None` if the input ends first.
    #[inline]
    fn read_unary(&mut self, max: u32) -> Option<u32> {
        let ones = (self.peek(8) << 56).leading_ones().min(max);
        let used = ones + u32::from(ones < max);
        if used as usize > self.remaining() {
            return None;
        }
        self.pos += used as usize;
        Some(ones)
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

impl Encoder {
    /// Where the next bits go (for a prefetch).
    pub(crate) fn tail(&self) -> *const u8 {
        self.w
            .buf
            .as_ptr()
            .wrapping_add(self.w.buf.len().saturating_sub(1))
    }
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
        Self::sized_like(0)
    }

    /// A new encoder whose buffer, once the first sample needs room, grows to `bytes` at once
    /// (then in steps): sized like the series' previous chunk, it appends with one allocation
    /// instead of six, and takes no more room than its header until then.
    pub fn sized_like(bytes: usize) -> Self {
        Self {
            w: BitWriter {
                buf: vec![0; HEADER_LEN],
                free: 0,
                grow_to: u16::try_from(bytes).unwrap_or(u16::MAX),
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
        Some(match self.r.read_unary(4)? {
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
        if self.read == 0 {
            let mut out = Vec::new();
            decode_xor(self.r.data.as_ref(), &mut out)?;
            return Ok(out);
        }
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

/// A bit cursor over a byte slice for the whole-chunk decoders: every read loads one
/// unaligned big-endian machine word and shifts, with no bounds check per read. Reads past the
/// end see zero bits; callers compare `pos` with the length after each sample.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    #[inline(always)]
    fn word(&self) -> u64 {
        let i = self.pos >> 3;
        if let Some(w) = self.data.get(i..).and_then(|s| s.first_chunk::<8>()) {
            return u64::from_be_bytes(*w);
        }
        let tail = self.data.get(i..).unwrap_or(&[]);
        let mut buf = [0u8; 8];
        buf[..tail.len()].copy_from_slice(tail);
        u64::from_be_bytes(buf)
    }

    /// The next `n` (1..=56) bits, not consumed.
    #[inline(always)]
    fn peek(&self, n: u32) -> u64 {
        (self.word() << (self.pos & 7)) >> (64 - n)
    }

    /// Reads `n` (1..=56) bits.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u64 {
        let v = self.peek(n);
        self.pos += n as usize;
        v
    }

    /// Reads `n` (0..=64) bits.
    #[inline(always)]
    fn take_var(&mut self, n: u32) -> u64 {
        match n {
            0 => 0,
            1..=56 => self.take(n),
            _ => {
                let hi = self.take(n - 32);
                (hi << 32) | self.take(32)
            }
        }
    }
}

/// Decodes a whole [`Encoding::Xor`] chunk (which may be followed by unrelated bytes),
/// appending its samples to `out`: the fast path of [`Decoder`], with the same errors.
pub fn decode_xor(chunk: &[u8], out: &mut Vec<Sample>) -> Result<()> {
    let (header, _) = chunk
        .split_first_chunk::<HEADER_LEN>()
        .ok_or_else(|| truncated("the header"))?;
    let total = usize::from(u16::from_be_bytes(*header));
    if total == 0 {
        return Ok(());
    }
    let end = chunk.len() * 8;
    let mut r = Bits {
        data: chunk,
        pos: HEADER_LEN * 8,
    };
    let mut t = r.take_var(64) as i64;
    let mut v_bits = r.take_var(64);
    if r.pos > end {
        return Err(truncated("the first sample"));
    }
    out.reserve(total);
    out.push(Sample {
        t,
        v: f64::from_bits(v_bits),
    });
    let (mut delta, mut leading, mut trailing) = (0i64, NO_WINDOW, 0u32);
    for _ in 1..total {
        // The most common case in one read: same delta ('0'), same value ('0').
        if r.peek(2) == 0 {
            r.pos += 2;
            t = t.wrapping_add(delta);
            if r.pos > end {
                return Err(truncated("a sample"));
            }
            out.push(Sample {
                t,
                v: f64::from_bits(v_bits),
            });
            continue;
        }
        // Up to four 1 bits then a 0 select the timestamp bucket.
        let ones = ((r.peek(4) as u8) << 4).leading_ones().min(4);
        r.pos += (ones + u32::from(ones < 4)) as usize;
        let dod = match ones {
            0 => 0,
            1 => sign_extend(r.take(14), 14),
            2 => sign_extend(r.take(17), 17),
            3 => sign_extend(r.take(20), 20),
            _ => r.take_var(64) as i64,
        };
        delta = delta.wrapping_add(dod);
        t = t.wrapping_add(delta);
        let ctl = r.peek(2);
        if ctl < 0b10 {
            r.pos += 1;
        } else {
            r.pos += 2;
            if ctl == 0b11 {
                let lz = r.take(5) as u32;
                let sig = match r.take(6) as u32 {
                    0 => 64,
                    s => s,
                };
                if lz + sig > 64 {
                    return Err(Error::Corruption(format!(
                        "chunk XOR window of {lz} leading and {sig} significant bits exceeds 64"
                    )));
                }
                leading = lz;
                trailing = 64 - lz - sig;
            } else if leading == NO_WINDOW {
                return Err(Error::Corruption(
                    "chunk reuses an XOR window before defining one".into(),
                ));
            }
            v_bits ^= r.take_var(64 - leading - trailing) << trailing;
        }
        if r.pos > end {
            return Err(truncated("a sample"));
        }
        out.push(Sample {
            t,
            v: f64::from_bits(v_bits),
        });
    }
    Ok(())
}

/// Zigzag-maps a signed number to an unsigned one (small magnitudes to small numbers).
fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bits needed for the largest of `xs` (0 if all are zero).
fn width(xs: impl Iterator<Item = u64>) -> u32 {
    64 - xs.fold(0u64, |a, x| a | x).leading_zeros()
}

/// Largest decimal scale tried for [`Encoding::Packed`] values.
const MAX_SCALE: u32 = 9;
/// Integers beyond this are not all exactly representable as f64.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// `v * 10^k` as an integer if `v` is exactly that integer divided by `10^k` (bit for bit).
fn scaled(v: f64, k: u32) -> Option<i64> {
    let p = 10f64.powi(k as i32);
    let n = (v * p).round();
    if !n.is_finite() || n.abs() > MAX_EXACT {
        return None;
    }
    // From the integer, as the decoder computes it (so -0.0 is not taken for 0).
    let i = n as i64;
    let back = if k == 0 { i as f64 } else { i as f64 / p };
    (back.to_bits() == v.to_bits()).then_some(i)
}

/// Value modes of [`Encoding::Packed`].
const MODE_CONSTANT: u8 = 0;
const MODE_DECIMAL: u8 = 1;
const MODE_FLOAT_BITS: u8 = 2;
/// [`MODE_DECIMAL`] with frame-of-reference entries (see `tsdb/docs/format.md`).
const MODE_DECIMAL_FOR: u8 = 3;
/// [`MODE_FLOAT_BITS`] with frame-of-reference entries.
const MODE_FLOAT_BITS_FOR: u8 = 4;

/// Encodes `samples` (timestamps not decreasing) as [`Encoding::Packed`] into `out`: values as
/// one constant, as decimals with at most 9 fraction digits, or else as deltas of their IEEE 754
/// bit patterns. Returns false, leaving `out` as it was, only if `samples` is empty.
pub fn encode_packed(samples: &[Sample], out: &mut Vec<u8>) -> bool {
    let Some(first) = samples.first() else {
        return false;
    };
    crate::varint::put_uvarint(out, samples.len() as u64);
    crate::varint::put_varint(out, first.t);
    let mut w = BitWriter {
        buf: std::mem::take(out),
        free: 0,
        grow_to: 0,
    };
    if samples.len() >= 2 {
        let d0 = samples[1].t.wrapping_sub(first.t);
        crate::varint::put_varint(&mut w.buf, d0);
        let dods = samples.windows(3).map(|s| {
            let d1 = s[1].t.wrapping_sub(s[0].t);
            let d2 = s[2].t.wrapping_sub(s[1].t);
            zigzag(d2.wrapping_sub(d1))
        });
        let tw = width(dods.clone());
        // Room for the timestamps' entries and the value mode's first bytes.
        w.buf
            .reserve_exact(1 + (samples.len() - 2).saturating_mul(tw as usize).div_ceil(8) + 10);
        w.buf.push(tw as u8);
        for z in dods {
            w.write_bits(z, tw);
        }
        w.free = 0;
    }
    let bits = first.v.to_bits();
    if samples.iter().all(|s| s.v.to_bits() == bits) {
        w.buf.push(MODE_CONSTANT);
        w.buf.extend_from_slice(&bits.to_le_bytes());
        *out = w.buf;
        return true;
    }
    // The values as integers (one buffer for every scale tried): decimals at the smallest
    // scale that holds them all exactly, else (any other floats) their bit patterns, whose
    // deltas for a counter or a slowly moving gauge keep the sign and exponent bits zero where
    // XOR still spends a window on them.
    let mut ints: Vec<i64> = Vec::with_capacity(samples.len());
    let decimal = (0..=MAX_SCALE).find(|&k| {
        ints.clear();
        samples.iter().all(|s| match scaled(s.v, k) {
            Some(i) => {
                ints.push(i);
                true
            }
            None => false,
        })
    });
    if decimal.is_none() {
        ints.clear();
        ints.extend(samples.iter().map(|s| s.v.to_bits() as i64));
    }
    let x0 = ints.first().copied().unwrap_or(0);
    // Deltas in place: `ints[i]` becomes `ints[i] - ints[i - 1]`.
    for i in (1..ints.len()).rev() {
        ints[i] = ints[i].wrapping_sub(ints[i - 1]);
    }
    let deltas = ints.get(1..).unwrap_or_default();
    // Common trailing zero bits (e.g. byte counts in pages) are stored once.
    let tz = deltas
        .iter()
        .filter(|&&d| d != 0)
        .map(|d| d.trailing_zeros())
        .min()
        .unwrap_or(0);
    let shifted = || deltas.iter().map(|&d| d >> tz);
    // Zigzag entries suit deltas of both signs (gauges); frame of reference (entries above
    // the smallest delta, unsigned) suits one-signed deltas (counters), saving the sign bit and
    // the width of the smallest delta. The smaller wins; ties go to zigzag (no `min` varint).
    let vw_zigzag = width(shifted().map(zigzag));
    let min = shifted().min().unwrap_or(0);
    let vw_for = width(shifted().map(|d| d.wrapping_sub(min) as u64));
    let n_entries = deltas.len() as u64;
    let for_bits = n_entries * u64::from(vw_for) + 8 * crate::varint::varint_len(min) as u64;
    let zigzag_bits = n_entries * u64::from(vw_zigzag);
    let use_for = for_bits.div_ceil(8) < zigzag_bits.div_ceil(8);
    // Room for the rest at once (mode, scale or first value, shift, width, entries).
    let rest = 2 + 10 + 2 + usize::try_from(for_bits.min(zigzag_bits).div_ceil(8)).unwrap_or(0);
    w.buf.reserve_exact(rest);
    match decimal {
        Some(k) => {
            w.buf.push(if use_for {
                MODE_DECIMAL_FOR
            } else {
                MODE_DECIMAL
            });
            w.buf.push(k as u8);
            crate::varint::put_varint(&mut w.buf, x0);
        }
        None => {
            w.buf.push(if use_for {
                MODE_FLOAT_BITS_FOR
            } else {
                MODE_FLOAT_BITS
            });
            w.buf.extend_from_slice(&bits.to_le_bytes());
        }
    }
    if samples.len() >= 2 {
        w.buf.push(tz as u8);
        if use_for {
            w.buf.push(vw_for as u8);
            crate::varint::put_varint(&mut w.buf, min);
            for d in shifted() {
                w.write_bits(d.wrapping_sub(min) as u64, vw_for);
            }
        } else {
            w.buf.push(vw_zigzag as u8);
            for d in shifted() {
                w.write_bits(zigzag(d), vw_zigzag);
            }
        }
    }
    *out = w.buf;
    true
}

/// The parsed header of an [`Encoding::Packed`] chunk whose values are delta-coded (modes 1-4):
/// everything the decoding loops need (the runs' lengths are checked before anything is read).
struct PackedRun<'a> {
    t0: i64,
    d0: i64,
    /// Bits per timestamp entry (0: regular timestamps).
    tw: u32,
    times: &'a [u8],
    x0: i64,
    tz: u32,
    vw: u32,
    values: &'a [u8],
}

fn packed_error(what: &str) -> Error {
    Error::Corruption(format!("packed chunk: {what}"))
}

/// Sets the timestamps of `samples` (one per sample of a Packed chunk of constant values) from
/// its timestamp run of `tw` (> 0) bits per entry.
fn decode_packed_times(
    samples: &mut [Sample],
    t0: i64,
    d0: i64,
    tw: u32,
    times: &[u8],
) -> Result<()> {
    let (mut t, mut d) = (t0.wrapping_add(d0), d0);
    let [first, second, rest @ ..] = samples else {
        if let Some(first) = samples.first_mut() {
            first.t = t0;
        }
        return Ok(());
    };
    first.t = t0;
    second.t = t;
    let count = rest.len();
    let mut chunks = rest.chunks_mut(crate::bitpack::BLOCK);
    crate::bitpack::for_each_block(times, tw, count, |zs| {
        if let Some(c) = chunks.next() {
            let (mut tl, mut dl) = (t, d);
            // Zigzag decoded first (vectorised), then the running sums.
            for z in zs.iter_mut() {
                *z = unzigzag(*z) as u64;
            }
            for (s, &z) in c.iter_mut().zip(&*zs) {
                dl = dl.wrapping_add(z as i64);
                tl = tl.wrapping_add(dl);
                s.t = tl;
            }
            (t, d) = (tl, dl);
        }
    })
    .map(|_| ())
    .ok_or_else(|| packed_error("ends inside the timestamps"))
}

/// Decodes the samples of `run` into `samples` (one per sample): `delta` maps a value entry to
/// the delta of the integers (before the `tz` shift), `to_f` an integer to the sample value.
/// Generic so that each mode gets its own loops, with no per-sample test of the mode.
#[inline(always)]
fn decode_packed_run(
    run: &PackedRun<'_>,
    samples: &mut [Sample],
    delta: impl Fn(u64) -> i64 + Copy,
    to_f: impl Fn(i64) -> f64 + Copy,
) -> Result<()> {
    if run.tw != 0 {
        return decode_packed_jittered(run, samples, delta, to_f);
    }
    let Some((first, rest)) = samples.split_first_mut() else {
        return Ok(());
    };
    let (mut x, tz) = (run.x0, run.tz);
    let (mut t, d0) = (run.t0, run.d0);
    *first = Sample { t, v: to_f(x) };
    let count = rest.len();
    let mut chunks = rest.chunks_mut(crate::bitpack::BLOCK);
    crate::bitpack::for_each_block(run.values, run.vw, count, |zs| {
        let Some(c) = chunks.next() else { return };
        // State and parameters copied to locals: the loops keep them in registers (through
        // the captured references the compiler would reload them after every store).
        let (mut xl, mut tl, d0, tz, delta, to_f) = (x, t, d0, tz, delta, to_f);
        // Entries to deltas first, in a loop without a carried dependency (vectorised), then
        // the running sum.
        for z in zs.iter_mut() {
            *z = delta(*z).wrapping_shl(tz) as u64;
        }
        // Regular timestamps (the common case): set in the same pass.
        for (s, &d) in c.iter_mut().zip(&*zs) {
            tl = tl.wrapping_add(d0);
            xl = xl.wrapping_add(d as i64);
            *s = Sample { t: tl, v: to_f(xl) };
        }
        (x, t) = (xl, tl);
    })
    .map(|_| ())
    .ok_or_else(|| packed_error("ends inside the values"))
}

/// [`decode_packed_run`] for timestamps with a run of their own (`tw` > 0): both runs are
/// read a block at a time in step, and each sample written once.
#[inline(always)]
fn decode_packed_jittered(
    run: &PackedRun<'_>,
    samples: &mut [Sample],
    delta: impl Fn(u64) -> i64 + Copy,
    to_f: impl Fn(i64) -> f64 + Copy,
) -> Result<()> {
    use crate::bitpack::{BLOCK, Unpacker};
    let n = samples.len();
    let (mut times, _) = Unpacker::new(run.times, run.tw, n.saturating_sub(2))
        .ok_or_else(|| packed_error("ends inside the timestamps"))?;
    let (mut values, _) = Unpacker::new(run.values, run.vw, n.saturating_sub(1))
        .ok_or_else(|| packed_error("ends inside the values"))?;
    let Some((first, rest)) = samples.split_first_mut() else {
        return Ok(());
    };
    let (mut x, mut t, mut d) = (run.x0, run.t0, run.d0);
    *first = Sample { t, v: to_f(x) };
    // Sample i >= 1 uses value entry i - 1 and timestamp entry i - 2: `dods[j]` is the
    // timestamp entry of the block's sample j, `dods[0]` the last entry of the previous
    // block (zigzag 0 for sample 1, whose delta d0 is in the header).
    let mut dods = [0u64; BLOCK + 1];
    let mut vals = [0u64; BLOCK];
    for c in rest.chunks_mut(BLOCK) {
        values.next_block(&mut vals);
        if let Some(later) = dods.last_chunk_mut::<BLOCK>() {
            times.next_block(later);
        }
        let carry = dods[BLOCK];
        let (mut xl, mut tl, mut dl, tz) = (x, t, d, run.tz);
        // Entries to deltas without a carried dependency (vectorised), then the running sums.
        for z in vals.iter_mut() {
            *z = delta(*z).wrapping_shl(tz) as u64;
        }
        for z in dods[..BLOCK].iter_mut() {
            *z = unzigzag(*z) as u64;
        }
        for ((s, &dv), &dd) in c.iter_mut().zip(&vals).zip(&dods[..BLOCK]) {
            dl = dl.wrapping_add(dd as i64);
            tl = tl.wrapping_add(dl);
            xl = xl.wrapping_add(dv as i64);
            *s = Sample { t: tl, v: to_f(xl) };
        }
        (x, t, d) = (xl, tl, dl);
        dods[0] = carry;
    }
    Ok(())
}

/// Decodes an [`Encoding::Packed`] chunk, appending its samples to `out`.
pub fn decode_packed(chunk: &[u8], out: &mut Vec<Sample>) -> Result<()> {
    let bad = packed_error;
    let (n, rest) = crate::varint::uvarint(chunk).ok_or_else(|| bad("bad sample count"))?;
    if n == 0 || n > u64::from(u16::MAX) {
        return Err(bad(&format!("sample count {n} out of range")));
    }
    let n = n as usize;
    let (t0, rest) = crate::varint::varint(rest).ok_or_else(|| bad("bad first timestamp"))?;
    // The length of the timestamp run follows from its header: the values are located before
    // anything is decoded, so that one pass can write both.
    let (d0, tw, times, rest) = if n >= 2 {
        let (d0, r) = crate::varint::varint(rest).ok_or_else(|| bad("bad first delta"))?;
        let (&tw, r) = r
            .split_first()
            .ok_or_else(|| bad("ends before the timestamp width"))?;
        if tw > 64 {
            return Err(bad(&format!("timestamp width {tw} > 64")));
        }
        let len = ((n - 2) * usize::from(tw)).div_ceil(8);
        let (times, r) = r
            .split_at_checked(len)
            .ok_or_else(|| bad("ends inside the timestamps"))?;
        (d0, u32::from(tw), times, r)
    } else {
        (0, 0, &[][..], rest)
    };
    let (&mode, rest) = rest
        .split_first()
        .ok_or_else(|| bad("ends before the value mode"))?;
    let (x0, scale, rest) = match mode {
        MODE_CONSTANT => {
            let (b, _) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("ends inside the constant"))?;
            let v = f64::from_bits(u64::from_le_bytes(*b));
            let base = out.len();
            out.resize(base + n, Sample { t: t0, v });
            let samples = &mut out[base..];
            if tw == 0 {
                let mut t = t0;
                for s in samples {
                    s.t = t;
                    t = t.wrapping_add(d0);
                }
                return Ok(());
            }
            return decode_packed_times(samples, t0, d0, tw, times);
        }
        MODE_DECIMAL | MODE_DECIMAL_FOR => {
            let [k, r @ ..] = rest else {
                return Err(bad("ends before the scale"));
            };
            if u32::from(*k) > MAX_SCALE {
                return Err(bad(&format!("decimal scale {k} > {MAX_SCALE}")));
            }
            let (x, r) = crate::varint::varint(r).ok_or_else(|| bad("bad first value"))?;
            (x, Some(*k), r)
        }
        MODE_FLOAT_BITS | MODE_FLOAT_BITS_FOR => {
            let (b, r) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("ends inside the first value"))?;
            (i64::from_le_bytes(*b), None, r)
        }
        m => return Err(bad(&format!("unknown value mode {m}"))),
    };
    let frame = mode == MODE_DECIMAL_FOR || mode == MODE_FLOAT_BITS_FOR;
    let (tz, vw, min, values) = if n >= 2 {
        let [tz, vw, r @ ..] = rest else {
            return Err(bad("ends before the value widths"));
        };
        if *tz > 63 || *vw > 64 {
            return Err(bad(&format!("value shift {tz} or width {vw} too large")));
        }
        let (min, r) = if frame {
            crate::varint::varint(r).ok_or_else(|| bad("bad value minimum"))?
        } else {
            (0, r)
        };
        (u32::from(*tz), u32::from(*vw), min, r)
    } else {
        (0, 0, 0, &[][..])
    };
    let run = PackedRun {
        t0,
        d0,
        tw,
        times,
        x0,
        tz,
        vw,
        values,
    };
    let base = out.len();
    // Filled in place (no per-sample capacity checks); on an error `decode_into` truncates.
    out.resize(base + n, Sample { t: t0, v: 0.0 });
    let out = &mut out[base..];
    let zigzag = |z: u64| unzigzag(z);
    let offset = move |z: u64| min.wrapping_add(z as i64);
    // One instance of the loops per mode: no test of the mode or scale per sample.
    match (scale, frame) {
        (Some(0), false) => decode_packed_run(&run, out, zigzag, |x| x as f64),
        (Some(0), true) => decode_packed_run(&run, out, offset, |x| x as f64),
        (Some(k), f) => {
            let p = 10f64.powi(i32::from(k));
            if f {
                decode_packed_run(&run, out, offset, move |x| x as f64 / p)
            } else {
                decode_packed_run(&run, out, zigzag, move |x| x as f64 / p)
            }
        }
        (None, false) => decode_packed_run(&run, out, zigzag, |x| f64::from_bits(x as u64)),
        (None, true) => decode_packed_run(&run, out, offset, |x| f64::from_bits(x as u64)),
    }
}

/// Encodes `samples` (at most `u16::MAX`, timestamps not decreasing) in the encoding that takes
/// the fewest bytes, appending them to `out`; returns the encoding used.
pub fn encode_best(samples: &[Sample], out: &mut Vec<u8>) -> Encoding {
    let start = out.len();
    // About two bytes a sample at first, then in steps.
    let mut e = Encoder::sized_like(2 * samples.len() + 16);
    for s in samples {
        e.append(s.t, s.v);
    }
    let xor = e.into_bytes();
    if encode_packed(samples, out) && out.len() - start < xor.len() {
        return Encoding::Packed;
    }
    out.truncate(start);
    out.extend_from_slice(&xor);
    Encoding::Xor
}

/// Like [`encode_best`], but when `packed_won` (the samples' earlier chunks, as the head closed
/// them, were all denser packed) it writes [`Encoding::Packed`] without trying XOR: persisting
/// the head spent a tenth of its CPU encoding XOR only to drop it.
pub fn encode_likely(samples: &[Sample], out: &mut Vec<u8>, packed_won: bool) -> Encoding {
    let start = out.len();
    if packed_won {
        if encode_packed(samples, out) {
            return Encoding::Packed;
        }
        out.truncate(start);
    }
    encode_best(samples, out)
}

/// Largest decompressed size accepted from an [`Encoding::Zstd`] chunk: `u16::MAX` samples of
/// the widest XOR encoding (about 20 bytes each) fit with room to spare; a frame claiming more
/// is corrupt (and must not make the reader allocate it).
const MAX_ZSTD_CONTENT: u64 = 4 << 20;

/// Encodes `samples` (at most `u16::MAX`, timestamps not decreasing) for cold storage: the
/// smaller of [`encode_best`]'s output and that output compressed with zstd at `level`
/// ([`Encoding::Zstd`]), appended to `out`; returns the encoding used.
pub fn encode_cold(samples: &[Sample], level: i32, out: &mut Vec<u8>) -> Encoding {
    let start = out.len();
    let inner = encode_best(samples, out);
    let plain = out.len() - start;
    let Ok(z) = zstd::bulk::compress(&out[start..], level) else {
        return inner;
    };
    let mut head = Vec::with_capacity(11);
    head.push(inner as u8);
    crate::varint::put_uvarint(&mut head, samples.len() as u64);
    if head.len() + z.len() >= plain {
        return inner;
    }
    out.truncate(start);
    out.extend_from_slice(&head);
    out.extend_from_slice(&z);
    Encoding::Zstd
}

/// Splits an [`Encoding::Zstd`] chunk into its inner encoding, sample count and frame.
fn zstd_parts(chunk: &[u8]) -> Result<(Encoding, u64, &[u8])> {
    let bad = |what: &str| Error::Corruption(format!("zstd chunk: {what}"));
    let (&inner, rest) = chunk.split_first().ok_or_else(|| bad("empty"))?;
    let inner = Encoding::try_from(inner)?;
    if inner == Encoding::Zstd {
        return Err(bad("nested zstd encoding"));
    }
    let (n, frame) = crate::varint::uvarint(rest).ok_or_else(|| bad("bad sample count"))?;
    Ok((inner, n, frame))
}

/// Decompresses an [`Encoding::Zstd`] chunk and decodes its inner encoding into `out`.
fn decode_zstd(chunk: &[u8], out: &mut Vec<Sample>) -> Result<()> {
    let bad = |what: String| Error::Corruption(format!("zstd chunk: {what}"));
    let (inner, _, frame) = zstd_parts(chunk)?;
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n <= MAX_ZSTD_CONTENT => n as usize,
        Ok(Some(n)) => return Err(bad(format!("content size {n} > {MAX_ZSTD_CONTENT}"))),
        Ok(None) | Err(_) => return Err(bad("no valid frame header".into())),
    };
    let plain = zstd::bulk::decompress(frame, size).map_err(|e| bad(e.to_string()))?;
    decode_into(inner, &plain, out)
}

/// Number of samples in a chunk, read from its header.
pub fn count(encoding: Encoding, chunk: &[u8]) -> Result<u64> {
    match encoding {
        Encoding::Xor => Ok(Decoder::new(chunk)?.len() as u64),
        Encoding::Packed => crate::varint::uvarint(chunk)
            .map(|(n, _)| n)
            .ok_or_else(|| Error::Corruption("packed chunk: bad sample count".into())),
        Encoding::Zstd => zstd_parts(chunk).map(|(_, n, _)| n),
    }
}

/// Decodes a chunk of any encoding, appending its samples to `out`; on an error `out` is left
/// as it was (no partly decoded samples).
pub fn decode_into(encoding: Encoding, chunk: &[u8], out: &mut Vec<Sample>) -> Result<()> {
    let start = out.len();
    let result = match encoding {
        Encoding::Xor => decode_xor(chunk, out),
        Encoding::Packed => decode_packed(chunk, out),
        Encoding::Zstd => decode_zstd(chunk, out),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
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

    #[test]
    fn encode_likely_skips_xor_only_when_told() {
        // Constant-ish integers: XOR is denser here than packing.
        let samples: Vec<Sample> = (0..480i64)
            .map(|i| Sample {
                t: 15_000 * i,
                v: 7.0,
            })
            .collect();
        let (mut best, mut likely, mut told) = (Vec::new(), Vec::new(), Vec::new());
        let e_best = encode_best(&samples, &mut best);
        let e_likely = encode_likely(&samples, &mut likely, false);
        let e_told = encode_likely(&samples, &mut told, true);
        assert_eq!((e_likely, &likely), (e_best, &best));
        assert_eq!(e_told, Encoding::Packed);
        for (e, bytes) in [(e_best, &best), (e_told, &told)] {
            let mut got = Vec::new();
            decode_into(e, bytes, &mut got).expect("decodes");
            assert_eq!(got, samples);
        }
        // Nothing to pack: falls back (and writes nothing).
        let mut empty = Vec::new();
        assert_eq!(
            encode_likely(&[], &mut empty, true),
            encode_best(&[], &mut Vec::new())
        );
    }

    #[test]
    fn a_sized_encoder_writes_the_same_bytes_with_one_growth() {
        let samples: Vec<(i64, f64)> = (0..120i64)
            .map(|i| (1_000 * i + i % 3, (i * i) as f64 / 7.0))
            .collect();
        let mut plain = Encoder::new();
        for &(t, v) in &samples {
            plain.append(t, v);
        }
        let size = plain.bytes().len();
        for hint in [size, size / 2] {
            let mut sized = Encoder::sized_like(hint);
            // Nothing reserved until a sample needs room.
            assert!(sized.w.buf.capacity() < 16);
            let mut capacities = Vec::new();
            for &(t, v) in &samples {
                sized.append(t, v);
                capacities.push(sized.w.buf.capacity());
            }
            assert_eq!(plain.bytes(), sized.bytes());
            capacities.dedup();
            assert_eq!(capacities.first(), Some(&hint), "{capacities:?}");
            // Then steps of a quarter.
            assert!(
                capacities.len() <= if hint == size { 1 } else { 5 },
                "{capacities:?}"
            );
        }
    }

    #[test]
    fn bit_writer_writes_what_a_bit_at_a_time_writer_does() {
        let mut rng = Rng(7);
        let mut w = BitWriter {
            buf: Vec::new(),
            free: 0,
            grow_to: 0,
        };
        let mut bits: Vec<bool> = Vec::new();
        for _ in 0..20_000 {
            let n = rng.below(65) as u32;
            let v = rng.next();
            w.write_bits(v, n);
            bits.extend((0..n).rev().map(|i| (v >> i) & 1 == 1));
        }
        let mut want = vec![0u8; bits.len().div_ceil(8)];
        for (i, &b) in bits.iter().enumerate() {
            if b {
                want[i / 8] |= 0x80 >> (i % 8);
            }
        }
        assert_eq!(w.buf, want);
        assert_eq!(w.free as usize, want.len() * 8 - bits.len());
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
        // The whole-chunk decoder agrees bit for bit.
        let mut fast = Vec::new();
        decode_xor(&buf, &mut fast).unwrap();
        let fast: Vec<(i64, u64)> = fast.iter().map(|s| (s.t, s.v.to_bits())).collect();
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(fast, want);
    }

    /// The streaming decoder's result, as `(t, v bits)` or an error.
    fn streaming(b: &[u8]) -> Result<Vec<(i64, u64)>> {
        let mut d = Decoder::new(b)?;
        let mut out = Vec::new();
        while let Some(s) = d.next_sample()? {
            out.push((s.t, s.v.to_bits()));
        }
        Ok(out)
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
            assert!(streaming(&b[..cut]).is_err(), "cut {cut}");
        }
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let len = rng.below(64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Both decoders accept the same junk with the same samples, or both refuse it.
            let fast = Decoder::new(&junk).and_then(|d| d.collect_all());
            let fast = fast.map(|v| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>());
            match (fast, streaming(&junk)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("decoders disagree on {junk:?}: {a:?} vs {b:?}"),
            }
        }
    }

    #[test]
    fn encoding_byte() {
        assert_eq!(Encoding::try_from(1).unwrap(), Encoding::Xor);
        assert_eq!(Encoding::Xor as u8, 1);
        assert_eq!(Encoding::try_from(2).unwrap(), Encoding::Packed);
        assert_eq!(Encoding::try_from(3).unwrap(), Encoding::Zstd);
        for b in [0u8, 4, 255] {
            assert!(
                matches!(Encoding::try_from(b), Err(Error::Corruption(_))),
                "{b}"
            );
        }
    }

    #[track_caller]
    fn check_best(samples: &[(i64, f64)], want: Encoding) {
        let samples: Vec<Sample> = samples.iter().map(|&(t, v)| Sample { t, v }).collect();
        let mut buf = vec![0xAA];
        let enc = encode_best(&samples, &mut buf);
        assert_eq!(enc, want);
        assert_eq!(buf[0], 0xAA);
        let mut got = vec![Sample { t: -1, v: -1.0 }];
        decode_into(enc, &buf[1..], &mut got).unwrap();
        assert_eq!(got.len(), samples.len() + 1);
        for (g, w) in got[1..].iter().zip(&samples) {
            assert_eq!((g.t, g.v.to_bits()), (w.t, w.v.to_bits()), "{g:?} vs {w:?}");
        }
    }

    #[test]
    fn best_encoding_round_trips() {
        let reg = |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
            (0..120)
                .map(|i| (1_700_000_000_000 + i * 15_000 + (i * 7) % 5, f(i)))
                .collect()
        };
        check_best(&[(5, 1.0)], Encoding::Packed);
        check_best(&reg(&|_| 42.5), Encoding::Packed);
        check_best(&reg(&|i| (i * 7) as f64), Encoding::Packed);
        check_best(&reg(&|i| (i * 13) as f64 / 100.0), Encoding::Packed);
        check_best(&reg(&|i| (i * 4096 * 3) as f64 + 1e12), Encoding::Packed);
        check_best(&reg(&|i| -(i as f64 + 1.0) / 1000.0), Encoding::Packed);
        check_best(
            &reg(&|i| if i == 3 { f64::NAN } else { 1.0 }),
            Encoding::Xor,
        );
        // A smooth float series: deltas of the bit patterns beat XOR's windows.
        check_best(&reg(&|i| (i as f64).sqrt()), Encoding::Packed);
        // Sign changes make bit-pattern deltas 64 bits wide: still under XOR's ~9.4 bytes.
        check_best(&reg(&|i| ((i as f64) * 0.7).sin() * 3.3), Encoding::Packed);
        check_best(&[(0, -0.0), (1, 0.0)], Encoding::Packed);
        check_best(
            &[(i64::MIN, 1.0), (0, 2.0), (i64::MAX, 3.0)],
            Encoding::Packed,
        );
        check_best(&[(0, 9e15), (1, -9e15), (2, 1e300)], Encoding::Packed);
        let mut rng = Rng(9);
        for _ in 0..300 {
            let n = 1 + rng.below(130) as i64;
            let scale = rng.below(4) as i32;
            let s: Vec<(i64, f64)> = (0..n)
                .map(|i| {
                    let t = i * 10_000 + rng.below(50) as i64;
                    let v = (rng.below(1 << 40) as f64 - (1u64 << 39) as f64) / 10f64.powi(scale);
                    (t, v)
                })
                .collect();
            let samples: Vec<Sample> = s.iter().map(|&(t, v)| Sample { t, v }).collect();
            let mut buf = Vec::new();
            let enc = encode_best(&samples, &mut buf);
            let mut got = Vec::new();
            decode_into(enc, &buf, &mut got).unwrap();
            assert_eq!(got.len(), samples.len());
            for (g, w) in got.iter().zip(&samples) {
                assert_eq!((g.t, g.v.to_bits()), (w.t, w.v.to_bits()));
            }
        }
    }

    #[test]
    fn packed_junk_is_an_error_not_a_panic() {
        let mut rng = Rng(11);
        let mut good = Vec::new();
        let s: Vec<Sample> = (0..50)
            .map(|i| Sample {
                t: i * 1000,
                v: i as f64 * 0.5,
            })
            .collect();
        assert!(encode_packed(&s, &mut good));
        for cut in 0..good.len() {
            assert!(
                decode_packed(&good[..cut], &mut Vec::new()).is_err(),
                "cut {cut}"
            );
        }
        for _ in 0..3000 {
            let mut b = good.clone();
            let i = rng.below(b.len() as u64) as usize;
            b[i] ^= 1 << rng.below(8);
            let _ = decode_packed(&b, &mut Vec::new());
            let junk: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            let _ = decode_packed(&junk, &mut Vec::new());
        }
    }

    #[track_caller]
    fn check_any(enc: Encoding, buf: &[u8], want: &[Sample]) {
        let mut got = vec![Sample { t: -1, v: -1.0 }];
        decode_into(enc, buf, &mut got).unwrap();
        assert_eq!(got.len(), want.len() + 1);
        assert_eq!(count(enc, buf).unwrap(), want.len() as u64);
        for (g, w) in got[1..].iter().zip(want) {
            assert_eq!((g.t, g.v.to_bits()), (w.t, w.v.to_bits()), "{g:?} vs {w:?}");
        }
    }

    #[test]
    fn packed_float_bits_are_exact() {
        let specials = [
            f64::NAN,
            STALE_NAN,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            -1.5e-300,
        ];
        let mut rng = Rng(21);
        for round in 0..200 {
            let n = 1 + rng.below(600) as usize;
            let mut v = rng.next() as f64 / 7.0;
            let samples: Vec<Sample> = (0..n)
                .map(|i| {
                    v += (rng.next() % 1_000_000) as f64 / 3.0;
                    let v = if round % 3 == 0 && rng.below(10) == 0 {
                        specials[rng.below(specials.len() as u64) as usize]
                    } else {
                        v
                    };
                    Sample {
                        t: i as i64 * 15_000 + rng.below(3) as i64,
                        v,
                    }
                })
                .collect();
            let mut buf = vec![7u8; 3];
            assert!(encode_packed(&samples, &mut buf));
            assert_eq!(&buf[..3], &[7, 7, 7]);
            check_any(Encoding::Packed, &buf[3..], &samples);
        }
    }

    #[test]
    fn float_counter_packs_smaller_than_xor() {
        // A byte counter with fractional increments (no short decimal form).
        let mut v = 1e10 / 3.0;
        let samples: Vec<Sample> = (0..480)
            .map(|i| {
                v += 2e5 * (1.0 + (i as f64 * 0.37).sin() / 2.0);
                Sample { t: i * 15_000, v }
            })
            .collect();
        let mut buf = Vec::new();
        assert_eq!(encode_best(&samples, &mut buf), Encoding::Packed);
        let mut xor = Encoder::new();
        samples.iter().for_each(|s| {
            xor.append(s.t, s.v);
        });
        assert!(
            buf.len() < xor.bytes().len(),
            "{} vs {}",
            buf.len(),
            xor.bytes().len()
        );
        check_any(Encoding::Packed, &buf, &samples);
    }

    #[test]
    fn zstd_round_trips_and_falls_back() {
        // Repetitive values compress; the decoder sees the same samples.
        let rep: Vec<Sample> = (0..2000)
            .map(|i| Sample {
                t: i * 15_000,
                v: [1.25, 7.5, 1e9 / 3.0, 2.0][(i % 4) as usize],
            })
            .collect();
        let mut buf = vec![1u8, 2];
        assert_eq!(encode_cold(&rep, 3, &mut buf), Encoding::Zstd);
        assert_eq!(&buf[..2], &[1, 2]);
        check_any(Encoding::Zstd, &buf[2..], &rep);
        // Incompressible values stay in their plain encoding.
        let mut rng = Rng(5);
        let noise: Vec<Sample> = (0..300)
            .map(|i| Sample {
                t: i * 15_000,
                v: f64::from_bits(rng.next() >> 2),
            })
            .collect();
        let mut buf = Vec::new();
        let enc = encode_cold(&noise, 3, &mut buf);
        assert_ne!(enc, Encoding::Zstd);
        check_any(enc, &buf, &noise);
    }

    #[test]
    fn zstd_junk_is_an_error_not_a_panic() {
        let rep: Vec<Sample> = (0..500)
            .map(|i| Sample {
                t: i * 15_000,
                v: (i % 3) as f64 / 3.0,
            })
            .collect();
        let mut good = Vec::new();
        assert_eq!(encode_cold(&rep, 3, &mut good), Encoding::Zstd);
        for cut in 0..good.len() {
            assert!(
                decode_into(Encoding::Zstd, &good[..cut], &mut Vec::new()).is_err(),
                "cut {cut}"
            );
        }
        let mut rng = Rng(13);
        for _ in 0..2000 {
            let mut b = good.clone();
            let i = rng.below(b.len() as u64) as usize;
            b[i] ^= 1 << rng.below(8);
            let _ = decode_into(Encoding::Zstd, &b, &mut Vec::new());
        }
        // Nested zstd and a frame claiming a huge content size are refused before decompressing.
        let mut nested = good.clone();
        nested[0] = Encoding::Zstd as u8;
        assert!(decode_into(Encoding::Zstd, &nested, &mut Vec::new()).is_err());
        let big = zstd::bulk::compress(&vec![0u8; 5 << 20], 1).unwrap();
        let mut bomb = vec![Encoding::Xor as u8, 1];
        bomb.extend_from_slice(&big);
        let err = decode_into(Encoding::Zstd, &bomb, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("content size"), "{err}");
    }

    /// The value mode byte of a Packed chunk of regular timestamps (`tw` = 0).
    fn packed_mode(buf: &[u8]) -> u8 {
        let (_, r) = crate::varint::uvarint(buf).unwrap();
        let (_, r) = crate::varint::varint(r).unwrap();
        let (_, r) = crate::varint::varint(r).unwrap();
        assert_eq!(r[0], 0, "timestamps not regular");
        r[1]
    }

    #[test]
    fn frame_of_reference_modes() {
        // (values, expected mode, at most this many bytes)
        #[track_caller]
        fn check(values: &[f64], want_mode: u8, max_len: usize) {
            let samples: Vec<Sample> = values
                .iter()
                .enumerate()
                .map(|(i, &v)| Sample {
                    t: 1_000 + i as i64 * 15_000,
                    v,
                })
                .collect();
            let mut buf = vec![0xee];
            assert!(encode_packed(&samples, &mut buf));
            assert_eq!(buf[0], 0xee);
            let buf = &buf[1..];
            assert_eq!(packed_mode(buf), want_mode, "{values:?}");
            assert!(buf.len() <= max_len, "{} > {max_len} bytes", buf.len());
            check_any(Encoding::Packed, buf, &samples);
        }
        let mut rng = Rng(42);
        // A counter growing by 1000..2000 a step: 10 bits per entry, not zigzag's 12.
        let mut c = 5e6;
        let counter: Vec<f64> = (0..480)
            .map(|_| {
                c += (1000 + rng.below(1000)) as f64;
                c
            })
            .collect();
        check(&counter, MODE_DECIMAL_FOR, 24 + 479 * 10 / 8 + 1);
        // The same with two decimals.
        let cents: Vec<f64> = counter.iter().map(|v| v / 100.0).collect();
        check(&cents, MODE_DECIMAL_FOR, 24 + 479 * 10 / 8 + 1);
        // A fixed rate: no entry bits at all.
        let steady: Vec<f64> = (0..480).map(|i| (i * 4096) as f64).collect();
        check(&steady, MODE_DECIMAL_FOR, 24);
        // A counter of full-precision floats: frame of reference on the bit patterns.
        let mut f = 1e10 / 3.0;
        let floats: Vec<f64> = (0..480)
            .map(|_| {
                f += 1e5 + rng.below(100_000) as f64 / 7.0;
                f
            })
            .collect();
        check(&floats, MODE_FLOAT_BITS_FOR, 480 * 6);
        // A gauge going both ways stays zigzag; so does a single value.
        let gauge: Vec<f64> = (0..480).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        check(&gauge, MODE_DECIMAL, 24 + 479 * 4 / 8 + 1);
        check(&[1.0, 2.0], MODE_DECIMAL, 16);
        // Extremes: deltas spanning the whole i64 range wrap exactly.
        check(
            &[
                0.0,
                f64::MAX,
                -f64::MAX,
                f64::MIN_POSITIVE,
                1.0,
                f64::INFINITY,
            ],
            MODE_FLOAT_BITS,
            64,
        );
        check(&[-9e15, 9e15, 9e15 - 1.0], MODE_DECIMAL, 64);
        let wide: Vec<f64> = (0..100).map(|i| i as f64 * 1e13 - 4e14).collect();
        check(&wide, MODE_DECIMAL_FOR, 32);
    }

    #[test]
    fn frame_of_reference_damage_is_an_error() {
        let samples: Vec<Sample> = (0..50)
            .map(|i| Sample {
                t: i * 1000,
                v: (i * i) as f64,
            })
            .collect();
        let mut buf = Vec::new();
        encode_packed(&samples, &mut buf);
        assert_eq!(packed_mode(&buf), MODE_DECIMAL_FOR);
        let mut out = Vec::new();
        for cut in 0..buf.len() {
            out.clear();
            assert!(
                decode_packed(&buf[..cut], &mut out).is_err(),
                "cut at {cut} of {}",
                buf.len()
            );
        }
        // Any single byte changed: decodes or errs, never panics.
        for i in 0..buf.len() {
            for b in [0u8, 0x7f, 0x80, 0xff] {
                let mut d = buf.clone();
                d[i] = b;
                out.clear();
                let _ = decode_packed(&d, &mut out);
            }
        }
    }

    /// The Packed decoder of format version 2 as first written (one bit-cursor read per entry):
    /// the reference the block-kernel decoder must agree with on every input, good or bad.
    mod reference {
        use super::super::{
            Bits, Error, MAX_SCALE, MODE_CONSTANT, MODE_DECIMAL, MODE_DECIMAL_FOR, MODE_FLOAT_BITS,
            MODE_FLOAT_BITS_FOR, Result, Sample, unzigzag,
        };

        /// The hot loop of [`unpack_deltas`] for entries of `vw` (1..=56) bits: one unaligned
        /// big-endian load per entry, bounds-checked once (reads past the end of `r` see zero bits).
        /// `FRAME`: entries are `delta - min` (frame of reference), else zigzag. Sets each `v` to
        /// `to_f` of the running sum `x`; returns the bits read. Kept out of line so that its state
        /// stays in registers.
        #[inline(never)]
        fn unpack_narrow<const FRAME: bool>(
            r: &[u8],
            vals: &mut [Sample],
            mut x: i64,
            vw: u32,
            tz: u32,
            min: i64,
            to_f: impl Fn(i64) -> f64,
        ) -> usize {
            let shift = 64 - vw;
            let step = vw as usize;
            let mut pos = 0usize;
            for s in vals {
                let i = pos >> 3;
                let word = match r.get(i..i + 8) {
                    Some(&[a, b, c, d, e, f, g, h]) => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
                    _ => Bits {
                        data: r,
                        pos: i * 8,
                    }
                    .word(),
                };
                let z = (word << (pos & 7)) >> shift;
                pos += step;
                let d = if FRAME {
                    min.wrapping_add(z as i64)
                } else {
                    unzigzag(z)
                };
                x = x.wrapping_add(d << tz);
                s.v = to_f(x);
            }
            pos
        }

        /// Sets `vals[0]` to `to_f(x)`, then reads the `tz`/`vw` header (and with `frame`, the
        /// frame-of-reference `min`) and the packed deltas of the rest of the value run, setting
        /// `vals[1..]` to `to_f` of each following value.
        fn unpack_deltas(
            r: &[u8],
            vals: &mut [Sample],
            mut x: i64,
            frame: bool,
            to_f: impl Fn(i64) -> f64,
        ) -> Result<()> {
            let bad = |what: &str| Error::Corruption(format!("packed chunk: {what}"));
            if let Some(first) = vals.first_mut() {
                first.v = to_f(x);
            }
            if vals.len() < 2 {
                return Ok(());
            }
            let [tz, vw, r @ ..] = r else {
                return Err(bad("ends before the value widths"));
            };
            if *tz > 63 || *vw > 64 {
                return Err(bad(&format!("value shift {tz} or width {vw} too large")));
            }
            let (tz, vw) = (u32::from(*tz), u32::from(*vw));
            let (min, r) = if frame {
                crate::varint::varint(r).ok_or_else(|| bad("bad value minimum"))?
            } else {
                (0, r)
            };
            let vals = &mut vals[1..];
            let used = match (vw, frame) {
                // Every delta equals `min` (a counter growing at a fixed rate) or zero (a constant).
                (0, _) => {
                    let step = min.wrapping_shl(tz);
                    for s in vals {
                        x = x.wrapping_add(step);
                        s.v = to_f(x);
                    }
                    0
                }
                (1..=56, true) => unpack_narrow::<true>(r, vals, x, vw, tz, min, to_f),
                (1..=56, false) => unpack_narrow::<false>(r, vals, x, vw, tz, 0, to_f),
                _ => {
                    let mut br = Bits { data: r, pos: 0 };
                    for s in vals {
                        let z = br.take_var(vw);
                        let d = if frame {
                            min.wrapping_add(z as i64)
                        } else {
                            unzigzag(z)
                        };
                        x = x.wrapping_add(d.wrapping_shl(tz));
                        s.v = to_f(x);
                    }
                    br.pos
                }
            };
            let r = (r, used);
            if r.1 > r.0.len() * 8 {
                return Err(bad("ends inside the values"));
            }
            Ok(())
        }

        /// The decoder as it was before the block kernels (bit reads per entry).
        pub(super) fn decode_packed(chunk: &[u8], out: &mut Vec<Sample>) -> Result<()> {
            let bad = |what: &str| Error::Corruption(format!("packed chunk: {what}"));
            let (n, rest) = crate::varint::uvarint(chunk).ok_or_else(|| bad("bad sample count"))?;
            if n == 0 || n > u64::from(u16::MAX) {
                return Err(bad(&format!("sample count {n} out of range")));
            }
            let n = n as usize;
            let (t0, mut rest) =
                crate::varint::varint(rest).ok_or_else(|| bad("bad first timestamp"))?;
            let base = out.len();
            // Filled in place: timestamps first, then values (no per-sample capacity checks).
            out.resize(base + n, Sample { t: t0, v: 0.0 });
            if n >= 2 {
                let (d0, r) = crate::varint::varint(rest).ok_or_else(|| bad("bad first delta"))?;
                let (&tw, r) = r
                    .split_first()
                    .ok_or_else(|| bad("ends before the timestamp width"))?;
                if tw > 64 {
                    return Err(bad(&format!("timestamp width {tw} > 64")));
                }
                let mut br = Bits { data: r, pos: 0 };
                let t1 = t0.wrapping_add(d0);
                let ts = &mut out[base + 1..];
                if tw == 0 {
                    // Regular timestamps (the common case): no bits to read.
                    for (j, s) in ts.iter_mut().enumerate() {
                        s.t = t1.wrapping_add((j as i64).wrapping_mul(d0));
                    }
                } else {
                    let (mut t, mut d) = (t1, d0);
                    if let Some((first, later)) = ts.split_first_mut() {
                        first.t = t;
                        for s in later {
                            let z = br.take_var(u32::from(tw));
                            d = d.wrapping_add(unzigzag(z));
                            t = t.wrapping_add(d);
                            s.t = t;
                        }
                    }
                }
                // Reads past the end saw zeros: checked once for the whole run.
                rest = r
                    .get(br.pos.div_ceil(8)..)
                    .filter(|_| br.pos <= r.len() * 8)
                    .ok_or_else(|| bad("ends inside the timestamps"))?;
            }
            let (&mode, rest) = rest
                .split_first()
                .ok_or_else(|| bad("ends before the value mode"))?;
            let vals = &mut out[base..];
            match mode {
                MODE_CONSTANT => {
                    let (b, _) = rest
                        .split_first_chunk::<8>()
                        .ok_or_else(|| bad("ends inside the constant"))?;
                    let v = f64::from_bits(u64::from_le_bytes(*b));
                    vals.iter_mut().for_each(|s| s.v = v);
                }
                MODE_DECIMAL | MODE_DECIMAL_FOR => {
                    let [k, r @ ..] = rest else {
                        return Err(bad("ends before the scale"));
                    };
                    if u32::from(*k) > MAX_SCALE {
                        return Err(bad(&format!("decimal scale {k} > {MAX_SCALE}")));
                    }
                    let p = 10f64.powi(i32::from(*k));
                    let (x, r) = crate::varint::varint(r).ok_or_else(|| bad("bad first value"))?;
                    // One loop per case: no test of `k` per sample.
                    let frame = mode == MODE_DECIMAL_FOR;
                    if *k == 0 {
                        unpack_deltas(r, vals, x, frame, |x| x as f64)?;
                    } else {
                        unpack_deltas(r, vals, x, frame, move |x| x as f64 / p)?;
                    }
                }
                MODE_FLOAT_BITS | MODE_FLOAT_BITS_FOR => {
                    let (b, r) = rest
                        .split_first_chunk::<8>()
                        .ok_or_else(|| bad("ends inside the first value"))?;
                    let x = i64::from_le_bytes(*b);
                    unpack_deltas(r, vals, x, mode == MODE_FLOAT_BITS_FOR, |x| {
                        f64::from_bits(x as u64)
                    })?;
                }
                m => return Err(bad(&format!("unknown value mode {m}"))),
            }
            Ok(())
        }
    }

    /// Both decoders give the same samples bit for bit, or both refuse.
    #[track_caller]
    fn check_same_as_reference(chunk: &[u8]) {
        let mut want = vec![Sample { t: 3, v: 3.0 }];
        let want_res = reference::decode_packed(chunk, &mut want);
        let mut got = vec![Sample { t: 3, v: 3.0 }];
        let got_res = decode_packed(chunk, &mut got);
        match (want_res, got_res) {
            (Ok(()), Ok(())) => {
                let bits =
                    |s: &[Sample]| s.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{chunk:?}");
            }
            (Err(_), Err(_)) => {}
            (w, g) => panic!("reference {w:?}, new {g:?} on {chunk:?}"),
        }
    }

    #[test]
    fn packed_decoder_agrees_with_the_reference() {
        let mut rng = Rng(77);
        for round in 0..400 {
            let n = 1 + rng.below(if round % 4 == 0 { 3000 } else { 600 }) as usize;
            // Timestamps: regular, jittered by a few ms, or wild (wide entries).
            let jitter = [0, 4, 1 << 20, 1 << 40][round % 4];
            let mut t = rng.next() as i64 >> 4;
            let mut v = (rng.below(1 << 30) as f64) / [1.0, 100.0, 3.0][round % 3];
            let kind = rng.below(6);
            let samples: Vec<Sample> = (0..n)
                .map(|i| {
                    t = t.wrapping_add(
                        15_000
                            + if jitter > 0 {
                                rng.below(jitter) as i64
                            } else {
                                0
                            },
                    );
                    v = match kind {
                        0 => v,                                      // constant
                        1 => v + (1000 + rng.below(64)) as f64,      // integer counter (frame)
                        2 => v + rng.below(1 << 12) as f64 - 2048.0, // gauge (zigzag)
                        3 => (i as f64 * 0.37).sin() * 1e3,          // float gauge (float bits)
                        4 => v + rng.next() as f64 / 1e15,           // float counter
                        _ => f64::from_bits(rng.next()),             // any bits, wide deltas
                    };
                    Sample { t, v }
                })
                .collect();
            let mut buf = Vec::new();
            assert!(encode_packed(&samples, &mut buf));
            check_same_as_reference(&buf);
            check_any(Encoding::Packed, &buf, &samples);
            // Truncated anywhere, and damaged: never a panic, always the reference's answer.
            for _ in 0..20 {
                let cut = rng.below(buf.len() as u64 + 1) as usize;
                check_same_as_reference(&buf[..cut]);
                let mut d = buf.clone();
                let i = rng.below(d.len() as u64) as usize;
                d[i] ^= 1 << rng.below(8);
                check_same_as_reference(&d);
                let i = rng.below(d.len() as u64) as usize;
                d[i] = [0, 0x40, 0x7f, 0x80, 0xff][rng.below(5) as usize];
                check_same_as_reference(&d);
            }
        }
        for _ in 0..3000 {
            let junk: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            check_same_as_reference(&junk);
        }
    }
}
