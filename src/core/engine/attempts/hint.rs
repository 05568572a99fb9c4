//! Hints to the hardware and the kernel for the attempt table: cache
//! prefetches and transparent huge pages.
//!
//! The one place under `core` allowed `unsafe` and an OS call: both are
//! hints that change no state the engine can observe (a prefetch loads a
//! cache line; `MADV_HUGEPAGE` changes how pages are backed, never their
//! contents), so the core stays deterministic and IO-free in every way
//! that matters. If either fails or is unavailable, the table works the
//! same, a little slower.
#![allow(unsafe_code)]

/// Asks the kernel to back a large table with 2 MiB pages. With a million
/// sources the table spans ~50 MiB, and with 4 KiB pages nearly every
/// lookup also misses the TLB; on kernels where transparent huge pages are
/// "madvise" only (Debian's default), nothing happens unless we ask. A hint:
/// if it fails, the table works the same, a little slower.
pub(super) fn advise_huge_pages<T>(v: &Vec<T>) {
    const PAGE: usize = 4096;
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    let start = (v.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (v.as_ptr() as usize + bytes) / PAGE * PAGE;
    let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return;
    };
    if end > start {
        // SAFETY: the range lies inside the vector's own allocation, rounded
        // inwards to whole pages; MADV_HUGEPAGE only changes how the kernel
        // backs those pages, never their contents or validity.
        let _ = unsafe {
            nix::sys::mman::madvise(addr, end - start, nix::sys::mman::MmapAdvise::MADV_HUGEPAGE)
        };
    }
}

/// Starts loading the cache line holding `r`. A hint only: it changes no
/// state and cannot fault, so it is safe whatever it is given.
#[inline(always)]
pub(super) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` never dereferences in a way that can fault or
    // be observed; any address is allowed, and this one is a live reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
