//! Big tables on transparent huge pages. A million flows' tables span hundreds of
//! megabytes read at random: on 4 KiB pages nearly every lookup also misses the TLB
//! and walks the page tables. Hosts commonly run THP in `madvise` mode, so the allocator
//! of the `strata` binary asks for huge pages on every allocation of 2 MiB or more (the
//! flow, path and connection tables once they are big; nothing small), and leaves the
//! rest to the system allocator. Measured (README "Benchmarks"): 1M-flow hits 2.6 -> 3.9
//! Mpps, as with glibc's own `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`.
//!
//! ```
//! #[global_allocator]
//! static ALLOC: strata_dataplane::huge::HugePageAlloc = strata_dataplane::huge::HugePageAlloc;
//!
//! fn main() {
//!     // 4 MiB: advised onto huge pages; the memory behaves as any other.
//!     let table = vec![7u8; 4 << 20];
//!     assert_eq!(table.iter().map(|&b| u64::from(b)).sum::<u64>(), 7 * (4 << 20));
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// From this size on, an allocation is advised onto huge pages.
const HUGE: usize = 2 << 20;

/// The system allocator, with huge pages advised for big allocations.
pub struct HugePageAlloc;

// SAFETY: every call is the system allocator's, with the same arguments; `advise` only
// gives the kernel advice about pages the allocation owns.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let q = unsafe { System.realloc(p, layout, new_size) };
        // Only a grown allocation is advised: a shrunk one no longer owns its old tail.
        if new_size > layout.size() {
            advise(q, new_size);
        }
        q
    }
}

/// Advises the whole pages of a big allocation onto transparent huge pages (Linux);
/// where the kernel does not do THP, the advice is refused and nothing changes.
fn advise(p: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    if len >= HUGE && !p.is_null() {
        const PAGE: usize = 4096;
        let start = (p as usize).next_multiple_of(PAGE);
        let end = (p as usize + len) & !(PAGE - 1);
        if end > start {
            // SAFETY: the range lies within the allocation just made; madvise reads
            // nothing and only records the advice.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_and_small_allocations_work_as_the_systems() {
        for size in [16, 4096, HUGE, HUGE * 3 + 100] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            // SAFETY: a non-zero layout; the memory is written within it and freed once.
            unsafe {
                let p = HugePageAlloc.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(*p.add(size - 1), 0);
                *p.add(size - 1) = 7;
                let q = HugePageAlloc.realloc(p, layout, size * 2);
                assert_eq!(*q.add(size - 1), 7);
                HugePageAlloc.dealloc(q, Layout::from_size_align(size * 2, 64).unwrap());
            }
        }
    }
}
