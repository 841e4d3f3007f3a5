//! Hash maps keyed by label sets with FNV-1a instead of SipHash: label sets are hashed several
//! times per series and step (grouping, matching, uniqueness checks), and FNV is several times
//! faster on the short strings labels are made of.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use pharos_model::Labels;

/// 64-bit FNV-1a.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by label sets.
pub(crate) type LabelMap<V> = HashMap<Labels, V, BuildHasherDefault<Fnv>>;
/// A map keyed by shared label sets.
pub(crate) type MetricMap<V> = HashMap<super::Metric, V, BuildHasherDefault<Fnv>>;
/// A set of borrowed label sets.
pub(crate) type LabelRefSet<'a> = HashSet<&'a Labels, BuildHasherDefault<Fnv>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Reference values of 64-bit FNV-1a.
        let h = |s: &[u8]| {
            let mut f = Fnv::default();
            f.write(s);
            f.finish()
        };
        assert_eq!(h(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(h(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut m: LabelMap<u32> = LabelMap::default();
        m.insert(Labels::from_pairs(&[("a", "1")]), 1);
        assert_eq!(m.get(&Labels::from_pairs(&[("a", "1")])), Some(&1));
    }
}
