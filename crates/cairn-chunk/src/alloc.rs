//! The allocator setting the chunker's buffers want.
//!
//! Every chunk gets its own buffer of up to `max_size` (4 MiB), filled once and freed when the
//! chunk is stored. glibc's malloc serves blocks of that size with a fresh `mmap` each (its
//! threshold starts at 128 KiB and only adapts to what was last freed), so every chunk paid a
//! page fault per 4 KiB and the kernel zeroing its pages: measured, that cost the chunker more
//! than its own scan. Raising the mmap threshold above any chunk, and the trim threshold so that
//! freed chunks' memory is kept for the next ones, lets chunk buffers be recycled.

/// Serves blocks below this from malloc's heaps (above every chunk size), instead of `mmap`.
/// 32 MiB is the largest value older glibc versions accept.
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of a heap kept for reuse before it is returned to the system.
pub const TRIM_THRESHOLD: usize = 128 << 20;

/// Sets glibc malloc's mmap and trim thresholds to [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`],
/// so that chunk-sized buffers are recycled rather than mapped and faulted in afresh. A
/// process-wide setting: call it once, first thing, before threads start (the `cairn` binary
/// does; an embedding application decides for itself). Returns whether glibc took both; on
/// other C libraries it does nothing and returns false.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's parameters; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
