//! The global allocator of every binary we ship (`httvps`, the gateway,
//! `ht-server`, `hlhv-queen`): mimalloc, on ordinary 4 KiB pages.
//!
//! Why mimalloc: at full speed a tunnel frees and allocates 64 KiB buffers
//! across threads, and glibc's per-thread arenas gave the memory back and
//! faulted it in again (page faults and page clearing were ~10 % of the
//! client's CPU, ~11 % of the gateway's in an HTTP/3 download, ~9 % malloc
//! in the queen; bench/README.md).
//!
//! Why no huge pages: mimalloc asks the kernel for transparent huge pages
//! for its arenas, so memory is committed 2 MiB at a time. With 1,000 open
//! connections the client's peak was 80 MiB with them and 39 MiB without
//! (16.9 instead of 29.5 MiB before the first connection), for the same
//! CPU in bulk transfers (200 vs 202 clock ticks over 5 × 256 MiB each
//! way). The crate's `no_thp` build stops mimalloc's own request;
//! [`keep_small_pages`] also covers kernels that hand out huge pages
//! unasked (`transparent_hugepage=always`).

pub use mimalloc::MiMalloc as Allocator;

/// Opts this process out of transparent huge pages (Linux; elsewhere a
/// no-op). Call it first thing in `main`: memory touched before keeps what
/// it got. Returns whether the kernel agreed.
pub fn keep_small_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only
        // this process's page policy.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_keeps_the_process_off_huge_pages() {
        assert!(super::keep_small_pages());
        // SAFETY: as above; the getter takes no pointer.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }
}
