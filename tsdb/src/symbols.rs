//! The head's interned label strings: every distinct label name and value is stored once and
//! referred to by a `u32` id, so a series' label set costs 8 bytes per pair in the head instead of
//! two heap strings. Ids are reference counted by the series that use them and reused once free.
//!
//! Also a cheap hasher for the head's integer keys (series refs, label hashes), which are either
//! sequential or already well mixed: SipHash would cost more than the lookups it protects.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hashes one integer key by a multiplication (Fibonacci hashing) plus a rotation, so both the
/// high bits (hashbrown's control bytes) and the low bits (its bucket index) depend on every
/// bit of the key.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; kept correct for any other key.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let m = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = m ^ (m >> 29);
    }
}

/// A `HashMap` keyed by integers with [`IntHasher`].
pub(crate) type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Slots per page of a [`RefTable`]: small enough that a few long-lived series do not pin much
/// memory once their neighbours are gone, large enough that the page map stays tiny.
const PAGE: u64 = 256;

/// One page of a [`RefTable`].
#[derive(Debug)]
struct Page<T> {
    slots: Box<[Option<T>]>,
    used: u32,
}

/// Values by series ref, for refs handed out sequentially: pages of [`PAGE`] slots keyed by
/// `ref / PAGE`. A lookup reads the (small, cache-resident) page map and one slot, and
/// neighbouring refs share cache lines; 8 bytes per value for pointer-sized `T`, against about
/// 27 for a hash map. A page is freed with its last value.
#[derive(Debug)]
pub(crate) struct RefTable<T> {
    pages: IntMap<u64, Page<T>>,
    len: usize,
}

impl<T> Default for RefTable<T> {
    fn default() -> Self {
        Self {
            pages: IntMap::default(),
            len: 0,
        }
    }
}

impl<T> RefTable<T> {
    /// The value of `r`.
    #[inline]
    pub fn get(&self, r: &u64) -> Option<&T> {
        let page = self.pages.get(&(r / PAGE))?;
        page.slots.get((r % PAGE) as usize)?.as_ref()
    }

    /// True if `r` has a value.
    pub fn contains_key(&self, r: &u64) -> bool {
        self.get(r).is_some()
    }

    /// Sets the value of `r`; returns the previous one.
    pub fn insert(&mut self, r: u64, v: T) -> Option<T> {
        let page = self.pages.entry(r / PAGE).or_insert_with(|| Page {
            slots: (0..PAGE).map(|_| None).collect(),
            used: 0,
        });
        let old = page
            .slots
            .get_mut((r % PAGE) as usize)
            .and_then(|s| s.replace(v));
        if old.is_none() {
            page.used += 1;
            self.len += 1;
        }
        old
    }

    /// Removes the value of `r`.
    pub fn remove(&mut self, r: &u64) -> Option<T> {
        let page = self.pages.get_mut(&(r / PAGE))?;
        let old = page.slots.get_mut((r % PAGE) as usize)?.take()?;
        page.used -= 1;
        self.len -= 1;
        if page.used == 0 {
            self.pages.remove(&(r / PAGE));
        }
        Some(old)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.pages.values().flat_map(|p| p.slots.iter().flatten())
    }
}

/// One interned string and the number of label pairs using it (0: free slot).
#[derive(Debug)]
struct Entry {
    s: Arc<str>,
    refs: u32,
}

/// Interned strings with reference counts.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    entries: Vec<Entry>,
    free: Vec<u32>,
}

impl Symbols {
    /// The id of `s`, if interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The id of `s`, interning it if new; counts one more user.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            if let Some(e) = self.entries.get_mut(id as usize) {
                e.refs = e.refs.saturating_add(1);
            }
            return id;
        }
        let s: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(e) = self.entries.get_mut(id as usize) {
                    *e = Entry {
                        s: s.clone(),
                        refs: 1,
                    };
                }
                id
            }
            None => {
                // 2^32 distinct strings would need far more memory than any head has.
                let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
                self.entries.push(Entry {
                    s: s.clone(),
                    refs: 1,
                });
                id
            }
        };
        self.ids.insert(s, id);
        id
    }

    /// Counts one user less of `id`; the string is dropped with its last user.
    pub fn release(&mut self, id: u32) {
        let Some(e) = self.entries.get_mut(id as usize) else {
            return;
        };
        if e.refs == 0 {
            return;
        }
        e.refs -= 1;
        if e.refs == 0 {
            self.ids.remove(&e.s);
            e.s = Arc::from("");
            self.free.push(id);
        }
    }

    /// The string of `id` (empty for an unknown id).
    pub fn str(&self, id: u32) -> &str {
        self.entries.get(id as usize).map_or("", |e| &e.s)
    }

    /// Number of strings interned.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Gives back memory left over by many releases.
    pub fn shrink(&mut self) {
        if self.ids.capacity() > 4 * self.ids.len() + 64 {
            self.ids.shrink_to_fit();
        }
        while self.entries.last().is_some_and(|e| e.refs == 0) {
            self.entries.pop();
        }
        let len = self.entries.len();
        self.free.retain(|&id| (id as usize) < len);
        if self.entries.capacity() > 2 * len + 64 {
            self.entries.shrink_to_fit();
            self.free.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intern_release_reuse() {
        let mut s = Symbols::default();
        let a = s.intern("job");
        let b = s.intern("node");
        assert_eq!(s.intern("job"), a);
        assert_eq!((s.str(a), s.str(b), s.len()), ("job", "node", 2));
        s.release(a);
        assert_eq!(s.get("job"), Some(a), "one user left");
        s.release(a);
        assert_eq!(s.get("job"), None);
        assert_eq!(s.len(), 1);
        let c = s.intern("pod");
        assert_eq!(c, a, "a free id is reused");
        assert_eq!(s.str(c), "pod");
        // Releasing too often or unknown ids is harmless.
        s.release(b);
        s.release(b);
        s.release(999);
        assert_eq!(s.get("node"), None);
        assert_eq!(s.str(999), "");
        s.release(c);
        s.shrink();
        assert_eq!(s.len(), 0);
        assert_eq!(s.intern("x"), 0);
    }

    #[test]
    fn ref_table() {
        let mut t = RefTable::default();
        for r in [0u64, 1, 255, 256, 1 << 40, u64::MAX] {
            assert_eq!(t.insert(r, r), None);
        }
        assert_eq!(t.insert(1, 10), Some(1));
        assert_eq!(t.len(), 6);
        assert_eq!(
            (t.get(&1), t.get(&2), t.get(&u64::MAX)),
            (Some(&10), None, Some(&u64::MAX))
        );
        assert!(t.contains_key(&(1 << 40)));
        let mut all: Vec<u64> = t.values().copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 10, 255, 256, 1 << 40, u64::MAX]);
        assert_eq!(t.remove(&256), Some(256));
        assert_eq!(t.remove(&256), None);
        assert_eq!(t.pages.len(), 3, "the emptied page is freed");
        for r in [0, 1, 255, 1 << 40, u64::MAX] {
            assert!(t.remove(&r).is_some());
        }
        assert_eq!((t.len(), t.pages.len()), (0, 0));
    }

    #[test]
    fn int_hasher_spreads_sequential_keys() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IntHasher>::default();
        let top: std::collections::HashSet<u64> =
            (0..1000u64).map(|k| b.hash_one(k) >> 57).collect();
        assert!(top.len() > 100, "{} distinct top-7-bit values", top.len());
        let low: std::collections::HashSet<u64> =
            (0..1000u64).map(|k| b.hash_one(k) & 1023).collect();
        assert!(low.len() > 500, "{} distinct bucket indexes", low.len());
    }
}
