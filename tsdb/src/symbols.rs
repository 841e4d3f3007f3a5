//! The head's interned label strings: every distinct label name and value is stored once and
//! referred to by a `u32` id, so a series' label set costs 8 bytes per pair in the head instead of
//! two heap strings. Ids are reference counted by the series that use them and reused once free.
//!
//! Also a cheap hasher for the head's integer keys (series refs, label hashes), which are either
//! sequential or already well mixed: SipHash would cost more than the lookups it protects.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
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

    /// Heap bytes of the table (the slots of its pages and the page map).
    pub fn heap_bytes(&self) -> u64 {
        let slots = self.pages.len() * PAGE as usize * std::mem::size_of::<Option<T>>();
        (slots + self.pages.capacity() * (8 + std::mem::size_of::<Page<T>>() + 1)) as u64
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.pages.values().flat_map(|p| p.slots.iter().flatten())
    }
}

/// Bits of a string's hash that [`Symbols`] keeps: in tests only 4, so that every test that
/// interns more than a few strings exercises the collision lists.
#[cfg(not(test))]
const HASH_MASK: u32 = u32::MAX;
#[cfg(test)]
const HASH_MASK: u32 = 0xf;

/// Bytes of one page of [`Symbols`]' strings (longer strings get a page of their own).
const STRING_PAGE: usize = 64 << 10;

/// One interned string (where it is in the pages) and the number of label pairs using it (0:
/// free slot).
#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    page: u32,
    off: u32,
    len: u32,
    refs: u32,
}

/// Interned strings with reference counts. The strings are stored back to back in pages of
/// [`STRING_PAGE`] bytes (no allocation, header and pointer per string), located by their entry;
/// the lookup by string goes through a map from the string's 32-bit hash to its id (8 bytes a string
/// instead of a second pointer to the string and the id, 24), with the rare strings whose
/// hashes collide listed apart. Released strings leave garbage in the pages until it exceeds
/// the live bytes, when [`Symbols::shrink`] copies the live ones into new pages.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    /// 32-bit string hash -> id of a string with that hash (8 bytes a string).
    ids: IntMap<u32, u32>,
    /// String hash -> ids of further strings with that hash (about one pair in 100,000).
    collisions: IntMap<u32, Vec<u32>>,
    hasher: std::hash::RandomState,
    entries: Vec<Entry>,
    free: Vec<u32>,
    pages: Vec<String>,
    /// Bytes of released strings still in `pages`.
    garbage: usize,
    /// Bytes of live strings.
    live: usize,
}

impl Symbols {
    fn hash(&self, s: &str) -> u32 {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(s) >> 32) as u32 & HASH_MASK
    }

    fn find(&self, h: u32, s: &str) -> Option<u32> {
        let first = self.ids.get(&h)?;
        std::iter::once(first)
            .chain(self.collisions.get(&h).into_iter().flatten())
            .copied()
            .find(|&id| {
                self.entries.get(id as usize).is_some_and(|e| e.refs > 0) && self.str(id) == s
            })
    }

    /// The id of `s`, if interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.find(self.hash(s), s)
    }

    /// The id of `s`, interning it if new; counts one more user.
    pub fn intern(&mut self, s: &str) -> u32 {
        let h = self.hash(s);
        if let Some(id) = self.find(h, s) {
            if let Some(e) = self.entries.get_mut(id as usize) {
                e.refs = e.refs.saturating_add(1);
            }
            return id;
        }
        let entry = self.store(s);
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(e) = self.entries.get_mut(id as usize) {
                    *e = entry;
                }
                id
            }
            None => {
                // 2^32 distinct strings would need far more memory than any head has.
                let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
                self.entries.push(entry);
                id
            }
        };
        match self.ids.entry(h) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(h).or_default().push(id)
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
        }
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
        if e.refs > 0 {
            return;
        }
        let len = e.len as usize;
        self.garbage += len;
        self.live -= len;
        let h = self.hash(self.str(id));
        self.free.push(id);
        let others = self.collisions.get_mut(&h);
        if self.ids.get(&h) == Some(&id) {
            match others.and_then(Vec::pop) {
                Some(next) => {
                    self.ids.insert(h, next);
                }
                None => {
                    self.ids.remove(&h);
                }
            }
        } else if let Some(o) = others {
            o.retain(|x| *x != id);
        }
        if self.collisions.get(&h).is_some_and(Vec::is_empty) {
            self.collisions.remove(&h);
        }
    }

    /// Copies `s` into the pages: its entry, with one user.
    fn store(&mut self, s: &str) -> Entry {
        let fits = self
            .pages
            .last()
            .is_some_and(|p| p.capacity() - p.len() >= s.len());
        if !fits {
            self.pages
                .push(String::with_capacity(s.len().max(STRING_PAGE)));
        }
        let page = self.pages.len() - 1;
        let p = &mut self.pages[page];
        let off = p.len();
        p.push_str(s);
        self.live += s.len();
        // Label strings are far shorter than 4 GiB (request and scrape bodies are limited), and
        // pages fewer than 2^32.
        Entry {
            page: u32::try_from(page).unwrap_or(u32::MAX),
            off: u32::try_from(off).unwrap_or(u32::MAX),
            len: u32::try_from(s.len()).unwrap_or(u32::MAX),
            refs: 1,
        }
    }

    /// The string of `id` (empty for an unknown id).
    pub fn str(&self, id: u32) -> &str {
        self.entries
            .get(id as usize)
            .and_then(|e| {
                let (off, len) = (e.off as usize, e.len as usize);
                self.pages.get(e.page as usize)?.get(off..off + len)
            })
            .unwrap_or("")
    }

    /// Number of strings interned.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Heap bytes: the strings, the id map and the entries.
    pub fn heap_bytes(&self) -> u64 {
        let strings: usize = self.pages.iter().map(String::capacity).sum();
        let ids = self.ids.capacity() * (8 + 1);
        let entries = self.entries.capacity() * std::mem::size_of::<Entry>();
        (strings + ids + entries + 4 * self.free.capacity()) as u64
    }

    /// Gives back all spare capacity.
    pub fn shrink_to_fit(&mut self) {
        self.shrink();
        self.entries.shrink_to_fit();
        self.free.shrink_to_fit();
    }

    /// Gives back memory left over by many releases.
    pub fn shrink(&mut self) {
        if self.garbage > self.live + STRING_PAGE {
            let old = std::mem::take(&mut self.pages);
            let entries = std::mem::take(&mut self.entries);
            (self.live, self.garbage) = (0, 0);
            self.entries = entries
                .into_iter()
                .map(|e| {
                    if e.refs == 0 {
                        return Entry::default();
                    }
                    let (off, len) = (e.off as usize, e.len as usize);
                    let s = old
                        .get(e.page as usize)
                        .and_then(|p| p.get(off..off + len))
                        .unwrap_or("");
                    Entry {
                        refs: e.refs,
                        ..self.store(s)
                    }
                })
                .collect();
        }
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
    fn released_strings_are_compacted() {
        let mut s = Symbols::default();
        let long: Vec<String> = (0..300).map(|i| format!("{i:0>1000}")).collect();
        let ids: Vec<u32> = long.iter().map(|l| s.intern(l)).collect();
        // A string longer than a page gets one of its own.
        let huge = "h".repeat(STRING_PAGE + 1);
        let h = s.intern(&huge);
        let before = s.heap_bytes();
        for &id in &ids[10..] {
            s.release(id);
        }
        s.shrink();
        assert!(
            s.heap_bytes() < before / 2,
            "{} of {before}",
            s.heap_bytes()
        );
        for (l, &id) in long.iter().zip(&ids).take(10) {
            assert_eq!((s.get(l), s.str(id)), (Some(id), l.as_str()));
        }
        assert_eq!(s.str(h), huge);
        assert_eq!(s.get(&long[10]), None);
        assert_eq!(s.len(), 11);
        let again = s.intern(&long[20]);
        assert_eq!(s.str(again), long[20]);
    }

    #[test]
    fn colliding_hashes() {
        // 4-bit hashes in tests: 200 strings share 16 hashes.
        let mut s = Symbols::default();
        let names: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
        let ids: Vec<u32> = names.iter().map(|n| s.intern(n)).collect();
        assert_eq!(s.len(), 200);
        for (n, &id) in names.iter().zip(&ids) {
            assert_eq!((s.get(n), s.str(id)), (Some(id), n.as_str()));
        }
        // Release every third, in an order that removes both first and later ids of a hash.
        for (i, &id) in ids.iter().enumerate().rev() {
            if i % 3 == 0 {
                s.release(id);
            }
        }
        for (i, (n, &id)) in names.iter().zip(&ids).enumerate() {
            let want = if i % 3 == 0 { None } else { Some(id) };
            assert_eq!(s.get(n), want, "{n}");
        }
        assert_eq!(s.len(), 200 - 67);
        // Interned again: found once, whatever id it gets.
        let again = s.intern("v0");
        assert_eq!((s.get("v0"), s.str(again)), (Some(again), "v0"));
        assert_eq!(s.intern("v1"), ids[1]);
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
