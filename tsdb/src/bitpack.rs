//! Fast unpacking of fixed-width bit-packed entries (most significant bit first, as
//! [`crate::chunk`]'s Packed encoding writes them), [`BLOCK`] at a time.
//!
//! One kernel per width `w` (0..=64, picked from a table once per run) unpacks a block of 64
//! entries: they span exactly `8 * w` bytes, so every entry's byte offset and shifts are
//! compile-time constants: one unaligned big-endian load (a `u64` for `w` <= 56, a `u128`
//! above), a shift left and a shift right by constants. No bit-by-bit reads and no bounds check
//! per entry: a kernel checks once that its window of `8 * w + 16` bytes lies inside the input;
//! the last block, whose window may not, is read from a zero-padded copy.

/// Entries per block.
pub(crate) const BLOCK: usize = 64;

/// Bytes a block's window may need: 64 entries of 64 bits, and room for the last 16-byte load.
const MAX_WINDOW: usize = 8 * 64 + 16;

/// A block kernel: unpacks the 64 entries starting at byte `off` of `src` into `out`, or
/// returns false (and leaves `out` alone) if `src` holds fewer than `8 * w + 16` bytes there.
type Kernel = fn(src: &[u8], off: usize, out: &mut [u64; BLOCK]) -> bool;

/// The kernel for entries of `W` bits.
fn unpack_block<const W: usize>(src: &[u8], off: usize, out: &mut [u64; BLOCK]) -> bool {
    let Some(g) = src.get(off..).and_then(|s| s.get(..8 * W + 16)) else {
        return false;
    };
    let (groups, _) = out.as_chunks_mut::<8>();
    for (k, grp) in groups.iter_mut().enumerate() {
        // Eight entries take W bytes: group k starts at byte k * W.
        let base = k * W;
        for (j, o) in grp.iter_mut().enumerate() {
            let bit = j * W;
            let b = base + bit / 8;
            let sh = (bit % 8) as u32;
            *o = if W == 0 {
                0
            } else if W <= 56 {
                let word = g
                    .get(b..b + 8)
                    .and_then(|s| s.first_chunk::<8>())
                    .map_or(0, |c| u64::from_be_bytes(*c));
                (word << sh) >> (64 - W)
            } else {
                let word = g
                    .get(b..b + 16)
                    .and_then(|s| s.first_chunk::<16>())
                    .map_or(0, |c| u128::from_be_bytes(*c));
                ((word << sh) >> (128 - W)) as u64
            };
        }
    }
    true
}

macro_rules! kernels {
    ($($w:literal)*) => { [$(unpack_block::<$w> as Kernel,)*] };
}

/// The kernel of each width 0..=64.
static KERNELS: [Kernel; 65] = kernels!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
    33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62
    63 64
);

/// A run of `count` entries of `w` bits, read a block at a time (for reading two runs in step).
pub(crate) struct Unpacker<'a> {
    r: &'a [u8],
    w: u32,
    kernel: Kernel,
    /// Byte offset of the next block.
    off: usize,
    /// Entries not yet read.
    left: usize,
}

impl<'a> Unpacker<'a> {
    /// The run of `count` entries of `w` bits at the start of `r`, and the bytes it takes
    /// (`ceil(count * w / 8)`); `None` if `r` is shorter than that or `w` is over 64.
    pub(crate) fn new(r: &'a [u8], w: u32, count: usize) -> Option<(Self, usize)> {
        let bits = (count as u64).checked_mul(u64::from(w))?;
        let bytes = usize::try_from(bits.div_ceil(8)).ok()?;
        let kernel = *KERNELS.get(w as usize)?;
        if bytes > r.len() {
            return None;
        }
        let u = Self {
            r,
            w,
            kernel,
            off: 0,
            left: count,
        };
        Some((u, bytes))
    }

    /// Unpacks the next block into `out` and returns how many of its entries belong to the run
    /// ([`BLOCK`], fewer in the last block, 0 after it; `out` is unspecified past them).
    #[inline(always)]
    pub(crate) fn next_block(&mut self, out: &mut [u64; BLOCK]) -> usize {
        if self.left == 0 {
            return 0;
        }
        if !(self.kernel)(self.r, self.off, out) {
            // Near the end: the same kernel over a zero-padded copy of the rest.
            let rest = self.r.get(self.off..).unwrap_or(&[]);
            let mut pad = [0u8; MAX_WINDOW];
            let n = rest.len().min(MAX_WINDOW);
            pad[..n].copy_from_slice(&rest[..n]);
            (self.kernel)(&pad, 0, out);
        }
        let m = self.left.min(BLOCK);
        self.left -= m;
        self.off += 8 * self.w as usize;
        m
    }
}

/// Unpacks `count` entries of `w` bits from the start of `r`, calling `f` with each block of
/// [`BLOCK`] of them in order (the last block may be shorter; `f` may overwrite them). Returns
/// the bytes the entries take (`ceil(count * w / 8)`), or `None`, without calling `f`, if `r`
/// is shorter than that or `w` is over 64.
#[inline(always)]
pub(crate) fn for_each_block(
    r: &[u8],
    w: u32,
    count: usize,
    mut f: impl FnMut(&mut [u64]),
) -> Option<usize> {
    let (mut u, bytes) = Unpacker::new(r, w, count)?;
    let mut buf = [0u64; BLOCK];
    loop {
        let m = u.next_block(&mut buf);
        if m == 0 {
            return Some(bytes);
        }
        f(&mut buf[..m]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs `xs` at `w` bits, MSB first, bit by bit (the reference the kernels must agree with).
    fn pack(xs: &[u64], w: u32) -> Vec<u8> {
        let mut out = vec![0u8; (xs.len() * w as usize).div_ceil(8)];
        for (i, &x) in xs.iter().enumerate() {
            for k in 0..w {
                if (x >> (w - 1 - k)) & 1 == 1 {
                    let bit = i * w as usize + k as usize;
                    out[bit / 8] |= 0x80 >> (bit % 8);
                }
            }
        }
        out
    }

    fn unpack(r: &[u8], w: u32, n: usize) -> Option<(Vec<u64>, usize)> {
        let mut got = Vec::new();
        let mut blocks = 0;
        let used = for_each_block(r, w, n, |b| {
            assert!(
                b.len() == BLOCK || got.len() + b.len() == n,
                "short block inside"
            );
            got.extend_from_slice(b);
            blocks += 1;
        });
        if used.is_none() {
            assert_eq!(blocks, 0, "f called before refusing");
        }
        used.map(|u| (got, u))
    }

    #[track_caller]
    fn check(n: usize, w: u32, extra: usize, seed: u64) {
        let mut s = seed;
        let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
        let xs: Vec<u64> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s ^ (s >> 29)) & mask
            })
            .collect();
        let mut buf = pack(&xs, w);
        let want_bytes = buf.len();
        buf.extend(std::iter::repeat_n(0xA5, extra));
        assert_eq!(
            unpack(&buf, w, n),
            Some((xs, want_bytes)),
            "n {n} w {w} extra {extra}"
        );
        // One byte short: refused.
        if want_bytes > 0 {
            assert_eq!(unpack(&buf[..want_bytes - 1], w, n), None, "n {n} w {w}");
        }
    }

    #[test]
    fn every_width_and_length_round_trips() {
        for w in 0..=64 {
            for n in [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 479, 480, 1000] {
                for extra in [0, 1, 17, 600] {
                    check(n, w, extra, u64::from(w) * 1000 + n as u64);
                }
            }
        }
    }

    #[test]
    fn bad_widths_and_lengths_are_refused() {
        assert_eq!(unpack(&[0; 1000], 65, 3), None);
        assert_eq!(unpack(&[], 1, 3), None);
        assert_eq!(unpack(&[0; 7], 19, 3), None);
        assert_eq!(unpack(&[], 0, 3), Some((vec![0; 3], 0)));
        assert_eq!(unpack(&[], 64, 0), Some((vec![], 0)));
        assert_eq!(for_each_block(&[], 1, usize::MAX, |_| panic!()), None);
    }
}
