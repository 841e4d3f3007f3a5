//! A cache prefetch hint: the crate's only `unsafe` besides the memory maps of [`crate::mmap`].

#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `p` into its caches. Nothing is read or
/// written: the address may be anything.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and PREFETCHT0 only hints the cache: it does
    // not access memory, so no address (dangling, unaligned or unmapped) can fault or race.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches every cache line of `*p`.
#[inline(always)]
pub(crate) fn prefetch_value<T>(p: &T) {
    let first: *const u8 = std::ptr::from_ref(p).cast();
    let size = std::mem::size_of::<T>();
    let mut at = 0;
    while at < size {
        prefetch(first.wrapping_add(at));
        at += 64;
    }
    // The last line, if `*p` starts late in its first one.
    prefetch(first.wrapping_add(size.saturating_sub(1)));
}
