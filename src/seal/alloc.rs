//! How the C allocator hands out ciphertext-sized buffers: straight from the operating system,
//! so that each one freed goes straight back to it.
//!
//! Ciphertexts are megabyte buffers that live and die by the thousand at every level of a
//! batch-axis run. glibc serves such sizes from its heap once a few have been freed (its mmap
//! threshold rises to the largest size freed), and a heap fragmented by buffers of a dozen level
//! sizes across per-thread arenas keeps freed memory resident. A fixed 1 MiB threshold keeps
//! every such buffer a mapping of its own: an MNIST batch-axis run peaks at 1.47 GB resident
//! with it and 1.69 GB without.

use std::sync::Once;

/// Buffers at least this large are mapped on their own.
const OWN_MAPPING_BYTES: i32 = 1 << 20;

/// Sets the threshold once per process (glibc on Linux; nothing elsewhere).
pub(crate) fn configure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: mallopt only changes the allocator's tuning parameters; it is safe to call
            // at any time, and a failure (0) leaves the defaults in place.
            let ok = unsafe { super::ffi::mallopt(super::ffi::M_MMAP_THRESHOLD, OWN_MAPPING_BYTES) };
            if ok == 0 {
                log::warn!("could not set the allocator's mmap threshold; memory use may exceed the plan's estimate");
            }
        }
    });
}
