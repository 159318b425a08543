//! How the C allocator hands out ciphertext-sized buffers: straight from the operating system,
//! so that each one freed goes straight back to it. And how much SEAL's global memory pool,
//! which never gives memory back, holds.
//!
//! Ciphertexts are megabyte buffers that live and die by the thousand at every level of a
//! batch-axis run. glibc serves such sizes from its heap once a few have been freed (its mmap
//! threshold rises to the largest size freed), and a heap fragmented by buffers of a dozen level
//! sizes across per-thread arenas keeps freed memory resident. A fixed 1 MiB threshold keeps
//! every such buffer a mapping of its own: an MNIST batch-axis run peaks at 1.47 GB resident
//! with it and 1.69 GB without.

use std::sync::Once;

use super::handle::Handle;
use super::{check, ffi, Result};

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

/// Bytes SEAL's global memory pool has taken from the allocator. It caches every buffer freed
/// into it until the process exits, so this only grows: plaintexts and SEAL's temporaries live
/// there, ciphertexts (each in a pool of its own) do not.
pub fn global_pool_bytes() -> Result<u64> {
    const OP: &str = "MemoryPoolHandle::Global";
    // SAFETY: out-pointer constructor of a handle to the global pool (a copy of a shared
    // pointer; destroying it leaves the pool alone).
    let pool = Handle::create(OP, ffi::MemoryPoolHandle_Destroy, |p| unsafe {
        ffi::MemoryPoolHandle_Global(p)
    })?;
    let mut bytes = 0u64;
    // SAFETY: live handle, out-parameter.
    check(OP, unsafe {
        ffi::MemoryPoolHandle_AllocByteCount(pool.ptr(), &mut bytes)
    })?;
    Ok(bytes)
}
