//! What the daemon gives back to the system once it has started.
//!
//! Start-up allocates memory that the running daemon never needs again:
//! parsing the command line and the config, checking nft sets, reading the
//! journal, compiling the capture filter. glibc keeps freed memory in the
//! heap for reuse, so at the end of start-up the heap's free memory is
//! returned (`malloc_trim`).
//!
//! The daemon's own code is left mapped. Unmapping it (`MADV_DONTNEED` on
//! the clean file pages) was tried: idle RSS fell by 1.7 MB, but the first
//! knock mapped 1.1 MB of it back and later knocks the rest, so it only
//! moved a figure until the first knock. doc/performance.md, Memory, has the
//! measurements.

/// Returns start-up's freed heap memory to the system (see the module
/// docs). Does nothing where the C library is not glibc.
pub fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the system; it
    // touches no allocated block.
    unsafe {
        libc::malloc_trim(0);
    }
}
